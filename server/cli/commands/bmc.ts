/** `fleet power`, `fleet bootdev`, `fleet bmc info`: one line per node, failures grouped last, exit 1 if any failed. */
import { Exit, FleetError } from '../../../common/errors.js';
import type { BmcInfoRequest, BmcResponse, BmcResult, BmcRotateRequest, BmcRotateResponse, BootDeviceName, BootdevRequest, PowerRequest } from '../../../common/api/schemas.js';
import { BOOT_DEVICES } from '../../../common/api/values.js';
import { parseDurationMs } from '../../../common/duration.js';
import { apiRequest } from '../client.js';
import { foldFailures } from '../fold.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

/** Lines for a result table: successes in order, then the failures folded by reason. */
export function formatBmcResults(results: BmcResult[], describeOk: (r: BmcResult) => string): string {
  const ok = results.filter((r) => r.ok).map((r) => `${r.node}: ${describeOk(r)}`);
  const failed = results.filter((r) => !r.ok).map((r) => ({ node: r.node, reason: r.error?.message ?? 'failed' }));
  const lines = [...ok];
  if (failed.length) lines.push(`-- ${failed.length} of ${results.length} failed:`, ...foldFailures(failed));
  return lines.join('\n');
}

/** Other words for boot devices, taken at the CLI edge: `network` is ipmitool's word for pxe. */
export const BOOT_DEVICE_ALIASES: Readonly<Record<string, BootDeviceName>> = { network: 'pxe' };

/** The API's boot device for a word of the command line (a device or an alias of one). */
export function bootDevice(word: string): BootDeviceName {
  if ((BOOT_DEVICES as readonly string[]).includes(word)) return word as BootDeviceName;
  const alias = Object.hasOwn(BOOT_DEVICE_ALIASES, word) ? BOOT_DEVICE_ALIASES[word] : undefined;
  if (alias) return alias;
  const words = BOOT_DEVICES.map((d) => [d, ...Object.keys(BOOT_DEVICE_ALIASES).filter((a) => BOOT_DEVICE_ALIASES[a] === d)].join(' or '));
  throw new FleetError('usage.invalid', `unknown boot device '${word}' (one of: ${words.join(', ')})`);
}

async function send(flags: GlobalFlags, io: CliIo, path: string, body: PowerRequest | BootdevRequest | BmcInfoRequest, json: boolean | undefined, describeOk: (r: BmcResult) => string): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<BmcResponse>(settings, 'POST', path, body, 30 * 60_000);
  io.stdout((json ? JSON.stringify(res, null, 2) : formatBmcResults(res.results, describeOk)) + '\n');
  return res.summary.failed > 0 ? Exit.FAILED : Exit.OK;
}

/** `--timeout`: a duration (10s, 1500ms, 2m; a bare number is seconds) within the API's bounds; anything else is a usage error, never NaN on the wire. */
export function powerTimeoutMs(text: string): number {
  const ms = parseDurationMs(text, { defaultUnit: 's', units: ['ms', 's', 'm'] });
  if (ms === undefined || ms < 100 || ms > 600_000) throw new FleetError('usage.invalid', `--timeout ${JSON.stringify(text)} is not a duration from 100ms to 10m (e.g. 10s, 1500ms, 2m; a bare number is seconds)`);
  return Math.round(ms);
}

export async function cmdPower(
  flags: GlobalFlags,
  op: string,
  nodeset: string,
  opts: { json?: boolean; stagger?: string; timeout?: string },
  io: CliIo,
): Promise<number> {
  const ops = ['on', 'off', 'soft', 'cycle', 'reset', 'status'];
  if (!ops.includes(op)) throw new FleetError('usage.invalid', `unknown power operation '${op}' (one of: ${ops.join(', ')})`);
  const timeoutMs = opts.timeout !== undefined ? powerTimeoutMs(opts.timeout) : undefined;
  const body: PowerRequest = { nodeset, op: op as PowerRequest['op'], ...(opts.stagger ? { stagger: opts.stagger } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
  return send(flags, io, '/api/v1/power', body, opts.json, (r) => r.power ?? (op === 'soft' ? 'soft shutdown requested' : 'ok'));
}

export async function cmdBootdev(
  flags: GlobalFlags,
  device: string,
  nodeset: string,
  opts: { json?: boolean; persistent?: boolean; uefi?: boolean; legacy?: boolean },
  io: CliIo,
): Promise<number> {
  const dev = bootDevice(device);
  if (opts.uefi && opts.legacy) throw new FleetError('usage.invalid', '--uefi and --legacy exclude each other');
  const mode = opts.uefi ? 'uefi' : opts.legacy ? 'legacy' : 'auto';
  const body: BootdevRequest = { nodeset, device: dev, persistent: Boolean(opts.persistent), mode };
  return send(flags, io, '/api/v1/bootdev', body, opts.json, () => `boot device ${dev}${opts.persistent ? ' (persistent)' : ' (next boot)'}`);
}

export async function cmdBmcInfo(flags: GlobalFlags, nodeset: string, opts: { json?: boolean }, io: CliIo): Promise<number> {
  return send(flags, io, '/api/v1/bmc/info', { nodeset }, opts.json, (r) => {
    const id = r.identity;
    if (!id) return 'ok';
    const parts = [id.manufacturer, id.model, id.serial && `serial ${id.serial}`, id.uuid && `uuid ${id.uuid}`, id.bmcFirmware && `fw ${id.bmcFirmware}`, id.macs.length ? `macs ${id.macs.join(',')}` : undefined];
    // What could not be read, and why (a FRU that does not parse, no FRU 0): said, not hidden.
    const notes = (id.notes ?? []).length ? ` (not read: ${id.notes!.join('; ')})` : '';
    return (parts.filter(Boolean).join(', ') || 'no identity exposed') + notes;
  });
}

/** `fleet bmc rotate NODESET`: one line per node (account, slot, what was retired), failures folded by reason; exit 1 if any failed. */
export async function cmdBmcRotate(flags: GlobalFlags, nodeset: string, opts: { json?: boolean; passwordLength?: string; timeout?: string }, io: CliIo): Promise<number> {
  let passwordLength: 16 | 20 | undefined;
  if (opts.passwordLength !== undefined) {
    if (opts.passwordLength !== '16' && opts.passwordLength !== '20') throw new FleetError('usage.invalid', `--password-length ${JSON.stringify(opts.passwordLength)}: 16 or 20`);
    passwordLength = Number(opts.passwordLength) as 16 | 20;
  }
  const timeoutMs = opts.timeout !== undefined ? powerTimeoutMs(opts.timeout) : undefined;
  const body: BmcRotateRequest = { nodeset, ...(passwordLength ? { passwordLength } : {}), ...(timeoutMs !== undefined ? { timeoutMs: Math.max(1000, timeoutMs) } : {}) };
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<BmcRotateResponse>(settings, 'POST', '/api/v1/bmc/rotate', body, 30 * 60_000);
  if (opts.json) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
  } else {
    const lines = res.results
      .filter((r) => r.ok)
      .map((r) => {
        const retired = r.retired ? `, ${r.retired.name} (slot ${r.retired.id}) ${r.retired.stillEnabled ? 'STILL ENABLED' : 'disabled'}` : '';
        return `${r.node}: rotated to ${r.account} (slot ${r.slot})${retired}${r.warning ? ` -- ${r.warning}` : ''}`;
      });
    const failed = res.results.filter((r) => !r.ok).map((r) => ({ node: r.node, reason: r.error?.message ?? 'failed' }));
    if (failed.length) lines.push(`-- ${failed.length} of ${res.results.length} failed (their credential is unchanged):`, ...foldFailures(failed));
    io.stdout(lines.join('\n') + '\n');
  }
  return res.summary.failed > 0 ? Exit.FAILED : Exit.OK;
}

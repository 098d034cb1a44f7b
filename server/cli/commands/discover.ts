/**
 * `fleet discover`: naming rules for discovered machines (docs/discovery.md),
 * a thin client of /api/v1/discover:
 *
 *   fleet discover [--plan] [--json]               what each rule would give (name, IP, BMC), and why the others get nothing
 *   fleet discover --accept [MAC...] [--yes] [--force] [--stagger N/T] [--json]
 *                                                  planned machines (all, or these) become their nodes; on_accept install reinstalls
 *   fleet discover --reject MAC... [--json]        set machines aside: plans skip them
 *
 * Accepting asks first when a machine would install (its disk is erased),
 * as fleet reinstall does; --yes skips. The names the operator was shown
 * travel with the request: if the plan changed meanwhile, nothing happens.
 * Exit 0; 1 when a named machine is not planned or an install did not start;
 * 2 on usage errors.
 */
import { createInterface } from 'node:readline/promises';
import { Exit, FleetError } from '../../../common/errors.js';
import type { DiscoverAcceptRequest, DiscoverAcceptResponse, DiscoverPlanResponse, DiscoverRejectRequest, DiscoverRejectResponse, DiscoverUnrejectResponse } from '../../../common/api/schemas.js';
import { normalizeMac, show } from '../../../common/patterns.js';
import { parseStagger } from '../../bmc/fanout.js';
import { foldNames } from '../../nodeset/index.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

export interface DiscoverFlags {
  plan?: boolean;
  accept?: boolean;
  reject?: boolean;
  unreject?: boolean;
  json?: boolean;
  yes?: boolean;
  force?: boolean;
  stagger?: string;
}

export interface DiscoverCliDeps {
  /** Asks a yes/no question; default: on the terminal. */
  confirm?: (question: string) => Promise<boolean>;
}

async function ttyConfirm(io: CliIo, question: string): Promise<boolean> {
  if (!io.isTTY || !process.stdin.isTTY) {
    throw new FleetError('usage.invalid', 'accepting these machines installs them (their disks are erased) and there is no terminal to ask for confirmation: pass --yes');
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

function macsOf(args: readonly string[]): string[] {
  return args.map((a) => {
    const mac = normalizeMac(a);
    if (mac === undefined) throw new FleetError('usage.invalid', `${show(a)} is not a MAC address (aa:bb:cc:dd:ee:ff); fleet discover --plan lists the machines`);
    return mac;
  });
}

/** Lines "REASON: mac, mac" grouped by reason, like the per-node failures of other commands. */
function grouped(items: readonly { mac: string; reason: string }[]): string[] {
  const by = new Map<string, string[]>();
  for (const i of items) by.set(i.reason, [...(by.get(i.reason) ?? []), i.mac]);
  return [...by].map(([reason, macs]) => `${macs.join(', ')}: ${reason}`);
}

type Planned = DiscoverPlanResponse['planned'][number];

const bmcText = (p: Pick<Planned, 'bmc'>): string => (p.bmc ? `${p.bmc.address}${p.bmc.port === 623 || p.bmc.port === 443 ? '' : `:${p.bmc.port}`} (${p.bmc.protocol})` : '-');

export function formatPlan(res: DiscoverPlanResponse): string {
  const out: string[] = [];
  out.push(
    res.rules.length === 0
      ? 'no discovery rules in the applied fleet.yaml (discovery: rules:, docs/discovery.md)'
      : `policy ${res.policy}${res.policy === 'auto' ? ': planned machines are accepted when seen' : ': fleet discover --accept commits the plan'}; rules in order: ${res.rules.join(', ')}`,
  );
  if (res.planned.length > 0) {
    out.push(
      formatTable(
        ['mac', 'name', 'ip', 'bmc', 'profile', 'on accept', 'rule'],
        res.planned.map((p) => [p.mac, p.name, p.ip ?? '-', bmcText(p), p.profile, p.onAccept, p.rule + (p.alsoMatched.length ? ` (also matches ${p.alsoMatched.join(', ')})` : '')]),
      ),
    );
    for (const p of res.planned) for (const n of p.notes) out.push(`note: ${p.name}: ${n}`);
  } else {
    out.push('no machine is planned');
  }
  if (res.unplanned.length > 0) {
    out.push(`-- ${res.unplanned.length} not planned:`, ...grouped(res.unplanned.map((u) => ({ mac: u.mac, reason: `${u.status}: ${u.reason}` }))));
  }
  if (res.rejected.length > 0) {
    out.push(`-- ${res.rejected.length} rejected:`, ...res.rejected.map((r) => `${r.mac}: rejected by ${r.rejectedBy} at ${r.rejectedAt}`));
  }
  return out.join('\n');
}

export async function cmdDiscover(flags: GlobalFlags, machines: readonly string[], opts: DiscoverFlags, io: CliIo, deps: DiscoverCliDeps = {}): Promise<number> {
  const modes = [opts.plan && '--plan', opts.accept && '--accept', opts.reject && '--reject', opts.unreject && '--unreject'].filter(Boolean);
  if (modes.length > 1) throw new FleetError('usage.invalid', `choose one of ${modes.join(', ')}`);
  if (opts.stagger !== undefined && !opts.accept) throw new FleetError('usage.invalid', '--stagger goes with --accept');
  if (opts.stagger !== undefined) parseStagger(opts.stagger);
  if (opts.reject) return reject(flags, macsOf(machines), opts, io);
  if (opts.unreject) return unreject(flags, macsOf(machines), opts, io);
  if (opts.accept) return accept(flags, macsOf(machines), opts, io, deps);
  if (machines.length > 0) throw new FleetError('usage.invalid', `--plan takes no machines (did you mean --accept ${machines.join(' ')}?)`);
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<DiscoverPlanResponse>(settings, 'GET', '/api/v1/discover/plan');
  io.stdout((opts.json ? JSON.stringify(res, null, 2) : formatPlan(res)) + '\n');
  return Exit.OK;
}

async function reject(flags: GlobalFlags, macs: string[], opts: DiscoverFlags, io: CliIo): Promise<number> {
  if (macs.length === 0) throw new FleetError('usage.invalid', 'reject which machines? give their MACs (fleet discover --plan lists them)');
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<DiscoverRejectResponse>(settings, 'POST', '/api/v1/discover/reject', { macs } satisfies DiscoverRejectRequest);
  if (opts.json) io.stdout(JSON.stringify(res, null, 2) + '\n');
  else io.stdout(res.rejected.map((r) => (r.already ? `${r.mac}: already rejected (since ${r.rejectedAt})` : `${r.mac}: rejected; plans skip it`)).join('\n') + '\n');
  return Exit.OK;
}

async function unreject(flags: GlobalFlags, macs: string[], opts: DiscoverFlags, io: CliIo): Promise<number> {
  if (macs.length === 0) throw new FleetError('usage.invalid', 'take back which machines? give their MACs (fleet discover --plan lists the rejected ones)');
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<DiscoverUnrejectResponse>(settings, 'POST', '/api/v1/discover/unreject', { macs } satisfies DiscoverRejectRequest);
  if (opts.json) io.stdout(JSON.stringify(res, null, 2) + '\n');
  else io.stdout(res.unrejected.map((r) => (r.already ? `${r.mac}: was not rejected` : `${r.mac}: taken back; plans consider it again`)).join('\n') + '\n');
  return Exit.OK;
}

async function accept(flags: GlobalFlags, macs: string[], opts: DiscoverFlags, io: CliIo, deps: DiscoverCliDeps): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const plan = await apiRequest<DiscoverPlanResponse>(settings, 'GET', '/api/v1/discover/plan');
  let chosen: Planned[];
  if (macs.length === 0) {
    chosen = plan.planned;
  } else {
    const planned = new Map(plan.planned.map((p) => [p.mac, p]));
    const unplanned = new Map(plan.unplanned.map((u) => [u.mac, `${u.status}: ${u.reason}`]));
    const rejected = new Set(plan.rejected.map((r) => r.mac));
    const missing = macs
      .filter((m) => !planned.has(m))
      .map((mac) => ({ mac, reason: unplanned.get(mac) ?? (rejected.has(mac) ? 'rejected (fleet discover --reject)' : 'not a discovered machine (fleet discovered)') }));
    if (missing.length > 0) {
      io.stderr(`fleet: ${missing.length === 1 ? 'this machine is' : `${missing.length} machines are`} not in the plan; nothing was accepted\n`);
      for (const line of grouped(missing)) io.stderr(`fleet: ${line}\n`);
      return Exit.FAILED;
    }
    chosen = [...new Set(macs)].map((m) => planned.get(m)!);
  }
  if (chosen.length === 0) {
    io.stdout(`nothing to accept: no machine is planned${plan.unplanned.length ? ` (${plan.unplanned.length} not planned: fleet discover --plan says why)` : ''}\n`);
    return Exit.OK;
  }
  const installs = chosen.filter((p) => p.onAccept === 'install');
  if (installs.length > 0 && !opts.yes) {
    const names = foldNames(chosen.map((p) => p.name));
    const question =
      `Accept ${chosen.length} machine${chosen.length === 1 ? '' : 's'} as ${names}? ` +
      `${installs.length === chosen.length ? (chosen.length === 1 ? 'It installs' : 'They install') : `${foldNames(installs.map((p) => p.name))} install${installs.length === 1 ? 's' : ''}`} now: disks are erased. [y/N] `;
    const ok = await (deps.confirm ?? ((q: string) => ttyConfirm(io, q)))(question);
    if (!ok) {
      io.stderr('fleet: not confirmed; nothing was changed\n');
      return Exit.FAILED;
    }
  }
  const body: DiscoverAcceptRequest = {
    macs: chosen.map((p) => p.mac),
    expect: Object.fromEntries(chosen.map((p) => [p.mac, p.name])),
    ...(opts.force ? { force: true } : {}),
    ...(opts.stagger !== undefined ? { stagger: opts.stagger } : {}),
  };
  const res = await apiRequest<DiscoverAcceptResponse>(settings, 'POST', '/api/v1/discover/accept', body);
  if (opts.json) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
  } else {
    const lines: string[] = [];
    const failed: { mac: string; reason: string }[] = [];
    for (const a of res.accepted) {
      const what = `${a.mac} -> ${a.name}: profile ${a.profile}, IP ${a.ip ?? 'none'}, BMC ${bmcText(a)}, rule ${a.rule}`;
      if (a.install === null) lines.push(`${what}; inventory-only (enrolled)`);
      else if (a.install.ok) lines.push(`${what}; installing (${a.install.from ?? '?'} -> ${a.install.state ?? '?'}${a.install.notBefore ? `, starts at ${new Date(a.install.notBefore).toLocaleTimeString()}` : ''})${a.install.note ? `: ${a.install.note}` : ''}`);
      else {
        lines.push(`${what}; accepted, but the install did not start`);
        failed.push({ mac: `${a.name} (${a.mac})`, reason: a.install.error?.message ?? 'failed' });
      }
    }
    if (failed.length) lines.push(`-- ${failed.length} of ${res.accepted.length} did not start installing (fleet reinstall them once fixed):`, ...grouped(failed));
    io.stdout(lines.join('\n') + '\n');
  }
  return res.summary.failed > 0 ? Exit.FAILED : Exit.OK;
}

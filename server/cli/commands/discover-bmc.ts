/**
 * `fleet discover bmc`: BMC discovery by scan (docs/operations.md "BMC
 * discovery by scan"), a thin client of POST/GET /api/v1/discover/bmc; the
 * server does the scan.
 *
 *   fleet discover bmc --subnet CIDR [--protocol ipmi|redfish|both] [--port N | --ipmi-port N --redfish-port N]
 *                      [--concurrency N] [--timeout DURATION] [--force] [--json]
 *   fleet discover bmc --list [--json]
 *
 * The request is checked here first with the server's own planner, so a bad
 * subnet or port fails at once, and the CLI waits as long as the scan can
 * take (its bound) and no longer.
 */
import type { ApiDiscoveredBmc, BmcScanHost, BmcScanRequest, BmcScanResponse, DiscoveredBmcsResponse } from '../../../common/api/schemas.js';
import { parseDurationMs } from '../../../common/duration.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { SCAN_DEFAULTS, SCAN_LIMITS, SCAN_PROTOCOLS, planScan, roughDuration, type ScanPlan } from '../../discovery/scan-input.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

export interface DiscoverBmcFlags {
  subnet?: string;
  protocol?: string;
  port?: string;
  ipmiPort?: string;
  redfishPort?: string;
  concurrency?: string;
  timeout?: string;
  force?: boolean;
  list?: boolean;
  json?: boolean;
}

function usage(message: string): FleetError {
  return new FleetError('usage.invalid', message);
}

function port(flag: string, text: string): number {
  if (!/^\d{1,5}$/.test(text.trim()) || Number(text) < 1 || Number(text) > 65535) throw usage(`${flag} ${JSON.stringify(text)} is not a port (1-65535)`);
  return Number(text);
}

/** The API request for the flags of a scan (pure); usage errors say which flag and why. */
export function scanRequestOf(o: DiscoverBmcFlags): BmcScanRequest {
  if (o.subnet === undefined) throw usage('fleet discover bmc needs --subnet CIDR (e.g. 10.10.100.0/24), or --list for the BMCs found so far');
  const protocol = o.protocol ?? SCAN_DEFAULTS.protocol;
  if (!(SCAN_PROTOCOLS as readonly string[]).includes(protocol)) throw usage(`--protocol ${JSON.stringify(protocol)} is not one of ${SCAN_PROTOCOLS.join(', ')}`);
  const req: BmcScanRequest = { subnet: o.subnet, protocol: protocol as BmcScanRequest['protocol'] };
  if (o.port !== undefined) {
    if (o.ipmiPort !== undefined || o.redfishPort !== undefined) throw usage('--port and --ipmi-port/--redfish-port exclude each other');
    if (protocol === 'both') throw usage('--port names one port, and --protocol both probes two (UDP 623 and TCP 443 by default): use --ipmi-port and/or --redfish-port, or pick one --protocol');
    if (protocol === 'ipmi') req.ipmiPort = port('--port', o.port);
    else req.redfishPort = port('--port', o.port);
  }
  if (o.ipmiPort !== undefined) {
    if (protocol === 'redfish') throw usage('--ipmi-port with --protocol redfish: nothing would use it');
    req.ipmiPort = port('--ipmi-port', o.ipmiPort);
  }
  if (o.redfishPort !== undefined) {
    if (protocol === 'ipmi') throw usage('--redfish-port with --protocol ipmi: nothing would use it');
    req.redfishPort = port('--redfish-port', o.redfishPort);
  }
  if (o.concurrency !== undefined) {
    const n = /^\d+$/.test(o.concurrency.trim()) ? Number(o.concurrency) : NaN;
    if (!(n >= 1 && n <= SCAN_LIMITS.maxConcurrency)) throw usage(`--concurrency ${JSON.stringify(o.concurrency)} is not a whole number from 1 to ${SCAN_LIMITS.maxConcurrency}`);
    req.concurrency = n;
  }
  if (o.timeout !== undefined) {
    const ms = parseDurationMs(o.timeout, { defaultUnit: 's', units: ['ms', 's', 'm'] });
    if (ms === undefined || ms < SCAN_LIMITS.minTimeoutMs || ms > SCAN_LIMITS.maxTimeoutMs) {
      throw usage(`--timeout ${JSON.stringify(o.timeout)} is not a duration from 100ms to 60s (e.g. 3s, 500ms; a bare number is seconds)`);
    }
    req.timeoutMs = Math.round(ms);
  }
  if (o.force) req.force = true;
  return req;
}

/** The plan, checked here with the server's planner; its refusals are usage errors of the command line. */
export function planOf(req: BmcScanRequest): ScanPlan {
  try {
    return planScan(req);
  } catch (e) {
    if (e instanceof FleetError && e.code === 'request.invalid') throw usage(`--subnet: ${e.message}`);
    throw e;
  }
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

function ipmiCell(h: BmcScanHost): string {
  const f = h.ipmi;
  if (!f || f.verdict === 'silent') return '-';
  if (f.verdict === 'other') return f.notes[0] ?? 'not a BMC';
  const parts = [
    f.versions.length ? `IPMI ${f.versions.join('+')}` : 'IPMI',
    f.authTypes.length ? `auth ${f.authTypes.join(',')}` : undefined,
    f.enterprise ?? undefined,
    f.notes.length ? `(${f.notes.join('; ')})` : undefined,
  ];
  return parts.filter(Boolean).join(', ');
}

function redfishCell(h: BmcScanHost): string {
  const f = h.redfish;
  if (!f || f.verdict === 'silent') return '-';
  if (f.verdict === 'other') return f.notes[0] ?? 'not a Redfish service';
  if (!f.rootRead) return `Redfish (${f.notes[0] ?? 'service root not read'})`;
  const parts = [`Redfish ${f.redfishVersion ?? '?'}`, f.vendor, f.product, f.uuid && `uuid ${f.uuid}`, ...f.notes.map((n) => `(${n})`)];
  return parts.filter(Boolean).join(', ');
}

/** The scan as text: one summary line, a table of what answered, the certificates seen, the silent ranges. */
export function formatScan(r: BmcScanResponse): string {
  const s = r.summary;
  const lines = [
    `${r.subnet}: ${plural(s.addresses, 'address', 'addresses')} scanned (${r.protocols.join(', ')}) in ${(r.durationMs / 1000).toFixed(1)} s: ` +
      `${s.answered} answered (${plural(s.bmcs, 'BMC')}, ${s.new} new; ${s.other} other), ${s.silent} silent`,
  ];
  if (r.hosts.length) {
    lines.push(
      formatTable(
        ['address', 'found', 'new', 'ipmi', 'redfish'],
        r.hosts.map((h) => [h.address, h.verdict === 'bmc' ? 'BMC' : 'other', h.new ? 'yes' : '-', ipmiCell(h), redfishCell(h)]),
      ),
    );
  }
  const certs = r.hosts.filter((h) => h.verdict === 'bmc' && h.redfish?.fingerprint);
  if (certs.length) {
    lines.push('TLS certificates seen, not verified (kept to pin later: compare with what the BMC itself shows before trusting one):');
    for (const h of certs) lines.push(`  ${h.address}:${h.redfish!.port} SHA-256 ${h.redfish!.fingerprint}`);
  }
  if (r.silent.length) lines.push(`silent: ${r.silent.join(', ')}`);
  if (r.notScanned.length) lines.push(`not scanned (the server stopped): ${r.notScanned.join(', ')}`);
  return lines.join('\n');
}

/** The BMCs found so far, as a table. */
export function formatDiscoveredBmcs(bmcs: readonly ApiDiscoveredBmc[]): string {
  if (bmcs.length === 0) return 'no BMCs found yet (fleet discover bmc --subnet CIDR)';
  return formatTable(
    ['address', 'ipmi', 'redfish', 'uuid', 'vendor', 'node', 'last seen'],
    bmcs.map((b) => [
      b.address,
      b.ipmi ? `${b.ipmi.port}${b.ipmi.versions.length ? ` v${b.ipmi.versions.join('+')}` : ''}` : '-',
      b.redfish ? `${b.redfish.port}${b.redfish.redfishVersion ? ` ${b.redfish.redfishVersion}` : b.redfish.rootRead ? '' : ' (locked)'}` : '-',
      b.uuid ?? '-',
      [b.vendor, b.product].filter(Boolean).join(' ') || b.ipmi?.enterprise || '-',
      b.nodes.join(',') || '-',
      b.lastSeen,
    ]),
  );
}

export async function cmdDiscoverBmc(flags: GlobalFlags, opts: DiscoverBmcFlags, io: CliIo): Promise<number> {
  if (opts.list) {
    const scanFlags = (['subnet', 'protocol', 'port', 'ipmiPort', 'redfishPort', 'concurrency', 'timeout', 'force'] as const).filter((k) => opts[k] !== undefined);
    if (scanFlags.length) throw usage('--list shows the BMCs found so far; it takes no scan options (drop --list to scan)');
    const settings = await resolveClientSettings(flags, io);
    const res = await apiRequest<DiscoveredBmcsResponse>(settings, 'GET', '/api/v1/discover/bmc');
    io.stdout((opts.json ? JSON.stringify(res.bmcs, null, 2) : formatDiscoveredBmcs(res.bmcs)) + '\n');
    return Exit.OK;
  }
  const req = scanRequestOf(opts);
  const plan = planOf(req);
  const settings = await resolveClientSettings(flags, io);
  const what = [plan.ipmi && `IPMI on UDP ${plan.ipmi.port}`, plan.redfish && `Redfish on TCP ${plan.redfish.port}`].filter(Boolean).join(' and ');
  io.stderr(
    `fleet: scanning ${plan.subnet} (${plural(plan.count, 'address', 'addresses')}) for ${what}, ${plan.concurrency} at a time, ` +
      `${plan.timeoutMs} ms per address and ${plan.retries} retries: at most ${roughDuration(plan.boundMs)}\n`,
  );
  // The server answers when the scan is done: wait for its bound, and a margin for the store and the network.
  const res = await apiRequest<BmcScanResponse>(settings, 'POST', '/api/v1/discover/bmc', req, plan.boundMs + 60_000);
  io.stdout((opts.json ? JSON.stringify(res, null, 2) : formatScan(res)) + '\n');
  return Exit.OK;
}

/** `fleet nodes` and `fleet show`: thin clients of the REST API (`fleet apply` is in apply.ts: it loads the config code). */
import { Exit, FleetError } from '../../../common/errors.js';
import type { ApiNode, NodesResponse } from '../../../common/api/schemas.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

function bmcLabel(n: ApiNode): string {
  if (!n.bmc) return '-';
  return `${n.bmc.address}:${n.bmc.port} ${n.bmc.protocol}`;
}

export async function cmdNodes(flags: GlobalFlags, nodeset: string | undefined, opts: { json?: boolean; names?: boolean }, io: CliIo): Promise<number> {
  if (opts.json && opts.names) throw new FleetError('usage.invalid', '--json and --names exclude each other');
  const settings = await resolveClientSettings(flags, io);
  const q = nodeset ? `?nodeset=${encodeURIComponent(nodeset)}` : '';
  const res = await apiRequest<NodesResponse>(settings, 'GET', `/api/v1/nodes${q}`);
  if (opts.names) {
    io.stdout(res.nodes.map((n) => `${n.name}\n`).join(''));
  } else if (opts.json) {
    io.stdout(JSON.stringify(res.nodes, null, 2) + '\n');
  } else {
    // The flags column (e.g. bmc-mismatch) only when a listed node has one: the usual table stays as it was.
    const flagged = res.nodes.some((n) => (n.flags?.length ?? 0) > 0);
    const flagCell = (n: ApiNode): string[] => (flagged ? [n.flags?.length ? n.flags.map((f) => f.flag).join(',') : '-'] : []);
    io.stdout(
      formatTable(
        ['name', 'profile', 'ip', 'bmc', 'state', ...(flagged ? ['flags'] : [])],
        res.nodes.map((n) => [n.name, n.profile, n.ip ?? '-', bmcLabel(n), n.state, ...flagCell(n)]),
      ) + '\n',
    );
  }
  if (nodeset && res.missing.length > 0) {
    io.stderr(`fleet: not in the store: ${res.missingFolded}\n`);
    return Exit.FAILED;
  }
  return Exit.OK;
}

export async function cmdShow(flags: GlobalFlags, node: string, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const n = await apiRequest<ApiNode>(settings, 'GET', `/api/v1/nodes/${encodeURIComponent(node)}`);
  if (opts.json) {
    io.stdout(JSON.stringify(n, null, 2) + '\n');
    return Exit.OK;
  }
  const rows: [string, string][] = [
    ['name', n.name],
    ['profile', n.profile],
    ['state', `${n.state} (since ${n.stateSince})`],
    ['ip', n.ip ?? '-'],
    ['macs', n.macs.length ? n.macs.join(', ') : '-'],
    ['bmc', n.bmc ? `${n.bmc.address}:${n.bmc.port} ${n.bmc.protocol} (credentials ${n.bmc.credentials})` : '-'],
    ['pet', n.pet ? 'yes (destructive operations need --force)' : 'no'],
    ['origin', n.origin === 'enroll' ? 'fleet enroll (not in fleet.yaml; apply keeps it)' : 'fleet.yaml'],
    ['armed', n.armed ? 'yes (next network boot installs)' : 'no'],
    ['last seen', n.lastSeen ?? 'never'],
    ...(n.flags ?? []).map((f): [string, string] => ['flag', `${f.flag} since ${f.since}: ${f.reason}`]),
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  io.stdout(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
  return Exit.OK;
}

/** CLI commands that are thin clients of the REST API. */
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { foldNames } from '../../nodeset/index.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { loadConfigFile, resolveSecret } from '../../config/load.js';
import type { ApiNode, ApplyRequest, ApplyResponse, NodesResponse } from '../../../common/api/schemas.js';
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

export interface ApplyFlags {
  file: string;
  dryRun?: boolean;
  json?: boolean;
  /** Also remove pets and nodes that are mid-operation. */
  prune?: boolean;
  /** Do not ask before removing nodes. */
  yes?: boolean;
}

export interface ApplyCliDeps {
  /** Asks a yes/no question; default: on the terminal (stdin and stdout must be TTYs). */
  confirm?: (question: string) => Promise<boolean>;
}

async function ttyConfirm(io: CliIo, question: string): Promise<boolean> {
  if (!io.isTTY || !process.stdin.isTTY) {
    throw new FleetError('usage.invalid', 'this apply removes nodes and there is no terminal to ask for confirmation: pass --yes');
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/**
 * `fleet apply -f FILE [--dry-run] [--prune] [--yes]`: the server plans
 * first (a dry run); a plan that holds nodes back (pets or nodes
 * mid-operation gone from the file) is refused without --prune, and one that
 * removes nodes is confirmed on the terminal (--yes skips) before the real
 * apply, which names the confirmed nodes so that the server refuses a plan
 * that changed meanwhile.
 */
export async function cmdApply(flags: GlobalFlags, opts: ApplyFlags, io: CliIo, deps: ApplyCliDeps = {}): Promise<number> {
  const path = resolve(io.cwd, opts.file);
  // Parsed here first so fleet.yaml errors are reported (by main's error printer) before anything is sent.
  const loaded = await loadConfigFile(path);
  const secrets: Record<string, string> = {};
  for (const cred of loaded.spec.credentials) {
    secrets[cred.name] = await resolveSecret(cred, io.env, dirname(path));
  }
  const settings = await resolveClientSettings(flags, io);
  const body: ApplyRequest = {
    yaml: loaded.text,
    source: opts.file,
    secrets,
    dryRun: true,
    ...(opts.prune ? { prune: true } : {}),
    // The serials files the discovery rules name, read next to fleet.yaml: the server reads no client file.
    ...(Object.keys(loaded.files).length > 0 ? { files: loaded.files } : {}),
  };
  const planned = await apiRequest<ApplyResponse>(settings, 'POST', '/api/v1/apply', body);
  const held = planned.plan.nodes.held ?? [];
  const removals = planned.plan.nodes.removed;
  let res = planned;
  let shown = false;
  if (!opts.dryRun && held.length > 0) {
    // The plan shows each held node as "would remove (use --prune)".
    io.stdout((opts.json ? JSON.stringify(planned, null, 2) : planned.text) + '\n');
    const what = held.map((h) => `${h.name} (${h.reasons.map((r) => (r === 'pet' ? 'pet' : h.state)).join(', ')})`).join(', ');
    io.stderr(`fleet: fleet.yaml no longer declares ${what}: removed only with --prune; nothing was changed\n`);
    return Exit.FAILED;
  }
  if (!opts.dryRun && planned.changed) {
    if (removals.length > 0 && !opts.yes) {
      if (!opts.json) io.stdout(planned.text + '\n');
      shown = !opts.json;
      const question = `Remove ${removals.length} node${removals.length === 1 ? '' : 's'} ${foldNames(removals)} from fleet? Their records are deleted (their events stay). [y/N] `;
      const ok = await (deps.confirm ?? ((q: string) => ttyConfirm(io, q)))(question);
      if (!ok) {
        io.stderr('fleet: not confirmed; nothing was changed\n');
        return Exit.FAILED;
      }
    }
    res = await apiRequest<ApplyResponse>(settings, 'POST', '/api/v1/apply', { ...body, dryRun: false, confirmRemovals: removals });
  }
  if (opts.json) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
  } else {
    if (!shown) io.stdout(res.text + '\n');
    io.stdout(res.changed ? (res.applied ? 'applied.\n' : 'dry run: nothing was changed.\n') : 'no changes.\n');
  }
  return Exit.OK;
}

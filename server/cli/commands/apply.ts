/** `fleet apply`: reads fleet.yaml here, sends it to the server, prints the plan or the diff. */
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { foldNames } from '../../nodeset/index.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { loadConfigFile, resolveSecret } from '../../config/load.js';
import type { ApplyRequest, ApplyResponse } from '../../../common/api/schemas.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

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

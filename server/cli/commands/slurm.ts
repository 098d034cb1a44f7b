/**
 * `fleet slurm rotate-key --yes`: a new munge key for the cluster
 * (POST /api/v1/slurm/rotate-key, docs/slurm.md). The key is never printed.
 */
import type { Command } from 'commander';
import type { SlurmRotateKeyResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

export async function cmdSlurmRotateKey(flags: GlobalFlags, opts: { yes?: boolean; json?: boolean }, io: CliIo): Promise<number> {
  if (!opts.yes) {
    throw new FleetError(
      'usage.invalid',
      'rotating the munge key breaks authentication between slurm nodes until every one of them has applied the new key (their next heartbeat); run it in a maintenance window with --yes',
    );
  }
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<SlurmRotateKeyResponse>(settings, 'POST', '/api/v1/slurm/rotate-key');
  io.stdout(
    opts.json
      ? JSON.stringify(res, null, 2) + '\n'
      : `munge key rotated at ${res.rotatedAt}; ${res.nodes.length} slurm node${res.nodes.length === 1 ? '' : 's'} receive it at their next config fetch${res.nodesFolded ? `: ${res.nodesFolded}` : ''}\n`,
  );
  return Exit.OK;
}

export function registerSlurmCommands(program: Command, ctx: { io: CliIo; globals: () => GlobalFlags; run: (p: Promise<number>) => Promise<void> }): void {
  const { io, globals, run } = ctx;
  const slurm = program.command('slurm').description("the cluster's Slurm, derived by fleet (docs/slurm.md)");
  slurm
    .command('rotate-key')
    .description('replace the munge key; every slurm node writes the new one and restarts munge and its daemon at its next heartbeat')
    .option('--yes', 'yes: nodes cannot authenticate to each other until all have the new key')
    .option('--json', 'JSON output')
    .action((opts: { yes?: boolean; json?: boolean }) => run(cmdSlurmRotateKey(globals(), opts, io)));
}

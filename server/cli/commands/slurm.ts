/**
 * `fleet slurm rotate-key --yes`: a new munge key for the cluster
 * (POST /api/v1/slurm/rotate-key, docs/slurm.md). The key is never printed.
 */
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

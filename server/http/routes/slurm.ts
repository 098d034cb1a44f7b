/**
 * Slurm API (docs/slurm.md):
 *   POST /api/v1/slurm/rotate-key   a new munge key for the cluster (never in the answer)
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { foldNames } from '../../nodeset/index.js';
import { rotateMungeKey } from '../../slurm/rotate.js';
import type { Store } from '../../store/index.js';
import { actorOf } from './actor.js';

export async function registerSlurmRoutes(api: FastifyInstance, deps: { store: Store }): Promise<void> {
  api.post(
    '/slurm/rotate-key',
    { schema: { summary: "Replace the cluster's munge key; slurm nodes receive the new one at their next config fetch", response: { 200: S.SlurmRotateKeyResponse } } },
    async (req): Promise<S.SlurmRotateKeyResponse> => {
      const r = await rotateMungeKey(deps.store, actorOf(req));
      req.log.info({ secret: r.secret, nodes: r.nodes.length }, 'munge key rotated');
      return { ...r, nodesFolded: r.nodes.length ? foldNames(r.nodes) : '' };
    },
  );
}

/**
 * Rotating the cluster's munge key: a new one replaces the stored one
 * (sealed, secret.replaced with who and why); every slurm node's config
 * version changes with it, so each agent writes the new key and restarts
 * munge and its daemon at its next heartbeat. Until they all have, nodes
 * with the old and the new key cannot authenticate to each other.
 */
import { FleetError } from '../../common/errors.js';
import type { Store } from '../store/index.js';
import { MUNGE_KEY_SECRET, generateMungeKeyB64 } from './facts.js';

export interface RotateResult {
  secret: string;
  rotatedAt: string;
  /** Nodes whose profile has the slurm role, in name order. */
  nodes: string[];
}

export async function rotateMungeKey(store: Store, actor: string, now: () => Date = () => new Date()): Promise<RotateResult> {
  const profiles = (await store.profiles.list()).filter((p) => p.roles?.slurm).map((p) => p.name);
  if (profiles.length === 0) throw new FleetError('conflict', 'no profile has the slurm role: there is no munge key to rotate');
  const slurm = new Set(profiles);
  const nodes = (await store.nodes.list()).filter((n) => slurm.has(n.profile)).map((n) => n.name);
  await store.secrets.replace(MUNGE_KEY_SECRET, generateMungeKeyB64(), 'rotated', { actor, cause: 'rotate-key' });
  return { secret: MUNGE_KEY_SECRET, rotatedAt: now().toISOString(), nodes };
}

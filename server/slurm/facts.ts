/**
 * What a node of the cluster's Slurm receives in cluster_json (`slurm`):
 * slurm.conf and the munge key. Pure; server/agents/config.ts reads the
 * store and calls it.
 */
import crypto from 'node:crypto';
import type { ProfileSpec, SlurmRoleSpec } from '../model.js';
import { inventoryFromStored } from '../../common/inventory/proto.js';
import { renderSlurmConf, type SlurmComputeNode } from './conf.js';

/** `slurm` in cluster_json, for nodes whose profile has the slurm role only. */
export interface SlurmFactsJson {
  /** /etc/slurm/slurm.conf, whole. */
  conf: string;
  /** /etc/munge/munge.key, base64 (1024 bytes). A secret: see `redactSlurmSecrets`. */
  mungeKeyB64: string;
}

/** The store's name of the cluster's munge key (server/store/repos/secrets.ts). */
export const MUNGE_KEY_SECRET = 'slurm.munge-key';
export const MUNGE_KEY_BYTES = 1024;
export const REDACTED = '<redacted>';

/** A new munge key: 1024 random bytes, base64 (what the secret row holds). */
export function generateMungeKeyB64(): string {
  return crypto.randomBytes(MUNGE_KEY_BYTES).toString('base64');
}

export interface SlurmClusterNode {
  name: string;
  profile: string;
  ip?: string | null;
}

export type SlurmDerivation = { ok: true; conf: string; controller: string } | { ok: false; reason: string };

/**
 * slurm.conf of the cluster: the one node whose profile's slurm role is
 * controller or both, and every node whose profile's role is compute or both
 * with its inventory (the stored JSON of its newest report, by node name).
 * Not ok when the cluster has no slurm profile or not exactly one
 * controller node (fleet.yaml's parser refuses that, but enrolled nodes are
 * not in fleet.yaml).
 */
export function deriveSlurmConf(
  profiles: readonly Pick<ProfileSpec, 'name' | 'roles'>[],
  nodes: readonly SlurmClusterNode[],
  inventories: ReadonlyMap<string, unknown>,
): SlurmDerivation {
  const slurmOf = new Map<string, SlurmRoleSpec>();
  for (const p of profiles) if (p.roles?.slurm) slurmOf.set(p.name, p.roles.slurm);
  if (slurmOf.size === 0) return { ok: false, reason: 'no profile has the slurm role' };
  const controllers = nodes.filter((n) => {
    const role = slurmOf.get(n.profile)?.role;
    return role === 'controller' || role === 'both';
  });
  if (controllers.length !== 1) {
    return {
      ok: false,
      reason:
        controllers.length === 0
          ? 'no node has a profile with slurm role controller or both'
          : `${controllers.length} nodes have a profile with slurm role controller or both (${controllers.map((n) => n.name).join(', ')}): exactly one may`,
    };
  }
  const controller = controllers[0]!;
  const clusterName = slurmOf.get(controller.profile)!.clusterName;
  const computes: SlurmComputeNode[] = [];
  for (const n of nodes) {
    const s = slurmOf.get(n.profile);
    if (!s || s.role === 'controller') continue;
    const stored = inventories.get(n.name);
    computes.push({
      name: n.name,
      ...(n.ip ? { address: n.ip } : {}),
      partition: s.partition,
      partitionDefault: s.partitionDefault,
      inventory: stored === undefined || stored === null ? null : inventoryFromStored(stored),
    });
  }
  const conf = renderSlurmConf({ clusterName, controller: { name: controller.name, ...(controller.ip ? { address: controller.ip } : {}) }, computes });
  return { ok: true, conf, controller: controller.name };
}

/**
 * A copy of a config object (a cluster facts object, its JSON text, or
 * anything holding one) with every `mungeKeyB64` replaced by "<redacted>".
 * For whatever shows a node's config to people (CLI output, API answers,
 * logs): the key travels only in GetConfig over the agent channel.
 */
export function redactSlurmSecrets<T>(v: T): T {
  if (typeof v === 'string') {
    const t = v.trim();
    if ((t.startsWith('{') || t.startsWith('[')) && t.includes('mungeKeyB64')) {
      try {
        return JSON.stringify(redactSlurmSecrets(JSON.parse(t) as unknown)) as T;
      } catch {
        return v.replace(/("mungeKeyB64"\s*:\s*")[^"]*"/g, `$1${REDACTED}"`) as T;
      }
    }
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => redactSlurmSecrets(x)) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === 'mungeKeyB64' && typeof x === 'string' ? REDACTED : redactSlurmSecrets(x);
    return out as T;
  }
  return v;
}

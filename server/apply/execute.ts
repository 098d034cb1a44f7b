/**
 * `fleet apply`, writing part: one transaction through the store's
 * repositories, each of which writes its own event rows.
 */
import { FleetError } from '../../common/errors.js';
import type { ClusterSpec } from '../model.js';
import { nodeSpecOf, type Store } from '../store/index.js';
import { formatPlan } from './format.js';
import { isEmptyPlan, planApply, stateBasis, type ApplyPlan, type CurrentState, type SecretDigests, type Secrets } from './plan.js';

export interface ApplyResult {
  /** false: the plan was empty and nothing was written (no events either). */
  applied: boolean;
  settingsChanged: boolean;
  nodes: { added: number; changed: number; removed: number };
  profiles: { added: number; changed: number; removed: number };
  credentials: { added: number; changed: number; removed: number };
}

/** The store's content in spec form, for planApply. */
export async function loadCurrentState(store: Store): Promise<CurrentState> {
  const [nodes, profiles, digests, settings] = [
    await store.nodes.list(),
    await store.profiles.list(),
    await store.credentials.digests(),
    await store.settings.getCluster(),
  ];
  return {
    nodes: nodes.map(nodeSpecOf),
    profiles,
    credentials: [...digests].map(([name, d]) => ({ name, username: d.username, secretDigest: d.secretDigest })),
    settings,
  };
}

/** Keyed digests of the secrets read for a spec, under this store's key. */
export function digestSecrets(store: Store, secrets: Secrets): SecretDigests {
  return new Map([...secrets].map(([name, s]) => [name, { username: s.username, secretDigest: store.credentials.digest(s.secret) }]));
}

const count = (x: { added: unknown[]; changed: unknown[]; removed: unknown[] }) => ({
  added: x.added.length,
  changed: x.changed.length,
  removed: x.removed.length,
});

/**
 * Applies a plan in one transaction. Refuses with FleetError('conflict') when
 * the store changed since the plan was made, or a secret differs from the
 * one the plan was made with. An empty plan writes nothing.
 *
 * Order: settings, credentials and profiles added/changed, nodes removed,
 * nodes changed and added (IPs/MACs moving between nodes are released
 * first), then profiles and credentials removed (foreign keys hold at every
 * step).
 */
export async function executeApply(store: Store, plan: ApplyPlan, secrets: Secrets, actor: string): Promise<ApplyResult> {
  const result: ApplyResult = {
    applied: !isEmptyPlan(plan),
    settingsChanged: plan.settings.changed,
    nodes: count(plan.nodes),
    profiles: count(plan.profiles),
    credentials: count(plan.credentials),
  };
  if (!result.applied) return result;
  const wc = { actor, cause: 'apply' };

  await store.transaction(async (tx) => {
    if (stateBasis(await loadCurrentState(tx)) !== plan.basis) {
      throw new FleetError('conflict', 'the store changed since this plan was made; plan again');
    }
    const toWrite = [...plan.credentials.added, ...plan.credentials.changed];
    for (const c of toWrite) {
      const s = secrets.get(c.name);
      if (!s) throw new FleetError('config.invalid', `no secret was given for credential ${c.name}`, [{ path: 'credentials', message: c.name }]);
      if (tx.credentials.digest(s.secret) !== c.secretDigest) {
        throw new FleetError('conflict', `the secret of credential ${c.name} is not the one this plan was made with; plan again`);
      }
    }

    if (plan.settings.changed) await tx.settings.setCluster(plan.settings.to, wc);
    for (const c of toWrite) await tx.credentials.upsert(c.name, c.username, secrets.get(c.name)!.secret, wc);
    for (const p of [...plan.profiles.added, ...plan.profiles.changed.map((x) => x.spec)]) await tx.profiles.upsert(p, wc);
    for (const n of plan.nodes.removed) await tx.nodes.remove(n.name, wc);
    await tx.nodes.upsertMany([...plan.nodes.changed.map((x) => x.spec), ...plan.nodes.added], wc);
    for (const name of plan.profiles.removed) await tx.profiles.remove(name, wc);
    for (const name of plan.credentials.removed) await tx.credentials.remove(name, wc);
  });
  return result;
}

/**
 * Convenience for the CLI and API: plan against the store, and unless
 * dryRun, execute. Returns the plan, its text and the result (null on dry run).
 */
export async function applySpec(
  store: Store,
  desired: ClusterSpec,
  secrets: Secrets,
  opts: { actor: string; dryRun?: boolean },
): Promise<{ plan: ApplyPlan; text: string; result: ApplyResult | null }> {
  const plan = planApply(await loadCurrentState(store), desired, digestSecrets(store, secrets));
  const text = formatPlan(plan);
  if (opts.dryRun) return { plan, text, result: null };
  return { plan, text, result: await executeApply(store, plan, secrets, opts.actor) };
}

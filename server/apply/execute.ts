/**
 * `fleet apply`, writing part: one transaction through the store's
 * repositories, each of which writes its own event rows.
 */
import { ROTATED_PREFIX } from '../model.js';
import { FleetError } from '../../common/errors.js';
import type { ClusterSpec } from '../model.js';
import { nodeSpecOf, type Store } from '../store/index.js';
import { formatPlan } from './format.js';
import { holdReasons, isEmptyPlan, planApply, stateBasis, type ApplyPlan, type CurrentState, type HeldNode, type SecretDigests, type Secrets } from './plan.js';

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
    meta: Object.fromEntries(nodes.map((n) => [n.name, { origin: n.origin, state: n.state }])),
    profiles,
    // Per-node sets written by fleet bmc rotate are fleet's own, not fleet.yaml's: apply neither plans nor removes them.
    credentials: [...digests].filter(([name]) => !name.startsWith(ROTATED_PREFIX)).map(([name, d]) => ({ name, username: d.username, secretDigest: d.secretDigest })),
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
    const now = await loadCurrentState(tx);
    if (stateBasis(now) !== plan.basis) {
      throw new FleetError('conflict', 'the store changed since this plan was made; plan again');
    }
    if (!plan.prune) {
      // States are not part of the basis: a node may have started an operation since the plan was made.
      const busy = plan.nodes.removed.filter((n) => holdReasons(n, now.meta?.[n.name]?.state ?? 'enrolled').length > 0);
      if (busy.length > 0) {
        throw new FleetError('conflict', `${busy.map((n) => n.name).join(', ')} started an operation since this plan was made; plan again`);
      }
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
    await tx.nodes.setOrigin(plan.nodes.adopted.map((n) => n.name), 'config', wc);
    await tx.nodes.upsertMany([...plan.nodes.changed.map((x) => x.spec), ...plan.nodes.added], wc);
    for (const name of plan.profiles.removed) await tx.profiles.remove(name, wc);
    for (const name of plan.credentials.removed) await tx.credentials.remove(name, wc);
  });
  return result;
}

export interface ApplySpecOptions {
  actor: string;
  dryRun?: boolean;
  /** Also remove pets and nodes that are mid-operation. */
  prune?: boolean;
  /**
   * What to do when the plan holds nodes back (pets or busy nodes gone from
   * fleet.yaml, without prune): 'refuse' (default; `fleet apply`) throws
   * FleetError('conflict') and writes nothing; 'keep' (the apply at server
   * start) applies everything else and leaves them in place.
   */
  held?: 'refuse' | 'keep';
  /**
   * The nodes the caller agreed to remove (after showing a dry run): a plan
   * that removes any other node is refused. Absent: no such check.
   */
  confirmedRemovals?: string[];
}

/** The error `fleet apply` gives when the plan holds nodes back. */
export function heldError(held: HeldNode[]): FleetError {
  const what = held.map((h) => `${h.name} (${h.reasons.map((r) => (r === 'pet' ? 'pet' : h.state)).join(', ')})`);
  return new FleetError(
    'conflict',
    `fleet.yaml no longer declares ${what.join(', ')}: ${held.length === 1 ? 'it is' : 'they are'} removed only with --prune; nothing was changed`,
    { held: held.map((h) => ({ name: h.name, state: h.state, pet: h.pet, reasons: h.reasons })) },
  );
}

/**
 * Convenience for the CLI and API: plan against the store, and unless
 * dryRun, execute. Returns the plan, its text and the result (null on dry run).
 */
export async function applySpec(
  store: Store,
  desired: ClusterSpec,
  secrets: Secrets,
  opts: ApplySpecOptions,
): Promise<{ plan: ApplyPlan; text: string; result: ApplyResult | null }> {
  const plan = planApply(await loadCurrentState(store), desired, digestSecrets(store, secrets), { prune: opts.prune === true });
  const text = formatPlan(plan);
  if (opts.dryRun) return { plan, text, result: null };
  if (plan.nodes.held.length > 0 && (opts.held ?? 'refuse') === 'refuse') throw heldError(plan.nodes.held);
  if (opts.confirmedRemovals) {
    const ok = new Set(opts.confirmedRemovals);
    const unconfirmed = plan.nodes.removed.map((n) => n.name).filter((n) => !ok.has(n));
    if (unconfirmed.length > 0) {
      throw new FleetError('conflict', `the plan now also removes ${unconfirmed.join(', ')}, which was not confirmed; nothing was changed (run apply again)`, {
        unconfirmed,
      });
    }
  }
  return { plan, text, result: await executeApply(store, plan, secrets, opts.actor) };
}

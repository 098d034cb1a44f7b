/**
 * Reconciliation as an operation (issue 12 item 4): for each node, its
 * agent's latest inventory (store) against its BMC's identity (a read-only
 * `info` BMC operation through the server's providers, per-BMC queue,
 * timeouts and retry rule, server/bmc/operation.ts), compared by the pure
 * `reconcile()` (reconcile.ts); each node's result is recorded by the store:
 * the `bmc-mismatch` flag raised on a mismatch, cleared on a match, and an
 * `inventory.reconciled` event either way. No BMC secret is in any result or
 * event: identities and check results only.
 *
 * `fleet inventory reconcile NODESET` runs it (POST /api/v1/inventory/reconcile);
 * `createAutoReconciler` runs it for one node after each inventory report
 * of an agent whose node has a BMC, off the report's path.
 */
import { inventoryFromStored } from '../../common/inventory/proto.js';
import { FleetError } from '../../common/errors.js';
import { runBmcOperation } from '../bmc/operation.js';
import type { ProviderContext } from '../bmc/registry.js';
import type { BmcIdentity } from '../bmc/types.js';
import type { FlagChange, Store } from '../store/index.js';
import { reconcile, type ReconcileCheck, type ReconcileStatus } from './reconcile.js';

export interface ReconcileOptions {
  store: Store;
  providers: ProviderContext;
  actor: string;
  trigger: 'api' | 'report';
  /** As for the other BMC operations: the fan-out's limits (defaults: the fan-out's). */
  concurrency?: number | undefined;
  timeoutMs?: number | undefined;
  retries?: number | undefined;
  signal?: AbortSignal;
}

export interface NodeReconcileResult {
  node: string;
  status: ReconcileStatus;
  reason: string;
  checks: ReconcileCheck[];
  /** Which provider read the BMC. */
  provider?: string;
  /** What the BMC said (no secret in it). */
  bmc?: BmcIdentity;
  /** Why the BMC was not read or could not be (status unknown). */
  error?: { code: string; message: string };
  /** What happened to the node's bmc-mismatch flag. */
  flag: FlagChange;
  /** The agent's report compared (its time), null: none yet. */
  reportedAt: string | null;
}

/** Reconciles the named nodes (already expanded; each must be in the store). Results in `names` order. */
export async function reconcileNodes(names: readonly string[], o: ReconcileOptions): Promise<NodeReconcileResult[]> {
  const { store } = o;
  const nodes = new Map((await store.nodes.list({ names: [...names] })).map((n) => [n.name, n]));
  const results = new Map<string, Omit<NodeReconcileResult, 'flag'>>();
  const reports = new Map<string, { reportedAt: string; inventory: unknown }>();
  const toRead: string[] = [];
  for (const name of names) {
    const node = nodes.get(name);
    if (!node) throw new FleetError('node.not_found', `no node named '${name}'`, { node: name });
    const rep = await store.inventory.latest(name);
    if (!rep) {
      results.set(name, { node: name, status: 'unknown', reason: 'no inventory yet', checks: [], reportedAt: null });
    } else if (!node.bmc) {
      results.set(name, { node: name, status: 'unknown', reason: 'no BMC declared for this node', checks: [], reportedAt: rep.reportedAt });
    } else {
      reports.set(name, rep);
      toRead.push(name);
    }
  }
  if (toRead.length > 0) {
    const read = await runBmcOperation(store, toRead, { kind: 'info' }, {
      actor: o.actor,
      providers: o.providers,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.retries !== undefined ? { retries: o.retries } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    for (const r of read) {
      const rep = reports.get(r.node)!;
      const provider = r.provider ? { provider: r.provider } : {};
      if (!r.ok || !r.identity) {
        const error = { code: r.error?.code ?? 'internal', message: r.error?.message ?? 'no identity' };
        results.set(r.node, { node: r.node, status: 'unknown', reason: `BMC not read: ${error.message}`, checks: [], ...provider, error, reportedAt: rep.reportedAt });
        continue;
      }
      const verdict = reconcile(inventoryFromStored(rep.inventory), r.identity);
      results.set(r.node, { node: r.node, ...verdict, ...provider, bmc: r.identity, reportedAt: rep.reportedAt });
    }
  }
  const out: NodeReconcileResult[] = [];
  for (const name of names) {
    const r = results.get(name)!;
    const { flag } = await store.flags.recordReconcile(
      name,
      { status: r.status, reason: r.reason, checks: r.checks, trigger: o.trigger, ...(r.provider ? { provider: r.provider } : {}), ...(r.error ? { error: r.error } : {}) },
      { actor: o.actor },
    );
    out.push({ ...r, flag });
  }
  return out;
}

export interface AutoReconcilerLogger {
  warn(obj: object, msg?: string): void;
}

export interface AutoReconciler {
  /** Reconciles `node` soon, in the background; a node already waiting or running is not queued twice. Never throws. */
  schedule(node: string): void;
  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void>;
  /** Stops taking work and aborts BMC reads in progress. */
  stop(): void;
}

/**
 * Runs reconciliation after agents' inventory reports, off the gRPC call's
 * path: at most `concurrency` nodes at a time (default 4), each bounded by
 * the BMC operation's timeout; a failure is logged, never thrown (the report
 * was already stored and answered). A node with no BMC is skipped without an
 * event: there is nothing to compare it with.
 */
export function createAutoReconciler(o: Omit<ReconcileOptions, 'actor' | 'trigger' | 'signal'> & { log?: AutoReconcilerLogger; maxParallel?: number }): AutoReconciler {
  const waiting: string[] = [];
  const pending = new Set<string>();
  const again = new Set<string>();
  const stopping = new AbortController();
  let running = 0;
  let idleWaiters: (() => void)[] = [];
  const maxParallel = o.maxParallel ?? 4;

  const settle = (): void => {
    if (running === 0 && waiting.length === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  const runOne = async (node: string): Promise<void> => {
    try {
      const rec = await o.store.nodes.get(node);
      if (!rec?.bmc || stopping.signal.aborted) return;
      await reconcileNodes([node], { ...o, actor: `node:${node}`, trigger: 'report', signal: stopping.signal });
    } catch (e) {
      o.log?.warn({ node, err: e instanceof Error ? e.message : String(e) }, 'reconcile after the inventory report failed');
    }
  };

  const pump = (): void => {
    while (running < maxParallel && waiting.length > 0 && !stopping.signal.aborted) {
      const node = waiting.shift()!;
      running++;
      void runOne(node).finally(() => {
        running--;
        pending.delete(node);
        // A report that came in while this one ran: reconcile once more with it.
        if (again.delete(node)) enqueue(node);
        pump();
        settle();
      });
    }
  };

  const enqueue = (node: string): void => {
    if (stopping.signal.aborted) return;
    if (pending.has(node)) {
      if (!waiting.includes(node)) again.add(node);
      return;
    }
    pending.add(node);
    waiting.push(node);
  };

  return {
    schedule(node) {
      enqueue(node);
      pump();
    },
    idle() {
      if (running === 0 && waiting.length === 0) return Promise.resolve();
      return new Promise((r) => idleWaiters.push(r));
    },
    stop() {
      waiting.length = 0;
      stopping.abort(new FleetError('unavailable', 'not done: the server is stopping'));
      settle();
    },
  };
}

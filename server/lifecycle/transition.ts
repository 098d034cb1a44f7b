/**
 * Transitions (DESIGN §1, §3): every change of lifecycle state is `next()`
 * of the table, applied as a compare-and-set on (state, generation) with its
 * event row, the armed flag change the table asks for, and the revocation
 * of the run's tokens, in one transaction. A transition that lost the race
 * throws FleetError('conflict') and writes nothing.
 */
import { isFleetError } from '../../common/errors.js';
import type { NodeRecord, Store } from '../store/index.js';
import { E, type LifecycleEvent } from './states.js';
import { next, stateSpec } from './table.js';

/** Events after which a node has no outstanding install or enrolment token (docs/netboot.md, "Install tokens"). */
export const TOKEN_REVOKING_EVENTS: ReadonlySet<LifecycleEvent> = new Set<LifecycleEvent>([E.reinstall, E.cancel, E.fail, E.finish]);

export interface ApplyCtx {
  actor: string;
  cause: string;
  details?: Record<string, unknown>;
  /** Stagger: the state's timer starts then. */
  notBeforeMs?: number;
  /** Extra events written in the transition's transaction. */
  extraEvents?: { kind: string; details: Record<string, unknown> }[];
}

/** Whether e is the compare-and-set losing: the node moved meanwhile. */
export function isConflict(e: unknown): boolean {
  return isFleetError(e) && e.code === 'conflict';
}

/**
 * The deadline of a node entering `to` (ISO): its timeout counted from now,
 * or from the stagger slot when that is later; null for a resting state. Pure.
 */
export function deadlineFor(to: string, timeouts: Record<string, number>, nowMs: number, notBeforeMs?: number): string | null {
  const timeoutS = stateSpec(to)?.kind === 'transient' ? timeouts[to] : undefined;
  const base = notBeforeMs !== undefined && notBeforeMs > nowMs ? notBeforeMs : nowMs;
  return timeoutS !== undefined ? new Date(base + timeoutS * 1000).toISOString() : null;
}

/**
 * Applies (state, event) of the table to rec as a compare-and-set, in one
 * transaction. A `stay` transition writes nothing and returns rec.
 * @throws FleetError('state.invalid_transition') or FleetError('conflict'), nothing written.
 */
export async function applyTransition(
  store: Pick<Store, 'transaction'>,
  rec: NodeRecord,
  event: LifecycleEvent,
  ctx: ApplyCtx,
  clock: { nowMs: number; timeouts: Record<string, number> },
): Promise<NodeRecord> {
  const t = next(rec.state, event, rec.name);
  if (t.stay) return rec;
  const deadline = deadlineFor(t.to, clock.timeouts, clock.nowMs, ctx.notBeforeMs);
  // In the same write as the state: the store changes the flag (and writes its event) only when it differs.
  const armed = t.armed ? { to: t.armed === 'arm', cause: `lifecycle ${event}` } : undefined;
  return store.transaction(async (tx) => {
    const out = await tx.nodes.setState(rec.name, t.to, {
      expectedFrom: rec.state,
      expectedGeneration: rec.generation,
      actor: ctx.actor,
      cause: ctx.cause,
      details: { event, ...ctx.details },
      deadline,
      // rec is the node at rec.generation: the store need not read its interfaces and BMC again.
      known: rec,
      ...(armed ? { armed } : {}),
    });
    for (const x of ctx.extraEvents ?? []) await tx.events.append({ node: rec.name, kind: x.kind, actor: ctx.actor, cause: ctx.cause, details: x.details });
    // A run that ends or starts again leaves no token of an earlier run usable (install, enrolment).
    if (TOKEN_REVOKING_EVENTS.has(event)) await tx.tokens.revokeAll(rec.name, { actor: ctx.actor, cause: ctx.cause, reason: event });
    return out;
  });
}

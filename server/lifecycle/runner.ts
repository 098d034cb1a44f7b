/**
 * Running steps (DESIGN §3): on entering a state the conductor runs its
 * step (steps/) and applies the event the step returns, until a state waits.
 *
 * - A BMC step runs only under the node's store lock (sessions.ts), writes
 *   `lifecycle.step_started` before each attempt acts, so that after a crash
 *   recovery knows whether it may have acted, and is retried a bounded number
 *   of times where retry.ts allows; then the node fails with {step, reason}.
 * - A step's result is dropped when the node moved meanwhile (a cancel): its
 *   transition is a compare-and-set.
 * - Facts that arrived while a step ran, or while nobody listened, are
 *   replayed from the event log through eventForFact.
 */
import { exponentialDelay } from '../../common/backoff.js';
import { toFleetError } from '../../common/errors.js';
import { mayRetry } from '../bmc/retry.js';
import type { EventRecord, NodeRecord, Store } from '../store/index.js';
import { eventsAfter } from './history.js';
import { Halted, type SessionCtl } from './sessions.js';
import type { LifecycleSettings } from './settings.js';
import { eventForFact, FACT, FACT_KINDS } from './facts.js';
import { E, LIFECYCLE_EVENT_KINDS as K, type LifecycleEvent, type StepName } from './states.js';
import type { Steps } from './steps.js';
import { STEP_DEFS, type StepContext, type StepDef, type StepOutcome } from './steps/index.js';
import { stateSpec } from './table.js';
import { isConflict, type ApplyCtx } from './transition.js';
import { EVENT } from '../../common/events.js';

/** Most transitions one run of entry steps applies (a bound, far above the longest chain of the table). */
const MAX_CHAIN = 16;

export interface RunnerDeps {
  store: Store;
  steps: Steps;
  /** Actor of the conductor's own events and transitions. */
  actor: string;
  /** The settings in force, read at each decision (they change on apply). */
  settings: () => LifecycleSettings;
  /** Backoff sleeps between attempts (tests make them instant). */
  sleep: (ms: number) => Promise<void>;
  halted: () => boolean;
  /** The conductor's transition (transition.ts, plus what follows one). */
  apply: (rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx) => Promise<NodeRecord>;
}

export class StepRunner {
  /** What a step module gets. */
  readonly ctx: StepContext;

  constructor(private readonly d: RunnerDeps) {
    this.ctx = { store: d.store, steps: d.steps, append: (node, kind, details) => this.append(node, kind, details) };
  }

  /** Writes one of the conductor's lifecycle events; a halted conductor writes nothing more. */
  async append(node: string, kind: string, details: Record<string, unknown>): Promise<void> {
    if (this.d.halted()) throw new Halted();
    await this.d.store.events.append({ node, kind, actor: this.d.actor, details });
  }

  /** Runs the steps of the node's state and applies their events, until a state waits (bounded). */
  async runEntrySteps(ctl: SessionCtl, start: NodeRecord, firstAttempt = 1): Promise<NodeRecord> {
    let cur = start;
    let attempt = firstAttempt;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const step = stateSpec(cur.state)?.step;
      if (!step) return cur;
      const def = STEP_DEFS[step];
      // BMC steps run only under the node's store lock; without it, recovery (or another conductor's sweep) runs them.
      if (def.bmcAction !== undefined && !(await ctl.lock())) return cur;
      const out = await this.runStep(cur, def, attempt);
      attempt = 1;
      if (out.kind !== 'event') return cur;
      try {
        cur = await this.d.apply(cur, out.event, { actor: this.d.actor, cause: `step ${step}`, details: out.details });
      } catch (e) {
        if (isConflict(e)) return cur; // moved meanwhile (cancel): the step's result is dropped
        throw e;
      }
      const spec = stateSpec(cur.state);
      if (spec?.kind === 'transient' && !spec.step) {
        // A wait state reached by a step: facts that came while the step ran (e.g. a fast first boot
        // reported while the boot device was being set) were not awaited then; replay them now.
        const stepEntry = (await this.d.store.events.newest({ node: cur.name, kinds: [EVENT.stateChanged] }, 2))[1];
        if (stepEntry) return this.replay(ctl, cur, await eventsAfter(this.d.store, cur.name, stepEntry.id));
      }
    }
    return cur;
  }

  private async runStep(rec: NodeRecord, def: StepDef, firstAttempt: number): Promise<StepOutcome> {
    // A check of the store: one attempt, its errors are the session's.
    if (def.bmcAction === undefined) return def.run(this.ctx, rec, 1);
    return this.bmcStep(rec, def, firstAttempt);
  }

  /** A BMC step with bounded retries; `lifecycle.step_started` is written before each attempt acts. */
  private async bmcStep(rec: NodeRecord, def: StepDef, firstAttempt: number): Promise<StepOutcome> {
    const step: StepName = def.name;
    const max = 1 + (this.d.settings().retries[step] ?? 0);
    for (let attempt = Math.max(1, firstAttempt); attempt <= max; attempt++) {
      await this.append(rec.name, K.stepStarted, { step, attempt, state: rec.state });
      try {
        return await def.run(this.ctx, rec, attempt);
      } catch (e) {
        if (e instanceof Halted) throw e;
        const fe = toFleetError(e);
        const willRetry = mayRetry(def.bmcAction ?? 'power.cycle', fe) && attempt < max;
        await this.append(rec.name, K.stepFailed, { step, attempt, code: fe.code, reason: fe.message, willRetry });
        if (!willRetry) return { kind: 'event', event: E.fail, details: { step, reason: fe.message, attempts: attempt } };
        await this.d.sleep(exponentialDelay(attempt - 1, { initialMs: this.d.settings().retryDelayMs }));
        const fresh = await this.d.store.nodes.get(rec.name);
        if (!fresh || fresh.generation !== rec.generation) return { kind: 'superseded' };
      }
    }
    return { kind: 'superseded' };
  }

  /** Replays facts from the event log (oldest first) through eventForFact; bounded by the list. */
  async replay(ctl: SessionCtl, rec: NodeRecord, events: EventRecord[]): Promise<NodeRecord> {
    let cur = rec;
    for (const e of events) {
      if (!FACT_KINDS.includes(e.kind)) continue;
      const details = (e.details ?? {}) as Record<string, unknown>;
      const t = eventForFact(cur.state, e.kind, e.kind === FACT.agentBoot ? { ...details, isNewBoot: true } : details);
      if ('ignore' in t) continue;
      const spec = stateSpec(cur.state);
      try {
        cur = await this.d.apply(cur, t.event, {
          actor: this.d.actor,
          cause: `${e.kind} (replayed event ${e.id})`,
          details: t.details,
          ...(t.flag ? { extraEvents: [{ kind: K.loopSuspect, details: { source: e.kind, reason: t.flag.reason } }] } : {}),
        });
      } catch (err) {
        if (isConflict(err)) return cur;
        throw err;
      }
      if (spec?.state !== cur.state) cur = await this.runEntrySteps(ctl, cur);
    }
    return cur;
  }
}

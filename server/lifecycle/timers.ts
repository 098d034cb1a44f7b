/**
 * Timers (DESIGN §3, §6): the conductor's loop. Each tick, in one bounded
 * budget of launches:
 *
 * - stagger starts whose slot came (kept in memory; the slot is also in the
 *   reinstall's event, so recovery finds it after a restart);
 * - catch-ups: signals that found their node busy, replayed from the event
 *   log once it frees up (bounded tries);
 * - state deadlines: the store's `listDue`, each fired as the state's
 *   timeout event (a compare-and-set: a step still running elsewhere finds
 *   the node failed and drops its result);
 * - now and then, a sweep: transient nodes nobody works on (their
 *   conductor died) are recovered, a bounded batch, round robin.
 */
import type { NodeRecord, Store } from '../store/index.js';
import { eventsAfter, lastStateChange } from './history.js';
import type { StepRunner } from './runner.js';
import { BUSY, Halted, type Busy, type Pool, type Sessions } from './sessions.js';
import type { LifecycleSettings } from './settings.js';
import { isResting, S, TRANSIENT_STATES, type LifecycleEvent } from './states.js';
import { stateSpec } from './table.js';
import { isConflict, type ApplyCtx } from './transition.js';
import type { ConductorLogger } from './types.js';

/** How often a catch-up that finds its node busy is tried again before it is dropped. */
const MAX_CATCHUP_TRIES = 10;

/** A duration for a reason text: 90 s, 15 min, 2.5 h. Pure. */
export function seconds(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round((s / 3600) * 10) / 10} h`;
}

/** The reason a node failed by its state's timeout. Pure. */
export function timeoutReason(state: string, settings: LifecycleSettings, note = ''): string {
  const spec = stateSpec(state);
  const secs = settings.timeouts[state] ?? spec?.timeoutSeconds ?? 0;
  return `timed out after ${seconds(secs)} in ${state} waiting for ${spec?.waitsFor ?? 'nothing'}${note}`;
}

/**
 * The sweep's batch: candidates after the last one swept first, then from
 * the start again (round robin by name), at most `batch`. Pure.
 */
export function sweepBatch<T extends { name: string }>(candidates: readonly T[], after: string, batch: number): T[] {
  return [...candidates.filter((n) => n.name > after), ...candidates.filter((n) => n.name <= after)].slice(0, batch);
}

export interface TimersDeps {
  store: Store;
  sessions: Sessions;
  pool: Pool;
  runner: StepRunner;
  actor: string;
  now: () => number;
  halted: () => boolean;
  log: () => ConductorLogger;
  settings: () => LifecycleSettings;
  apply: (rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx) => Promise<NodeRecord>;
  /** Recovers a node the sweep found (recovery.ts). */
  sweepNode: (name: string) => Promise<unknown>;
  lockWaitMs: number;
  tickMs: number;
  dueBatch: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  sweepBatch: number;
}

export class Timers {
  /** Stagger starts: node → when, and the generation the reinstall left. */
  private readonly pending = new Map<string, { at: number; generation: number }>();
  /** Signals that found the node busy: replayed from the event log later. */
  private readonly catchups = new Map<string, { at: number; tries: number }>();
  /** Nodes with a session launched by the loop (not launched twice). */
  private readonly loopBusy = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking = false;
  private lastSweep = 0;
  private sweepAfter = '';

  constructor(private readonly d: TimersDeps) {}

  /** Number of stagger starts waiting in memory. */
  get pendingStarts(): number {
    return this.pending.size;
  }

  /** The node's step starts at `at` (ms), if it is still in pxe-armed at `generation` then. */
  keepSlot(name: string, at: number, generation: number): void {
    this.pending.set(name, { at, generation });
  }

  /** The node's stagger start is void (cancelled). */
  dropSlot(name: string): void {
    this.pending.delete(name);
  }

  /** Replay the node's facts as soon as it frees up (a signal found it busy). */
  catchUpLater(name: string): void {
    this.catchups.set(name, { at: this.d.now(), tries: 0 });
  }

  /** Runs the loop: a tick now, then every tickMs. */
  start(): void {
    this.running = true;
    this.lastSweep = this.d.now();
    this.schedule(0);
  }

  /** Stops the loop (work it launched goes on; the pool tracks it). */
  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Runs a tick soon (after a request queued work). */
  kick(): void {
    if (this.running && !this.ticking) this.schedule(0);
  }

  /** One pass of the timer loop (the loop calls it; tests call it with a pinned clock). */
  async tick(): Promise<void> {
    const { d } = this;
    if (d.halted()) return;
    const now = d.now();
    let budget = d.dueBatch;
    for (const [name, p] of this.pending) {
      if (budget <= 0) break;
      if (p.at > now || this.loopBusy.has(name)) continue;
      this.pending.delete(name);
      budget--;
      this.launch(name, () => this.startPending(name, p.generation));
    }
    for (const [name, c] of this.catchups) {
      if (budget <= 0) break;
      if (c.at > now || this.loopBusy.has(name)) continue;
      this.catchups.delete(name);
      budget--;
      this.launch(name, async () => {
        const r = await this.catchUp(name);
        if (r === BUSY && c.tries + 1 < MAX_CATCHUP_TRIES) this.catchups.set(name, { at: d.now() + d.lockWaitMs, tries: c.tries + 1 });
      });
    }
    const due = await d.store.nodes.listDue(new Date(now));
    for (const n of due) {
      if (budget <= 0) break;
      if (this.loopBusy.has(n.name) || d.sessions.has(n.name)) continue;
      budget--;
      this.launch(n.name, async () => {
        // Compare-and-set only: a step still running elsewhere finds the node failed and drops its result.
        await d.sessions.run(n.name, 0, false, async () => {
          const rec = await d.store.nodes.get(n.name);
          if (rec && rec.stateDeadline !== null && Date.parse(rec.stateDeadline) <= d.now()) await this.fireTimeout(rec, '');
        });
      });
    }
    if (d.sweepIntervalMs > 0 && now - this.lastSweep >= d.sweepIntervalMs) {
      this.lastSweep = now;
      await this.sweep(now);
    }
  }

  /** Fails the node by its state's timeout event; a node that moved meanwhile is left as it is. */
  async fireTimeout(rec: NodeRecord, note: string): Promise<NodeRecord> {
    const spec = stateSpec(rec.state);
    if (!spec?.onTimeout) return rec;
    const reason = timeoutReason(rec.state, this.d.settings(), note);
    try {
      return await this.d.apply(rec, spec.onTimeout, { actor: this.d.actor, cause: 'timeout', details: { step: spec.step ?? rec.state, reason, timeout: true } });
    } catch (e) {
      if (isConflict(e)) return rec;
      throw e;
    }
  }

  /** Recovers transient nodes nobody works on (their conductor died): a bounded batch, round robin. */
  private async sweep(now: number): Promise<void> {
    const { d } = this;
    const nodes = await d.store.nodes.list({ states: [...TRANSIENT_STATES] });
    const candidates = nodes.filter(
      (n) => now - Date.parse(n.stateSince) >= d.sweepMinAgeMs && !d.sessions.has(n.name) && !this.pending.has(n.name) && !this.loopBusy.has(n.name),
    );
    const batch = sweepBatch(candidates, this.sweepAfter, d.sweepBatch);
    for (const n of batch) this.launch(n.name, () => d.sweepNode(n.name));
    this.sweepAfter = batch.at(-1)?.name ?? '';
  }

  /** A stagger slot came: run the arm-pxe step, unless the node moved on meanwhile. */
  private async startPending(name: string, generation: number): Promise<void> {
    const { d } = this;
    const r = await d.sessions.run(name, 0, true, async (ctl) => {
      const rec = await d.store.nodes.get(name);
      // Someone else started it, or the node moved on (cancel): nothing to do.
      if (!rec || rec.state !== S.pxeArmed || rec.generation !== generation) return;
      await d.runner.runEntrySteps(ctl, rec);
    });
    if (r === BUSY) this.pending.set(name, { at: d.now() + Math.min(d.lockWaitMs, 1000), generation });
  }

  /** Replays the node's facts since its last state change (a signal that found it busy). */
  private async catchUp(name: string): Promise<void | Busy> {
    const { d } = this;
    return d.sessions.run(name, 0, true, async (ctl) => {
      const rec = await d.store.nodes.get(name);
      if (!rec || isResting(rec.state)) return;
      const entry = await lastStateChange(d.store, name);
      await d.runner.replay(ctl, rec, await eventsAfter(d.store, name, entry?.id ?? 0));
    });
  }

  private schedule(ms: number): void {
    if (!this.running || this.d.halted()) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.loop(), ms);
    this.timer.unref?.();
  }

  private async loop(): Promise<void> {
    this.timer = undefined;
    if (!this.running) return;
    this.ticking = true;
    try {
      await this.tick();
    } catch (e) {
      if (!(e instanceof Halted)) this.d.log().error({ err: e }, 'lifecycle timer loop failed');
    } finally {
      this.ticking = false;
    }
    this.schedule(this.d.tickMs);
  }

  /** Runs fn in the pool, marking the node busy for the loop until it ends. */
  private launch(name: string, fn: () => Promise<unknown>): void {
    this.loopBusy.add(name);
    const p = this.d.pool.limited(fn).finally(() => this.loopBusy.delete(name));
    this.d.pool.track(p);
  }
}


/**
 * Requests (DESIGN §1, §3): what operators and the outside world ask of
 * the conductor. Operators reinstall, cancel, or fire a table event; the
 * boot endpoints and the agent service report facts (signals). Each is a
 * compare-and-set transition in the node's session; the steps of the new
 * state run on in the background, in the same session.
 *
 * `cancel` is the one request applied without waiting for the node's
 * session: it is a compare-and-set to a resting state, and a step finishing
 * afterwards finds the node moved and drops its result.
 */
import { FleetError, toFleetError } from '../../common/errors.js';
import { nodeSpecOf, type NodeRecord, type Store } from '../store/index.js';
import type { StepRunner } from './runner.js';
import { BUSY, Halted, type Pool, type SessionCtl, type Sessions } from './sessions.js';
import { eventForFact, ignoredEverywhere, isFactKind } from './facts.js';
import { E, LIFECYCLE_EVENT_KINDS as K, type LifecycleEvent } from './states.js';
import { hasBmcStep } from './steps/index.js';
import { manualPowerNote } from './steps/manual.js';
import { next, tryNext } from './table.js';
import type { Timers } from './timers.js';
import { isConflict, type ApplyCtx } from './transition.js';
import type { ConductorLogger, NodeActionResult, ReinstallOptions, SignalResult } from './types.js';

/** How often a request re-reads a node whose compare-and-set lost the race before it answers. */
const MAX_CONFLICT_RETRIES = 3;

export interface RequestsDeps {
  store: Store;
  /** Actor of the conductor's own transitions (signals; fire without one). */
  actor: string;
  /** How long a signal or request waits for a busy node. */
  lockWaitMs: number;
  now: () => number;
  log: () => ConductorLogger;
  sessions: Sessions;
  pool: Pool;
  runner: StepRunner;
  timers: Timers;
  apply: (rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx) => Promise<NodeRecord>;
  /** Whether the node's power is manual (no BMC): a reinstall tells the operator to PXE-boot it. */
  powerIsManual: (name: string) => Promise<boolean>;
  /** Best effort after a cancel: boot the disk. */
  cleanupBootDevice: (name: string, actor: string) => Promise<void>;
}

export class Requests {
  constructor(private readonly d: RequestsDeps) {}

  /**
   * Starts a reinstall of each node (natural order): pets refused without
   * force, nodes in a transient state refused (state.invalid_transition).
   * Returns once every node is in pxe-armed or refused; the steps run in
   * the background, staggered.
   */
  async reinstall(names: string[], opts: ReinstallOptions): Promise<NodeActionResult[]> {
    if (opts.stagger && (!Number.isInteger(opts.stagger.count) || opts.stagger.count < 1 || !(opts.stagger.intervalMs >= 0))) {
      throw new FleetError('request.invalid', 'stagger needs a count of at least 1 and an interval of 0 or more');
    }
    if (opts.profile !== undefined && !(await this.d.store.profiles.get(opts.profile))) {
      throw new FleetError('request.invalid', `no profile named '${opts.profile}'`, { profile: opts.profile });
    }
    const start = this.d.now();
    const results: NodeActionResult[] = [];
    let accepted = 0;
    for (const name of names) {
      const slot = opts.stagger ? Math.floor(accepted / opts.stagger.count) * opts.stagger.intervalMs : 0;
      const notBeforeMs = start + slot;
      try {
        // No store lock: the reinstall is a compare-and-set; its step runs later, under the lock (startPending).
        const r = await this.d.sessions.run(name, this.d.lockWaitMs, false, async () => {
          const rec = await this.d.store.nodes.get(name);
          if (!rec) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
          if (rec.pet && !opts.force) throw new FleetError('auth.forbidden', `${name} is a pet: reinstall needs --force`, { node: name });
          next(rec.state, E.reinstall, name);
          const cur = await this.d.store.transaction(async (tx) => {
            let base = rec;
            if (opts.profile !== undefined && opts.profile !== rec.profile) {
              base = (await tx.nodes.upsert({ ...nodeSpecOf(rec), profile: opts.profile }, { actor: opts.actor, cause: 'reinstall --profile' })).node;
            }
            return this.d.apply(base, E.reinstall, {
              actor: opts.actor,
              cause: 'reinstall',
              notBeforeMs,
              details: {
                profile: base.profile,
                ...(slot > 0 ? { notBefore: new Date(notBeforeMs).toISOString() } : {}),
                ...(rec.pet ? { force: true } : {}),
              },
            });
          });
          this.d.timers.keepSlot(name, notBeforeMs, cur.generation);
          const manual = await this.d.powerIsManual(name);
          return {
            node: name,
            ok: true,
            state: cur.state,
            from: rec.state,
            ...(slot > 0 ? { notBefore: new Date(notBeforeMs).toISOString() } : {}),
            // No BMC: the steps send nothing; a person PXE-boots the node (steps/manual.ts).
            ...(manual ? { note: manualPowerNote(name) } : {}),
          };
        });
        if (r === BUSY) results.push({ node: name, ok: false, error: { code: 'conflict', message: `${name} is busy (another conductor works on it); try again` } });
        else {
          results.push(r);
          accepted++;
        }
      } catch (e) {
        const fe = toFleetError(e);
        results.push({ node: name, ok: false, error: { code: fe.code, message: fe.message } });
      }
    }
    this.d.timers.kick();
    return results;
  }

  /**
   * Adopts an installed machine as `name` (fleet adopt): a compare-and-set
   * into `adopting` (from enrolled, ready, failed, or adopting again). The
   * caller issues the adoption token after it; the node's agent enrolling
   * with it moves the node on (facts.ts). No step, no BMC.
   * @throws FleetError: node.not_found, state.invalid_transition, conflict (busy).
   */
  async adopt(name: string, opts: { actor: string }): Promise<NodeActionResult> {
    const r = await this.d.sessions.run(name, this.d.lockWaitMs, false, async () => {
      const rec = await this.d.store.nodes.get(name);
      if (!rec) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
      next(rec.state, E.adopt, name);
      const cur = await this.d.apply(rec, E.adopt, { actor: opts.actor, cause: 'adopt', details: {} });
      return { node: name, ok: true, state: cur.state, from: rec.state } satisfies NodeActionResult;
    });
    if (r === BUSY) throw new FleetError('conflict', `${name} is busy (another conductor works on it); try again`, { node: name });
    this.d.timers.kick();
    return r;
  }

  /**
   * Cancels each node's lifecycle: back to `enrolled`, disarmed, with a
   * best-effort "boot from disk" through the BMC in the background.
   * Applied without waiting for the node's lock (see the file comment).
   */
  async cancel(names: string[], opts: { actor: string }): Promise<NodeActionResult[]> {
    const results: NodeActionResult[] = [];
    for (const name of names) {
      try {
        let done: NodeActionResult | undefined;
        for (let i = 0; i < MAX_CONFLICT_RETRIES && !done; i++) {
          const rec = await this.d.store.nodes.get(name);
          if (!rec) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
          next(rec.state, E.cancel, name);
          try {
            const cur = await this.d.apply(rec, E.cancel, { actor: opts.actor, cause: 'cancel', details: { cancelledIn: rec.state } });
            done = { node: name, ok: true, state: cur.state, from: rec.state };
          } catch (e) {
            if (!isConflict(e)) throw e;
          }
        }
        if (!done) throw new FleetError('conflict', `${name} kept changing; try again`, { node: name });
        this.d.timers.dropSlot(name);
        this.d.pool.track(this.d.pool.limited(() => this.d.cleanupBootDevice(name, opts.actor)));
        results.push(done);
      } catch (e) {
        const fe = toFleetError(e);
        results.push({ node: name, ok: false, error: { code: fe.code, message: fe.message } });
      }
    }
    return results;
  }

  /**
   * Applies a table event to a node directly (operators' tools, tests).
   * Resolves after the transition; the steps of the new state run in the
   * background. @throws FleetError('state.invalid_transition'), nothing written.
   */
  async fire(name: string, event: LifecycleEvent, opts: { actor?: string; cause?: string; details?: Record<string, unknown> } = {}): Promise<NodeRecord> {
    if (event === E.cancel) {
      const [r] = await this.cancel([name], { actor: opts.actor ?? this.d.actor });
      if (!r?.ok) throw new FleetError((r?.error?.code as 'conflict') ?? 'internal', r?.error?.message ?? 'cancel failed');
      return this.d.store.nodes.require(name);
    }
    return this.firstThen(name, async (ctl) => {
      const rec = await this.d.store.nodes.require(name);
      const to = next(rec.state, event, name).to;
      if (hasBmcStep(to) && !(await ctl.lock())) throw BUSY;
      const cur = await this.d.apply(rec, event, { actor: opts.actor ?? this.d.actor, cause: opts.cause ?? `fire ${event}`, details: opts.details ?? {} });
      return { value: cur, then: cur };
    });
  }

  // ------------------------------------------------------------- facts

  /**
   * A fact about a node (a boot endpoint's or the agent service's event
   * kind, with that event's details), after its event row was written.
   * Resolves once the resulting transition is applied (the steps it starts
   * run in the background) or the fact is ignored. A node busy for longer
   * than lockWaitMs answers 'busy'; the fact is replayed from the event log
   * when the node frees up.
   */
  async signal(name: string, kind: string, details: Record<string, unknown> = {}): Promise<SignalResult> {
    if (!isFactKind(kind)) return { node: name, status: 'ignored', reason: `unknown signal ${kind}` };
    if (ignoredEverywhere(kind)) {
      const t = eventForFact('', kind, details); // the table ignores it in every state: no read needed
      if ('ignore' in t) return { node: name, status: 'ignored', reason: t.ignore, ...(t.flag ? { flag: t.flag.name } : {}) };
    }
    try {
      return await this.firstThen(name, async (ctl) => {
        for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
          const rec = await this.d.store.nodes.get(name);
          if (!rec) return { value: { node: name, status: 'unknown-node' } as SignalResult };
          const t = eventForFact(rec.state, kind, details);
          if ('ignore' in t) return { value: { node: name, status: 'ignored', reason: t.ignore, ...(t.flag ? { flag: t.flag.name } : {}) } as SignalResult };
          // Entering a state with a BMC step: take the store lock first, so the step runs under it.
          const to = tryNext(rec.state, t.event)?.to;
          if (to !== undefined && hasBmcStep(to) && !(await ctl.lock())) throw BUSY;
          try {
            const cur = await this.d.apply(rec, t.event, {
              actor: this.d.actor,
              cause: kind,
              details: t.details,
              ...(t.flag ? { extraEvents: [{ kind: K.loopSuspect, details: { source: kind, reason: t.flag.reason } }] } : {}),
            });
            return { value: { node: name, status: 'applied', event: t.event, from: rec.state, to: cur.state, ...(t.flag ? { flag: t.flag.name } : {}) } as SignalResult, then: cur };
          } catch (e) {
            if (!isConflict(e)) throw e;
          }
        }
        return { value: { node: name, status: 'busy', reason: 'the node kept changing' } as SignalResult };
      });
    } catch (e) {
      if (e === BUSY) {
        this.d.timers.catchUpLater(name);
        return { node: name, status: 'busy', reason: 'the node is busy; the signal is replayed from the event log when it frees up' };
      }
      throw e;
    }
  }

  /**
   * Runs `first` in a session; resolves with its value as soon as it has
   * one, while the entry steps of `then` (if any) continue in the same
   * session in the background. Rejects with BUSY when the node stays busy.
   */
  private firstThen<T>(name: string, first: (ctl: SessionCtl) => Promise<{ value: T; then?: NodeRecord }>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const p = this.d.sessions.run(name, this.d.lockWaitMs, false, async (ctl) => {
        const r = await first(ctl);
        settled = true;
        resolve(r.value);
        if (r.then) await this.d.runner.runEntrySteps(ctl, r.then);
      }).then(
        (r) => {
          if (r === BUSY && !settled) {
            settled = true;
            reject(BUSY);
          }
        },
        (e: unknown) => {
          if (!settled) {
            settled = true;
            reject(e);
          } else if (!(e instanceof Halted)) this.d.log().error({ err: e, node: name }, 'lifecycle steps failed');
        },
      );
      this.d.pool.track(p);
    });
  }
}

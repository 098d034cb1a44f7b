/**
 * The conductor (DESIGN §1, §3, §6): the only writer of lifecycle state.
 *
 * - Every transition is `next()` of the table, applied as a compare-and-set
 *   on (state, generation) with its event row — and the armed flag change
 *   the table asks for — in one transaction.
 * - Work on a node runs in a *session*: in-process queue per node, then the
 *   node's leased lock in the store (renewed while held), so two conductors
 *   on one database never run a node's steps at once.
 * - Steps (BMC work through the injected `Steps`, or checks of the store)
 *   run on entering a state and return events; a failed step is retried a
 *   bounded number of times, then the node fails with {step, reason}.
 * - Timers are the store's state deadlines, polled by the timer loop
 *   (`listDue`, bounded batches); stagger slots are in the reinstall event.
 * - A BMC step writes `lifecycle.step_started` before it acts, so after a
 *   crash recovery knows whether it may have acted: an interrupted power
 *   cycle is never repeated — the power state is read instead.
 * - `cancel` is the one event applied without waiting for the lock: it is a
 *   compare-and-set to a resting state, and a step finishing afterwards
 *   finds the node moved and drops its result.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { exponentialDelay } from '../../common/backoff.js';
import { FleetError, isFleetError, toFleetError } from '../../common/errors.js';
import { nodeSpecOf, type EventRecord, type NodeRecord, type Store } from '../store/index.js';
import { resolveLifecycleSettings, type LifecycleSettings } from './settings.js';
import { eventForSignal, SIGNAL, SIGNAL_KINDS, isSignalKind, applyFailureReason } from './signals.js';
import { mayRetry, provedNotRun, TRANSIENT_ERRORS, type BmcAction } from '../bmc/retry.js';
import type { Steps } from './steps.js';
import { E, LIFECYCLE_EVENT_KINDS as K, S, STEP, TRANSIENT_STATES, isResting, type LifecycleEvent, type StepName } from './states.js';
import { EVENT } from '../../common/events.js';
import { next, stateSpec, tryNext } from './table.js';

/** Events after which a node has no outstanding install or enrolment token (docs/netboot.md, "Install tokens"). */
export const TOKEN_REVOKING_EVENTS: ReadonlySet<LifecycleEvent> = new Set<LifecycleEvent>([E.reinstall, E.cancel, E.fail, E.finish]);

export interface ConductorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ConductorOptions {
  store: Store;
  steps: Steps;
  /** Lock owner id; unique per conductor. Default host:pid:random. */
  owner?: string;
  /** Timeouts and retries (fleet.yaml lifecycle:); defaults from the table. */
  settings?: Partial<LifecycleSettings>;
  /** Clock for deadlines and stagger slots (use the store's clock). Default: the system clock. */
  clock?: () => Date;
  log?: ConductorLogger;
  /** Actor of the conductor's own transitions (steps, timeouts, signals). Default 'conductor'. */
  actor?: string;
  /** Lease of a node lock; renewed every third of it while held. Default 60 s. */
  lockTtlMs?: number;
  /** How long a signal or request waits for a busy node. Default 5 s. */
  lockWaitMs?: number;
  /** Timer loop period. Default 1 s. */
  tickMs?: number;
  /** Most timeouts and stagger starts launched per tick. Default 200. */
  dueBatch?: number;
  /** Most sessions launched by the timer loop running at once. Default 64. */
  maxConcurrent?: number;
  /** How often transient nodes nobody works on are recovered (another server died). Default 60 s; 0: never. */
  sweepIntervalMs?: number;
  /** Only nodes this long in their state are swept. Default 60 s. */
  sweepMinAgeMs?: number;
  /** Most nodes recovered per sweep. Default 100. */
  sweepBatch?: number;
  /** Backoff sleeps between step attempts (tests make them instant). */
  sleep?: (ms: number) => Promise<void>;
}

export interface NodeActionResult {
  node: string;
  ok: boolean;
  /** State after the action. */
  state?: string;
  from?: string;
  /** Stagger: the step starts no earlier than this (ISO). */
  notBefore?: string;
  error?: { code: string; message: string };
}

export interface SignalResult {
  node: string;
  status: 'applied' | 'ignored' | 'busy' | 'unknown-node';
  event?: LifecycleEvent;
  from?: string;
  to?: string;
  reason?: string;
  flag?: string;
}

export interface RecoveryReport {
  /** Transient nodes examined. */
  nodes: number;
  /** Resting nodes found armed and disarmed. */
  disarmed: number;
  /** Count per action taken (e.g. 'waiting', 'step rerun', 'power read: on, not repeated'). */
  actions: Record<string, number>;
  /** Nodes skipped because another live conductor holds their lock. */
  skipped: number;
}

export interface ReinstallOptions {
  actor: string;
  /** Pets are refused without it. */
  force?: boolean;
  /** Install this profile (the node's profile is changed in the store; fleet.yaml should follow). */
  profile?: string;
  /** At most `count` nodes start every `intervalMs`. */
  stagger?: { count: number; intervalMs: number };
}

const BUSY = Symbol('busy');
type Busy = typeof BUSY;
const MAX_CHAIN = 16;
const MAX_CONFLICT_RETRIES = 3;
const MAX_CATCHUP_TRIES = 10;
const BMC_STEPS: ReadonlySet<StepName> = new Set<StepName>([STEP.armPxe, STEP.powerCycle, STEP.flipToDisk]);

interface ApplyCtx {
  actor: string;
  cause: string;
  details?: Record<string, unknown>;
  /** Stagger: the state's timer starts then. */
  notBeforeMs?: number;
  /** Extra events written in the transition's transaction. */
  extraEvents?: { kind: string; details: Record<string, unknown> }[];
}

interface SessionCtl {
  /** Takes the node's store lock (waiting like the session); false when another conductor holds it. */
  lock(): Promise<boolean>;
}

/**
 * Whether entering `state` runs a BMC step, which needs the node's store
 * lock. The other steps only read the store: running one twice is harmless
 * (the compare-and-set of its transition decides).
 */
function hasBmcStep(state: string): boolean {
  const step = stateSpec(state)?.step;
  return step !== undefined && BMC_STEPS.has(step);
}

type StepOutcome = { kind: 'event'; event: LifecycleEvent; details: Record<string, unknown> } | { kind: 'wait' } | { kind: 'superseded' };

const silent: ConductorLogger = { info() {}, warn() {}, error() {} };

function isConflict(e: unknown): boolean {
  return isFleetError(e) && e.code === 'conflict';
}

class Halted extends Error {
  constructor() {
    super('conductor halted');
  }
}

function seconds(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round((s / 3600) * 10) / 10} h`;
}

/** What each BMC step does, for retry.ts's rule (the one rule the fan-out and the registry use too). */
const STEP_ACTION: Partial<Record<StepName, BmcAction>> = {
  [STEP.armPxe]: 'bootdev.set',
  [STEP.powerCycle]: 'power.cycle',
  [STEP.flipToDisk]: 'bootdev.set',
};

export class Conductor {
  readonly owner: string;
  /** Replaced as a whole by setSettings; every decision reads it through the getter, never a copy. */
  private current: LifecycleSettings;
  private readonly store: Store;
  private readonly steps: Steps;
  private readonly clock: () => Date;
  private log: ConductorLogger;
  private readonly actor: string;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly tickMs: number;
  private readonly dueBatch: number;
  private readonly maxConcurrent: number;
  private readonly sweepIntervalMs: number;
  private readonly sweepMinAgeMs: number;
  private readonly sweepBatch: number;
  private readonly sleep: (ms: number) => Promise<void>;

  /** Tail of each node's in-process session queue. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Stagger starts: node → when, and the generation the reinstall left. */
  private readonly pending = new Map<string, { at: number; generation: number }>();
  /** Signals that found the node busy: replayed from the event log later. */
  private readonly catchups = new Map<string, { at: number; tries: number }>();
  /** Nodes with a session launched by the loop (not launched twice). */
  private readonly loopBusy = new Set<string>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking = false;
  private halted = false;
  private lastSweep = 0;
  private sweepAfter = '';

  /** Timeouts and retries in force (fleet.yaml `lifecycle:`, defaults filled in). */
  get settings(): LifecycleSettings {
    return this.current;
  }

  /**
   * New settings from an apply while running: they take effect at once for
   * every later decision (the next attempt of a step, the deadline of the
   * next state); deadlines already set keep the timeout they were set with.
   */
  setSettings(settings: Partial<LifecycleSettings> | undefined): void {
    this.current = resolveLifecycleSettings(settings);
  }

  constructor(opts: ConductorOptions) {
    this.store = opts.store;
    this.steps = opts.steps;
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.current = resolveLifecycleSettings(opts.settings);
    this.clock = opts.clock ?? (() => new Date());
    this.log = opts.log ?? silent;
    this.actor = opts.actor ?? 'conductor';
    this.lockTtlMs = opts.lockTtlMs ?? 60_000;
    this.lockWaitMs = opts.lockWaitMs ?? 5_000;
    this.tickMs = opts.tickMs ?? 1_000;
    this.dueBatch = opts.dueBatch ?? 200;
    this.maxConcurrent = opts.maxConcurrent ?? 64;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 60_000;
    this.sweepMinAgeMs = opts.sweepMinAgeMs ?? 60_000;
    this.sweepBatch = opts.sweepBatch ?? 100;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  // ------------------------------------------------------------------ life

  /** Recovers every node (see recover()), then runs the timer loop. */
  async start(): Promise<RecoveryReport> {
    if (this.halted) throw new FleetError('internal', 'this conductor was halted; create a new one');
    const report = await this.recover();
    this.running = true;
    this.lastSweep = this.now().getTime();
    this.schedule(0);
    return report;
  }

  /** Stops the timer loop, waits for work in flight, releases this conductor's locks. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.idle();
    if (!this.halted) await this.store.locks.releaseAll(this.owner);
  }

  /**
   * Simulates a crash (tests, simulator): stops at once, keeps its locks
   * until their leases expire, and writes nothing more.
   */
  halt(): void {
    this.halted = true;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Logs from now on to `log` (e.g. the fastify app's pino logger, which exists only after the conductor). */
  setLogger(log: ConductorLogger): void {
    this.log = log;
  }

  /** Resolves when no session of this conductor is in flight. */
  async idle(): Promise<void> {
    for (let i = 0; i < 10_000 && this.inflight.size > 0; i++) await Promise.allSettled([...this.inflight]);
  }

  /** Number of stagger starts waiting in memory. */
  get pendingStarts(): number {
    return this.pending.size;
  }

  // ------------------------------------------------------------ requests

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
    if (opts.profile !== undefined && !(await this.store.profiles.get(opts.profile))) {
      throw new FleetError('request.invalid', `no profile named '${opts.profile}'`, { profile: opts.profile });
    }
    const start = this.now().getTime();
    const results: NodeActionResult[] = [];
    let accepted = 0;
    for (const name of names) {
      const slot = opts.stagger ? Math.floor(accepted / opts.stagger.count) * opts.stagger.intervalMs : 0;
      const notBeforeMs = start + slot;
      try {
        // No store lock: the reinstall is a compare-and-set; its step runs later, under the lock (startPending).
        const r = await this.session(name, this.lockWaitMs, false, async () => {
          const rec = await this.store.nodes.get(name);
          if (!rec) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
          if (rec.pet && !opts.force) throw new FleetError('auth.forbidden', `${name} is a pet: reinstall needs --force`, { node: name });
          next(rec.state, E.reinstall, name);
          const cur = await this.store.transaction(async (tx) => {
            let base = rec;
            if (opts.profile !== undefined && opts.profile !== rec.profile) {
              base = (await tx.nodes.upsert({ ...nodeSpecOf(rec), profile: opts.profile }, { actor: opts.actor, cause: 'reinstall --profile' })).node;
            }
            return this.apply(base, E.reinstall, {
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
          this.pending.set(name, { at: notBeforeMs, generation: cur.generation });
          return { node: name, ok: true, state: cur.state, from: rec.state, ...(slot > 0 ? { notBefore: new Date(notBeforeMs).toISOString() } : {}) };
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
    this.kick();
    return results;
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
          const rec = await this.store.nodes.get(name);
          if (!rec) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
          next(rec.state, E.cancel, name);
          try {
            const cur = await this.apply(rec, E.cancel, { actor: opts.actor, cause: 'cancel', details: { cancelledIn: rec.state } });
            done = { node: name, ok: true, state: cur.state, from: rec.state };
          } catch (e) {
            if (!isConflict(e)) throw e;
          }
        }
        if (!done) throw new FleetError('conflict', `${name} kept changing; try again`, { node: name });
        this.pending.delete(name);
        this.track(this.limited(() => this.cleanupBootDevice(name, opts.actor)));
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
      const [r] = await this.cancel([name], { actor: opts.actor ?? this.actor });
      if (!r?.ok) throw new FleetError((r?.error?.code as 'conflict') ?? 'internal', r?.error?.message ?? 'cancel failed');
      return this.store.nodes.require(name);
    }
    return this.firstThen(name, async (ctl) => {
      const rec = await this.store.nodes.require(name);
      const to = next(rec.state, event, name).to;
      if (hasBmcStep(to) && !(await ctl.lock())) throw BUSY;
      const cur = await this.apply(rec, event, { actor: opts.actor ?? this.actor, cause: opts.cause ?? `fire ${event}`, details: opts.details ?? {} });
      return { value: cur, then: cur };
    });
  }

  // ------------------------------------------------------------- signals

  /**
   * A fact about a node (a boot endpoint's or the agent service's event
   * kind, with that event's details), after its event row was written.
   * Resolves once the resulting transition is applied (the steps it starts
   * run in the background) or the fact is ignored. A node busy for longer
   * than lockWaitMs answers 'busy'; the fact is replayed from the event log
   * when the node frees up.
   */
  async signal(name: string, kind: string, details: Record<string, unknown> = {}): Promise<SignalResult> {
    if (!isSignalKind(kind)) return { node: name, status: 'ignored', reason: `unknown signal ${kind}` };
    if (kind === SIGNAL.agentEnrolled || kind === SIGNAL.loopSuspect) {
      const t = eventForSignal('', kind, details); // ignored in every state: no read needed
      if ('ignore' in t) return { node: name, status: 'ignored', reason: t.ignore, ...(t.flag ? { flag: t.flag.name } : {}) };
    }
    try {
      return await this.firstThen(name, async (ctl) => {
        for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
          const rec = await this.store.nodes.get(name);
          if (!rec) return { value: { node: name, status: 'unknown-node' } as SignalResult };
          const t = eventForSignal(rec.state, kind, details);
          if ('ignore' in t) return { value: { node: name, status: 'ignored', reason: t.ignore, ...(t.flag ? { flag: t.flag.name } : {}) } as SignalResult };
          // Entering a state with a BMC step: take the store lock first, so the step runs under it.
          const to = tryNext(rec.state, t.event)?.to;
          if (to !== undefined && hasBmcStep(to) && !(await ctl.lock())) throw BUSY;
          try {
            const cur = await this.apply(rec, t.event, {
              actor: this.actor,
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
        this.catchups.set(name, { at: this.now().getTime(), tries: 0 });
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
      const p = this.session(name, this.lockWaitMs, false, async (ctl) => {
        const r = await first(ctl);
        settled = true;
        resolve(r.value);
        if (r.then) await this.runEntrySteps(ctl, r.then);
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
          } else if (!(e instanceof Halted)) this.log.error({ err: e, node: name }, 'lifecycle steps failed');
        },
      );
      this.track(p);
    });
  }

  // ------------------------------------------------------------ recovery

  /**
   * Start-up recovery: every resting node found armed is disarmed; every
   * node in a transient state is examined under its lock (nodes another
   * live conductor holds are skipped): a passed deadline fails it; a step
   * that never started starts; an interrupted idempotent step (PXE
   * override, boot device) runs again; an interrupted power cycle is never
   * repeated — the power is read: off → powered on, on → the cycle may have
   * happened, the node waits for its netboot until the deadline, unreadable
   * → failed; facts that arrived while nobody listened are replayed from the
   * event log. Each examined node gets a lifecycle.recovered event.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { nodes: 0, disarmed: 0, actions: {}, skipped: 0 };
    const nodes = await this.store.nodes.list();
    const work: Promise<void>[] = [];
    for (const n of nodes) {
      if (isResting(n.state)) {
        if (n.armed) {
          const r = await this.session(n.name, 0, true, async () => {
            const rec = await this.store.nodes.get(n.name);
            if (rec && isResting(rec.state) && rec.armed) {
              await this.store.nodes.setArmed(n.name, false, { actor: this.actor, cause: `recovery: ${rec.state} node was still armed` });
              return true;
            }
            return false;
          });
          if (r === true) report.disarmed++;
        }
        continue;
      }
      if (!stateSpec(n.state)) continue;
      report.nodes++;
      work.push(
        this.limited(() => this.recoverNode(n.name, 'startup')).then((action) => {
          if (action === BUSY) report.skipped++;
          else if (action !== undefined) report.actions[action] = (report.actions[action] ?? 0) + 1;
        }),
      );
    }
    await Promise.all(work);
    await this.idle();
    this.log.info({ ...report }, 'lifecycle recovery done');
    return report;
  }

  /** Recovers one node in a transient state (see recover()). Returns what it did. */
  async recoverNode(name: string, why: 'startup' | 'sweep' = 'startup'): Promise<string | Busy> {
    return this.session(name, 0, true, async (ctl) => {
      const rec = await this.store.nodes.get(name);
      if (!rec) return 'gone';
      const spec = stateSpec(rec.state);
      if (!spec || spec.kind !== 'transient') return 'resting';
      const now = this.now().getTime();
      const entry = await this.lastStateChange(name);
      const since = await this.eventsAfter(name, entry?.id ?? 0);
      const step = spec.step;
      const record = async (action: string, extra: Record<string, unknown> = {}): Promise<string> => {
        // A sweep is quiet unless it changed something: re-checking the store (first-boot, configuring) is not news.
        const quiet = why === 'sweep' && extra.now === undefined && (action === 'waiting' || (action === 'step rerun' && !(step && BMC_STEPS.has(step))));
        if (!quiet) {
          await this.append(name, K.recovered, { state: rec.state, action, why, ...extra });
        }
        return action;
      };

      if (rec.stateDeadline !== null && Date.parse(rec.stateDeadline) <= now) {
        await this.fireTimeout(rec, ' (found at recovery)');
        return record('timed out');
      }

      let cur = rec;
      let action = 'waiting';
      if (step) {
        const mine = since.filter((e) => (e.details as { step?: string } | null)?.step === step);
        const started = mine.filter((e) => e.kind === K.stepStarted);
        const failed = mine.filter((e) => e.kind === K.stepFailed);
        const done = mine.some((e) => e.kind === K.stepDone);
        const last = mine.at(-1);
        const maxAttempts = 1 + (this.settings.retries[step] ?? 0);
        if (done) {
          action = 'waiting';
        } else if (!BMC_STEPS.has(step) || started.length === 0) {
          // A check of the store, or a BMC step that never started: running it is safe.
          const notBefore = this.notBeforeOf(entry);
          if (step === STEP.armPxe && notBefore > now) {
            this.pending.set(name, { at: notBefore, generation: rec.generation });
            action = 'stagger slot kept';
          } else {
            cur = await this.runEntrySteps(ctl, rec);
            action = started.length === 0 && BMC_STEPS.has(step) ? 'step started' : 'step rerun';
          }
        } else if (step === STEP.powerCycle) {
          const lastFailed = last?.kind === K.stepFailed ? (last.details as { code?: string; reason?: string }) : undefined;
          const lastRetry = last?.kind === K.stepFailed ? (last.details as { willRetry?: boolean }).willRetry : undefined;
          if (lastFailed && lastRetry === true && failed.length < maxAttempts) {
            // The last attempt provably did not act (retry.ts allowed a retry) and attempts are left: retry.
            cur = await this.runEntrySteps(ctl, rec, failed.length + 1);
            action = 'step retried';
          } else if (lastFailed && (lastRetry === false || failed.length >= maxAttempts)) {
            // The dead conductor had decided to fail the node (no retry allowed, or none left): finish that.
            cur = await this.apply(rec, E.fail, { actor: this.actor, cause: 'recovery', details: { step, reason: lastFailed.reason ?? 'failed', attempts: failed.length } });
            action = 'failed (no attempts left)';
          } else {
            // Interrupted while acting (or timed out): it may have happened. Read, never repeat.
            let power: string;
            try {
              power = await this.steps.powerStatus(name);
            } catch (e) {
              const reason = `power state unreadable after a restart, the interrupted power cycle is not repeated: ${toFleetError(e).message}`;
              cur = await this.apply(rec, E.fail, { actor: this.actor, cause: 'recovery', details: { step, reason } });
              return record('failed (power unreadable)');
            }
            if (power === 'off') {
              try {
                await this.steps.powerOn(name);
              } catch (e) {
                const reason = `the interrupted power cycle left the node off and power on failed: ${toFleetError(e).message}`;
                cur = await this.apply(rec, E.fail, { actor: this.actor, cause: 'recovery', details: { step, reason } });
                return record('failed (power on)');
              }
              await this.append(name, K.stepDone, { step, action: 'on', recovered: true });
              action = 'power read: off, powered on';
            } else {
              await this.append(name, K.stepDone, { step, action: 'none', recovered: true, power });
              action = 'power read: on, not repeated';
            }
          }
        } else {
          // Idempotent BMC step (PXE override, boot device): interrupted or failed with attempts left.
          const lastFailed = last?.kind === K.stepFailed ? (last.details as { reason?: string; willRetry?: boolean }) : undefined;
          if (lastFailed && (lastFailed.willRetry === false || failed.length >= maxAttempts)) {
            cur = await this.apply(rec, E.fail, { actor: this.actor, cause: 'recovery', details: { step, reason: lastFailed.reason ?? 'failed', attempts: failed.length } });
            action = 'failed (no attempts left)';
          } else {
            cur = await this.runEntrySteps(ctl, rec, Math.min(started.length + 1, maxAttempts));
            action = 'step rerun';
          }
        }
      }
      // Facts that arrived while nobody listened (only for the state they were meant for).
      if (cur.state === rec.state) cur = await this.replay(ctl, cur, since);
      return record(action, cur.state !== rec.state ? { now: cur.state } : {});
    });
  }

  /** Replays facts from the event log (oldest first) through eventForSignal; bounded by the list. */
  private async replay(ctl: SessionCtl, rec: NodeRecord, events: EventRecord[]): Promise<NodeRecord> {
    let cur = rec;
    for (const e of events) {
      if (!SIGNAL_KINDS.includes(e.kind)) continue;
      const details = (e.details ?? {}) as Record<string, unknown>;
      const t = eventForSignal(cur.state, e.kind, e.kind === SIGNAL.agentBoot ? { ...details, isNewBoot: true } : details);
      if ('ignore' in t) continue;
      const spec = stateSpec(cur.state);
      try {
        cur = await this.apply(cur, t.event, {
          actor: this.actor,
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

  /** Replays the node's facts since its last state change (a signal that found it busy). */
  private async catchUp(name: string): Promise<void | Busy> {
    return this.session(name, 0, true, async (ctl) => {
      const rec = await this.store.nodes.get(name);
      if (!rec || isResting(rec.state)) return;
      const entry = await this.lastStateChange(name);
      await this.replay(ctl, rec, await this.eventsAfter(name, entry?.id ?? 0));
    });
  }

  // ------------------------------------------------------------ the loop

  /** One pass of the timer loop (the loop calls it; tests call it with a pinned clock). */
  async tick(): Promise<void> {
    if (this.halted) return;
    const now = this.now().getTime();
    let budget = this.dueBatch;
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
        if (r === BUSY && c.tries + 1 < MAX_CATCHUP_TRIES) this.catchups.set(name, { at: this.now().getTime() + this.lockWaitMs, tries: c.tries + 1 });
      });
    }
    const due = await this.store.nodes.listDue(new Date(now));
    for (const n of due) {
      if (budget <= 0) break;
      if (this.loopBusy.has(n.name) || this.chains.has(n.name)) continue;
      budget--;
      this.launch(n.name, async () => {
        // Compare-and-set only: a step still running elsewhere finds the node failed and drops its result.
        await this.session(n.name, 0, false, async () => {
          const rec = await this.store.nodes.get(n.name);
          if (rec && rec.stateDeadline !== null && Date.parse(rec.stateDeadline) <= this.now().getTime()) await this.fireTimeout(rec, '');
        });
      });
    }
    if (this.sweepIntervalMs > 0 && now - this.lastSweep >= this.sweepIntervalMs) {
      this.lastSweep = now;
      await this.sweep(now);
    }
  }

  /** Recovers transient nodes nobody works on (their conductor died): a bounded batch, round robin. */
  private async sweep(now: number): Promise<void> {
    const nodes = await this.store.nodes.list({ states: [...TRANSIENT_STATES] });
    const candidates = nodes.filter(
      (n) => now - Date.parse(n.stateSince) >= this.sweepMinAgeMs && !this.chains.has(n.name) && !this.pending.has(n.name) && !this.loopBusy.has(n.name),
    );
    const after = candidates.filter((n) => n.name > this.sweepAfter);
    const batch = [...after, ...candidates.filter((n) => n.name <= this.sweepAfter)].slice(0, this.sweepBatch);
    for (const n of batch) this.launch(n.name, () => this.recoverNode(n.name, 'sweep'));
    this.sweepAfter = batch.at(-1)?.name ?? '';
  }

  private schedule(ms: number): void {
    if (!this.running || this.halted) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.loop(), ms);
    this.timer.unref?.();
  }

  /** Runs a tick soon (after a request queued work). */
  private kick(): void {
    if (this.running && !this.ticking) this.schedule(0);
  }

  private async loop(): Promise<void> {
    this.timer = undefined;
    if (!this.running) return;
    this.ticking = true;
    try {
      await this.tick();
    } catch (e) {
      if (!(e instanceof Halted)) this.log.error({ err: e }, 'lifecycle timer loop failed');
    } finally {
      this.ticking = false;
    }
    this.schedule(this.tickMs);
  }

  private launch(name: string, fn: () => Promise<unknown>): void {
    this.loopBusy.add(name);
    const p = this.limited(fn).finally(() => this.loopBusy.delete(name));
    this.track(p);
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (this.active >= this.maxConcurrent) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof Halted)) this.log.error({ err: e }, 'lifecycle session failed');
      return undefined;
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined);
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  private async startPending(name: string, generation: number): Promise<void> {
    const r = await this.session(name, 0, true, async (ctl) => {
      const rec = await this.store.nodes.get(name);
      // Someone else started it, or the node moved on (cancel): nothing to do.
      if (!rec || rec.state !== S.pxeArmed || rec.generation !== generation) return;
      await this.runEntrySteps(ctl, rec);
    });
    if (r === BUSY) this.pending.set(name, { at: this.now().getTime() + Math.min(this.lockWaitMs, 1000), generation });
  }

  // ------------------------------------------------------------ sessions

  /**
   * Runs fn in the node's in-process queue (waiting up to waitMs for it),
   * with the node's store lock when `lock` (or once fn calls ctl.lock()).
   * The lock is what steps need: transitions alone are compare-and-set.
   * BUSY when the queue or the lock stayed busy.
   */
  private async session<T>(name: string, waitMs: number, lock: boolean, fn: (ctl: SessionCtl) => Promise<T>): Promise<T | Busy> {
    if (this.halted) throw new Halted();
    const prev = this.chains.get(name);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = (prev ?? Promise.resolve()).then(() => mine);
    this.chains.set(name, tail);
    let held = false;
    let renew: NodeJS.Timeout | undefined;
    const ctl: SessionCtl = {
      lock: async () => {
        if (held) return true;
        if (this.halted) throw new Halted();
        if (!(await this.acquire(name, waitMs))) return false;
        held = true;
        renew = setInterval(() => {
          if (this.halted) return;
          void this.store.locks.renew(name, this.owner, this.lockTtlMs).catch(() => undefined);
        }, Math.max(10, Math.floor(this.lockTtlMs / 3)));
        renew.unref?.();
        return true;
      },
    };
    try {
      if (prev) {
        let timer: NodeJS.Timeout | undefined;
        const ok = await Promise.race([prev.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs)))]);
        clearTimeout(timer);
        if (!ok) return BUSY;
      }
      if (this.halted) throw new Halted();
      if (lock && !(await ctl.lock())) return BUSY;
      return await fn(ctl);
    } finally {
      if (renew) clearInterval(renew);
      if (held && !this.halted) await this.store.locks.release(name, this.owner).catch((e: unknown) => this.log.warn({ err: e, node: name }, 'lock release failed'));
      release();
      // Forget the queue once its last session ended (not before: a BUSY session's tail still waits for prev).
      void tail.then(() => {
        if (this.chains.get(name) === tail) this.chains.delete(name);
      });
    }
  }

  private async acquire(name: string, waitMs: number): Promise<boolean> {
    const until = Date.now() + waitMs;
    for (let i = 0; ; i++) {
      if (await this.store.locks.acquire(name, this.owner, this.lockTtlMs)) return true;
      const left = until - Date.now();
      if (left <= 0) return false;
      await new Promise((r) => setTimeout(r, Math.min(left, 25 * Math.min(8, i + 1))));
    }
  }

  // ---------------------------------------------------------- transitions

  /** Applies (state, event) of the table as a compare-and-set with its event and armed change, in one transaction. */
  private async apply(rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx): Promise<NodeRecord> {
    if (this.halted) throw new Halted();
    const t = next(rec.state, event, rec.name);
    if (t.stay) return rec;
    const now = this.now().getTime();
    const timeoutS = stateSpec(t.to)?.kind === 'transient' ? this.settings.timeouts[t.to] : undefined;
    const base = ctx.notBeforeMs !== undefined && ctx.notBeforeMs > now ? ctx.notBeforeMs : now;
    const deadline = timeoutS !== undefined ? new Date(base + timeoutS * 1000).toISOString() : null;
    const out = await this.store.transaction(async (tx) => {
      let out = await tx.nodes.setState(rec.name, t.to, {
        expectedFrom: rec.state,
        expectedGeneration: rec.generation,
        actor: ctx.actor,
        cause: ctx.cause,
        details: { event, ...ctx.details },
        deadline,
      });
      if (t.armed) {
        const want = t.armed === 'arm';
        if (out.armed !== want) out = await tx.nodes.setArmed(rec.name, want, { actor: ctx.actor, cause: `lifecycle ${event}` });
      }
      for (const x of ctx.extraEvents ?? []) await tx.events.append({ node: rec.name, kind: x.kind, actor: ctx.actor, cause: ctx.cause, details: x.details });
      // A run that ends or starts again leaves no token of an earlier run usable (install, enrolment).
      if (TOKEN_REVOKING_EVENTS.has(event)) await tx.tokens.revokeAll(rec.name, { actor: ctx.actor, cause: ctx.cause, reason: event });
      return out;
    });
    // The install boot has started: a BMC that stored the one-time PXE override as Continuous gets the disk now.
    if (rec.state === S.powerCycling && out.state === S.netbooting) this.track(this.limited(() => this.restoreDiskAfterInstallBoot(rec.name)));
    return out;
  }

  /**
   * Best effort, once the install boot has started: if the BMC stored the PXE override of this run as
   * Continuous (quirk onceStoredAsContinuous in the arm's bmc.bootdev event), set the disk, so that the
   * installer's reboot, or any boot after a failure, does not netboot again. flip-to-disk does it again after
   * install-finished either way.
   */
  private async restoreDiskAfterInstallBoot(name: string): Promise<void> {
    if (this.halted) return;
    const arm = (await this.store.events.list({ node: name, kinds: [EVENT.bmcBootdev], order: 'desc', limit: 1 })).events[0];
    const quirks = (arm?.details as { quirks?: unknown } | null | undefined)?.quirks;
    if (!Array.isArray(quirks) || !quirks.includes('onceStoredAsContinuous')) return;
    try {
      await this.steps.flipToDisk(name);
    } catch (e) {
      const fe = toFleetError(e);
      await this.store.events
        .append({ node: name, kind: K.cleanupFailed, actor: this.actor, cause: 'install boot', details: { step: STEP.flipToDisk, reason: fe.message } })
        .catch(() => undefined);
    }
  }

  private async fireTimeout(rec: NodeRecord, note: string): Promise<NodeRecord> {
    const spec = stateSpec(rec.state);
    if (!spec?.onTimeout) return rec;
    const secs = this.settings.timeouts[rec.state] ?? spec.timeoutSeconds ?? 0;
    const reason = `timed out after ${seconds(secs)} in ${rec.state} waiting for ${spec.waitsFor}${note}`;
    try {
      return await this.apply(rec, spec.onTimeout, { actor: this.actor, cause: 'timeout', details: { step: spec.step ?? rec.state, reason, timeout: true } });
    } catch (e) {
      if (isConflict(e)) return rec;
      throw e;
    }
  }

  /** Runs the steps of the node's state and applies their events, until a state waits (bounded). */
  private async runEntrySteps(ctl: SessionCtl, start: NodeRecord, firstAttempt = 1): Promise<NodeRecord> {
    let cur = start;
    let attempt = firstAttempt;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const step = stateSpec(cur.state)?.step;
      if (!step) return cur;
      // BMC steps run only under the node's store lock; without it, recovery (or another conductor's sweep) runs them.
      if (BMC_STEPS.has(step) && !(await ctl.lock())) return cur;
      const out = await this.runStep(cur, step, attempt);
      attempt = 1;
      if (out.kind !== 'event') return cur;
      try {
        cur = await this.apply(cur, out.event, { actor: this.actor, cause: `step ${step}`, details: out.details });
      } catch (e) {
        if (isConflict(e)) return cur; // moved meanwhile (cancel): the step's result is dropped
        throw e;
      }
      const spec = stateSpec(cur.state);
      if (spec?.kind === 'transient' && !spec.step) {
        // A wait state reached by a step: facts that came while the step ran (e.g. a fast first boot
        // reported while the boot device was being set) were not awaited then; replay them now.
        const changes = await this.store.events.list({ node: cur.name, kinds: [EVENT.stateChanged], order: 'desc', limit: 2 });
        const stepEntry = changes.events[1];
        if (stepEntry) return this.replay(ctl, cur, await this.eventsAfter(cur.name, stepEntry.id));
      }
    }
    return cur;
  }

  private async runStep(rec: NodeRecord, step: StepName, firstAttempt: number): Promise<StepOutcome> {
    const name = rec.name;
    switch (step) {
      case STEP.armPxe:
        return this.bmcStep(rec, step, firstAttempt, async () => {
          await this.steps.armPxe(name);
          return { kind: 'event', event: E.cycle, details: { step } };
        });
      case STEP.powerCycle:
        return this.bmcStep(rec, step, firstAttempt, async (attempt) => {
          let did: string;
          try {
            did = await this.steps.powerCycle(name);
          } catch (e) {
            // A power action that got no clear answer (timeout, unreadable reply) may have happened: read
            // the power instead of repeating it. Only a failure that proves it did not run is retried (bmcStep).
            if (!isFleetError(e) || provedNotRun(e) || !TRANSIENT_ERRORS.has(e.code)) throw e;
            let power: string;
            try {
              power = await this.steps.powerStatus(name);
            } catch (e2) {
              await this.append(name, K.stepFailed, { step, attempt, code: e.code, reason: e.message, willRetry: false });
              const reason = `${e.message}; the power state is unreadable too, so the power action is not repeated (${toFleetError(e2).message})`;
              return { kind: 'event', event: E.fail, details: { step, reason, attempts: attempt } };
            }
            if (power === 'off') await this.steps.powerOn(name);
            const why = e.code === 'bmc.timeout' ? 'timed out' : `unconfirmed: ${e.code}`;
            did = power === 'off' ? `on (after a ${why} cycle left it off)` : `none (${why}; power is on, not repeated)`;
          }
          await this.append(name, K.stepDone, { step, attempt, action: did });
          return { kind: 'wait' };
        });
      case STEP.flipToDisk:
        return this.bmcStep(rec, step, firstAttempt, async () => {
          await this.steps.flipToDisk(name);
          return { kind: 'event', event: E.flip, details: { step } };
        });
      case STEP.checkAgent: {
        const agent = await this.store.agents.get(name);
        const start = await this.runStart(name);
        if (!agent) return { kind: 'event', event: E.fail, details: { step, reason: 'no agent is enrolled for this node (the kickstart %post enrols it)' } };
        if (start && agent.enrolledAt < start.time) {
          return { kind: 'event', event: E.fail, details: { step, reason: `the agent did not enrol during this install (last enrolment ${agent.enrolledAt})` } };
        }
        return { kind: 'event', event: E.configure, details: { step, enrolledAt: agent.enrolledAt } };
      }
      case STEP.checkApplied: {
        const start = await this.runStart(name);
        const page = await this.store.events.list({ node: name, kinds: [SIGNAL.agentApplied, SIGNAL.agentApplyFailed], afterId: start?.id ?? 0, order: 'desc', limit: 1 });
        const last = page.events[0];
        if (!last) return { kind: 'wait' };
        const d = (last.details ?? {}) as Record<string, unknown>;
        if (last.kind === SIGNAL.agentApplied) return { kind: 'event', event: E.complete, details: { step, ...(d.version !== undefined ? { version: d.version } : {}) } };
        return { kind: 'event', event: E.fail, details: { step: 'configure', reason: applyFailureReason(d) } };
      }
    }
  }

  /** A BMC step with bounded retries; `lifecycle.step_started` is written before each attempt acts. */
  private async bmcStep(rec: NodeRecord, step: StepName, firstAttempt: number, act: (attempt: number) => Promise<StepOutcome>): Promise<StepOutcome> {
    const max = 1 + (this.settings.retries[step] ?? 0);
    for (let attempt = Math.max(1, firstAttempt); attempt <= max; attempt++) {
      await this.append(rec.name, K.stepStarted, { step, attempt, state: rec.state });
      try {
        return await act(attempt);
      } catch (e) {
        if (e instanceof Halted) throw e;
        const fe = toFleetError(e);
        const willRetry = mayRetry(STEP_ACTION[step] ?? 'power.cycle', fe) && attempt < max;
        await this.append(rec.name, K.stepFailed, { step, attempt, code: fe.code, reason: fe.message, willRetry });
        if (!willRetry) return { kind: 'event', event: E.fail, details: { step, reason: fe.message, attempts: attempt } };
        await this.sleep(exponentialDelay(attempt - 1, { initialMs: this.settings.retryDelayMs }));
        const fresh = await this.store.nodes.get(rec.name);
        if (!fresh || fresh.generation !== rec.generation) return { kind: 'superseded' };
      }
    }
    return { kind: 'superseded' };
  }

  /** Best effort after a cancel: disarmed already; ask the BMC to boot the disk. */
  private async cleanupBootDevice(name: string, actor: string): Promise<void> {
    if (this.halted) return;
    try {
      await this.steps.flipToDisk(name);
    } catch (e) {
      const fe = toFleetError(e);
      await this.store.events
        .append({ node: name, kind: K.cleanupFailed, actor, cause: 'cancel', details: { step: STEP.flipToDisk, reason: fe.message } })
        .catch(() => undefined);
    }
  }

  // --------------------------------------------------------------- reads

  private now(): Date {
    return this.clock();
  }

  private async append(node: string, kind: string, details: Record<string, unknown>): Promise<void> {
    if (this.halted) throw new Halted();
    await this.store.events.append({ node, kind, actor: this.actor, details });
  }

  /** The event that put the node in its current state. */
  private async lastStateChange(name: string): Promise<EventRecord | undefined> {
    const page = await this.store.events.list({ node: name, kinds: [EVENT.stateChanged], order: 'desc', limit: 1 });
    return page.events[0];
  }

  /** Events of the node after id (oldest first; at most 1000: a state collects far fewer). */
  private async eventsAfter(name: string, afterId: number): Promise<EventRecord[]> {
    return (await this.store.events.list({ node: name, afterId, limit: 1000 })).events;
  }

  /** The reinstall that started the node's current run: the last entry into pxe-armed. */
  private async runStart(name: string): Promise<EventRecord | undefined> {
    const page = await this.store.events.list({ node: name, kinds: [EVENT.stateChanged], order: 'desc', limit: 30 });
    return page.events.find((e) => e.toState === S.pxeArmed);
  }

  private notBeforeOf(entry: EventRecord | undefined): number {
    const nb = (entry?.details as { notBefore?: unknown } | null)?.notBefore;
    const ms = typeof nb === 'string' ? Date.parse(nb) : NaN;
    return Number.isFinite(ms) ? ms : 0;
  }
}

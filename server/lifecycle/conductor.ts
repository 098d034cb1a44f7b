/**
 * The conductor (DESIGN §1, §3, §6): the only writer of lifecycle state.
 * This class is the coordinator: it owns the conductor's life (start, stop,
 * halt, settings, logger) and wires the parts, one job each:
 *
 * - transition.ts: every transition is `next()` of the table, applied as a
 *   compare-and-set on (state, generation) with its event row — and the
 *   armed flag change the table asks for — in one transaction;
 * - sessions.ts: work on a node runs in a *session* (in-process queue per
 *   node, then the node's leased lock in the store), so two conductors on
 *   one database never run a node's steps at once;
 * - requests.ts: reinstall, cancel, fire, and the facts (signals);
 * - runner.ts and steps/: steps run on entering a state and return events;
 *   a failed BMC step is retried a bounded number of times, then the node
 *   fails with {step, reason};
 * - timers.ts: the loop over the store's state deadlines, stagger starts,
 *   catch-ups and the sweep;
 * - recovery.ts and recovery-table.ts: nodes found mid-operation after a
 *   restart. A BMC step writes `lifecycle.step_started` before it acts, so
 *   recovery knows whether it may have acted: an interrupted power cycle is
 *   never repeated — the power state is read instead (steps/power-cycle.ts).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { FleetError } from '../../common/errors.js';
import type { NodeRecord, Store } from '../store/index.js';
import { recoverAll, recoverNode, type RecoveryDeps } from './recovery.js';
import { Requests } from './requests.js';
import { StepRunner } from './runner.js';
import { Halted, Pool, Sessions, type Busy } from './sessions.js';
import { resolveLifecycleSettings, type LifecycleSettings } from './settings.js';
import { S, type LifecycleEvent } from './states.js';
import type { Steps } from './steps.js';
import { diskBestEffort, pxeStoredAsContinuous } from './steps/index.js';
import { powerIsManual } from './steps/manual.js';
import { Timers } from './timers.js';
import { applyTransition, type ApplyCtx } from './transition.js';
import type { ConductorLogger, ConductorOptions, NodeActionResult, RecoveryReport, ReinstallOptions, SignalResult } from './types.js';

export { TOKEN_REVOKING_EVENTS } from './transition.js';
export type { ConductorLogger, ConductorOptions, NodeActionResult, SignalResult, RecoveryReport, ReinstallOptions } from './types.js';

const silent: ConductorLogger = { info() {}, warn() {}, error() {} };

export class Conductor {
  readonly owner: string;
  /** Replaced as a whole by setSettings; every decision reads it through the getter, never a copy. */
  private current: LifecycleSettings;
  private readonly store: Store;
  private readonly steps: Steps;
  private readonly clock: () => Date;
  private log: ConductorLogger;
  private readonly actor: string;
  private halted = false;

  private readonly pool: Pool;
  private readonly timers: Timers;
  private readonly requests: Requests;
  private readonly recovery: RecoveryDeps;

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
    const store = opts.store;
    const steps = opts.steps;
    this.store = store;
    this.steps = steps;
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.current = resolveLifecycleSettings(opts.settings);
    this.clock = opts.clock ?? (() => new Date());
    this.log = opts.log ?? silent;
    const actor = (this.actor = opts.actor ?? 'conductor');
    const lockWaitMs = opts.lockWaitMs ?? 5_000;

    // The parts read what may change (halted, logger, settings, clock) through these, never a copy.
    const halted = (): boolean => this.halted;
    const log = (): ConductorLogger => this.log;
    const settings = (): LifecycleSettings => this.current;
    const now = (): number => this.clock().getTime();
    const apply = (rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx): Promise<NodeRecord> => this.apply(rec, event, ctx);

    const sessions = new Sessions({ locks: store.locks, owner: this.owner, lockTtlMs: opts.lockTtlMs ?? 60_000, halted, log });
    const pool = (this.pool = new Pool(opts.maxConcurrent ?? 64, log));
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const runner = new StepRunner({ store, steps, actor, settings, sleep, halted, apply });
    const timers = (this.timers = new Timers({
      store,
      sessions,
      pool,
      runner,
      actor,
      now,
      halted,
      log,
      settings,
      apply,
      sweepNode: (name) => recoverNode(this.recovery, name, 'sweep'),
      lockWaitMs,
      tickMs: opts.tickMs ?? 1_000,
      dueBatch: opts.dueBatch ?? 200,
      sweepIntervalMs: opts.sweepIntervalMs ?? 60_000,
      sweepMinAgeMs: opts.sweepMinAgeMs ?? 60_000,
      sweepBatch: opts.sweepBatch ?? 100,
    }));
    this.recovery = {
      store,
      steps,
      actor,
      now,
      settings,
      log,
      sessions,
      pool,
      runner,
      apply,
      fireTimeout: (rec, note) => timers.fireTimeout(rec, note),
      keepSlot: (name, at, generation) => timers.keepSlot(name, at, generation),
      idle: () => this.idle(),
    };
    this.requests = new Requests({
      store,
      actor,
      lockWaitMs,
      now,
      log,
      sessions,
      pool,
      runner,
      timers,
      apply,
      powerIsManual: (name) => powerIsManual(steps, name),
      cleanupBootDevice: (name, by) => this.cleanupBootDevice(name, by),
    });
  }

  // ------------------------------------------------------------------ life

  /** Recovers every node (see recover()), then runs the timer loop. */
  async start(): Promise<RecoveryReport> {
    if (this.halted) throw new FleetError('internal', 'this conductor was halted; create a new one');
    const report = await this.recover();
    this.timers.start();
    return report;
  }

  /** Stops the timer loop, waits for work in flight, releases this conductor's locks. */
  async stop(): Promise<void> {
    this.timers.stop();
    await this.idle();
    if (!this.halted) await this.store.locks.releaseAll(this.owner);
  }

  /**
   * Simulates a crash (tests, simulator): stops at once, keeps its locks
   * until their leases expire, and writes nothing more.
   */
  halt(): void {
    this.halted = true;
    this.timers.stop();
  }

  /** Logs from now on to `log` (e.g. the fastify app's pino logger, which exists only after the conductor). */
  setLogger(log: ConductorLogger): void {
    this.log = log;
  }

  /** Resolves when no session of this conductor is in flight. */
  async idle(): Promise<void> {
    await this.pool.idle();
  }

  /** Number of stagger starts waiting in memory. */
  get pendingStarts(): number {
    return this.timers.pendingStarts;
  }

  // ------------------------------------------------------------ requests (requests.ts)

  /**
   * Starts a reinstall of each node (natural order): pets refused without
   * force, nodes in a transient state refused (state.invalid_transition).
   * Returns once every node is in pxe-armed or refused; the steps run in
   * the background, staggered.
   */
  reinstall(names: string[], opts: ReinstallOptions): Promise<NodeActionResult[]> {
    return this.requests.reinstall(names, opts);
  }

  /** Adopts an installed machine (fleet adopt): the node goes to `adopting`; the caller issues the adoption token. */
  adopt(name: string, opts: { actor: string }): Promise<NodeActionResult> {
    return this.requests.adopt(name, opts);
  }

  /** Cancels each node's lifecycle: back to `enrolled`, disarmed, with a best-effort "boot from disk" in the background. */
  cancel(names: string[], opts: { actor: string }): Promise<NodeActionResult[]> {
    return this.requests.cancel(names, opts);
  }

  /**
   * Applies a table event to a node directly (operators' tools, tests).
   * Resolves after the transition; the steps of the new state run in the
   * background. @throws FleetError('state.invalid_transition'), nothing written.
   */
  fire(name: string, event: LifecycleEvent, opts: { actor?: string; cause?: string; details?: Record<string, unknown> } = {}): Promise<NodeRecord> {
    return this.requests.fire(name, event, opts);
  }

  /**
   * A fact about a node (a boot endpoint's or the agent service's event
   * kind, with that event's details), after its event row was written.
   * Resolves once the resulting transition is applied or the fact is
   * ignored; a node busy for longer than lockWaitMs answers 'busy' and the
   * fact is replayed from the event log when the node frees up.
   */
  signal(name: string, kind: string, details: Record<string, unknown> = {}): Promise<SignalResult> {
    return this.requests.signal(name, kind, details);
  }

  // ------------------------------------------------------------ recovery (recovery.ts)

  /** Start-up recovery of every node (see recovery.ts and the rules in recovery-table.ts). */
  recover(): Promise<RecoveryReport> {
    return recoverAll(this.recovery);
  }

  /** Recovers one node in a transient state. Returns what it did. */
  recoverNode(name: string, why: 'startup' | 'sweep' = 'startup'): Promise<string | Busy> {
    return recoverNode(this.recovery, name, why);
  }

  // ------------------------------------------------------------ the loop (timers.ts)

  /** One pass of the timer loop (the loop calls it; tests call it with a pinned clock). */
  tick(): Promise<void> {
    return this.timers.tick();
  }

  // ---------------------------------------------------------- transitions

  /** A transition of the table (transition.ts), and what follows one. */
  private async apply(rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx): Promise<NodeRecord> {
    if (this.halted) throw new Halted();
    const out = await applyTransition(this.store, rec, event, ctx, { nowMs: this.clock().getTime(), timeouts: this.settings.timeouts });
    // The install boot has started: a BMC that stored the one-time PXE override as Continuous gets the disk now.
    if (rec.state === S.powerCycling && out.state === S.netbooting) this.pool.track(this.pool.limited(() => this.restoreDiskAfterInstallBoot(rec.name)));
    return out;
  }

  /**
   * Best effort, once the install boot has started: if the BMC stored the PXE override of this run as
   * Continuous, set the disk, so that the installer's reboot, or any boot after a failure, does not
   * netboot again. flip-to-disk does it again after install-finished either way.
   */
  private async restoreDiskAfterInstallBoot(name: string): Promise<void> {
    if (this.halted) return;
    if (!(await pxeStoredAsContinuous(this.store, name))) return;
    await diskBestEffort(this.store, this.steps, name, { actor: this.actor, cause: 'install boot' });
  }

  /** Best effort after a cancel: disarmed already; ask the BMC to boot the disk. */
  private async cleanupBootDevice(name: string, actor: string): Promise<void> {
    if (this.halted) return;
    await diskBestEffort(this.store, this.steps, name, { actor, cause: 'cancel' });
  }
}

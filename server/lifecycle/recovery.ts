/**
 * Recovery (DESIGN §6): carries out recovery-table.ts's decisions.
 *
 * At start-up every resting node found armed is disarmed, and every node in
 * a transient state is examined under its lock (nodes another live
 * conductor holds are skipped); the periodic sweep (timers.ts) does the same
 * for transient nodes nobody works on. Facts that arrived while nobody
 * listened are replayed from the event log. Each examined node gets a
 * lifecycle.recovered event (a sweep's re-check that changed nothing is
 * quiet).
 */
import { toFleetError } from '../../common/errors.js';
import type { NodeRecord, Store } from '../store/index.js';
import { eventsAfter, lastStateChange, notBeforeOf } from './history.js';
import { recoveryFor, stepFacts } from './recovery-table.js';
import type { StepRunner } from './runner.js';
import { BUSY, type Busy, type Pool, type Sessions } from './sessions.js';
import type { LifecycleSettings } from './settings.js';
import { E, LIFECYCLE_EVENT_KINDS as K, isResting, type LifecycleEvent } from './states.js';
import type { Steps } from './steps.js';
import { settleDoubtfulCycle, type DoubtfulCycle } from './steps/index.js';
import { powerIsManual } from './steps/manual.js';
import { stateSpec } from './table.js';
import type { ApplyCtx } from './transition.js';
import type { ConductorLogger, RecoveryReport } from './types.js';

export interface RecoveryDeps {
  store: Store;
  steps: Steps;
  actor: string;
  now: () => number;
  settings: () => LifecycleSettings;
  log: () => ConductorLogger;
  sessions: Sessions;
  pool: Pool;
  runner: StepRunner;
  apply: (rec: NodeRecord, event: LifecycleEvent, ctx: ApplyCtx) => Promise<NodeRecord>;
  /** Fires the state's timeout (timers.ts). */
  fireTimeout: (rec: NodeRecord, note: string) => Promise<NodeRecord>;
  /** Remembers a stagger start for the timer loop. */
  keepSlot: (name: string, at: number, generation: number) => void;
  /** Resolves when the conductor has no work in flight. */
  idle: () => Promise<void>;
}

/** Start-up recovery of every node (see the file comment). */
export async function recoverAll(d: RecoveryDeps): Promise<RecoveryReport> {
  const report: RecoveryReport = { nodes: 0, disarmed: 0, actions: {}, skipped: 0 };
  const nodes = await d.store.nodes.list();
  const work: Promise<void>[] = [];
  for (const n of nodes) {
    if (isResting(n.state)) {
      if (n.armed) {
        const r = await d.sessions.run(n.name, 0, true, async () => {
          const rec = await d.store.nodes.get(n.name);
          if (rec && isResting(rec.state) && rec.armed) {
            await d.store.nodes.setArmed(n.name, false, { actor: d.actor, cause: `recovery: ${rec.state} node was still armed` });
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
      d.pool.limited(() => recoverNode(d, n.name, 'startup')).then((action) => {
        if (action === BUSY) report.skipped++;
        else if (action !== undefined) report.actions[action] = (report.actions[action] ?? 0) + 1;
      }),
    );
  }
  await Promise.all(work);
  await d.idle();
  d.log().info({ ...report }, 'lifecycle recovery done');
  return report;
}

/** Recovers one node in a transient state under its lock. Returns what it did (the rule's report), or BUSY. */
export async function recoverNode(d: RecoveryDeps, name: string, why: 'startup' | 'sweep'): Promise<string | Busy> {
  return d.sessions.run(name, 0, true, async (ctl) => {
    const rec = await d.store.nodes.get(name);
    if (!rec) return 'gone';
    const spec = stateSpec(rec.state);
    if (!spec || spec.kind !== 'transient') return 'resting';
    const now = d.now();
    const entry = await lastStateChange(d.store, name);
    const since = await eventsAfter(d.store, name, entry?.id ?? 0);
    const step = spec.step;
    const notBefore = notBeforeOf(entry);
    const decision = recoveryFor({
      state: rec.state,
      overdue: rec.stateDeadline !== null && Date.parse(rec.stateDeadline) <= now,
      slotAhead: notBefore > now,
      maxAttempts: 1 + (step ? (d.settings().retries[step] ?? 0) : 0),
      ...stepFacts(since, step),
    });
    const record = async (action: string, extra: Record<string, unknown> = {}): Promise<string> => {
      // A sweep is quiet unless it changed something: re-checking the store (first-boot, configuring) is not news.
      const quiet = why === 'sweep' && extra.now === undefined && decision.rule.quietOnSweep === true;
      if (!quiet) await d.runner.append(name, K.recovered, { state: rec.state, action, why, ...extra });
      return action;
    };
    const fail = (reason: string, more: Record<string, unknown> = {}): Promise<NodeRecord> =>
      d.apply(rec, E.fail, { actor: d.actor, cause: 'recovery', details: { step, reason, ...more } });

    let cur = rec;
    let action = decision.rule.report;
    switch (decision.rule.action) {
      case 'timeout':
        await d.fireTimeout(rec, ' (found at recovery)');
        return record(action);
      case 'wait':
        break;
      case 'keep-slot':
        d.keepSlot(name, notBefore, rec.generation);
        break;
      case 'run-step':
      case 'retry-step':
      case 'rerun-step':
        cur = await d.runner.runEntrySteps(ctl, rec, decision.attempt);
        break;
      case 'fail':
        cur = await fail(decision.reason ?? 'failed', { attempts: decision.attempts });
        break;
      case 'read-power': {
        if (await powerIsManual(d.steps, name)) {
          // No BMC: the step only records that power is manual; running it again sends nothing.
          cur = await d.runner.runEntrySteps(ctl, rec);
          action = 'power manual: waiting for the netboot';
          break;
        }
        // Interrupted while acting: the cycle may have happened. Read, never repeat (steps/power-cycle.ts).
        let after: DoubtfulCycle;
        try {
          after = await settleDoubtfulCycle(d.steps, name);
        } catch (e) {
          await fail(`the interrupted power cycle left the node off and power on failed: ${toFleetError(e).message}`);
          return record('failed (power on)');
        }
        if (after.outcome === 'unreadable') {
          await fail(`power state unreadable after a restart, the interrupted power cycle is not repeated: ${after.error.message}`);
          return record('failed (power unreadable)');
        }
        if (after.outcome === 'powered-on') {
          await d.runner.append(name, K.stepDone, { step, action: 'on', recovered: true });
          action = 'power read: off, powered on';
        } else {
          await d.runner.append(name, K.stepDone, { step, action: 'none', recovered: true, power: after.power });
          action = 'power read: on, not repeated';
        }
        break;
      }
    }
    // Facts that arrived while nobody listened (only for the state they were meant for).
    if (cur.state === rec.state) cur = await d.runner.replay(ctl, cur, since);
    return record(action, cur.state !== rec.state ? { now: cur.state } : {});
  });
}

/**
 * Recovery as data (DESIGN §6), in the manner of the transition table
 * (table.ts): what a conductor does with a node it finds in a transient
 * state nobody works on (after a restart, or another server's death), from
 * the state and what the event log shows about the state's step. The rules
 * are read top to bottom; the first that matches decides. `recoveryFor()`
 * is pure; recovery.ts carries its decision out.
 *
 * The one rule that matters most: a power cycle that may have happened is
 * never sent again; the power is read instead (steps/power-cycle.ts).
 */
import { FleetError } from '../../common/errors.js';
import type { EventRecord } from '../store/index.js';
import { LIFECYCLE_EVENT_KINDS as K, S, STEP, TRANSIENT_STATES, type LifecycleState, type StepName } from './states.js';
import { isBmcStep } from './steps/index.js';
import { stateSpec } from './table.js';

/** What the event log shows about the state's step since the node entered the state. */
export type StepLog =
  /** The state's deadline passed. */
  | 'overdue'
  /** The step wrote lifecycle.step_done. */
  | 'done'
  /** The step never started, and the stagger slot the reinstall gave is still ahead. */
  | 'slot-ahead'
  /** The step never started (a check of the store writes no step_started: it is always here). */
  | 'not-started'
  /** The last attempt failed, retry.ts allowed a retry (it provably did not act) and attempts are left. */
  | 'failed-may-retry'
  /** The last attempt failed with no retry allowed, or none left: the dead conductor was failing the node. */
  | 'failed-final'
  /** An attempt started and wrote no outcome (or a failure that allows no decision): it may have acted. */
  | 'interrupted';

export const STEP_LOGS: readonly StepLog[] = ['overdue', 'done', 'slot-ahead', 'not-started', 'failed-may-retry', 'failed-final', 'interrupted'];

export type RecoveryAction =
  /** Fire the state's timeout. */
  | 'timeout'
  /** Nothing to do: the node waits for its fact or its deadline. */
  | 'wait'
  /** Remember the stagger start (it was in the dead conductor's memory). */
  | 'keep-slot'
  /** Run the step from its first attempt. */
  | 'run-step'
  /** Run the step from the attempt after the failed ones. */
  | 'retry-step'
  /** Run the (idempotent) step again, from the attempt after the started ones. */
  | 'rerun-step'
  /** Fail the node with the last failure's reason. */
  | 'fail'
  /** The never-repeat rule: read the power (off → power on, on → nothing, unreadable → fail). */
  | 'read-power';

export interface RecoveryRule {
  state: LifecycleState | '*';
  log: readonly StepLog[] | '*';
  action: RecoveryAction;
  /** Its name in the recovery report and the lifecycle.recovered event; read-power names what the read found. */
  report: string;
  /** A sweep writes no lifecycle.recovered event for it when the state did not change: a re-check is not news. */
  quietOnSweep?: true;
  why: string;
}

const WAITING = { action: 'wait', report: 'waiting', quietOnSweep: true } as const;
const NO_ATTEMPTS_LEFT = 'failed (no attempts left)';

/** One rule per line; the first that matches decides; `why` is the comment. */
export const RECOVERY_RULES: readonly RecoveryRule[] = [
  // --- every transient state
  { state: '*', log: ['overdue'], action: 'timeout', report: 'timed out', why: 'the deadline passed while nobody watched: the timeout fires now' },
  { state: '*', log: ['done'], ...WAITING, why: 'the step finished before the restart: the node waits for its next fact' },
  // --- wait states: no step, facts (replayed after every rule) move them
  { state: S.netbooting, log: '*', ...WAITING, why: 'no step: the node waits for the installer to fetch its kickstart' },
  { state: S.installing, log: '*', ...WAITING, why: 'no step: the node waits for install-finished' },
  { state: S.diskArmed, log: '*', ...WAITING, why: 'no step: the node waits for its first boot from the disk' },
  { state: S.imageBooting, log: '*', ...WAITING, why: 'no step: the stateless node waits for its agent\'s boot report from the image' },
  { state: S.adopting, log: '*', ...WAITING, why: 'no step: the node waits for its agent to enrol with the adoption token' },
  // --- pxe-armed: arm-pxe, idempotent
  { state: S.pxeArmed, log: ['slot-ahead'], action: 'keep-slot', report: 'stagger slot kept', why: 'the stagger slot is still ahead: the step starts then, as the reinstall asked' },
  { state: S.pxeArmed, log: ['not-started'], action: 'run-step', report: 'step started', why: 'the PXE override was never sent: send it' },
  { state: S.pxeArmed, log: ['failed-final'], action: 'fail', report: NO_ATTEMPTS_LEFT, why: 'the dead conductor had decided to fail the node: finish that' },
  { state: S.pxeArmed, log: ['failed-may-retry', 'interrupted'], action: 'rerun-step', report: 'step rerun', why: 'a PXE override set twice is harmless: set it again' },
  // --- power-cycling: power-cycle, NOT idempotent
  { state: S.powerCycling, log: ['not-started', 'slot-ahead'], action: 'run-step', report: 'step started', why: 'the power cycle was never sent: send it' },
  { state: S.powerCycling, log: ['failed-may-retry'], action: 'retry-step', report: 'step retried', why: 'the last attempt provably did not act and attempts are left: retry' },
  { state: S.powerCycling, log: ['failed-final'], action: 'fail', report: NO_ATTEMPTS_LEFT, why: 'the dead conductor had decided to fail the node: finish that' },
  { state: S.powerCycling, log: ['interrupted'], action: 'read-power', report: 'power read', why: 'the cycle may have happened: read the power, never cycle twice' },
  // --- installed: flip-to-disk, idempotent
  { state: S.installed, log: ['not-started', 'slot-ahead'], action: 'run-step', report: 'step started', why: 'the boot device was never set: set it' },
  { state: S.installed, log: ['failed-final'], action: 'fail', report: NO_ATTEMPTS_LEFT, why: 'the dead conductor had decided to fail the node: finish that' },
  { state: S.installed, log: ['failed-may-retry', 'interrupted'], action: 'rerun-step', report: 'step rerun', why: 'a boot device set twice is harmless: set it again' },
  // --- checks of the store: running one again is harmless
  { state: S.firstBoot, log: '*', action: 'run-step', report: 'step rerun', quietOnSweep: true, why: 'check again that the agent enrolled during this install' },
  { state: S.configuring, log: '*', action: 'run-step', report: 'step rerun', quietOnSweep: true, why: 'check again for the agent\'s apply report' },
];

/** What recoveryFor() decides from. */
export interface RecoveryFacts {
  state: string;
  /** The state's deadline passed. */
  overdue: boolean;
  /** The state was entered with a stagger slot still ahead. */
  slotAhead: boolean;
  /** 1 + the step's retries. */
  maxAttempts: number;
  /** The step's events since the node entered the state (stepFacts()). */
  started: number;
  failed: number;
  done: boolean;
  /** The last of the step's events, when it is a failure. */
  lastFailure?: { willRetry?: boolean; reason?: string };
}

export interface RecoveryDecision {
  rule: RecoveryRule;
  log: StepLog;
  /** run-step, retry-step, rerun-step: the attempt to start from. */
  attempt: number;
  /** fail: the failure to finish. */
  reason?: string;
  attempts?: number;
}

/** Counts the step's own events (lifecycle.step_*) among the node's events since its state change. Pure. */
export function stepFacts(since: readonly Pick<EventRecord, 'kind' | 'details'>[], step: StepName | undefined): Pick<RecoveryFacts, 'started' | 'failed' | 'done' | 'lastFailure'> {
  if (!step) return { started: 0, failed: 0, done: false };
  const mine = since.filter((e) => (e.details as { step?: string } | null)?.step === step);
  const last = mine.at(-1);
  return {
    started: mine.filter((e) => e.kind === K.stepStarted).length,
    failed: mine.filter((e) => e.kind === K.stepFailed).length,
    done: mine.some((e) => e.kind === K.stepDone),
    ...(last?.kind === K.stepFailed ? { lastFailure: last.details as { willRetry?: boolean; reason?: string } } : {}),
  };
}

/** The situation of the step, from the facts. Pure. */
export function stepLog(f: RecoveryFacts): StepLog {
  if (f.overdue) return 'overdue';
  if (f.done) return 'done';
  if (f.started === 0) return f.slotAhead ? 'slot-ahead' : 'not-started';
  if (f.lastFailure?.willRetry === true && f.failed < f.maxAttempts) return 'failed-may-retry';
  if (f.lastFailure && (f.lastFailure.willRetry === false || f.failed >= f.maxAttempts)) return 'failed-final';
  return 'interrupted';
}

function matches(rule: RecoveryRule, state: string, log: StepLog): boolean {
  return (rule.state === '*' || rule.state === state) && (rule.log === '*' || rule.log.includes(log));
}

/** The rule for (state, log), first match; undefined for a state the table does not cover (a resting one). Pure. */
export function ruleFor(state: string, log: StepLog): RecoveryRule | undefined {
  return RECOVERY_RULES.find((r) => matches(r, state, log));
}

/**
 * What to do with a node found in a transient state. Pure.
 * @throws FleetError('internal') for a state the table does not cover (not transient).
 */
export function recoveryFor(f: RecoveryFacts): RecoveryDecision {
  const log = stepLog(f);
  const rule = ruleFor(f.state, log);
  if (!rule) throw new FleetError('internal', `no recovery rule for a node in ${f.state} (${log})`, { state: f.state, log });
  switch (rule.action) {
    case 'retry-step':
      return { rule, log, attempt: f.failed + 1 };
    case 'rerun-step':
      return { rule, log, attempt: Math.min(f.started + 1, f.maxAttempts) };
    case 'fail':
      return { rule, log, attempt: 1, reason: f.lastFailure?.reason ?? 'failed', attempts: f.failed };
    default:
      return { rule, log, attempt: 1 };
  }
}

/** Self-check of the recovery table (a test runs it): every transient state has a rule for every log, and every action suits its state's step. */
export function checkRecoveryTable(): string[] {
  const problems: string[] = [];
  for (const state of TRANSIENT_STATES) {
    const step = stateSpec(state)?.step;
    for (const log of STEP_LOGS) {
      const rule = ruleFor(state, log);
      if (!rule) {
        problems.push(`no recovery rule for ${state} ${log}`);
        continue;
      }
      const a = rule.action;
      if (!step && a !== 'wait' && a !== 'timeout') problems.push(`${state} has no step, but ${log} → ${a}`);
      if (a === 'read-power' && step !== STEP.powerCycle) problems.push(`${state} ${log} → read-power, but its step is not the power cycle`);
      if (step === STEP.powerCycle && (a === 'rerun-step' || (a === 'run-step' && log !== 'not-started' && log !== 'slot-ahead'))) {
        problems.push(`${state} ${log} → ${a} could repeat a power cycle`);
      }
      if ((a === 'retry-step' || a === 'rerun-step' || a === 'keep-slot') && !(step && isBmcStep(step))) problems.push(`${state} ${log} → ${a}, but its step is not a BMC step`);
      if (a === 'keep-slot' && step !== STEP.armPxe) problems.push(`${state} ${log} → keep-slot, but only arm-pxe waits for a stagger slot`);
    }
  }
  for (const r of RECOVERY_RULES) if (r.state !== '*' && !(TRANSIENT_STATES as readonly string[]).includes(r.state)) problems.push(`recovery rule for resting state ${r.state}`);
  return problems;
}

/**
 * Recovery as data (server/lifecycle/recovery-table.ts): the rule table is
 * total over the transient states, and recoveryFor() is pure — what a
 * restarted conductor does with a node found mid-operation, without a store,
 * a BMC or a socket.
 */
import { describe, expect, it } from 'vitest';
import { checkRecoveryTable, RECOVERY_RULES, recoveryFor, ruleFor, STEP_LOGS, stepFacts, stepLog, type RecoveryFacts } from '../../../server/lifecycle/recovery-table.js';
import { LIFECYCLE_EVENT_KINDS as K, S, STEP, TRANSIENT_STATES } from '../../../server/lifecycle/states.js';

/** A node entered its state, nothing happened since, 3 attempts allowed. */
function facts(state: string, more: Partial<RecoveryFacts> = {}): RecoveryFacts {
  return { state, overdue: false, slotAhead: false, maxAttempts: 3, started: 0, failed: 0, done: false, ...more };
}

const started = (n: number): Partial<RecoveryFacts> => ({ started: n });
const failedLast = (n: number, willRetry: boolean | undefined, reason = 'bmc said no'): Partial<RecoveryFacts> => ({
  started: n,
  failed: n,
  lastFailure: { ...(willRetry !== undefined ? { willRetry } : {}), reason },
});

describe('the recovery table', () => {
  it('passes its self-check: a rule for every transient state and log, each suited to its step', () => {
    expect(checkRecoveryTable()).toEqual([]);
  });

  it('covers every (transient state, log) pair and no resting state', () => {
    for (const s of TRANSIENT_STATES) for (const log of STEP_LOGS) expect(ruleFor(s, log), `${s} ${log}`).toBeDefined();
    for (const s of [S.enrolled, S.ready, S.failed]) expect(ruleFor(s, 'not-started')).toBeUndefined();
  });

  it('says why for every rule', () => {
    for (const r of RECOVERY_RULES) expect(r.why.length, JSON.stringify(r)).toBeGreaterThan(10);
  });

  it('never sends a power cycle that may have happened again', () => {
    for (const log of ['failed-may-retry', 'failed-final', 'interrupted'] as const) {
      expect(ruleFor(S.powerCycling, log)?.action).not.toMatch(/^(run|rerun)-step$/);
    }
    expect(ruleFor(S.powerCycling, 'interrupted')?.action).toBe('read-power');
  });

  it('throws for a state outside the table', () => {
    expect(() => recoveryFor(facts(S.ready))).toThrow(/no recovery rule/);
  });
});

describe('stepLog', () => {
  it('reads the situation in order: overdue, done, never started, failed, interrupted', () => {
    expect(stepLog(facts(S.powerCycling, { overdue: true, done: true }))).toBe('overdue');
    expect(stepLog(facts(S.powerCycling, { done: true, ...started(1) }))).toBe('done');
    expect(stepLog(facts(S.pxeArmed))).toBe('not-started');
    expect(stepLog(facts(S.pxeArmed, { slotAhead: true }))).toBe('slot-ahead');
    expect(stepLog(facts(S.powerCycling, failedLast(1, true)))).toBe('failed-may-retry');
    expect(stepLog(facts(S.powerCycling, failedLast(3, true)))).toBe('failed-final'); // no attempts left
    expect(stepLog(facts(S.powerCycling, failedLast(1, false)))).toBe('failed-final');
    expect(stepLog(facts(S.powerCycling, failedLast(1, undefined)))).toBe('interrupted');
    expect(stepLog(facts(S.powerCycling, started(2)))).toBe('interrupted');
  });
});

describe('stepFacts', () => {
  const ev = (kind: string, details: Record<string, unknown>) => ({ kind, details });

  it("counts only the state's step's own events", () => {
    const since = [
      ev(K.stepStarted, { step: STEP.powerCycle, attempt: 1 }),
      ev(K.stepFailed, { step: STEP.powerCycle, attempt: 1, willRetry: true, reason: 'refused' }),
      ev('boot.ipxe_script', { step: STEP.powerCycle }),
      ev(K.stepStarted, { step: STEP.powerCycle, attempt: 2 }),
      ev(K.stepStarted, { step: STEP.armPxe, attempt: 1 }),
    ];
    expect(stepFacts(since, STEP.powerCycle)).toEqual({ started: 2, failed: 1, done: false });
    expect(stepFacts(since.slice(0, 2), STEP.powerCycle)).toEqual({ started: 1, failed: 1, done: false, lastFailure: { step: STEP.powerCycle, attempt: 1, willRetry: true, reason: 'refused' } });
    expect(stepFacts([ev(K.stepDone, { step: STEP.flipToDisk })], STEP.flipToDisk).done).toBe(true);
    expect(stepFacts(since, undefined)).toEqual({ started: 0, failed: 0, done: false });
  });
});

describe('recoveryFor', () => {
  /** [state, facts, action, report, attempt] */
  const cases: [string, Partial<RecoveryFacts>, string, string, number][] = [
    // every state: a passed deadline fires the timeout; a finished step waits
    [S.configuring, { overdue: true }, 'timeout', 'timed out', 1],
    [S.powerCycling, { done: true, ...started(1) }, 'wait', 'waiting', 1],
    // wait states
    [S.netbooting, {}, 'wait', 'waiting', 1],
    [S.installing, {}, 'wait', 'waiting', 1],
    [S.diskArmed, {}, 'wait', 'waiting', 1],
    // arm-pxe
    [S.pxeArmed, { slotAhead: true }, 'keep-slot', 'stagger slot kept', 1],
    [S.pxeArmed, {}, 'run-step', 'step started', 1],
    [S.pxeArmed, started(1), 'rerun-step', 'step rerun', 2],
    [S.pxeArmed, started(5), 'rerun-step', 'step rerun', 3], // never past the last attempt
    [S.pxeArmed, failedLast(1, true), 'rerun-step', 'step rerun', 2],
    [S.pxeArmed, failedLast(1, false), 'fail', 'failed (no attempts left)', 1],
    // power-cycle
    [S.powerCycling, {}, 'run-step', 'step started', 1],
    [S.powerCycling, { slotAhead: true }, 'run-step', 'step started', 1],
    [S.powerCycling, failedLast(2, true), 'retry-step', 'step retried', 3],
    [S.powerCycling, failedLast(3, true), 'fail', 'failed (no attempts left)', 1],
    [S.powerCycling, failedLast(1, false), 'fail', 'failed (no attempts left)', 1],
    [S.powerCycling, started(1), 'read-power', 'power read', 1],
    [S.powerCycling, failedLast(1, undefined), 'read-power', 'power read', 1],
    // flip-to-disk
    [S.installed, {}, 'run-step', 'step started', 1],
    [S.installed, started(2), 'rerun-step', 'step rerun', 3],
    [S.installed, failedLast(3, true), 'fail', 'failed (no attempts left)', 1],
    // checks of the store
    [S.firstBoot, {}, 'run-step', 'step rerun', 1],
    [S.configuring, {}, 'run-step', 'step rerun', 1],
  ];
  it.each(cases)('%s %j → %s (%s)', (state, more, action, report, attempt) => {
    const d = recoveryFor(facts(state, more));
    expect(d.rule.action).toBe(action);
    expect(d.rule.report).toBe(report);
    expect(d.attempt).toBe(attempt);
  });

  it('fails with the last failure, as the dead conductor was about to', () => {
    const d = recoveryFor(facts(S.installed, failedLast(2, false, 'boot device refused')));
    expect(d).toMatchObject({ reason: 'boot device refused', attempts: 2 });
    expect(recoveryFor(facts(S.installed, { ...failedLast(1, false), lastFailure: { willRetry: false } })).reason).toBe('failed');
  });

  it('is quiet on a sweep only for a re-check that is not news', () => {
    const quiet = (state: string, more: Partial<RecoveryFacts> = {}) => recoveryFor(facts(state, more)).rule.quietOnSweep === true;
    expect(quiet(S.netbooting)).toBe(true);
    expect(quiet(S.firstBoot)).toBe(true);
    expect(quiet(S.configuring)).toBe(true);
    expect(quiet(S.powerCycling, { done: true, ...started(1) })).toBe(true);
    expect(quiet(S.pxeArmed, started(1))).toBe(false); // a BMC step sent again is news
    expect(quiet(S.powerCycling, started(1))).toBe(false);
    expect(quiet(S.configuring, { overdue: true })).toBe(false);
  });
});

describe('docs/lifecycle.md recovery table', () => {
  it('is generated from RECOVERY_RULES and in sync', async () => {
    const { readFile } = await import('node:fs/promises');
    const { RECOVERY_BEGIN, generatedSection, renderRecoveryTableMarkdown } = await import('../../../server/lifecycle/doc.js');
    const doc = await readFile(new URL('../../../docs/lifecycle.md', import.meta.url), 'utf8');
    expect(generatedSection(doc, RECOVERY_BEGIN)).toBe(renderRecoveryTableMarkdown());
    expect(renderRecoveryTableMarkdown().split('\n').filter((l) => /^\| (`|any)/.test(l)).length).toBe(RECOVERY_RULES.length);
  });
});

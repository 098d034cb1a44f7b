/**
 * Adoption in the lifecycle (issue 12 item 5): the pure transitions and
 * fact rules of `adopting`, the enrolment policy, and the conductor taking
 * an adopted node to ready on its agent's first clean apply report.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { enrolmentRefusal } from '../../../server/agents/enroll-policy.js';
import { Conductor } from '../../../server/lifecycle/conductor.js';
import { eventForFact, FACT } from '../../../server/lifecycle/facts.js';
import { recoveryFor } from '../../../server/lifecycle/recovery-table.js';
import { ADOPT_PATH, E, S, TRANSIENT_STATES } from '../../../server/lifecycle/states.js';
import { next, stateSpec, tryNext } from '../../../server/lifecycle/table.js';
import { TOKEN_REVOKING_EVENTS } from '../../../server/lifecycle/transition.js';
import type { Steps } from '../../../server/lifecycle/steps.js';
import { openStore } from '../../../server/store/index.js';
import { PROFILE } from '../../helpers/lifecycle.js';

describe('adopting: the table (pure)', () => {
  it('adopt leads from every resting state, and from adopting itself (a new line), to adopting', () => {
    for (const from of [S.enrolled, S.ready, S.failed, S.adopting]) expect(next(from, E.adopt).to).toBe(S.adopting);
    // Never in the middle of a reinstall: cancel first.
    for (const from of TRANSIENT_STATES.filter((s) => s !== S.adopting)) expect(tryNext(from, E.adopt)).toBeUndefined();
    expect(() => next(S.installing, E.adopt, 'n1')).toThrow(/'adopt' is not allowed there/);
  });

  it('the happy path: adopting → configuring (enrolled) → ready (applied); neither arms the node', () => {
    let state: string = S.enrolled;
    for (const [event, to] of [
      [E.adopt, S.adopting],
      [E.configure, S.configuring],
      [E.complete, S.ready],
    ] as const) {
      const t = next(state, event);
      expect(t.to).toBe(to);
      expect(t.armed).toBeUndefined();
      state = t.to;
    }
    expect(ADOPT_PATH).toEqual([S.adopting, S.configuring, S.ready]);
  });

  it('adopting is transient: a timeout fails it, cancel rests it, both revoke the adoption token', () => {
    expect(stateSpec(S.adopting)).toMatchObject({ kind: 'transient', timeoutSeconds: 7200, onTimeout: E.fail });
    expect(next(S.adopting, E.fail)).toMatchObject({ to: S.failed, armed: 'disarm' });
    expect(next(S.adopting, E.cancel)).toMatchObject({ to: S.enrolled, armed: 'disarm' });
    expect(TOKEN_REVOKING_EVENTS.has(E.fail) && TOKEN_REVOKING_EVENTS.has(E.cancel)).toBe(true);
    // adopt itself does not revoke: the route issues the token right after the transition.
    expect(TOKEN_REVOKING_EVENTS.has(E.adopt)).toBe(false);
  });

  it('facts: the agent\'s enrolment moves an adopting node; an apply report there waits for configuring', () => {
    expect(eventForFact(S.adopting, FACT.agentEnrolled, { peer: '10.10.4.1', repeated: false })).toEqual({ event: E.configure, details: { peer: '10.10.4.1' } });
    expect(eventForFact(S.adopting, FACT.agentApplied, { version: 'v' })).toMatchObject({ ignore: expect.stringContaining('configuring starts') });
    expect(eventForFact(S.configuring, FACT.agentApplied, { version: 'v' })).toEqual({ event: E.complete, details: { version: 'v' } });
    expect(eventForFact(S.configuring, FACT.agentApplyFailed, { failed: ['chrony'] })).toMatchObject({ event: E.fail });
    expect(eventForFact(S.ready, FACT.agentEnrolled, {})).toMatchObject({ ignore: expect.any(String) });
  });

  it('recovery: an adopting node found after a restart waits (or times out when overdue)', () => {
    const base = { state: S.adopting, slotAhead: false, maxAttempts: 1, started: 0, failed: 0, done: false };
    expect(recoveryFor({ ...base, overdue: false }).rule.action).toBe('wait');
    expect(recoveryFor({ ...base, overdue: true }).rule.action).toBe('timeout');
  });

  it('enrolment policy: an adopting node may enrol unarmed; a resting or configuring one may not', () => {
    expect(enrolmentRefusal({ name: 'rp4n1', state: S.adopting, armed: false })).toBeNull();
    for (const state of [S.enrolled, S.ready, S.failed, S.configuring]) {
      expect(enrolmentRefusal({ name: 'rp4n1', state, armed: false })?.code).toBe('enroll.not_installing');
    }
    expect(enrolmentRefusal({ name: 'rp4n1', state: S.installing, armed: false })?.code).toBe('enroll.not_installing');
    expect(enrolmentRefusal({ name: 'rp4n1', state: S.installing, armed: true })).toBeNull();
  });
});

describe('adopting: through the conductor', () => {
  /** Steps that fail the test if called: adoption never touches a BMC. */
  const noBmc: Steps & { calls: string[] } = {
    calls: [],
    armPxe: async (n) => void noBmc.calls.push(`armPxe ${n}`),
    powerCycle: async (n) => (noBmc.calls.push(`powerCycle ${n}`), 'cycle'),
    powerOn: async (n) => void noBmc.calls.push(`powerOn ${n}`),
    powerStatus: async (n) => (noBmc.calls.push(`powerStatus ${n}`), 'on'),
    flipToDisk: async (n) => void noBmc.calls.push(`flipToDisk ${n}`),
  };

  it('enrolled → adopting → configuring → ready on the first clean apply report; a failed role fails it', async () => {
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(PROFILE, { actor: 't' });
    for (const name of ['rp4n1', 'rp4n2']) await store.nodes.upsert({ name, profile: PROFILE.name, macs: [], pet: true }, { actor: 't' });
    const c = new Conductor({ store, steps: noBmc, tickMs: 60_000, sweepIntervalMs: 0 });
    try {
      // Pets too: adoption erases nothing.
      expect(await c.adopt('rp4n1', { actor: 'admin' })).toMatchObject({ ok: true, from: S.enrolled, state: S.adopting });
      expect(await c.signal('rp4n1', EVENT.agentApplied, { version: 'v0' })).toMatchObject({ status: 'ignored' });
      expect(await c.signal('rp4n1', EVENT.agentEnrolled, { peer: '10.10.4.1' })).toMatchObject({ status: 'applied', to: S.configuring });
      await c.idle();
      // check-applied found no apply report of this run: configuring waits for the agent's.
      expect((await store.nodes.require('rp4n1')).state).toBe(S.configuring);
      await store.events.append({ node: 'rp4n1', kind: EVENT.agentApplied, actor: 'agent', details: { version: 'v1', failed: [] } });
      expect(await c.signal('rp4n1', EVENT.agentApplied, { version: 'v1', failed: [] })).toMatchObject({ status: 'applied', to: S.ready });
      expect(await store.nodes.require('rp4n1')).toMatchObject({ state: S.ready, armed: false });

      await c.adopt('rp4n2', { actor: 'admin' });
      await c.signal('rp4n2', EVENT.agentEnrolled, {});
      await c.idle();
      expect(await c.signal('rp4n2', EVENT.agentApplyFailed, { version: 'v1', failed: ['chrony'] })).toMatchObject({ status: 'applied', to: S.failed });
      // Adopt again after the fix.
      expect(await c.adopt('rp4n2', { actor: 'admin' })).toMatchObject({ ok: true, from: S.failed, state: S.adopting });
      // An unknown node is refused.
      await expect(c.adopt('ghost', { actor: 'admin' })).rejects.toMatchObject({ code: 'node.not_found' });
      expect(noBmc.calls).toEqual([]);
    } finally {
      await c.stop();
      await store.close();
    }
  });
});

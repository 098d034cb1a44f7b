/**
 * The conductor against the real in-memory store and a scripted BMC double:
 * every table transition, refusals, timeouts, retries, recovery after a
 * crash in each transient state, two conductors racing, cancel, pets,
 * stagger, the boot-loop flag.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { markNotRun } from '../../../server/bmc/retry.js';
import { FACT as SIGNAL } from '../../../server/lifecycle/facts.js';
import { E, LIFECYCLE_EVENT_KINDS as K, REINSTALL_PATH, S, TRANSIENT_STATES } from '../../../server/lifecycle/states.js';
import { nodeStatus } from '../../../server/lifecycle/status.js';
import { TRANSITIONS } from '../../../server/lifecycle/table.js';
import { Clock, diskBoot, FakeBmc, harness, PROFILE, type Harness } from '../../helpers/lifecycle.js';
import { openStore } from '../../../server/store/index.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { createReports } from '../../../server/agents/reports.js';
import { Inventory as ProtoInventory, RoleOutcome } from '../../../proto/gen/fleet/v1/agent.js';

const ACTOR = { actor: 'tester' };
const INSTALL = { decision: 'install', mac: '52:54:00:00:00:01' };
const PATH_FROM_ENROLLED = (() => {
  let prev: string = S.enrolled;
  return REINSTALL_PATH.map((s) => {
    const t = `${prev}>${s}`;
    prev = s;
    return t;
  });
})();

let h: Harness;
afterEach(async () => {
  await h?.close();
});

/** Reinstall and start the node's steps now: it ends in power-cycling, power-cycled, waiting for its netboot. */
async function startReinstall(x: Harness, node = 'n1'): Promise<void> {
  const [r] = await x.c.reinstall([node], ACTOR);
  expect(r?.ok, r?.error?.message).toBe(true);
  await x.c.tick();
  await x.c.idle();
}

/** Drives n1 from a resting state to `target` along the reinstall path, as the outside world would. */
async function driveTo(x: Harness, target: string, node = 'n1'): Promise<void> {
  const steps: [string, () => Promise<unknown>][] = [
    [S.powerCycling, () => startReinstall(x, node)],
    [S.netbooting, () => x.fact(node, SIGNAL.scriptFetched, INSTALL)],
    [S.installing, () => x.fact(node, SIGNAL.kickstartFetched, {})],
    [S.diskArmed, async () => {
      await x.enrol(node);
      await x.fact(node, SIGNAL.installFinished, {});
    }],
    [S.configuring, () => x.fact(node, SIGNAL.agentBoot, diskBoot())],
    [S.ready, async () => {
      await x.store.agents.recordApply(node, 'v1', false, {}, { actor: `node:${node}` });
      await x.c.signal(node, SIGNAL.agentApplied, { version: 'v1' });
    }],
  ];
  for (const [state, act] of steps) {
    await act();
    await x.c.idle();
    expect((await x.store.nodes.require(node)).state).toBe(state);
    if (state === target) return;
  }
  throw new Error(`cannot drive to ${target}`);
}

describe('conductor: the reinstall path', () => {
  it('takes a node from enrolled to ready through every state, one BMC action of each kind', async () => {
    h = await harness();
    await driveTo(h, S.ready);
    expect(await h.transitions('n1')).toEqual(PATH_FROM_ENROLLED);
    expect(h.bmc.calls).toEqual(['armPxe n1', 'powerCycle n1', 'flipToDisk n1']);
    const kinds = await h.eventKinds('n1');
    expect(kinds.filter((k) => k === 'node.armed')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'node.disarmed')).toHaveLength(1);
    expect(kinds.filter((k) => k === K.stepStarted)).toHaveLength(3);
    const n = await h.store.nodes.require('n1');
    expect(n.armed).toBe(false);
    expect(n.stateDeadline).toBeNull();
  });

  it('arms the node only after the PXE override, and disarms it in the install-finished transaction', async () => {
    h = await harness();
    const bmcHold = h.bmc.hold('armPxe', 'n1');
    await h.c.reinstall(['n1'], ACTOR);
    void h.c.tick();
    await bmcHold.entered;
    expect((await h.store.nodes.require('n1')).armed).toBe(false); // pxe-armed, override not yet accepted: a netboot gets localboot
    bmcHold.release();
    await h.c.idle();
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.powerCycling, armed: true });
    await h.fact('n1', SIGNAL.scriptFetched, INSTALL);
    await h.fact('n1', SIGNAL.kickstartFetched, {});
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.installing, armed: true });
    const flip = h.bmc.hold('flipToDisk', 'n1');
    await h.fact('n1', SIGNAL.installFinished, {});
    await flip.entered;
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.installed, armed: false });
    const page = await h.store.events.list({ node: 'n1', order: 'desc', limit: 2 });
    expect(page.events.map((e) => e.kind)).toEqual(['lifecycle.step_started', 'node.disarmed']);
    flip.release();
    await h.c.idle();
  });

  it('applies every transition of the table (and writes nothing for a repeated signal)', async () => {
    h = await harness();
    for (const t of TRANSITIONS) {
      await h.c.idle();
      await h.put('n1', t.from, { armed: false });
      const before = await h.store.events.lastId();
      const gen = (await h.store.nodes.require('n1')).generation;
      await h.c.fire('n1', t.event, { actor: 'tester' });
      const page = await h.store.events.list({ node: 'n1', kinds: ['state.changed'], afterId: before, limit: 10 });
      if (t.stay) {
        expect(page.events, `${t.from} ${t.event}`).toHaveLength(0);
        expect((await h.store.nodes.require('n1')).generation).toBe(gen);
      } else {
        expect(page.events[0], `${t.from} ${t.event}`).toMatchObject({ fromState: t.from, toState: t.to, details: { event: t.event } });
      }
      await h.c.idle();
    }
  });

  it('refuses an event the state does not allow with state.invalid_transition and writes nothing', async () => {
    h = await harness();
    for (const [state, event] of [
      [S.enrolled, E.finish],
      [S.ready, E.netboot],
      [S.failed, E.cancel],
      [S.installing, E.reinstall],
      [S.netbooting, E.complete],
    ] as const) {
      await h.put('n1', state);
      const before = await h.store.events.lastId();
      const gen = (await h.store.nodes.require('n1')).generation;
      await expect(h.c.fire('n1', event)).rejects.toMatchObject({ code: 'state.invalid_transition' });
      expect(await h.store.events.lastId()).toBe(before);
      expect((await h.store.nodes.require('n1')).generation).toBe(gen);
    }
    const [r] = await h.c.reinstall(['n1'], ACTOR); // n1 is netbooting
    expect(r).toMatchObject({ ok: false, error: { code: 'state.invalid_transition' } });
  });

  it('ignores facts a state does not await', async () => {
    h = await harness();
    await h.put('n1', S.ready);
    expect(await h.fact('n1', SIGNAL.installFinished, {})).toMatchObject({ status: 'ignored' });
    expect(await h.fact('n1', SIGNAL.scriptFetched, { decision: 'localboot' })).toMatchObject({ status: 'ignored' });
    expect(await h.c.signal('n1', 'no.such.kind', {})).toMatchObject({ status: 'ignored' });
    expect(await h.c.signal('ghost', SIGNAL.installFinished, {})).toMatchObject({ status: 'unknown-node' });
    expect((await h.store.nodes.require('n1')).state).toBe(S.ready);
  });
});

describe('conductor: timeouts and retries', () => {
  it('fails a node whose state timed out, with step and reason; deadlines come from the settings', async () => {
    h = await harness({ conductor: { settings: { timeouts: { netbooting: 120 } } } });
    await driveTo(h, S.netbooting);
    const n = await h.store.nodes.require('n1');
    expect(Date.parse(n.stateDeadline!)).toBe(h.clock.ms + 120_000);
    h.clock.advance(119);
    await h.c.tick();
    await h.c.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.netbooting);
    h.clock.advance(2);
    await h.c.tick();
    await h.c.idle();
    const after = await h.store.nodes.require('n1');
    expect(after).toMatchObject({ state: S.failed, armed: false, stateDeadline: null });
    const st = await nodeStatus(h.store, after, h.clock.now());
    expect(st.failure).toMatchObject({ step: S.netbooting, reason: 'timed out after 2 min in netbooting waiting for the installer to fetch its kickstart' });
  });

  it('retries a failing step (bounded) and goes on when it succeeds', async () => {
    h = await harness();
    h.bmc.failNext('armPxe', 'n1', new FleetError('bmc.timeout', 'no answer'), new FleetError('bmc.timeout', 'no answer'));
    await startReinstall(h);
    expect(h.bmc.count('armPxe', 'n1')).toBe(3);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    const failed = (await h.store.events.list({ node: 'n1', kinds: [K.stepFailed] })).events.map((e) => e.details);
    expect(failed).toEqual([
      expect.objectContaining({ step: 'arm-pxe', attempt: 1, willRetry: true }),
      expect.objectContaining({ step: 'arm-pxe', attempt: 2, willRetry: true }),
    ]);
  });

  it('fails after the last retry with the step and the BMC reason (a refusal proves the cycle did not run)', async () => {
    h = await harness();
    const err = () => markNotRun(new FleetError('bmc.command_failed', 'command refused (bmc 10.0.0.1, ipmi): busy'));
    h.bmc.failNext('powerCycle', 'n1', err(), err(), err());
    await startReinstall(h);
    expect(h.bmc.count('powerCycle', 'n1')).toBe(3);
    const n = await h.store.nodes.require('n1');
    expect(n).toMatchObject({ state: S.failed, armed: false });
    expect((await nodeStatus(h.store, n)).failure).toMatchObject({ step: 'power-cycle', reason: 'command refused (bmc 10.0.0.1, ipmi): busy' });
  });

  it('does not retry what cannot succeed (authentication)', async () => {
    h = await harness();
    h.bmc.failNext('armPxe', 'n1', new FleetError('bmc.auth_failed', 'authentication failed (bmc 10.0.0.1, ipmi): bad password'));
    await startReinstall(h);
    expect(h.bmc.count('armPxe', 'n1')).toBe(1);
    expect(h.bmc.count('powerCycle')).toBe(0);
    const n = await h.store.nodes.require('n1');
    expect((await nodeStatus(h.store, n)).failure).toMatchObject({ step: 'arm-pxe', reason: expect.stringContaining('authentication failed') });
  });

  it('never repeats a power cycle whose answer was unreadable (it may have landed): it reads the power instead', async () => {
    h = await harness();
    h.bmc.failNext('powerCycle', 'n1', new FleetError('bmc.protocol', 'garbled answer'));
    await startReinstall(h);
    expect(h.bmc.count('powerCycle', 'n1')).toBe(1);
    expect(h.bmc.count('powerStatus', 'n1')).toBe(1);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    const done = (await h.store.events.list({ node: 'n1', kinds: [K.stepDone] })).events[0];
    expect(done?.details).toMatchObject({ step: 'power-cycle', action: expect.stringContaining('not repeated') });
  });

  it('never repeats a power cycle that timed out: it reads the power instead', async () => {
    h = await harness();
    h.bmc.failNext('powerCycle', 'n1', new FleetError('bmc.timeout', 'no answer within 20000 ms'));
    await startReinstall(h);
    expect(h.bmc.count('powerCycle', 'n1')).toBe(1);
    expect(h.bmc.count('powerStatus', 'n1')).toBe(1);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    const done = (await h.store.events.list({ node: 'n1', kinds: [K.stepDone] })).events[0];
    expect(done?.details).toMatchObject({ step: 'power-cycle', action: expect.stringContaining('not repeated') });
  });
});

describe('conductor: recovery after a crash', () => {
  /** Conductor A works on n1 until the BMC call `op` is held, then dies; the lease expires; B starts on the same store. */
  async function crashDuring(op: 'armPxe' | 'powerCycle' | 'flipToDisk', mode: 'before' | 'after-off' | 'after', drive: () => Promise<void>) {
    const held = h.bmc.hold(op, 'n1', mode);
    const run = drive();
    await held.entered;
    h.c.halt();
    void run.catch(() => undefined);
    h.clock.advance(61); // the dead conductor's lock lease expires
    const bmcB = new FakeBmc();
    bmcB.power.set('n1', h.bmc.power.get('n1') ?? 'on');
    const b = h.conductor({ bmc: bmcB, owner: 'B' });
    const report = await b.start();
    await b.idle();
    return { b, bmcB, report };
  }

  it('pxe-armed, interrupted while setting the PXE override: sets it again (idempotent) and goes on', async () => {
    h = await harness();
    const { bmcB, report } = await crashDuring('armPxe', 'before', async () => {
      await h.c.reinstall(['n1'], ACTOR);
      await h.c.tick();
    });
    expect(report.actions).toEqual({ 'step rerun': 1 });
    expect(bmcB.calls).toEqual(['armPxe n1', 'powerCycle n1']);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    expect(await h.eventKinds('n1')).toContain(K.recovered);
  });

  it('power-cycling, crashed after the cycle: reads the power (on) and does not cycle again', async () => {
    h = await harness();
    const { b, bmcB, report } = await crashDuring('powerCycle', 'after', () => startReinstall(h));
    expect(h.bmc.count('powerCycle', 'n1')).toBe(1);
    expect(bmcB.calls).toEqual(['powerStatus n1']);
    expect(report.actions).toEqual({ 'power read: on, not repeated': 1 });
    expect(await h.fact('n1', SIGNAL.scriptFetched, INSTALL, b)).toMatchObject({ status: 'applied', to: S.netbooting });
  });

  it('power-cycling, crashed between off and on: powers the node on, no second cycle', async () => {
    h = await harness();
    const { bmcB, report } = await crashDuring('powerCycle', 'after-off', () => startReinstall(h));
    expect(bmcB.calls).toEqual(['powerStatus n1', 'powerOn n1']);
    expect(report.actions).toEqual({ 'power read: off, powered on': 1 });
    expect(bmcB.power.get('n1')).toBe('on');
  });

  it('power-cycling, the power state unreadable: fails with that reason instead of acting blindly', async () => {
    h = await harness();
    const held = h.bmc.hold('powerCycle', 'n1', 'before');
    const run = startReinstall(h);
    await held.entered;
    h.c.halt();
    void run.catch(() => undefined);
    h.clock.advance(61);
    const bmcB = new FakeBmc();
    bmcB.failNext('powerStatus', 'n1', new FleetError('bmc.timeout', 'no answer'));
    const b = h.conductor({ bmc: bmcB, owner: 'B' });
    await b.start();
    expect(bmcB.count('powerCycle')).toBe(0);
    expect(bmcB.count('powerOn')).toBe(0);
    const n = await h.store.nodes.require('n1');
    expect((await nodeStatus(h.store, n)).failure).toMatchObject({ step: 'power-cycle', reason: expect.stringContaining('power state unreadable') });
  });

  it.each([
    [true, 'step retried', ['powerCycle n1']],
    [false, 'failed (no attempts left)', []],
  ] as const)('power-cycling, crashed right after a failed attempt (willRetry %s): %s, never a blind repeat', async (willRetry, action, calls) => {
    h = await harness();
    await h.put('n1', S.powerCycling, { armed: true, deadlineSeconds: 900 });
    await h.store.events.append({ node: 'n1', kind: K.stepStarted, actor: 'A', details: { step: 'power-cycle', attempt: 1, state: S.powerCycling } });
    await h.store.events.append({
      node: 'n1',
      kind: K.stepFailed,
      actor: 'A',
      details: { step: 'power-cycle', attempt: 1, code: 'bmc.command_failed', reason: 'command refused (bmc 10.0.0.1, ipmi): busy', willRetry },
    });
    const report = await h.c.start();
    await h.c.idle();
    expect(report.actions).toEqual({ [action]: 1 });
    expect(h.bmc.calls).toEqual(calls);
    if (!willRetry) expect((await h.store.nodes.require('n1')).state).toBe(S.failed);
  });

  it('power-cycling before the step started: runs the power cycle (the first power action)', async () => {
    h = await harness();
    await h.put('n1', S.powerCycling, { armed: true, deadlineSeconds: 900 });
    const report = await h.c.start();
    await h.c.idle();
    expect(report.actions).toEqual({ 'step started': 1 });
    expect(h.bmc.calls).toEqual(['powerCycle n1']);
  });

  it('installed, interrupted while setting the boot device: sets it again and goes on', async () => {
    h = await harness();
    await driveTo(h, S.installing);
    await h.enrol('n1');
    const { bmcB, report } = await crashDuring('flipToDisk', 'before', async () => {
      await h.fact('n1', SIGNAL.installFinished, {});
    });
    expect(report.actions).toEqual({ 'step rerun': 1 });
    expect(bmcB.calls).toEqual(['flipToDisk n1']);
    expect((await h.store.nodes.require('n1')).state).toBe(S.diskArmed);
  });

  it('wait states replay the facts that came while the server was down', async () => {
    h = await harness();
    await driveTo(h, S.netbooting);
    h.c.halt();
    await h.factOnly('n1', SIGNAL.kickstartFetched, {});
    await h.factOnly('n1', SIGNAL.installStarted, {});
    await h.enrol('n1');
    await h.factOnly('n1', SIGNAL.installFinished, {});
    const bmcB = new FakeBmc();
    const b = h.conductor({ bmc: bmcB, owner: 'B' });
    await b.start();
    await b.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.diskArmed);
    expect(bmcB.calls).toEqual(['flipToDisk n1']);
    await h.factOnly('n1', SIGNAL.agentBoot, { bootId: 'x', assessment: { rootOnLocalDisk: true, firmwareVia: 'disk' } });
    b.halt();
    const c3 = h.conductor({ bmc: new FakeBmc(), owner: 'C' });
    await c3.start();
    await c3.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.configuring);
    expect(await h.transitions('n1')).toEqual(PATH_FROM_ENROLLED.slice(0, 8));
  });

  it('every transient state: recovery never repeats a power action and leaves the node moving or waiting', async () => {
    for (const state of TRANSIENT_STATES) {
      h = await harness();
      await h.enrol('n1');
      await h.put('n1', state, { armed: state !== S.pxeArmed, deadlineSeconds: 600 });
      if (state === S.powerCycling) await h.store.events.append({ node: 'n1', kind: K.stepStarted, actor: 'dead', details: { step: 'power-cycle', attempt: 1 } });
      const report = await h.c.start();
      await h.c.idle();
      expect(report.nodes, state).toBe(1);
      expect(h.bmc.count('powerCycle') + h.bmc.count('powerOn'), state).toBeLessThanOrEqual(state === S.pxeArmed ? 1 : 0);
      const n = await h.store.nodes.require('n1');
      expect(n.state, state).not.toBe(S.failed);
      expect(await h.eventKinds('n1'), state).toContain(K.recovered);
      await h.close();
    }
  });

  it('a live conductor\'s sweep takes over the node of a conductor that died (lease expired), quietly for waiting nodes', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    const bmcB = new FakeBmc();
    const b = h.conductor({ owner: 'B', bmc: bmcB, sweepIntervalMs: 30_000, sweepMinAgeMs: 0 });
    await b.start();
    await h.enrol('n2');
    await h.put('n2', S.configuring, { armed: false, deadlineSeconds: 3600 });
    const held = h.bmc.hold('armPxe', 'n1');
    await h.c.reinstall(['n1'], ACTOR);
    void h.c.tick();
    await held.entered;
    h.c.halt();
    h.clock.advance(20);
    await b.tick(); // before the sweep interval: nothing
    await b.idle();
    expect(bmcB.calls).toEqual([]);
    h.clock.advance(41); // the lease expired, the sweep is due
    await b.tick();
    await b.idle();
    expect(bmcB.calls).toEqual(['armPxe n1', 'powerCycle n1']);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    h.clock.advance(31);
    await b.tick();
    await b.idle();
    expect((await h.eventKinds('n2')).filter((k) => k === K.recovered)).toEqual([]);
    expect(bmcB.count('powerCycle')).toBe(1);
    await b.stop();
  });

  it('fails a node whose deadline passed while the server was down', async () => {
    h = await harness();
    await h.put('n1', S.installing, { armed: true, deadlineSeconds: 60 });
    h.clock.advance(3600);
    const report = await h.c.start();
    expect(report.actions).toEqual({ 'timed out': 1 });
    const n = await h.store.nodes.require('n1');
    expect((await nodeStatus(h.store, n)).failure?.reason).toMatch(/timed out .* \(found at recovery\)/);
  });

  it('disarms a resting node found armed', async () => {
    h = await harness();
    await h.put('n1', S.ready, { armed: true });
    const report = await h.c.start();
    expect(report.disarmed).toBe(1);
    expect((await h.store.nodes.require('n1')).armed).toBe(false);
  });

  it('keeps the stagger slot of a node that had not started', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    await h.c.reinstall(['n1', 'n2'], { ...ACTOR, stagger: { count: 1, intervalMs: 600_000 } });
    await h.c.tick();
    await h.c.idle();
    h.c.halt();
    const b = h.conductor({ owner: 'B' });
    h.clock.advance(61);
    const report = await b.start();
    expect(report.actions['stagger slot kept']).toBe(1);
    expect(b.pendingStarts).toBe(1);
    expect(h.bmc.count('armPxe', 'n2')).toBe(0);
    h.clock.advance(600);
    await b.tick();
    await b.idle();
    expect(h.bmc.count('armPxe', 'n2')).toBe(1);
  });
});

describe('conductor: two conductors on one database', () => {
  it('racing on one signal: exactly one transition, one boot-device flip', async () => {
    h = await harness();
    await driveTo(h, S.installing);
    await h.enrol('n1');
    const bmcB = new FakeBmc();
    const b = h.conductor({ bmc: bmcB, owner: 'B' });
    await h.factOnly('n1', SIGNAL.installFinished, {});
    const results = await Promise.all([h.c.signal('n1', SIGNAL.installFinished, {}), b.signal('n1', SIGNAL.installFinished, {})]);
    await Promise.all([h.c.idle(), b.idle()]);
    expect(results.map((r) => r.status).sort()).toEqual(['applied', 'ignored']);
    expect(h.bmc.count('flipToDisk') + bmcB.count('flipToDisk')).toBe(1);
    expect((await h.transitions('n1')).filter((t) => t === 'installing>installed')).toHaveLength(1);
  });

  it('racing on a reinstall (two stores on one SQLite file): one wins, one power cycle', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fleet-lc-'));
    const file = path.join(dir, 'fleet.db');
    const key = randomBytes(32);
    const clock = new Clock();
    const s1 = await openStore({ file }, { secretKey: key, clock: clock.now });
    const s2 = await openStore({ file }, { secretKey: key, clock: clock.now });
    try {
      await s1.profiles.upsert(PROFILE, ACTOR);
      await s1.nodes.upsert({ name: 'n1', profile: 'compute', macs: [], pet: false }, ACTOR);
      const h1 = await harness({ store: s1, clock });
      const h2 = await harness({ store: s2, clock });
      const a = h1.conductor({ owner: 'A' });
      const b = h2.conductor({ owner: 'B' });
      const [ra, rb] = await Promise.all([a.reinstall(['n1'], ACTOR), b.reinstall(['n1'], ACTOR)]);
      const oks = [ra[0], rb[0]].filter((r) => r?.ok);
      expect(oks).toHaveLength(1);
      expect([ra[0], rb[0]].find((r) => !r?.ok)?.error?.code).toMatch(/state.invalid_transition|conflict/);
      // Both conductors recover the node at once: the lock lets one run the steps.
      await Promise.all([a.tick(), b.tick(), a.recover(), b.recover()]);
      await Promise.all([a.idle(), b.idle()]);
      expect(h1.bmc.count('armPxe') + h2.bmc.count('armPxe')).toBe(1);
      expect(h1.bmc.count('powerCycle') + h2.bmc.count('powerCycle')).toBe(1);
      expect((await s1.nodes.require('n1')).state).toBe(S.powerCycling);
      const t = (await s1.events.list({ node: 'n1', kinds: ['state.changed'] })).events.map((e) => e.toState);
      expect(t).toEqual([S.pxeArmed, S.powerCycling]);
      await h1.close();
      await h2.close();
    } finally {
      await s1.close();
      await s2.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recovery skips a node another live conductor holds; a fact that finds it busy is replayed later', async () => {
    h = await harness();
    await driveTo(h, S.installing);
    await h.enrol('n1');
    expect(await h.store.locks.acquire('n1', 'other-server', 60_000)).toBe(true);
    const rec = await h.c.recover();
    expect(rec).toMatchObject({ nodes: 1, skipped: 1 });
    const r = await h.fact('n1', SIGNAL.installFinished, {});
    expect(r.status).toBe('busy');
    expect((await h.store.nodes.require('n1')).state).toBe(S.installing);
    await h.store.locks.release('n1', 'other-server');
    await h.c.tick();
    await h.c.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.diskArmed);
    expect(h.bmc.count('flipToDisk')).toBe(1);
  });
});

describe('conductor: cancel, pets, profile, stagger', () => {
  it('cancels from every transient state: enrolled, disarmed, boot device disk (best effort)', async () => {
    h = await harness();
    for (const state of TRANSIENT_STATES) {
      await h.put('n1', state, { armed: true, deadlineSeconds: 600 });
      const [r] = await h.c.cancel(['n1'], ACTOR);
      expect(r, state).toMatchObject({ ok: true, from: state, state: S.enrolled });
      await h.c.idle();
      expect(await h.store.nodes.require('n1'), state).toMatchObject({ state: S.enrolled, armed: false, stateDeadline: null });
    }
    expect(h.bmc.count('flipToDisk', 'n1')).toBe(TRANSIENT_STATES.length);
    const [r] = await h.c.cancel(['n1'], ACTOR);
    expect(r).toMatchObject({ ok: false, error: { code: 'state.invalid_transition' } });
  });

  it('cancel wins over a step in flight; the step result is dropped, no power cycle follows', async () => {
    h = await harness();
    const held = h.bmc.hold('armPxe', 'n1');
    await h.c.reinstall(['n1'], ACTOR);
    void h.c.tick();
    await held.entered;
    const [r] = await h.c.cancel(['n1'], ACTOR);
    expect(r?.ok).toBe(true);
    held.release();
    await h.c.idle();
    expect(h.bmc.count('powerCycle')).toBe(0);
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.enrolled, armed: false });
    expect(await h.transitions('n1')).toEqual(['enrolled>pxe-armed', 'pxe-armed>enrolled']);
  });

  it('a step of a cancelled run never drives the next run (compare-and-set on the generation, not only the state)', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    const held = h.bmc.hold('armPxe', 'n1');
    await h.c.reinstall(['n1'], ACTOR);
    void h.c.tick();
    await held.entered;
    // Another server cancels and starts a new run, n1 in the second stagger slot (10 min away):
    // the state the held step saw, with a new generation.
    const b = h.conductor({ owner: 'B', bmc: new FakeBmc() });
    await b.cancel(['n1'], ACTOR);
    const again = await b.reinstall(['n2', 'n1'], { ...ACTOR, stagger: { count: 1, intervalMs: 600_000 } });
    expect(again.map((r) => r.ok)).toEqual([true, true]);
    held.release();
    await Promise.all([h.c.idle(), b.idle()]);
    expect(h.bmc.count('powerCycle', 'n1')).toBe(0);
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.pxeArmed, armed: false });
  });

  it('records a failed clean-up after cancel', async () => {
    h = await harness();
    await h.put('n1', S.installing, { armed: true });
    h.bmc.failNext('flipToDisk', 'n1', new FleetError('bmc.auth_failed', 'authentication failed'));
    await h.c.cancel(['n1'], ACTOR);
    await h.c.idle();
    expect(await h.eventKinds('n1')).toContain(K.cleanupFailed);
  });

  it('refuses pets without force', async () => {
    h = await harness({ nodes: ['n1'], pets: ['thor'] });
    const r = await h.c.reinstall(['n1', 'thor', 'ghost'], ACTOR);
    expect(r).toEqual([
      expect.objectContaining({ node: 'n1', ok: true, state: S.pxeArmed }),
      expect.objectContaining({ node: 'thor', ok: false, error: { code: 'auth.forbidden', message: 'thor is a pet: reinstall needs --force' } }),
      expect.objectContaining({ node: 'ghost', ok: false, error: expect.objectContaining({ code: 'node.not_found' }) }),
    ]);
    expect((await h.store.nodes.require('thor')).state).toBe(S.enrolled);
    const [forced] = await h.c.reinstall(['thor'], { ...ACTOR, force: true });
    expect(forced).toMatchObject({ ok: true, state: S.pxeArmed });
  });

  it('installs another profile when asked (the node\'s profile changes with an event)', async () => {
    h = await harness();
    await expect(h.c.reinstall(['n1'], { ...ACTOR, profile: 'nope' })).rejects.toMatchObject({ code: 'request.invalid' });
    const [r] = await h.c.reinstall(['n1'], { ...ACTOR, profile: 'gpu' });
    expect(r?.ok).toBe(true);
    expect((await h.store.nodes.require('n1')).profile).toBe('gpu');
    expect(await h.eventKinds('n1')).toContain('node.changed');
  });

  it('staggers the starts: N per interval, the timer of pxe-armed counted from the slot', async () => {
    h = await harness({ nodes: ['n1', 'n2', 'n3', 'n4', 'n5'] });
    const r = await h.c.reinstall(['n1', 'n2', 'n3', 'n4', 'n5'], { ...ACTOR, stagger: { count: 2, intervalMs: 60_000 } });
    expect(r.map((x) => x.notBefore ?? null)).toEqual([null, null, new Date(h.clock.ms + 60_000).toISOString(), new Date(h.clock.ms + 60_000).toISOString(), new Date(h.clock.ms + 120_000).toISOString()]);
    expect(Date.parse((await h.store.nodes.require('n5')).stateDeadline!)).toBe(h.clock.ms + 120_000 + 300_000);
    await h.c.tick();
    await h.c.idle();
    expect(h.bmc.count('powerCycle')).toBe(2);
    h.clock.advance(60);
    await h.c.tick();
    await h.c.idle();
    expect(h.bmc.count('powerCycle')).toBe(4);
    h.clock.advance(60);
    await h.c.tick();
    await h.c.idle();
    expect(h.bmc.count('powerCycle')).toBe(5);
  });
});

describe('conductor: the boot-loop breaker', () => {
  it('flags a node back on the netboot path after its install, never reinstalls it, and shows the flag', async () => {
    h = await harness();
    await driveTo(h, S.diskArmed);
    const flagged = { decision: 'localboot', flag: 'boot-loop-suspect', reason: 'n1 is back on the network boot path in state disk-armed' };
    await h.store.events.append({ node: 'n1', kind: SIGNAL.loopSuspect, actor: 'netboot', details: { reason: flagged.reason } });
    expect(await h.fact('n1', SIGNAL.scriptFetched, flagged)).toMatchObject({ status: 'ignored', flag: 'boot-loop-suspect' });
    const n = await h.store.nodes.require('n1');
    expect(n).toMatchObject({ state: S.diskArmed, armed: false });
    expect((await nodeStatus(h.store, n)).flags).toEqual(['boot-loop-suspect']);
    expect(h.bmc.count('armPxe')).toBe(1);
  });

  it('flags a first boot through the network entry, goes on to ready, and a new reinstall clears the flag', async () => {
    h = await harness();
    await driveTo(h, S.diskArmed);
    expect(await h.fact('n1', SIGNAL.agentBoot, diskBoot('b2', 'network'))).toMatchObject({ status: 'applied', flag: 'boot-loop-suspect' });
    await h.c.idle();
    await h.store.agents.recordApply('n1', 'v1', false, {}, { actor: 'node:n1' });
    await h.c.signal('n1', SIGNAL.agentApplied, { version: 'v1' });
    const ready = await h.store.nodes.require('n1');
    expect(ready.state).toBe(S.ready);
    const st = await nodeStatus(h.store, ready);
    expect(st.flags).toEqual(['boot-loop-suspect']);
    expect(st.flagReasons['boot-loop-suspect']).toMatch(/network entry 0003/);
    await h.c.reinstall(['n1'], ACTOR);
    expect((await nodeStatus(h.store, await h.store.nodes.require('n1'))).flags).toEqual([]);
  });

  it('fails the first boot when / is not on a local disk, and when the agent did not enrol in this install', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    await driveTo(h, S.diskArmed);
    await h.fact('n1', SIGNAL.agentBoot, { bootId: 'b', isNewBoot: true, assessment: { rootOnLocalDisk: false, notes: ['root is not on a local disk (10.0.0.1:/nfs, nfs)'] } });
    expect((await nodeStatus(h.store, await h.store.nodes.require('n1'))).failure).toMatchObject({ step: 'first-boot', reason: expect.stringContaining('nfs') });

    await h.put('n2', S.diskArmed);
    await h.fact('n2', SIGNAL.agentBoot, diskBoot());
    await h.c.idle();
    expect((await nodeStatus(h.store, await h.store.nodes.require('n2'))).failure).toMatchObject({ step: 'check-agent', reason: expect.stringContaining('no agent') });
  });

  it('takes an apply that was reported before configuring started, and fails on failed roles', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    await driveTo(h, S.diskArmed);
    await h.store.agents.recordApply('n1', 'v1', false, {}, { actor: 'node:n1' });
    expect(await h.c.signal('n1', SIGNAL.agentApplied, { version: 'v1' })).toMatchObject({ status: 'ignored' });
    await h.fact('n1', SIGNAL.agentBoot, diskBoot());
    await h.c.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.ready);

    await driveTo(h, S.configuring, 'n2');
    await h.store.agents.recordApply('n2', 'v1', true, { failed: ['nfs'] }, { actor: 'node:n2' });
    await h.c.signal('n2', SIGNAL.agentApplyFailed, { failed: ['nfs'] });
    expect((await nodeStatus(h.store, await h.store.nodes.require('n2'))).failure).toMatchObject({ step: 'configure', reason: 'roles failed: nfs' });
  });

  it('fails on install-failed with the installer\'s reason (user story: "no disk found by installer")', async () => {
    h = await harness();
    await driveTo(h, S.installing);
    await h.fact('n1', SIGNAL.installFailed, { message: 'no disk found by installer' });
    const n = await h.store.nodes.require('n1');
    expect(n).toMatchObject({ state: S.failed, armed: false });
    expect((await nodeStatus(h.store, n)).failure).toMatchObject({ step: 'install', reason: 'installer failed: no disk found by installer' });
  });
});

describe('conductor: life', () => {
  it('runs its timer loop after start and stops cleanly, releasing its locks', async () => {
    h = await harness({ conductor: { tickMs: 5 } });
    await h.c.start();
    await h.c.reinstall(['n1'], ACTOR);
    for (let i = 0; i < 200 && (await h.store.nodes.require('n1')).state !== S.powerCycling; i++) await new Promise((r) => setTimeout(r, 5));
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);
    await h.c.stop();
    expect(await h.store.locks.list()).toEqual([]);
  });

});

describe("conductor: hardware against the profile's expect: (USER-STORIES Day 3)", () => {
  /** The agent service's reports, told to this conductor as the server wires them. */
  function reportsTo(x: Harness) {
    const recorder = createRecorder({ store: x.store, listener: { signal: (node, kind, details) => x.c.signal(node, kind, details) } });
    return createReports({ store: x.store, recorder, limits: { enrollFailuresPerMinute: 3, maxApplyResults: 100 } });
  }
  const inv = (gpus: number, unknown: { section: string; reason: string }[] = []) =>
    ProtoInventory.fromPartial({
      cpu: { model: 'EPYC', threads: 64, cores: 32, sockets: 1 },
      memory: { totalBytes: 512 * 1024 ** 3 },
      gpus: Array.from({ length: gpus }, (_, i) => ({ model: 'H100', pciBus: `0000:0${i}:00.0`, uuid: `GPU-${i}` })),
      ...(unknown.length ? { completeness: { partial: true, unknown } } : {}),
    });
  const apply = { configVersion: 'v1', startedAtMs: 0, durationMs: 5, results: [{ role: 'chrony', outcome: RoleOutcome.ROLE_OUTCOME_OK, message: '', durationMs: 1 }] };

  it('configuring ends held when the inventory falls short; a report that meets it releases the node; a ready node losing a GPU is held again', async () => {
    h = await harness();
    await h.store.profiles.upsert({ ...PROFILE, expect: { gpus: { op: '==', value: 8 }, memory_gib: { op: '>=', value: 512 } } }, ACTOR);
    const reports = reportsTo(h);
    await driveTo(h, S.configuring);
    await reports.reportInventory('n1', { inventory: inv(7) });
    expect((await h.store.nodes.require('n1')).state).toBe(S.configuring); // an inventory alone does not end configuring
    await reports.reportApply('n1', apply);
    await h.c.idle();
    const held = await h.store.nodes.require('n1');
    expect(held.state).toBe(S.held);
    const st = await nodeStatus(h.store, held);
    expect(st.failure).toMatchObject({ step: 'expect', reason: 'hardware short of profile: gpus: 7, expected 8' });

    // still short: nothing written; a partial report (GPUs unknown) neither holds nor releases
    const changes = async () => (await h.store.events.list({ node: 'n1', kinds: ['state.changed'], limit: 100 })).events.length;
    const before = await changes();
    await reports.reportInventory('n1', { inventory: inv(7) });
    await reports.reportInventory('n1', { inventory: inv(0, [{ section: 'gpus', reason: 'nvidia-smi: timed out after 20000 ms' }]) });
    expect(await changes()).toBe(before);
    expect((await h.store.nodes.require('n1')).state).toBe(S.held);

    await reports.reportInventory('n1', { inventory: inv(8) });
    expect((await h.store.nodes.require('n1')).state).toBe(S.ready);
    await reports.reportInventory('n1', { inventory: inv(8) });
    expect((await h.store.nodes.require('n1')).state).toBe(S.ready);
    await reports.reportInventory('n1', { inventory: inv(7) });
    expect((await h.store.nodes.require('n1')).state).toBe(S.held);
    // held is a resting state a reinstall leaves
    const [r] = await h.c.reinstall(['n1'], ACTOR);
    expect(r?.ok, r?.error?.message).toBe(true);
  });

  it('a profile without expect: inventory reports never move the node; an apply with the inventory unknown ends ready', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    const reports = reportsTo(h);
    await driveTo(h, S.ready);
    await reports.reportInventory('n1', { inventory: inv(0) });
    expect((await h.store.nodes.require('n1')).state).toBe(S.ready);

    await h.store.profiles.upsert({ ...PROFILE, expect: { gpus: { op: '==', value: 8 } } }, ACTOR);
    await driveTo(h, S.configuring, 'n2');
    await reports.reportApply('n2', apply); // no inventory yet: cannot judge, not held
    await h.c.idle();
    expect((await h.store.nodes.require('n2')).state).toBe(S.ready);
    await reports.reportInventory('n2', { inventory: inv(2) });
    expect((await h.store.nodes.require('n2')).state).toBe(S.held);
  });
});

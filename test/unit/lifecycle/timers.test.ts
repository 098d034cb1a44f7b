/**
 * The timer loop (server/lifecycle/timers.ts), one tick at a time with a
 * pinned clock: stagger starts at their slot, deadlines fired as the
 * state's timeout, catch-ups retried while the node is busy, the sweep's
 * round robin. An in-memory store, a recording runner; no socket.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StepRunner } from '../../../server/lifecycle/runner.js';
import { BUSY, Pool, Sessions } from '../../../server/lifecycle/sessions.js';
import { defaultLifecycleSettings } from '../../../server/lifecycle/settings.js';
import { E, S } from '../../../server/lifecycle/states.js';
import { seconds, sweepBatch, timeoutReason, Timers, type TimersDeps } from '../../../server/lifecycle/timers.js';
import type { ApplyCtx } from '../../../server/lifecycle/transition.js';
import type { NodeRecord } from '../../../server/store/index.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';

const silent = { info() {}, warn() {}, error() {} };

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Timers over the harness's store, with a recording runner and apply. */
async function setup(nodes: string[], more: Partial<TimersDeps> = {}) {
  h = await harness({ nodes });
  const { store, clock } = h;
  const log = () => silent;
  const sessions = new Sessions({ locks: store.locks, owner: 'timers-test', lockTtlMs: 60_000, halted: () => false, log });
  const pool = new Pool(8, log);
  const ran: string[] = [];
  const replayed: string[] = [];
  const applied: { node: string; event: string; ctx: ApplyCtx }[] = [];
  const swept: string[] = [];
  const runner = {
    runEntrySteps: async (_ctl: unknown, rec: NodeRecord) => (ran.push(rec.name), rec),
    replay: async (_ctl: unknown, rec: NodeRecord) => (replayed.push(rec.name), rec),
  } as unknown as StepRunner;
  const settings = defaultLifecycleSettings();
  const timers = new Timers({
    store,
    sessions,
    pool,
    runner,
    actor: 'conductor',
    now: () => clock.ms,
    halted: () => false,
    log,
    settings: () => settings,
    apply: async (rec, event, ctx) => (applied.push({ node: rec.name, event, ctx }), rec),
    sweepNode: async (name) => void swept.push(name),
    lockWaitMs: 300,
    tickMs: 60_000,
    dueBatch: 200,
    sweepIntervalMs: 0,
    sweepMinAgeMs: 60_000,
    sweepBatch: 100,
    ...more,
  });
  const tick = async (): Promise<void> => {
    await timers.tick();
    await pool.idle();
  };
  return { h, timers, sessions, tick, ran, replayed, applied, swept };
}

describe('pure parts', () => {
  it('seconds: a duration for a reason text', () => {
    expect([5, 119, 120, 900, 7199, 7200, 9000].map(seconds)).toEqual(['5 s', '119 s', '2 min', '15 min', '120 min', '2 h', '2.5 h']);
  });

  it('timeoutReason: what the state waited for, with the timeout in force', () => {
    const settings = defaultLifecycleSettings();
    expect(timeoutReason(S.netbooting, settings)).toBe('timed out after 15 min in netbooting waiting for the installer to fetch its kickstart');
    expect(timeoutReason(S.netbooting, { ...settings, timeouts: { ...settings.timeouts, [S.netbooting]: 90 } }, ' (found at recovery)')).toBe(
      'timed out after 90 s in netbooting waiting for the installer to fetch its kickstart (found at recovery)',
    );
  });

  it('sweepBatch: round robin by name after the last one swept', () => {
    const n = (...names: string[]) => names.map((name) => ({ name }));
    expect(sweepBatch(n('a', 'b', 'c', 'd'), '', 2)).toEqual(n('a', 'b'));
    expect(sweepBatch(n('a', 'b', 'c', 'd'), 'b', 2)).toEqual(n('c', 'd'));
    expect(sweepBatch(n('a', 'b', 'c', 'd'), 'd', 3)).toEqual(n('a', 'b', 'c'));
    expect(sweepBatch(n('a', 'c'), 'b', 5)).toEqual(n('c', 'a'));
  });
});

describe('Timers.tick', () => {
  it('starts a stagger slot when it comes, not before, and only at the generation it was kept for', async () => {
    const t = await setup(['n1', 'n2']);
    await t.h.put('n1', S.pxeArmed);
    await t.h.put('n2', S.pxeArmed);
    const g1 = (await t.h.store.nodes.require('n1')).generation;
    t.timers.keepSlot('n1', t.h.clock.ms + 10_000, g1);
    t.timers.keepSlot('n2', t.h.clock.ms, g1 - 1); // stale: the node moved on since
    expect(t.timers.pendingStarts).toBe(2);
    await t.tick();
    expect(t.ran).toEqual([]);
    expect(t.timers.pendingStarts).toBe(1);
    t.h.clock.advance(10);
    await t.tick();
    expect(t.ran).toEqual(['n1']);
    expect(t.timers.pendingStarts).toBe(0);
  });

  it('a dropped slot (cancel) never starts', async () => {
    const t = await setup(['n1']);
    await t.h.put('n1', S.pxeArmed);
    t.timers.keepSlot('n1', t.h.clock.ms, (await t.h.store.nodes.require('n1')).generation);
    t.timers.dropSlot('n1');
    await t.tick();
    expect(t.ran).toEqual([]);
  });

  it('fires a passed deadline as the state\u2019s timeout event, with its reason', async () => {
    const t = await setup(['n1', 'n2']);
    await t.h.put('n1', S.netbooting, { deadlineSeconds: 60 });
    await t.h.put('n2', S.installing, { deadlineSeconds: 600 });
    await t.tick();
    expect(t.applied).toEqual([]);
    t.h.clock.advance(61);
    await t.tick();
    expect(t.applied.map((a) => `${a.node} ${a.event}`)).toEqual([`n1 ${E.fail}`]);
    expect(t.applied[0]?.ctx).toMatchObject({ cause: 'timeout', details: { step: S.netbooting, timeout: true } });
  });

  it('spends at most dueBatch launches per tick', async () => {
    const t = await setup(['n1', 'n2', 'n3'], { dueBatch: 2 });
    for (const n of ['n1', 'n2', 'n3']) await t.h.put(n, S.netbooting, { deadlineSeconds: 1 });
    t.h.clock.advance(2);
    await t.tick();
    expect(t.applied).toHaveLength(2);
  });

  it('replays a busy node\u2019s facts once it frees up, trying again while it stays busy', async () => {
    const t = await setup(['n1']);
    await t.h.put('n1', S.netbooting);
    let release!: () => void;
    const holding = t.sessions.run('n1', 0, true, () => new Promise<void>((r) => (release = r)));
    t.timers.catchUpLater('n1');
    await t.tick();
    expect(t.replayed).toEqual([]);
    release();
    expect(await holding).not.toBe(BUSY);
    t.h.clock.advance(1); // the retry waits lockWaitMs
    await t.tick();
    expect(t.replayed).toEqual(['n1']);
  });

  it('sweeps transient nodes nobody works on, old enough, round robin, when due', async () => {
    const t = await setup(['a', 'b', 'c', 'd'], { sweepIntervalMs: 60_000, sweepBatch: 2 });
    for (const n of ['a', 'b', 'c']) await t.h.put(n, S.installing);
    t.timers.start();
    t.timers.stop(); // start() only sets the sweep's clock here: ticks are driven by hand
    t.h.clock.advance(30);
    await t.tick();
    expect(t.swept).toEqual([]); // not yet due
    t.h.clock.advance(30);
    await t.tick();
    expect(t.swept).toEqual(['a', 'b']);
    t.h.clock.advance(60);
    await t.tick();
    expect(t.swept).toEqual(['a', 'b', 'c', 'a']);
  });
});

/**
 * store.events.observe: the rows each transaction appended, told once it
 * committed (the metrics' feed, server/metrics): whichever repository wrote
 * them (appendEvent and the prepared appendEventRow), nested writes joining
 * the outer transaction told with it, a rolled-back transaction never told,
 * an observer that throws never failing the write; and the scrape-time
 * counts of store.metrics.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { openStore, type CommittedEvent, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES } from './engines.js';

describe.each(ENGINES)('%s', (engine) => {
  const h = engineHarness(engine);

  const PROFILE = { name: 'compute', os: { install: 'kickstart' as const, tree: 'http://10.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };

  describe('store.events.observe', () => {
    let store: Store;
    let told: CommittedEvent[][];
    let stop: () => void;

    beforeEach(async () => {
      store = await openStore(await h.fresh(), { secretKey: randomBytes(32) });
      told = [];
      stop = store.events.observe((rows) => told.push([...rows]));
    });
    afterEach(async () => {
      stop();
      await store.close();
    });

    it('tells each committed transaction its rows, with their ids, from every repository', async () => {
      await store.profiles.upsert(PROFILE, { actor: 't' });
      await store.nodes.upsertMany([{ name: 'a', profile: 'compute', macs: [], pet: false }], { actor: 't' });
      await store.nodes.setState('a', 'pxe-armed', { actor: 't', armed: { to: true } });
      expect(told.map((t) => t.map((r) => r.kind))).toEqual([[EVENT.profileAdded], [EVENT.nodeAdded], [EVENT.stateChanged, EVENT.nodeArmed]]);
      const all = (await store.events.list({ limit: 100 })).events;
      expect(told.flat().map((r) => r.id)).toEqual(all.map((e) => e.id));
      expect(told[2]![0]).toMatchObject({ node: 'a', from_state: 'enrolled', to_state: 'pxe-armed', actor: 't' });
    });

    it('a transaction is told once, after its commit, with the rows of its nested writes', async () => {
      await store.profiles.upsert(PROFILE, { actor: 't' });
      told = [];
      let seenInside = -1;
      await store.transaction(async (tx) => {
        await tx.nodes.upsertMany([{ name: 'b', profile: 'compute', macs: [], pet: false }], { actor: 't' });
        await tx.events.append({ node: 'b', kind: EVENT.agentInventory, actor: 't' });
        seenInside = told.length;
      });
      expect(seenInside).toBe(0);
      expect(told.map((t) => t.map((r) => r.kind))).toEqual([[EVENT.nodeAdded, EVENT.agentInventory]]);
    });

    it("another store's writes inside a transaction run in that store's own transactions, each told to its own observers", async () => {
      const other = await openStore(await h.fresh('other'), { secretKey: randomBytes(32) });
      const toldOther: CommittedEvent[][] = [];
      const stopOther = other.events.observe((rows) => toldOther.push([...rows]));
      try {
        await store.profiles.upsert(PROFILE, { actor: 't' });
        told = [];
        await store.transaction(async (tx) => {
          await tx.events.append({ kind: EVENT.settingsChanged, actor: 'outer' });
          // Committed at once by the other store, inside this transaction's async context.
          await other.events.append({ kind: EVENT.settingsChanged, actor: 'other' });
          expect(toldOther.map((t) => t.map((r) => r.actor))).toEqual([['other']]);
          // And this store's writes still join this transaction, the other store's inside it too.
          await other.transaction(async () => {
            await store.events.append({ kind: EVENT.settingsChanged, actor: 'inner' });
          });
          expect(told).toEqual([]);
        });
        expect(told.map((t) => t.map((r) => r.actor))).toEqual([['outer', 'inner']]);
        expect((await other.events.list()).events.map((e) => e.actor)).toEqual(['other']);
      } finally {
        stopOther();
        await other.close();
      }
    });

    it('a rolled-back transaction is never told', async () => {
      await expect(
        store.transaction(async (tx) => {
          await tx.events.append({ kind: EVENT.settingsChanged, actor: 't' });
          throw new Error('no');
        }),
      ).rejects.toThrow('no');
      expect(told).toEqual([]);
      expect((await store.events.list({ limit: 10 })).events).toEqual([]);
    });

    it('an observer that throws fails nothing; the others are still told; stop ends the calls', async () => {
      const other: number[] = [];
      const stopBad = store.events.observe(() => {
        throw new Error('observer bug');
      });
      const stopOther = store.events.observe((rows) => other.push(rows.length));
      await expect(store.events.append({ kind: EVENT.settingsChanged, actor: 't' })).resolves.toMatchObject({ kind: EVENT.settingsChanged });
      expect(other).toEqual([1]);
      stopBad();
      stopOther();
      stop();
      await store.events.append({ kind: EVENT.settingsChanged, actor: 't' });
      expect(other).toEqual([1]);
      expect(told).toHaveLength(1);
    });
  });

  describe('store.metrics', () => {
    it('groups nodes by state and profile, counts overdue deadlines, flags and event rows', async () => {
      const store = await openStore(await h.fresh(), { secretKey: randomBytes(32) });
      try {
        await store.profiles.upsert(PROFILE, { actor: 't' });
        await store.profiles.upsert({ ...PROFILE, name: 'gpu' }, { actor: 't' });
        await store.nodes.upsertMany(
          ['a', 'b', 'c'].map((name, i) => ({ name, profile: i === 2 ? 'gpu' : 'compute', macs: [], pet: false })),
          { actor: 't' },
        );
        await store.nodes.setState('a', 'installing', { actor: 't', deadline: '2000-01-01T00:00:00.000Z' });
        await store.nodes.setState('b', 'installing', { actor: 't', deadline: '2999-01-01T00:00:00.000Z' });
        const byState = await store.metrics.nodesByStateProfile();
        expect(byState.sort((x, y) => (x.state + x.profile).localeCompare(y.state + y.profile))).toEqual([
          { state: 'enrolled', profile: 'gpu', count: 1 },
          { state: 'installing', profile: 'compute', count: 2 },
        ]);
        expect(await store.metrics.overdueByState(new Date().toISOString())).toEqual([{ state: 'installing', count: 1 }]);
        expect(await store.metrics.flagsByName()).toEqual([]);
        await store.flags.recordReconcile('c', { status: 'mismatch', reason: 'uuid differs', checks: [], trigger: 'api' }, { actor: 't' });
        expect(await store.metrics.flagsByName()).toEqual([{ flag: 'bmc-mismatch', count: 1 }]);
        const events = (await store.events.list({ limit: 1000 })).events.length;
        expect(await store.metrics.eventRows()).toBe(events);
        expect((await store.metrics.statesSince()).map((n) => n.state).sort()).toEqual(['enrolled', 'installing', 'installing']);
        expect(await store.metrics.databaseBytes()).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
    });
  });
});

import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { NODE_FLAG, openStore, type ReconcileRecord, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES } from './engines.js';

describe.each(ENGINES)('%s', (engine) => {
  const h = engineHarness(engine);

  let nowMs = Date.parse('2026-01-01T00:00:00.000Z');
  let store: Store;

  const mismatch = (reason = 'uuid differs: agent a, BMC b'): ReconcileRecord => ({
    status: 'mismatch',
    reason,
    checks: [{ field: 'uuid', agent: 'a', bmc: 'b', result: 'mismatch' }],
    provider: 'ipmi',
    trigger: 'api',
  });

  beforeEach(async () => {
    store = await openStore(await h.fresh(), { secretKey: crypto.randomBytes(32), clock: () => new Date(nowMs) });
    await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 't' });
    for (const n of ['n1', 'n2']) await store.nodes.upsert({ name: n, profile: 'compute', macs: [], pet: false }, { actor: 't' });
  });
  afterEach(async () => store?.close());

  describe('node flags (migration 006): bmc-mismatch', () => {
    it('migration 006_node_flags is applied', async () => {
      expect(await store.appliedMigrations()).toContain('006_node_flags');
    });

    it('a mismatch raises the flag with its reason, a repeat keeps its since, a match clears it; each writes inventory.reconciled', async () => {
      expect(await store.flags.recordReconcile('n1', mismatch(), { actor: 'alice' })).toMatchObject({ flag: 'raised' });
      const [f] = await store.flags.list(['n1']);
      expect(f).toMatchObject({ node: 'n1', flag: NODE_FLAG.bmcMismatch, reason: 'uuid differs: agent a, BMC b', since: '2026-01-01T00:00:00.000Z', details: { provider: 'ipmi' } });

      nowMs += 60_000;
      expect((await store.flags.recordReconcile('n1', mismatch(), { actor: 'alice' })).flag).toBe('unchanged');
      expect((await store.flags.recordReconcile('n1', mismatch('serial differs: agent x, BMC y'), { actor: 'alice' })).flag).toBe('updated');
      const [g] = await store.flags.list(['n1']);
      expect(g).toMatchObject({ since: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:01:00.000Z', reason: 'serial differs: agent x, BMC y' });

      // unknown (the BMC did not answer, no inventory): the flag stays.
      expect((await store.flags.recordReconcile('n1', { status: 'unknown', reason: 'no answer', checks: [], trigger: 'report', error: { code: 'bmc.timeout', message: 'no answer' } }, { actor: 'node:n1' })).flag).toBe('unchanged');
      expect(await store.flags.list()).toHaveLength(1);

      expect((await store.flags.recordReconcile('n1', { status: 'match', reason: 'uuid matches', checks: [], trigger: 'api' }, { actor: 'alice' })).flag).toBe('cleared');
      expect(await store.flags.list()).toEqual([]);
      expect((await store.flags.recordReconcile('n2', { status: 'match', reason: 'uuid matches', checks: [], trigger: 'api' }, { actor: 'alice' })).flag).toBe('unchanged');

      const events = (await store.events.list({ kinds: [EVENT.inventoryReconciled], limit: 100 })).events;
      expect(events.map((e) => [e.node, (e.details as { status: string }).status, (e.details as { flag: { change: string } }).flag.change])).toEqual([
        ['n1', 'mismatch', 'raised'],
        ['n1', 'mismatch', 'unchanged'],
        ['n1', 'mismatch', 'updated'],
        ['n1', 'unknown', 'unchanged'],
        ['n1', 'match', 'cleared'],
        ['n2', 'match', 'unchanged'],
      ]);
      expect(events[3]!.details).toMatchObject({ trigger: 'report', error: { code: 'bmc.timeout' }, flag: { raised: true } });
    });

    it('after agent reports, one event per change of verdict, not one per report; an operator\'s reconcile always writes one', async () => {
      const rep = (status: 'match' | 'mismatch' | 'unknown'): ReconcileRecord => (status === 'mismatch' ? { ...mismatch(), trigger: 'report' } : { status, reason: status, checks: [], trigger: 'report' });
      const ids = [];
      for (const st of ['match', 'match', 'match', 'unknown', 'unknown', 'match', 'mismatch', 'mismatch', 'match'] as const) ids.push((await store.flags.recordReconcile('n1', rep(st), { actor: 'node:n1' })).eventId);
      expect(ids.map((x) => x !== null)).toEqual([true, false, false, true, false, true, true, false, true]);
      expect((await store.flags.recordReconcile('n1', { status: 'match', reason: 'again', checks: [], trigger: 'api' }, { actor: 'alice' })).eventId).not.toBeNull();
      const events = (await store.events.list({ node: 'n1', kinds: [EVENT.inventoryReconciled], limit: 100 })).events;
      expect(events.map((e) => (e.details as { status: string }).status)).toEqual(['match', 'unknown', 'match', 'mismatch', 'match', 'match']);
    });

    it('flags go with their node; an unknown node is node.not_found', async () => {
      await store.flags.recordReconcile('n2', mismatch(), { actor: 't' });
      expect([...(await store.flags.byNode()).keys()]).toEqual(['n2']);
      await store.nodes.remove('n2', { actor: 't' });
      expect(await store.flags.list()).toEqual([]);
      await expect(store.flags.recordReconcile('nope', mismatch(), { actor: 't' })).rejects.toMatchObject({ code: 'node.not_found' });
    });
  });
});

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import type { ClusterSpec, NodeSpec, ProfileSpec } from '../../../server/model.js';
import { loadOrCreateSecretKey, MIGRATIONS, openDataDir, openStore, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES, itOn } from './engines.js';

let dir: string;
let t0 = Date.parse('2025-03-01T10:00:00.000Z');
let nowMs = t0;
const clock = () => new Date(nowMs);
const key = crypto.randomBytes(32);
const stores: Store[] = [];


const profile = (name: string): ProfileSpec => ({
  name,
  os: { install: 'kickstart', tree: 'http://10.10.0.1/repo/AlmaLinux/9/x86_64/os' },
  kernelArgs: ['console=ttyS0'],
  packages: ['vim'],
  sshKeys: [],
  roles: {},
});

const node = (i: number, extra: Partial<NodeSpec> = {}): NodeSpec => ({
  name: `valkyrie${String(i).padStart(2, '0')}`,
  profile: 'compute',
  ip: `10.10.3.${i}`,
  macs: [`52:54:00:00:03:${i.toString(16).padStart(2, '0')}`],
  bmc: { address: `10.10.103.${i}`, port: 623, protocol: 'ipmi', credentials: 'ipmi-admin' },
  pet: false,
  ...extra,
});

async function seed(store: Store, n = 3): Promise<void> {
  await store.profiles.upsert(profile('compute'), { actor: 'test' });
  await store.credentials.upsert('ipmi-admin', 'admin', 'not-the-real-password', { actor: 'test' });
  for (let i = 1; i <= n; i++) await store.nodes.upsert(node(i), { actor: 'test' });
}

async function expectFleetError(p: Promise<unknown>, code: string): Promise<FleetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FleetError);
  expect((e as FleetError).code).toBe(code);
  return e as FleetError;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-store-'));
  nowMs = t0;
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('secret key file', () => {
  it('creates DATA/secret.key with mode 0600 and returns the same key after', async () => {
    const k1 = await loadOrCreateSecretKey(dir);
    const file = path.join(dir, 'secret.key');
    expect(k1.length).toBe(32);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file).equals(k1)).toBe(true);
    expect((await loadOrCreateSecretKey(dir)).equals(k1)).toBe(true);
    // No temporary file is left behind.
    expect(fs.readdirSync(dir)).toEqual(['secret.key']);
  });

  it('refuses a key file readable by group or others', async () => {
    await loadOrCreateSecretKey(dir);
    const file = path.join(dir, 'secret.key');
    fs.chmodSync(file, 0o644);
    const e = await expectFleetError(loadOrCreateSecretKey(dir), 'config.unreadable');
    expect(e.message).toContain('0644');
    expect(e.message).toContain('chmod 600');
  });

  it('refuses a key file of the wrong size', async () => {
    fs.writeFileSync(path.join(dir, 'secret.key'), Buffer.alloc(10), { mode: 0o600 });
    await expectFleetError(loadOrCreateSecretKey(dir), 'config.unreadable');
  });

  it('concurrent creators agree on one key', async () => {
    const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSecretKey(dir)));
    for (const k of keys) expect(k.equals(keys[0]!)).toBe(true);
  });
});

describe.each(ENGINES)('store on %s', (engine) => {
  const h = engineHarness(engine);

  /** Store `name` of this test (a SQLite file in the test's directory, or a PostgreSQL database). */
  async function open(name = 'fleet'): Promise<Store> {
    const s = await openStore(await h.location(name), { secretKey: key, clock });
    stores.push(s);
    return s;
  }

  describe('openStore', () => {
    itOn(engine, 'sqlite')('sets WAL, busy_timeout, foreign keys and synchronous=NORMAL', async () => {
      const file = path.join(h.dir, 'fleet.db');
      const s = await open();
      expect(await s.engineInfo()).toMatchObject({ engine: 'sqlite', journalMode: 'wal', busyTimeoutMs: 5000, foreignKeys: true, synchronous: 1 });
      const raw = new Database(file, { readonly: true });
      try {
        expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        raw.close();
      }
      // The store's own connection: foreign keys must be enforced (a node with an unknown profile is refused).
      await expectFleetError(s.nodes.upsert(node(1, { profile: 'nope', bmc: undefined }), { actor: 't' }), 'conflict');
      expect(fs.existsSync(`${file}-wal`)).toBe(true);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    });

    itOn(engine, 'postgres')('runs on PostgreSQL with the writer lock, lock_timeout and foreign keys; the URL shown has no password', async () => {
      const s = await open();
      const info = await s.engineInfo();
      expect(info).toMatchObject({ engine: 'postgres', writeIsolation: 'read committed + writer lock', busyTimeoutMs: 5000, collation: 'C' });
      expect(info.version).toMatch(/^15\./);
      const loc = (await h.location()) as { url: string; password: string };
      expect(info.engine === 'postgres' && info.server).toBe(loc.url);
      expect(JSON.stringify(info)).not.toContain(loc.password);
      expect(s.engine).toBe('postgres');
      expect(s.file).toBeNull();
      // The store's own connections: foreign keys are enforced (a node with an unknown profile is refused).
      await expectFleetError(s.nodes.upsert(node(1, { profile: 'nope', bmc: undefined }), { actor: 't' }), 'conflict');
    });

    it('runs migrations once; reopening is idempotent and keeps data', async () => {
      const a = await open();
      await seed(a, 2);
      const all = Object.keys(MIGRATIONS).sort();
      expect(all.slice(0, 2)).toEqual(['001_initial', '002_agent']);
      expect(all).toContain('004_node_origin');
      expect(await a.appliedMigrations()).toEqual(all);
      await a.close();
      const b = await open();
      expect(await b.appliedMigrations()).toEqual(all);
      expect((await b.nodes.list()).map((n) => n.name)).toEqual(['valkyrie01', 'valkyrie02']);
      const raw = await h.raw();
      expect((await raw.all<{ n: number | string }>('select count(*) as n from kysely_migration')).map((r) => Number(r.n))).toEqual([all.length]);
    });

    it('refuses a database that has a migration this code does not know', async () => {
      await (await open()).close();
      const raw = await h.raw();
      await raw.exec("insert into kysely_migration (name, timestamp) values ('999_future', '2030-01-01T00:00:00.000Z')");
      await expectFleetError(openStore(await h.location(), { secretKey: key }), 'internal');
    });

    itOn(engine, 'sqlite')('works in memory', async () => {
      const s = await openStore({ memory: true }, { secretKey: key, clock });
      stores.push(s);
      await seed(s, 1);
      expect(s.file).toBeNull();
      expect((await s.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.1');
    });

    it('rejects a secret key of the wrong size', async () => {
      await expectFleetError(openStore({ memory: true }, { secretKey: Buffer.alloc(16) }), 'usage.invalid');
    });

    it('openDataDir creates the directory 0700, the key and DATA/fleet.db (on PostgreSQL: the database named instead)', async () => {
      const data = path.join(h.dir, 'data');
      const postgres = engine === 'postgres' ? ((await h.location()) as { url: string; password: string }) : undefined;
      const d = await openDataDir(data, { clock, ...(postgres ? { postgres } : {}) });
      stores.push(d.store);
      expect(fs.statSync(data).mode & 0o777).toBe(0o700);
      expect(d.dbFile).toBe(postgres ? null : path.join(data, 'fleet.db'));
      expect(fs.existsSync(path.join(data, 'fleet.db'))).toBe(!postgres);
      expect(d.store.dataDir).toBe(data);
      expect(fs.statSync(d.keyFile).mode & 0o777).toBe(0o600);
      await seed(d.store, 1);
      await d.store.close();
      const again = await openDataDir(data, { clock, ...(postgres ? { postgres } : {}) });
      stores.push(again.store);
      // Same key: the secret still opens.
      expect((await again.store.credentials.revealSecret('ipmi-admin')).secret).toBe('not-the-real-password');
    });
  });

  describe('nodes', () => {
    it('adds, reads, changes and removes a node, each with its event', async () => {
      const s = await open();
      await seed(s, 0);
      const added = await s.nodes.upsert(node(1), { actor: 'alice' });
      expect(added.action).toBe('added');
      expect(added.node).toMatchObject({
        name: 'valkyrie01',
        profile: 'compute',
        ip: '10.10.3.1',
        macs: ['52:54:00:00:03:01'],
        bmc: { address: '10.10.103.1', port: 623, protocol: 'ipmi', credentials: 'ipmi-admin' },
        pet: false,
        state: 'enrolled',
        stateSince: '2025-03-01T10:00:00.000Z',
        armed: false,
        lastSeen: null,
        generation: 1,
      });
      expect(JSON.stringify(added.node)).not.toContain('not-the-real-password');

      nowMs += 1000;
      const same = await s.nodes.upsert(node(1), { actor: 'alice' });
      expect(same.action).toBe('unchanged');

      const changed = await s.nodes.upsert(node(1, { ip: '10.10.3.9', macs: ['52:54:00:00:03:09', '52:54:00:00:03:0A'] }), { actor: 'bob' });
      expect(changed.action).toBe('changed');
      expect(changed.node.macs).toEqual(['52:54:00:00:03:09', '52:54:00:00:03:0a']);
      expect(changed.node.generation).toBe(2);
      expect(changed.changes).toEqual({
        ip: { from: '10.10.3.1', to: '10.10.3.9' },
        macs: { from: ['52:54:00:00:03:01'], to: ['52:54:00:00:03:09', '52:54:00:00:03:0a'] },
      });
      expect((await s.nodes.findByMac('52:54:00:00:03:0A'))?.name).toBe('valkyrie01');
      expect(await s.nodes.findByMac('52:54:00:00:03:01')).toBeNull();
      expect((await s.nodes.findByIp('10.10.3.9'))?.name).toBe('valkyrie01');

      await s.nodes.remove('valkyrie01', { actor: 'carol' });
      expect(await s.nodes.get('valkyrie01')).toBeNull();
      await expectFleetError(s.nodes.remove('valkyrie01', { actor: 'carol' }), 'node.not_found');

      const { events } = await s.events.list({ node: 'valkyrie01' });
      expect(events.map((e) => [e.kind, e.actor])).toEqual([
        ['node.added', 'alice'],
        ['node.changed', 'bob'],
        ['node.removed', 'carol'],
      ]);
      expect(events[1]!.details).toEqual({ changes: changed.changes });
      expect(events[1]!.time).toBe('2025-03-01T10:00:01.000Z');
      // Interfaces and BMC went with the node.
      const raw = await h.raw();
      expect(Number((await raw.all<{ n: number }>('select count(*) as n from interfaces'))[0]!.n)).toBe(0);
      expect(Number((await raw.all<{ n: number }>('select count(*) as n from bmc_endpoints'))[0]!.n)).toBe(0);
    });

    it('writes neither the row nor the event when the transaction fails midway', async () => {
      const s = await open();
      await seed(s, 0);
      // Make the event insert of node.added fail: the node row written just before must roll back with it.
      const raw = await h.raw();
      await raw.exec(
        engine === 'sqlite'
          ? `CREATE TRIGGER fail_added BEFORE INSERT ON events WHEN NEW.kind = 'node.added'
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END`
          : `CREATE FUNCTION fail_added() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.kind = 'node.added' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER fail_added BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION fail_added()`,
      );
      await expect(s.nodes.upsert(node(1), { actor: 't' })).rejects.toThrow(/injected failure/);
      expect(await s.nodes.get('valkyrie01')).toBeNull();
      expect(await s.nodes.findByMac('52:54:00:00:03:01')).toBeNull();
      expect((await s.events.list({ node: 'valkyrie01' })).events).toEqual([]);
      await raw.exec(engine === 'sqlite' ? 'DROP TRIGGER fail_added' : 'DROP TRIGGER fail_added ON events');

      // And through store.transaction: a throw after successful writes undoes all of them.
      const before = (await s.events.list({ limit: 1000 })).events.length;
      await expect(
        s.transaction(async (tx) => {
          await tx.nodes.upsert(node(2), { actor: 't' });
          await tx.nodes.setState('valkyrie02', 'pxe-armed', { actor: 't' });
          expect((await tx.nodes.get('valkyrie02'))?.state).toBe('pxe-armed');
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await s.nodes.get('valkyrie02')).toBeNull();
      expect((await s.events.list({ limit: 1000 })).events.length).toBe(before);
    });

    it('setState is a compare-and-set with its event', async () => {
      const s = await open();
      await seed(s, 1);
      nowMs += 5000;
      const r = await s.nodes.setState('valkyrie01', 'pxe-armed', {
        expectedFrom: 'enrolled',
        actor: 'conductor',
        cause: 'reinstall',
        details: { step: 'arm' },
        deadline: '2025-03-01T10:10:05.000Z',
      });
      expect(r).toMatchObject({ state: 'pxe-armed', stateSince: '2025-03-01T10:00:05.000Z', generation: 2, stateDeadline: '2025-03-01T10:10:05.000Z' });

      const e = await expectFleetError(s.nodes.setState('valkyrie01', 'installing', { expectedFrom: 'enrolled', actor: 'conductor' }), 'conflict');
      expect(e.message).toContain('pxe-armed');
      await expectFleetError(s.nodes.setState('valkyrie01', 'installing', { expectedGeneration: 1, actor: 'conductor' }), 'conflict');
      await expectFleetError(s.nodes.setState('nope', 'installing', { actor: 'conductor' }), 'node.not_found');
      expect((await s.nodes.get('valkyrie01'))?.state).toBe('pxe-armed');

      await s.nodes.setState('valkyrie01', 'power-cycling', { expectedFrom: ['pxe-armed', 'failed'], expectedGeneration: 2, actor: 'conductor' });
      const { events } = await s.events.list({ node: 'valkyrie01', kinds: ['state.changed'] });
      expect(events.map((x) => [x.fromState, x.toState])).toEqual([
        ['enrolled', 'pxe-armed'],
        ['pxe-armed', 'power-cycling'],
      ]);
      expect(events[0]).toMatchObject({ actor: 'conductor', cause: 'reinstall', details: { step: 'arm' } });

      // Timers live in the store.
      expect(await s.nodes.listDue(new Date('2025-03-01T10:10:05.000Z'))).toEqual([]);
      await s.nodes.setState('valkyrie01', 'installing', { actor: 'c', deadline: '2025-03-01T11:00:00.000Z' });
      expect((await s.nodes.listDue(new Date('2025-03-01T11:00:00.000Z'))).map((n) => n.name)).toEqual(['valkyrie01']);
    });

    it('setArmed writes an event only on change; markSeen writes none', async () => {
      const s = await open();
      await seed(s, 1);
      const count = async () => (await s.events.list({ node: 'valkyrie01' })).events.length;
      const n0 = await count();
      const armed = await s.nodes.setArmed('valkyrie01', true, { actor: 'conductor' });
      expect(armed.armed).toBe(true);
      await s.nodes.setArmed('valkyrie01', true, { actor: 'conductor' });
      expect(await count()).toBe(n0 + 1);
      await s.nodes.markSeen('valkyrie01', new Date('2025-03-01T12:00:00.000Z'));
      const n = await s.nodes.get('valkyrie01');
      expect(n?.lastSeen).toBe('2025-03-01T12:00:00.000Z');
      expect(n?.generation).toBe(armed.generation);
      expect(await count()).toBe(n0 + 1);
      await expectFleetError(s.nodes.markSeen('nope'), 'node.not_found');
    });

    it('lists by names (nodeset already expanded), state and profile, in natural order', async () => {
      const s = await open();
      await seed(s, 12);
      const all = await s.nodes.list();
      expect(all.map((n) => n.name)).toEqual(Array.from({ length: 12 }, (_, i) => `valkyrie${String(i + 1).padStart(2, '0')}`));
      const some = await s.nodes.list({ names: ['valkyrie10', 'valkyrie02', 'ghost', 'valkyrie02'] });
      expect(some.map((n) => n.name)).toEqual(['valkyrie02', 'valkyrie10']);
      expect(some[0]!.macs).toEqual(['52:54:00:00:03:02']);
      expect(await s.nodes.list({ names: [] })).toEqual([]);
      await s.nodes.setState('valkyrie05', 'failed', { actor: 't' });
      expect((await s.nodes.list({ states: ['failed'] })).map((n) => n.name)).toEqual(['valkyrie05']);
      expect((await s.nodes.list({ names: ['valkyrie05', 'valkyrie06'], states: ['enrolled'] })).map((n) => n.name)).toEqual(['valkyrie06']);
      expect(await s.nodes.list({ profile: 'other' })).toEqual([]);

      await s.nodes.upsert({ name: 'n2', profile: 'compute', macs: [], pet: false }, { actor: 't' });
      await s.nodes.upsert({ name: 'n10', profile: 'compute', macs: [], pet: false }, { actor: 't' });
      const names = (await s.nodes.list({ names: ['n10', 'n2'] })).map((n) => n.name);
      expect(names).toEqual(['n2', 'n10']);
    });

    it('swaps IPs and MACs between nodes in one upsertMany', async () => {
      const s = await open();
      await seed(s, 2);
      const a = node(1);
      const b = node(2);
      const res = await s.nodes.upsertMany(
        [
          { ...a, ip: b.ip, macs: b.macs },
          { ...b, ip: a.ip, macs: a.macs },
        ],
        { actor: 't' },
      );
      expect(res.map((r) => r.action)).toEqual(['changed', 'changed']);
      expect((await s.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.2');
      expect((await s.nodes.findByMac(a.macs[0]!))?.name).toBe('valkyrie02');
      // A real clash is a conflict, and leaves nothing behind.
      await expectFleetError(s.nodes.upsert(node(3, { ip: '10.10.3.2' }), { actor: 't' }), 'conflict');
      expect(await s.nodes.get('valkyrie03')).toBeNull();
    });

    it('keeps the pinned BMC fingerprint unless the BMC moves', async () => {
      const s = await open();
      await seed(s, 1);
      await s.bmc.trustFingerprint('valkyrie01', 'AB:CD', { actor: 'bmc' });
      await s.bmc.recordAnswer('valkyrie01', 'ipmi');
      expect(await s.bmc.get('valkyrie01')).toMatchObject({ tlsFingerprint: 'AB:CD', lastProvider: 'ipmi' });
      await s.credentials.upsert('other', 'root', 'x', { actor: 't' });
      await s.nodes.upsert(node(1, { bmc: { address: '10.10.103.1', port: 623, protocol: 'ipmi', credentials: 'other' } }), { actor: 't' });
      expect((await s.bmc.get('valkyrie01'))?.tlsFingerprint).toBe('AB:CD');
      await s.nodes.upsert(node(1, { bmc: { address: '10.10.103.99', port: 623, protocol: 'ipmi', credentials: 'other' } }), { actor: 't' });
      expect(await s.bmc.get('valkyrie01')).toMatchObject({ tlsFingerprint: null, lastProvider: null, address: '10.10.103.99' });
      await s.nodes.upsert(node(1, { bmc: undefined }), { actor: 't' });
      expect(await s.bmc.get('valkyrie01')).toBeNull();
      expect((await s.nodes.get('valkyrie01'))?.bmc).toBeUndefined();
      expect((await s.events.list({ node: 'valkyrie01', kinds: ['bmc.tls_trusted'] })).events).toHaveLength(1);
    });

    it('records a rotated BMC credential per node; a stale rotation, a changed set or removal ends it', async () => {
      const s = await open();
      await seed(s, 2);
      const wc = { actor: 'rotator' };
      await s.bmc.commitRotation('valkyrie01', 'ipmi-admin', { username: 'fleet-a', secret: 'new-secret-1', details: { slot: 3 } }, wc);
      expect(await s.bmc.rotated(['valkyrie01', 'valkyrie02'])).toEqual(new Map([['valkyrie01', 'rotated.valkyrie01']]));
      expect(await s.credentials.revealSecret('rotated.valkyrie01')).toMatchObject({ username: 'fleet-a', secret: 'new-secret-1' });
      // The node spec (what apply compares) still names the set fleet.yaml gave.
      expect((await s.nodes.get('valkyrie01'))?.bmc?.credentials).toBe('ipmi-admin');
      // A rotation that started from the old credential is refused once another was recorded.
      await expectFleetError(s.bmc.commitRotation('valkyrie01', 'ipmi-admin', { username: 'fleet-b', secret: 'late', details: {} }, wc), 'conflict');
      await s.bmc.commitRotation('valkyrie01', 'rotated.valkyrie01', { username: 'fleet-b', secret: 'new-secret-2', details: {} }, wc);
      expect(await s.credentials.revealSecret('rotated.valkyrie01')).toMatchObject({ username: 'fleet-b', secret: 'new-secret-2' });
      const events = (await s.events.list({ node: 'valkyrie01', kinds: ['bmc.credential_rotated'] })).events;
      expect(events).toHaveLength(2);
      expect(JSON.stringify(events)).not.toMatch(/new-secret/);
      // Same set, same BMC: kept. Another set in fleet.yaml: the rotated one ends (and its secret goes).
      await s.nodes.upsert(node(1, { pet: true }), { actor: 't' });
      expect((await s.bmc.get('valkyrie01'))?.rotatedCredentials).toBe('rotated.valkyrie01');
      await s.credentials.upsert('other', 'root', 'x', { actor: 't' });
      await s.nodes.upsert(node(1, { bmc: { address: '10.10.103.1', port: 623, protocol: 'ipmi', credentials: 'other' } }), { actor: 't' });
      expect((await s.bmc.get('valkyrie01'))?.rotatedCredentials).toBeNull();
      await expectFleetError(s.credentials.revealSecret('rotated.valkyrie01'), 'not_found');
      // Removing a node removes its rotated secret.
      await s.bmc.commitRotation('valkyrie02', 'ipmi-admin', { username: 'fleet-a', secret: 's2', details: {} }, wc);
      await s.nodes.remove('valkyrie02', { actor: 't' });
      await expectFleetError(s.credentials.revealSecret('rotated.valkyrie02'), 'not_found');
    });

    it('refuses to remove a profile or credential still in use', async () => {
      const s = await open();
      await seed(s, 1);
      await expectFleetError(s.profiles.remove('compute', { actor: 't' }), 'conflict');
      await expectFleetError(s.credentials.remove('ipmi-admin', { actor: 't' }), 'conflict');
      await s.nodes.remove('valkyrie01', { actor: 't' });
      await s.profiles.remove('compute', { actor: 't' });
      await s.credentials.remove('ipmi-admin', { actor: 't' });
      expect(await s.profiles.list()).toEqual([]);
      expect(await s.credentials.list()).toEqual([]);
    });
  });

  describe('Redfish BMC settings (003_bmc_system)', () => {
    it('stores system, auth and power wait per node, reads them back, and diffs a change of system', async () => {
      const s = await open();
      await seed(s, 0);
      const blade = (i: number, system: string): NodeSpec =>
        node(i, { bmc: { address: '10.10.103.50', port: 443, protocol: 'redfish', credentials: 'ipmi-admin', system, auth: 'basic', powerWait: 45 } });
      for (let i = 1; i <= 4; i++) await s.nodes.upsert(blade(i, `Blade${i}`), { actor: 'test' });
      expect((await s.nodes.require('valkyrie02')).bmc).toEqual({ address: '10.10.103.50', port: 443, protocol: 'redfish', credentials: 'ipmi-admin', system: 'Blade2', auth: 'basic', powerWait: 45 });
      expect(await s.bmc.get('valkyrie03')).toMatchObject({ system: 'Blade3', auth: 'basic', powerWait: 45 });
      // auth auto is the default: stored as NULL, and equal to an absent auth.
      const auto = node(1, { bmc: { address: '10.10.103.50', port: 443, protocol: 'redfish', credentials: 'ipmi-admin', system: 'Blade1', auth: 'auto', powerWait: 45 } });
      const r0 = await s.nodes.upsert(auto, { actor: 'test' });
      expect(r0.changes.bmc?.to).toEqual({ address: '10.10.103.50', port: 443, protocol: 'redfish', credentials: 'ipmi-admin', system: 'Blade1', powerWait: 45 });
      expect((await s.bmc.get('valkyrie01'))?.auth).toBeNull();
      expect((await s.nodes.upsert(auto, { actor: 'test' })).action).toBe('unchanged');
      const r = await s.nodes.upsert(blade(4, 'Blade5'), { actor: 'test' });
      expect(r.action).toBe('changed');
      expect(r.changes.bmc?.from?.system).toBe('Blade4');
      expect(r.changes.bmc?.to?.system).toBe('Blade5');
      expect((await s.nodes.upsert(blade(4, 'Blade5'), { actor: 'test' })).action).toBe('unchanged');
    });
  });

  describe('events', () => {
    it('paginates by id cursor in both orders and filters', async () => {
      const s = await open();
      await seed(s, 0);
      const before = await s.events.lastId();
      for (let i = 0; i < 25; i++) {
        nowMs = t0 + i * 1000;
        await s.events.append({ node: i % 2 === 0 ? 'even' : 'odd', kind: 'power.on', actor: 'cli', details: { i } });
      }
      const seen: number[] = [];
      let cursor: number | null = before;
      let pages = 0;
      while (cursor !== null) {
        const page = await s.events.list({ afterId: cursor, limit: 10 });
        seen.push(...page.events.map((e) => (e.details as { i: number }).i));
        cursor = page.nextCursor;
        pages++;
      }
      expect(pages).toBe(3);
      expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));

      const newest = await s.events.list({ order: 'desc', limit: 4, kinds: ['power.on'] });
      expect(newest.events.map((e) => (e.details as { i: number }).i)).toEqual([24, 23, 22, 21]);
      const next = await s.events.list({ order: 'desc', limit: 4, kinds: ['power.on'], beforeId: newest.nextCursor! });
      expect(next.events.map((e) => (e.details as { i: number }).i)).toEqual([20, 19, 18, 17]);

      const odd = await s.events.list({ nodes: ['odd'], since: new Date(t0 + 20_000).toISOString() });
      expect(odd.events.map((e) => (e.details as { i: number }).i)).toEqual([21, 23]);
      expect(odd.nextCursor).toBeNull();
      const exact = await s.events.list({ node: 'even', limit: 13 });
      expect(exact.events).toHaveLength(13);
      expect(exact.nextCursor).toBeNull();
      await expectFleetError(s.events.list({ limit: 0 }), 'request.invalid');
      await expectFleetError(s.events.list({ limit: 5000 }), 'request.invalid');
    });
  });

  describe('settings, discovered, tokens, locks', () => {
    it('settings round-trip and write an event only on change', async () => {
      const s = await open();
      expect(await s.settings.getCluster()).toBeNull();
      const cluster: ClusterSpec = {
        cluster: { name: 'valhalla', domain: 'cluster.local', timezone: 'Europe/Brussels', managementAddress: '10.10.0.1' },
        networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } },
        netboot: { dhcp: { enabled: true, mode: 'proxy' } },
        nodes: [],
        profiles: [],
        credentials: [],
      };
      expect(await s.settings.setCluster(cluster, { actor: 't' })).toBe(true);
      expect(await s.settings.getCluster()).toEqual({ cluster: cluster.cluster, networks: cluster.networks, netboot: cluster.netboot });
      expect(await s.settings.setCluster(cluster, { actor: 't' })).toBe(false);
      expect(await s.settings.setCluster({ ...cluster, netboot: { dhcp: { enabled: true, mode: 'authoritative' } } }, { actor: 't' })).toBe(true);
      const { events } = await s.events.list({ kinds: ['settings.changed'] });
      expect(events.map((e) => e.details)).toEqual([
        { key: 'cluster', sections: ['cluster', 'netboot', 'networks'] },
        { key: 'cluster', sections: ['netboot'] },
      ]);
    });

    it('settings are parsed once per stored text: an unchanged value is the same frozen object; a write by another handle is seen at once', async () => {
      const s = await open();
      const other = await open();
      await s.settings.set('k', { a: { b: [1, 2] } }, { actor: 't' });
      const v1 = await s.settings.get<{ a: { b: number[] } }>('k');
      expect(await s.settings.get('k')).toBe(v1);
      expect(Object.isFrozen(v1!.a.b)).toBe(true);
      expect(() => v1!.a.b.push(3)).toThrow(TypeError);
      await other.settings.set('k', { a: { b: [9] } }, { actor: 't' });
      expect(await s.settings.get('k')).toEqual({ a: { b: [9] } });
      await other.settings.set('k', { a: { b: [1, 2] } }, { actor: 't' });
      expect(await s.settings.get('k')).toEqual({ a: { b: [1, 2] } });
    });

    it('records discovered machines, first sight once', async () => {
      const s = await open();
      await seed(s, 1);
      const r1 = await s.discovered.record({ mac: 'AA:BB:CC:00:00:01', ip: '10.10.254.3', vendorClass: 'PXEClient:Arch:00007', arch: 'x86_64-efi', pxe: true });
      expect(r1.firstSeen).toBe(true);
      nowMs += 60_000;
      const r2 = await s.discovered.record({ mac: 'aa:bb:cc:00:00:01', ip: '10.10.254.4' });
      expect(r2.firstSeen).toBe(false);
      expect(r2.machine).toMatchObject({ ip: '10.10.254.4', pxe: true, firstSeen: '2025-03-01T10:00:00.000Z', lastSeen: '2025-03-01T10:01:00.000Z', node: null });
      await s.discovered.record({ mac: '52:54:00:00:03:01' });
      expect((await s.discovered.get('52:54:00:00:03:01'))?.node).toBe('valkyrie01');
      expect((await s.discovered.list({ unknownOnly: true })).map((m) => m.mac)).toEqual(['aa:bb:cc:00:00:01']);
      expect((await s.events.list({ kinds: ['machine.discovered'] })).events).toHaveLength(2);
      await expectFleetError(s.discovered.record({ mac: 'zz' }), 'request.invalid');
      expect(await s.discovered.remove('aa:bb:cc:00:00:01')).toBe(true);
    });

    it('one-time tokens: hashed and sealed (never in clear), bound to a node, expire, single use', async () => {
      const s = await open();
      await seed(s, 2);
      const t = await s.tokens.issue('valkyrie01', { actor: 'netboot', ttlMs: 60_000 });
      const raw = await h.raw();
      const rows = await raw.all<{ hash: string }>('select * from tokens');
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(t.token);
      await expectFleetError(s.tokens.consume('bogus'), 'auth.invalid');
      await expectFleetError(s.tokens.consume(t.token, { node: 'valkyrie02' }), 'token.wrong_node');
      expect(await s.tokens.consume(t.token, { node: 'valkyrie01' })).toMatchObject({ node: 'valkyrie01', purpose: 'enrol' });
      await expectFleetError(s.tokens.consume(t.token), 'token.used');
      const t2 = await s.tokens.issue('valkyrie01', { actor: 'netboot', ttlMs: 60_000 });
      nowMs += 60_000;
      await expectFleetError(s.tokens.consume(t2.token), 'token.expired');
      expect(await s.tokens.purge()).toBe(2);
    });

    it('verify checks a token without using it up or writing anything', async () => {
      const s = await open();
      await seed(s, 2);
      const t = await s.tokens.issue('valkyrie01', { actor: 'netboot', ttlMs: 60_000, purpose: 'install' });
      const before = await s.events.lastId();
      expect(await s.tokens.verify(t.token, { node: 'valkyrie01', purpose: 'install' })).toMatchObject({ node: 'valkyrie01', purpose: 'install' });
      expect(await s.tokens.verify(t.token, { node: 'valkyrie01', purpose: 'install' })).toMatchObject({ node: 'valkyrie01' });
      expect(await s.events.lastId()).toBe(before);
      await expectFleetError(s.tokens.verify(t.token, { node: 'valkyrie01' }), 'auth.invalid'); // other purpose
      await expectFleetError(s.tokens.verify(t.token, { node: 'valkyrie02', purpose: 'install' }), 'token.wrong_node');
      await s.tokens.consume(t.token, { node: 'valkyrie01', purpose: 'install' });
      await expectFleetError(s.tokens.verify(t.token, { purpose: 'install' }), 'token.used');
      const t2 = await s.tokens.issue('valkyrie01', { actor: 'netboot', ttlMs: 60_000, purpose: 'install' });
      nowMs += 60_000;
      await expectFleetError(s.tokens.verify(t2.token, { purpose: 'install' }), 'token.expired');
    });

    it('locks are leases: exclusive until they expire, then taken over', async () => {
      const s = await open();
      await seed(s, 1);
      expect(await s.locks.acquire('valkyrie01', 'server-a', 30_000)).toBe(true);
      expect(await s.locks.acquire('valkyrie01', 'server-b', 30_000)).toBe(false);
      nowMs += 20_000;
      expect(await s.locks.renew('valkyrie01', 'server-a', 30_000)).toBe(true);
      nowMs += 20_000;
      expect(await s.locks.acquire('valkyrie01', 'server-b', 30_000)).toBe(false);
      expect(await s.locks.renew('valkyrie01', 'server-b', 30_000)).toBe(false);
      nowMs += 10_001;
      expect((await s.locks.list({ expiredAt: clock() })).map((l) => l.node)).toEqual(['valkyrie01']);
      expect(await s.locks.acquire('valkyrie01', 'server-b', 30_000)).toBe(true);
      expect((await s.locks.get('valkyrie01'))?.owner).toBe('server-b');
      expect(await s.locks.release('valkyrie01', 'server-a')).toBe(false);
      expect(await s.locks.release('valkyrie01', 'server-b')).toBe(true);
      await expectFleetError(s.locks.acquire('ghost', 'a', 1000), 'node.not_found');
      // Locks survive a restart: they live in the database.
      expect(await s.locks.acquire('valkyrie01', 'server-a', 30_000)).toBe(true);
      await s.close();
      const again = await open();
      expect((await again.locks.get('valkyrie01'))?.owner).toBe('server-a');
    });
  });

  describe('hot paths of the conductor (issue 18)', () => {
    it('setState with the state and generation read: a miss says why, as the read-first path does', async () => {
      const s = await open();
      await seed(s, 1);
      const n = (await s.nodes.get('valkyrie01'))!;
      const ok = await s.nodes.setState('valkyrie01', 'pxe-armed', { expectedFrom: 'enrolled', expectedGeneration: n.generation, actor: 'conductor', cause: 'reinstall' });
      expect(ok).toMatchObject({ state: 'pxe-armed', generation: n.generation + 1, macs: n.macs, bmc: n.bmc });
      const wrongState = await expectFleetError(
        s.nodes.setState('valkyrie01', 'installing', { expectedFrom: 'enrolled', expectedGeneration: ok.generation, actor: 'conductor' }),
        'conflict',
      );
      expect(wrongState.message).toContain('is pxe-armed, not enrolled');
      const wrongGeneration = await expectFleetError(
        s.nodes.setState('valkyrie01', 'power-cycling', { expectedFrom: 'pxe-armed', expectedGeneration: n.generation, actor: 'conductor' }),
        'conflict',
      );
      expect(wrongGeneration.message).toContain(`generation ${ok.generation}, expected ${n.generation}`);
      await expectFleetError(s.nodes.setState('nope', 'pxe-armed', { expectedFrom: 'enrolled', expectedGeneration: 1, actor: 'conductor' }), 'node.not_found');
      expect(await s.nodes.get('valkyrie01')).toEqual(ok);
      expect((await s.events.list({ node: 'valkyrie01', kinds: ['state.changed'] })).events.map((e) => e.toState)).toEqual(['pxe-armed']);
    });

    it('setState with armed writes what setState then setArmed write, in one call', async () => {
      const a = await open('a');
      const b = await open('b');
      await seed(a, 1);
      await seed(b, 1);
      const g = (await a.nodes.get('valkyrie01'))!.generation;
      const one = await a.nodes.setState('valkyrie01', 'power-cycling', {
        expectedFrom: 'enrolled',
        expectedGeneration: g,
        actor: 'conductor',
        cause: 'step arm-pxe',
        armed: { to: true, cause: 'lifecycle cycle' },
      });
      await b.nodes.setState('valkyrie01', 'power-cycling', { expectedFrom: 'enrolled', expectedGeneration: g, actor: 'conductor', cause: 'step arm-pxe' });
      const two = await b.nodes.setArmed('valkyrie01', true, { actor: 'conductor', cause: 'lifecycle cycle' });
      expect(one).toEqual(two);
      expect(one).toMatchObject({ armed: true, generation: g + 2 });
      const strip = (events: { id: number }[]) => events.map(({ id: _id, ...rest }) => rest);
      expect(strip((await a.events.list({ node: 'valkyrie01' })).events)).toEqual(strip((await b.events.list({ node: 'valkyrie01' })).events));
      // Already armed: the flag and its events stay as they are.
      const again = await a.nodes.setState('valkyrie01', 'netbooting', { expectedFrom: 'power-cycling', actor: 'conductor', armed: { to: true } });
      expect(again).toMatchObject({ armed: true, generation: g + 3 });
      expect((await a.events.list({ node: 'valkyrie01', kinds: ['node.armed'] })).events).toHaveLength(1);
    });

    it('events.append returns the row as stored, and one-node lists match the general query', async () => {
      const s = await open();
      await seed(s, 2);
      const e = await s.events.append({ node: 'valkyrie01', kind: 'bmc.power', actor: 'lifecycle', details: { operation: 'power on', skipped: undefined, n: [1, undefined] } });
      const [stored] = (await s.events.list({ node: 'valkyrie01', kinds: ['bmc.power'] })).events;
      expect(e).toEqual(stored);
      expect(e.details).toEqual({ operation: 'power on', n: [1, null] });
      for (const q of [{ kinds: ['node.added', 'bmc.power'] }, { order: 'desc' as const, limit: 1 }, { afterId: 1 }, { beforeId: e.id, order: 'desc' as const }]) {
        const one = await s.events.list({ node: 'valkyrie01', ...q });
        const viaList = await s.events.list({ nodes: ['valkyrie01', 'nobody'], ...q });
        expect(one).toEqual(viaList);
      }
    });

    it('setState with the known record returns what a read-back gives; a record of another generation is a conflict, never returned', async () => {
      const s = await open();
      await seed(s, 1);
      await s.nodes.upsert(node(2, { bmc: undefined, macs: ['52:54:00:00:03:12', '52:54:00:00:03:13'] }), { actor: 'test' });
      for (const name of ['valkyrie01', 'valkyrie02']) {
        const n = (await s.nodes.get(name))!;
        const cas = await s.nodes.setState(name, 'pxe-armed', { expectedFrom: 'enrolled', expectedGeneration: n.generation, actor: 'conductor', known: n });
        expect(cas).toEqual(await s.nodes.get(name));
        const viaArmed = await s.nodes.setState(name, 'power-cycling', { expectedFrom: 'pxe-armed', expectedGeneration: cas.generation, actor: 'conductor', armed: { to: true }, known: cas });
        expect(viaArmed).toEqual(await s.nodes.get(name));
        expect(viaArmed.macs).not.toBe(cas.macs);
      }
      // The interfaces changed after the record was read: the generation moved, so the record is refused, not returned.
      const stale = (await s.nodes.get('valkyrie02'))!;
      await s.nodes.upsert(node(2, { bmc: undefined, macs: ['52:54:00:00:03:14'] }), { actor: 'test' });
      await expectFleetError(
        s.nodes.setState('valkyrie02', 'netbooting', { expectedFrom: 'power-cycling', expectedGeneration: stale.generation, actor: 'conductor', known: stale }),
        'conflict',
      );
      // Without an expected generation nothing proves the record current: the store reads the interfaces again.
      const fresh = await s.nodes.setState('valkyrie02', 'netbooting', { expectedFrom: 'power-cycling', actor: 'conductor', known: stale });
      expect(fresh.macs).toEqual(['52:54:00:00:03:14']);
    });

    it('newest gives what a desc page of list gives (without its cursor), filters by the state entered, and refuses a bad count', async () => {
      const s = await open();
      await seed(s, 2);
      const g = (await s.nodes.get('valkyrie01'))!.generation;
      let gen = g;
      for (const to of ['pxe-armed', 'power-cycling', 'failed', 'pxe-armed', 'power-cycling']) {
        gen = (await s.nodes.setState('valkyrie01', to, { expectedGeneration: gen, actor: 'conductor' })).generation;
      }
      await s.events.append({ node: 'valkyrie02', kind: 'state.changed', toState: 'pxe-armed', actor: 'test' });
      const q = { node: 'valkyrie01', kinds: ['state.changed'] };
      for (const count of [1, 2, 5, 9]) {
        expect(await s.events.newest(q, count)).toEqual((await s.events.list({ ...q, order: 'desc', limit: count })).events);
      }
      const [lastArm] = await s.events.newest({ ...q, toStates: ['pxe-armed', 'adopting'] });
      expect(lastArm).toMatchObject({ node: 'valkyrie01', fromState: 'failed', toState: 'pxe-armed' });
      expect((await s.events.newest({ ...q, toStates: ['pxe-armed'], beforeId: lastArm!.id })).map((e) => e.fromState)).toEqual(['enrolled']);
      expect(await s.events.newest({ ...q, toStates: ['pxe-armed'], afterId: lastArm!.id })).toEqual([]);
      expect(await s.events.newest({ ...q, toStates: [] })).toEqual([]);
      expect(await s.events.newest({ nodes: ['valkyrie01', 'valkyrie02'], kinds: ['state.changed'], toStates: ['pxe-armed'] }, 2)).toEqual([
        expect.objectContaining({ node: 'valkyrie02' }),
        expect.objectContaining({ node: 'valkyrie01', fromState: 'failed' }),
      ]);
      await expectFleetError(s.events.newest(q, 0), 'request.invalid');
      await expectFleetError(s.events.newest(q, 1.5), 'request.invalid');
    });

    it('get (node, BMC and interfaces in one read) gives the record list gives, with and without a BMC, with no, one or several MACs', async () => {
      const s = await open();
      await seed(s, 1);
      await s.nodes.upsert(node(2, { bmc: undefined, macs: ['52:54:00:00:03:12', '52:54:00:00:03:13'] }), { actor: 'test' });
      await s.nodes.upsert(node(3, { macs: [] }), { actor: 'test' });
      await s.nodes.upsert(node(4, { macs: ['52:54:00:00:03:19', '52:54:00:00:03:14', '52:54:00:00:03:17'] }), { actor: 'test' });
      for (const name of ['valkyrie01', 'valkyrie02', 'valkyrie03', 'valkyrie04']) expect(await s.nodes.get(name)).toEqual((await s.nodes.list({ names: [name] }))[0]);
      expect((await s.nodes.get('valkyrie03'))?.macs).toEqual([]);
      expect((await s.nodes.get('valkyrie03'))?.bmc).toBeDefined();
      expect((await s.nodes.get('valkyrie04'))?.macs).toEqual(['52:54:00:00:03:19', '52:54:00:00:03:14', '52:54:00:00:03:17']);
      expect((await s.nodes.get('valkyrie02'))?.bmc).toBeUndefined();
      expect((await s.nodes.get('valkyrie02'))?.macs).toEqual(['52:54:00:00:03:12', '52:54:00:00:03:13']);
    });
  });
});

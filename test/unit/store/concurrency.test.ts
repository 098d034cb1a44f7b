import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import type { NodeSpec } from '../../../server/model.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { WRITER_LOCK_KEYS } from '../../../server/store/postgres.js';
import { clientConfig, engineHarness, ENGINES, itOn, postgresCluster, type RawDb } from './engines.js';

const stores: Store[] = [];
const key = crypto.randomBytes(32);

const node = (name: string, i: number): NodeSpec => ({ name, profile: 'compute', ip: `10.20.${Math.floor(i / 250)}.${(i % 250) + 1}`, macs: [], pet: false });

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

describe.each(ENGINES)('concurrent writers on %s', (engine) => {
  const h = engineHarness(engine);
  let file = '';

  async function open(opts: { busyTimeoutMs?: number } = {}): Promise<Store> {
    const s = await openStore(await h.location(), { secretKey: key, ...opts });
    stores.push(s);
    return s;
  }

  /** SQLite's integrity check; PostgreSQL has no equivalent to ask (its own invariants hold or it errs). */
  async function integrity(): Promise<string> {
    if (engine !== 'sqlite') return 'ok';
    const raw = new Database(file, { readonly: true });
    try {
      return raw.pragma('integrity_check', { simple: true }) as string;
    } finally {
      raw.close();
    }
  }

  async function count(sql: string): Promise<number> {
    const raw = await h.raw();
    return Number((await raw.all<{ n: number | string }>(sql))[0]!.n);
  }

  /** Another writer holding the write lock: SQLite's BEGIN IMMEDIATE, or another server's transaction holding the writer lock. */
  async function foreignWriter(): Promise<{ begin(): Promise<void>; commit(): Promise<void>; rollback(): Promise<void> }> {
    const raw: RawDb = await h.raw();
    const begin = engine === 'sqlite' ? 'BEGIN IMMEDIATE' : `BEGIN; SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEYS[0]}, ${WRITER_LOCK_KEYS[1]})`;
    return { begin: () => raw.exec(begin), commit: () => raw.exec('COMMIT'), rollback: () => raw.exec('ROLLBACK') };
  }

  beforeEach(async () => {
    file = path.join(h.dir, 'fleet.db');
    const s = await open();
    await s.profiles.upsert(
      { name: 'compute', os: { install: 'kickstart', tree: 'http://x/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} },
      { actor: 't' },
    );
  });

  it('two stores on one file interleave transactions without loss or corruption', async () => {
    const a = stores[0]!;
    const b = await open();
    const work = (s: Store, prefix: string, offset: number) =>
      Array.from({ length: 40 }, async (_, i) => {
        const name = `${prefix}${i}`;
        await s.nodes.upsert(node(name, offset + i), { actor: prefix });
        await s.nodes.setState(name, 'pxe-armed', { expectedFrom: 'enrolled', actor: prefix });
        await s.events.append({ node: name, kind: 'power.cycle', actor: prefix });
      });
    await Promise.all([...work(a, 'a', 0), ...work(b, 'b', 100)]);
    expect(await integrity()).toBe('ok');
    expect((await a.nodes.list()).length).toBe(80);
    expect((await b.nodes.list({ states: ['pxe-armed'] })).length).toBe(80);
    // 3 events per node, plus profile.added from setup.
    expect(await count('select count(*) as n from events')).toBe(80 * 3 + 1);
    // Each node's events are in order.
    for (const n of ['a7', 'b33']) {
      expect((await a.events.list({ node: n })).events.map((e) => e.kind)).toEqual(['node.added', 'state.changed', 'power.cycle']);
    }
  });

  it('a contended compare-and-set lets exactly one writer win', async () => {
    const a = stores[0]!;
    const b = await open();
    await a.nodes.upsert(node('n1', 1), { actor: 't' });
    const results = await Promise.allSettled([
      a.nodes.setState('n1', 'pxe-armed', { expectedFrom: 'enrolled', actor: 'server-a' }),
      b.nodes.setState('n1', 'pxe-armed', { expectedFrom: 'enrolled', actor: 'server-b' }),
      a.nodes.setState('n1', 'pxe-armed', { expectedFrom: 'enrolled', actor: 'server-a2' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
      expect(r.reason).toBeInstanceOf(FleetError);
      expect((r.reason as FleetError).code).toBe('conflict');
    }
    expect((await a.events.list({ node: 'n1', kinds: ['state.changed'] })).events).toHaveLength(1);
  });

  it('waits for a foreign writer without blocking the event loop, then fails cleanly past the busy timeout', async () => {
    const s = stores[0]!;
    const holder = await foreignWriter();
    {
      await holder.begin();
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const pending = s.nodes.upsert(node('w1', 1), { actor: 't' });
      await new Promise((r) => setTimeout(r, 150));
      await holder.commit();
      await pending;
      clearInterval(ticker);
      expect(ticks).toBeGreaterThan(5); // the event loop kept running while the write waited
      expect((await s.nodes.get('w1'))?.name).toBe('w1');

      const impatient = await open({ busyTimeoutMs: 200 });
      await holder.begin();
      const started = Date.now();
      const e = await impatient.nodes.upsert(node('w2', 2), { actor: 't' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(FleetError);
      expect((e as FleetError).code).toBe('unavailable');
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      await holder.rollback();
      expect(await s.nodes.get('w2')).toBeNull();
    }
  });

  it('another process writing the same database at the same time', async () => {
    const s = stores[0]!;
    const script = path.join(h.dir, 'writer.cjs');
    // On PostgreSQL the child writes as another fleet server does: each transaction under the writer lock.
    const pgWriter = `const pg = require(process.env.PG);
       (async () => {
         const c = new pg.Client(JSON.parse(process.env.PGCONFIG));
         await c.connect();
         for (let i = 0; i < 300; i++) {
           await c.query('BEGIN');
           await c.query('SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEYS[0]}, ${WRITER_LOCK_KEYS[1]})');
           await c.query("insert into events (time, kind, actor) values ($1, 'child.write', 'child')", [new Date().toISOString()]);
           await c.query('COMMIT');
         }
         await c.end();
       })().catch((e) => { console.error(e); process.exit(1); });`;
    fs.writeFileSync(
      script,
      engine === 'postgres' ? pgWriter : `const Database = require(process.env.BSQL);
       const db = new Database(process.env.DB, { timeout: 5000 });
       db.pragma('journal_mode = WAL');
       const ins = db.prepare("insert into events (time, kind, actor) values (?, 'child.write', 'child')");
       for (let i = 0; i < 300; i++) {
         db.exec('BEGIN IMMEDIATE');
         ins.run(new Date().toISOString());
         db.exec('COMMIT');
       }
       db.close();`,
    );
    const require = createRequire(import.meta.url);
    const env =
      engine === 'postgres'
        ? { PG: require.resolve('pg'), PGCONFIG: JSON.stringify(clientConfig(postgresCluster(), new URL(((await h.location()) as { url: string }).url).pathname.slice(1))) }
        : { BSQL: require.resolve('better-sqlite3'), DB: file };
    const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    for (let i = 0; i < 100; i++) {
      await s.nodes.upsert(node(`p${i}`, i), { actor: 'parent' });
    }
    expect(await exited, stderr).toBe(0);
    expect(await integrity()).toBe('ok');
    expect(await count("select count(*) as n from events where kind = 'child.write'")).toBe(300);
    expect(await count("select count(*) as n from events where kind = 'node.added'")).toBe(100);
    // Event ids follow commit order: the child's and the parent's rows interleave, never collide.
    expect(await count('select count(distinct id) as n from events')).toBe(await count('select count(*) as n from events'));
    expect((await s.nodes.list()).length).toBe(100);
  });

  it('a read-modify-write in store.transaction never loses an update to a concurrent one (two stores, one database)', async () => {
    const a = stores[0]!;
    const b = await open();
    await a.settings.set('counter', { n: 0 }, { actor: 't' });
    // Each transaction reads, yields to the event loop (the other store's transactions run), then writes n+1.
    const bump = (s: Store) =>
      s.transaction(async (tx) => {
        const v = (await tx.settings.get<{ n: number }>('counter'))!;
        await new Promise((r) => setTimeout(r, 5));
        await tx.settings.set('counter', { n: v.n + 1 }, { actor: 't' });
      });
    await Promise.all(Array.from({ length: 10 }, (_, i) => bump(i % 2 === 0 ? a : b)));
    expect(await a.settings.get('counter')).toEqual({ n: 10 });
    expect(await b.settings.get('counter')).toEqual({ n: 10 });
  });

  itOn(engine, 'postgres')('writers queued behind a foreign writer leave the pool to readers: a read answers at once', async () => {
    const s = stores[0]!;
    await s.nodes.upsert(node('r1', 1), { actor: 't' });
    const holder = await foreignWriter();
    await holder.begin();
    // More writers than the pool has connections (8): without the store's writer queue each would hold one.
    const writes = Array.from({ length: 20 }, (_, i) => s.events.append({ node: 'r1', kind: 'power.cycle', actor: `w${i}` }));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    expect((await s.nodes.list()).map((n) => n.name)).toEqual(['r1']);
    expect(Date.now() - started).toBeLessThan(1000);
    await holder.commit();
    await Promise.all(writes);
    // In arrival order.
    expect((await s.events.list({ node: 'r1', kinds: ['power.cycle'] })).events.map((e) => e.actor)).toEqual(Array.from({ length: 20 }, (_, i) => `w${i}`));
  });
});

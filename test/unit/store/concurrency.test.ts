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

let dir: string;
let file: string;
const stores: Store[] = [];
const key = crypto.randomBytes(32);

async function open(opts: { busyTimeoutMs?: number } = {}): Promise<Store> {
  const s = await openStore({ file }, { secretKey: key, ...opts });
  stores.push(s);
  return s;
}

const node = (name: string, i: number): NodeSpec => ({ name, profile: 'compute', ip: `10.20.${Math.floor(i / 250)}.${(i % 250) + 1}`, macs: [], pet: false });

function integrity(): string {
  const raw = new Database(file, { readonly: true });
  try {
    return raw.pragma('integrity_check', { simple: true }) as string;
  } finally {
    raw.close();
  }
}

function count(sql: string): number {
  const raw = new Database(file, { readonly: true });
  try {
    return (raw.prepare(sql).get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-conc-'));
  file = path.join(dir, 'fleet.db');
  const s = await open();
  await s.profiles.upsert(
    { name: 'compute', os: { install: 'kickstart', tree: 'http://x/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} },
    { actor: 't' },
  );
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('concurrent writers', () => {
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
    expect(integrity()).toBe('ok');
    expect((await a.nodes.list()).length).toBe(80);
    expect((await b.nodes.list({ states: ['pxe-armed'] })).length).toBe(80);
    // 3 events per node, plus profile.added from setup.
    expect(count('select count(*) as n from events')).toBe(80 * 3 + 1);
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
    const holder = new Database(file);
    try {
      holder.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const pending = s.nodes.upsert(node('w1', 1), { actor: 't' });
      await new Promise((r) => setTimeout(r, 150));
      holder.exec('COMMIT');
      await pending;
      clearInterval(ticker);
      expect(ticks).toBeGreaterThan(5); // the event loop kept running while the write waited
      expect((await s.nodes.get('w1'))?.name).toBe('w1');

      const impatient = await open({ busyTimeoutMs: 200 });
      holder.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      const e = await impatient.nodes.upsert(node('w2', 2), { actor: 't' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(FleetError);
      expect((e as FleetError).code).toBe('unavailable');
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      holder.exec('ROLLBACK');
      expect(await s.nodes.get('w2')).toBeNull();
    } finally {
      holder.close();
    }
  });

  it('another process writing the same file at the same time', async () => {
    const s = stores[0]!;
    const script = path.join(dir, 'writer.cjs');
    fs.writeFileSync(
      script,
      `const Database = require(process.env.BSQL);
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
    const bsql = createRequire(import.meta.url).resolve('better-sqlite3');
    const child = spawn(process.execPath, [script], { env: { ...process.env, BSQL: bsql, DB: file }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    for (let i = 0; i < 100; i++) {
      await s.nodes.upsert(node(`p${i}`, i), { actor: 'parent' });
    }
    expect(await exited, stderr).toBe(0);
    expect(integrity()).toBe('ok');
    expect(count("select count(*) as n from events where kind = 'child.write'")).toBe(300);
    expect(count("select count(*) as n from events where kind = 'node.added'")).toBe(100);
    expect((await s.nodes.list()).length).toBe(100);
  });
});

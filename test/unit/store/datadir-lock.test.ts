/**
 * The data directory lock (server/store/lock.ts) and the storage errors of
 * the store, in one process. Two real processes: test/integration/datadir.test.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { LOCK_FILE, LOCK_OWNER_FILE, lockDataDir, mapStorageError, openDataDir, openStore, storageFailure, type PostgresLocation, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES } from './engines.js';

let dir: string;
const stores: Store[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-lock-'));
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function errOf(p: Promise<unknown> | (() => unknown)): Promise<FleetError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

/** name → size and content digest of every file under d. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(d, { recursive: true }) as string[]) {
    const f = path.join(d, name);
    const st = fs.statSync(f);
    // The lock file is only stat'ed: closing a descriptor of it would drop this process's POSIX lock.
    const lockFile = name.startsWith(LOCK_FILE) && !name.endsWith('.json');
    out[name] = st.isFile() ? `${st.size}:${st.mtimeMs}:${lockFile ? '' : crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')}` : 'dir';
  }
  return out;
}

describe.each(ENGINES)('data directory lock, store on %s', (engine) => {
  const h = engineHarness(engine);
  /** The database of the data dir's store: DATA/fleet.db, or a PostgreSQL database (the lock is the data dir's on both). */
  const postgres = async (): Promise<{ postgres?: PostgresLocation }> => (engine === 'postgres' ? { postgres: (await h.location()) as PostgresLocation } : {});

  it('a second store on the same data dir is refused, names the holder and changes nothing', async () => {
    const data = path.join(dir, 'data');
    const first = await openDataDir(data, { lockedBy: 'fleet server', ...(await postgres()) });
    stores.push(first.store);
    const owner = JSON.parse(fs.readFileSync(path.join(data, LOCK_OWNER_FILE), 'utf8')) as { pid: number; host: string; what: string };
    expect(owner).toMatchObject({ pid: process.pid, host: os.hostname(), what: 'fleet server' });

    const before = snapshot(data);
    const e = await errOf(openDataDir(data, await postgres()));
    expect(e.code).toBe('store.locked');
    expect(e.exit).toBe(2);
    expect(e.message).toContain(`data directory ${data} is in use by another fleet process (fleet server, pid ${process.pid} on ${os.hostname()}`);
    expect(snapshot(data)).toEqual(before);

    // Released with the store: the next one opens, the holder's name went first.
    await first.store.close();
    expect(fs.existsSync(path.join(data, LOCK_OWNER_FILE))).toBe(false);
    expect(fs.existsSync(path.join(data, LOCK_FILE))).toBe(true);
    const again = await openDataDir(data, await postgres());
    stores.push(again.store);
    expect(await again.store.nodes.list()).toEqual([]);
  });

  it('the lock is released when opening fails after it was taken', async () => {
    const data = path.join(dir, 'data');
    fs.mkdirSync(data, { mode: 0o700 });
    fs.writeFileSync(path.join(data, 'secret.key'), Buffer.alloc(32), { mode: 0o644 });
    expect((await errOf(openDataDir(data, await postgres()))).code).toBe('config.unreadable');
    fs.chmodSync(path.join(data, 'secret.key'), 0o600);
    const d = await openDataDir(data, await postgres());
    stores.push(d.store);
    expect(d.store.engine).toBe(engine);
  });
});

describe('data directory lock', () => {

  it('a holder without its name is still a holder', () => {
    const lock = lockDataDir(dir);
    fs.rmSync(path.join(dir, LOCK_OWNER_FILE));
    try {
      const e = (() => {
        try {
          lockDataDir(dir);
        } catch (x) {
          return x as FleetError;
        }
        throw new Error('not refused');
      })();
      expect(e.code).toBe('store.locked');
      expect(e.message).toContain('holder unknown');
    } finally {
      lock.release();
    }
    lockDataDir(dir).release();
  });
});

describe('storage errors say what they are', () => {
  it('maps SQLite and errno codes of a full disk and a read-only file system, and nothing else', () => {
    for (const code of ['SQLITE_FULL', 'ENOSPC', 'EDQUOT']) {
      const e = storageFailure(Object.assign(new Error('x'), { code }), 'writing');
      expect(e?.code).toBe('store.disk_full');
      expect(e?.message).toMatch(/^writing: the disk holding the data directory is full/);
    }
    for (const code of ['SQLITE_READONLY', 'SQLITE_READONLY_DBMOVED', 'EROFS']) expect(storageFailure(Object.assign(new Error('x'), { code }))?.code).toBe('store.read_only');
    for (const code of ['SQLITE_BUSY', 'ENOENT', 'SQLITE_CONSTRAINT_UNIQUE', undefined]) expect(storageFailure(Object.assign(new Error('x'), { code }))).toBeNull();
    expect(mapStorageError(Object.assign(new Error('nope'), { code: 'EACCES' }), 'opening f').message).toBe('opening f: nope');
  });

  it('SQLITE_FULL from a write is store.disk_full and the store works again once there is room', async () => {
    const store = await openStore({ file: path.join(dir, 'fleet.db') }, { secretKey: crypto.randomBytes(32) });
    stores.push(store);
    // max_page_count reached gives SQLITE_FULL like a full disk (a real full disk: test/integration/datadir.test.ts).
    const raw = (store as unknown as { ctx: { db: { executeQuery: unknown } } }).ctx;
    expect(raw).toBeDefined();
    const { sql } = await import('kysely');
    const pages = Number(((await sql`pragma page_count`.execute(raw.db as never)).rows[0] as Record<string, unknown>).page_count);
    await sql.raw(`pragma max_page_count = ${pages}`).execute(raw.db as never);
    const big = 'x'.repeat(64 * 1024);
    const e = await errOf(store.events.append({ kind: 'test.big', actor: 'test', details: { big } }));
    expect(e.code).toBe('store.disk_full');
    expect(e.message).not.toContain('cannot rollback');
    // The store still works once there is room again.
    await sql.raw('pragma max_page_count = 1073741823').execute(raw.db as never);
    await store.events.append({ kind: 'test.small', actor: 'test' });
  });
});

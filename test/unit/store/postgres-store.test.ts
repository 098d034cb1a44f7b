/**
 * What only the PostgreSQL engine has (docs/decisions/0019): the store URL
 * (checked, shown without a password), and the clear errors of a server
 * that cannot be reached or refuses the login, which leave the data
 * directory unlocked and never carry the password. Against the run's
 * temporary PostgreSQL 15 (test/support/postgres-global-setup.ts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { checkStoreUrl, LOCK_OWNER_FILE, openDataDir, openStore, redactStoreUrl, type Store } from '../../../server/store/index.js';
import { mapPostgresError } from '../../../server/store/postgres.js';
import { createDatabase, engineHarness, postgresCluster } from './engines.js';

const key = crypto.randomBytes(32);
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function errOf(p: Promise<unknown>): Promise<FleetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FleetError);
  return e as FleetError;
}

describe('store URL', () => {
  it('accepts postgres:// and postgresql:// naming a database, with or without user, port and parameters', () => {
    for (const url of ['postgres://fleet@db1:5432/fleet', 'postgresql://db1/fleet', 'postgres://fleet@[::1]:5433/fleet?sslmode=require', 'postgres:///fleet?host=/run/postgresql', 'postgres://fleet@localhost/fleet?host=/run/postgresql']) {
      expect(checkStoreUrl(url), url).toBeUndefined();
    }
  });

  it('refuses a password in the URL, another scheme, no database, or no URL at all, never repeating the URL', () => {
    const pw = checkStoreUrl('postgres://fleet:hunter2-secret@db1/fleet');
    expect(pw).toMatch(/password in it.*store.password_file or store.password_env/);
    expect(pw).not.toContain('hunter2');
    expect(checkStoreUrl('mysql://db1/fleet')).toMatch(/scheme mysql/);
    expect(checkStoreUrl('postgres://db1')).toMatch(/names no database/);
    expect(checkStoreUrl('postgres://db1/')).toMatch(/names no database/);
    expect(checkStoreUrl('db1:5432')).toMatch(/scheme db1|not a URL/);
    expect(checkStoreUrl('not a url')).toMatch(/not a URL/);
  });

  it('is shown without password or parameters', () => {
    expect(redactStoreUrl('postgres://fleet:hunter2@db1:5432/fleet?sslmode=require&password=x')).toBe('postgres://fleet@db1:5432/fleet');
    expect(redactStoreUrl('postgres://fleet@localhost/fleet?host=/run/postgresql')).toBe('postgres://fleet@/run/postgresql/fleet');
  });

  it('a URL with a password is refused by openStore before anything connects', async () => {
    const e = await errOf(openStore({ url: 'postgres://fleet:hunter2@127.0.0.1:1/fleet' }, { secretKey: key }));
    expect(e.code).toBe('usage.invalid');
    expect(e.message).not.toContain('hunter2');
  });
});

describe('PostgreSQL errors in the catalogue', () => {
  const pgError = (code: string, message = 'boom') => Object.assign(new pg.DatabaseError(message, 0, 'error'), { code });

  it('maps SQLSTATEs as SQLite codes are mapped: constraints, busy, full disk, read-only, unreachable; else internal', () => {
    const cases: [string, string, RegExp][] = [
      ['23503', 'conflict', /a referenced resource is missing or still in use/],
      ['23505', 'conflict', /conflicts with existing data/],
      ['23514', 'conflict', /conflicts with existing data/],
      ['55P03', 'unavailable', /busy/],
      ['40001', 'unavailable', /busy/],
      ['40P01', 'unavailable', /busy/],
      ['53100', 'store.disk_full', /disk of the PostgreSQL server is full/],
      ['25006', 'store.read_only', /read-only.*primary/],
      ['08006', 'unavailable', /unavailable/],
      ['57P01', 'unavailable', /unavailable/],
      ['42P01', 'internal', /database error 42P01: boom/],
    ];
    for (const [code, fleet, message] of cases) {
      const e = mapPostgresError(pgError(code));
      expect(e, code).toBeInstanceOf(FleetError);
      expect((e as FleetError).code, code).toBe(fleet);
      expect((e as FleetError).message, code).toMatch(message);
    }
    expect((mapPostgresError(new Error('timeout exceeded when trying to connect')) as FleetError).code).toBe('unavailable');
    // Not PostgreSQL's: left as it is (SQLite's and others' are mapped elsewhere).
    const other = Object.assign(new Error('x'), { code: 'SQLITE_BUSY' });
    expect(mapPostgresError(other)).toBe(other);
  });
});

describe('PostgreSQL server problems are said clearly', () => {
  const h = engineHarness('postgres');
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-pgstore-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a wrong password: unavailable, "refused the login", no password in the message; the data directory is unlocked again', async () => {
    const loc = (await h.location()) as { url: string; password: string };
    const data = path.join(dir, 'data');
    const e = await errOf(openDataDir(data, { postgres: { url: loc.url, password: 'wrong-password-123' } }));
    expect(e.code).toBe('unavailable');
    expect(e.message).toContain(`PostgreSQL at ${loc.url} refused the login`);
    expect(e.message).not.toContain('wrong-password-123');
    expect(e.message).not.toContain(loc.password);
    expect(fs.existsSync(path.join(data, LOCK_OWNER_FILE))).toBe(false);
    // The right password opens it, and the data directory holds no SQLite database.
    const d = await openDataDir(data, { postgres: loc });
    stores.push(d.store);
    expect(d.store.engine).toBe('postgres');
    expect(fs.existsSync(path.join(data, 'fleet.db'))).toBe(false);
  });

  it('no server listening: unavailable, naming the server', async () => {
    const c = postgresCluster();
    const url = `postgres://${c.user}@127.0.0.1:1/fleet`;
    const e = await errOf(openStore({ url, password: c.password }, { secretKey: key }));
    expect(e.code).toBe('unavailable');
    expect(e.message).toContain(`cannot reach PostgreSQL at ${url}`);
    expect(e.message).not.toContain(c.password);
  });

  it('a unix socket URL (?host=DIR, no host) with a password from the file logs in', async () => {
    const c = postgresCluster();
    const db = await createDatabase();
    // The cluster's socket is in its directory; the password still goes with the login.
    const url = `postgres:///${db.database}?host=${encodeURIComponent(c.dir)}&port=${c.port}&user=${c.user}`;
    const s = await openStore({ url, password: c.password }, { secretKey: key });
    stores.push(s);
    expect(await s.nodes.list()).toEqual([]);
  });

  it('a database that does not exist: unavailable, saying to create it', async () => {
    const c = postgresCluster();
    const url = `postgres://${c.user}@${c.host}:${c.port}/no_such_db`;
    const e = await errOf(openStore({ url, password: c.password }, { secretKey: key }));
    expect(e.code).toBe('unavailable');
    expect(e.message).toMatch(/no_such_db.*create it first/);
  });

  it('two stores migrating one new database at once: both open, each migration applied once', async () => {
    const db = await createDatabase();
    const [a, b] = await Promise.all([openStore(db, { secretKey: key }), openStore(db, { secretKey: key })]);
    stores.push(a, b);
    expect(await a.appliedMigrations()).toEqual(await b.appliedMigrations());
    await a.profiles.upsert({ name: 'p', os: { install: 'kickstart', tree: 'http://x/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 't' });
    expect((await b.profiles.list()).map((p) => p.name)).toEqual(['p']);
  });
});

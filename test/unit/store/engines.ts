/**
 * The store's tests run on both engines (issue 15 item 1): `describe.each(ENGINES)`
 * and, inside, `const h = engineHarness(engine)`. SQLite stores are files in a
 * temporary directory per test; PostgreSQL stores are fresh databases of the
 * run's temporary cluster (test/support/postgres-global-setup.ts), one per
 * test and name. Where PostgreSQL could not be started its cases skip, and
 * fail under CI=true, saying why.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, inject, it } from 'vitest';
import type { StoreLocation } from '../../../server/store/index.js';
import { clusterUrl, type PostgresCluster } from '../../support/postgres-cluster.js';

export type EngineName = 'sqlite' | 'postgres';
export const ENGINES: readonly EngineName[] = ['sqlite', 'postgres'];

/** A connection beside the store's, for what the tests look at or break on purpose. `?` placeholders on both engines. */
export interface RawDb {
  all<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

export interface EngineHarness {
  readonly engine: EngineName;
  /** The test's temporary directory (data dirs, key files); new for each test. */
  readonly dir: string;
  /** Where store `name` of this test lives: the same place for the same name within a test, a new one in each test. */
  location(name?: string): Promise<StoreLocation>;
  /** Like location, but SQLite's in memory (as the tests that need no file had it). */
  fresh(name?: string): Promise<StoreLocation>;
  /** A raw connection to store `name`'s database. */
  raw(name?: string): Promise<RawDb>;
}

/**
 * `it` on engine `only`, nothing at all on the other: a case that does not apply is not
 * declared (a skipped case fails the run under CI=true).
 */
export function itOn(engine: EngineName, only: EngineName): typeof it {
  return engine === only ? it : ((() => {}) as unknown as typeof it);
}

/** The run's PostgreSQL cluster; throws why there is none. */
export function postgresCluster(): PostgresCluster {
  const p = inject('fleetPostgres');
  if (!p) throw new Error('no PostgreSQL cluster was provided: run the tests with the repository vitest.config.ts (its globalSetup starts one)');
  if (!p.ok) throw new Error(`PostgreSQL is not available: ${p.why}`);
  return p.cluster;
}

/** Creates an empty database in the run's cluster and returns its location. */
export async function createDatabase(prefix = 't'): Promise<{ url: string; password: string; database: string }> {
  const c = postgresCluster();
  const database = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(clientConfig(c, 'postgres'));
  await admin.connect();
  try {
    await admin.query(`create database ${database}`);
  } finally {
    await admin.end();
  }
  return { url: clusterUrl(c, database), password: c.password, database };
}

/** A pg client's settings for `database` (not a connection string: pg would let its empty password win). */
export function clientConfig(c: PostgresCluster, database: string): pg.ClientConfig {
  return { host: c.host, port: c.port, user: c.user, password: c.password, database };
}

function pgPlaceholders(text: string): string {
  let i = 0;
  return text.replace(/\?/g, () => `$${++i}`);
}

export function engineHarness(engine: EngineName): EngineHarness {
  let dir = '';
  let databases = new Map<string, { url: string; password: string; database: string }>();
  const raws: RawDb[] = [];

  beforeEach((ctx) => {
    if (engine === 'postgres') {
      const p = inject('fleetPostgres');
      if (!p?.ok && process.env.CI !== 'true') {
        ctx.skip(`PostgreSQL is not available: ${p?.ok === false ? p.why : 'no cluster provided'}`);
        return;
      }
      // Under CI=true the first location() throws why: the test fails.
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `fleet-store-${engine}-`));
    databases = new Map();
  });

  afterEach(async () => {
    for (const r of raws.splice(0)) await r.close().catch(() => {});
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  async function pgLocation(name: string): Promise<{ url: string; password: string; database: string }> {
    let db = databases.get(name);
    if (!db) {
      db = await createDatabase();
      databases.set(name, db);
    }
    return db;
  }

  return {
    engine,
    get dir() {
      return dir;
    },
    async location(name = 'fleet') {
      if (engine === 'sqlite') return { file: path.join(dir, `${name}.db`) };
      const { url, password } = await pgLocation(name);
      return { url, password };
    },
    async fresh(name = 'fleet') {
      if (engine === 'sqlite') return { memory: true };
      const { url, password } = await pgLocation(name);
      return { url, password };
    },
    async raw(name = 'fleet') {
      let r: RawDb;
      if (engine === 'sqlite') {
        const db = new Database(path.join(dir, `${name}.db`));
        r = {
          all: async <T>(text: string, params: unknown[] = []) => {
            const stmt = db.prepare(text);
            if (stmt.reader) return stmt.all(...params) as T[];
            stmt.run(...params);
            return [];
          },
          exec: async (text) => void db.exec(text),
          close: async () => void db.close(),
        };
      } else {
        const client = new pg.Client(clientConfig(postgresCluster(), (await pgLocation(name)).database));
        await client.connect();
        let closed = false;
        r = {
          all: async <T>(text: string, params: unknown[] = []) => (await client.query(pgPlaceholders(text), params)).rows as T[],
          exec: async (text) => void (await client.query(text)),
          close: async () => {
            if (closed) return;
            closed = true;
            await client.end();
          },
        };
      }
      raws.push(r);
      return r;
    },
  };
}

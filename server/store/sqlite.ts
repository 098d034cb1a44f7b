/**
 * The SQLite engine under Kysely: better-sqlite3, pragmas, and a driver that
 * takes the write lock without blocking the event loop.
 *
 * Everything SQLite-specific lives here (and in the `SQLITE_*` error mapping
 * below); the repositories only speak Kysely. A PostgreSQL store would swap
 * this file for one building a PostgresDialect (docs/decisions/0001).
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  sql,
  SqliteDialect,
  SqliteDriver,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type Kysely,
  type QueryResult,
  type SqliteDialectConfig,
} from 'kysely';
import { FleetError } from '../../common/errors.js';
import { mapStorageError, storageFailure } from './storage-errors.js';

export { mapStorageError, storageFailure };

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** The page cache of a connection, KiB (an upper bound). */
const CACHE_KIB = 32 * 1024;

export interface SqliteOpenOptions {
  busyTimeoutMs: number;
}

/**
 * Opens the database file (created 0600: it holds encrypted secrets and token
 * hashes; SQLite gives its -wal and -shm files the same mode) and sets the
 * pragmas fleet relies on.
 */
export function openSqlite(location: { file: string } | { memory: true }, opts: SqliteOpenOptions): Database.Database {
  let file = ':memory:';
  if ('file' in location) {
    file = location.file;
    try {
      fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o600));
    } catch (e) {
      throw mapStorageError(e, `cannot open database file ${file}`);
    }
  }
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: opts.busyTimeoutMs });
  } catch (e) {
    throw mapStorageError(e, `cannot open database ${file}`);
  }
  try {
    // WAL: readers never block the writer and the writer never blocks readers.
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs)}`);
    db.pragma('foreign_keys = ON');
    // NORMAL is durable against process crashes in WAL mode; a power loss may lose the last commits, never corrupt.
    db.pragma('synchronous = NORMAL');
    // SQLite's default page cache (2 MiB) is smaller than the event log's (node, id) index of a few
    // thousand nodes: each append re-read index pages from the OS. 32 MiB at most, taken as pages are
    // used (issue 18: about 10 % of the CPU of a write in a 10,000-node store).
    db.pragma(`cache_size = -${CACHE_KIB}`);
  } catch (e) {
    db.close();
    throw mapDbError(e);
  }
  return db;
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** How many prepared statements a connection keeps (the store issues a few dozen distinct statements). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely's SQLite connection prepares every statement anew on each query;
 * preparing costs more than running most of fleet's statements. This one
 * keeps the prepared statements by SQL text (bounded, oldest dropped first;
 * pragmas excepted).
 * A cached statement is only ever run to completion synchronously, so it is
 * never in use twice; streams prepare their own.
 */
class CachingSqliteConnection implements DatabaseConnection {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly raw: Database.Database) {}

  private prepare(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (stmt) return stmt;
    stmt = this.raw.prepare(text);
    // Some pragmas act (or read their value) when prepared, not when run: never reuse one.
    if (/^\s*pragma/i.test(text)) return stmt;
    if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.delete(this.statements.keys().next().value!);
    this.statements.set(text, stmt);
    return stmt;
  }

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const { sql: text, parameters } = compiledQuery;
    const stmt = this.prepare(text);
    if (stmt.reader) return Promise.resolve({ rows: stmt.all(parameters) as R[] });
    const { changes, lastInsertRowid } = stmt.run(parameters);
    return Promise.resolve({ numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] });
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const stmt = this.raw.prepare(compiledQuery.sql);
    if (!stmt.reader) throw new Error('the SQLite driver streams only statements that return rows');
    for (const row of stmt.iterate(compiledQuery.parameters)) yield { rows: [row as R] };
  }
}

/**
 * Kysely's SQLite driver begins transactions with a deferred `BEGIN`: a
 * transaction that reads and then writes can fail with SQLITE_BUSY at once
 * when another connection wrote meanwhile. Every fleet transaction is a
 * write, so this driver uses `BEGIN IMMEDIATE` (take the write lock first).
 *
 * And better-sqlite3 is synchronous: waiting for the lock through
 * busy_timeout would freeze the whole process, and would deadlock two stores
 * of one process (the holder cannot run while the waiter blocks the thread).
 * So the lock is tried without waiting and retried on timers, up to the
 * busy timeout; then the call fails with FleetError('unavailable').
 */
class FleetSqliteDriver extends SqliteDriver {
  private readonly connection: CachingSqliteConnection;
  private readonly begin: Database.Statement;
  private readonly restoreBusyTimeout: string;

  constructor(
    config: SqliteDialectConfig,
    private readonly raw: Database.Database,
    private readonly busyTimeoutMs: number,
  ) {
    super(config);
    this.connection = new CachingSqliteConnection(raw);
    this.begin = raw.prepare('BEGIN IMMEDIATE');
    this.restoreBusyTimeout = `PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`;
  }

  /** Who holds the one connection, and who waits for it, in arrival order. */
  private held = false;
  private readonly waiting: (() => void)[] = [];

  /**
   * One connection, one user at a time, handed over in arrival order. Not the base driver's
   * mutex: every waiter there awaits the same promise, so each release woke all of them and all
   * but one went back to sleep; with a thousand requests waiting (bench discovery-inspection: a
   * rack's inspection reports at once) those wake-ups cost more CPU than the queries.
   */
  override async acquireConnection(): Promise<DatabaseConnection> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    return this.connection;
  }

  override async releaseConnection(): Promise<void> {
    const next = this.waiting.shift();
    // Handed straight to the next waiter: `held` stays true, nobody can slip in between.
    if (next) next();
    else this.held = false;
  }

  /**
   * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
   * SQLITE_IOERR, SQLITE_NOMEM, ...). Kysely then issues its own ROLLBACK,
   * which failed with "cannot rollback - no transaction is active" and
   * replaced the error that mattered (a full disk looked like a bug). Roll
   * back only what is still open.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.raw.inTransaction) return;
    await super.rollbackTransaction(connection);
  }

  override async beginTransaction(_connection: DatabaseConnection): Promise<void> {
    const deadline = Date.now() + this.busyTimeoutMs;
    let delay = 1;
    // Not a prepared statement: SQLite applies this pragma when it is prepared, not when it runs.
    // exec, not pragma(): it prepares, runs and finalizes in native code, without a Statement object
    // for the garbage collector (a quarter of the CPU; twice per transaction, issue 18).
    this.raw.exec('PRAGMA busy_timeout = 0');
    try {
      for (;;) {
        try {
          this.begin.run();
          return;
        } catch (e) {
          if (!isBusy(e)) throw e;
          if (Date.now() >= deadline) {
            throw new FleetError('unavailable', `the database stayed locked by another writer for ${this.busyTimeoutMs} ms`, undefined, { cause: e });
          }
          await sleep(delay);
          delay = Math.min(delay * 2, 25);
        }
      }
    } finally {
      this.raw.exec(this.restoreBusyTimeout);
    }
  }
}

export class FleetSqliteDialect extends SqliteDialect {
  constructor(
    private readonly raw: Database.Database,
    private readonly busyTimeoutMs: number,
  ) {
    super({ database: raw });
  }

  override createDriver(): Driver {
    return new FleetSqliteDriver({ database: this.raw }, this.raw, this.busyTimeoutMs);
  }
}

/**
 * Maps engine errors to the catalogue. Constraint messages name tables and
 * columns only, never values, so they are safe to show.
 */
export function mapDbError(e: unknown): unknown {
  if (e instanceof FleetError) return e;
  const storage = storageFailure(e);
  if (storage) return storage;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return e;
  const message = (e as Error).message;
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new FleetError('conflict', `a referenced resource is missing or still in use (${message})`, undefined, { cause: e });
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    return new FleetError('conflict', `the change conflicts with existing data (${message})`, undefined, { cause: e });
  }
  if (isBusy(e)) return new FleetError('unavailable', `the database is busy (${message})`, undefined, { cause: e });
  return new FleetError('internal', `database error ${code}: ${message}`, undefined, { cause: e });
}

export interface SqliteEngineInfo {
  engine: 'sqlite';
  version: string;
  journalMode: string;
  busyTimeoutMs: number;
  foreignKeys: boolean;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA */
  synchronous: number;
}

/** The engine settings in force on the store's connection (for status pages and tests). */
export async function sqliteInfo(db: Kysely<any>): Promise<SqliteEngineInfo> {
  const one = async (q: ReturnType<typeof sql.raw>) => Object.values(((await q.execute(db)).rows[0] ?? {}) as Record<string, unknown>)[0];
  return {
    engine: 'sqlite',
    version: String(await one(sql.raw('select sqlite_version()'))),
    journalMode: String(await one(sql.raw('pragma journal_mode'))),
    busyTimeoutMs: Number(await one(sql.raw('pragma busy_timeout'))),
    foreignKeys: Number(await one(sql.raw('pragma foreign_keys'))) === 1,
    synchronous: Number(await one(sql.raw('pragma synchronous'))),
  };
}

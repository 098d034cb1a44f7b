/**
 * The PostgreSQL engine under Kysely: the `pg` driver's pool, a driver whose
 * write transactions keep the guarantees SQLite's single writer gives, and
 * the mapping of PostgreSQL's errors to the catalogue
 * (docs/decisions/0019-postgresql-store.md).
 *
 * Every store transaction is a write (store.transaction, the repositories'
 * writes). SQLite runs them one at a time (BEGIN IMMEDIATE): a transaction
 * that reads a row and then writes it can never interleave with another
 * writer, and event ids are handed out in commit order. Here each write
 * transaction runs at READ COMMITTED and first takes one transaction-scoped
 * advisory lock of the database (pg_advisory_xact_lock), waited for up to
 * the busy timeout (lock_timeout), then FleetError('unavailable') as on
 * SQLite. Readers outside a transaction never wait for it (MVCC, like WAL).
 * So every compare-and-set, read-modify-write and lease of the repositories
 * is exactly as safe as on SQLite, and no transaction is ever retried
 * (retrying the caller's fn is unsafe: it may do more than SQL).
 */
import pg from 'pg';
import { CompiledQuery, PostgresDialect, PostgresDriver, sql, type DatabaseConnection, type Driver, type Kysely, type TransactionSettings } from 'kysely';
import { FleetError } from '../../common/errors.js';
import { checkStoreUrl, redactStoreUrl } from './url.js';

export { checkStoreUrl, redactStoreUrl };

/** The advisory lock every write transaction takes: two int4 keys ("fleet", "store writer"). */
export const WRITER_LOCK_KEYS: readonly [number, number] = [0x666c6565, 1];

/** Connections of a store's pool: one writer at a time, readers beside it. */
export const DEFAULT_POOL_SIZE = 8;

export interface PostgresLocation {
  /** postgres://USER@HOST:PORT/DB (no password: it comes from `password`, PGPASSWORD or ~/.pgpass). */
  url: string;
  /** The login password (store.password_file / password_env); never part of the URL. */
  password?: string;
}

export function openPostgresPool(location: PostgresLocation, opts: { poolSize?: number; connectTimeoutMs: number }): pg.Pool {
  const why = checkStoreUrl(location.url);
  if (why) throw new FleetError('usage.invalid', `store URL ${redactStoreUrl(location.url)} ${why}`);
  // pg lets the connection string's (empty) password win over a `password` option: the password goes
  // into the string handed to pg, only here in memory; what fleet shows is redactStoreUrl's.
  let connectionString = location.url;
  if (location.password !== undefined) {
    const u = new URL(location.url);
    // A URL without a host (a unix socket named by ?host=, which pg lets win) cannot hold a password.
    if (u.hostname === '') u.hostname = 'localhost';
    u.password = encodeURIComponent(location.password);
    connectionString = u.toString();
  }
  const pool = new pg.Pool({
    connectionString,
    max: opts.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    application_name: 'fleet',
  });
  // An idle connection the server closed (restart, admin kill) emits 'error' on the pool; without a
  // listener that would end the process. The next query opens a new connection or fails clearly.
  pool.on('error', () => {});
  return pool;
}

/**
 * Kysely's PostgreSQL driver with fleet's write transaction: BEGIN, the
 * busy timeout as lock_timeout, then the writer lock (in one round trip).
 */
class FleetPostgresDriver extends PostgresDriver {
  private readonly beginSql: string;

  constructor(
    config: ConstructorParameters<typeof PostgresDriver>[0],
    private readonly busyTimeoutMs: number,
  ) {
    super(config);
    const ms = Math.max(1, Math.trunc(busyTimeoutMs));
    this.beginSql = `begin; set local lock_timeout = ${ms}; select pg_advisory_xact_lock(${WRITER_LOCK_KEYS[0]}, ${WRITER_LOCK_KEYS[1]})`;
  }

  /** Connections whose queries' errors are mapped to the catalogue (reads outside transactions included). */
  private readonly mapped = new WeakSet<DatabaseConnection>();

  override async acquireConnection(): Promise<DatabaseConnection> {
    let connection: DatabaseConnection;
    try {
      connection = await super.acquireConnection();
    } catch (e) {
      throw mapPostgresError(e);
    }
    if (!this.mapped.has(connection)) {
      // Patched in place, not wrapped: Kysely's driver releases the very object it handed out.
      const execute = connection.executeQuery.bind(connection);
      connection.executeQuery = (async (q: CompiledQuery) => {
        try {
          return await execute(q);
        } catch (e) {
          throw mapPostgresError(e);
        }
      }) as DatabaseConnection['executeQuery'];
      this.mapped.add(connection);
    }
    return connection;
  }

  override async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (settings.isolationLevel || settings.accessMode) return super.beginTransaction(connection, settings);
    try {
      await connection.executeQuery(CompiledQuery.raw(this.beginSql));
    } catch (e) {
      // Kysely rolls back only what began: close this one here, or the pool gets an aborted transaction back.
      await connection.executeQuery(CompiledQuery.raw('rollback')).catch(() => {});
      const cause = e instanceof FleetError ? e.cause : e;
      if ((cause as { code?: unknown } | undefined)?.code === '55P03') {
        throw new FleetError('unavailable', `the database stayed locked by another writer for ${this.busyTimeoutMs} ms`, undefined, { cause });
      }
      throw e;
    }
  }
}

export class FleetPostgresDialect extends PostgresDialect {
  constructor(
    private readonly pool: pg.Pool,
    private readonly busyTimeoutMs: number,
  ) {
    super({ pool });
  }

  override createDriver(): Driver {
    return new FleetPostgresDriver({ pool: this.pool }, this.busyTimeoutMs);
  }
}

/** SQLSTATE classes and codes (https://www.postgresql.org/docs/15/errcodes-appendix.html). */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOENT', '57P01', '57P02', '57P03', '53300']);

function pgCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether e came from PostgreSQL (a SQLSTATE) rather than from SQLite or Node. */
export function isPostgresError(e: unknown): boolean {
  return e instanceof pg.DatabaseError || (e instanceof Error && PG_CLIENT_ERRORS.has(e.message));
}

/** The messages pg's client and pool fail with when the server or the pool cannot be reached in time. */
const PG_CLIENT_ERRORS = new Set(['Connection terminated due to connection timeout', 'Connection terminated unexpectedly', 'timeout exceeded when trying to connect']);

/**
 * Maps PostgreSQL's errors to the catalogue, as mapDbError does SQLite's:
 * constraint violations are conflicts (their messages name constraints and
 * tables, never values: the DETAIL that has the values is not shown), lock
 * and serialization waits are unavailable, a full disk and a read-only
 * server say so. Returns e unchanged when it is none of these.
 */
export function mapPostgresError(e: unknown): unknown {
  if (e instanceof FleetError) return e;
  const code = pgCode(e);
  const message = (e as Error | null)?.message ?? String(e);
  if (e instanceof pg.DatabaseError && code !== undefined) {
    if (code === '23503') return new FleetError('conflict', `a referenced resource is missing or still in use (${message})`, undefined, { cause: e });
    if (code.startsWith('23')) return new FleetError('conflict', `the change conflicts with existing data (${message})`, undefined, { cause: e });
    if (code === '55P03' || code === '40001' || code === '40P01') return new FleetError('unavailable', `the database is busy (${message})`, undefined, { cause: e });
    if (code === '53100') return new FleetError('store.disk_full', `the disk of the PostgreSQL server is full (${code}); free space, then retry — nothing was written`, { code }, { cause: e });
    if (code === '25006') return new FleetError('store.read_only', `the PostgreSQL server is read-only (${code}): a standby? point store.url at the primary`, { code }, { cause: e });
    if (code.startsWith('08') || CONNECTION_CODES.has(code)) return new FleetError('unavailable', `the PostgreSQL server is unavailable (${code}: ${message})`, { code }, { cause: e });
    return new FleetError('internal', `database error ${code}: ${message}`, undefined, { cause: e });
  }
  if (isPostgresError(e) || (code !== undefined && CONNECTION_CODES.has(code) && (e as { syscall?: unknown }).syscall === 'connect')) {
    return new FleetError('unavailable', `the PostgreSQL server is unavailable (${message})`, code ? { code } : undefined, { cause: e });
  }
  return e;
}

/** Why a first connection failed, as the operator can act on it; `where` is the redacted URL. */
export function connectFailure(e: unknown, where: string): FleetError {
  const code = pgCode(e);
  const message = (e as Error | null)?.message ?? String(e);
  if (code === '28P01' || code === '28000') {
    return new FleetError('unavailable', `PostgreSQL at ${where} refused the login (${code}: ${message}); check store.password_file / store.password_env`, { code }, { cause: e });
  }
  if (code === '3D000') return new FleetError('unavailable', `PostgreSQL at ${where}: ${message}; create it first (createdb), fleet creates only its tables`, { code }, { cause: e });
  return new FleetError('unavailable', `cannot reach PostgreSQL at ${where}: ${code ? `${code}: ` : ''}${message}`, code ? { code } : undefined, { cause: e });
}

export interface PostgresEngineInfo {
  engine: 'postgres';
  version: string;
  /** The server as the store was told it (no password). */
  server: string;
  /** How write transactions keep their guarantees (docs/decisions/0019). */
  writeIsolation: 'read committed + writer lock';
  /** lock_timeout of a write transaction waiting for the writer lock (the busy timeout). */
  busyTimeoutMs: number;
  poolSize: number;
  /** The database's collation (text order of lists sorted in SQL); C sorts as SQLite does. */
  collation: string;
}

export async function postgresInfo(db: Kysely<any>, server: string, busyTimeoutMs: number, poolSize: number): Promise<PostgresEngineInfo> {
  const { rows } = await sql<{ version: string; collation: string }>`select current_setting('server_version') as version, (select datcollate from pg_database where datname = current_database()) as collation`.execute(db);
  return {
    engine: 'postgres',
    version: String(rows[0]?.version ?? '?'),
    server,
    writeIsolation: 'read committed + writer lock',
    busyTimeoutMs,
    poolSize,
    collation: String(rows[0]?.collation ?? '?'),
  };
}

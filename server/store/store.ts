import fs from 'node:fs';
import path from 'node:path';
import { Kysely, Migrator } from 'kysely';
import { FleetError } from '../../common/errors.js';
import { StoreContext } from './context.js';
import { deriveKeys, loadOrCreateSecretKey, SECRET_KEY_FILE } from './crypto.js';
import { migrationProvider } from './migrations.js';
import { AgentRepository } from './repos/agents.js';
import { BmcRepository } from './repos/bmc.js';
import { CredentialRepository } from './repos/credentials.js';
import { DiscoveredRepository } from './repos/discovered.js';
import { DiscoveredBmcRepository } from './repos/discovered-bmcs.js';
import { EventRepository } from './repos/events.js';
import { InventoryRepository } from './repos/inventory.js';
import { NodeFlagRepository } from './repos/flags.js';
import { LockRepository } from './repos/locks.js';
import { MetricsRepository } from './repos/metrics.js';
import { NodeRepository } from './repos/nodes.js';
import { ProfileRepository } from './repos/profiles.js';
import { SecretRepository } from './repos/secrets.js';
import { SettingsRepository } from './repos/settings.js';
import { TokenRepository } from './repos/tokens.js';
import { UserRepository } from './repos/users.js';
import type { DB } from './schema.js';
import { lockDataDir } from './lock.js';
import { DEFAULT_BUSY_TIMEOUT_MS, FleetSqliteDialect, mapStorageError, openSqlite, sqliteInfo, storageFailure, type SqliteEngineInfo } from './sqlite.js';
import { connectFailure, DEFAULT_POOL_SIZE, FleetPostgresDialect, mapPostgresError, openPostgresPool, postgresInfo, redactStoreUrl, type PostgresEngineInfo, type PostgresLocation } from './postgres.js';
import type { Engine } from './context.js';

/** The engine settings in force (status pages, tests). */
export type EngineInfo = SqliteEngineInfo | PostgresEngineInfo;

/** A SQLite file, a SQLite database in memory, or a PostgreSQL database (docs/decisions/0019). */
export type StoreLocation = { file: string } | { memory: true } | PostgresLocation;

export interface StoreOptions {
  /** 32 bytes (loadOrCreateSecretKey): seals BMC secrets. */
  secretKey: Buffer;
  /** Clock for every timestamp the store writes (tests pin it). Default: the system clock. */
  clock?: () => Date;
  /** How long a write waits for another writer's lock; also SQLite's busy_timeout (PostgreSQL: lock_timeout). Default 5000. */
  busyTimeoutMs?: number;
  /** PostgreSQL: connections in the pool. Default 8. */
  poolSize?: number;
  /** The data directory the store belongs to (openDataDir); default the SQLite file's directory. */
  dataDir?: string;
}

export interface Store {
  readonly nodes: NodeRepository;
  readonly profiles: ProfileRepository;
  readonly credentials: CredentialRepository;
  readonly events: EventRepository;
  readonly settings: SettingsRepository;
  readonly bmc: BmcRepository;
  readonly discovered: DiscoveredRepository;
  readonly tokens: TokenRepository;
  readonly locks: LockRepository;
  /** Enrolled agents and their node certificates (migration 002). */
  readonly agents: AgentRepository;
  /** Inventory reports of agents, history kept (migration 002). */
  readonly inventory: InventoryRepository;
  /** Node flags such as bmc-mismatch, each with its reason (migration 006). */
  readonly flags: NodeFlagRepository;
  /** Secrets fleet generates for the cluster, sealed (migration 007): the munge key. */
  readonly secrets: SecretRepository;
  /** BMCs found by scanning a subnet (migration 009, fleet discover bmc). */
  readonly discoveredBmcs: DiscoveredBmcRepository;
  /** API users and their tokens, hashed (migration 011). */
  readonly users: UserRepository;
  /** The grouped counts a Prometheus scrape reads (server/metrics), read-only. */
  readonly metrics: MetricsRepository;
  /** The database file, or null for an in-memory or PostgreSQL store. */
  readonly file: string | null;
  /** The data directory beside the database (keys, the repository key): openDataDir's, else the SQLite file's; null in memory. */
  readonly dataDir: string | null;
  /** The engine: 'sqlite' or 'postgres'. */
  readonly engine: Engine;
  /**
   * Runs fn in one transaction: every repository call made inside it (through
   * `tx` or this store, in fn's async context) commits or rolls back together.
   * Nested calls join the outer transaction.
   */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;
  /** Names of the migrations applied to this database, in order. */
  appliedMigrations(): Promise<string[]>;
  /** Engine settings in force (journal mode, busy timeout, ...). */
  engineInfo(): Promise<EngineInfo>;
  close(): Promise<void>;
}

class FleetStore implements Store {
  readonly nodes: NodeRepository;
  readonly profiles: ProfileRepository;
  readonly credentials: CredentialRepository;
  readonly events: EventRepository;
  readonly settings: SettingsRepository;
  readonly bmc: BmcRepository;
  readonly discovered: DiscoveredRepository;
  readonly tokens: TokenRepository;
  readonly locks: LockRepository;
  readonly agents: AgentRepository;
  readonly inventory: InventoryRepository;
  readonly flags: NodeFlagRepository;
  readonly secrets: SecretRepository;
  readonly discoveredBmcs: DiscoveredBmcRepository;
  readonly users: UserRepository;
  readonly metrics: MetricsRepository;
  private closed = false;
  private readonly closers: (() => void)[] = [];

  constructor(
    private readonly ctx: StoreContext,
    readonly file: string | null,
    readonly dataDir: string | null,
    private readonly info: () => Promise<EngineInfo>,
  ) {
    this.nodes = new NodeRepository(ctx);
    this.profiles = new ProfileRepository(ctx);
    this.credentials = new CredentialRepository(ctx);
    this.events = new EventRepository(ctx);
    this.settings = new SettingsRepository(ctx);
    this.bmc = new BmcRepository(ctx);
    this.discovered = new DiscoveredRepository(ctx);
    this.tokens = new TokenRepository(ctx);
    this.locks = new LockRepository(ctx);
    this.agents = new AgentRepository(ctx);
    this.inventory = new InventoryRepository(ctx);
    this.flags = new NodeFlagRepository(ctx);
    this.secrets = new SecretRepository(ctx);
    this.discoveredBmcs = new DiscoveredBmcRepository(ctx);
    this.users = new UserRepository(ctx);
    this.metrics = new MetricsRepository(ctx);
  }

  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    return this.ctx.write(() => fn(this));
  }

  async appliedMigrations(): Promise<string[]> {
    const migrations = await new Migrator({ db: this.ctx.db, provider: migrationProvider }).getMigrations();
    return migrations.filter((m) => m.executedAt !== undefined).map((m) => m.name);
  }

  get engine(): Engine {
    return this.ctx.engine;
  }

  engineInfo(): Promise<EngineInfo> {
    return this.info();
  }

  /** Runs fn after the database is closed (the data dir lock is released last). */
  onClose(fn: () => void): void {
    this.closers.push(fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.ctx.db.destroy();
    } finally {
      for (const fn of this.closers) fn();
    }
  }
}

/**
 * Opens (creating if needed) a store and brings its schema to the latest
 * migration. SQLite runs with WAL, busy_timeout, foreign keys and
 * synchronous=NORMAL.
 */
export async function openStore(location: StoreLocation, opts: StoreOptions): Promise<Store> {
  const keys = deriveKeys(opts.secretKey);
  const busyTimeoutMs = opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  let db: Kysely<DB>;
  let engine: Engine;
  let info: (q: Kysely<DB>) => Promise<EngineInfo>;
  if ('url' in location) {
    const where = redactStoreUrl(location.url);
    const poolSize = opts.poolSize ?? DEFAULT_POOL_SIZE;
    const pool = openPostgresPool(location, { poolSize, connectTimeoutMs: busyTimeoutMs });
    // Connect once before anything else: a wrong password or host is said as such, not as a failed migration.
    try {
      (await pool.connect()).release();
    } catch (e) {
      await pool.end().catch(() => {});
      throw connectFailure(e, where);
    }
    db = new Kysely<DB>({ dialect: new FleetPostgresDialect(pool, busyTimeoutMs) });
    engine = 'postgres';
    info = (q) => postgresInfo(q, where, busyTimeoutMs, poolSize);
  } else {
    const raw = openSqlite(location, { busyTimeoutMs });
    db = new Kysely<DB>({ dialect: new FleetSqliteDialect(raw, busyTimeoutMs) });
    engine = 'sqlite';
    info = (q) => sqliteInfo(q);
  }
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const mapped = mapPostgresError(error);
    if (mapped instanceof FleetError && mapped.code !== 'internal') throw mapped;
    const message = error instanceof Error ? error.message : String(error);
    const storage = storageFailure(error, `database migration ${failed ?? ''}`.trim());
    if (storage) throw storage;
    throw new FleetError('internal', `database migration ${failed ?? ''} failed: ${message}`.replace('  ', ' '), undefined, { cause: error });
  }
  const ctx = new StoreContext(db, keys, opts.clock ?? (() => new Date()), engine);
  const file = 'file' in location ? location.file : null;
  return new FleetStore(ctx, file, opts.dataDir ?? (file !== null ? path.dirname(file) : null), () => info(ctx.q));
}

export const DB_FILE = 'fleet.db';

export interface DataDir {
  store: Store;
  dataDir: string;
  /** DATA/fleet.db; null when the store is a PostgreSQL database. */
  dbFile: string | null;
  /** DATA/secret.key */
  keyFile: string;
}

/**
 * The server's data directory: creates it (0700) if missing, loads or
 * creates DATA/secret.key (0600) and opens DATA/fleet.db, or the
 * PostgreSQL database `postgres` names (store.url; the key, the CA and the
 * rest stay in the data directory).
 */
export async function openDataDir(
  dataDir: string,
  opts: Omit<StoreOptions, 'secretKey' | 'dataDir'> & { lockedBy?: string; postgres?: PostgresLocation } = {},
): Promise<DataDir> {
  const dir = path.resolve(dataDir);
  try {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw mapStorageError(e, `cannot create data directory ${dir}`);
  }
  // Before anything in the directory is read or written: a second server is refused here (store.locked).
  const { lockedBy, postgres, ...storeOpts } = opts;
  const lock = lockDataDir(dir, lockedBy);
  try {
    let secretKey: Buffer;
    try {
      secretKey = await loadOrCreateSecretKey(dir);
    } catch (e) {
      const cause = e instanceof FleetError ? e.cause : e;
      throw storageFailure(cause, `cannot create ${path.join(dir, SECRET_KEY_FILE)}`) ?? e;
    }
    const dbFile = postgres ? null : path.join(dir, DB_FILE);
    const store = await openStore(postgres ?? { file: dbFile! }, { ...storeOpts, secretKey, dataDir: dir });
    (store as FleetStore).onClose(() => lock.release());
    return { store, dataDir: dir, dbFile, keyFile: path.join(dir, SECRET_KEY_FILE) };
  } catch (e) {
    lock.release();
    throw e;
  }
}

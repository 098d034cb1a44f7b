/**
 * What every repository shares: the Kysely handle, the derived keys, the
 * clock, and the transaction plumbing.
 *
 * Transactions: `write(fn)` runs fn in a transaction, or inside the one of
 * the same store already running in this async context (AsyncLocalStorage), so repository
 * calls made inside `store.transaction(...)` join it instead of waiting for
 * the connection the transaction holds (which would deadlock).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Insertable, Kysely } from 'kysely';
import type { DB, EventsTable } from './schema.js';
import type { SecretKeys } from './crypto.js';
import type { NewEvent } from './types.js';
import { mapDbError } from './sqlite.js';
import { mapPostgresError } from './postgres.js';
import { prepared } from './prepared.js';

/** The database engines a store runs on (docs/decisions/0019). */
export type Engine = 'sqlite' | 'postgres';

interface TxState {
  /** The store whose transaction this is. */
  ctx: StoreContext;
  trx: Kysely<DB>;
  /** false once the transaction ended: stray async work must not reuse it. */
  open: boolean;
  /** The rows appended in it, handed to the observers after it commits. */
  appended: CommittedEvent[];
  /** The transaction (of another store, or one that ended) this one runs inside. */
  outer: TxState | undefined;
}

/**
 * The transactions running in this async context, innermost first. One
 * AsyncLocalStorage for every store of the process: on Node 20 each one in
 * use costs every promise created anywhere a propagation (issue 18).
 */
const running = new AsyncLocalStorage<TxState>();

/** The innermost transaction of ctx in this async context (ended ones included). */
function stateOf(ctx: StoreContext): TxState | undefined {
  for (let s = running.getStore(); s; s = s.outer) if (s.ctx === ctx) return s;
  return undefined;
}

export const MAX_IN_LIST = 500;

/** An event row as committed: its id and the values inserted. */
export type CommittedEvent = EventValues & { id: number };

/** Told the event rows of each transaction once it committed (never those of one rolled back). */
export type EventObserver = (events: readonly CommittedEvent[]) => void;

/**
 * Notes a row appended with `trx`, for the observers of its transaction.
 * Found by the executor, so `appendEvent`, which is given only that, finds
 * the list too.
 */
function noteAppended(trx: Kysely<DB>, row: CommittedEvent): void {
  for (let s = running.getStore(); s; s = s.outer) {
    if (s.trx === trx) {
      s.appended.push(row);
      return;
    }
  }
}

/** An event row as inserted (without its id). */
export type EventValues = Omit<Insertable<EventsTable>, 'id'> & { node: string | null; from_state: string | null; to_state: string | null; cause: string | null; details: string | null };

/** The row appendEvent inserts for e at `time`. Pure. */
export function eventValues(time: string, e: NewEvent): EventValues {
  return {
    time,
    node: e.node ?? null,
    kind: e.kind,
    from_state: e.fromState ?? null,
    to_state: e.toState ?? null,
    actor: e.actor,
    cause: e.cause ?? null,
    details: e.details === undefined ? null : JSON.stringify(e.details),
  };
}

export class StoreContext {
  private readonly insertEvent = prepared<EventValues, { id: number }>((db, p) =>
    db
      .insertInto('events')
      .values({
        time: p('time'),
        node: p('node'),
        kind: p('kind'),
        from_state: p('from_state'),
        to_state: p('to_state'),
        actor: p('actor'),
        cause: p('cause'),
        details: p('details'),
      })
      .returning('id'),
  );

  private readonly observers = new Set<EventObserver>();

  constructor(
    readonly db: Kysely<DB>,
    readonly keys: SecretKeys,
    private readonly clock: () => Date,
    /** The engine under db: the few statements that differ (JSON paths, sizes) ask it. */
    readonly engine: Engine = 'sqlite',
  ) {}

  /** Executor for reads: the running transaction when inside one, else the root handle. */
  get q(): Kysely<DB> {
    const s = stateOf(this);
    return s?.open ? s.trx : this.db;
  }

  get inTransaction(): boolean {
    return stateOf(this)?.open === true;
  }

  now(): Date {
    return this.clock();
  }

  nowIso(): string {
    return this.clock().toISOString();
  }

  /**
   * Appends one event row with the given executor (always the caller's
   * transaction), as appendEvent does, through a query compiled once: for
   * the hot paths (state changes, the conductor's own events).
   */
  async appendEventRow(trx: Kysely<DB>, values: EventValues): Promise<number> {
    const row = await this.insertEvent.first(trx, values);
    const id = Number(row!.id);
    noteAppended(trx, { id, ...values });
    return id;
  }

  /**
   * Calls fn with the event rows of each transaction after it commits, in
   * append order (metrics count them: server/metrics). fn runs synchronously
   * on the writer's path, so it must be cheap; what it throws is dropped.
   * Returns the function that stops the calls.
   */
  observeEvents(fn: EventObserver): () => void {
    this.observers.add(fn);
    return () => this.observers.delete(fn);
  }

  private notify(rows: readonly CommittedEvent[]): void {
    if (rows.length === 0) return;
    for (const fn of this.observers) {
      try {
        fn(rows);
      } catch {
        // An observer never fails a write that committed.
      }
    }
  }

  async write<T>(fn: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
    const current = stateOf(this);
    if (current?.open) return fn(current.trx);
    const appended: CommittedEvent[] = [];
    let result: T;
    // PostgreSQL: this store's writers queue here, in arrival order, before taking a connection; only
    // one of them waits for the database's writer lock, and the pool's other connections stay free
    // for readers (SQLite's driver has one connection, handed over in arrival order, for the same end).
    const leave = this.engine === 'postgres' ? await this.enterWriters() : undefined;
    try {
      result = await this.db.transaction().execute(async (trx) => {
        const state: TxState = { ctx: this, trx, open: true, appended, outer: running.getStore() };
        try {
          return await running.run(state, () => fn(trx));
        } finally {
          state.open = false;
        }
      });
    } catch (e) {
      throw mapDbError(mapPostgresError(e));
    } finally {
      leave?.();
    }
    this.notify(appended);
    return result;
  }

  /** The end of the queue of this store's writers (PostgreSQL). */
  private writersTail: Promise<void> = Promise.resolve();

  /** Waits for this store's writers ahead; returns the function that lets the next one in. */
  private async enterWriters(): Promise<() => void> {
    const ahead = this.writersTail;
    let leave!: () => void;
    this.writersTail = new Promise<void>((resolve) => (leave = resolve));
    await ahead;
    return leave;
  }
}

/** Appends one event row with the given executor (always the caller's transaction). */
export async function appendEvent(trx: Kysely<DB>, time: string, e: NewEvent): Promise<number> {
  const values = eventValues(time, e);
  const row = await trx.insertInto('events').values(values).returning('id').executeTakeFirstOrThrow();
  const id = Number(row.id);
  noteAppended(trx, { id, ...values });
  return id;
}

export function chunks<T>(items: readonly T[], size = MAX_IN_LIST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const collator = new Intl.Collator('en', { numeric: true });
/** Natural order: node2 before node10. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

export function bool(n: number): boolean {
  return n !== 0;
}

export function int(b: boolean): number {
  return b ? 1 : 0;
}

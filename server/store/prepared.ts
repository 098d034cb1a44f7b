/**
 * Queries built and compiled once (issue 18): Kysely builds an immutable
 * operation tree and compiles it to SQL on every call, which cost more CPU
 * than SQLite spent running the conductor's queries. A PreparedQuery is
 * built once, with named slots where the values go, and compiled by the
 * store's own dialect on first use; each call then only fills the
 * parameters. Engine-neutral: the SQL comes from whichever dialect the
 * store runs (a PostgreSQL store compiles its own), and the engine's driver
 * reuses its prepared statement for the same text.
 *
 * Only for queries of a fixed shape: a value that changes the SQL (an `in`
 * list of varying length, a column present or not, `is null` versus `=`)
 * cannot be a slot; such queries stay ordinary Kysely calls.
 */
import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import { FleetError } from '../../common/errors.js';
import type { DB } from './schema.js';

const SLOT = Symbol('slot');

interface Slot {
  [SLOT]: string;
}

function isSlot(v: unknown): v is Slot {
  return typeof v === 'object' && v !== null && SLOT in v;
}

/** Where a parameter of the compiled query comes from: a slot of the call, or a value fixed when built. */
type Source = { slot: string } | { value: unknown };

export type SlotOf<A> = <K extends keyof A & string>(name: K) => A[K];

export class PreparedQuery<A extends Record<string, unknown>, R> {
  private compiled: { sql: string; query: CompiledQuery['query']; queryId: CompiledQuery['queryId']; sources: Source[] } | undefined;

  /** `build` gets the database and `slot(name)`, a stand-in for the call's value of `name`. */
  constructor(private readonly build: (db: Kysely<DB>, slot: SlotOf<A>) => Compilable<R>) {}

  private compile(db: Kysely<DB>): NonNullable<typeof this.compiled> {
    if (this.compiled) return this.compiled;
    const slot = ((name: string) => ({ [SLOT]: name })) as SlotOf<A>;
    const c = this.build(db, slot).compile();
    const sources = c.parameters.map((p): Source => (isSlot(p) ? { slot: p[SLOT] } : { value: p }));
    this.compiled = { sql: c.sql, query: c.query, queryId: c.queryId, sources };
    return this.compiled;
  }

  private query(db: Kysely<DB>, args: A): CompiledQuery<R> {
    const c = this.compile(db);
    const parameters = c.sources.map((s) => {
      if (!('slot' in s)) return s.value;
      const v = args[s.slot];
      if (v === undefined) throw new FleetError('internal', `prepared query: no value for ${s.slot}`);
      return v;
    });
    return { sql: c.sql, query: c.query, queryId: c.queryId, parameters };
  }

  /** Runs it with `args` on `db` (the store's handle or the running transaction). */
  execute(db: Kysely<DB>, args: A): Promise<QueryResult<R>> {
    return db.executeQuery(this.query(db, args));
  }

  /** The rows (a select, or a write with `returning`). */
  async rows(db: Kysely<DB>, args: A): Promise<R[]> {
    return (await this.execute(db, args)).rows;
  }

  /** The first row, if any. */
  async first(db: Kysely<DB>, args: A): Promise<R | undefined> {
    return (await this.execute(db, args)).rows[0];
  }

  /** How many rows an update or delete touched. */
  async affected(db: Kysely<DB>, args: A): Promise<number> {
    return Number((await this.execute(db, args)).numAffectedRows ?? 0n);
  }
}

/** A query built once and compiled on first use; see PreparedQuery. */
export function prepared<A extends Record<string, unknown>, R>(build: (db: Kysely<DB>, slot: SlotOf<A>) => Compilable<R>): PreparedQuery<A, R> {
  return new PreparedQuery(build);
}

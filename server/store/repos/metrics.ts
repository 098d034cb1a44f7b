/**
 * The reads a Prometheus scrape makes (server/metrics): cheap grouped counts
 * over indexed or small columns, never a scan of the event log. Read-only.
 */
import { sql } from 'kysely';
import type { StoreContext } from '../context.js';
import type { NodeFlagsTable } from './flags.js';

export interface StateProfileCount {
  state: string;
  profile: string;
  count: number;
}

export interface StateCount {
  state: string;
  count: number;
}

export interface NodeStateSince {
  name: string;
  state: string;
  since: string;
}

export class MetricsRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Nodes by state and profile (one grouped count). */
  async nodesByStateProfile(): Promise<StateProfileCount[]> {
    const rows = await this.ctx.q
      .selectFrom('nodes')
      .select(['state', 'profile', (eb) => eb.fn.countAll<number>().as('count')])
      .groupBy(['state', 'profile'])
      .execute();
    return rows.map((r) => ({ state: r.state, profile: r.profile, count: Number(r.count) }));
  }

  /** Nodes whose state deadline (set by the conductor) is before `nowIso`, by state: the timer has not failed them yet. */
  async overdueByState(nowIso: string): Promise<StateCount[]> {
    const rows = await this.ctx.q
      .selectFrom('nodes')
      .select(['state', (eb) => eb.fn.countAll<number>().as('count')])
      .where('state_deadline', 'is not', null)
      .where('state_deadline', '<', nowIso)
      .groupBy('state')
      .execute();
    return rows.map((r) => ({ state: r.state, count: Number(r.count) }));
  }

  /** Every node's state and since when (read once at start, to time the state each node is in then). */
  async statesSince(): Promise<NodeStateSince[]> {
    const rows = await this.ctx.q.selectFrom('nodes').select(['name', 'state', 'state_since']).execute();
    return rows.map((r) => ({ name: r.name, state: r.state, since: r.state_since }));
  }

  /** Node flags (bmc-mismatch, ...) by flag. */
  async flagsByName(): Promise<{ flag: string; count: number }[]> {
    const rows = await this.ctx.q
      .withTables<{ node_flags: NodeFlagsTable }>()
      .selectFrom('node_flags')
      .select(['flag', (eb) => eb.fn.countAll<number>().as('count')])
      .groupBy('flag')
      .execute();
    return rows.map((r) => ({ flag: r.flag, count: Number(r.count) }));
  }

  /**
   * Rows of the event log. The log is append-only (no row is ever deleted),
   * so its highest id is its row count, read from the primary key's end
   * instead of counting millions of rows.
   */
  async eventRows(): Promise<number> {
    const row = await this.ctx.q.selectFrom('events').select((eb) => eb.fn.max('id').as('max')).executeTakeFirst();
    return Number(row?.max ?? 0);
  }

  /** Size of the database file in bytes (page count × page size; the WAL not included); on PostgreSQL, pg_database_size. */
  async databaseBytes(): Promise<number> {
    if (this.ctx.engine === 'postgres') {
      const r = await sql<{ bytes: string }>`select pg_database_size(current_database()) as bytes`.execute(this.ctx.q);
      return Number(r.rows[0]?.bytes ?? 0);
    }
    const pages = await sql<{ page_count: number }>`pragma page_count`.execute(this.ctx.q);
    const size = await sql<{ page_size: number }>`pragma page_size`.execute(this.ctx.q);
    return Number(pages.rows[0]?.page_count ?? 0) * Number(size.rows[0]?.page_size ?? 0);
  }
}

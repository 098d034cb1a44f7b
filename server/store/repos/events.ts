import type { Kysely, Selectable } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import { eventValues, type EventObserver, type StoreContext } from '../context.js';
import { parseJson } from '../json.js';
import { prepared, type PreparedQuery } from '../prepared.js';
import type { DB, EventsTable } from '../schema.js';
import type { EventPage, EventQuery, EventRecord, NewEvent } from '../types.js';

export const DEFAULT_EVENT_LIMIT = 100;
export const MAX_EVENT_LIMIT = 1000;
const MAX_NODES_FILTER = 10_000;
/** Queries of one node or none with at most this many kinds are compiled once per shape (the conductor's reads). */
const MAX_PREPARED_KINDS = 4;

/** A query of `newest`: the list filters, and the state entered (state.changed rows). */
export type NewestEventQuery = Omit<EventQuery, 'limit' | 'order'> & { toStates?: string[] };

interface ListArgs extends Record<string, unknown> {
  node?: string;
  since?: string;
  afterId?: number;
  beforeId?: number;
  limit: number;
}

/** Which clauses a list query has: queries of one shape share their compiled SQL. */
interface ListShape {
  node: boolean;
  kinds: number;
  toStates: number;
  since: boolean;
  afterId: boolean;
  beforeId: boolean;
  order: 'asc' | 'desc';
}

export function toEventRecord(r: Selectable<EventsTable>): EventRecord {
  return {
    id: Number(r.id),
    time: r.time,
    node: r.node,
    kind: r.kind,
    fromState: r.from_state,
    toState: r.to_state,
    actor: r.actor,
    cause: r.cause,
    details: parseJson(r.details),
  };
}

/**
 * The append-only event log. Rows are never updated or deleted here; the
 * repositories append theirs in the transaction of the change they record.
 */
export class EventRepository {
  constructor(private readonly ctx: StoreContext) {}

  private readonly shapes = new Map<string, PreparedQuery<ListArgs, Selectable<EventsTable>>>();

  /** The list query of this shape, compiled once (prepared.ts); kinds are slots kind0, kind1, ... */
  private listQuery(shape: ListShape): PreparedQuery<ListArgs, Selectable<EventsTable>> {
    const key = `${shape.node}|${shape.kinds}|${shape.toStates}|${shape.since}|${shape.afterId}|${shape.beforeId}|${shape.order}`;
    let q = this.shapes.get(key);
    if (!q) {
      q = prepared<ListArgs, Selectable<EventsTable>>((db: Kysely<DB>, p) => {
        let s = db.selectFrom('events').selectAll();
        if (shape.node) s = s.where('node', '=', p('node') as string);
        if (shape.kinds > 0) s = s.where('kind', 'in', Array.from({ length: shape.kinds }, (_, i) => p(`kind${i}`) as string));
        if (shape.toStates > 0) s = s.where('to_state', 'in', Array.from({ length: shape.toStates }, (_, i) => p(`to${i}`) as string));
        if (shape.since) s = s.where('time', '>=', p('since') as string);
        if (shape.afterId) s = s.where('id', '>', p('afterId') as number);
        if (shape.beforeId) s = s.where('id', '<', p('beforeId') as number);
        return s.orderBy('id', shape.order).limit(p('limit'));
      });
      this.shapes.set(key, q);
    }
    return q;
  }

  /**
   * Appends an event that is not a side effect of another repository write
   * (e.g. the audit entry of a BMC power action). Joins the running
   * transaction when there is one.
   */
  async append(e: NewEvent): Promise<EventRecord> {
    if (!e.kind) throw new FleetError('request.invalid', 'event kind is empty');
    if (!e.actor) throw new FleetError('request.invalid', 'event actor is empty');
    return this.ctx.write(async (trx) => {
      const values = eventValues(this.ctx.nowIso(), e);
      const id = await this.ctx.appendEventRow(trx, values);
      // The record of the row as written (no read-back: rows are never changed).
      return toEventRecord({ id, ...values });
    });
  }

  /**
   * Calls fn with the rows each transaction appended, once it committed
   * (rows of a rolled-back transaction never reach it), whichever repository
   * wrote them. fn runs on the writer's path: keep it cheap; what it throws
   * is dropped. Returns the function that stops the calls.
   */
  observe(fn: EventObserver): () => void {
    return this.ctx.observeEvents(fn);
  }

  /**
   * One page of events, paginated by id (a cursor, stable under concurrent
   * appends, unlike offsets). order 'asc' (default) returns oldest first and
   * continues with afterId = nextCursor; 'desc' returns newest first and
   * continues with beforeId = nextCursor.
   */
  async list(query: EventQuery = {}): Promise<EventPage> {
    const limit = query.limit ?? DEFAULT_EVENT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENT_LIMIT) {
      throw new FleetError('request.invalid', `limit must be an integer 1-${MAX_EVENT_LIMIT}`);
    }
    // One row more than asked: whether there is a next page.
    const rows = await this.rows(query, query.order ?? 'asc', limit + 1);
    const more = rows.length > limit;
    const events = rows.slice(0, limit).map(toEventRecord);
    return { events, nextCursor: more ? events[events.length - 1]!.id : null };
  }

  /**
   * The newest `count` events that match (newest first; `toStates`: only
   * state changes into one of these). Unlike a 'desc' page of list, it
   * reads no row beyond them: "the last time X happened" stops at that row
   * instead of searching for one more further back in the node's history.
   */
  async newest(query: NewestEventQuery, count = 1): Promise<EventRecord[]> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_EVENT_LIMIT) {
      throw new FleetError('request.invalid', `count must be an integer 1-${MAX_EVENT_LIMIT}`);
    }
    if (query.toStates?.length === 0) return [];
    return (await this.rows(query, 'desc', count)).map(toEventRecord);
  }

  /** The rows of a list or newest query: at most `limit`. */
  private async rows(query: NewestEventQuery, order: 'asc' | 'desc', limit: number): Promise<Selectable<EventsTable>[]> {
    let nodes: string[] | undefined;
    if (query.node !== undefined || query.nodes !== undefined) {
      nodes = [...new Set([...(query.node !== undefined ? [query.node] : []), ...(query.nodes ?? [])])];
      if (nodes.length === 0) return [];
      if (nodes.length > MAX_NODES_FILTER) throw new FleetError('request.invalid', `at most ${MAX_NODES_FILTER} nodes per event query`);
    }
    if (query.kinds?.length === 0) return [];
    const toStates = query.toStates;
    if ((nodes === undefined || nodes.length === 1) && (query.kinds?.length ?? 0) <= MAX_PREPARED_KINDS && (toStates?.length ?? 0) <= MAX_PREPARED_KINDS) {
      const shape: ListShape = {
        node: nodes !== undefined,
        kinds: query.kinds?.length ?? 0,
        toStates: toStates?.length ?? 0,
        since: query.since !== undefined,
        afterId: query.afterId !== undefined,
        beforeId: query.beforeId !== undefined,
        order,
      };
      const args: ListArgs = { limit };
      if (nodes) args.node = nodes[0]!;
      query.kinds?.forEach((k, i) => (args[`kind${i}`] = k));
      toStates?.forEach((k, i) => (args[`to${i}`] = k));
      if (query.since !== undefined) args.since = query.since;
      if (query.afterId !== undefined) args.afterId = query.afterId;
      if (query.beforeId !== undefined) args.beforeId = query.beforeId;
      return this.listQuery(shape).rows(this.ctx.q, args);
    }
    let s = this.ctx.q.selectFrom('events').selectAll();
    if (nodes) s = s.where('node', 'in', nodes);
    if (query.kinds) s = s.where('kind', 'in', query.kinds);
    if (toStates) s = s.where('to_state', 'in', toStates);
    if (query.since !== undefined) s = s.where('time', '>=', query.since);
    if (query.afterId !== undefined) s = s.where('id', '>', query.afterId);
    if (query.beforeId !== undefined) s = s.where('id', '<', query.beforeId);
    return s.orderBy('id', order).limit(limit).execute();
  }

  /** The id of the newest event (0 when none): a starting cursor for tailing. */
  async lastId(): Promise<number> {
    const row = await this.ctx.q.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
    return Number(row?.id ?? 0);
  }
}

import type { Selectable } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import { eventValues, type StoreContext } from '../context.js';
import { parseJson } from '../json.js';
import type { EventsTable } from '../schema.js';
import type { EventPage, EventQuery, EventRecord, NewEvent } from '../types.js';

export const DEFAULT_EVENT_LIMIT = 100;
export const MAX_EVENT_LIMIT = 1000;
const MAX_NODES_FILTER = 10_000;

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
    const order = query.order ?? 'asc';
    let nodes: string[] | undefined;
    if (query.node !== undefined || query.nodes !== undefined) {
      nodes = [...new Set([...(query.node !== undefined ? [query.node] : []), ...(query.nodes ?? [])])];
      if (nodes.length === 0) return { events: [], nextCursor: null };
      if (nodes.length > MAX_NODES_FILTER) throw new FleetError('request.invalid', `at most ${MAX_NODES_FILTER} nodes per event query`);
    }
    let s = this.ctx.q.selectFrom('events').selectAll();
    if (nodes) s = s.where('node', 'in', nodes);
    if (query.kinds) {
      if (query.kinds.length === 0) return { events: [], nextCursor: null };
      s = s.where('kind', 'in', query.kinds);
    }
    if (query.since !== undefined) s = s.where('time', '>=', query.since);
    if (query.afterId !== undefined) s = s.where('id', '>', query.afterId);
    if (query.beforeId !== undefined) s = s.where('id', '<', query.beforeId);
    const rows = await s.orderBy('id', order).limit(limit + 1).execute();
    const more = rows.length > limit;
    const events = rows.slice(0, limit).map(toEventRecord);
    return { events, nextCursor: more ? events[events.length - 1]!.id : null };
  }

  /** The id of the newest event (0 when none): a starting cursor for tailing. */
  async lastId(): Promise<number> {
    const row = await this.ctx.q.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
    return Number(row?.id ?? 0);
  }
}

import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import { appendEvent, type StoreContext } from '../context.js';
import { canonicalJson, parseJson } from '../json.js';
import type { DB } from '../schema.js';
import type { WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

/** Table of migration 002. */
export interface InventoryReportsTable {
  id: import('kysely').Generated<number>;
  node: string;
  reported_at: string;
  collected_at: string | null;
  digest: string;
  inventory: string;
}

export type InventoryDB = DB & { inventory_reports: InventoryReportsTable };

export interface InventoryReport {
  id: number;
  node: string;
  reportedAt: string;
  /** When the agent collected it (its clock), if it said. */
  collectedAt: string | null;
  /** SHA-256 (hex) of the canonical JSON. */
  digest: string;
  /** The inventory as reported (proto Inventory in its JSON form). */
  inventory: unknown;
}

export const DEFAULT_INVENTORY_HISTORY = 20;
export const MAX_INVENTORY_HISTORY = 500;

/**
 * Inventory reports of agents, every one kept with its time, newest last.
 * Each report writes agent.inventory with its digest and `changed` (whether
 * the report as sent differs from the previous one: its collection time
 * alone makes it differ), plus whatever `assess` says of the new report
 * against the previous one (the caller's hardware comparison), so hardware
 * changes show in the event log.
 */
export class InventoryRepository {
  constructor(private readonly ctx: StoreContext) {}

  private get q(): Kysely<InventoryDB> {
    return this.ctx.q.withTables<{ inventory_reports: InventoryReportsTable }>();
  }

  async record(
    node: string,
    inventory: unknown,
    opts: WriteContext & { collectedAt?: string | null; assess?: (previous: unknown | null) => Record<string, unknown> },
  ): Promise<InventoryReport> {
    if (inventory === null || typeof inventory !== 'object') throw new FleetError('request.invalid', 'an inventory must be an object');
    const json = canonicalJson(inventory);
    const digest = crypto.createHash('sha256').update(json).digest('hex');
    return this.ctx.write(async (trx) => {
      const t = trx.withTables<{ inventory_reports: InventoryReportsTable }>();
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const prev = await t.selectFrom('inventory_reports').select(['digest', 'inventory']).where('node', '=', node).orderBy('id', 'desc').limit(1).executeTakeFirst();
      const now = this.ctx.nowIso();
      const row = await t
        .insertInto('inventory_reports')
        .values({ node, reported_at: now, collected_at: opts.collectedAt ?? null, digest, inventory: json })
        .returning('id')
        .executeTakeFirstOrThrow();
      await appendEvent(trx, now, {
        node,
        kind: EVENT.agentInventory,
        actor: opts.actor,
        cause: opts.cause ?? null,
        details: {
          id: Number(row.id),
          digest,
          changed: prev === undefined ? null : prev.digest !== digest,
          ...(opts.assess ? opts.assess(prev === undefined ? null : parseJson(prev.inventory)) : {}),
        },
      });
      return { id: Number(row.id), node, reportedAt: now, collectedAt: opts.collectedAt ?? null, digest, inventory: JSON.parse(json) as unknown };
    });
  }

  /** The newest report of a node, or null. */
  async latest(node: string): Promise<InventoryReport | null> {
    const row = await this.q.selectFrom('inventory_reports').selectAll().where('node', '=', node).orderBy('id', 'desc').limit(1).executeTakeFirst();
    return row ? toReport(row) : null;
  }

  /** The newest `limit` reports of a node (default 20, at most 500), newest first. */
  async history(node: string, limit = DEFAULT_INVENTORY_HISTORY): Promise<InventoryReport[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INVENTORY_HISTORY) {
      throw new FleetError('request.invalid', `limit must be an integer 1-${MAX_INVENTORY_HISTORY}`);
    }
    const rows = await this.q.selectFrom('inventory_reports').selectAll().where('node', '=', node).orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toReport);
  }

  /** How many reports a node has (all nodes when omitted). */
  async count(node?: string): Promise<number> {
    let s = this.q.selectFrom('inventory_reports').select((eb) => eb.fn.countAll<number>().as('n'));
    if (node !== undefined) s = s.where('node', '=', node);
    const row = await s.executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}

function toReport(r: { id: number; node: string; reported_at: string; collected_at: string | null; digest: string; inventory: string }): InventoryReport {
  return {
    id: Number(r.id),
    node: r.node,
    reportedAt: r.reported_at,
    collectedAt: r.collected_at,
    digest: r.digest,
    inventory: parseJson(r.inventory),
  };
}

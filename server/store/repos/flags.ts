/**
 * Node flags (migration 006): conditions someone must look at, each with its
 * reason, kept until a later observation clears them. The first is
 * `bmc-mismatch`, set and cleared by the reconciliation of a node's agent
 * inventory with its BMC (server/inventory/reconcile.ts): its event,
 * `inventory.reconciled`, is written in the same transaction as the flag.
 */
import type { Kysely } from 'kysely';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { appendEvent, chunks, type StoreContext } from '../context.js';
import { parseJson } from '../json.js';
import type { DB } from '../schema.js';
import type { WriteContext } from '../types.js';

/** Table of migration 006. */
export interface NodeFlagsTable {
  node: string;
  flag: string;
  reason: string;
  /** JSON document or null. */
  details: string | null;
  since: string;
  updated_at: string;
}

type FlagsDB = DB & { node_flags: NodeFlagsTable };

export const NODE_FLAG = {
  /** The agent's machine is not the one the node's BMC describes: the BMC may power another machine. */
  bmcMismatch: 'bmc-mismatch',
} as const;
export type NodeFlagName = (typeof NODE_FLAG)[keyof typeof NODE_FLAG];

export interface NodeFlag {
  node: string;
  flag: string;
  reason: string;
  details: unknown;
  /** When the flag was raised (kept while it stays raised). */
  since: string;
  /** When it was last confirmed. */
  updatedAt: string;
}

/** What a reconciliation found, as the store records it (secret-free: identities and check results only). */
export interface ReconcileRecord {
  status: 'match' | 'mismatch' | 'unknown';
  reason: string;
  checks: unknown[];
  /** Who read the BMC (ipmi, redfish, ipmitool), when one was read. */
  provider?: string;
  /** Why the BMC could not be read, when it could not (status is then unknown). */
  error?: { code: string; message: string };
  /** 'api' (fleet inventory reconcile) or 'report' (after an agent's inventory report). */
  trigger: 'api' | 'report';
}

/** What happened to the bmc-mismatch flag: raised, reason updated, cleared, or left as it was. */
export type FlagChange = 'raised' | 'updated' | 'cleared' | 'unchanged';

export class NodeFlagRepository {
  constructor(private readonly ctx: StoreContext) {}

  private get q(): Kysely<FlagsDB> {
    return this.ctx.q.withTables<{ node_flags: NodeFlagsTable }>();
  }

  /** Flags of these nodes (every node when omitted), by node then flag. */
  async list(names?: readonly string[]): Promise<NodeFlag[]> {
    if (names?.length === 0) return [];
    const base = () => this.q.selectFrom('node_flags').selectAll().orderBy('node').orderBy('flag');
    const rows = [];
    if (names) for (const part of chunks([...new Set(names)])) rows.push(...(await base().where('node', 'in', part).execute()));
    else rows.push(...(await base().execute()));
    return rows.map(toFlag);
  }

  /** Flags by node name (nodes without a flag are absent). */
  async byNode(names?: readonly string[]): Promise<Map<string, NodeFlag[]>> {
    const out = new Map<string, NodeFlag[]>();
    for (const f of await this.list(names)) {
      const l = out.get(f.node);
      if (l) l.push(f);
      else out.set(f.node, [f]);
    }
    return out;
  }

  /**
   * Records one reconciliation of a node: a mismatch raises (or refreshes)
   * the bmc-mismatch flag with its reason, a match clears it, unknown leaves
   * it as it was; the `inventory.reconciled` event carries the result and
   * what happened to the flag, in the same transaction. A reconciliation
   * after an agent's report (trigger `report`) that changes nothing — the
   * flag unchanged and the same status as the node's last reconciliation —
   * writes no event (eventId null): one event per change, not per report.
   */
  async recordReconcile(node: string, r: ReconcileRecord, wc: WriteContext): Promise<{ flag: FlagChange; eventId: number | null }> {
    return this.ctx.write(async (trx) => {
      const t = trx.withTables<{ node_flags: NodeFlagsTable }>();
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const now = this.ctx.nowIso();
      const flag = NODE_FLAG.bmcMismatch;
      const current = await t.selectFrom('node_flags').selectAll().where('node', '=', node).where('flag', '=', flag).executeTakeFirst();
      let change: FlagChange = 'unchanged';
      if (r.status === 'mismatch') {
        const details = JSON.stringify({ checks: r.checks, ...(r.provider ? { provider: r.provider } : {}) });
        if (!current) {
          await t.insertInto('node_flags').values({ node, flag, reason: r.reason, details, since: now, updated_at: now }).execute();
          change = 'raised';
        } else {
          await t.updateTable('node_flags').set({ reason: r.reason, details, updated_at: now }).where('node', '=', node).where('flag', '=', flag).execute();
          change = current.reason === r.reason ? 'unchanged' : 'updated';
        }
      } else if (r.status === 'match' && current) {
        await t.deleteFrom('node_flags').where('node', '=', node).where('flag', '=', flag).execute();
        change = 'cleared';
      }
      // After an agent's report, the same verdict again is not news: one event per change of status or
      // flag, not one per report (agents report at every boot and on every re-collection).
      if (r.trigger === 'report' && change === 'unchanged') {
        const last = await trx
          .selectFrom('events')
          .select('details')
          .where('node', '=', node)
          .where('kind', '=', EVENT.inventoryReconciled)
          .orderBy('id', 'desc')
          .limit(1)
          .executeTakeFirst();
        const lastStatus = last?.details ? (JSON.parse(last.details) as { status?: string }).status : undefined;
        if (lastStatus === r.status) return { flag: change, eventId: null };
      }
      const eventId = await appendEvent(trx, now, {
        node,
        kind: EVENT.inventoryReconciled,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: {
          status: r.status,
          reason: r.reason,
          checks: r.checks,
          trigger: r.trigger,
          ...(r.provider ? { provider: r.provider } : {}),
          ...(r.error ? { error: r.error } : {}),
          flag: { name: flag, change, raised: r.status === 'mismatch' || (r.status === 'unknown' && current !== undefined) },
        },
      });
      return { flag: change, eventId };
    });
  }
}

function toFlag(r: NodeFlagsTable): NodeFlag {
  return { node: r.node, flag: r.flag, reason: r.reason, details: r.details === null ? null : parseJson(r.details), since: r.since, updatedAt: r.updated_at };
}

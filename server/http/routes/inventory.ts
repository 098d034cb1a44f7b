/**
 * Inventory API (what agents reported; history kept in store.inventory):
 *   GET /api/v1/inventory?nodeset=NODESET        latest report per node
 *   GET /api/v1/inventory/:name/history?limit=N  a node's reports, newest first
 *   GET /api/v1/inventory/:name/diff             hardware changes between its last two reports
 * Reports are stored as the wire message's JSON; the answers carry the
 * agent's Inventory shape (common/inventory/types.ts), which is what
 * `fleet inventory` formats.
 */
import type { FastifyInstance } from 'fastify';
import { diffInventory } from '../../../common/inventory/diff.js';
import { inventoryFromStored } from '../../../common/inventory/proto.js';
import type { Inventory } from '../../../common/inventory/types.js';
import { FleetError } from '../../../common/errors.js';
import { DEFAULT_EXPAND_LIMIT, foldNames, NodeSet } from '../../nodeset/index.js';
import type { InventoryDiffReport, InventoryRow } from '../../ops/inventory-report.js';
import { DEFAULT_INVENTORY_HISTORY, MAX_INVENTORY_HISTORY, type Store } from '../../store/index.js';
import * as S from './schemas.js';
import { yieldIfLarge } from './yield.js';

export interface InventoryRouteDeps {
  store: Store;
  /** Largest nodeset a request may expand to (default 100,000, DEFAULT_EXPAND_LIMIT). */
  nodesetLimit?: number;
}

export interface InventoryResponse {
  /** Every node of the nodeset (all nodes without one) that the store knows, in name order; inventory null when it never reported. */
  nodes: InventoryRow[];
  /** Names of the nodeset the store does not know. */
  missing: string[];
  missingFolded: string;
}

export interface InventoryHistoryResponse {
  node: string;
  reports: { id: number; reportedAt: string; collectedAt: string | null; digest: string; inventory: Inventory }[];
}

const anyObject = { type: 'object', additionalProperties: true } as const;

const inventoryResponse = {
  type: 'object',
  properties: {
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        properties: { node: { type: 'string' }, reportedAt: { type: ['string', 'null'] }, inventory: { anyOf: [anyObject, { type: 'null' }] } },
        required: ['node', 'reportedAt', 'inventory'],
      },
    },
    missing: { type: 'array', items: { type: 'string' } },
    missingFolded: { type: 'string' },
  },
} as const;

const reportRef = { anyOf: [{ type: 'object', properties: { id: { type: 'integer' }, reportedAt: { type: 'string' } } }, { type: 'null' }] } as const;

const diffResponse = {
  type: 'object',
  properties: {
    node: { type: 'string' },
    before: reportRef,
    after: reportRef,
    changes: {
      type: 'array',
      items: {
        type: 'object',
        properties: { kind: { type: 'string' }, subject: { type: 'string' }, before: { type: 'string' }, after: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
} as const;

const historyQuery = {
  type: 'object',
  properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_INVENTORY_HISTORY, default: DEFAULT_INVENTORY_HISTORY } },
  additionalProperties: false,
} as const;

export async function registerInventoryRoutes(api: FastifyInstance, deps: InventoryRouteDeps): Promise<void> {
  const { store } = deps;
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;

  /** 404 unless the node exists or once reported. */
  async function requireKnown(name: string): Promise<void> {
    if (await store.nodes.get(name)) return;
    if ((await store.inventory.count(name)) > 0) return;
    throw new FleetError('node.not_found', `no node named '${name}'`);
  }

  api.get<{ Querystring: { nodeset?: string } }>(
    '/inventory',
    { schema: { summary: 'The latest inventory report of each node (optionally of a nodeset)', querystring: S.nodesetQuery, response: { 200: inventoryResponse } } },
    async (req): Promise<InventoryResponse> => {
      const names = req.query.nodeset !== undefined ? NodeSet.parse(req.query.nodeset, { limit }).expand() : undefined;
      await yieldIfLarge(names?.length ?? 0);
      const nodes = await store.nodes.list(names ? { names } : {});
      await yieldIfLarge(nodes.length);
      const found = new Set(nodes.map((n) => n.name));
      const missing = names ? names.filter((n) => !found.has(n)) : [];
      await yieldIfLarge(missing.length);
      const rows: InventoryRow[] = [];
      for (const n of nodes) {
        const rep = await store.inventory.latest(n.name);
        rows.push({ node: n.name, reportedAt: rep?.reportedAt ?? null, inventory: rep ? inventoryFromStored(rep.inventory) : null });
      }
      return { nodes: rows, missing, missingFolded: missing.length ? foldNames(missing) : '' };
    },
  );

  api.get<{ Params: { name: string }; Querystring: { limit?: number } }>(
    '/inventory/:name/history',
    { schema: { summary: "A node's inventory reports, newest first", params: S.nodeParams, querystring: historyQuery } },
    async (req): Promise<InventoryHistoryResponse> => {
      await requireKnown(req.params.name);
      const reps = await store.inventory.history(req.params.name, req.query.limit ?? DEFAULT_INVENTORY_HISTORY);
      return {
        node: req.params.name,
        reports: reps.map((r) => ({ id: r.id, reportedAt: r.reportedAt, collectedAt: r.collectedAt, digest: r.digest, inventory: inventoryFromStored(r.inventory) })),
      };
    },
  );

  api.get<{ Params: { name: string } }>(
    '/inventory/:name/diff',
    { schema: { summary: 'Hardware changes between the last two inventory reports of a node', params: S.nodeParams, response: { 200: diffResponse } } },
    async (req): Promise<InventoryDiffReport> => {
      await requireKnown(req.params.name);
      const [after, before] = await store.inventory.history(req.params.name, 2);
      const ref = (r: typeof after) => (r ? { id: r.id, reportedAt: r.reportedAt } : null);
      return {
        node: req.params.name,
        before: ref(before),
        after: ref(after),
        changes: after && before ? diffInventory(inventoryFromStored(before.inventory), inventoryFromStored(after.inventory)) : [],
      };
    },
  );
}

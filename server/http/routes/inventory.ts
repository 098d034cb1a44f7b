/**
 * Inventory API (what agents reported; history kept in store.inventory):
 *   GET /api/v1/inventory?nodeset=NODESET        latest report per node
 *   GET /api/v1/inventory/:name/history?limit=N  a node's reports, newest first
 *   GET /api/v1/inventory/:name/diff             hardware changes between its last two reports
 *                                                (none when the older is partial: `refused` says so)
 *   POST /api/v1/inventory/reconcile {nodeset}    each node's latest report against its BMC's
 *                                                identity; flags/clears bmc-mismatch (server/inventory/reconcile-run.ts)
 * Reports are stored as the wire message's JSON; the answers carry the
 * agent's Inventory shape (common/inventory/types.ts), which is what
 * `fleet inventory` formats.
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { compareInventories } from '../../../common/inventory/diff.js';
import { inventoryFromStored } from '../../../common/inventory/proto.js';
import { FleetError } from '../../../common/errors.js';
import { DEFAULT_EXPAND_LIMIT, foldNames } from '../../nodeset/index.js';
import { expandNodeset } from '../nodesets.js';
import { DEFAULT_INVENTORY_HISTORY, MAX_INVENTORY_HISTORY, type Store } from '../../store/index.js';
import type { BmcDeps } from './bmc.js';
import { reconcileNodes } from '../../inventory/reconcile-run.js';
import { actorOf } from './actor.js';
import { yieldIfLarge } from './yield.js';

export interface InventoryRouteDeps {
  store: Store;
  /** Largest nodeset a request may expand to (default 100,000, DEFAULT_EXPAND_LIMIT). */
  nodesetLimit?: number;
  /** BMC access for reconciliation; absent: POST /inventory/reconcile answers not_implemented. */
  bmc?: BmcDeps['bmc'];
}

/** The contract's history bounds are the store's (a compile error otherwise). */
const sameBounds: [typeof S.DEFAULT_INVENTORY_HISTORY, typeof S.MAX_INVENTORY_HISTORY] = [DEFAULT_INVENTORY_HISTORY, MAX_INVENTORY_HISTORY];
void sameBounds;

export async function registerInventoryRoutes(api: FastifyInstance, deps: InventoryRouteDeps): Promise<void> {
  const { store } = deps;
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;

  /** 404 unless the node exists or once reported. */
  async function requireKnown(name: string): Promise<void> {
    if (await store.nodes.get(name)) return;
    if ((await store.inventory.count(name)) > 0) return;
    throw new FleetError('node.not_found', `no node named '${name}'`);
  }

  api.get<{ Querystring: S.NodesetQuery }>(
    '/inventory',
    { schema: { summary: 'The latest inventory report of each node (optionally of a nodeset)', querystring: S.NodesetQuery, response: { 200: S.InventoryResponse } } },
    async (req): Promise<S.InventoryResponse> => {
      const names = req.query.nodeset !== undefined ? await expandNodeset(deps.store, req.query.nodeset, limit) : undefined;
      await yieldIfLarge(names?.length ?? 0);
      const nodes = await store.nodes.list(names ? { names } : {});
      await yieldIfLarge(nodes.length);
      const found = new Set(nodes.map((n) => n.name));
      const missing = names ? names.filter((n) => !found.has(n)) : [];
      await yieldIfLarge(missing.length);
      const rows: S.InventoryRow[] = [];
      for (const n of nodes) {
        const rep = await store.inventory.latest(n.name);
        rows.push({ node: n.name, reportedAt: rep?.reportedAt ?? null, inventory: rep ? inventoryFromStored(rep.inventory) : null });
      }
      return { nodes: rows, missing, missingFolded: missing.length ? foldNames(missing) : '' };
    },
  );

  api.get<{ Params: S.NodeParams; Querystring: S.InventoryHistoryQuery }>(
    '/inventory/:name/history',
    { schema: { summary: "A node's inventory reports, newest first", params: S.NodeParams, querystring: S.InventoryHistoryQuery, response: { 200: S.InventoryHistoryResponse } } },
    async (req): Promise<S.InventoryHistoryResponse> => {
      await requireKnown(req.params.name);
      const reps = await store.inventory.history(req.params.name, req.query.limit ?? DEFAULT_INVENTORY_HISTORY);
      return {
        node: req.params.name,
        reports: reps.map((r) => ({ id: r.id, reportedAt: r.reportedAt, collectedAt: r.collectedAt, digest: r.digest, inventory: inventoryFromStored(r.inventory) })),
      };
    },
  );

  api.get<{ Params: S.NodeParams }>(
    '/inventory/:name/diff',
    { schema: { summary: 'Hardware changes between the last two inventory reports of a node', params: S.NodeParams, response: { 200: S.InventoryDiffResponse } } },
    async (req): Promise<S.InventoryDiffResponse> => {
      await requireKnown(req.params.name);
      const [after, before] = await store.inventory.history(req.params.name, 2);
      const ref = (r: typeof after) => (r ? { id: r.id, reportedAt: r.reportedAt } : null);
      const cmp = after && before ? compareInventories(inventoryFromStored(before.inventory), inventoryFromStored(after.inventory)) : { refused: null, notCompared: [], changes: [] };
      return { node: req.params.name, before: ref(before), after: ref(after), ...cmp };
    },
  );

  // Reads BMCs: stopping the server ends the reads in progress (as for the other BMC routes).
  const stopping = new AbortController();
  api.addHook('preClose', async () => {
    stopping.abort(new FleetError('unavailable', 'not done: the server is stopping'));
  });

  api.post<{ Body: S.ReconcileRequest }>(
    '/inventory/reconcile',
    {
      schema: {
        summary:
          "Compare each node's latest agent inventory (system UUID, serial, NIC MACs) with what its BMC says (IPMI system GUID and FRU, Redfish ComputerSystem); a mismatch flags the node bmc-mismatch, a match clears the flag",
        body: S.ReconcileRequest,
        response: { 200: S.ReconcileResponse },
      },
    },
    async (req): Promise<S.ReconcileResponse> => {
      if (!deps.bmc) throw new FleetError('not_implemented', 'this server runs without BMC access');
      const names = await expandNodeset(deps.store, req.body.nodeset, limit);
      await yieldIfLarge(names.length);
      const known = new Set((await store.nodes.list({ names })).map((n) => n.name));
      const missing = names.filter((n) => !known.has(n));
      const results = await reconcileNodes(
        names.filter((n) => known.has(n)),
        {
          store,
          providers: deps.bmc.providers,
          actor: actorOf(req),
          trigger: 'api',
          concurrency: req.body.concurrency ?? deps.bmc.concurrency,
          timeoutMs: req.body.timeoutMs ?? deps.bmc.timeoutMs,
          retries: deps.bmc.retries,
          signal: stopping.signal,
        },
      );
      const count = (s: string) => results.filter((r) => r.status === s).length;
      return {
        results,
        summary: { total: results.length, match: count('match'), mismatch: count('mismatch'), unknown: count('unknown'), failed: results.filter((r) => r.error !== undefined).length },
        missing,
        missingFolded: missing.length ? foldNames(missing) : '',
      };
    },
  );
}

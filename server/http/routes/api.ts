/**
 * REST API v1 routes. Thin: parse and validate the request, call the store or
 * an operation, shape the answer. Auth is checked by the app's onRequest hook.
 */
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '../../config/index.js';
import { FleetError } from '../../../common/errors.js';
import { foldNames, DEFAULT_EXPAND_LIMIT } from '../../nodeset/index.js';
import { expandNodeset, listGroups } from '../nodesets.js';
import { applyConfig } from '../../apply/config.js';
import type { Conductor } from '../../lifecycle/index.js';
import type { EventPage, EventQuery, EventRecord, NodeFlag, NodeRecord, Store } from '../../store/index.js';
import * as S from '../../../common/api/schemas.js';
import { actorOf } from './actor.js';
import { yieldIfLarge } from './yield.js';

export interface ApiDeps {
  store: Store;
  /** Largest nodeset a request may expand to (default 100,000, DEFAULT_EXPAND_LIMIT). */
  nodesetLimit?: number;
  /** Called after apply changed the nodes (DHCP reservations follow). */
  onNodesChanged?: () => Promise<void>;
  /** The running conductor: a successful apply hands it the file's `lifecycle:` settings. */
  conductor?: Pick<Conductor, 'setSettings'>;
}

/** `flags`: the node's flags (store.flags), e.g. bmc-mismatch with its reason; none when omitted. */
export function toApiNode(n: NodeRecord, flags: readonly NodeFlag[] = []): S.ApiNode {
  return {
    name: n.name,
    profile: n.profile,
    ip: n.ip,
    macs: n.macs,
    bmc: n.bmc ? { address: n.bmc.address, port: n.bmc.port, protocol: n.bmc.protocol, credentials: n.bmc.credentials } : null,
    pet: n.pet,
    origin: n.origin,
    state: n.state,
    stateSince: n.stateSince,
    armed: n.armed,
    lastSeen: n.lastSeen,
    createdAt: n.createdAt,
    updatedAt: n.updatedAt,
    flags: flags.map((f) => ({ flag: f.flag, reason: f.reason, since: f.since })),
  };
}

export function toApiEvent(e: EventRecord): S.ApiEvent {
  return {
    id: e.id,
    time: e.time,
    node: e.node,
    kind: e.kind,
    fromState: e.fromState,
    toState: e.toState,
    actor: e.actor,
    details: (e.details ?? null) as S.ApiEvent['details'],
  };
}

/**
 * The store query of an events request: order asc pages with after, desc
 * (newest first) with before; a cursor of the other order is refused rather
 * than silently ignored.
 */
export function eventsPageQuery(q: S.EventsQuery): Pick<EventQuery, 'order' | 'afterId' | 'beforeId' | 'limit' | 'since'> {
  const order = q.order ?? 'asc';
  if (order === 'asc' && q.before !== undefined) throw new FleetError('request.invalid', 'before is the cursor of order=desc; with order=asc page on with after');
  if (order === 'desc' && q.after !== undefined) throw new FleetError('request.invalid', 'after is the cursor of order=asc; with order=desc page on with before');
  return {
    order,
    ...(q.after !== undefined ? { afterId: q.after } : {}),
    ...(q.before !== undefined ? { beforeId: q.before } : {}),
    limit: q.limit ?? 100,
    ...(q.since !== undefined ? { since: q.since } : {}),
  };
}

function toEventsResponse(page: EventPage, order: 'asc' | 'desc' | undefined): S.EventsResponse {
  return {
    events: page.events.map(toApiEvent),
    nextAfter: order === 'desc' ? null : page.nextCursor,
    nextBefore: order === 'desc' ? page.nextCursor : null,
  };
}

export async function registerApiRoutes(api: FastifyInstance, deps: ApiDeps): Promise<void> {
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;
  const expand = (expr: string): Promise<string[]> => expandNodeset(deps.store, expr, limit);

  api.get<{ Querystring: S.NodesetQuery }>(
    '/nodes',
    { schema: { summary: 'List nodes, optionally filtered by a nodeset', querystring: S.NodesetQuery, response: { 200: S.NodesResponse } } },
    async (req): Promise<S.NodesResponse> => {
      const names = req.query.nodeset !== undefined ? await expand(req.query.nodeset) : undefined;
      await yieldIfLarge(names?.length ?? 0);
      const nodes = await deps.store.nodes.list(names ? { names } : {});
      await yieldIfLarge(nodes.length);
      const found = new Set(nodes.map((n) => n.name));
      const missing = names ? names.filter((n) => !found.has(n)) : [];
      await yieldIfLarge(missing.length);
      const flags = await deps.store.flags.byNode(names ? nodes.map((n) => n.name) : undefined);
      return { nodes: nodes.map((n) => toApiNode(n, flags.get(n.name))), missing, missingFolded: missing.length ? foldNames(missing) : '' };
    },
  );

  api.get<{ Params: S.NodeParams }>(
    '/nodes/:name',
    { schema: { summary: 'One node', params: S.NodeParams, response: { 200: S.ApiNode } } },
    async (req): Promise<S.ApiNode> => {
      const n = await deps.store.nodes.get(req.params.name);
      if (!n) throw new FleetError('node.not_found', `no node named '${req.params.name}'`);
      return toApiNode(n, await deps.store.flags.list([n.name]));
    },
  );

  api.get<{ Params: S.NodeParams; Querystring: S.EventsQuery }>(
    '/nodes/:name/events',
    { schema: { summary: "One node's events, oldest first (order=desc: newest first)", params: S.NodeParams, querystring: S.EventsQuery, response: { 200: S.EventsResponse } } },
    async (req): Promise<S.EventsResponse> => {
      const query = eventsPageQuery(req.query);
      if (!(await deps.store.nodes.get(req.params.name))) {
        // A removed node still has its history; only refuse names never seen.
        const probe = await deps.store.events.list({ node: req.params.name, limit: 1 });
        if (probe.events.length === 0) throw new FleetError('node.not_found', `no node named '${req.params.name}'`);
      }
      const page = await deps.store.events.list({ node: req.params.name, ...query });
      return toEventsResponse(page, query.order);
    },
  );

  api.get<{ Querystring: S.EventsQuery }>(
    '/events',
    { schema: { summary: 'The event log, paginated by id: oldest first, or newest first with order=desc', querystring: S.EventsQuery, response: { 200: S.EventsResponse } } },
    async (req): Promise<S.EventsResponse> => {
      const query = eventsPageQuery(req.query);
      const nodes = req.query.nodeset !== undefined ? await expand(req.query.nodeset) : undefined;
      const page = await deps.store.events.list({ ...(nodes ? { nodes } : {}), ...query });
      return toEventsResponse(page, query.order);
    },
  );

  api.post<{ Body: S.ApplyRequest }>(
    '/apply',
    { schema: { summary: 'Apply a fleet.yaml (idempotent); dryRun only plans', body: S.ApplyRequest, response: { 200: S.ApplyResponse } } },
    async (req): Promise<S.ApplyResponse> => {
      const spec = parseConfig(req.body.yaml, { source: req.body.source ?? 'fleet.yaml', ...(req.body.files ? { files: req.body.files } : {}) });
      const res = await applyConfig(deps.store, spec, req.body.secrets, {
        actor: actorOf(req),
        dryRun: req.body.dryRun === true,
        prune: req.body.prune === true,
        held: 'refuse',
        ...(req.body.confirmRemovals ? { confirmedRemovals: req.body.confirmRemovals } : {}),
      });
      req.log.info({ changed: res.changed, applied: res.applied, nodes: res.plan.nodes }, 'apply');
      const n = res.plan.nodes;
      if (res.applied && n.added.length + n.changed.length + n.removed.length > 0) await deps.onNodesChanged?.();
      // The file's lifecycle: section is now the truth: the running conductor takes it without a restart.
      if (!req.body.dryRun) deps.conductor?.setSettings(spec.lifecycle);
      return res;
    },
  );

  api.get(
    '/groups',
    { schema: { summary: 'Node groups: fleet.yaml groups: and groups_file (@name), and each profile (@profile:NAME), resolved', response: { 200: S.GroupsResponse } } },
    async (): Promise<S.GroupsResponse> => ({ groups: await listGroups(deps.store, limit) }),
  );
}

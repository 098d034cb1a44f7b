/**
 * Lifecycle REST routes (under /api/v1):
 *
 *   POST /nodes/reinstall   {nodeset, profile?, stagger?: "10/30s", force?}  per-node results
 *   POST /nodes/cancel      {nodeset}                                        per-node results
 *   GET  /nodes/status?nodeset=                                              state, time in state, last event, next timeout, flags
 *   GET  /events/stream?nodeset=&after=&kinds=&maxEvents=&maxSeconds=        server-sent events
 *
 * The stream (server/http/event-stream.ts, shared with the dashboard) polls the events table by id cursor (so it also works with
 * several servers sharing one database): `id:` is the event id (reconnect
 * with Last-Event-ID or ?after=), `event:` its kind, `data:` the ApiEvent
 * JSON. Without a cursor it starts with the events written after the
 * request. It ends after maxEvents events or maxSeconds (at most 1 h), when
 * the client goes away, or when the server closes.
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { parseStagger } from '../../bmc/fanout.js';
import { FleetError } from '../../../common/errors.js';
import type { Conductor, NodeActionResult } from '../../lifecycle/conductor.js';
import { nodeStatuses } from '../../lifecycle/status.js';
import { foldNames, DEFAULT_EXPAND_LIMIT } from '../../nodeset/index.js';
import { expandNodeset } from '../nodesets.js';
import type { Store } from '../../store/index.js';
import { actorOf } from './actor.js';
import { yieldIfLarge } from './yield.js';
import type { ProfileSpec } from '../../model.js';
import { formatFinding, type Finding } from '../../doctor/checks.js';
import { eventStreamer, type EventStreamSettings } from '../event-stream.js';

export interface LifecycleRouteDeps {
  store: Store;
  /** Absent: reinstall and cancel answer not_implemented (status and the stream still work). */
  conductor?: Conductor;
  nodesetLimit?: number;
  stream?: EventStreamSettings;
  /** Clock of status times. Default: the system clock. */
  clock?: () => Date;
  /**
   * The doctor's checks a reinstall depends on (server/doctor): given the
   * profiles the nodes will install, the failed findings. Absent: no check
   * (`fleet server` always passes it).
   */
  preflight?: (profiles: ProfileSpec[]) => Promise<Finding[]>;
}

function summarise(results: NodeActionResult[]): S.LifecycleActionResponse {
  const ok = results.filter((r) => r.ok).length;
  return { results, summary: { total: results.length, ok, failed: results.length - ok } };
}

/**
 * Refuses a reinstall (precondition.failed, nothing changed) when a check
 * the nodes' profiles depend on fails: the profile's image or OS tree, the
 * boot environment, the boot endpoints, DHCP/iPXE. Unknown nodes and
 * profiles are left to the conductor, which reports them per node.
 */
export async function refuseOnFailedChecks(store: Store, preflight: NonNullable<LifecycleRouteDeps['preflight']>, names: string[], profile: string | undefined): Promise<void> {
  const wanted = new Set<string>();
  if (profile !== undefined) wanted.add(profile);
  else for (const n of await store.nodes.list({ names })) if (!n.pet) wanted.add(n.profile); // pets are refused without force anyway
  const profiles = (await store.profiles.list()).filter((p) => wanted.has(p.name));
  if (profiles.length === 0) return;
  const failed = await preflight(profiles);
  if (failed.length === 0) return;
  throw new FleetError(
    'precondition.failed',
    `reinstall refused: ${failed.length} check${failed.length === 1 ? '' : 's'} that profile${profiles.length === 1 ? '' : 's'} ${profiles.map((p) => p.name).join(', ')} depend${profiles.length === 1 ? 's' : ''} on fail${failed.length === 1 ? 's' : ''} (fleet doctor); nothing was changed; fix them, or pass force to reinstall anyway`,
    { errors: failed.map(formatFinding), findings: failed },
  );
}

export async function registerLifecycleRoutes(api: FastifyInstance, deps: LifecycleRouteDeps): Promise<void> {
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;
  const expand = (expr: string): Promise<string[]> => expandNodeset(deps.store, expr, limit);
  const conductor = (): Conductor => {
    if (!deps.conductor) throw new FleetError('not_implemented', 'this server runs without the lifecycle conductor');
    return deps.conductor;
  };
  const stream = eventStreamer(api, deps.store, deps.stream);

  api.post<{ Body: S.ReinstallRequest }>(
    '/nodes/reinstall',
    {
      schema: {
        summary: 'Reinstall nodes (erases their disks): arm a one-time PXE boot, power-cycle, install, boot the disk, configure. Pets need force.',
        body: S.ReinstallRequest,
        response: { 200: S.LifecycleActionResponse },
      },
    },
    async (req): Promise<S.LifecycleActionResponse> => {
      const c = conductor();
      const names = await expand(req.body.nodeset);
      if (deps.preflight && !req.body.force) await refuseOnFailedChecks(deps.store, deps.preflight, names, req.body.profile);
      const results = await c.reinstall(names, {
        actor: actorOf(req),
        force: req.body.force ?? false,
        ...(req.body.profile !== undefined ? { profile: req.body.profile } : {}),
        ...(req.body.stagger ? { stagger: parseStagger(req.body.stagger) } : {}),
      });
      const res = summarise(results);
      req.log.info({ nodes: names.length, ...res.summary }, 'reinstall');
      return res;
    },
  );

  api.post<{ Body: S.CancelRequest }>(
    '/nodes/cancel',
    {
      schema: {
        summary: 'Cancel the lifecycle of nodes: back to enrolled, disarmed, boot device disk (best effort)',
        body: S.CancelRequest,
        response: { 200: S.LifecycleActionResponse },
      },
    },
    async (req): Promise<S.LifecycleActionResponse> => summarise(await conductor().cancel(await expand(req.body.nodeset), { actor: actorOf(req) })),
  );

  api.get<{ Querystring: S.StatusQuery }>(
    '/nodes/status',
    {
      schema: {
        summary: 'Lifecycle status: state, time in state, last event, next timeout, failure reason, flags',
        querystring: S.StatusQuery,
        response: { 200: S.StatusResponse },
      },
    },
    async (req): Promise<S.StatusResponse> => {
      const names = req.query.nodeset !== undefined ? await expand(req.query.nodeset) : undefined;
      await yieldIfLarge(names?.length ?? 0);
      const { nodes, missing } = await nodeStatuses(deps.store, names, (deps.clock ?? (() => new Date()))());
      await yieldIfLarge(missing.length);
      const byState: Record<string, number> = {};
      for (const n of nodes) byState[n.state] = (byState[n.state] ?? 0) + 1;
      return {
        nodes,
        missing,
        missingFolded: missing.length ? foldNames(missing) : '',
        summary: { total: nodes.length, byState, failed: byState.failed ?? 0, flagged: nodes.filter((n) => n.flags.length > 0).length },
      };
    },
  );

  api.get<{ Querystring: S.EventStreamQuery }>(
    '/events/stream',
    {
      // A HEAD of an endless stream would hold its socket until the stream's own limits end it.
      exposeHeadRoute: false,
      schema: {
        summary: 'Server-sent events: the event log as it grows (id: event id, event: kind, data: the event JSON)',
        querystring: S.EventStreamQuery,
      },
    },
    async (req, reply) => {
      const names = req.query.nodeset !== undefined ? await expand(req.query.nodeset) : undefined;
      const kinds = req.query.kinds
        ?.split(',')
        .map((k) => k.trim())
        .filter(Boolean);
      await stream(req, reply, {
        ...(names ? { names } : {}),
        ...(kinds?.length ? { kinds } : {}),
        ...(req.query.after !== undefined ? { after: req.query.after } : {}),
        ...(req.query.maxEvents !== undefined ? { maxEvents: req.query.maxEvents } : {}),
        ...(req.query.maxSeconds !== undefined ? { maxSeconds: req.query.maxSeconds } : {}),
      });
    },
  );
}

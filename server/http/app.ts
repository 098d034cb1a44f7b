/**
 * The two faces of the server (DESIGN §9), each a fastify app built by a
 * function and kept apart from listen() so tests use inject().
 *
 * Admin face (`buildAdminApp`), for operators, the CLI and the dashboard:
 *   GET  /healthz                       no auth
 *   GET  /api/v1/openapi.json           no auth (the API's shape is not a secret)
 *   *    /api/v1/...                    Authorization: Bearer TOKEN
 *   GET  /metrics                       Authorization: Bearer TOKEN (Prometheus; the same check)
 *   *    /ui/...                        the dashboard: a session cookie from /ui/login, CSRF on writes (http/dashboard.ts)
 *
 * Authentication is a hook of the plugin scope every admin route lives in,
 * so it runs for whatever route the router matched, however the path was
 * spelt (percent-encoding, dot segments, …). Nothing here reads the raw URL
 * to decide who may pass. The token names a user (server/auth/users.ts);
 * the role the matched route needs is in its route options (`config.role`,
 * from the table in server/auth/roles.ts, copied by the scope's onRoute
 * hook): 401 for no, a wrong, an expired or a disabled user's token, 403
 * for a role too low.
 *
 * Boot face (`buildBootApp`), for machines on the provisioning network:
 * iPXE scripts, kickstarts, install callbacks, static trees. It has no admin
 * route at all, so no spelling of an admin path can reach one through it.
 */
import fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify';
import swagger from '@fastify/swagger';
import { requiredRole, ROLES, type Role } from '../auth/roles.js';
import { authenticate, authorize, bootstrapAdmin, type Principal } from '../auth/users.js';
import { CATALOGUE } from '../../common/errors.js';
import { installErrorHandling } from './errors.js';
import { loggerOptions, logRequestsAtDebug } from './logging.js';
import { registerApiRoutes, type ApiDeps } from './routes/api.js';
import { registerBmcRoutes, type BmcDeps } from './routes/bmc.js';
import { registerDiscoverBmcRoutes } from './routes/discover-bmc.js';
import { registerBootRoutes, type BootDeps } from './routes/boot.js';
import { registerNetbootApiRoutes, type NetbootApiDeps } from './routes/netboot-api.js';
import { registerInventoryRoutes } from './routes/inventory.js';
import { registerSlurmRoutes } from './routes/slurm.js';
import { registerLifecycleRoutes, type LifecycleRouteDeps } from './routes/lifecycle.js';
import { registerAdoptRoutes } from './routes/adopt.js';
import { registerDiscoverRoutes } from './routes/discover.js';
import { registerUserRoutes } from './routes/users.js';
import { registerMetricsRoutes } from './routes/metrics.js';
import type { FleetMetrics } from '../metrics/index.js';
import type { Conductor } from '../lifecycle/index.js';
import type { ConsoleManager } from '../console/manager.js';
import { installConsoleUpgrade } from './console.js';
import { registerConsoleRoutes } from './routes/console.js';
import { registerDashboard } from './dashboard.js';
import { registerTimelineRoutes } from './routes/timeline.js';
import type { SessionStore } from '../dashboard/session.js';

/** Paths of the admin face that answer without a token. */
export const PUBLIC_ADMIN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/api/v1/openapi.json']);

export interface AdminAppDeps extends ApiDeps, BmcDeps {
  /** DATA/api.token: with no user in the store yet, it becomes the token of user admin (role admin). */
  apiToken?: string;
  logLevel?: string;
  /** Where logs go (tests capture them to check that no secret is logged). */
  logStream?: NodeJS.WritableStream;
  version?: string;
  /** The lifecycle conductor (reinstall, cancel); absent: those routes answer not_implemented. */
  conductor?: Conductor;
  /** The doctor's checks a reinstall depends on (server/http/routes/lifecycle.ts); absent: none. */
  preflight?: LifecycleRouteDeps['preflight'];
  /** Called after a request changed the set of nodes (apply, enroll): DHCP reservations follow. */
  onNodesChanged?: () => Promise<void>;
  /** Render/export/discovery/enroll API (needs the boot settings the renderers use). */
  netboot?: Omit<NetbootApiDeps, 'store' | 'onNodesChanged'> & {
    /** The agent bundle (DATA/www/agent): `fleet adopt` pins its sha256 in the adoption script. */
    agentDir?: string;
  };
  /** TLS for the admin listener (PEM); absent: plain HTTP. */
  https?: { cert: string; key: string };
  /** Prometheus metrics served at /metrics (server/metrics); absent: /metrics answers not_implemented. */
  metrics?: FleetMetrics;
  /** Serial consoles (`fleet console`, server/http/console.ts); absent: attaches answer not_implemented. */
  consoles?: ConsoleManager;
  /** DATA/console: the dashboard shows operators the tail of a node's console log; absent: none. */
  consoleLogDir?: string;
  /** The dashboard's sessions (server/dashboard/session.ts); default a new in-memory store. Tests pass one with their clock. */
  dashboardSessions?: SessionStore;
}

export interface BootAppDeps extends BootDeps {
  logLevel?: string;
  logStream?: NodeJS.WritableStream;
  /** Counts the boot face's requests and bytes by tree (server/metrics). */
  metrics?: FleetMetrics;
}

/** One admin route as the router knows it. */
export interface RouteEntry {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The user whose token the request presented (set by the admin scope's auth hook). */
    principal?: Principal;
  }
}

const routeTables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route registered on an app built here, as the router has it (tests derive their tables from it). */
export function routesOf(app: FastifyInstance): readonly RouteEntry[] {
  return routeTables.get(app) ?? [];
}

function baseApp(logLevel: string | undefined, logStream: NodeJS.WritableStream | undefined, extra: Record<string, unknown> = {}): FastifyInstance {
  const app = fastify({
    logger: loggerOptions(logLevel ?? 'info', logStream),
    // One line per request, at debug (logRequestsAtDebug), not Fastify's two at info.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 8 * 1024 * 1024,
    ...extra,
  } as FastifyServerOptions) as unknown as FastifyInstance;
  logRequestsAtDebug(app, logLevel ?? 'info');
  const routes: RouteEntry[] = [];
  routeTables.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method: String(method), url: r.url });
  });
  installErrorHandling(app);
  return app;
}

export async function buildAdminApp(deps: AdminAppDeps): Promise<FastifyInstance> {
  const app = baseApp(deps.logLevel, deps.logStream, deps.https ? { https: { cert: deps.https.cert, key: deps.https.key } } : {});

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fleet API',
        version: deps.version ?? '0.1.0',
        description:
          'REST API of the fleet server. Every /api/v1 route except this document needs `Authorization: Bearer TOKEN`, ' +
          "a user's token (fleet user add|token; the first start's api.token in the server data dir is user admin's), " +
          'and the role the route names in its x-fleet-role (read-only < operator < admin; below it: 403 auth.forbidden). ' +
          'Errors are `{error:{code,message,details}}`; codes: ' +
          Object.keys(CATALOGUE).join(', '),
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  if (deps.apiToken !== undefined) await bootstrapAdmin(deps.store.users, deps.apiToken);
  const recordUse = useRecorder(deps.store);
  /** The one auth check of every guarded scope: the user's token, and the role of the route the router matched (roles table). */
  const guard = async (req: FastifyRequest): Promise<void> => {
    const p = await authenticate(deps.store.users, req.headers.authorization, new Date());
    const route = req.routeOptions;
    authorize(p, requiredRole(String(route.method), route.url ?? '', (route.config as { role?: unknown } | undefined)?.role), `${String(route.method)} ${route.url}`);
    req.principal = p;
    recordUse(p.hash, req);
  };
  await app.register(
    async (api) => {
      // Every route of this scope gets the role it needs into its options when it is registered.
      api.addHook('onRoute', (r) => {
        const config = (r.config ?? {}) as { role?: unknown };
        const role = [r.method]
          .flat()
          .map((m) => requiredRole(String(m), r.url, config.role))
          .reduce<Role>((a, b) => (ROLES.indexOf(b) > ROLES.indexOf(a) ? b : a), 'read-only');
        r.config = { ...config, role } as typeof r.config;
        // Published too: the OpenAPI operation names the role it needs.
        if (r.schema) r.schema = { ...r.schema, 'x-fleet-role': role } as typeof r.schema;
      });
      // First in the scope, so it guards every route below: fastify runs it for the matched route.
      api.addHook('onRequest', guard);
      await registerApiRoutes(api, deps);
      await registerBmcRoutes(api, deps);
      await registerDiscoverBmcRoutes(api, { store: deps.store });
      await registerInventoryRoutes(api, deps);
      await registerSlurmRoutes(api, deps);
      await registerLifecycleRoutes(api, { store: deps.store, nodesetLimit: deps.nodesetLimit, conductor: deps.conductor, ...(deps.preflight ? { preflight: deps.preflight } : {}) });
      if (deps.netboot) await registerNetbootApiRoutes(api, { store: deps.store, ...deps.netboot, onNodesChanged: deps.onNodesChanged });
      await registerDiscoverRoutes(api, {
        store: deps.store,
        ...(deps.conductor ? { conductor: deps.conductor } : {}),
        ...(deps.preflight ? { preflight: deps.preflight } : {}),
        ...(deps.onNodesChanged ? { onNodesChanged: deps.onNodesChanged } : {}),
      });
      await registerUserRoutes(api, { store: deps.store });
      await registerTimelineRoutes(api, { store: deps.store, ...(deps.nodesetLimit !== undefined ? { nodesetLimit: deps.nodesetLimit } : {}) });
      await registerAdoptRoutes(api, {
        store: deps.store,
        ...(deps.conductor ? { conductor: deps.conductor } : {}),
        ...(deps.netboot
          ? {
              serverUrl: deps.netboot.serverUrl,
              ...(deps.netboot.enrolServer !== undefined ? { enrolServer: deps.netboot.enrolServer } : {}),
              ...(deps.netboot.caFingerprint !== undefined ? { caFingerprint: deps.netboot.caFingerprint } : {}),
              ...(deps.netboot.agentDir !== undefined ? { agentDir: deps.netboot.agentDir } : {}),
            }
          : {}),
      });
    },
    { prefix: '/api/v1' },
  );
  // Prometheus' default path, outside /api/v1: its own scope, guarded as the API's (the same check, first in the scope).
  await app.register(async (scope) => {
    // Any user's token (read-only is enough, roles table): a Prometheus scraper gets a read-only user of its own.
    scope.addHook('onRequest', guard);
    await registerMetricsRoutes(scope, { store: deps.store, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  });
  // The console is an HTTP upgrade on this listener; stopping ends every attached console first.
  installConsoleUpgrade(app.server, { users: deps.store.users, ...(deps.consoles ? { consoles: deps.consoles } : {}), log: app.log });
  app.addHook('preClose', async () => {
    await deps.consoles?.stop();
  });
  await app.register(async (api) => {
    api.addHook('onRequest', guard);
    await registerConsoleRoutes(api);
  }, { prefix: '/api/v1' });
  // The dashboard (/ui): its own scope and session auth (server/http/dashboard.ts), the same roles table.
  await registerDashboard(app, {
    store: deps.store,
    secure: deps.https !== undefined,
    ...(deps.nodesetLimit !== undefined ? { nodesetLimit: deps.nodesetLimit } : {}),
    ...(deps.conductor ? { conductor: deps.conductor } : {}),
    ...(deps.preflight ? { preflight: deps.preflight } : {}),
    ...(deps.bmc ? { bmc: deps.bmc } : {}),
    ...(deps.dashboardSessions ? { sessions: deps.dashboardSessions } : {}),
    ...(deps.consoleLogDir !== undefined ? { consoleLogDir: deps.consoleLogDir } : {}),
    ...(deps.onNodesChanged ? { onNodesChanged: deps.onNodesChanged } : {}),
  });
  return app;
}

/** Records a token's use (last_used_at) at most once a minute per token, without holding up the request. */
function useRecorder(store: AdminAppDeps['store']): (hash: string, req: FastifyRequest) => void {
  const last = new Map<string, number>();
  return (hash, req) => {
    const now = Date.now();
    if (now - (last.get(hash) ?? 0) < 60_000) return;
    last.set(hash, now);
    store.users.touch(hash, new Date(now).toISOString()).catch((err: unknown) => req.log.debug({ err }, 'could not record the API token use'));
  };
}

export async function buildBootApp(deps: BootAppDeps): Promise<FastifyInstance> {
  const { logLevel, logStream, metrics, ...boot } = deps;
  const app = baseApp(logLevel, logStream);
  // Before the routes: the hooks then apply to every scope registered below.
  metrics?.instrumentBootApp(app);
  await registerBootRoutes(app, boot);
  return app;
}

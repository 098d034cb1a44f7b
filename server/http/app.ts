/**
 * The two faces of the server (DESIGN §9), each a fastify app built by a
 * function and kept apart from listen() so tests use inject().
 *
 * Admin face (`buildAdminApp`), for operators, the CLI and the dashboard:
 *   GET  /healthz                       no auth
 *   GET  /api/v1/openapi.json           no auth (the API's shape is not a secret)
 *   *    /api/v1/...                    Authorization: Bearer TOKEN
 *
 * Authentication is a hook of the plugin scope every admin route lives in,
 * so it runs for whatever route the router matched, however the path was
 * spelt (percent-encoding, dot segments, …). Nothing here reads the raw URL
 * to decide who may pass.
 *
 * Boot face (`buildBootApp`), for machines on the provisioning network:
 * iPXE scripts, kickstarts, install callbacks, static trees. It has no admin
 * route at all, so no spelling of an admin path can reach one through it.
 */
import fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { checkBearer, tokenId } from '../auth/api-token.js';
import { CATALOGUE } from '../../common/errors.js';
import { installErrorHandling } from './errors.js';
import { loggerOptions } from './logging.js';
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
import type { Conductor } from '../lifecycle/index.js';
import type { ConsoleManager } from '../console/manager.js';
import { installConsoleUpgrade } from './console.js';
import { registerConsoleRoutes } from './routes/console.js';

/** Paths of the admin face that answer without a token. */
export const PUBLIC_ADMIN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/api/v1/openapi.json']);

export interface AdminAppDeps extends ApiDeps, BmcDeps {
  apiToken: string;
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
  /** Serial consoles (`fleet console`, server/http/console.ts); absent: attaches answer not_implemented. */
  consoles?: ConsoleManager;
}

export interface BootAppDeps extends BootDeps {
  logLevel?: string;
  logStream?: NodeJS.WritableStream;
}

/** One admin route as the router knows it. */
export interface RouteEntry {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who presented a valid credential (set by the admin scope's auth hook), e.g. `api-token:1a2b3c4d`. */
    principal?: string;
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
    bodyLimit: 8 * 1024 * 1024,
    ...extra,
  } as FastifyServerOptions) as unknown as FastifyInstance;
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
          'REST API of the fleet server. Every /api/v1 route except this document needs `Authorization: Bearer TOKEN` ' +
          '(the token is in api.token in the server data dir). Errors are `{error:{code,message,details}}`; codes: ' +
          Object.keys(CATALOGUE).join(', '),
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const principal = `api-token:${tokenId(deps.apiToken)}`;
  await app.register(
    async (api) => {
      // First in the scope, so it guards every route below: fastify runs it for the matched route.
      api.addHook('onRequest', async (req: FastifyRequest) => {
        checkBearer(req.headers.authorization, deps.apiToken);
        req.principal = principal;
      });
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
  // The console is an HTTP upgrade on this listener; stopping ends every attached console first.
  installConsoleUpgrade(app.server, { apiToken: deps.apiToken, ...(deps.consoles ? { consoles: deps.consoles } : {}), log: app.log });
  app.addHook('preClose', async () => {
    await deps.consoles?.stop();
  });
  await app.register(async (api) => {
    api.addHook('onRequest', async (req: FastifyRequest) => {
      checkBearer(req.headers.authorization, deps.apiToken);
      req.principal = principal;
    });
    await registerConsoleRoutes(api);
  }, { prefix: '/api/v1' });
  return app;
}

export async function buildBootApp(deps: BootAppDeps): Promise<FastifyInstance> {
  const { logLevel, logStream, ...boot } = deps;
  const app = baseApp(logLevel, logStream);
  await registerBootRoutes(app, boot);
  return app;
}

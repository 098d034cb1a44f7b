/**
 * The fastify app, built by a function and kept apart from listen() so tests
 * use inject(). Routes:
 *   GET  /healthz                       no auth
 *   GET  /api/v1/openapi.json           no auth (the API's shape is not a secret)
 *   *    /api/v1/...                    Authorization: Bearer TOKEN
 */
import fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { checkBearer } from '../auth/api-token.js';
import { CATALOGUE } from '../errors.js';
import { installErrorHandling } from './errors.js';
import { loggerOptions } from './logging.js';
import { registerApiRoutes, type ApiDeps } from './routes/api.js';
import { registerBmcRoutes, type BmcDeps } from './routes/bmc.js';
import { registerBootRoutes, type BootDeps } from './routes/boot.js';
import { registerNetbootApiRoutes } from './routes/netboot-api.js';
import { registerInventoryRoutes } from './routes/inventory.js';
import { registerLifecycleRoutes } from './routes/lifecycle.js';
import type { Conductor } from '../lifecycle/index.js';

export interface AppDeps extends ApiDeps, BmcDeps {
  apiToken: string;
  logLevel?: string;
  /** Where logs go (tests capture them to check that no secret is logged). */
  logStream?: NodeJS.WritableStream;
  version?: string;
  /** The lifecycle conductor (reinstall, cancel); absent: those routes answer not_implemented. */
  conductor?: Conductor;
  /** Called after a request changed the set of nodes (apply, enroll): DHCP reservations follow. */
  onNodesChanged?: () => Promise<void>;
  /** Boot endpoints (iPXE scripts, kickstarts, install callbacks, static trees) and render/export/discovery API. */
  netboot?: Omit<BootDeps, 'store'>;
}

const PUBLIC_PATHS = new Set(['/healthz', '/api/v1/openapi.json']);
/** Install callbacks carry their node's install token (?token=) instead of the API token. */
const NODE_TOKEN_PREFIX = '/api/v1/boot-events/';

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = fastify({
    logger: loggerOptions(deps.logLevel ?? 'info', deps.logStream),
    bodyLimit: 8 * 1024 * 1024,
  });
  installErrorHandling(app);

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

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (!path.startsWith('/api/') || PUBLIC_PATHS.has(path) || path.startsWith(NODE_TOKEN_PREFIX)) return;
    checkBearer(req.headers.authorization, deps.apiToken);
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(
    async (api) => {
      await registerApiRoutes(api, deps);
      await registerBmcRoutes(api, deps);
      await registerInventoryRoutes(api, deps);
      await registerLifecycleRoutes(api, { store: deps.store, nodesetLimit: deps.nodesetLimit, conductor: deps.conductor });
      if (deps.netboot) await registerNetbootApiRoutes(api, { store: deps.store, ...deps.netboot, onNodesChanged: deps.onNodesChanged });
    },
    { prefix: '/api/v1' },
  );
  if (deps.netboot) await registerBootRoutes(app, { store: deps.store, ...deps.netboot });
  return app;
}

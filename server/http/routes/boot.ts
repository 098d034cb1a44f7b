/**
 * The boot endpoints: the HTTP adapter of the boot service
 * (server/netboot/boot-service.ts), for the machines on the provisioning
 * network while they netboot and install. They carry no API token (nodes
 * have none; the install token rides in the query):
 *
 *   GET  /boot.ipxe                               the chain script (DHCP hands it to iPXE)
 *   GET  /boot/:id.ipxe?serial&uuid&arch&platform  the machine's script; id = MAC (52-54-00-12-34-56) or node name
 *   GET  /kickstart/:node.ks?token=T              the node's kickstart; T = the node's install token
 *   GET  /bootenv/:node/plan?token=T              an image install's plan (JSON; an error is one line of text)
 *   GET  /stateless/:node/plan?token=T            a stateless boot's plan for stage 1 (the same; docs/stateless.md)
 *   POST /api/v1/boot-events/:node/:event?token=T  install-started | install-failed | install-finished |
 *                                                 install-progress (204)
 *   POST /inspection/:mac?token=T                 an unknown machine's inspection report (fleet.job=inspect;
 *                                                 T = the inspect token of its inspect script)
 *   GET  /inspection/:mac/next?token=T            what the inspected machine does next (wait, poweroff, bmc-setup)
 *   POST /inspection/:mac/bmc?token=T             the in-band BMC set-up's report: verified out of band, then what comes next
 *   GET  /agent/adopt.sh                          the adoption script (server/agents/adopt.ts; fleet adopt pins its sha256)
 *   GET  /agent/*                                 the agent bundle (deps.agentDir)
 *   GET  /bootenv/vmlinuz, /bootenv/initrd.img    the fleet boot environment (DATA/bootenv/current/)
 *   GET  /images/sha256/<hex>/<file>              the image store's artefacts (DATA/images/sha256/)
 *   GET  /stateless/<hex>/<key>/modules.img       a stateless image's module layer (DATA/stateless/)
 *   GET  /repo/debian/*                           fleet's apt repository (DATA/repo/debian/, docs/repo.md)
 *   GET  /repo/*, /images/*                       static trees (deps.staticRoots), not rate-limited
 *
 * Every script response is text/plain; an error on an .ipxe route is itself
 * an iPXE script that prints the problem and returns to the firmware (never
 * a shell).
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NODE_NAME } from '../../../common/patterns.js';
import { FleetError, isFleetError } from '../../../common/errors.js';
import { createRecorder, type FactRecorder } from '../../lifecycle/record.js';
import { bootenvCurrentDir, createBootService, type BootServiceDeps } from '../../netboot/boot-service.js';
import { imagePaths } from '../../images/store.js';
import { statelessRoot } from '../../stateless/spec.js';
import { ADOPT_SCRIPT_PATH, adoptScript } from '../../agents/adopt.js';
import { repoPaths } from '../../repo/store.js';
import { BOOT_EVENTS, type BootEvent } from '../../netboot/render/index.js';
import { registerStaticTree, serveFile, type FileCache } from '../static.js';
import { MAX_INSPECTION_BODY } from '../../discovery/inspection.js';

export const DEFAULT_BOOT_RATE_LIMIT = { max: 120, timeWindow: 60_000 };
/** Largest callback body accepted (the install-failed log tail). */
export const MAX_CALLBACK_BODY = 64 * 1024;

export interface BootDeps extends Omit<BootServiceDeps, 'recorder'> {
  /** Where the boot facts go (event row, then the conductor); absent: rows only, nobody is told. */
  recorder?: FactRecorder;
  /** Per client IP, on every boot route except the static trees (default 120 per minute). */
  rateLimit?: { max: number; timeWindow: number | string };
  /** Directories served under /repo and /images. */
  staticRoots?: { repo?: string; images?: string };
  /** Directory served under /agent (the kickstart downloads /agent/fleet-agent). */
  agentDir?: string;
  /** Where the static trees hold file bytes (server/http/static.ts; default its sharedFileCache). */
  fileCache?: FileCache;
}

/** The client address as recorded in events (IPv4-mapped IPv6 shown as IPv4). */
function clientIp(req: FastifyRequest): string {
  return req.ip.startsWith('::ffff:') ? req.ip.slice(7) : req.ip;
}

/** Only characters that are inert on an iPXE echo line. */
function consoleSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9 .,:()/_+=@%-]/g, '_').slice(0, 200);
}

/** An iPXE script that prints what went wrong and returns to the firmware boot order (never a shell). */
export function ipxeErrorScript(message: string, delaySeconds = 30): string {
  return [
    '#!ipxe',
    `echo fleet: ${consoleSafe(message)}`,
    `echo fleet: returning to the firmware boot order in ${delaySeconds} s`,
    `sleep ${delaySeconds}`,
    'exit',
    '',
  ].join('\n');
}

function errorStatus(err: FastifyError | FleetError): { status: number; message: string } {
  if (isFleetError(err)) return err.code === 'internal' ? { status: 500, message: 'internal error; see the server log' } : { status: err.http, message: err.message };
  const e = err as FastifyError;
  if (e.validation) return { status: 400, message: e.message };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return { status: e.statusCode, message: e.message };
  return { status: 500, message: 'internal error; see the server log' };
}

const TOKEN_QUERY = {
  type: 'object',
  properties: { token: { type: 'string', maxLength: 512 } },
} as const;

const NODE_PARAM = { type: 'string', pattern: NODE_NAME.source } as const;

const MACHINE_QUERY = {
  type: 'object',
  properties: {
    // Identity facts: the service records them only when they look sane.
    serial: { type: 'string', maxLength: 256 },
    uuid: { type: 'string', maxLength: 256 },
    // These come from iPXE itself (${buildarch}, ${platform}) and are validated strictly.
    arch: { type: 'string', maxLength: 16, pattern: '^[a-z0-9_]*$' },
    platform: { type: 'string', maxLength: 16, pattern: '^[a-z0-9_]*$' },
  },
} as const;

interface MachineQuery {
  serial?: string;
  uuid?: string;
  arch?: string;
  platform?: string;
}

async function sendText(reply: FastifyReply, text: string): Promise<FastifyReply> {
  return reply.type('text/plain; charset=utf-8').send(text);
}

export async function registerBootRoutes(app: FastifyInstance, deps: BootDeps): Promise<void> {
  const { rateLimit: limitOpt, staticRoots, agentDir, recorder, fileCache, ...serviceDeps } = deps;
  const cache = { cache: fileCache };
  const boot = createBootService({ ...serviceDeps, recorder: recorder ?? createRecorder({ store: deps.store, logger: app.log }) });
  const limits = limitOpt ?? DEFAULT_BOOT_RATE_LIMIT;

  // --- rate-limited scope: scripts, kickstarts, callbacks, agent
  await app.register(async (scope) => {
    await scope.register(rateLimit, { global: true, max: limits.max, timeWindow: limits.timeWindow });

    scope.setErrorHandler((err: FastifyError, req, reply) => {
      const path = req.url.split('?')[0] ?? '';
      if (!path.endsWith('.ipxe')) throw err; // the app's handler answers with the catalogue's JSON
      const { status, message } = errorStatus(err);
      if (status === 500) req.log.error({ err }, 'boot script failed');
      void reply.status(status).type('text/plain; charset=utf-8').send(ipxeErrorScript(message));
    });

    scope.get('/boot.ipxe', { schema: { hide: true } }, async (_req, reply) => sendText(reply, await boot.chainScript()));

    scope.get<{ Params: { id: string }; Querystring: MachineQuery }>(
      '/boot/:id.ipxe',
      // No automatic HEAD: serving a script issues tokens and writes events.
      { exposeHeadRoute: false, schema: { hide: true, querystring: MACHINE_QUERY } },
      async (req, reply) => sendText(reply, await boot.machineScript(req.params.id, { ...req.query, ip: clientIp(req) })),
    );

    scope.get<{ Params: { node: string }; Querystring: { token?: string } }>(
      '/kickstart/:node.ks',
      { exposeHeadRoute: false, schema: { hide: true, params: { type: 'object', properties: { node: NODE_PARAM }, required: ['node'] }, querystring: TOKEN_QUERY } },
      async (req, reply) => sendText(reply, await boot.kickstart(req.params.node, req.query.token, clientIp(req))),
    );

    // The plans of the boot environment (an image install) and of stage 1 (a stateless boot).
    for (const [url, plan] of [
      ['/bootenv/:node/plan', boot.installPlan],
      ['/stateless/:node/plan', boot.statelessPlan],
    ] as const) {
      scope.get<{ Params: { node: string }; Querystring: { token?: string } }>(
        url,
        { exposeHeadRoute: false, schema: { hide: true, params: { type: 'object', properties: { node: NODE_PARAM }, required: ['node'] }, querystring: TOKEN_QUERY } },
        async (req, reply) => {
          try {
            return await reply.type('application/json; charset=utf-8').send(await plan(req.params.node, req.query.token, clientIp(req)));
          } catch (e) {
            // The boot environment shows and reports what it is told: one line of text.
            if (!isFleetError(e)) throw e;
            const { status, message } = errorStatus(e);
            return reply.status(status).type('text/plain; charset=utf-8').send(`${message.replace(/[\r\n]+/g, ' ')}\n`);
          }
        },
      );
    }

    scope.post<{ Params: { node: string; event: BootEvent }; Querystring: { token?: string }; Body: unknown }>(
      '/api/v1/boot-events/:node/:event',
      {
        bodyLimit: MAX_CALLBACK_BODY,
        schema: {
          hide: true,
          params: { type: 'object', properties: { node: NODE_PARAM, event: { type: 'string', enum: [...BOOT_EVENTS] } }, required: ['node', 'event'] },
          querystring: TOKEN_QUERY,
        },
      },
      async (req, reply) => {
        const done = await boot.installCallback(req.params.node, req.params.event, req.query.token, clientIp(req), req.body);
        // Progress is fire-and-forget for the boot environment (a dropped report is still a 204).
        return req.params.event === 'install-progress' ? reply.status(204).send() : done;
      },
    );

    const MAC_PARAMS = { type: 'object', properties: { mac: { type: 'string', maxLength: 17 } }, required: ['mac'] } as const;
    scope.post<{ Params: { mac: string }; Querystring: { token?: string }; Body: unknown }>(
      '/inspection/:mac',
      { bodyLimit: MAX_INSPECTION_BODY, schema: { hide: true, params: MAC_PARAMS, querystring: TOKEN_QUERY } },
      async (req) => boot.inspectionReport(req.params.mac, req.query.token, clientIp(req), req.body),
    );
    scope.post<{ Params: { mac: string }; Querystring: { token?: string }; Body: unknown }>(
      '/inspection/:mac/bmc',
      { bodyLimit: 64 * 1024, schema: { hide: true, params: MAC_PARAMS, querystring: TOKEN_QUERY } },
      async (req) => boot.inspectionBmcReport(req.params.mac, req.query.token, clientIp(req), req.body),
    );
    scope.get<{ Params: { mac: string }; Querystring: { token?: string } }>(
      '/inspection/:mac/next',
      { exposeHeadRoute: false, schema: { hide: true, params: MAC_PARAMS, querystring: TOKEN_QUERY } },
      async (req) => boot.inspectionNext(req.params.mac, req.query.token, clientIp(req)),
    );

    // Before the /agent/* tree: the more specific route wins. The same bytes as fleet adopt hashed (same inputs).
    scope.get(ADOPT_SCRIPT_PATH, { schema: { hide: true } }, async (_req, reply) => {
      const script = await adoptScript({
        serverUrl: serviceDeps.serverUrl,
        ...(serviceDeps.enrolServer !== undefined ? { enrolServer: serviceDeps.enrolServer } : {}),
        ...(serviceDeps.caFingerprint !== undefined ? { caFingerprint: serviceDeps.caFingerprint } : {}),
        ...(agentDir !== undefined ? { agentDir } : {}),
      });
      return reply.type('text/x-shellscript; charset=utf-8').send(script.text);
    });

    registerStaticTree(scope, {
      ...cache,
      prefix: '/agent',
      root: agentDir,
      missingMessage: 'the fleet agent bundle is not built or not configured on this server (agent directory): nodes cannot download fleet-agent',
    });
  });

  // --- static trees: an install fetches hundreds of packages, so no rate limit here
  await app.register(async (scope) => {
    registerStaticTree(scope, { ...cache, prefix: '/repo', root: staticRoots?.repo, missingMessage: 'no repository tree is configured on this server (/repo)' });
    registerStaticTree(scope, { ...cache, prefix: '/images', root: staticRoots?.images, missingMessage: 'no images tree is configured on this server (/images)' });
    const dataDir = serviceDeps.dataDir;
    // The image store's artefacts (rootfs.tar.zst, ...): the more specific prefix wins over /images/*.
    registerStaticTree(scope, {
      ...cache,
      prefix: '/images/sha256',
      root: dataDir === undefined ? undefined : imagePaths(dataDir).blobs,
      missingMessage: 'no image store on this server (no data dir)',
    });
    // fleet's own apt repository (server/repo, docs/repo.md): DATA/repo/debian only, so the
    // signing key (DATA/repo/key) and the index beside it are never reachable; the more
    // specific prefix wins over /repo/* (the OS trees of DATA/www/repo).
    registerStaticTree(scope, {
      ...cache,
      prefix: '/repo/debian',
      root: dataDir === undefined ? undefined : repoPaths(dataDir).debian,
      missingMessage: 'no apt repository on this server (no data dir)',
    });
    // Stateless images' module layers (server/stateless): DATA/stateless/<image hex>/<key>/modules.img
    // only (never a build in progress under DATA/stateless/tmp).
    const HEX64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
    scope.route({
      method: ['GET', 'HEAD'],
      url: '/stateless/:hex/:key/modules.img',
      exposeHeadRoute: false,
      schema: { hide: true, params: { type: 'object', properties: { hex: HEX64, key: HEX64 }, required: ['hex', 'key'] } },
      handler: (req, reply) =>
        serveFile(req, reply, {
          ...cache,
          prefix: '/stateless',
          root: dataDir === undefined ? undefined : statelessRoot(dataDir),
          missingMessage: 'no stateless layers on this server (no data dir)',
        }),
    });
    // The boot environment: DATA/bootenv/current is resolved at each request (a directory
    // renamed into place, or a symlink to one beside it); only its kernel and initrd are served.
    for (const file of ['vmlinuz', 'initrd.img']) {
      scope.route({
        method: ['GET', 'HEAD'],
        url: `/bootenv/${file}`,
        exposeHeadRoute: false,
        schema: { hide: true },
        handler: (req, reply) =>
          serveFile(req, reply, {
            ...cache,
            prefix: '/bootenv',
            root: dataDir === undefined ? undefined : bootenvCurrentDir(dataDir),
            missingMessage: 'the fleet boot environment is not built: run fleet bootenv build',
          }),
      });
    }
  });
}

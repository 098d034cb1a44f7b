/**
 * The boot endpoints: what machines on the provisioning network fetch while
 * they netboot and install. They carry no API token (nodes have none):
 *
 *   GET  /boot.ipxe                               the chain script (DHCP hands it to iPXE)
 *   GET  /boot/:id.ipxe?serial&uuid&arch&platform  the machine's script; id = MAC (52-54-00-12-34-56) or node name
 *   GET  /kickstart/:node.ks?token=T              the node's kickstart; T = the node's install token
 *   POST /api/v1/boot-events/:node/:event?token=T  install-started | install-failed | install-finished
 *   GET  /agent/*                                 the agent bundle (deps.agentDir)
 *   GET  /repo/*, /images/*                       static trees (deps.staticRoots), not rate-limited
 *
 * Tokens (DESIGN §4, docs/netboot.md "Install tokens"): a node has at most
 * one outstanding token of each kind, and every use records its source address.
 * - install token (purpose 'install'): handed out with the node's install
 *   script and put on the kickstart URL (inst.ks=...?token=T). It authorises
 *   the kickstart fetch and the install callbacks for that node only, until
 *   it expires (installTokenTtlMs). A repeated script fetch is served the
 *   same token again (store: tokens.current), never a second one. Fetches
 *   and callbacks do not use it up (installers retry); install-finished does,
 *   and revokes every other outstanding token of the node in the same
 *   transaction, so the copy of the kickstart left on the installed system
 *   carries dead tokens.
 * - enrolment token (the store's default purpose, which the gRPC Enroll
 *   consumes): handed out with the kickstart (the same one again on a
 *   repeated fetch) and embedded in its %post for `fleet-agent enroll`.
 * - cancel, fail and a new reinstall revoke both (the conductor).
 *
 * Every script response is text/plain; an error on an .ipxe route is itself
 * an iPXE script that prints the problem and returns to the firmware (never
 * a shell). Event details never carry a token.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAC_INPUT, NODE_NAME, normalizeMac, show } from '../../../common/patterns.js';
import { FleetError, isFleetError } from '../../../common/errors.js';
import { BOOT_EVENTS, type BootEvent } from '../../netboot/render/index.js';
import { EVENT } from '../../../common/events.js';
import {
  decideFor,
  INSTALL_TOKEN_PURPOSE,
  renderChain,
  renderDecision,
  renderNodeKickstart,
  withKickstartToken,
  type RenderDeps,
} from '../../netboot/scripts.js';
import type { NodeRecord, Store } from '../../store/index.js';
import { registerStaticTree } from '../static.js';

export const DEFAULT_TOKEN_TTL_MS = 2 * 60 * 60 * 1000;
export const DEFAULT_BOOT_RATE_LIMIT = { max: 120, timeWindow: 60_000 };
/** Largest callback body accepted (the install-failed log tail). */
export const MAX_CALLBACK_BODY = 64 * 1024;
/** How much of an install-failed log is kept in the event (its end). */
export const MAX_STORED_LOG = 16 * 1024;
const ACTOR = 'netboot';

/** A fact the lifecycle may act on, reported after its event is written. */
export interface BootSignal {
  node: string;
  kind: string;
  details: Record<string, unknown>;
}

export interface BootDeps extends RenderDeps {
  /** Life of the enrolment token embedded in a kickstart (default 2 h). */
  tokenTtlMs?: number;
  /** Life of the install token (kickstart fetch and callbacks; default tokenTtlMs). */
  installTokenTtlMs?: number;
  /** Per client IP, on every boot route except the static trees (default 120 per minute). */
  rateLimit?: { max: number; timeWindow: number | string };
  /** Directories served under /repo and /images. */
  staticRoots?: { repo?: string; images?: string };
  /** Directory served under /agent (the kickstart downloads /agent/fleet-agent). */
  agentDir?: string;
  /** Called after each boot event is written (lifecycle hook); errors are logged, never answered. */
  onSignal?: (signal: BootSignal) => void | Promise<void>;
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

async function signal(req: FastifyRequest, deps: BootDeps, s: BootSignal): Promise<void> {
  if (!deps.onSignal) return;
  try {
    await deps.onSignal(s);
  } catch (err) {
    req.log.error({ err, node: s.node, kind: s.kind }, 'boot signal handler failed');
  }
}

async function appendNodeEvent(store: Store, node: string, kind: string, details: Record<string, unknown>): Promise<void> {
  await store.events.append({ node, kind, actor: ACTOR, details });
}

/** Why a token was refused, in words (never the token). */
function refusal(e: unknown): string | undefined {
  if (!isFleetError(e)) return undefined;
  switch (e.code) {
    case 'auth.invalid':
      return 'unknown token';
    case 'token.wrong_node':
      return 'the token belongs to another node';
    case 'token.used':
      return 'the token was already used (the install finished)';
    case 'token.expired':
      return 'the token expired (arm the node again to reinstall)';
    case 'token.revoked':
      return `the token was revoked: ${String((e.details as { reason?: unknown } | undefined)?.reason ?? 'no reason recorded')}`;
    default:
      return undefined;
  }
}

/**
 * Checks an install token without using it up (installers retry kickstart
 * fetches and callbacks) and records the use's address on the token. Returns
 * the address of the previous use when it was another one (for the event).
 */
export async function verifyInstallToken(store: Store, token: string, node: string, ip: string): Promise<{ previousIp?: string }> {
  const use = await store.tokens.verify(token, { node, purpose: INSTALL_TOKEN_PURPOSE, ip });
  return use.previousIp !== null && use.previousIp !== ip ? { previousIp: use.previousIp } : {};
}

const TOKEN_QUERY = {
  type: 'object',
  properties: { token: { type: 'string', maxLength: 512 } },
} as const;

const NODE_PARAM = { type: 'string', pattern: NODE_NAME.source } as const;

const MACHINE_QUERY = {
  type: 'object',
  properties: {
    // Identity facts, recorded only when they look sane (SMBIOS serials can hold anything: a
    // machine is never refused its boot script for an odd serial).
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

const SERIAL = /^[A-Za-z0-9 ._:/+-]{1,64}$/;
const UUID = /^[0-9A-Fa-f-]{1,36}$/;

async function sendText(reply: FastifyReply, text: string): Promise<FastifyReply> {
  return reply.type('text/plain; charset=utf-8').send(text);
}

export async function registerBootRoutes(app: FastifyInstance, deps: BootDeps): Promise<void> {
  const store = deps.store;
  const tokenTtlMs = deps.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
  const installTtlMs = deps.installTokenTtlMs ?? tokenTtlMs;
  const limits = deps.rateLimit ?? DEFAULT_BOOT_RATE_LIMIT;

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

    scope.get('/boot.ipxe', { schema: { hide: true } }, async (_req, reply) => sendText(reply, await renderChain(deps)));

    scope.get<{ Params: { id: string }; Querystring: MachineQuery }>(
      '/boot/:id.ipxe',
      // No automatic HEAD: serving a script issues tokens and writes events.
      { exposeHeadRoute: false, schema: { hide: true, querystring: MACHINE_QUERY } },
      async (req, reply) => {
        const id = req.params.id;
        const ip = clientIp(req);
        const q = req.query;
        let node: NodeRecord | null;
        let mac: string;
        if (MAC_INPUT.test(id)) {
          mac = id;
          const canonical = normalizeMac(id);
          node = canonical ? await store.nodes.findByMac(canonical) : null; // a bad MAC is refused by the decision
        } else if (NODE_NAME.test(id)) {
          node = await store.nodes.get(id);
          if (!node) throw new FleetError('node.not_found', `no node named ${id}`, { node: id });
          const primary = node.macs[0];
          if (primary === undefined) throw new FleetError('request.invalid', `node ${id} declares no MAC address`, { node: id });
          mac = primary;
        } else {
          throw new FleetError('request.invalid', `${show(id)} is neither a MAC address (52-54-00-12-34-56) nor a node name`);
        }

        let decision = await decideFor(deps, node, mac, q.platform ? { platform: q.platform } : {});
        const facts = {
          mac: normalizeMac(mac) ?? mac,
          ip,
          ...(q.arch ? { arch: q.arch } : {}),
          ...(q.platform ? { platform: q.platform } : {}),
          ...(q.serial && SERIAL.test(q.serial) ? { serial: q.serial } : {}),
          ...(q.uuid && UUID.test(q.uuid) ? { uuid: q.uuid } : {}),
        };

        if (decision.kind === 'discover') {
          await store.discovered.record({ mac: decision.mac, ip, pxe: true, ...(q.arch ? { arch: q.arch } : {}) });
          return sendText(reply, await renderDecision(deps, decision));
        }

        let installToken: Record<string, unknown> = {};
        if (decision.kind === 'install') {
          // One outstanding install token per node: a repeated fetch is served the live one again.
          const t = await store.tokens.current(decision.node, { ttlMs: installTtlMs, purpose: INSTALL_TOKEN_PURPOSE, actor: ACTOR, ip });
          decision = withKickstartToken(decision, t.token);
          installToken = { installToken: t.reused ? 'reused' : 'issued', installTokenExpiresAt: t.expiresAt };
        }
        const script = await renderDecision(deps, decision);
        const details: Record<string, unknown> = {
          decision: decision.kind,
          ...(decision.kind === 'localboot' ? { reason: decision.reason, method: decision.method, ...(decision.flag ? { flag: decision.flag } : {}) } : {}),
          ...(decision.kind === 'not-implemented' ? { reason: decision.message } : {}),
          ...(decision.kind === 'install' ? { profile: decision.profile, ...installToken } : {}),
          ...facts,
        };
        const nodeName = decision.node;
        await appendNodeEvent(store, nodeName, EVENT.scriptFetched, details);
        if (decision.kind === 'localboot' && decision.flag === 'boot-loop-suspect') {
          await appendNodeEvent(store, nodeName, EVENT.loopSuspect, { reason: decision.reason, state: node?.state ?? null, mac: facts.mac, ip });
        }
        await signal(req, deps, { node: nodeName, kind: EVENT.scriptFetched, details });
        return sendText(reply, script);
      },
    );

    scope.get<{ Params: { node: string }; Querystring: { token?: string } }>(
      '/kickstart/:node.ks',
      { exposeHeadRoute: false, schema: { hide: true, params: { type: 'object', properties: { node: NODE_PARAM }, required: ['node'] }, querystring: TOKEN_QUERY } },
      async (req, reply) => {
        const name = req.params.node;
        const ip = clientIp(req);
        const node = await store.nodes.get(name);
        if (!node) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
        const refuse = async (why: string): Promise<never> => {
          await appendNodeEvent(store, name, EVENT.kickstartRefused, { reason: why, ip });
          throw new FleetError('auth.forbidden', `kickstart for ${name} refused: ${why}`, { node: name });
        };
        const token = req.query.token;
        if (!token) return refuse('no token (the URL comes from the node\'s iPXE install script: inst.ks=...?token=...)');
        let use: { previousIp?: string };
        try {
          use = await verifyInstallToken(store, token, name, ip);
        } catch (e) {
          const why = refusal(e);
          if (why === undefined) throw e;
          return refuse(why);
        }
        if (!node.armed) return refuse(`${name} is not armed for install`);

        if (deps.caFingerprint === undefined) {
          throw new FleetError('unavailable', 'the server has no CA fingerprint configured, so it cannot render kickstarts (the agent pins the CA with it)');
        }
        // One outstanding enrolment token per node: a repeated fetch gets the same kickstart.
        const enrol = await store.tokens.current(name, { ttlMs: tokenTtlMs, actor: ACTOR, ip });
        const ks = await renderNodeKickstart(deps, node, { token: enrol.token, callbackToken: token });
        const details = { ip, ...use, enrolToken: enrol.reused ? 'reused' : 'issued', enrolTokenExpiresAt: enrol.expiresAt };
        await appendNodeEvent(store, name, EVENT.kickstartFetched, details);
        await signal(req, deps, { node: name, kind: EVENT.kickstartFetched, details });
        return sendText(reply, ks);
      },
    );

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
      async (req) => {
        const { node: name, event } = req.params;
        const ip = clientIp(req);
        const node = await store.nodes.get(name);
        if (!node) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
        const token = req.query.token;
        const kind = event === 'install-started' ? EVENT.installStarted : event === 'install-failed' ? EVENT.installFailed : EVENT.installFinished;
        const details: Record<string, unknown> = { ip };
        if (event === 'install-failed') Object.assign(details, logDetails(req.body));
        const refuse = async (why: string): Promise<never> => {
          await appendNodeEvent(store, name, EVENT.callbackRefused, { event, reason: why, ip });
          throw new FleetError('auth.forbidden', `${event} callback for ${name} refused: ${why}`, { node: name });
        };
        if (!token) return refuse('no token');
        try {
          if (event === 'install-finished') {
            // The install is over: the install token is used up, every other token of the node
            // (the enrolment token of the kickstart copy left on disk) revoked, and the event
            // written, in one transaction.
            await store.transaction(async (tx) => {
              const use = await tx.tokens.consume(token, { node: name, purpose: INSTALL_TOKEN_PURPOSE, actor: ACTOR, ip });
              if (use.previousIp !== null && use.previousIp !== ip) details.previousIp = use.previousIp;
              await tx.tokens.revokeAll(name, { actor: ACTOR, cause: kind, reason: 'install-finished' });
              await tx.events.append({ node: name, kind, actor: ACTOR, details });
            });
          } else {
            Object.assign(details, await verifyInstallToken(store, token, name, ip));
            await appendNodeEvent(store, name, kind, details);
          }
        } catch (e) {
          const why = refusal(e);
          if (why === undefined) throw e;
          return refuse(why);
        }
        await signal(req, deps, { node: name, kind, details });
        return { recorded: kind };
      },
    );

    registerStaticTree(scope, {
      prefix: '/agent',
      root: deps.agentDir,
      missingMessage: 'the fleet agent bundle is not built or not configured on this server (agent directory): nodes cannot download fleet-agent',
    });
  });

  // --- static trees: an install fetches hundreds of packages, so no rate limit here
  await app.register(async (scope) => {
    registerStaticTree(scope, { prefix: '/repo', root: deps.staticRoots?.repo, missingMessage: 'no repository tree is configured on this server (/repo)' });
    registerStaticTree(scope, { prefix: '/images', root: deps.staticRoots?.images, missingMessage: 'no images tree is configured on this server (/images)' });
  });
}

/** The install-failed body (text/plain log tail, or JSON {log?, message?}) as event details, its end kept. */
export function logDetails(body: unknown): Record<string, unknown> {
  let text = '';
  let message: string | undefined;
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body)) text = body.toString('utf8');
  else if (body && typeof body === 'object') {
    const b = body as { log?: unknown; message?: unknown };
    if (typeof b.log === 'string') text = b.log;
    if (typeof b.message === 'string') message = b.message.slice(0, 300);
  }
  const clean = text.replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  const truncated = clean.length > MAX_STORED_LOG;
  return {
    ...(message !== undefined ? { message } : {}),
    log: truncated ? clean.slice(clean.length - MAX_STORED_LOG) : clean,
    logBytes: Buffer.byteLength(text, 'utf8'),
    logTruncated: truncated,
  };
}

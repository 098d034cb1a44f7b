/**
 * The dashboard on the admin face (issue 17 item 2, docs/decisions/0018,
 * docs/operations.md "Dashboard"): server-rendered pages under /ui, one
 * small script and one stylesheet shipped in the package, no CDN.
 *
 *   GET  /, /ui                    redirect to /ui/                                  public
 *   GET  /ui/login                 the login form (paste an API token)              public
 *   POST /ui/login                 token → session cookie                           public
 *   GET  /ui/assets/:file          dashboard.js, dashboard.css                      public
 *   POST /ui/logout                ends the session                                 read-only + CSRF
 *   GET  /ui/                      overview                                          read-only
 *   GET  /ui/nodes                 nodes table (nodeset/@group, state, sort, pages) read-only
 *   GET  /ui/nodes/:name           a node's story, BMC identity, inventory          read-only
 *   GET  /ui/events                the event stream (state changes), live rows      read-only
 *   POST /ui/actions               power/reinstall/cancel: confirm, then do         operator + CSRF
 *   GET  /ui/timeline              reinstall timeline (nodeset, since, until)        read-only
 *   GET  /ui/timeline.svg          the same picture as an SVG file                   read-only
 *   GET  /ui/discovery             discovered machines, their hardware, the naming plan read-only
 *   POST /ui/discovery             accept or reject one machine: confirm, then do    admin + CSRF
 *
 * Auth, like the API's (server/http/app.ts), is a hook of the plugin scope
 * the routes live in, so it runs for the route the router matched: the
 * session cookie (server/dashboard/session.ts) names a session whose token
 * is checked again (principalOfDigest); the role the matched route needs
 * is in its options (`config.role`, from the table in server/auth/roles.ts).
 * Every request but a GET also needs the session's CSRF token (the `_csrf`
 * field of a form, or the X-CSRF-Token header), compared in constant time,
 * and, when the browser sends one, an Origin of this server.
 */
import { readFileSync, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { consoleLogPath } from '../console/log.js';
import { consoleTail } from '../dashboard/console-tail.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetError, toFleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import { requiredRole, roleAllows, ROLES, type Role } from '../auth/roles.js';
import { authenticate, authorize, principalOfDigest } from '../auth/users.js';
import { runBmcOperation } from '../bmc/operation.js';
import type { ProviderContext } from '../bmc/registry.js';
import { SessionStore, SESSION_COOKIE, CSRF_FIELD, CSRF_HEADER, clearedSessionCookie, csrfMatches, parseCookies, sessionCookie, type Session } from '../dashboard/session.js';
import {
  ACTIONS,
  SORT_KEYS,
  confirmPage,
  errorPage,
  isAction,
  loginPage,
  nodePage,
  nodesPage,
  overviewPage,
  resultPage,
  type ActionResultRow,
  type NodeRow,
  type NodesQueryView,
  type OverviewData,
  type SortKey,
  type Viewer,
  timelinePage,
  discoveryPage,
  discoveryConfirmPage,
  messagePage,
} from '../dashboard/pages.js';
import { currentPlan } from '../discovery/index.js';
import { acceptMachines, rejectMachines } from '../discovery/service.js';
import { bmcOwners } from '../discovery/facts.js';
import type { Inspection } from '../discovery/inspection.js';
import { renderTimeline } from '../dashboard/timeline.js';
import { timelineData, type TimelineData } from '../dashboard/timeline-data.js';
import { compareInventories } from '../../common/inventory/diff.js';
import { inventoryFromStored } from '../../common/inventory/proto.js';
import type { Conductor } from '../lifecycle/index.js';
import { ALL_STATES, S as STATE } from '../lifecycle/states.js';
import { nodeStatus, withStoredFlags } from '../lifecycle/status.js';
import { DEFAULT_EXPAND_LIMIT, foldNames } from '../nodeset/index.js';
import { NODE_FLAG } from '../store/repos/flags.js';
import type { NodeRecord, Store } from '../store/index.js';
import { eventStreamer, type EventStreamSettings } from './event-stream.js';
import { ERROR_CODE_HEADER } from './errors.js';
import { expandNodeset } from './nodesets.js';
import { actorOf } from './routes/actor.js';
import { refuseOnFailedChecks, type LifecycleRouteDeps } from './routes/lifecycle.js';

/** Dashboard routes that answer without a session (route urls as registered). */
export const DASHBOARD_PUBLIC_ROUTES: ReadonlySet<string> = new Set(['GET /', 'GET /ui', 'GET /ui/login', 'POST /ui/login', 'GET /ui/assets/:file']);

export interface DashboardDeps {
  store: Store;
  nodesetLimit?: number;
  conductor?: Conductor;
  preflight?: LifecycleRouteDeps['preflight'];
  bmc?: { providers: ProviderContext; concurrency?: number; timeoutMs?: number; retries?: number };
  /** The listener is TLS: the cookie gets Secure. */
  secure: boolean;
  /** The sessions (tests pass one with their own clock); default a new in-memory store. */
  sessions?: SessionStore;
  stream?: EventStreamSettings;
  clock?: () => Date;
  /** After discovery created nodes (DHCP reservations follow). */
  onNodesChanged?: () => Promise<void>;
  /** DATA/console (server/console/log.ts): operators see the tail of a node's console log; absent: none. */
  consoleLogDir?: string;
  /** An enrolled agent not heard from for this long is stale on the overview. Default 900 s. */
  staleAgentSeconds?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The dashboard session the request's cookie names (set by the dashboard scope's auth hook). */
    dashboardSession?: { id: string; session: Session };
  }
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

/** Directory of the dashboard's assets (works from server/http and from dist/server/http). */
function assetsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const c of [path.join(dir, 'dashboard', 'assets'), path.join(dir, 'server', 'dashboard', 'assets')]) {
      if (existsSync(path.join(c, 'dashboard.js'))) return c;
    }
    dir = path.dirname(dir);
  }
  throw new FleetError('internal', 'server/dashboard/assets not found next to the dashboard module');
}

const ASSET_TYPES: Record<string, string> = { 'dashboard.js': 'text/javascript; charset=utf-8', 'dashboard.css': 'text/css; charset=utf-8' };

function routeKey(method: string, url: string): string {
  return `${method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase()} ${url}`;
}

/** Fastify's own refusals (a body too large, a content type no parser takes) as the catalogue's codes. */
function fromFastify(err: unknown): FleetError | undefined {
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new FleetError('request.too_large', 'request body too large');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new FleetError('request.invalid', e.message ?? 'bad request');
  return undefined;
}

/** A form field or JSON property of the body, as a string (undefined when absent or not a string). */
function field(body: unknown, name: string): string | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

function parseNodesQuery(q: Record<string, unknown>): NodesQueryView {
  const str = (k: string): string => (typeof q[k] === 'string' ? (q[k] as string) : '');
  const nodeset = str('nodeset').trim().slice(0, 4096);
  const state = (ALL_STATES as readonly string[]).includes(str('state')) ? str('state') : '';
  const sort = (SORT_KEYS as readonly string[]).includes(str('sort')) ? (str('sort') as SortKey) : 'name';
  const dir = str('dir') === 'desc' ? 'desc' : 'asc';
  const page = Math.max(1, Math.min(1_000_000, Number.parseInt(str('page'), 10) || 1));
  const size = Math.max(10, Math.min(500, Number.parseInt(str('size'), 10) || 100));
  return { nodeset, state, sort, dir, page, size };
}

export async function registerDashboard(app: FastifyInstance, deps: DashboardDeps): Promise<void> {
  const sessions = deps.sessions ?? new SessionStore();
  const now = (): Date => (deps.clock ?? (() => new Date()))();
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;
  const expand = (expr: string): Promise<string[]> => expandNodeset(deps.store, expr, limit);
  const assets = new Map<string, Buffer>();
  const dir = assetsDir();
  for (const name of Object.keys(ASSET_TYPES)) assets.set(name, readFileSync(path.join(dir, name)));
  const staleAfter = deps.staleAgentSeconds ?? 900;

  await app.register(async (ui) => {
    const stream = eventStreamer(ui, deps.store, deps.stream);
    const stopping = new AbortController();
    ui.addHook('preClose', async () => {
      stopping.abort(new FleetError('unavailable', 'not done: the server is stopping'));
    });

    // Forms post application/x-www-form-urlencoded; only this scope reads them.
    ui.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
      const out: Record<string, string> = {};
      for (const [k, v] of new URLSearchParams(body as string)) if (!Object.hasOwn(out, k)) out[k] = v;
      done(null, out);
    });

    // Each route's role into its options, as the API scope does (roles table; absent: admin).
    ui.addHook('onRoute', (r) => {
      const config = (r.config ?? {}) as { role?: unknown; public?: boolean };
      const methods = [r.method].flat().map(String);
      const isPublic = methods.every((m) => DASHBOARD_PUBLIC_ROUTES.has(routeKey(m, r.url)));
      const role = methods.map((m) => requiredRole(m, r.url, config.role)).reduce<Role>((a, b) => (ROLES.indexOf(b) > ROLES.indexOf(a) ? b : a), 'read-only');
      r.config = { ...config, role, public: isPublic } as typeof r.config;
      r.schema = { ...(r.schema ?? {}), hide: true } as typeof r.schema;
    });

    // Pages answer errors as pages (with the catalogue's code in the header, as every error of the API).
    ui.setErrorHandler((err, req, reply) => {
      const fe = err instanceof FleetError ? err : (fromFastify(err) ?? toFleetError(err));
      if (fe.code === 'internal') req.log.error({ err }, 'internal error');
      const message = fe.code === 'internal' ? 'internal error; see the server log' : fe.message;
      const s = req.dashboardSession?.session;
      const viewer = s && req.principal ? viewerOf(req.principal, s) : null;
      void reply.status(fe.http).header(ERROR_CODE_HEADER, fe.code).headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(errorPage(viewer, fe.http, fe.code, message));
    });

    const viewerOf = (p: { user: string; role: Role }, s: Session): Viewer => ({ user: p.user, role: p.role, csrf: s.csrf, canAct: roleAllows(p.role, 'operator'), canAdmin: roleAllows(p.role, 'admin') });

    // First in the scope: the session and the role of the matched route, before any body is read.
    ui.addHook('onRequest', async (req, reply) => {
      void reply.headers(PAGE_HEADERS);
      const route = req.routeOptions;
      const config = (route.config ?? {}) as { role?: Role; public?: boolean };
      if (config.public) return;
      const method = String(route.method);
      const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      const session = sessions.get(id);
      const isPage = (method === 'GET' || method === 'HEAD') && route.url !== '/ui/events';
      if (!session || id === undefined) {
        if (isPage) {
          await reply.redirect('/ui/login', 303);
          return reply;
        }
        throw new FleetError('auth.missing', id === undefined ? 'no dashboard session: log in at /ui/login' : 'the dashboard session ended: log in again at /ui/login');
      }
      let p;
      try {
        p = await principalOfDigest(deps.store.users, { id: session.tokenId, hash: session.tokenHash }, now());
      } catch (e) {
        // The token behind the session is no longer good (revoked, expired, user disabled or removed): the session ends with it.
        sessions.delete(id);
        void reply.header('set-cookie', clearedSessionCookie({ secure: deps.secure }));
        if (isPage) {
          await reply.redirect('/ui/login', 303);
          return reply;
        }
        throw e;
      }
      authorize(p, requiredRole(method, route.url ?? '', config.role), `${method} ${route.url}`);
      req.principal = p;
      req.dashboardSession = { id, session };
      if (method !== 'GET' && method !== 'HEAD') checkOrigin(req);
    });

    // After the body is parsed: every state-changing request carries the session's CSRF token.
    ui.addHook('preHandler', async (req) => {
      const method = req.method.toUpperCase();
      const config = (req.routeOptions.config ?? {}) as { public?: boolean };
      if (config.public || method === 'GET' || method === 'HEAD') return;
      const s = req.dashboardSession?.session;
      const presented = req.headers[CSRF_HEADER] ?? field(req.body, CSRF_FIELD);
      if (!s || !csrfMatches(s.csrf, presented)) {
        throw new FleetError('auth.forbidden', presented === undefined ? 'missing CSRF token: reload the page and try again' : 'wrong CSRF token: reload the page and try again', { csrf: true });
      }
    });

    const page = (reply: FastifyReply, body: string, status = 200): FastifyReply => reply.status(status).type('text/html; charset=utf-8').send(body);
    const viewer = (req: FastifyRequest): Viewer => viewerOf(req.principal!, req.dashboardSession!.session);

    ui.get('/', async (_req, reply) => reply.redirect('/ui/', 303));
    ui.get('/ui', async (_req, reply) => reply.redirect('/ui/', 303));

    ui.get<{ Params: { file: string } }>('/ui/assets/:file', async (req, reply) => {
      const body = Object.hasOwn(ASSET_TYPES, req.params.file) ? assets.get(req.params.file) : undefined;
      if (!body) throw new FleetError('not_found', 'no such dashboard asset');
      return reply.type(ASSET_TYPES[req.params.file]!).header('cache-control', 'no-cache').send(body);
    });

    ui.get('/ui/login', async (req, reply) => {
      if (sessions.get(parseCookies(req.headers.cookie).get(SESSION_COOKIE))) return reply.redirect('/ui/', 303);
      return page(reply, loginPage());
    });

    ui.post('/ui/login', async (req, reply) => {
      checkOrigin(req);
      const token = field(req.body, 'token')?.trim();
      if (!token) return page(reply.header(ERROR_CODE_HEADER, 'auth.missing'), loginPage('Paste an API token.'), 401);
      let p;
      try {
        p = await authenticate(deps.store.users, `Bearer ${token}`, now());
      } catch (e) {
        const fe = toFleetError(e);
        if (fe.code !== 'auth.invalid' && fe.code !== 'auth.missing') throw e;
        req.log.info({ ip: req.ip }, 'dashboard login refused');
        // Never echoes what was pasted.
        return page(reply.header(ERROR_CODE_HEADER, 'auth.invalid'), loginPage('That token is not valid (unknown, expired, revoked, or its user is disabled).'), 401);
      }
      // A session id presented before login is never reused (no fixation): a new one each time.
      sessions.delete(parseCookies(req.headers.cookie).get(SESSION_COOKIE));
      const { id, session } = sessions.create(p.user, { tokenId: p.tokenId, hash: p.hash });
      req.log.info({ user: p.user, role: p.role, ip: req.ip }, 'dashboard login');
      return reply
        .header('set-cookie', sessionCookie(id, { secure: deps.secure, maxAgeSeconds: (session.expiresAt - session.createdAt) / 1000 }))
        .redirect('/ui/', 303);
    });

    ui.post('/ui/logout', async (req, reply) => {
      sessions.delete(req.dashboardSession?.id);
      return reply.header('set-cookie', clearedSessionCookie({ secure: deps.secure })).redirect('/ui/login', 303);
    });

    ui.get('/ui/', async (req, reply) => {
      const liveAfter = await deps.store.events.lastId();
      return page(reply, overviewPage({ ...viewer(req), liveAfter }, await overview()));
    });

    ui.get<{ Querystring: Record<string, unknown> }>('/ui/nodes', async (req, reply) => {
      const liveAfter = await deps.store.events.lastId();
      const query = parseNodesQuery(req.query ?? {});
      let names: string[] | undefined;
      let error: string | undefined;
      if (query.nodeset) {
        try {
          names = await expand(query.nodeset);
        } catch (e) {
          const fe = toFleetError(e);
          if (fe.code === 'internal') throw e;
          error = fe.message;
          names = [];
        }
      }
      const all = await deps.store.nodes.list(names ? { names } : {});
      const found = new Set(all.map((n) => n.name));
      const missing = names && !error ? names.filter((n) => !found.has(n)) : [];
      const states = new Map<string, number>();
      for (const n of all) states.set(n.state, (states.get(n.state) ?? 0) + 1);
      const matching = query.state ? all.filter((n) => n.state === query.state) : all;
      const sorted = sortNodes(matching, query.sort, query.dir);
      const pages = Math.max(1, Math.ceil(sorted.length / query.size));
      if (query.page > pages) query.page = pages;
      const slice = sorted.slice((query.page - 1) * query.size, query.page * query.size);
      // Only the page's nodes are read in depth (their events): a 10,000-node fleet costs one page.
      const flags = await deps.store.flags.byNode(slice.map((n) => n.name));
      const profiles = await deps.store.profiles.list();
      const installs = new Map(profiles.map((p) => [p.name, p.os.install === 'kickstart' ? p.os.install : `${p.os.install} ${p.os.image ?? '?'}`]));
      const methods = new Map(profiles.map((p) => [p.name, p.os.install]));
      const t = now();
      const rows: NodeRow[] = [];
      for (const n of slice) {
        const st = withStoredFlags(await nodeStatus(deps.store, n, t, methods), flags.get(n.name) ?? []);
        // The image the agent says the node runs; else the one its last plan named (an install not booted yet).
        const installed = st.image ? { image: st.image.name, digest: st.image.digest } : /^(image|stateless) /.test(installs.get(n.profile) ?? '') ? await lastImage(n.name) : null;
        rows.push({ name: n.name, profile: n.profile, install: installs.get(n.profile) ?? '?', installed, state: n.state, since: n.stateSince, inStateSeconds: st.inStateSeconds, lastEvent: st.lastEvent, failure: st.failure, flags: st.flags });
      }
      return page(
        reply,
        nodesPage({ ...viewer(req), liveAfter }, {
          query,
          total: sorted.length,
          rows,
          states: [...states].sort((a, b) => ALL_STATES.indexOf(a[0] as never) - ALL_STATES.indexOf(b[0] as never)),
          missingFolded: missing.length ? foldNames(missing) : '',
          ...(error !== undefined ? { error } : {}),
        }),
        error !== undefined ? 400 : 200,
      );
    });

    ui.get<{ Params: { name: string } }>('/ui/nodes/:name', async (req, reply) => {
      const liveAfter = await deps.store.events.lastId();
      const n = await deps.store.nodes.get(req.params.name);
      if (!n) throw new FleetError('node.not_found', `no node named '${req.params.name}'`);
      const flags = await deps.store.flags.list([n.name]);
      const st = withStoredFlags(await nodeStatus(deps.store, n, now()), flags);
      const events = await deps.store.events.list({ node: n.name, order: 'desc', limit: 200 });
      // The console may show what an installer typed or printed: operators only, as the console itself.
      const v = { ...viewer(req), liveAfter };
      const consoleText = v.canAct && deps.consoleLogDir !== undefined ? await readTail(consoleLogPath(deps.consoleLogDir, n.name), 16 * 1024) : null;
      const [inv, before] = await deps.store.inventory.history(n.name, 2);
      const cmp = inv && before ? compareInventories(inventoryFromStored(before.inventory), inventoryFromStored(inv.inventory)) : undefined;
      return page(
        reply,
        nodePage(v, {
          name: n.name,
          profile: n.profile,
          state: n.state,
          since: n.stateSince,
          inStateSeconds: st.inStateSeconds,
          pet: n.pet,
          armed: n.armed,
          ip: n.ip,
          macs: n.macs,
          lastSeen: n.lastSeen,
          deadline: st.deadline,
          waitingFor: st.waitingFor,
          failure: st.failure,
          flags: flags.map((f) => ({ flag: f.flag, reason: f.reason })),
          // The identity, never a secret: the credential set's name only.
          bmc: n.bmc ? { address: n.bmc.address, port: n.bmc.port ?? null, protocol: n.bmc.protocol, credentials: n.bmc.credentials } : null,
          events: events.events,
          moreEvents: events.nextCursor !== null,
          inventory: inv ? { reportedAt: inv.reportedAt, digest: inv.digest, inventory: inv.inventory } : null,
          console: consoleText === null ? null : consoleTail(consoleText),
          inventoryDiff:
            cmp && before ? { beforeAt: before.reportedAt, refused: cmp.refused, changes: cmp.changes.map((c) => c.message), notCompared: cmp.notCompared.map((u) => u.section) } : null,
        }),
      );
    });

    // A HEAD of an endless stream would hold its socket until the stream's own limits end it.
    ui.get<{ Querystring: Record<string, unknown> }>('/ui/events', { exposeHeadRoute: false }, async (req, reply) => {
      const nodeset = typeof req.query?.nodeset === 'string' && req.query.nodeset !== '' ? req.query.nodeset : undefined;
      const names = nodeset !== undefined ? await expand(nodeset) : undefined;
      // after: the page's last event id (data-after), so changes between the page and its stream are not lost.
      // A reconnect's Last-Event-ID wins (the stream reads it when no after is given): nothing is sent twice.
      const afterText = typeof req.query?.after === 'string' && req.headers['last-event-id'] === undefined ? req.query.after : '';
      const after = /^\d{1,15}$/.test(afterText) ? Number(afterText) : undefined;
      await stream(req, reply, { ...(names ? { names } : {}), kinds: [EVENT.stateChanged], ...(after !== undefined ? { after } : {}) });
    });

    ui.get<{ Querystring: Record<string, unknown> }>('/ui/timeline', async (req, reply) => {
      const tl = await timeline(req.query ?? {});
      const svg = renderTimeline(tl.rows, { since: tl.from, until: tl.to, title: tl.nodeset ? `fleet ${tl.nodeset}` : 'fleet' });
      return page(
        reply,
        timelinePage(viewer(req), { nodeset: tl.nodeset, since: tl.since, until: tl.until, rows: tl.rows.length, svg, truncated: tl.truncated, ...(tl.error !== undefined ? { error: tl.error } : {}) }),
        tl.error !== undefined ? 400 : 200,
      );
    });

    ui.get<{ Querystring: Record<string, unknown> }>('/ui/timeline.svg', async (req, reply) => {
      const tl = await timeline(req.query ?? {});
      if (tl.error !== undefined) throw new FleetError('request.invalid', tl.error);
      const svg = renderTimeline(tl.rows, { since: tl.from, until: tl.to, title: tl.nodeset ? `fleet ${tl.nodeset}` : 'fleet' });
      return reply
        .type('image/svg+xml; charset=utf-8')
        .header('content-disposition', 'attachment; filename="fleet-timeline.svg"')
        .send(`<?xml version="1.0" encoding="UTF-8"?>\n${svg}`);
    });

    ui.get('/ui/discovery', async (req, reply) => {
      const machines = await deps.store.discovered.list({ unknownOnly: true });
      const owners = bmcOwners(machines);
      const { policy, rules, plan } = await currentPlan(deps.store);
      return page(
        reply,
        discoveryPage(viewer(req), {
          policy,
          rules,
          machines: machines.slice(0, 5000).map((m) => ({
            mac: m.mac,
            ip: m.ip,
            hostname: m.hostname,
            arch: m.arch,
            firstSeen: m.firstSeen,
            lastSeen: m.lastSeen,
            hardware: m.inspection ? hardwareLine(m.inspection) : null,
            bmcOf: owners.get(m.mac) ?? null,
          })),
          planned: plan.planned.map((p) => ({
            mac: p.mac,
            name: p.name,
            rule: p.rule,
            ip: p.ip,
            profile: p.profile,
            onAccept: p.onAccept,
            bmc: p.bmc ? `${p.bmc.address}:${p.bmc.port} ${p.bmc.protocol} (${p.bmc.credentials})` : null,
            notes: p.notes,
          })),
          unplanned: plan.unplanned,
          rejected: plan.rejected,
        }),
      );
    });

    ui.post('/ui/discovery', async (req, reply) => {
      const action = field(req.body, 'action');
      const mac = field(req.body, 'mac')?.trim().toLowerCase();
      const confirm = field(req.body, 'confirm');
      if (action !== 'accept' && action !== 'reject') throw new FleetError('request.invalid', 'unknown action; one of: accept, reject');
      if (!mac || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw new FleetError('request.invalid', 'no MAC address given');
      const { plan } = await currentPlan(deps.store);
      const planned = plan.planned.find((p) => p.mac === mac) ?? null;
      if (action === 'accept' && !planned) throw new FleetError('conflict', `${mac} is not planned now (see the naming plan): nothing was accepted`);
      if (confirm === undefined) return page(reply, discoveryConfirmPage(viewer(req), action, mac, planned));
      const actor = actorOf(req);
      if (action === 'reject') {
        if (confirm !== mac) throw new FleetError('request.invalid', 'the confirmation names another machine');
        const [r] = await rejectMachines(deps.store, [mac], actor);
        return page(reply, messagePage(viewer(req), 'Rejected', [`${mac}: ${r?.already ? 'was rejected already' : `rejected at ${r?.rejectedAt ?? ''}`}`]));
      }
      // Accepted as the name that was shown, or not at all (the plan may have moved in between).
      const res = await acceptMachines(
        {
          store: deps.store,
          ...(deps.conductor ? { conductor: deps.conductor } : {}),
          ...(deps.preflight ? { preflight: deps.preflight } : {}),
          ...(deps.onNodesChanged ? { onNodesChanged: deps.onNodesChanged } : {}),
        },
        { macs: [mac], expect: { [mac]: confirm }, force: false, actor, via: 'command' },
      );
      const lines = res.accepted.map(
        (a) => `${a.mac} → node ${a.name}${a.install ? (a.install.ok ? `: install started (${a.install.state ?? ''})` : `: install not started: ${a.install.error?.message ?? ''}`) : ''}${a.bmcSetup ? `: BMC account ${a.bmcSetup.account} to be set up first` : ''}`,
      );
      req.log.info({ mac, accepted: res.accepted.length }, 'dashboard discovery accept');
      return page(reply, messagePage(viewer(req), 'Accepted', lines));
    });

    ui.post('/ui/actions', async (req, reply) => {
      const action = field(req.body, 'action');
      const nodeset = field(req.body, 'nodeset')?.trim();
      const confirm = field(req.body, 'confirm');
      if (!isAction(action)) throw new FleetError('request.invalid', `unknown action; one of: ${Object.keys(ACTIONS).join(', ')}`);
      if (!nodeset) throw new FleetError('request.invalid', 'no nodeset given');
      const names = await expand(nodeset);
      if (names.length === 0) throw new FleetError('request.invalid', `nodeset ${nodeset} names no node`);
      const folded = foldNames(names);
      if (confirm === undefined) return page(reply, confirmPage(viewer(req), action, nodeset, names, folded));
      // What was confirmed must be what would be done: a group that changed in between is confirmed again.
      if (confirm !== folded) return page(reply.header(ERROR_CODE_HEADER, 'conflict'), confirmPage(viewer(req), action, nodeset, names, folded), 409);
      const actor = actorOf(req);
      let rows: ActionResultRow[];
      if (action === 'reinstall' || action === 'cancel') {
        if (!deps.conductor) throw new FleetError('not_implemented', 'this server runs without the lifecycle conductor');
        // force (a box on the confirmation page): pets too, and past failed doctor checks, as fleet reinstall --force.
        const force = action === 'reinstall' && field(req.body, 'force') === 'yes';
        if (action === 'reinstall' && deps.preflight && !force) await refuseOnFailedChecks(deps.store, deps.preflight, names, undefined);
        const results = action === 'reinstall' ? await deps.conductor.reinstall(names, { actor, force }) : await deps.conductor.cancel(names, { actor });
        rows = results.map((r) => ({
          node: r.node,
          ok: r.ok,
          text: r.error ? `${r.error.code}: ${r.error.message}` : `${r.from ?? ''}${r.from && r.state ? ' → ' : ''}${r.state ?? ''}${r.note ? ` (${r.note})` : ''}`,
        }));
      } else {
        if (!deps.bmc) throw new FleetError('not_implemented', 'this server runs without BMC access');
        const op = action === 'power-on' ? 'on' : action === 'power-off' ? 'off' : 'cycle';
        const results = await runBmcOperation(deps.store, names, { kind: 'power', op }, {
          actor,
          providers: deps.bmc.providers,
          concurrency: deps.bmc.concurrency,
          timeoutMs: deps.bmc.timeoutMs,
          retries: deps.bmc.retries,
          signal: stopping.signal,
        });
        rows = results.map((r) => ({
          node: r.node,
          ok: r.ok,
          text: r.error ? `${r.error.code}: ${r.error.message}` : `power ${r.power ?? op}${r.unconfirmed ? ` (unconfirmed; read back: ${r.unconfirmed.power ?? 'unreadable'})` : ''}`,
        }));
      }
      req.log.info({ action, nodes: names.length, ok: rows.filter((r) => r.ok).length }, 'dashboard action');
      return page(reply, resultPage(viewer(req), action, rows));
    });
  });

  /** The image (and digest) a node last fetched its install plan for (boot.plan_fetched), or null. */
  const lastImage = async (node: string): Promise<{ image: string; digest: string } | null> => {
    const e = (await deps.store.events.list({ node, kinds: [EVENT.planFetched], order: 'desc', limit: 1 })).events[0];
    const d = (e?.details ?? {}) as { image?: unknown; digest?: unknown };
    return typeof d.image === 'string' && typeof d.digest === 'string' ? { image: d.image, digest: d.digest } : null;
  };

  const timeline = (q: Record<string, unknown>): Promise<TimelineData> =>
    timelineData(deps.store, expand, { nodeset: typeof q.nodeset === 'string' ? q.nodeset : '', since: typeof q.since === 'string' ? q.since : '', until: typeof q.until === 'string' ? q.until : '' }, now());

  async function overview(): Promise<OverviewData> {
    const nodes = await deps.store.nodes.list();
    const byState = new Map<string, number>();
    const byProfile = new Map<string, number>();
    const counts: Record<string, Record<string, number>> = {};
    for (const n of nodes) {
      byState.set(n.state, (byState.get(n.state) ?? 0) + 1);
      byProfile.set(n.profile, (byProfile.get(n.profile) ?? 0) + 1);
      const row = (counts[n.state] ??= {});
      row[n.profile] = (row[n.profile] ?? 0) + 1;
    }
    const stateOrder = (s: string): number => ALL_STATES.indexOf(s as never);
    const states = [...byState.keys()].sort((a, b) => stateOrder(a) - stateOrder(b));
    const profiles = [...byProfile.keys()].sort();
    const failedNodes = nodes.filter((n) => n.state === STATE.failed || n.state === STATE.held).sort((a, b) => b.stateSince.localeCompare(a.stateSince));
    const t = now();
    const failed: OverviewData['failed'] = [];
    for (const n of failedNodes.slice(0, 50)) {
      const st = await nodeStatus(deps.store, n, t);
      failed.push({ name: n.name, state: n.state, step: st.failure?.step ?? 'unknown', reason: st.failure?.reason ?? 'unknown', time: st.failure?.time ?? n.stateSince });
    }
    const mismatches = (await deps.store.flags.list())
      .filter((f) => f.flag === NODE_FLAG.bmcMismatch)
      .slice(0, 200)
      .map((f) => ({ name: f.node, reason: f.reason, since: f.since }));
    const loops = await deps.store.events.list({ kinds: [EVENT.loopSuspect], order: 'desc', limit: 50 });
    const seen = new Set<string>();
    const loopSuspects: OverviewData['loopSuspects'] = [];
    for (const e of loops.events) {
      if (e.node === null || seen.has(e.node)) continue;
      seen.add(e.node);
      const reason = (e.details as { reason?: unknown } | null)?.reason;
      loopSuspects.push({ name: e.node, time: e.time, reason: typeof reason === 'string' ? reason : 'back on the netboot path after its install' });
    }
    const byName = new Map(nodes.map((n) => [n.name, n]));
    const staleAgents: OverviewData['staleAgents'] = [];
    for (const a of await deps.store.agents.list()) {
      const n = byName.get(a.node);
      if (!n) continue;
      const age = n.lastSeen ? (t.getTime() - Date.parse(n.lastSeen)) / 1000 : null;
      if (age === null || age > staleAfter) staleAgents.push({ name: n.name, lastSeen: n.lastSeen, ageSeconds: age });
      if (staleAgents.length >= 200) break;
    }
    return {
      total: nodes.length,
      byState: states.map((s) => [s, byState.get(s)!]),
      byProfile: profiles.map((p) => [p, byProfile.get(p)!]),
      matrix: { states, profiles, counts },
      failed,
      failedTotal: failedNodes.length,
      mismatches,
      loopSuspects,
      staleAgents,
      staleAfterSeconds: staleAfter,
    };
  }
}

/** The last `bytes` of a file as text; null when it does not exist or cannot be read. */
async function readTail(file: string, bytes: number): Promise<string | null> {
  let fh;
  try {
    fh = await open(file, 'r');
    const { size } = await fh.stat();
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString('utf8');
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

/** One line of an inspected machine's hardware: "Dell R650, serial X, Xeon × 2, 256 GiB, 2 disks, 4 NICs, uefi". */
export function hardwareLine(i: Inspection): string {
  const sys = [i.system.manufacturer, i.system.model].filter(Boolean).join(' ');
  return [
    sys || 'unknown system',
    i.system.serial ? `serial ${i.system.serial}` : '',
    i.cpu.model ? `${i.cpu.model}${i.cpu.count > 1 ? ` × ${i.cpu.count}` : ''}` : `${i.cpu.count} CPU${i.cpu.count === 1 ? '' : 's'}`,
    `${Math.round(i.memoryMiB / 1024)} GiB`,
    `${i.disks.length} disk${i.disks.length === 1 ? '' : 's'}`,
    `${i.nics.length} NIC${i.nics.length === 1 ? '' : 's'}`,
    i.firmware,
  ]
    .filter(Boolean)
    .join(', ');
}

/** A browser's Origin, when it sends one, must be this server (defence beside the CSRF token and SameSite=Strict). */
function checkOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined || origin === '') return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new FleetError('auth.forbidden', 'request from a foreign origin refused');
  }
  if (host !== req.headers.host) throw new FleetError('auth.forbidden', 'request from a foreign origin refused', { csrf: true });
}

/** Nodes in the table's order: by name (the store's natural order), or by a column then name; `since` ascending: shortest time in state first. */
export function sortNodes(nodes: NodeRecord[], key: SortKey, dir: 'asc' | 'desc'): NodeRecord[] {
  const indexed = nodes.map((n, i) => ({ n, i }));
  const value = (n: NodeRecord): string | number => (key === 'state' ? ALL_STATES.indexOf(n.state as never) : key === 'profile' ? n.profile : key === 'since' ? -Date.parse(n.stateSince) : 0);
  indexed.sort((a, b) => {
    const va = value(a.n);
    const vb = value(b.n);
    const c = va < vb ? -1 : va > vb ? 1 : 0;
    return c !== 0 ? c : a.i - b.i;
  });
  const out = indexed.map((x) => x.n);
  return dir === 'desc' ? out.reverse() : out;
}

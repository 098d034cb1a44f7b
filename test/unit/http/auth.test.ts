/**
 * The admin API is authenticated on the route the router matched, never by
 * reading the raw URL (DESIGN §9). For every admin route — taken from the
 * app's own route table, so a new route is covered without editing this
 * file — a table of spellings (percent-encoding of each character, case,
 * duplicate slashes, dot segments, trailing characters, absolute form) is
 * sent without a token over a real socket, exactly as written. None may
 * reach a handler: the answer is 401 (the route matched, the hook refused),
 * 404 (no route) or 400 (unparseable), and nothing in the store changes.
 *
 * The same table against a server guarded the old way (a hook reading the
 * raw URL) finds the bypass, so the table can fail. And the boot face
 * answers no admin route under any spelling, even with the admin token.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBearer } from '../../../server/auth/api-token.js';
import { buildAdminApp, buildBootApp, PUBLIC_ADMIN_PATHS, routesOf, type RouteEntry } from '../../../server/http/app.js';
import { DASHBOARD_PUBLIC_ROUTES } from '../../../server/http/dashboard.js';
import { ERROR_CODE_HEADER, installErrorHandling, NO_ROUTE } from '../../../server/http/errors.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { CA_FP, SERVER } from '../../helpers/golden.js';

const TOKEN = 'test-token-0123456789abcdef0123456789';

interface Answer {
  status: number;
  /** The error catalogue code from the x-fleet-error header, if any. */
  code?: string;
  /** The Location header of a redirect (a dashboard page without a session goes to /ui/login). */
  location?: string;
}

/** One HTTP/1.1 request with the request-target exactly as given; resolves with the status and error code. */
function rawRequest(port: number, method: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? '' : '{}';
    const head = [
      `${method} ${target} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      ...(body ? ['Content-Type: application/json', `Content-Length: ${body.length}`] : []),
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      '',
      '',
    ].join('\r\n');
    let got = '';
    sock.setTimeout(5000, () => sock.destroy(new Error(`timeout on ${method} ${target}`)));
    sock.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      // The head is enough (a stream such as /events/stream never ends by itself).
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (!m) return sock.destroy(new Error(`no status line for ${method} ${target}: ${JSON.stringify(got.slice(0, 80))}`));
      const code = new RegExp(`^${ERROR_CODE_HEADER}: (.*)$`, 'im').exec(got.slice(0, end))?.[1]?.trim();
      const location = /^location: (.*)$/im.exec(got.slice(0, end))?.[1]?.trim();
      sock.destroy();
      resolve({ status: Number(m[1]), ...(code ? { code } : {}), ...(location ? { location } : {}) });
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`connection closed before an answer to ${method} ${target}: ${JSON.stringify(got.slice(0, 80))}`)));
    sock.write(head + body);
  });
}

const hex = (c: string, lower: boolean): string => {
  const h = Buffer.from(c, 'utf8').toString('hex');
  const s = h.replace(/(..)/g, '%$1');
  return lower ? s.toLowerCase() : s.toUpperCase();
};

/** Every way of writing `path` that this table tries. */
export function spellings(path: string): string[] {
  const out = new Set<string>([path]);
  const chars = [...path];
  chars.forEach((c, i) => {
    for (const lower of [false, true]) out.add(chars.slice(0, i).join('') + hex(c, lower) + chars.slice(i + 1).join(''));
  });
  out.add(path.toUpperCase());
  out.add(path.replace(/\/([a-z])/g, (_m, c: string) => `/${c.toUpperCase()}`));
  const segs = path.split('/').slice(1);
  segs.forEach((_s, i) => {
    const before = '/' + segs.slice(0, i).join('/');
    const rest = segs.slice(i).join('/');
    const b = before === '/' ? '' : before;
    out.add(`${b}//${rest}`);
    out.add(`${b}/./${rest}`);
    out.add(`${b}/%2e/${rest}`);
    out.add(`${b}/zz/../${rest}`);
    out.add(`${b}/zz/%2e%2e/${rest}`);
    out.add(`${b}/zz/%2E%2E/${rest}`);
    out.add(`${b}/zz/..%2f${rest}`);
    out.add(`${b}\\${rest}`);
  });
  for (const tail of ['/', '//', '?', '?a=1', '#', ';', ';x', '%00', '%20', '%2f', '%2F', '.', '/.', '/..', '%3f', '?%00', '~']) out.add(path + tail);
  out.add(`http://127.0.0.1${path}`);
  out.add(`HTTP://127.0.0.1${path}`);
  out.add(`//127.0.0.1${path}`);
  return [...out];
}

/** A concrete path for a route pattern: parameters and wildcards filled in. */
function concrete(url: string): string {
  return url.replace(/:[A-Za-z_]+/g, 'thor').replace(/\*/g, 'x');
}

/** The admin routes the table must guard (HEAD answers like GET; public paths are public, the dashboard's login and assets too). */
function guarded(routes: readonly RouteEntry[]): RouteEntry[] {
  return routes.filter((r) => !PUBLIC_ADMIN_PATHS.has(r.url) && !DASHBOARD_PUBLIC_ROUTES.has(`${r.method === 'HEAD' ? 'GET' : r.method} ${r.url}`) && r.method !== 'OPTIONS');
}

/** How a request was turned away before any handler, or null if it may have reached one. */
export function refusal(a: Answer): 'auth' | 'no-route' | 'bad-url' | null {
  if (a.status === 401 && (a.code === 'auth.missing' || a.code === 'auth.invalid')) return 'auth';
  // A dashboard page without a session: sent to the login page, nothing read.
  if (a.status === 303 && a.location === '/ui/login') return 'auth';
  // The app's not-found handler (no route matched); a handler's own 404 has a domain code (node.not_found).
  if (a.status === 404 && a.code === NO_ROUTE) return 'no-route';
  // Refused by Node's HTTP parser before fastify saw it (no fleet error code at all).
  if (a.status === 400 && a.code === undefined) return 'bad-url';
  return null;
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

/** Sends every spelling of every route; returns those that were not refused. */
async function reachable(
  port: number,
  routes: RouteEntry[],
  headers: Record<string, string> = {},
  allowed: ReadonlySet<string> = new Set(['auth', 'no-route', 'bad-url']),
): Promise<string[]> {
  const leaks: string[] = [];
  for (const r of routes) {
    for (const target of spellings(concrete(r.url))) {
      const a = await rawRequest(port, r.method, target, headers);
      const why = refusal(a);
      if (!why || !allowed.has(why)) leaks.push(`${r.method} ${target} → ${a.status}${a.code ? ` ${a.code}` : ''}`);
    }
  }
  return leaks;
}

describe('admin API authentication on the matched route', () => {
  let store: Store;
  let admin: FastifyInstance;
  let boot: FastifyInstance;
  let adminPort: number;
  let bootPort: number;

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    const netboot = { serverUrl: SERVER, caFingerprint: CA_FP };
    admin = await buildAdminApp({ store, apiToken: TOKEN, logLevel: 'silent', netboot });
    boot = await buildBootApp({ store, ...netboot, logLevel: 'silent', rateLimit: { max: 1_000_000, timeWindow: 60_000 } });
    adminPort = await listen(admin);
    bootPort = await listen(boot);
  });
  afterAll(async () => {
    await admin?.close();
    await boot?.close();
    await store?.close();
  });

  it('the route table holds every admin route family', () => {
    const urls = guarded(routesOf(admin)).map((r) => r.url);
    // A floor, not the list: the table below is generated from whatever is registered.
    expect(urls.length).toBeGreaterThanOrEqual(20);
    expect(urls).toEqual(expect.arrayContaining(['/api/v1/nodes', '/api/v1/apply', '/api/v1/power', '/api/v1/nodes/reinstall']));
    expect(spellings('/api/v1/nodes')).toContain('/%61pi/v1/nodes');
  });

  it('with the token, each route is reached as written (so a refusal below means something)', async () => {
    // The dashboard's routes take a session cookie (from the token) instead of the bearer token.
    const login = await admin.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` });
    const cookie = /fleet_session=[^;]+/.exec(String(login.headers['set-cookie']))![0];
    for (const r of guarded(routesOf(admin))) {
      const creds: Record<string, string> = r.url.startsWith('/ui') ? { Cookie: cookie } : { Authorization: `Bearer ${TOKEN}` };
      const a = await rawRequest(adminPort, r.method, concrete(r.url), creds);
      expect(refusal(a), `${r.method} ${r.url} → ${a.status} ${a.code ?? ''}`).toBeNull();
    }
  });

  it('no spelling of any admin path reaches a handler without a token', async () => {
    const before = (await store.events.list({ limit: 10 })).events.length;
    const leaks = await reachable(adminPort, guarded(routesOf(admin)));
    expect(leaks).toEqual([]);
    expect((await store.events.list({ limit: 10 })).events.length).toBe(before);
    expect(await store.nodes.list()).toEqual([]);
  }, 120_000);

  it('a wrong token is refused the same way', async () => {
    const leaks = await reachable(adminPort, guarded(routesOf(admin)).slice(0, 5), { Authorization: 'Bearer not-the-token' });
    expect(leaks).toEqual([]);
  });

  it('the boot face answers no admin route under any spelling, even with the admin token', async () => {
    const leaks = await reachable(bootPort, guarded(routesOf(admin)), { Authorization: `Bearer ${TOKEN}` }, new Set(['no-route', 'bad-url']));
    expect(leaks).toEqual([]);
    expect(routesOf(boot).some((r) => r.url === '/boot.ipxe')).toBe(true);
    expect(routesOf(boot).filter((r) => r.url.startsWith('/api/') && !r.url.startsWith('/api/v1/boot-events/'))).toEqual([]);
  }, 120_000);

  it('records the user as the actor; a claimed name never stands for it', async () => {
    const yaml = `cluster: {name: a, domain: a.local, timezone: UTC, management_address: 10.10.0.1}
networks: {provisioning: {subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254}}
profiles: {p: {os: {tree: "http://10.10.0.1/os"}}}
nodes: {n1: {profile: p}}
`;
    // The api.token of the first start is user admin's token.
    const cases: [Record<string, string>, string][] = [
      [{}, 'admin@127.0.0.1'],
      [{ 'X-Fleet-Actor': 'admin' }, 'admin@127.0.0.1'],
      [{ 'X-Fleet-Actor': 'alice' }, 'admin@127.0.0.1 (client: alice)'],
      // A forged suffix is sanitised, so it cannot pose as another user.
      [{ 'X-Fleet-Actor': 'root) (client: x' }, 'admin@127.0.0.1 (client: root___client__x)'],
    ];
    for (const [i, [headers, actor]] of cases.entries()) {
      const res = await admin.inject({
        method: 'POST',
        url: '/api/v1/apply',
        headers: { authorization: `Bearer ${TOKEN}`, ...headers },
        payload: { yaml: yaml.replace('n1', `n${i + 1}`), secrets: {}, dryRun: false },
      });
      expect(res.statusCode, res.body).toBe(200);
      const added = (await store.events.list({ node: `n${i + 1}`, kinds: ['node.added'] })).events[0]!;
      expect(added.actor).toBe(actor);
    }
  });

  it('the table finds the bypass in a server guarded by reading the raw URL', async () => {
    const weak = fastify();
    installErrorHandling(weak);
    weak.addHook('onRequest', async (req) => {
      const path = req.url.split('?')[0] ?? '';
      if (path.startsWith('/api/')) checkBearer(req.headers.authorization, TOKEN);
    });
    weak.get('/api/v1/nodes', async () => ({ nodes: [] }));
    const port = await listen(weak);
    try {
      const leaks = await reachable(port, [{ method: 'GET', url: '/api/v1/nodes' }]);
      expect(leaks).toContain('GET /%61pi/v1/nodes → 200');
    } finally {
      await weak.close();
    }
  });
});

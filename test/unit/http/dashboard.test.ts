/**
 * The dashboard's auth through the admin app (inject): login, the session
 * cookie, CSRF on every write, roles from the table, sessions that expire or
 * whose token stops being good, and pages that escape what comes from
 * outside. The same through a real server and browser: test/integration/
 * dashboard.test.ts and dashboard-browser.test.ts.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestToken, newUserToken } from '../../../server/auth/users.js';
import { ROUTE_ROLES } from '../../../server/auth/roles.js';
import { buildAdminApp, routesOf } from '../../../server/http/app.js';
import { DASHBOARD_PUBLIC_ROUTES, registerDashboard } from '../../../server/http/dashboard.js';
import fastify from 'fastify';
import { ERROR_CODE_HEADER } from '../../../server/http/errors.js';
import { SessionStore } from '../../../server/dashboard/session.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { PROFILES } from '../../helpers/golden.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { toInventory, type RawInventory } from '../../../agent/inventory/index.js';
import { inventoryToStored } from '../../../common/inventory/proto.js';
import { EVENT } from '../../../common/events.js';

const VM = toInventory(JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory/debian-vm.json'), 'utf8')) as RawInventory);

const ACTOR = { actor: 'test' };
const HOSTILE = '<script>alert(1)</script>"\'&';

describe('dashboard auth (inject)', () => {
  let store: Store;
  let app: FastifyInstance;
  let clock = Date.now();
  const sessions = new SessionStore({ ttlMs: 60_000, idleMs: 30_000, clock: () => clock });
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    app = await buildAdminApp({ store, apiToken: 'dash-token-0123456789abcdef0123456789', logLevel: 'silent', dashboardSessions: sessions });
    for (const [name, role] of [['olivia', 'operator'], ['rita', 'read-only'], ['dora', 'operator']] as const) {
      tokens[name] = newUserToken();
      await store.users.add(name, role, digestToken(tokens[name]), ACTOR);
    }
    await store.profiles.upsert(PROFILES.compute, ACTOR);
    await store.nodes.upsert({ name: 'n01', profile: 'compute', ip: '10.9.0.1', macs: ['52:54:00:00:00:01'], pet: false }, ACTOR);
    await store.nodes.upsert({ name: 'n02', profile: 'compute', ip: '10.9.0.2', macs: ['52:54:00:00:00:02'], pet: false }, ACTOR);
    // A failure whose reason came from outside (a BMC's message): it must reach pages escaped.
    await store.nodes.setState('n02', 'failed', { actor: 'test', details: { step: 'arm-pxe', reason: HOSTILE } });
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const login = async (user: string): Promise<{ cookie: string; csrf: string }> => {
    const res = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${encodeURIComponent(tokens[user]!)}` });
    expect(res.statusCode).toBe(303);
    const set = String(res.headers['set-cookie']);
    const cookie = /fleet_session=([^;]+)/.exec(set)![1]!;
    const page = await app.inject({ url: '/ui/', headers: { cookie: `fleet_session=${cookie}` } });
    expect(page.statusCode).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
    return { cookie: `fleet_session=${cookie}`, csrf };
  };
  const act = (cookie: string | undefined, body: Record<string, string>, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/ui/actions',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}), ...headers },
      payload: new URLSearchParams(body).toString(),
    });

  it('the role table names every dashboard route that is not public, and only those', () => {
    const ui = routesOf(app)
      .filter((r) => r.url === '/' || r.url.startsWith('/ui'))
      .map((r) => `${r.method} ${r.url}`)
      .filter((k) => !k.startsWith('HEAD '));
    const guarded = ui.filter((k) => !DASHBOARD_PUBLIC_ROUTES.has(k)).sort();
    expect(guarded).toEqual(Object.keys(ROUTE_ROLES).filter((k) => k.split(' ')[1]!.startsWith('/ui')).sort());
    expect(guarded.length).toBe(10);
  });

  it('pages without a session go to the login page; the stream and writes answer 401', async () => {
    for (const url of ['/ui/', '/ui/nodes', '/ui/nodes/n01']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(303);
      expect(res.headers.location).toBe('/ui/login');
    }
    expect((await app.inject({ url: '/' })).headers.location).toBe('/ui/');
    const stream = await app.inject({ url: '/ui/events' });
    expect(stream.statusCode).toBe(401);
    expect(stream.headers[ERROR_CODE_HEADER]).toBe('auth.missing');
    const write = await act(undefined, { action: 'cancel', nodeset: 'n01', _csrf: 'x' });
    expect(write.statusCode).toBe(401);
    // The API's bearer token is not a dashboard session.
    const bearer = await act(undefined, { action: 'cancel', nodeset: 'n01' }, { authorization: `Bearer ${tokens.olivia}` });
    expect(bearer.statusCode).toBe(401);
    const login = await app.inject({ url: '/ui/login' });
    expect(login.statusCode).toBe(200);
    expect(login.headers['content-security-policy']).toContain("script-src 'self'");
    expect(login.body).toContain('name="token"');
  });

  it('a wrong token is refused without echoing it; a good one gets an httpOnly SameSite=Strict cookie (no Secure on plain HTTP)', async () => {
    const bad = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=not-a-token-XYZZY' });
    expect(bad.statusCode).toBe(401);
    expect(bad.body).not.toContain('XYZZY');
    expect(bad.headers['set-cookie']).toBeUndefined();
    const ok = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${tokens.rita}` });
    expect(ok.statusCode).toBe(303);
    const set = String(ok.headers['set-cookie']);
    expect(set).toMatch(/^fleet_session=[A-Za-z0-9_-]{43}; Path=\/ui; HttpOnly; SameSite=Strict; Max-Age=60$/);
    const foreign = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' }, payload: `token=${tokens.rita}` });
    expect(foreign.statusCode).toBe(403);
  });

  it('every write needs the session’s CSRF token: missing, wrong, or another session’s are refused (403)', async () => {
    const o = await login('olivia');
    const d = await login('dora');
    const body = { action: 'cancel', nodeset: 'n01' };
    const cases: [string, Record<string, string>, Record<string, string>][] = [
      ['missing', body, {}],
      ['wrong', { ...body, _csrf: 'A'.repeat(43) }, {}],
      ['empty', { ...body, _csrf: '' }, {}],
      ['another session’s', { ...body, _csrf: d.csrf }, {}],
      ['wrong header', body, { 'x-csrf-token': 'nope' }],
    ];
    for (const [what, b, h] of cases) {
      const res = await act(o.cookie, b, h);
      expect(res.statusCode, what).toBe(403);
      expect(res.headers[ERROR_CODE_HEADER], what).toBe('auth.forbidden');
      expect(res.body, what).toContain('CSRF');
    }
    // A body too large, or of a type no parser takes: refused as such, not as an internal error.
    const big = await act(o.cookie, { action: 'cancel', nodeset: 'n01', _csrf: o.csrf, pad: 'x'.repeat(70_000) });
    expect(big.statusCode).toBe(413);
    const xml = await app.inject({ method: 'POST', url: '/ui/actions', headers: { cookie: o.cookie, 'content-type': 'application/xml' }, payload: '<a/>' });
    expect(xml.statusCode).toBe(400);
    expect(xml.headers[ERROR_CODE_HEADER]).toBe('request.invalid');
    // A plain-text body carries no token field: refused like any write without one.
    const text = await app.inject({ method: 'POST', url: '/ui/actions', headers: { cookie: o.cookie, 'content-type': 'text/plain' }, payload: `_csrf=${o.csrf}&action=cancel` });
    expect(text.statusCode).toBe(403);
    // Logout is a write too.
    expect((await app.inject({ method: 'POST', url: '/ui/logout', headers: { cookie: o.cookie } })).statusCode).toBe(403);
    // A foreign Origin is refused even with the right token.
    expect((await act(o.cookie, { ...body, _csrf: o.csrf }, { origin: 'http://evil.example' })).statusCode).toBe(403);
    // The right token (field or header) reaches the action: its confirmation page names the nodes.
    const confirm = await act(o.cookie, { action: 'reinstall', nodeset: 'n[01-02]', _csrf: o.csrf });
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain('<strong id="confirm-nodes">n[01-02]</strong>');
    expect(confirm.body).toContain('erases their disks');
    const viaHeader = await act(o.cookie, { action: 'cancel', nodeset: 'n01' }, { 'x-csrf-token': o.csrf });
    expect(viaHeader.statusCode).toBe(200);
    // Confirmed for other nodes than the nodeset now names: asked again, nothing done.
    const stale = await act(o.cookie, { action: 'reinstall', nodeset: 'n[01-02]', confirm: 'n01', _csrf: o.csrf });
    expect(stale.statusCode).toBe(409);
    // This app has no conductor: a confirmed reinstall says so (the real one runs in the integration test).
    const done = await act(o.cookie, { action: 'cancel', nodeset: 'n01', confirm: 'n01', _csrf: o.csrf });
    expect(done.statusCode).toBe(501);
    expect(done.headers[ERROR_CODE_HEADER]).toBe('not_implemented');
  });

  it('a read-only user sees no action and may not act, even with its CSRF token', async () => {
    const r = await login('rita');
    const node = await app.inject({ url: '/ui/nodes/n01', headers: { cookie: r.cookie } });
    expect(node.statusCode).toBe(200);
    expect(node.body).not.toContain('/ui/actions');
    const res = await act(r.cookie, { action: 'cancel', nodeset: 'n01', _csrf: r.csrf });
    expect(res.statusCode).toBe(403);
    expect(res.headers[ERROR_CODE_HEADER]).toBe('auth.forbidden');
    expect(res.body).toContain('needs role operator');
    const o = await login('olivia');
    const opNode = await app.inject({ url: '/ui/nodes/n01', headers: { cookie: o.cookie } });
    expect(opNode.body).toContain('data-action="reinstall"');
  });

  it('a live page names its last event id; its stream starts there, or at a reconnect\'s Last-Event-ID', async () => {
    const o = await login('olivia');
    const page = await app.inject({ url: '/ui/nodes', headers: { cookie: o.cookie } });
    const after = Number(/data-after="(\d+)"/.exec(page.body)![1]);
    expect(after).toBe(await store.events.lastId());
    // A change after the page was read: the stream from the page's id carries it.
    await store.nodes.setState('n01', 'held', { actor: 'test', details: { step: 'x', reason: 'y' } });
    const res = await app.inject({ url: `/ui/events?after=${after}`, headers: { cookie: o.cookie }, payloadAsStream: true });
    const text = await new Promise<string>((resolve) => {
      let got = '';
      res.stream().on('data', (b: Buffer) => {
        got += b.toString();
        if (got.includes('"toState":"held"')) resolve(got);
      });
    });
    expect(text).toContain(`: fleet events after ${after}`);
    expect(text).toContain('"node":"n01"');
    res.stream().destroy();
    const again = await app.inject({ url: `/ui/events?after=${after}`, headers: { cookie: o.cookie, 'last-event-id': String(after + 1) }, payloadAsStream: true });
    const head = await new Promise<string>((resolve) => again.stream().once('data', (b: Buffer) => resolve(b.toString())));
    expect(head).toContain(`: fleet events after ${after + 1}`);
    again.stream().destroy();
    await store.nodes.setState('n01', 'enrolled', { actor: 'test' });
  });

  it('bad cookies are no session', async () => {
    for (const cookie of ['fleet_session=', 'fleet_session=garbage', `fleet_session=${'A'.repeat(43)}`, 'fleet_session=../../etc', 'other=1', `fleet_session="${'B'.repeat(43)}"`]) {
      const res = await app.inject({ url: '/ui/', headers: { cookie } });
      expect(res.statusCode, cookie).toBe(303);
      expect(res.headers.location).toBe('/ui/login');
      expect((await act(cookie, { action: 'cancel', nodeset: 'n01', _csrf: 'x' })).statusCode, cookie).toBe(401);
    }
  });

  it('a session ends when idle, at its end, at logout, and when its user is disabled', async () => {
    const a = await login('olivia');
    clock += 31_000; // idle past 30 s
    expect((await app.inject({ url: '/ui/', headers: { cookie: a.cookie } })).headers.location).toBe('/ui/login');
    const b = await login('olivia');
    for (let i = 0; i < 3; i++) {
      clock += 20_000; // used every 20 s: never idle, but 60 s is its end
      const res = await app.inject({ url: '/ui/', headers: { cookie: b.cookie } });
      expect(res.statusCode, `after ${(i + 1) * 20}s`).toBe(i < 2 ? 200 : 303);
    }
    const c = await login('olivia');
    const out = await app.inject({ method: 'POST', url: '/ui/logout', headers: { cookie: c.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: `_csrf=${c.csrf}` });
    expect(out.statusCode).toBe(303);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    expect((await app.inject({ url: '/ui/', headers: { cookie: c.cookie } })).headers.location).toBe('/ui/login');
    const d = await login('dora');
    await store.users.setDisabled('dora', true, ACTOR);
    expect((await app.inject({ url: '/ui/', headers: { cookie: d.cookie } })).headers.location).toBe('/ui/login');
    expect((await act(d.cookie, { action: 'cancel', nodeset: 'n01', _csrf: d.csrf })).statusCode).toBe(401);
    await store.users.setDisabled('dora', false, ACTOR);
    // The session ended for good: enabling the user again does not bring it back.
    expect((await app.inject({ url: '/ui/', headers: { cookie: d.cookie } })).headers.location).toBe('/ui/login');
  });

  it('escapes what comes from outside on every page', async () => {
    const o = await login('olivia');
    for (const url of ['/ui/', '/ui/nodes?state=failed', '/ui/nodes/n02']) {
      const res = await app.inject({ url, headers: { cookie: o.cookie } });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).not.toContain('<script>alert');
      expect(res.body, url).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    }
    // A hostile filter is shown back escaped (in the field, and as names not in the store).
    const hostile = await app.inject({ url: `/ui/nodes?nodeset=${encodeURIComponent('"><script>x</script>')}`, headers: { cookie: o.cookie } });
    expect(hostile.statusCode).toBe(200);
    expect(hostile.body).not.toContain('<script>x');
    expect(hostile.body).toContain('value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"');
    // A nodeset that does not parse: its own error, escaped, no rows.
    const bad = await app.inject({ url: `/ui/nodes?nodeset=${encodeURIComponent('n[01-<b>')}`, headers: { cookie: o.cookie } });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).not.toContain('<b>');
    expect(bad.body).not.toContain('<tr data-node=');
    const missing = await app.inject({ url: '/ui/nodes/nope', headers: { cookie: o.cookie } });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers[ERROR_CODE_HEADER]).toBe('node.not_found');
  });

  it('the nodes table filters, sorts and pages', async () => {
    const o = await login('olivia');
    const page = async (qs: string): Promise<string[]> => {
      const res = await app.inject({ url: `/ui/nodes${qs}`, headers: { cookie: o.cookie } });
      expect(res.statusCode, qs).toBe(200);
      return [...res.body.matchAll(/<tr data-node="([^"]+)"/g)].map((m) => m[1]!);
    };
    expect(await page('')).toEqual(['n01', 'n02']);
    expect(await page('?nodeset=n02')).toEqual(['n02']);
    expect(await page('?state=failed')).toEqual(['n02']);
    expect(await page('?sort=state&dir=desc')).toEqual(['n02', 'n01']);
    expect(await page('?size=10&page=2')).toEqual(['n01', 'n02']); // past the last page: the last page
    expect(await page('?nodeset=@profile:compute')).toEqual(['n01', 'n02']);
  });

  it('draws the timeline of the window, as a page and as an SVG file; a bad window is a 400', async () => {
    const o = await login('olivia');
    const page = await app.inject({ url: '/ui/timeline?since=1h', headers: { cookie: o.cookie } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<g class="row" data-node="n02">');
    expect(page.body).toContain('class="failure"');
    expect(page.body).not.toContain('<script>alert');
    const svg = await app.inject({ url: '/ui/timeline.svg?since=1h&nodeset=n02', headers: { cookie: o.cookie } });
    expect(svg.statusCode).toBe(200);
    expect(svg.headers['content-type']).toBe('image/svg+xml; charset=utf-8');
    expect(svg.body.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg')).toBe(true);
    const none = await app.inject({ url: '/ui/timeline.svg?since=1h&nodeset=zz01', headers: { cookie: o.cookie } });
    expect(none.body).not.toContain('<g class="row"');
    for (const q of ['since=yesterday', 'since=1h&until=2h', 'since=2026-13-45']) {
      const bad = await app.inject({ url: `/ui/timeline?${q}`, headers: { cookie: o.cookie } });
      expect(bad.statusCode, q).toBe(400);
    }
    expect((await app.inject({ url: '/ui/timeline.svg?since=1h' })).headers.location).toBe('/ui/login');
  });

  it("shows a node's inventory and what changed since the report before", async () => {
    const o = await login('olivia');
    await store.inventory.record('n01', inventoryToStored(VM) as object, { actor: 'test' });
    const smaller = { ...VM, memory: { ...VM.memory, totalBytes: VM.memory.totalBytes / 2 } };
    await store.inventory.record('n01', inventoryToStored(smaller) as object, { actor: 'test' });
    const res = await app.inject({ url: '/ui/nodes/n01', headers: { cookie: o.cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<ul id="inventory-diff">');
    expect(res.body).toMatch(/<li class="reason">[^<]*[Mm]emory[^<]*<\/li>/);
    expect(res.body).toContain('<pre class="inventory" id="inventory">');
    const table = await app.inject({ url: '/ui/nodes', headers: { cookie: o.cookie } });
    expect(table.body).toContain('<td class="install">kickstart</td>');
    // An image install: the image and digest the node last fetched its plan for.
    await store.profiles.upsert({ ...PROFILES.compute, name: 'img', os: { install: 'image', tree: '', image: 'debian12' } }, ACTOR);
    await store.nodes.upsert({ name: 'i01', profile: 'img', ip: '10.9.0.9', macs: ['52:54:00:00:00:09'], pet: false }, ACTOR);
    await store.events.append({ node: 'i01', kind: EVENT.planFetched, actor: 'i01', details: { image: 'debian12', digest: `sha256:${'ab12'.repeat(16)}` } });
    const img = await app.inject({ url: '/ui/nodes?nodeset=i01', headers: { cookie: o.cookie } });
    expect(img.body).toContain(`<td class="install">image debian12<br><code class="digest" title="debian12 sha256:${'ab12'.repeat(16)}">ab12ab12ab12</code></td>`);
  });

  it('lists discovered machines and the naming plan, escaped', async () => {
    const o = await login('olivia');
    await store.discovered.record({ mac: '52:54:00:aa:bb:01', ip: '10.9.254.9', hostname: '<img src=x onerror=alert(1)>', pxe: true });
    const res = await app.inject({ url: '/ui/discovery', headers: { cookie: o.cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<tr data-mac="52:54:00:aa:bb:01">');
    expect(res.body).not.toContain('<img src=x');
    expect(res.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(res.body).toContain('Policy <strong>manual</strong>');
  });
});

describe('dashboard on a TLS listener', () => {
  it('marks the session cookie Secure', async () => {
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    const token = newUserToken();
    await store.users.add('tls', 'read-only', digestToken(token), ACTOR);
    const app = fastify();
    await registerDashboard(app, { store, secure: true });
    try {
      const res = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${token}` });
      expect(res.statusCode).toBe(303);
      expect(String(res.headers['set-cookie'])).toMatch(/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('dashboard console tail', () => {
  it('shows operators the tail of the console log, cleaned and escaped; read-only users none', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(path.join(tmpdir(), 'fleet-dash-console-'));
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(PROFILES.compute, ACTOR);
    await store.nodes.upsert({ name: 'n01', profile: 'compute', ip: '10.9.0.1', macs: ['52:54:00:00:00:01'], pet: false }, ACTOR);
    await writeFile(path.join(dir, 'n01.log'), 'Booting \x1b[1mkernel\x1b[0m\r\n<script>alert(1)</script>\r\nlogin: ');
    const tokens: Record<string, string> = {};
    for (const [name, role] of [['op', 'operator'], ['ro', 'read-only']] as const) {
      tokens[name] = newUserToken();
      await store.users.add(name, role, digestToken(tokens[name]), ACTOR);
    }
    const app = fastify();
    await registerDashboard(app, { store, secure: false, consoleLogDir: dir });
    try {
      const page = async (user: string): Promise<string> => {
        const login = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${tokens[user]}` });
        const cookie = /fleet_session=[^;]+/.exec(String(login.headers['set-cookie']))![0];
        const res = await app.inject({ url: '/ui/nodes/n01', headers: { cookie } });
        expect(res.statusCode).toBe(200);
        return res.body;
      };
      const op = await page('op');
      expect(op).toContain('<pre class="console" id="console-tail">Booting kernel\n&lt;script&gt;alert(1)&lt;/script&gt;\nlogin: </pre>');
      expect(await page('ro')).not.toContain('console-tail');
    } finally {
      await app.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

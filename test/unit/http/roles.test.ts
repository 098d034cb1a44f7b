/**
 * Every admin route declares the role it needs (server/auth/roles.ts), and
 * the auth hook enforces it on the route the router matched: the table is
 * walked from the app's own route list, so a new route without a role fails
 * here. For each route and each role a real request (inject) is refused with
 * 403 auth.forbidden exactly when the role is too low, and reaches the route
 * (anything but 401/403) otherwise.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredRole, roleAllows, ROLES, ROUTE_ROLES, tableRole, type Role } from '../../../server/auth/roles.js';
import { digestToken, newUserToken } from '../../../server/auth/users.js';
import { buildAdminApp, PUBLIC_ADMIN_PATHS, routesOf } from '../../../server/http/app.js';
import { ERROR_CODE_HEADER } from '../../../server/http/errors.js';
import { openStore, type Store } from '../../../server/store/index.js';

describe('role table', () => {
  it('orders the roles: each includes the ones before it', () => {
    const table = ROLES.map((have) => ROLES.map((need) => roleAllows(have, need)));
    expect(table).toEqual([
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ]);
  });

  it('names the routes the issue names with their roles', () => {
    expect(tableRole('GET', '/api/v1/nodes')).toBe('read-only');
    expect(tableRole('HEAD', '/api/v1/nodes')).toBe('read-only');
    expect(tableRole('GET', '/api/v1/events/stream')).toBe('read-only');
    for (const r of ['/api/v1/power', '/api/v1/bootdev', '/api/v1/nodes/reinstall', '/api/v1/nodes/cancel']) expect(tableRole('POST', r)).toBe('operator');
    for (const r of ['/api/v1/apply', '/api/v1/discover/accept', '/api/v1/discover/reject', '/api/v1/users']) expect(tableRole('POST', r)).toBe('admin');
    expect(tableRole('GET', '/api/v1/users')).toBe('admin');
    // Not every GET is read-only: a kickstart holds the root password hash.
    expect(tableRole('GET', '/api/v1/render/:name/kickstart')).toBe('operator');
    expect(tableRole('GET', '/api/v1/render/:name/ipxe')).toBe('read-only');
  });

  it('is closed by default: a route the table lacks needs admin; a route may declare its own role', () => {
    expect(tableRole('POST', '/api/v1/new-thing')).toBeUndefined();
    expect(requiredRole('POST', '/api/v1/new-thing')).toBe('admin');
    expect(requiredRole('GET', '/api/v1/new-thing')).toBe('admin');
    expect(requiredRole('POST', '/api/v1/new-thing', 'operator')).toBe('operator');
    expect(requiredRole('POST', '/api/v1/power', 'nonsense')).toBe('operator');
  });
});

describe('every admin route declares a role, enforced by the auth hook', () => {
  let store: Store;
  let app: FastifyInstance;
  const tokens = {} as Record<Role, string>;

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    app = await buildAdminApp({ store, apiToken: 'roles-token-0123456789abcdef0123456789', logLevel: 'silent', netboot: { serverUrl: 'http://192.0.2.1:8080' } });
    for (const role of ROLES) {
      tokens[role] = newUserToken();
      await store.users.add(`u-${role}`, role, digestToken(tokens[role]), { actor: 'test' });
    }
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  // /metrics lies outside /api/v1 but is guarded by the same table (http/app.ts).
  const guarded = () => routesOf(app).filter((r) => (r.url.startsWith('/api/') || r.url === '/metrics') && !PUBLIC_ADMIN_PATHS.has(r.url));

  it('the table has an entry for every registered route, and none for a route that does not exist', () => {
    const routes = guarded();
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.filter((r) => tableRole(r.method, r.url) === undefined).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    // The dashboard's routes are in the same table (test/unit/http/dashboard.test.ts checks them with a session).
    const registered = new Set([...routes, ...routesOf(app).filter((r) => r.url.startsWith('/ui'))].map((r) => `${r.method} ${r.url}`));
    expect(Object.keys(ROUTE_ROLES).filter((k) => !registered.has(k))).toEqual([]);
  });

  it('each route refuses exactly the roles below its own (403 auth.forbidden), and lets the others through', async () => {
    const wrong: string[] = [];
    for (const r of guarded()) {
      const need = tableRole(r.method, r.url)!;
      // A real path for the pattern; the body is empty: a route that lets the caller through answers 400/404/501, never 401/403.
      const url = r.url.replace(':name', 'nobody').replace(':format', 'hosts');
      for (const role of ROLES) {
        if (r.url === '/api/v1/events/stream' && roleAllows(role, need)) continue; // a stream does not end by itself
        const res = await app.inject({
          method: r.method as 'GET',
          url,
          headers: { authorization: `Bearer ${tokens[role]}`, ...(r.method === 'POST' ? { 'content-type': 'application/json' } : {}) },
          ...(r.method === 'POST' ? { payload: '{}' } : {}),
        });
        const refused = res.statusCode === 403 && res.headers[ERROR_CODE_HEADER] === 'auth.forbidden';
        if (refused === roleAllows(role, need) || res.statusCode === 401) wrong.push(`${r.method} ${r.url} as ${role} → ${res.statusCode} ${res.headers[ERROR_CODE_HEADER] ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
  }, 60_000);

  it('the OpenAPI document names the role of every operation (x-fleet-role)', async () => {
    const paths = (await app.inject({ url: '/api/v1/openapi.json' })).json<{ paths: Record<string, Record<string, { 'x-fleet-role'?: string }>> }>().paths;
    const ops = Object.entries(paths).flatMap(([p, o]) => Object.entries(o).map(([m, op]) => [m.toUpperCase(), p.replace(/\{(\w+)\}/g, ':$1'), op['x-fleet-role']] as const));
    expect(ops.length).toBeGreaterThan(30);
    expect(ops.filter(([m, p, role]) => role === undefined || role !== tableRole(m, p))).toEqual([]);
  });

  it('says who may not do what, by the matched route (not the URL as spelt)', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/%61pply', headers: { authorization: `Bearer ${tokens['read-only']}` }, payload: {} });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({
      error: { code: 'auth.forbidden', message: 'user u-read-only (role read-only) may not POST /api/v1/apply: it needs role admin', details: { role: 'read-only', required: 'admin' } },
    });
  });
});

/**
 * The dashboard on 10,000 nodes: the overview and a page of the nodes table
 * answer (only the page's nodes are read in depth), paging and the state
 * filter stay exact, and the live stream is one connection whatever the
 * fleet's size. The times are printed, not asserted (a shared machine).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../../server/http/app.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { PROFILES } from '../../helpers/golden.js';

const TOKEN = 'scale-token-0123456789abcdef0123456789';
const N = 10_000;
const name = (i: number): string => `c${String(i).padStart(5, '0')}`;

describe('dashboard on 10,000 nodes', () => {
  let store: Store;
  let app: FastifyInstance;
  let cookie: string;

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(PROFILES.compute, { actor: 't' });
    await store.nodes.upsertMany(
      Array.from({ length: N }, (_, i) => ({ name: name(i + 1), profile: 'compute', macs: [], pet: false })),
      { actor: 't' },
    );
    for (const i of [17, 4242, 9999]) await store.nodes.setState(name(i), 'failed', { actor: 't', details: { step: 'arm-pxe', reason: 'r' } });
    app = await buildAdminApp({ store, apiToken: TOKEN, logLevel: 'silent' });
    const login = await app.inject({ method: 'POST', url: '/ui/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` });
    cookie = /fleet_session=[^;]+/.exec(String(login.headers['set-cookie']))![0];
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const get = async (url: string): Promise<{ body: string; ms: number }> => {
    const t = performance.now();
    const res = await app.inject({ url, headers: { cookie } });
    const ms = Math.round(performance.now() - t);
    expect(res.statusCode, url).toBe(200);
    console.log(`${url}: ${ms} ms, ${res.body.length} bytes`);
    return { body: res.body, ms };
  };
  const rows = (body: string): string[] => [...body.matchAll(/<tr data-node="([^"]+)"/g)].map((m) => m[1]!);

  it('overview, first and last page, a filtered page', async () => {
    const overview = await get('/ui/');
    expect(overview.body).toContain(`<div class="n" id="total">${N}</div>`);
    expect(overview.body).toContain('Failed and held nodes (3)');
    const first = await get('/ui/nodes');
    expect(rows(first.body)).toEqual(Array.from({ length: 100 }, (_, i) => name(i + 1)));
    expect(first.body).toContain('page 1 of 100');
    const last = await get('/ui/nodes?page=100');
    expect(rows(last.body).at(-1)).toBe(name(N));
    const failed = await get('/ui/nodes?state=failed');
    expect(rows(failed.body)).toEqual([name(17), name(4242), name(9999)]);
    const slice = await get(`/ui/nodes?nodeset=${encodeURIComponent('c[05001-05500]')}&size=500&sort=name&dir=desc`);
    expect(rows(slice.body)).toHaveLength(500);
    expect(rows(slice.body)[0]).toBe(name(5500));
  }, 120_000);
});

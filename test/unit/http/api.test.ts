import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAdminApp as buildApp } from '../../../server/http/app.js';
import type { ApiNode, ApplyResponse, EventsResponse, NodesResponse } from '../../../common/api/schemas.js';
import { openStore, type Store } from '../../../server/store/index.js';

const EXAMPLE = new URL('../../../examples/seed-cluster.yaml', import.meta.url);
const TOKEN = 'test-token-0123456789abcdef0123456789';
const SECRET = 'S3cret-Bmc-Pa55word';

class LogSink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('REST API', () => {
  let store: Store;
  let app: FastifyInstance;
  let logs: LogSink;
  let yaml: string;
  const auth = { authorization: `Bearer ${TOKEN}` };

  beforeEach(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    logs = new LogSink();
    app = await buildApp({ store, apiToken: TOKEN, logLevel: 'trace', logStream: logs, nodesetLimit: 1000 });
    yaml = await readFile(EXAMPLE, 'utf8');
  });
  afterEach(async () => {
    await app.close();
    await store.close();
  });

  async function applyExample(dryRun = false): Promise<ApplyResponse> {
    const res = await app.inject({ method: 'POST', url: '/api/v1/apply', headers: auth, payload: { yaml, secrets: { 'bmc-admin': SECRET }, dryRun } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<ApplyResponse>();
  }

  it('serves /healthz and the OpenAPI document without a token', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const doc = (await app.inject({ url: '/api/v1/openapi.json' })).json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/nodes', '/api/v1/nodes/{name}', '/api/v1/events', '/api/v1/apply']));
  });

  it('answers 401 without a token or with a wrong one, on every API route', async () => {
    for (const url of ['/api/v1/nodes', '/api/v1/nodes/thor', '/api/v1/events', '/api/v1/nodes/thor/events']) {
      const none = await app.inject({ url });
      expect(none.statusCode).toBe(401);
      expect(none.json().error.code).toBe('auth.missing');
      const wrong = await app.inject({ url, headers: { authorization: 'Bearer not-the-token' } });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json().error.code).toBe('auth.invalid');
    }
    const post = await app.inject({ method: 'POST', url: '/api/v1/apply', payload: { yaml: '', secrets: {} } });
    expect(post.statusCode).toBe(401);
    expect(await store.nodes.list()).toEqual([]);
  });

  it('applies the example idempotently and lists nodes by nodeset', async () => {
    const dry = await applyExample(true);
    expect(dry.changed).toBe(true);
    expect(dry.applied).toBe(false);
    expect(await store.nodes.list()).toEqual([]);

    const first = await applyExample();
    expect(first.applied).toBe(true);
    expect(first.plan.nodes.added).toEqual(expect.arrayContaining(['thor', 'heimdall', 'valkyrie01', 'valkyrie02']));
    expect(first.text).toContain('valkyrie01');

    const eventsAfterFirst = (await store.events.list({ limit: 1000 })).events.length;
    const second = await applyExample();
    expect(second.changed).toBe(false);
    expect(second.applied).toBe(false);
    expect((await store.events.list({ limit: 1000 })).events.length).toBe(eventsAfterFirst);

    const res = await app.inject({ url: '/api/v1/nodes?nodeset=' + encodeURIComponent('valkyrie[01-02]'), headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json<NodesResponse>();
    expect(body.nodes.map((n) => [n.name, n.ip, n.bmc?.address])).toEqual([
      ['valkyrie01', '10.10.3.1', '10.10.103.1'],
      ['valkyrie02', '10.10.3.2', '10.10.103.2'],
    ]);
    expect(body.missing).toEqual([]);

    const missing = (await app.inject({ url: '/api/v1/nodes?nodeset=' + encodeURIComponent('valkyrie[01-02],ghost[1-3]'), headers: auth })).json<NodesResponse>();
    expect(missing.missing).toEqual(['ghost1', 'ghost2', 'ghost3']);
    expect(missing.missingFolded).toBe('ghost[1-3]');

    const thor = (await app.inject({ url: '/api/v1/nodes/thor', headers: auth })).json<ApiNode>();
    expect(thor).toMatchObject({ name: 'thor', ip: '10.10.1.1', pet: true, state: 'enrolled', armed: false });
  });

  it('never returns or logs a BMC secret', async () => {
    await applyExample();
    const bodies: string[] = [];
    for (const url of ['/api/v1/nodes', '/api/v1/nodes/valkyrie01', '/api/v1/events?limit=1000', '/api/v1/nodes/valkyrie01/events', '/api/v1/openapi.json']) {
      bodies.push((await app.inject({ url, headers: auth })).body);
    }
    bodies.push(JSON.stringify(await applyExample(true)));
    for (const b of bodies) {
      expect(b).not.toContain(SECRET);
      expect(b).not.toContain(TOKEN);
    }
    expect(logs.text.length).toBeGreaterThan(0);
    expect(logs.text).not.toContain(SECRET);
    expect(logs.text).not.toContain(TOKEN);
  });

  it('refuses a nodeset past the limit, bad syntax and unknown nodes clearly', async () => {
    const big = await app.inject({ url: '/api/v1/nodes?nodeset=' + encodeURIComponent('n[1-5000]'), headers: auth });
    expect(big.statusCode).toBe(400);
    expect(big.json().error.code).toBe('nodeset.too_large');
    expect(big.json().error.message).toMatch(/1000/);
    const bad = await app.inject({ url: '/api/v1/nodes?nodeset=' + encodeURIComponent('n[1-'), headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('nodeset.invalid');
    const unknown = await app.inject({ url: '/api/v1/nodes/ghost', headers: auth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('node.not_found');
    const badName = await app.inject({ url: '/api/v1/nodes/..%2Fetc', headers: auth });
    expect(badName.statusCode).toBe(400);
    const noRoute = await app.inject({ url: '/api/v1/nope', headers: auth });
    expect(noRoute.statusCode).toBe(404);
  });

  it('reports every config error of a bad YAML and changes nothing', async () => {
    const bad = yaml.replace('10.10.3.[1-2]', '10.20.3.[1-2]').replace('timezone: Europe/Brussels', 'timezone: 12');
    const res = await app.inject({ method: 'POST', url: '/api/v1/apply', headers: auth, payload: { yaml: bad, secrets: { 'bmc-admin': SECRET } } });
    expect(res.statusCode).toBe(400);
    const err = res.json().error;
    expect(err.code).toBe('config.invalid');
    expect(err.details.errors.length).toBeGreaterThanOrEqual(2);
    expect(await store.nodes.list()).toEqual([]);
    const noSecret = await app.inject({ method: 'POST', url: '/api/v1/apply', headers: auth, payload: { yaml, secrets: {} } });
    expect(noSecret.statusCode).toBe(400);
    expect(noSecret.json().error.message).toMatch(/bmc-admin/);
    const junk = await app.inject({ method: 'POST', url: '/api/v1/apply', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"yaml":' });
    expect(junk.statusCode).toBe(400);
    expect(junk.json().error.code).toBe('request.invalid');
  });

  it('pages through events by cursor, per node and by nodeset', async () => {
    await applyExample();
    const all = (await app.inject({ url: '/api/v1/events?limit=1000', headers: auth })).json<EventsResponse>();
    expect(all.events.length).toBeGreaterThan(4);
    const seen: number[] = [];
    let after: number | null = 0;
    for (let i = 0; i < 100 && after !== null; i++) {
      const page: EventsResponse = (await app.inject({ url: `/api/v1/events?limit=2&after=${after}`, headers: auth })).json();
      seen.push(...page.events.map((e) => e.id));
      after = page.nextAfter;
    }
    expect(seen).toEqual(all.events.map((e) => e.id));
    const v1 = (await app.inject({ url: '/api/v1/nodes/valkyrie01/events', headers: auth })).json<EventsResponse>();
    expect(v1.events.map((e) => e.kind)).toContain('node.added');
    expect(v1.events.every((e) => e.node === 'valkyrie01')).toBe(true);
    const set = (await app.inject({ url: '/api/v1/events?nodeset=' + encodeURIComponent('valkyrie[01-02]'), headers: auth })).json<EventsResponse>();
    expect(new Set(set.events.map((e) => e.node))).toEqual(new Set(['valkyrie01', 'valkyrie02']));
  });

  it('pages newest first with order=desc and before, per node and by nodeset', async () => {
    await applyExample();
    const all = (await app.inject({ url: '/api/v1/events?limit=1000', headers: auth })).json<EventsResponse>();
    const ids = all.events.map((e) => e.id);
    expect(all.nextBefore).toBeNull();
    const newest = (await app.inject({ url: '/api/v1/events?order=desc&limit=3', headers: auth })).json<EventsResponse>();
    expect(newest.events.map((e) => e.id)).toEqual(ids.slice(-3).reverse());
    expect(newest.nextAfter).toBeNull();
    expect(newest.nextBefore).toBe(ids[ids.length - 3]);
    const seen: number[] = [];
    let before: number | null | undefined;
    for (let i = 0; i < 100 && before !== null; i++) {
      const page: EventsResponse = (await app.inject({ url: `/api/v1/events?order=desc&limit=2${before ? `&before=${before}` : ''}`, headers: auth })).json();
      seen.push(...page.events.map((e) => e.id));
      before = page.nextBefore;
    }
    expect(seen).toEqual([...ids].reverse());
    const v1 = (await app.inject({ url: '/api/v1/nodes/valkyrie01/events?order=desc&limit=1', headers: auth })).json<EventsResponse>();
    const v1all = (await app.inject({ url: '/api/v1/nodes/valkyrie01/events', headers: auth })).json<EventsResponse>();
    expect(v1.events.map((e) => e.id)).toEqual([v1all.events[v1all.events.length - 1]!.id]);
    const set = (await app.inject({ url: '/api/v1/events?order=desc&limit=1&nodeset=' + encodeURIComponent('valkyrie[01-02]'), headers: auth })).json<EventsResponse>();
    expect(['valkyrie01', 'valkyrie02']).toContain(set.events[0]!.node);
  });

  it('answers 400 for bad event query values and a cursor of the other order', async () => {
    await applyExample();
    const before = (await store.events.list({ limit: 1000 })).events.length;
    for (const q of ['order=sideways', 'order=desc&after=3', 'before=3', 'order=asc&before=3', 'before=0', 'before=x', 'limit=0', 'limit=1001', 'since=yesterday']) {
      const res = await app.inject({ url: `/api/v1/events?${q}`, headers: auth });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error.code, q).toBe('request.invalid');
      expect(res.json().error.message, q).toMatch(/order|before|after|limit|since/);
    }
    const node = await app.inject({ url: '/api/v1/nodes/valkyrie01/events?order=desc&after=1', headers: auth });
    expect(node.statusCode).toBe(400);
    expect(node.json().error.message).toMatch(/with order=desc page on with before/);
    // Nothing lost: the refusals wrote nothing and the log reads as before.
    expect((await store.events.list({ limit: 1000 })).events.length).toBe(before);
  });
});

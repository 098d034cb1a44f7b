/** Lifecycle REST routes and the server-sent event stream, through fastify inject. */
import fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../../server/http/errors.js';
import type { LifecycleActionResponse, StatusResponse } from '../../../common/api/schemas.js';
import { registerLifecycleRoutes } from '../../../server/http/routes/lifecycle.js';
import { S } from '../../../server/lifecycle/states.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';
import { formatStatus } from '../../../server/cli/commands/lifecycle.js';

let h: Harness;
let app: FastifyInstance;

async function build(withConductor = true): Promise<FastifyInstance> {
  const a = fastify({ logger: false });
  installErrorHandling(a);
  // Stands in for the admin scope's auth hook (server/http/app.ts), which names the credential.
  a.addHook('onRequest', async (req) => {
    req.principal = { user: 'test', role: 'admin', tokenId: '00000000', hash: '' };
  });
  await a.register(
    async (api) => registerLifecycleRoutes(api, { store: h.store, ...(withConductor ? { conductor: h.c } : {}), clock: h.clock.now, stream: { pollMs: 10, heartbeatMs: 20 } }),
    { prefix: '/api/v1' },
  );
  await a.ready();
  return a;
}

beforeEach(async () => {
  h = await harness({ nodes: ['n1', 'n2', 'n3'], pets: ['thor'] });
  app = await build();
});
afterEach(async () => {
  await app.close();
  await h.close();
});

/** SSE blocks → {id, event, data} */
function parseSse(body: string): { id: number; event: string; data: { id: number; node: string | null; kind: string } }[] {
  return body
    .split('\n\n')
    .filter((b) => b.includes('data: '))
    .map((b) => {
      const get = (f: string) => b.split('\n').find((l) => l.startsWith(`${f}: `))?.slice(f.length + 2) ?? '';
      return { id: Number(get('id')), event: get('event'), data: JSON.parse(get('data')) as { id: number; node: string | null; kind: string } };
    });
}

describe('POST /api/v1/nodes/reinstall', () => {
  it('starts a reinstall per node; pets refused without force; unknown nodes reported', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', headers: { 'x-fleet-actor': 'sam' }, payload: { nodeset: 'n[1-2],thor,ghost', stagger: '1/30s' } });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<LifecycleActionResponse>();
    expect(body.summary).toEqual({ total: 4, ok: 2, failed: 2 });
    expect(body.results.find((r) => r.node === 'thor')?.error?.code).toBe('auth.forbidden');
    expect(body.results.find((r) => r.node === 'ghost')?.error?.code).toBe('node.not_found');
    expect(body.results.find((r) => r.node === 'n2')?.notBefore).toBe(new Date(h.clock.ms + 30_000).toISOString());
    expect((await h.store.nodes.require('n1')).state).toBe(S.pxeArmed);
    const ev = (await h.store.events.list({ node: 'n1', kinds: ['state.changed'] })).events[0];
    expect(ev?.actor).toMatch(/^test@\S+ \(client: sam\)$/);
    const forced = await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: { nodeset: 'thor', force: true } });
    expect(forced.json<LifecycleActionResponse>().summary.ok).toBe(1);
  });

  it('validates the request', async () => {
    expect((await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: {} })).json().error.code).toBe('request.invalid');
    expect((await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: { nodeset: 'n1', stagger: 'lots' } })).json().error.code).toBe('usage.invalid');
    expect((await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: { nodeset: 'n[1-' } })).json().error.code).toBe('nodeset.invalid');
    expect((await app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: { nodeset: 'n1', profile: 'nope' } })).json().error.code).toBe('request.invalid');
  });

  it('answers not_implemented without a conductor, while status still works', async () => {
    const bare = await build(false);
    try {
      expect((await bare.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', payload: { nodeset: 'n1' } })).statusCode).toBe(501);
      expect((await bare.inject({ method: 'POST', url: '/api/v1/nodes/cancel', payload: { nodeset: 'n1' } })).statusCode).toBe(501);
      expect((await bare.inject({ url: '/api/v1/nodes/status?nodeset=n1' })).statusCode).toBe(200);
    } finally {
      await bare.close();
    }
  });
});

describe('GET /api/v1/nodes/status and POST /api/v1/nodes/cancel', () => {
  it('shows state, time in state, next timeout and last event; cancel puts nodes back to rest', async () => {
    await h.c.reinstall(['n1'], { actor: 't' });
    h.clock.advance(42);
    const res = await app.inject({ url: '/api/v1/nodes/status?nodeset=n[1-2],ghost' });
    const body = res.json<StatusResponse>();
    expect(body.missing).toEqual(['ghost']);
    expect(body.summary.byState).toEqual({ [S.pxeArmed]: 1, [S.enrolled]: 1 });
    const n1 = body.nodes.find((n) => n.name === 'n1')!;
    expect(n1).toMatchObject({ state: S.pxeArmed, inStateSeconds: 42, timeoutInSeconds: 300 - 42, lastEvent: { kind: 'state.changed', toState: S.pxeArmed } });
    expect(n1.runStartedAt).not.toBeNull();
    const cancel = await app.inject({ method: 'POST', url: '/api/v1/nodes/cancel', payload: { nodeset: 'n[1-2]' } });
    const c = cancel.json<LifecycleActionResponse>();
    expect(c.summary).toEqual({ total: 2, ok: 1, failed: 1 });
    expect(c.results[0]).toMatchObject({ node: 'n1', ok: true, from: S.pxeArmed, state: S.enrolled });
    expect(c.results[1]?.error?.code).toBe('state.invalid_transition');
    await h.c.idle();
  });

  it('shows a failed node\'s step and reason', async () => {
    await h.put('n3', S.installing, { armed: true });
    await h.fact('n3', 'install.failed', { message: 'no disk found by installer' });
    const body = (await app.inject({ url: '/api/v1/nodes/status?nodeset=n3' })).json<StatusResponse>();
    expect(body.summary.failed).toBe(1);
    expect(body.nodes[0]?.failure).toMatchObject({ step: 'install', reason: 'installer failed: no disk found by installer' });
  });
  it("lists the store's flags (bmc-mismatch and its reason) beside the lifecycle's, and fleet status shows them", async () => {
    await h.store.flags.recordReconcile('n2', { status: 'mismatch', reason: 'serial differs: agent LAB-THOR, BMC LAB-VALKYRIE02', checks: [], trigger: 'api' }, { actor: 't' });
    const body = (await app.inject({ url: '/api/v1/nodes/status?nodeset=n[1-2]' })).json<StatusResponse>();
    expect(body.nodes.find((n) => n.name === 'n1')?.flags).toEqual([]);
    expect(body.nodes.find((n) => n.name === 'n2')).toMatchObject({ flags: ['bmc-mismatch'], flagReasons: { 'bmc-mismatch': 'serial differs: agent LAB-THOR, BMC LAB-VALKYRIE02' } });
    const text = formatStatus(body, h.clock.ms);
    expect(text).toMatch(/^n2 .*bmc-mismatch$/m);
    expect(text).toContain('n2: bmc-mismatch: serial differs: agent LAB-THOR, BMC LAB-VALKYRIE02');
    // A match clears it.
    await h.store.flags.recordReconcile('n2', { status: 'match', reason: 'uuid matches', checks: [], trigger: 'api' }, { actor: 't' });
    expect((await app.inject({ url: '/api/v1/nodes/status?nodeset=n2' })).json<StatusResponse>().nodes[0]?.flags).toEqual([]);
  });
});

describe('GET /api/v1/events/stream (server-sent events)', () => {
  it('streams the events after a cursor, filtered by nodeset, then closes after maxEvents', async () => {
    const start = await h.store.events.lastId();
    await h.store.events.append({ node: 'n1', kind: 'test.one', actor: 't' });
    await h.store.events.append({ node: 'n2', kind: 'test.other-node', actor: 't' });
    await h.store.events.append({ node: 'n1', kind: 'test.two', actor: 't' });
    const res = await app.inject({ url: `/api/v1/events/stream?nodeset=n1&after=${start}&maxEvents=2` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = parseSse(res.body);
    expect(events.map((e) => e.event)).toEqual(['test.one', 'test.two']);
    expect(events.every((e) => e.data.node === 'n1' && e.id === e.data.id)).toBe(true);
    expect(res.body.startsWith('retry: 2000\n')).toBe(true);
  });

  it('follows the log live from now (a lifecycle as it happens), with Last-Event-ID and kinds filters', async () => {
    const streamed = app.inject({ url: '/api/v1/events/stream?nodeset=n1&kinds=state.changed&maxEvents=2' });
    await new Promise((r) => setTimeout(r, 50)); // the stream has its cursor
    await h.c.reinstall(['n1'], { actor: 't' });
    await h.c.tick();
    await h.c.idle();
    const res = await streamed;
    const events = parseSse(res.body);
    expect(events.map((e) => e.data.kind)).toEqual(['state.changed', 'state.changed']);
    expect(events.map((e) => (e.data as unknown as { toState: string }).toState)).toEqual([S.pxeArmed, S.powerCycling]);
    const last = events.at(-1)!.id;
    await h.fact('n1', 'boot.script_fetched', { decision: 'install' });
    const again = await app.inject({ url: '/api/v1/events/stream?nodeset=n1&kinds=state.changed&maxEvents=1', headers: { 'last-event-id': String(last) } });
    expect(parseSse(again.body).map((e) => (e.data as unknown as { toState: string }).toState)).toEqual([S.netbooting]);
  }, 10_000);

  it('ends by itself after maxSeconds, sending keep-alives meanwhile', async () => {
    const t = Date.now();
    const res = await app.inject({ url: '/api/v1/events/stream?maxSeconds=1' });
    expect(Date.now() - t).toBeGreaterThanOrEqual(900);
    expect(res.body).toContain(': keep-alive');
    expect(parseSse(res.body)).toEqual([]);
  });
});

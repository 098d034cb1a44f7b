/**
 * Enrolment, TLS and the edges of the agent service, with a real grpc-js
 * server and clients over loopback TLS, a temp data dir (the CA) and a real
 * in-memory store.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeClient, callUnary } from '../../agent/client.js';
import { enroll, makeKeyAndCsr } from '../../agent/enroll.js';
import { loadCredential } from '../../agent/state.js';
import { AgentServiceClient, EnrollRequest, type EnrollResponse } from '../../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../../common/errors.js';
import { startGrpcServer, type AgentGrpcServer, type GrpcLimits } from '../../server/grpc/index.js';
import { createCa, issueNodeCert, loadOrCreateCa, type FleetCa } from '../../server/pki/index.js';
import { openStore, type Store } from '../../server/store/index.js';
import type { ProfileSpec } from '../../server/model.js';
import { inInstall } from '../helpers/install-phase.js';

const MAC1 = '52:54:00:00:00:01';
const MAC2 = '52:54:00:00:00:02';
const MAC3 = '52:54:00:00:00:03';

const profile: ProfileSpec = {
  name: 'compute',
  os: { install: 'kickstart', tree: 'http://10.0.0.1/os' },
  kernelArgs: [],
  packages: [],
  sshKeys: [],
  roles: { chrony: { servers: ['10.0.0.1'], makestep: '1 3' }, hosts: { enabled: true } },
};

interface Env {
  store: Store;
  ca: FleetCa;
  server: AgentGrpcServer;
  dataDir: string;
  target: string;
  fp: string;
}

const tmpDirs: string[] = [];
function tmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

async function setup(limits: Partial<GrpcLimits> = {}): Promise<Env> {
  const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  await store.profiles.upsert(profile, { actor: 'test' });
  await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [MAC1], pet: false }, { actor: 'test' });
  await store.nodes.upsert({ name: 'node2', profile: 'compute', macs: [MAC2], pet: false }, { actor: 'test' });
  await store.nodes.upsert({ name: 'bare', profile: 'compute', macs: [], pet: false }, { actor: 'test' });
  await inInstall(store, 'node1', 'node2', 'bare');
  const dataDir = tmpDir('fleet-grpc-');
  const ca = await loadOrCreateCa(dataDir);
  const server = await startGrpcServer({
    store,
    ca,
    listen: '127.0.0.1:0',
    serverNames: { dnsNames: ['localhost'], ips: ['127.0.0.1'] },
    limits: { enrollFailuresPerMinute: 10_000, ...limits },
  });
  return { store, ca, server, dataDir, target: `127.0.0.1:${server.port}`, fp: ca.fingerprint };
}

async function teardown(env: Env | undefined): Promise<void> {
  if (!env) return;
  await env.server.close(500);
  await env.store.close();
}

const identity = (macs: string[], hostname = 'n') => ({ serial: 'SN1', uuid: '4c4c4544-0000-1000-8000-000000000001', macs, hostname });

function enrollOpts(env: Env, token: string, macs = [MAC1], extra: Partial<Parameters<typeof enroll>[0]> = {}) {
  return {
    server: env.target,
    token,
    caFingerprint: env.fp,
    stateDir: path.join(tmpDir('fleet-agent-state-'), 'state'),
    identity: identity(macs),
    attempts: 1,
    timeoutMs: 5000,
    ...extra,
  };
}

async function expectFleetError(p: Promise<unknown>, code: string): Promise<FleetError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(FleetError);
  expect((e as FleetError).code).toBe(code);
  return e as FleetError;
}

async function eventsOf(store: Store, kind: string) {
  return (await store.events.list({ kinds: [kind], limit: 1000 })).events;
}

async function tokenUsed(store: Store, node: string): Promise<boolean> {
  return (await eventsOf(store, 'token.used')).some((e) => e.node === node);
}

/** A raw Enroll over a no-client-cert TLS channel trusting the CA. */
async function rawEnroll(env: Env, req: Partial<EnrollRequest>): Promise<EnrollResponse> {
  const client = makeClient(env.target, { caPem: env.ca.certPem });
  try {
    return await callUnary(client, client.enroll, EnrollRequest.fromPartial(req), 5000);
  } finally {
    client.close();
  }
}

describe('enrolment', () => {
  let env: Env;
  beforeEach(async () => {
    env = await setup();
  });
  afterEach(async () => teardown(env));

  it('a good token enrols once: credential 0600 under a 0700 state dir, agent row, agent.enrolled, node cert works', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const opts = enrollOpts(env, token);
    const res = await enroll(opts);
    expect(res.node).toBe('node1');

    expect(fs.statSync(opts.stateDir).mode & 0o777).toBe(0o700);
    for (const f of ['node.key', 'node.crt', 'ca.crt', 'agent.json']) {
      expect(fs.statSync(path.join(opts.stateDir, f)).mode & 0o777, f).toBe(0o600);
    }
    const cred = await loadCredential(opts.stateDir);
    expect(cred.node).toBe('node1');
    expect(cred.caFingerprint).toBe(env.fp);

    const agent = await env.store.agents.get('node1');
    expect(agent?.identity.macs).toEqual([MAC1]);
    const enrolled = await eventsOf(env.store, 'agent.enrolled');
    expect(enrolled.map((e) => e.node)).toEqual(['node1']);
    expect(await tokenUsed(env.store, 'node1')).toBe(true);

    // The credential authenticates: heartbeat marks the node seen.
    expect((await env.store.nodes.require('node1')).lastSeen).toBeNull();
    const client = makeClient(env.target, { caPem: cred.caPem, keyPem: cred.keyPem, certPem: cred.certPem });
    try {
      const hb = await callUnary(client, client.heartbeat, { uptimeMs: 1, configVersion: '', agentVersion: 'test', bootId: '' }, 5000);
      expect(hb.configVersion).toMatch(/^sha256:[0-9a-f]{64}$/);
    } finally {
      client.close();
    }
    expect((await env.store.nodes.require('node1')).lastSeen).not.toBeNull();

    // Never the token in any event.
    const all = JSON.stringify((await env.store.events.list({ limit: 1000 })).events);
    expect(all).not.toContain(token);
  });

  it('replay of a used token is refused (token.used) and logged without the token', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await enroll(enrollOpts(env, token));
    const before = await env.store.agents.get('node1');
    await expectFleetError(enroll(enrollOpts(env, token)), 'token.used');
    const refused = await eventsOf(env.store, 'agent.enroll_refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.node).toBe('node1');
    expect((refused[0]!.details as { reason: string }).reason).toBe('token.used');
    expect(JSON.stringify(refused)).not.toContain(token);
    // The credential of the first enrolment is still the node's.
    expect((await env.store.agents.get('node1'))?.certFingerprint).toBe(before?.certFingerprint);
  });

  it('a retried Enroll with the same key (lost answer) gets the same certificate back; another key does not', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const key = await makeKeyAndCsr('n');
    const req = { token, identity: identity([MAC1]), csrPem: key.csrPem, agentVersion: 't' };
    const a = await rawEnroll(env, req);
    const b = await rawEnroll(env, req);
    expect(b.certificatePem).toBe(a.certificatePem);
    expect(await eventsOf(env.store, 'agent.enrolled')).toHaveLength(1);
    const other = await makeKeyAndCsr('n');
    await expectFleetError(rawEnroll(env, { ...req, csrPem: other.csrPem }), 'token.used');
  });

  it('an expired token is refused (token.expired)', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 1, actor: 'test' });
    await new Promise((r) => setTimeout(r, 10));
    await expectFleetError(enroll(enrollOpts(env, token)), 'token.expired');
    expect(await env.store.agents.get('node1')).toBeNull();
    const refused = await eventsOf(env.store, 'agent.enroll_refused');
    expect((refused[0]!.details as { reason: string }).reason).toBe('token.expired');
  });

  it("another node's token is refused (token.wrong_node, PERMISSION_DENIED) and stays usable by its node", async () => {
    const { token } = await env.store.tokens.issue('node2', { ttlMs: 60_000, actor: 'test' });
    const e = await expectFleetError(enroll(enrollOpts(env, token, [MAC1])), 'token.wrong_node');
    expect((e.details as { grpc: number }).grpc).toBe(status.PERMISSION_DENIED);
    expect(await env.store.agents.get('node1')).toBeNull();
    expect(await env.store.agents.get('node2')).toBeNull();
    expect(await tokenUsed(env.store, 'node2')).toBe(false);
    expect((await enroll(enrollOpts(env, token, [MAC2]))).node).toBe('node2');
  });

  it('a machine whose MACs are none of the token node\'s is refused (auth.forbidden); the token stays unused', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await expectFleetError(enroll(enrollOpts(env, token, [MAC3])), 'auth.forbidden');
    expect(await tokenUsed(env.store, 'node1')).toBe(false);
    const refused = await eventsOf(env.store, 'agent.enroll_refused');
    expect(refused[0]!.node).toBe('node1');
    expect((refused[0]!.details as { reason: string }).reason).toBe('auth.forbidden');
  });

  it('MACs of two nodes are refused; a node that declares no MACs accepts any machine (recorded)', async () => {
    const t1 = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await expectFleetError(enroll(enrollOpts(env, t1.token, [MAC1, MAC2])), 'auth.forbidden');
    const t2 = await env.store.tokens.issue('bare', { ttlMs: 60_000, actor: 'test' });
    expect((await enroll(enrollOpts(env, t2.token, [MAC3]))).node).toBe('bare');
    const ev = (await eventsOf(env.store, 'agent.enrolled')).find((e) => e.node === 'bare');
    expect((ev?.details as { macsKnown: boolean }).macsKnown).toBe(false);
  });

  it('garbage, unknown and missing tokens are refused with distinct codes', async () => {
    await expectFleetError(enroll(enrollOpts(env, 'x'.repeat(43))), 'auth.invalid'); // well-formed, unknown
    await expectFleetError(rawEnroll(env, { token: 'not a token!', identity: identity([MAC1]), csrPem: (await makeKeyAndCsr('n')).csrPem }), 'auth.invalid');
    await expectFleetError(rawEnroll(env, { token: '', identity: identity([MAC1]), csrPem: (await makeKeyAndCsr('n')).csrPem }), 'auth.missing');
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await expectFleetError(rawEnroll(env, { token, identity: identity([MAC1]), csrPem: 'garbage' }), 'request.invalid');
    await expectFleetError(rawEnroll(env, { token, identity: identity(['zz:zz']), csrPem: (await makeKeyAndCsr('n')).csrPem }), 'request.invalid');
    expect(await tokenUsed(env.store, 'node1')).toBe(false);
    const reasons = (await eventsOf(env.store, 'agent.enroll_refused')).map((e) => (e.details as { reason: string }).reason);
    expect(reasons).toEqual(['auth.invalid', 'auth.invalid', 'auth.missing', 'request.invalid', 'request.invalid']);
  });

  it('a wrong CA fingerprint stops the agent before it sends anything', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const other = await createCa();
    const opts = enrollOpts(env, token, [MAC1], { caFingerprint: other.fingerprint, attempts: 5 });
    const e = await expectFleetError(enroll(opts), 'auth.invalid');
    expect(e.message).toMatch(/do not include the CA/);
    expect(env.server.stats().calls.enroll ?? 0).toBe(0);
    expect(await tokenUsed(env.store, 'node1')).toBe(false);
    expect(fs.existsSync(opts.stateDir)).toBe(false);
    // The same agent with the right fingerprint then enrols: the token was never spent.
    expect((await enroll({ ...opts, caFingerprint: env.fp })).node).toBe('node1');
    expect(env.server.stats().calls.enroll).toBe(1);
  });

  it('a plaintext client gets nowhere: no call reaches a handler, nothing changes', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const client = new AgentServiceClient(env.target, credentials.createInsecure());
    try {
      const e = await new Promise<ServiceError | null>((resolve) => {
        client.enroll(EnrollRequest.fromPartial({ token, identity: identity([MAC1]) }), new Metadata(), { deadline: Date.now() + 3000 }, (err) => resolve(err));
      });
      expect(e).not.toBeNull();
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.INTERNAL]).toContain(e!.code);
    } finally {
      client.close();
    }
    expect(env.server.stats().calls.enroll ?? 0).toBe(0);
    expect(await tokenUsed(env.store, 'node1')).toBe(false);
  });

  it('the token use is recorded with the peer address (token.used, agent.enrolled)', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await enroll(enrollOpts(env, token));
    const [used] = await eventsOf(env.store, 'token.used');
    expect(used).toMatchObject({ node: 'node1', actor: 'agent', details: { purpose: 'enrol', ip: '127.0.0.1' } });
    const [enrolled] = await eventsOf(env.store, 'agent.enrolled');
    expect((enrolled!.details as { peer: string }).peer).toBe('127.0.0.1');
  });

  it('a revoked token (install finished, cancelled, reinstalled) is refused (token.revoked) with the reason', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    await env.store.tokens.revokeAll('node1', { actor: 'netboot', reason: 'install-finished' });
    const e = await expectFleetError(enroll(enrollOpts(env, token)), 'token.revoked');
    expect(e.message).toMatch(/revoked at .*\(install-finished\)/);
    expect((e.details as { grpc: number }).grpc).toBe(status.UNAUTHENTICATED);
    expect(await env.store.agents.get('node1')).toBeNull();
    const [refused] = await eventsOf(env.store, 'agent.enroll_refused');
    expect(refused).toMatchObject({ node: 'node1', details: { reason: 'token.revoked', peer: '127.0.0.1' } });
  });

  it('outside an install phase enrolment is refused (enroll.not_installing, FAILED_PRECONDITION); the token stays unused', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    // Every resting and post-install state (the agent runs from the installed disk there), and
    // installing without the armed flag.
    const outside: [string, boolean][] = [
      ...['ready', 'enrolled', 'failed', 'pxe-armed', 'installed', 'disk-armed', 'first-boot', 'configuring'].map((st): [string, boolean] => [st, true]),
      ['installing', false],
    ];
    for (const [state, armed] of outside) {
      await env.store.nodes.setState('node1', state, { actor: 'test' });
      await env.store.nodes.setArmed('node1', armed, { actor: 'test' });
      const e = await expectFleetError(enroll(enrollOpts(env, token)), 'enroll.not_installing');
      expect((e.details as { grpc: number }).grpc, state).toBe(status.FAILED_PRECONDITION);
      expect(e.message, state).toMatch(armed ? new RegExp(`node1 is ${state}, not installing`) : /not armed/);
    }
    expect(await tokenUsed(env.store, 'node1')).toBe(false);
    expect(await env.store.agents.get('node1')).toBeNull();
    const refused = await eventsOf(env.store, 'agent.enroll_refused');
    expect(refused).toHaveLength(outside.length);
    for (const r of refused) expect(r).toMatchObject({ node: 'node1', details: { reason: 'enroll.not_installing', peer: '127.0.0.1' } });
    expect(JSON.stringify(refused)).not.toContain(token);
    // Back in the install (the %post of a kickstart): the same token enrols, in each install state.
    for (const state of ['power-cycling', 'netbooting']) {
      await env.store.nodes.setState('node1', state, { actor: 'test' });
      await env.store.nodes.setArmed('node1', true, { actor: 'test' });
      const t = await env.store.tokens.issue('node2', { ttlMs: 60_000, actor: 'test' });
      await env.store.nodes.setState('node2', state, { actor: 'test' });
      expect((await enroll(enrollOpts(env, t.token, [MAC2], { force: true }))).node, state).toBe('node2');
    }
    await env.store.nodes.setState('node1', 'installing', { actor: 'test' });
    expect((await enroll(enrollOpts(env, token))).node).toBe('node1');
  });

  it('a retried Enroll (same key) after the install ended is refused too', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const key = await makeKeyAndCsr('n');
    const req = { token, identity: identity([MAC1]), csrPem: key.csrPem, agentVersion: 't' };
    await rawEnroll(env, req);
    await env.store.nodes.setState('node1', 'ready', { actor: 'test' });
    await env.store.nodes.setArmed('node1', false, { actor: 'test' });
    await expectFleetError(rawEnroll(env, req), 'enroll.not_installing');
  });

  it('an agent that cannot reach the server gives up after the configured attempts, with backoff', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const lines: string[] = [];
    const t0 = Date.now();
    const e = await expectFleetError(
      enroll({ ...enrollOpts(env, token), server: '127.0.0.1:1', attempts: 3, backoff: { initialMs: 50, maxMs: 100, random: () => 1 }, log: (l) => lines.push(l) }),
      'unavailable',
    );
    expect(e.message).toMatch(/after 3 attempts/);
    expect(lines.filter((l) => l.includes('retrying'))).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150); // 50 + 100
  });
});

describe('authenticated methods', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup();
  });
  afterAll(async () => teardown(env));

  async function enrolled(node: string, mac: string) {
    const { token } = await env.store.tokens.issue(node, { ttlMs: 60_000, actor: 'test' });
    const opts = enrollOpts(env, token, [mac], { force: true });
    await enroll(opts);
    return loadCredential(opts.stateDir);
  }

  async function heartbeatWith(trust: { caPem: string; keyPem?: string; certPem?: string }) {
    const client = makeClient(env.target, trust);
    try {
      return await callUnary(client, client.heartbeat, { uptimeMs: 0, configVersion: '', agentVersion: '', bootId: '' }, 5000);
    } finally {
      client.close();
    }
  }

  it('a call without a client certificate is UNAUTHENTICATED (every method but Enroll)', async () => {
    const client = makeClient(env.target, { caPem: env.ca.certPem });
    try {
      const calls: [string, () => Promise<unknown>][] = [
        ['heartbeat', () => callUnary(client, client.heartbeat, { uptimeMs: 0, configVersion: '', agentVersion: '', bootId: '' }, 5000)],
        ['getConfig', () => callUnary(client, client.getConfig, { knownVersion: '' }, 5000)],
        ['reportBoot', () => callUnary(client, client.reportBoot, { bootId: 'b', uptimeMs: 0, kernelCmdline: '', rootOnLocalDisk: true, rootSource: '', rootFstype: '', agentVersion: '', kernel: '' }, 5000)],
        ['reportApply', () => callUnary(client, client.reportApply, { configVersion: 'v', results: [], startedAtMs: 0, durationMs: 0 }, 5000)],
        ['reportInventory', () => callUnary(client, client.reportInventory, {}, 5000)],
      ];
      for (const [name, call] of calls) {
        const e = await expectFleetError(call(), 'auth.missing');
        expect((e.details as { grpc: number }).grpc, name).toBe(status.UNAUTHENTICATED);
      }
      const watchErr = await new Promise<ServiceError>((resolve) => {
        const s = client.watch({ agentVersion: '' });
        s.on('error', resolve);
        s.on('data', () => {});
      });
      expect(watchErr.code).toBe(status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
    expect(env.server.watching()).toEqual([]);
    expect(await env.store.inventory.count()).toBe(0);
  });

  it('a certificate from another CA is UNAUTHENTICATED', async () => {
    const other = await createCa();
    const key = await makeKeyAndCsr('node1');
    const cert = await issueNodeCert(other, 'node1', key.csrPem);
    await expectFleetError(heartbeatWith({ caPem: env.ca.certPem, keyPem: key.keyPem, certPem: cert.certPem }), 'auth.missing');
  });

  it('a certificate of this CA that is not the node\'s current one (re-enrolled, or never recorded) is UNAUTHENTICATED', async () => {
    const first = await enrolled('node1', MAC1);
    await heartbeatWith(first);
    const second = await enrolled('node1', MAC1);
    await heartbeatWith(second);
    await expectFleetError(heartbeatWith(first), 'auth.invalid');
    // Signed by the fleet CA but never issued through Enroll.
    const key = await makeKeyAndCsr('node2');
    const stray = await issueNodeCert(env.ca, 'node2', key.csrPem);
    await expectFleetError(heartbeatWith({ caPem: env.ca.certPem, keyPem: key.keyPem, certPem: stray.certPem }), 'auth.invalid');
  });

  it('removing the node revokes its credential', async () => {
    const cred = await enrolled('node2', MAC2);
    await heartbeatWith(cred);
    await env.store.nodes.remove('node2', { actor: 'test' });
    await expectFleetError(heartbeatWith(cred), 'auth.invalid');
  });
});

describe('message limits and fuzzing', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup({ maxMessageBytes: 256 * 1024, maxEnrollBytes: 16 * 1024 });
  });
  afterAll(async () => teardown(env));

  function rawClient(trust?: { keyPem: string; certPem: string }): Client {
    const creds = credentials.createSsl(
      Buffer.from(env.ca.certPem),
      trust ? Buffer.from(trust.keyPem) : null,
      trust ? Buffer.from(trust.certPem) : null,
    );
    return new Client(env.target, creds);
  }

  function rawCall(client: Client, method: string, body: Buffer): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        `/fleet.v1.AgentService/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        new Metadata(),
        { deadline: Date.now() + 10_000 },
        (err) => resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' }),
      );
    });
  }

  async function snapshot(store: Store) {
    const events = (await store.events.list({ limit: 1000 })).events;
    return {
      nodes: JSON.stringify(await store.nodes.list()),
      agents: JSON.stringify(await store.agents.list()),
      inventory: await store.inventory.count(),
      tokensUsed: events.filter((e) => e.kind === 'token.used').length,
      otherEvents: events.filter((e) => e.kind !== 'agent.enroll_refused').length,
    };
  }

  it('an oversized Enroll is RESOURCE_EXHAUSTED and spends nothing, even with a valid token', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const before = await snapshot(env.store);
    const key = await makeKeyAndCsr('n');
    const body = Buffer.from(
      EnrollRequest.encode(EnrollRequest.fromPartial({ token, identity: identity([MAC1], 'h'.repeat(20_000)), csrPem: key.csrPem })).finish(),
    );
    expect(body.length).toBeGreaterThan(16 * 1024);
    const client = rawClient();
    try {
      const res = await rawCall(client, 'Enroll', body);
      expect(res.code).toBe(status.RESOURCE_EXHAUSTED);
    } finally {
      client.close();
    }
    const after = await snapshot(env.store);
    expect({ ...after, otherEvents: 0 }).toEqual({ ...before, otherEvents: 0 });
    expect(after.otherEvents).toBe(before.otherEvents);
  });

  it('a message over the server-wide limit is RESOURCE_EXHAUSTED before any handler runs', async () => {
    const { token } = await env.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    const opts = enrollOpts(env, token, [MAC1], { force: true });
    await enroll(opts);
    const cred = await loadCredential(opts.stateDir);
    const before = await snapshot(env.store);
    const calls = env.server.stats().calls.reportInventory ?? 0;
    const client = makeClient(env.target, cred);
    try {
      const big = { inventory: { collectedAtMs: 1, disks: [], nics: [], gpus: [], infiniband: [], warnings: ['x'.repeat(300 * 1024)] } };
      const e = await expectFleetError(callUnary(client, client.reportInventory, big, 10_000), 'request.too_large');
      expect((e.details as { grpc: number }).grpc).toBe(status.RESOURCE_EXHAUSTED);
    } finally {
      client.close();
    }
    expect(await snapshot(env.store)).toEqual(before);
    expect(env.server.stats().calls.reportInventory ?? 0).toBe(calls);
  });

  it('random bytes to every method never crash the server and change nothing', async () => {
    const before = await snapshot(env.store);
    const { token } = await env.store.tokens.issue('node2', { ttlMs: 60_000, actor: 'test' });
    const baseline = await snapshot(env.store);
    const valid = Buffer.from(
      EnrollRequest.encode(EnrollRequest.fromPartial({ token: 'A'.repeat(43), identity: identity([MAC2]), csrPem: (await makeKeyAndCsr('n')).csrPem })).finish(),
    );
    const client = rawClient();
    const seen = new Set<number>();
    try {
      const methods = ['Enroll', 'ReportInventory', 'GetConfig', 'ReportApply', 'ReportBoot', 'Heartbeat'];
      for (let i = 0; i < 300; i++) {
        let body: Buffer;
        if (i % 3 === 0) {
          // Mutations of a valid request (with an unknown token).
          body = Buffer.from(valid);
          for (let k = 0; k < 1 + (i % 7); k++) {
            const at = (i * 7919 + k * 104729) % body.length;
            body[at] = body[at]! ^ (1 << (k % 8));
          }
        } else {
          body = randomBytes(i % 5 === 0 ? 0 : 1 + ((i * 37) % 600));
        }
        const method = methods[i % methods.length]!;
        const res = await rawCall(client, method, body);
        seen.add(res.code);
        expect([status.INTERNAL, status.UNKNOWN], `${method}: ${res.details}`).not.toContain(res.code);
        if (method !== 'Enroll') expect(res.code, method).toBe(status.UNAUTHENTICATED);
      }
    } finally {
      client.close();
    }
    expect(seen.has(status.INVALID_ARGUMENT)).toBe(true);
    const after = await snapshot(env.store);
    expect(after).toEqual(baseline);
    expect(after.tokensUsed).toBe(before.tokensUsed);
    // The server still serves: the token issued before the fuzzing still enrols its node.
    expect((await enroll(enrollOpts(env, token, [MAC2]))).node).toBe('node2');
  });

  it('random bytes from an enrolled node are INVALID_ARGUMENT or handled, never INTERNAL', async () => {
    const { token } = await env.store.tokens.issue('bare', { ttlMs: 60_000, actor: 'test' });
    const opts = enrollOpts(env, token, [MAC3]);
    await enroll(opts);
    const cred = await loadCredential(opts.stateDir);
    const client = rawClient(cred);
    try {
      for (let i = 0; i < 120; i++) {
        const method = ['ReportInventory', 'GetConfig', 'ReportApply', 'ReportBoot', 'Heartbeat'][i % 5]!;
        const res = await rawCall(client, method, randomBytes(1 + ((i * 53) % 400)));
        expect([status.INTERNAL, status.UNKNOWN, status.UNAUTHENTICATED], `${method}: ${res.details}`).not.toContain(res.code);
      }
    } finally {
      client.close();
    }
    const hb = makeClient(env.target, cred);
    try {
      await callUnary(hb, hb.heartbeat, { uptimeMs: 0, configVersion: '', agentVersion: '', bootId: '' }, 5000);
    } finally {
      hb.close();
    }
  });

  it('refused enrolments from one address are rate limited', async () => {
    const limited = await setup({ enrollFailuresPerMinute: 3 });
    try {
      for (let i = 0; i < 3; i++) await expectFleetError(rawEnroll(limited, { token: 'B'.repeat(43), identity: identity([MAC1]), csrPem: (await makeKeyAndCsr('n')).csrPem }), 'auth.invalid');
      const { token } = await limited.store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
      await expectFleetError(enroll(enrollOpts(limited, token)), 'rate_limited');
      await expectFleetError(enroll(enrollOpts(limited, token)), 'rate_limited');
      expect(await tokenUsed(limited.store, 'node1')).toBe(false);
      const refused = await eventsOf(limited.store, 'agent.enroll_refused');
      expect(refused.map((e) => (e.details as { reason: string }).reason)).toEqual(['auth.invalid', 'auth.invalid', 'auth.invalid', 'rate_limited']);
    } finally {
      await teardown(limited);
    }
  });
});

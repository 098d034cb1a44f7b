/**
 * The agent services without the wire (server/agents): a real in-memory
 * store, a CA in a temp dir, a recording stand-in for the fact recorder; no
 * TLS, no socket. What reaches the conductor (recorder.recorded) is checked
 * here; the gRPC edge is covered by test/integration/grpc-*.test.ts.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeKeyAndCsr } from '../../../agent/enroll.js';
import { CommandKind, EnrollRequest, Inventory, RoleOutcome, type Command, type ReportBootRequest } from '../../../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../../../common/errors.js';
import { nodeStatuses } from '../../../server/lifecycle/status.js';
import { EVENT } from '../../../common/events.js';
import { AGENT_COMMAND } from '../../../common/commands.js';
import { createAgentServices, type AgentServices, type CommandSink } from '../../../server/agents/index.js';
import { createRecorder, type Fact, type FactRecorder } from '../../../server/lifecycle/record.js';
import { loadOrCreateCa, type FleetCa } from '../../../server/pki/index.js';
import { openStore, type Store } from '../../../server/store/index.js';
import type { ProfileSpec } from '../../../server/model.js';
import { inInstall } from '../../helpers/install-phase.js';

const MAC1 = '52:54:00:00:00:01';
const MAC2 = '52:54:00:00:00:02';
const PEER = '10.0.0.9';

const profile: ProfileSpec = {
  name: 'compute',
  os: { install: 'kickstart', tree: 'http://10.0.0.1/os' },
  kernelArgs: [],
  packages: [],
  sshKeys: [],
  roles: { chrony: { servers: ['10.0.0.1'], makestep: '1 3' } },
};

/** A recorder that only remembers what it was told. */
function spyRecorder(): FactRecorder & { told: Pick<Fact, 'node' | 'kind' | 'details'>[]; written: Fact[] } {
  const told: Pick<Fact, 'node' | 'kind' | 'details'>[] = [];
  const written: Fact[] = [];
  return {
    told,
    written,
    async record(f) {
      written.push(f);
    },
    async recorded(f) {
      told.push(f);
    },
  };
}

let dataDir: string;
let ca: FleetCa;
beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-agents-'));
  ca = await loadOrCreateCa(dataDir);
});
const stores: Store[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

interface Env {
  store: Store;
  services: AgentServices;
  recorder: ReturnType<typeof spyRecorder>;
}

async function setup(): Promise<Env> {
  const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  stores.push(store);
  await store.profiles.upsert(profile, { actor: 'test' });
  await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [MAC1], pet: false }, { actor: 'test' });
  await store.nodes.upsert({ name: 'node2', profile: 'compute', macs: [MAC2], pet: false }, { actor: 'test' });
  await inInstall(store, 'node1', 'node2');
  const recorder = spyRecorder();
  const services = createAgentServices({ store, ca, recorder, limits: { enrollFailuresPerMinute: 3 } });
  return { store, services, recorder };
}

async function enrolRequest(store: Store, node: string, macs: string[], token?: string): Promise<EnrollRequest> {
  const t = token ?? (await store.tokens.issue(node, { ttlMs: 60_000, actor: 'test' })).token;
  const { csrPem } = await makeKeyAndCsr(node);
  return EnrollRequest.fromPartial({ token: t, csrPem, agentVersion: '1.0', identity: { serial: 'SN1', uuid: 'U-1', macs, hostname: node } });
}

async function refusal(p: Promise<unknown>): Promise<FleetError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FleetError);
  return e as FleetError;
}

async function eventsOf(store: Store, kind: string) {
  return (await store.events.list({ kinds: [kind], limit: 100 })).events.map((e) => ({ ...e, details: e.details as Record<string, unknown> }));
}

/** Enrols node1 and answers its certificate as the handshake would give it (DER). */
async function enrolled(env: Env): Promise<Uint8Array> {
  const res = await env.services.enroll(await enrolRequest(env.store, 'node1', [MAC1]), PEER);
  return new X509Certificate(res.certificatePem).raw;
}

const boot = (bootId: string): ReportBootRequest => ({
  bootId,
  uptimeMs: 1000,
  kernel: '6.1',
  kernelCmdline: 'root=/dev/sda2 inst.ks=http://x/ks?token=SECRET123',
  rootOnLocalDisk: true,
  rootSource: '/dev/sda2',
  rootFstype: 'xfs',
  agentVersion: '1.0',
  efi: { bootCurrent: '0001', bootNext: '', bootOrder: ['0001'], entries: [{ id: '0001', label: 'AlmaLinux', active: true }] },
});

describe('enrolment', () => {
  let env: Env;
  beforeEach(async () => {
    env = await setup();
  });

  it('a good token buys a certificate for the CSR; the token is used, agent.enrolled written; the certificate authenticates', async () => {
    const res = await env.services.enroll(await enrolRequest(env.store, 'node1', [MAC1]), PEER);
    expect(res.nodeName).toBe('node1');
    expect(res.caCertificatePem).toBe(ca.certPem);
    expect(res.notAfterMs).toBeGreaterThan(Date.now());
    expect(await eventsOf(env.store, EVENT.agentEnrolled)).toHaveLength(1);
    expect((await eventsOf(env.store, EVENT.tokenUsed))[0]).toMatchObject({ node: 'node1' });
    expect(await env.services.authenticate(new X509Certificate(res.certificatePem).raw)).toBe('node1');
    // Enrolment is told to the conductor (an adopting node moves on; in an install check-agent reads the row).
    expect(env.recorder.told).toEqual([{ node: 'node1', kind: EVENT.agentEnrolled, details: { peer: PEER, repeated: false } }]);
  });

  it('refuses a used token, an unknown token, a malformed one and a machine with another node\'s MACs, each with agent.enroll_refused', async () => {
    const first = await enrolRequest(env.store, 'node1', [MAC1]);
    await env.services.enroll(first, PEER);
    // Used again with another key: refused (the same key would get its certificate back).
    const again = await enrolRequest(env.store, 'node1', [MAC1], first.token);
    expect((await refusal(env.services.enroll(again, PEER))).code).toBe('token.used');
    expect((await refusal(env.services.enroll({ ...again, token: 'x'.repeat(32) }, PEER))).code).toBe('auth.invalid');
    expect((await refusal(env.services.enroll({ ...again, token: 'bad token!' }, PEER))).code).toBe('auth.invalid');
    const refused = await eventsOf(env.store, EVENT.agentEnrollRefused);
    expect(refused.map((e) => e.details['reason']).sort()).toEqual(['auth.invalid', 'auth.invalid', 'token.used']);
    expect(refused.every((e) => e.details['peer'] === PEER)).toBe(true);
    expect(JSON.stringify(refused)).not.toContain(first.token);
  });

  it('refuses outside an install phase without using the token up', async () => {
    await env.store.nodes.setState('node2', 'ready', { actor: 'test' });
    const req = await enrolRequest(env.store, 'node2', [MAC2]);
    expect((await refusal(env.services.enroll(req, PEER))).code).toBe('enroll.not_installing');
    expect(await eventsOf(env.store, EVENT.tokenUsed)).toEqual([]);
    expect((await eventsOf(env.store, EVENT.agentEnrollRefused))[0]).toMatchObject({ node: 'node2' });
  });

  it('a request that did not decode is refused and counted; past the limit the peer is rate limited (logged once)', async () => {
    const bad = new FleetError('request.invalid', 'not a protobuf message');
    for (let i = 0; i < 3; i++) expect((await refusal(env.services.enroll(bad, PEER))).code).toBe('request.invalid');
    const good = await enrolRequest(env.store, 'node1', [MAC1]);
    expect((await refusal(env.services.enroll(good, PEER))).code).toBe('rate_limited');
    expect((await refusal(env.services.enroll(good, PEER))).code).toBe('rate_limited');
    const reasons = (await eventsOf(env.store, EVENT.agentEnrollRefused)).map((e) => e.details['reason']);
    expect(reasons.filter((r) => r === 'rate_limited')).toHaveLength(1);
    // Another address is not held back.
    expect((await env.services.enroll(good, '10.0.0.10')).nodeName).toBe('node1');
  });

  it('authenticate refuses no certificate and a certificate that is no longer the current one', async () => {
    expect((await refusal(env.services.authenticate(undefined))).code).toBe('auth.missing');
    const old = await enrolled(env);
    await inInstall(env.store, 'node1');
    await enrolled(env); // re-enrolment: a new certificate
    expect((await refusal(env.services.authenticate(old))).code).toBe('auth.invalid');
  });
});

describe('reports', () => {
  let env: Env;
  beforeEach(async () => {
    env = await setup();
    await enrolled(env);
    env.recorder.told.length = 0; // the enrolment's own fact (checked under enrolment)
  });

  it('a boot report is stored once per boot id (redacted, assessed) and told to the conductor every time, with isNewBoot', async () => {
    await env.services.reportBoot('node1', boot('b-1'));
    await env.services.reportBoot('node1', boot('b-1'));
    const rows = await eventsOf(env.store, EVENT.agentBoot);
    expect(rows).toHaveLength(1);
    expect(String(rows[0]!.details['kernelCmdline'])).not.toContain('SECRET123');
    const assessment = { rootOnLocalDisk: true, firmwareEntry: { id: '0001', label: 'AlmaLinux' }, firmwareVia: 'disk', bootNextPending: null, networkFirst: false, notes: [] };
    expect(rows[0]!.details['assessment']).toEqual(assessment);
    expect(env.recorder.told).toEqual([
      { node: 'node1', kind: EVENT.agentBoot, details: { bootId: 'b-1', assessment, isNewBoot: true } },
      { node: 'node1', kind: EVENT.agentBoot, details: { bootId: 'b-1', assessment, isNewBoot: false } },
    ]);
    expect(env.recorder.written).toEqual([]);
    expect((await refusal(env.services.reportBoot('node1', boot('')))).code).toBe('request.invalid');
    expect(env.recorder.told).toHaveLength(2);
  });

  it('a boot report names the image the node runs: kept when it looks like one, dropped when not', async () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    await env.services.reportBoot('node1', { ...boot('b-7'), image: { name: 'lab', digest, install: 'stateless' } });
    await env.services.reportBoot('node1', { ...boot('b-8'), image: { name: 'lab', digest: 'sha256:../../etc', install: 'stateless' } });
    const rows = await eventsOf(env.store, EVENT.agentBoot);
    expect(rows.map((r) => r.details['image'])).toEqual([{ name: 'lab', digest, install: 'stateless' }, undefined]);
    expect(env.recorder.told[0]!.details).toMatchObject({ image: { name: 'lab', digest, install: 'stateless' } });
    // fleet status: the last report names none (the bad one was dropped), so no image; the one before did.
    expect((await nodeStatuses(env.store, ['node1'])).nodes[0]!.image).toBeNull();
    await env.services.reportBoot('node1', { ...boot('b-9'), image: { name: 'lab', digest, install: 'stateless' } });
    expect((await nodeStatuses(env.store, ['node1'])).nodes[0]).toMatchObject({ install: expect.any(String), image: { name: 'lab', digest, install: 'stateless' } });
  });

  it('an apply report is stored and told as agent.applied or agent.apply_failed with the failed roles', async () => {
    const result = (role: string, outcome: RoleOutcome) => ({ role, outcome, message: '', durationMs: 1 });
    await env.services.reportApply('node1', { configVersion: 'v1', startedAtMs: 0, durationMs: 5, results: [result('chrony', RoleOutcome.ROLE_OUTCOME_OK)] });
    await env.services.reportApply('node1', { configVersion: 'v2', startedAtMs: 0, durationMs: 5, results: [result('chrony', RoleOutcome.ROLE_OUTCOME_FAILED), result('hosts', RoleOutcome.ROLE_OUTCOME_CHANGED)] });
    expect(env.recorder.told).toEqual([
      { node: 'node1', kind: EVENT.agentApplied, details: { version: 'v1', failed: [] } },
      { node: 'node1', kind: EVENT.agentApplyFailed, details: { version: 'v2', failed: ['chrony'] } },
    ]);
    const failed = await eventsOf(env.store, EVENT.agentApplyFailed);
    expect(failed[0]!.details).toMatchObject({ version: 'v2', failed: ['chrony'], results: [{ role: 'chrony', outcome: 'failed' }, { role: 'hosts', outcome: 'changed' }] });
    expect((await env.store.agents.get('node1'))?.appliedVersion).toBe('v1');
    expect((await refusal(env.services.reportApply('node1', { configVersion: '', startedAtMs: 0, durationMs: 0, results: [] }))).code).toBe('request.invalid');
  });

  it('an inventory report is stored with its collection time and tells the conductor nothing', async () => {
    const collectedAtMs = Date.parse('2025-01-02T03:04:05.000Z');
    const res = await env.services.reportInventory('node1', { inventory: Inventory.fromPartial({ collectedAtMs, warnings: ['gpus: none'] }) });
    const latest = await env.store.inventory.latest('node1');
    expect(latest).toMatchObject({ node: 'node1', collectedAt: '2025-01-02T03:04:05.000Z' });
    expect(res.recordedAtMs).toBe(Date.parse(latest!.reportedAt));
    expect(env.recorder.told).toEqual([]);
    expect((await refusal(env.services.reportInventory('node1', {}))).code).toBe('request.invalid');
  });

  it('agent.inventory says whether the hardware changed, never against a partial report', async () => {
    const complete = Inventory.fromPartial({ cpu: { model: 'EPYC', threads: 4, cores: 4, sockets: 1 }, memory: { totalBytes: 8 * 1024 ** 3 }, bios: { version: '1.0' } });
    const partial = Inventory.fromPartial({
      ...complete,
      memory: { totalBytes: 0 },
      completeness: { partial: true, unknown: [{ section: 'memory', reason: 'mem: timed out after 10000 ms' }] },
    });
    const send = (inventory: Inventory, collectedAtMs: number) => env.services.reportInventory('node1', { inventory: { ...inventory, collectedAtMs } });
    await send(complete, 1); // first: nothing to compare
    await send(partial, 2); // memory unknown: not a change; BIOS the same
    await send({ ...complete, bios: { vendor: '', version: '2.0', releaseDate: '', uefi: false } }, 3); // against a partial baseline: no comparison
    await send(complete, 4); // BIOS back to 1.0: a change against a complete baseline
    const details = (await eventsOf(env.store, EVENT.agentInventory)).map((e) => e.details);
    expect(details.map(({ partial, unknown, hardwareChanged, changes, refused }) => ({ partial, unknown, hardwareChanged, changes, refused }))).toEqual([
      { partial: false, unknown: [], hardwareChanged: null, changes: [], refused: undefined },
      { partial: true, unknown: ['memory'], hardwareChanged: false, changes: [], refused: undefined },
      { partial: false, unknown: [], hardwareChanged: null, changes: [], refused: 'baseline is partial (memory unknown): no comparison' },
      { partial: false, unknown: [], hardwareChanged: true, changes: ['bios-version'], refused: undefined },
    ]);
    // `changed` still says whether the report as sent differs (its collection time alone does)
    expect(details.map((d) => d.changed)).toEqual([null, true, true, true]);
  });

  it('GetConfig answers the roles, then unchanged for a known version; heartbeat answers the same version', async () => {
    const cfg = await env.services.getConfig('node1', { knownVersion: '' });
    expect(cfg).toMatchObject({ profile: 'compute', roles: ['chrony'], schema: 'fleet.roles/v1' });
    expect(await env.services.getConfig('node1', { knownVersion: cfg.version })).toMatchObject({ unchanged: true, rolesJson: '' });
    const hb = await env.services.heartbeat('node1', { agentVersion: '1.1', uptimeMs: 1, configVersion: '', bootId: 'b-1' });
    expect(hb.configVersion).toBe(cfg.version);
    expect((await env.store.agents.get('node1'))?.agentVersion).toBe('1.1');
  });
});

describe('commands', () => {
  let env: Env;
  beforeEach(async () => {
    env = await setup();
  });

  function sink(): CommandSink & { got: Command[]; ended: boolean } {
    return {
      got: [],
      ended: false,
      cancelled: false,
      write(c) {
        this.got.push(c);
      },
      end() {
        this.ended = true;
      },
    };
  }

  it('a push reaches the node\'s stream; without one it is not delivered; both are agent.command events', async () => {
    const { commands } = env.services;
    expect(await commands.push('node1', { kind: AGENT_COMMAND.reboot, reason: 'test' })).toMatchObject({ delivered: false });
    const s = sink();
    await commands.watch('node1');
    const done = commands.attach('node1', s);
    expect(commands.watching()).toEqual(['node1']);
    const sent = await commands.push('node1', { kind: AGENT_COMMAND.applyConfig }, { actor: 'admin', cause: 'cli' });
    expect(sent.delivered).toBe(true);
    expect(s.got).toHaveLength(1);
    expect(s.got[0]).toMatchObject({ id: sent.id, kind: CommandKind.COMMAND_KIND_APPLY_CONFIG });
    const rows = await eventsOf(env.store, EVENT.agentCommand);
    expect(rows.map((e) => [e.actor, e.details['command'], e.details['delivered']])).toEqual(
      expect.arrayContaining([
        ['server', AGENT_COMMAND.reboot, false],
        ['admin', AGENT_COMMAND.applyConfig, true],
      ]),
    );
    done();
    expect(commands.watching()).toEqual([]);
  });

  it('a new stream replaces and ends the old; the old one closing later does not drop the new', async () => {
    const { commands } = env.services;
    const a = sink();
    const b = sink();
    const doneA = commands.attach('node1', a);
    commands.attach('node1', b);
    expect(a.ended).toBe(true);
    doneA();
    expect(commands.watching()).toEqual(['node1']);
    await commands.push('node1', { kind: AGENT_COMMAND.collectInventory });
    expect([a.got.length, b.got.length]).toEqual([0, 1]);
    commands.endAll();
    expect(b.ended).toBe(true);
    expect(commands.watching()).toEqual([]);
  });

  it('an unknown command kind is refused', async () => {
    expect((await refusal(env.services.commands.push('node1', { kind: 'format-disk' as never }))).code).toBe('request.invalid');
  });
});

describe('through a real recorder', () => {
  it('the conductor hears a boot report as the old serve.ts hook told it, the repeat too; no second event row', async () => {
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(profile, { actor: 'test' });
    await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [MAC1], pet: false }, { actor: 'test' });
    await inInstall(store, 'node1');
    const signals: [string, string, Record<string, unknown>][] = [];
    const recorder = createRecorder({ store, listener: { signal: async (node, kind, details) => signals.push([node, kind, details]) } });
    const services = createAgentServices({ store, ca, recorder });
    await services.enroll(await enrolRequest(store, 'node1', [MAC1]), PEER);
    await services.reportBoot('node1', boot('b-1'));
    await services.reportBoot('node1', boot('b-1'));
    expect(signals.map(([n, k, d]) => [n, k, d['bootId'], d['isNewBoot']])).toEqual([
      ['node1', EVENT.agentEnrolled, undefined, undefined],
      ['node1', EVENT.agentBoot, 'b-1', true],
      ['node1', EVENT.agentBoot, 'b-1', false],
    ]);
    expect(await eventsOf(store, EVENT.agentBoot)).toHaveLength(1);
    await store.close();
  });
});

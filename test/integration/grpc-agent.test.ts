/**
 * The enrolled agent against a real server over loopback TLS: boot report,
 * heartbeat, config, apply, inventory, the Watch stream and server pushes,
 * and the run loop surviving a server that is away.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callUnary, makeClient } from '../../agent/client.js';
import { enroll } from '../../agent/enroll.js';
import { runAgent, type AgentEvent, type CommandContext } from '../../agent/run.js';
import { loadCredential, type AgentCredential } from '../../agent/state.js';
import { RoleOutcome, type ReportBootRequest } from '../../proto/gen/fleet/v1/agent.js';
import { startGrpcServer, type AgentGrpcServer } from '../../server/grpc/index.js';
import type { ProfileSpec } from '../../server/model.js';
import { loadOrCreateCa, type FleetCa } from '../../server/pki/index.js';
import { openStore, type Store } from '../../server/store/index.js';
import { pickFreePort } from '../../server/serve.js';
import { inInstall } from '../helpers/install-phase.js';
import { until } from '../helpers/wait.js';

const MAC1 = '52:54:00:00:01:01';

const profile: ProfileSpec = {
  name: 'compute',
  os: { install: 'kickstart', tree: 'http://10.0.0.1/os' },
  kernelArgs: [],
  packages: [],
  sshKeys: [],
  roles: { chrony: { servers: ['10.0.0.1'], makestep: '1 3' }, repos: { repos: [], remove: [] } },
};

const boot = (bootId: string): ReportBootRequest => ({
  bootId,
  uptimeMs: 12_000,
  kernelCmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/sda2 inst.ks=http://10.0.0.1/ks?token=SECRET123 ro',
  rootOnLocalDisk: true,
  rootSource: '/dev/sda2',
  rootFstype: 'xfs',
  agentVersion: 'test',
  kernel: '5.14.0',
  efi: {
    bootCurrent: '0002',
    bootOrder: ['0001', '0002'],
    bootNext: '',
    entries: [
      { id: '0001', label: 'UEFI PXEv4 (MAC:525400000101)', active: true },
      { id: '0002', label: 'AlmaLinux', active: true },
    ],
  },
});


describe('an enrolled agent', () => {
  let store: Store;
  let ca: FleetCa;
  let server: AgentGrpcServer;
  let cred: AgentCredential;
  let stateDir: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(profile, { actor: 'test' });
    await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [MAC1], pet: false }, { actor: 'test' });
    await inInstall(store, 'node1');
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-grpc-agent-'));
    dirs.push(dataDir);
    ca = await loadOrCreateCa(dataDir);
    server = await startGrpcServer({ store, ca, listen: '127.0.0.1:0', serverNames: { dnsNames: ['localhost'], ips: ['127.0.0.1'] } });
    const { token } = await store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
    stateDir = path.join(dataDir, 'agent');
    await enroll({
      server: `127.0.0.1:${server.port}`,
      token,
      caFingerprint: ca.fingerprint,
      stateDir,
      identity: { serial: 'S', uuid: '', macs: [MAC1], hostname: 'node1' },
      attempts: 1,
    });
    cred = await loadCredential(stateDir);
  });

  afterAll(async () => {
    await server?.close(500);
    await store?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  function client() {
    return makeClient(cred.server, cred);
  }

  it('ReportBoot records agent.boot once per boot id, with the assessment and a redacted command line', async () => {
    const c = client();
    try {
      await callUnary(c, c.reportBoot, boot('b-1'), 5000);
      await callUnary(c, c.reportBoot, boot('b-1'), 5000); // retried: no second event
      const events = (await store.events.list({ kinds: ['agent.boot'] })).events;
      expect(events).toHaveLength(1);
      const d = events[0]!.details as { bootId: string; kernelCmdline: string; assessment: { firmwareVia: string; networkFirst: boolean } };
      expect(d.bootId).toBe('b-1');
      expect(d.kernelCmdline).not.toContain('SECRET123');
      expect(d.kernelCmdline).toContain('root=/dev/sda2');
      expect(d.assessment.firmwareVia).toBe('disk');
      expect(d.assessment.networkFirst).toBe(true);
      expect((await store.agents.get('node1'))?.bootId).toBe('b-1');
      await callUnary(c, c.reportBoot, boot('b-2'), 5000);
      expect((await store.events.list({ kinds: ['agent.boot'] })).events).toHaveLength(2);
      await expect(callUnary(c, c.reportBoot, { ...boot(''), bootId: '' }, 5000)).rejects.toMatchObject({ code: 'request.invalid' });
    } finally {
      c.close();
    }
  });

  it('GetConfig returns the profile roles with a version; a known version is answered unchanged', async () => {
    const c = client();
    try {
      const cfg = await callUnary(c, c.getConfig, { knownVersion: '' }, 5000);
      expect(cfg.profile).toBe('compute');
      expect(cfg.roles).toEqual(['repos', 'chrony']);
      expect(JSON.parse(cfg.rolesJson)).toEqual(profile.roles);
      expect(cfg.schema).toBe('fleet.roles/v1');
      expect(cfg.version).toMatch(/^sha256:[0-9a-f]{64}$/);
      const again = await callUnary(c, c.getConfig, { knownVersion: cfg.version }, 5000);
      expect(again).toMatchObject({ unchanged: true, rolesJson: '', version: cfg.version });
      await store.profiles.upsert({ ...profile, roles: { ...profile.roles, hosts: { enabled: true } } }, { actor: 'test' });
      const changed = await callUnary(c, c.getConfig, { knownVersion: cfg.version }, 5000);
      expect(changed.unchanged).toBe(false);
      expect(changed.version).not.toBe(cfg.version);
      expect(changed.roles).toEqual(['repos', 'hosts', 'chrony']);
      const hb = await callUnary(c, c.heartbeat, { uptimeMs: 1, configVersion: '', agentVersion: '9.9.9', bootId: '' }, 5000);
      expect(hb.configVersion).toBe(changed.version);
      expect((await store.agents.get('node1'))?.agentVersion).toBe('9.9.9');
    } finally {
      c.close();
    }
  });

  it('ReportApply writes agent.applied, or agent.apply_failed naming the failed roles', async () => {
    const c = client();
    try {
      await callUnary(
        c,
        c.reportApply,
        { configVersion: 'sha256:aa', results: [{ role: 'chrony', outcome: RoleOutcome.ROLE_OUTCOME_CHANGED, message: 'restarted', durationMs: 20 }], startedAtMs: Date.now(), durationMs: 25 },
        5000,
      );
      expect((await store.agents.get('node1'))?.appliedVersion).toBe('sha256:aa');
      await callUnary(
        c,
        c.reportApply,
        { configVersion: 'sha256:bb', results: [{ role: 'repos', outcome: RoleOutcome.ROLE_OUTCOME_FAILED, message: 'no network', durationMs: 5 }], startedAtMs: 0, durationMs: 5 },
        5000,
      );
      expect((await store.agents.get('node1'))?.appliedVersion).toBe('sha256:aa');
      const failed = (await store.events.list({ kinds: ['agent.apply_failed'] })).events;
      expect((failed[0]!.details as { failed: string[] }).failed).toEqual(['repos']);
    } finally {
      c.close();
    }
  });

  it('ReportInventory keeps every report with its time', async () => {
    const c = client();
    try {
      const inv = { collectedAtMs: Date.parse('2024-05-01T10:00:00Z'), system: { manufacturer: 'QEMU', model: 'Standard PC', serial: 'S', uuid: 'u', sku: '' }, disks: [], nics: [], gpus: [], infiniband: [], warnings: [] };
      await callUnary(c, c.reportInventory, { inventory: inv }, 5000);
      await callUnary(c, c.reportInventory, { inventory: { ...inv, warnings: ['gpus: nvidia-smi not found'] } }, 5000);
      const hist = await store.inventory.history('node1');
      expect(hist).toHaveLength(2);
      expect(hist[1]!.collectedAt).toBe('2024-05-01T10:00:00.000Z');
      expect((hist[0]!.inventory as { warnings: string[] }).warnings).toEqual(['gpus: nvidia-smi not found']);
      const ev = (await store.events.list({ kinds: ['agent.inventory'] })).events;
      expect(ev.map((e) => (e.details as { changed: boolean | null }).changed)).toEqual([null, true]);
      await expect(callUnary(c, c.reportInventory, {}, 5000)).rejects.toMatchObject({ code: 'request.invalid' });
    } finally {
      c.close();
    }
  });

  it('run: reports boot, heartbeats, follows pushed commands; a push to a node without a stream is not delivered', async () => {
    const ac = new AbortController();
    const events: AgentEvent[] = [];
    const got: CommandContext[] = [];
    const done = runAgent({
      stateDir,
      signal: ac.signal,
      heartbeatMs: 100,
      backoff: { initialMs: 20, maxMs: 100 },
      collectBoot: async () => boot('b-run'),
      handlers: {
        reboot: async (ctx) => void got.push(ctx),
        collectInventory: async (ctx) => void got.push(ctx),
      },
      onEvent: (e) => events.push(e),
    });
    try {
      await until(() => server.watching().includes('node1'));
      await until(() => events.some((e) => e.type === 'boot-reported') && events.filter((e) => e.type === 'heartbeat').length >= 2);
      expect((await store.agents.get('node1'))?.bootId).toBe('b-run');
      const res = await server.push('node1', { kind: 'reboot', reason: 'maintenance' }, { actor: 'alice' });
      expect(res.delivered).toBe(true);
      await server.push('node1', { kind: 'collect_inventory' });
      await until(() => got.length === 2);
      expect(got.map((g) => [g.kind, g.id])).toEqual([
        ['reboot', res.id],
        ['collect_inventory', expect.any(String)],
      ]);
      expect(got[0]!.reason).toBe('maintenance');
      const audit = (await store.events.list({ kinds: ['agent.command'] })).events;
      expect(audit[0]).toMatchObject({ actor: 'alice', node: 'node1' });
      expect((await server.push('nobody', { kind: 'reboot' })).delivered).toBe(false);
    } finally {
      ac.abort();
      await done;
    }
    await until(() => !server.watching().includes('node1'));
  });

  it('GetConfig over mTLS: a slurm node gets slurm.conf and the munge key; a report that completes its inventory is a new version', async () => {
    await store.settings.setCluster(
      {
        cluster: { name: 'lab', domain: 'cluster.local', timezone: 'UTC', managementAddress: '10.0.0.1' },
        networks: { provisioning: { subnet: '10.0.0.0/16', unknownRange: { start: '10.0.254.1', end: '10.0.254.9' }, dns: [], ntp: [] } },
      },
      { actor: 'test' },
    );
    await store.profiles.upsert({ ...profile, roles: { ...profile.roles, slurm: { role: 'both', clusterName: 'fleet', partition: 'batch', partitionDefault: true } } }, { actor: 'test' });
    const c = client();
    try {
      const cfg = await callUnary(c, c.getConfig, { knownVersion: '' }, 5000);
      expect(cfg.roles).toEqual(['repos', 'chrony', 'slurm']);
      const slurm = (JSON.parse(cfg.clusterJson) as { slurm: { conf: string; mungeKeyB64: string } }).slurm;
      expect(Buffer.from(slurm.mungeKeyB64, 'base64')).toHaveLength(1024);
      expect(slurm.conf).toContain('SlurmctldHost=node1\n');
      // The earlier reports had no CPU or memory: node1 is not listed yet.
      expect(slurm.conf).toMatch(/# node1 left out: its last inventory is partial/);
      const inv = { collectedAtMs: Date.now(), cpu: { threads: 4, cores: 2, sockets: 1, model: 'QEMU', manufacturer: '', speedMhz: 0 }, memory: { totalBytes: 8 * 1024 ** 3, dimms: [] }, disks: [], nics: [], gpus: [], infiniband: [], warnings: [] };
      await callUnary(c, c.reportInventory, { inventory: inv }, 5000);
      const hb = await callUnary(c, c.heartbeat, { uptimeMs: 1, configVersion: cfg.version, agentVersion: '', bootId: '' }, 5000);
      expect(hb.configVersion).not.toBe(cfg.version);
      const next = await callUnary(c, c.getConfig, { knownVersion: cfg.version }, 5000);
      expect(next.version).toBe(hb.configVersion);
      const conf = (JSON.parse(next.clusterJson) as { slurm: { conf: string; mungeKeyB64: string } }).slurm;
      expect(conf.conf).toContain('NodeName=node1 CPUs=4 RealMemory=7936 State=UNKNOWN\n');
      expect(conf.mungeKeyB64).toBe(slurm.mungeKeyB64);
      // No event holds the key.
      expect(JSON.stringify((await store.events.list({ limit: 1000 })).events)).not.toContain(slurm.mungeKeyB64.slice(0, 40));
    } finally {
      c.close();
    }
  });
});

describe('the run loop and an absent server', () => {
  it('keeps retrying while the server is away and catches up when it comes', async () => {
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-grpc-away-'));
    let server: AgentGrpcServer | undefined;
    const ac = new AbortController();
    let done: Promise<void> | undefined;
    try {
      await store.profiles.upsert(profile, { actor: 'test' });
      await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [MAC1], pet: false }, { actor: 'test' });
      await inInstall(store, 'node1');
      const ca = await loadOrCreateCa(dataDir);
      const port = await pickFreePort('127.0.0.1');
      const listen = `127.0.0.1:${port}`;
      const names = { dnsNames: ['localhost'], ips: ['127.0.0.1'] };
      server = await startGrpcServer({ store, ca, listen, serverNames: names });
      const { token } = await store.tokens.issue('node1', { ttlMs: 60_000, actor: 'test' });
      const stateDir = path.join(dataDir, 'agent');
      await enroll({ server: listen, token, caFingerprint: ca.fingerprint, stateDir, identity: { serial: '', uuid: '', macs: [MAC1], hostname: 'h' }, attempts: 1 });
      await server.close(200);
      server = undefined;

      const events: AgentEvent[] = [];
      done = runAgent({
        stateDir,
        signal: ac.signal,
        heartbeatMs: 100,
        callTimeoutMs: 1000,
        backoff: { initialMs: 20, maxMs: 200 },
        collectBoot: async () => boot('b-away'),
        onEvent: (e) => events.push(e),
      });
      await until(() => events.filter((e) => e.type === 'error' && e.task === 'boot').length >= 2);
      expect(events.some((e) => e.type === 'boot-reported')).toBe(false);

      server = await startGrpcServer({ store, ca, listen, serverNames: names });
      await until(() => events.some((e) => e.type === 'boot-reported'), 15_000);
      await until(() => server!.watching().includes('node1'), 15_000);
      expect((await store.agents.get('node1'))?.bootId).toBe('b-away');
      expect((await store.nodes.require('node1')).lastSeen).not.toBeNull();
    } finally {
      ac.abort();
      await done;
      await server?.close(200);
      await store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/**
 * The agent end to end, against a real store (the cluster imported from a
 * fleet.yaml), the real gRPC service over loopback TLS and the real inventory
 * API: enrolment with a one-time token, one cycle (boot, inventory, config,
 * roles applied in a temp root seeded as AlmaLinux, apply report), a second
 * cycle that changes nothing, the run loop following pushed commands and
 * cluster changes, `fleet inventory` as the CLI shows it (table, CSV, HTML,
 * diff), the fleet-agent CLI (inventory, plan, run --once), and a server that
 * went away (the cached config is applied, nothing throws).
 *
 * Commands go to a RecordingRunner: nothing is installed, restarted or
 * rebooted on the machine running the tests.
 */
import { Exit } from '../../common/errors.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_CACHE_FILE, loadCachedConfig } from '../../agent/cache.js';
import { enroll } from '../../agent/enroll.js';
import { RecordingRunner } from '../../agent/exec.js';
import { toInventory, type Inventory, type RawInventory } from '../../agent/inventory/index.js';
import { main as agentMain } from '../../agent/main.js';
import { runAgent, runCycle, type AgentEvent, type AgentWork } from '../../agent/run.js';
import type { ReportBootRequest } from '../../proto/gen/fleet/v1/agent.js';
import { cmdInventory, cmdInventoryDiff } from '../../server/cli/commands/inventory.js';
import type { CliIo } from '../../server/cli/io.js';
import { parseConfig } from '../../server/config/index.js';
import { configForNode } from '../../server/agents/config.js';
import { startGrpcServer, type AgentGrpcServer } from '../../server/grpc/index.js';
import { installErrorHandling } from '../../server/http/errors.js';
import type { InventoryResponse } from '../../common/api/schemas.js';
import { registerInventoryRoutes } from '../../server/http/routes/inventory.js';
import { applyConfig } from '../../server/apply/config.js';
import { INVENTORY_COLUMNS } from '../../server/inventory/report.js';
import { loadOrCreateCa, type FleetCa } from '../../server/pki/index.js';
import { openStore, type Store } from '../../server/store/index.js';
import { pickFreePort } from '../../server/serve.js';
import { inInstall } from '../helpers/install-phase.js';
import { until } from '../helpers/wait.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/inventory');
const fixture = (name: string): Inventory => toInventory(JSON.parse(fs.readFileSync(path.join(FIX, name), 'utf8')) as RawInventory);

const MAC1 = '08:00:27:18:67:bc';
const MAC2 = '08:00:27:18:69:bc';

const FLEET_YAML = `
cluster:
  name: valhalla
  domain: cluster.local
  timezone: UTC
  management_name: odin
  management_address: 10.10.0.1
networks:
  provisioning:
    subnet: 10.10.0.0/16
    unknown_range: 10.10.254.1-10.10.254.254
profiles:
  compute:
    os:
      tree: http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os
    roles:
      repos:
        remove: ["*.repo"]
        repos:
          - name: BaseOS
            baseurl: http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS
            gpgcheck: false
      hosts:
        enabled: true
      chrony:
        servers: [10.10.0.1]
        makestep: "1.0 3"
nodes:
  valkyrie01:
    profile: compute
    ip: 10.10.3.1
    mac: ${MAC1}
  valkyrie02:
    profile: compute
    ip: 10.10.3.2
    mac: ${MAC2}
`;

const LOCALHOST = '127.0.0.1   localhost localhost.localdomain\n::1         localhost localhost.localdomain\n';

/** A root that looks like a fresh AlmaLinux 9 install. */
function seedAlma(dir: string): string {
  const w = (p: string, content: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), content);
  };
  w('etc/os-release', 'NAME="AlmaLinux"\nVERSION="9.4 (Seafoam Ocelot)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n');
  w('etc/hosts', `${LOCALHOST}192.0.2.7   printer.example printer\n`);
  w('etc/chrony.conf', 'pool 2.almalinux.pool.ntp.org iburst\n');
  w('etc/yum.repos.d/almalinux-baseos.repo', '[baseos]\nname=AlmaLinux $releasever - BaseOS\nmirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos\n');
  w('etc/systemd/system/multi-user.target.wants/chronyd.service', '');
  return dir;
}

const boot = (bootId: string): (() => Promise<ReportBootRequest>) => async () => ({
  bootId,
  uptimeMs: 30_000,
  kernelCmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro',
  rootOnLocalDisk: true,
  rootSource: '/dev/sda2',
  rootFstype: 'xfs',
  agentVersion: 'test',
  kernel: '5.14.0-427.el9.x86_64',
});


function cliIo(home: string): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    env: {},
    isTTY: false,
    home,
    cwd: home,
    out: () => out,
    err: () => err,
  };
}

/** RFC 4180, strictly (as in test/unit/inventory/report.test.ts): CRLF records, quoted fields, equal field counts. */
function parseCsvStrict(text: string): string[][] {
  const records: string[][] = [];
  let i = 0;
  let record: string[] = [];
  const fail = (why: string): never => {
    throw new Error(`CSV: ${why} at offset ${i}`);
  };
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      for (i++; ; ) {
        if (i >= text.length) fail('unterminated quoted field');
        if (text[i] === '"' && text[i + 1] === '"') {
          field += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else field += text[i++];
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') fail('text after a closing quote');
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r') {
        if (text[i] === '"' || text[i] === '\n') fail('quote or bare LF in an unquoted field');
        field += text[i++];
      }
    }
    record.push(field);
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] !== '\r' || text[i + 1] !== '\n') fail('record not ended by CRLF');
    i += 2;
    records.push(record);
    record = [];
  }
  if (record.length > 0 || records.length === 0) fail('no header or an unterminated record');
  for (const r of records) if (r.length !== records[0]!.length) fail('records of different lengths');
  return records;
}

async function agentCli(args: string[], opts: Parameters<typeof agentMain>[2] = {}) {
  let out = '';
  let err = '';
  const code = await agentMain(['node', 'fleet-agent', ...args], { stdout: (s) => void (out += s), stderr: (s) => void (err += s) }, opts);
  return { code, out, err };
}


/** The commands that change something: read-only package and service queries (rpm -q, dpkg-query, systemctl is-*) left out. */
function changing(r: { argvs: string[][] }): string[][] {
  return r.argvs.filter((a) => !((a[0] === 'rpm' && a[1] === '-q') || a[0] === 'dpkg-query' || (a[0] === 'systemctl' && (a[1] === 'is-enabled' || a[1] === 'is-active'))));
}

describe('fleet-agent end to end', () => {
  let store: Store;
  let ca: FleetCa;
  let grpc: AgentGrpcServer | undefined;
  let listen: string;
  let http: FastifyInstance;
  let url: string;
  let tmp: string;
  let root1: string;
  let root2: string;
  let state1: string;
  let state2: string;
  const runner1 = new RecordingRunner();
  const runner2 = new RecordingRunner();
  const names = { dnsNames: ['localhost'], ips: ['127.0.0.1'] };
  const dgx = fixture('gpu-dgx.json');
  const ib = fixture('ib-node.json');
  let inventory1: Inventory = dgx;
  const work1 = (): AgentWork => ({ root: root1, runner: runner1, collectInventory: async () => inventory1 });
  const read = (root: string, p: string) => fs.readFileSync(path.join(root, p), 'utf8');

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-agent-e2e-'));
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    const applied = await applyConfig(store, parseConfig(FLEET_YAML), {}, { actor: 'test', dryRun: false });
    expect(applied.applied).toBe(true);
    ca = await loadOrCreateCa(path.join(tmp, 'data'));
    listen = `127.0.0.1:${await pickFreePort('127.0.0.1')}`;
    grpc = await startGrpcServer({ store, ca, listen, serverNames: names });
    http = fastify({ logger: false });
    installErrorHandling(http);
    await http.register(async (api) => registerInventoryRoutes(api, { store }), { prefix: '/api/v1' });
    url = await http.listen({ host: '127.0.0.1', port: 0 });
    root1 = seedAlma(path.join(tmp, 'root1'));
    root2 = seedAlma(path.join(tmp, 'root2'));
    state1 = path.join(tmp, 'state1');
    state2 = path.join(tmp, 'state2');
  });

  afterAll(async () => {
    await grpc?.close(200);
    await http?.close();
    await store?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a token issued for a node enrols its agent once', async () => {
    await inInstall(store, 'valkyrie01', 'valkyrie02');
    const { token } = await store.tokens.issue('valkyrie01', { ttlMs: 60_000, actor: 'test' });
    const res = await enroll({ server: listen, token, caFingerprint: ca.fingerprint, stateDir: state1, identity: { serial: 'S1', uuid: '', macs: [MAC1], hostname: 'valkyrie01' }, attempts: 1 });
    expect(res.node).toBe('valkyrie01');
    // the same token again, from another key: refused, and the first credential stays valid
    await expect(
      enroll({ server: listen, token, caFingerprint: ca.fingerprint, stateDir: path.join(tmp, 'other'), identity: { serial: 'S1', uuid: '', macs: [MAC1], hostname: 'x' }, attempts: 1 }),
    ).rejects.toMatchObject({ code: 'token.used' });
    const t2 = await store.tokens.issue('valkyrie02', { ttlMs: 60_000, actor: 'test' });
    await enroll({ server: listen, token: t2.token, caFingerprint: ca.fingerprint, stateDir: state2, identity: { serial: 'S2', uuid: '', macs: [MAC2], hostname: 'valkyrie02' }, attempts: 1 });
    expect((await store.events.list({ kinds: ['agent.enrolled'] })).events.map((e) => e.node)).toEqual(['valkyrie01', 'valkyrie02']);
  });

  it('one cycle: boot and inventory reported, config fetched and cached 0600, roles applied in the root, apply reported', async () => {
    const r = await runCycle({ stateDir: state1, work: work1(), collectBoot: boot('boot-1'), callTimeoutMs: 5000 });
    expect(r.errors).toEqual([]);
    expect(r).toMatchObject({ node: 'valkyrie01', bootReported: true, inventoryReported: true, config: 'fetched', applyReported: true });
    expect(r.results.map((x) => [x.role, x.status])).toEqual([
      ['repos', 'changed'],
      ['hosts', 'changed'],
      ['chrony', 'changed'],
    ]);

    // the config: what the server has, cached 0600 with the cluster facts
    const cfg = await configForNode(store, 'valkyrie01');
    expect(r.configVersion).toBe(cfg.version);
    const cacheFile = path.join(state1, CONFIG_CACHE_FILE);
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);
    const cached = await loadCachedConfig(state1);
    expect(cached?.version).toBe(cfg.version);
    expect(cached?.settings.cluster).toEqual({
      domain: 'cluster.local',
      managementAddress: '10.10.0.1',
      managementName: 'odin',
      hosts: [
        { name: 'odin', address: '10.10.0.1' },
        { name: 'valkyrie01', address: '10.10.3.1' },
        { name: 'valkyrie02', address: '10.10.3.2' },
      ],
    });

    // the roles, in the temp root
    const hosts = read(root1, 'etc/hosts');
    expect(hosts.startsWith(`${LOCALHOST}192.0.2.7   printer.example printer\n`)).toBe(true);
    expect(hosts).toContain(
      '\n\n# BEGIN fleet managed\n10.10.0.1  odin.cluster.local odin\n10.10.3.1  valkyrie01.cluster.local valkyrie01\n10.10.3.2  valkyrie02.cluster.local valkyrie02\n# END fleet managed\n',
    );
    expect(read(root1, 'etc/chrony.conf')).toContain('server 10.10.0.1 iburst\n');
    expect(read(root1, 'etc/chrony.conf')).not.toContain('pool 2.almalinux');
    expect(fs.existsSync(path.join(root1, 'etc/yum.repos.d/almalinux-baseos.repo'))).toBe(false);
    expect(read(root1, 'etc/yum.repos.d/fleet-BaseOS.repo')).toContain('baseurl=http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS');
    expect(fs.existsSync(path.join(root1, 'var/lib/fleet-agent/backup/etc/chrony.conf'))).toBe(true);
    expect(changing(runner1)).toEqual([
      ['dnf', 'clean', 'all'],
      ['systemctl', 'restart', 'chronyd'],
    ]);

    // the server side: boot, inventory with its time, the apply with per-role outcomes
    expect((await store.agents.get('valkyrie01'))?.bootId).toBe('boot-1');
    const hist = await store.inventory.history('valkyrie01');
    expect(hist).toHaveLength(1);
    expect(hist[0]!.collectedAt).toBe(dgx.collectedAt);
    const appliedEv = (await store.events.list({ kinds: ['agent.applied'], node: 'valkyrie01' })).events;
    expect(appliedEv).toHaveLength(1);
    const d = appliedEv[0]!.details as { results: { role: string; outcome: string; message: string }[]; failed: string[] };
    expect(d.results.map((x) => [x.role, x.outcome])).toEqual([
      ['repos', 'changed'],
      ['hosts', 'changed'],
      ['chrony', 'changed'],
    ]);
    expect(d.failed).toEqual([]);
    expect((await store.agents.get('valkyrie01'))?.appliedVersion).toBe(cfg.version);

    // valkyrie02, with the InfiniBand node's inventory
    const r2 = await runCycle({ stateDir: state2, work: { root: root2, runner: runner2, collectInventory: async () => ib }, collectBoot: boot('boot-2'), callTimeoutMs: 5000 });
    expect(r2.errors).toEqual([]);
    expect(r2.inventoryReported).toBe(true);
  });

  it('a second cycle changes nothing: the config is unchanged, every role is ok, no command runs', async () => {
    runner1.clear();
    const hostsBefore = read(root1, 'etc/hosts');
    const r = await runCycle({ stateDir: state1, work: work1(), collectBoot: boot('boot-1'), callTimeoutMs: 5000 });
    expect(r.errors).toEqual([]);
    expect(r.config).toBe('unchanged');
    expect(r.results.map((x) => x.status)).toEqual(['ok', 'ok', 'ok']);
    expect(changing(runner1)).toEqual([]);
    expect(read(root1, 'etc/hosts')).toBe(hostsBefore);
    expect(await store.inventory.history('valkyrie01')).toHaveLength(2);
  });

  it('fleet inventory: the node shows (table), CSV of two nodes is valid, HTML is one file; diff names the DIMM gone', async () => {
    const flags = { url, token: 'unused' };
    const t = cliIo(tmp);
    expect(await cmdInventory(flags, 'valkyrie01', {}, t)).toBe(0);
    expect(t.out()).toMatch(/^NODE +MODEL/);
    expect(t.out()).toMatch(/\nvalkyrie01 +.*8x NVIDIA H100 80GB HBM3/);

    const c = cliIo(tmp);
    expect(await cmdInventory(flags, 'valkyrie[01-02]', { format: 'csv' }, c)).toBe(0);
    const recs = parseCsvStrict(c.out());
    expect(recs[0]).toEqual([...INVENTORY_COLUMNS]);
    expect(recs.slice(1).map((x) => x[0])).toEqual(['valkyrie01', 'valkyrie02']);
    const col = (k: (typeof INVENTORY_COLUMNS)[number]) => INVENTORY_COLUMNS.indexOf(k);
    expect(recs[1]![col('serial')]).toBe(dgx.system.serial);
    expect(recs[1]![col('nics')]).toContain(dgx.nics[0]!.mac);
    expect(recs[2]![col('infiniband')]).toContain(ib.infiniband[0]!.name);
    expect(recs[2]![col('memory')]).toMatch(/GiB \(12 DIMMs\)/);

    const h = cliIo(tmp);
    expect(await cmdInventory(flags, 'valkyrie[01-03]', { format: 'html' }, h)).toBe(1); // valkyrie03 is not in the store
    expect(h.err()).toContain('not in the store: valkyrie03');
    expect(h.out().startsWith('<!DOCTYPE html>')).toBe(true);
    expect(h.out()).not.toMatch(/<script|<link|\bsrc=/i);

    await expect(cmdInventory(flags, 'valkyrie01', { format: 'xml' }, cliIo(tmp))).rejects.toMatchObject({ code: 'usage.invalid' });

    // history: the API answers the latest report per node
    const res = (await (await fetch(`${url}/api/v1/inventory?nodeset=valkyrie[01-02]`)).json()) as InventoryResponse;
    expect(res.nodes.map((n) => [n.node, n.inventory?.gpus.length])).toEqual([
      ['valkyrie01', 8],
      ['valkyrie02', ib.gpus.length],
    ]);

    // a DIMM goes missing on valkyrie01
    const gone = dgx.memory.dimms[3]!;
    inventory1 = { ...dgx, memory: { dimms: dgx.memory.dimms.filter((x) => x !== gone), totalBytes: dgx.memory.totalBytes - gone.sizeBytes } };
    const r = await runCycle({ stateDir: state1, work: work1(), collectBoot: boot('boot-1'), callTimeoutMs: 5000 });
    expect(r.inventoryReported).toBe(true);
    const dd = cliIo(tmp);
    expect(await cmdInventoryDiff(flags, 'valkyrie01', {}, dd)).toBe(0);
    expect(dd.out()).toMatch(new RegExp(`dimm-removed +DIMM ${gone.slot} \\(64 GiB, serial ${gone.serial}\\) is gone`));
    const dj = cliIo(tmp);
    await cmdInventoryDiff(flags, 'valkyrie02', { json: true }, dj);
    expect(JSON.parse(dj.out())).toMatchObject({ node: 'valkyrie02', before: null, changes: [] });
    await expect(cmdInventoryDiff(flags, 'nosuchnode', {}, cliIo(tmp))).rejects.toMatchObject({ code: 'node.not_found' });
    const hist = (await (await fetch(`${url}/api/v1/inventory/valkyrie01/history?limit=2`)).json()) as { reports: { id: number; inventory: Inventory }[] };
    expect(hist.reports).toHaveLength(2);
    expect(hist.reports[0]!.inventory.memory.dimms).toHaveLength(15);
    expect(hist.reports[1]!.inventory.memory.dimms).toHaveLength(16);
  });

  it('run loop: cached config at start, pushed commands (apply_config, collect_inventory, reboot only when asked), a new node reaches /etc/hosts', async () => {
    runner1.clear();
    const ac = new AbortController();
    const events: AgentEvent[] = [];
    const done = runAgent({
      stateDir: state1,
      signal: ac.signal,
      heartbeatMs: 100,
      callTimeoutMs: 3000,
      backoff: { initialMs: 20, maxMs: 200 },
      collectBoot: boot('boot-loop'),
      work: work1(),
      onEvent: (e) => events.push(e),
    });
    const applied = () => events.filter((e): e is Extract<AgentEvent, { type: 'applied' }> => e.type === 'applied');
    try {
      await until(() => grpc!.watching().includes('valkyrie01'));
      await until(() => applied().length >= 1 && events.some((e) => e.type === 'inventory-reported'));
      expect(events.find((e) => e.type === 'config')).toMatchObject({ source: 'cached' });
      // the heartbeat sees the version it applied from the cache: no second apply on its own
      await until(() => events.filter((e) => e.type === 'heartbeat').length >= 3);
      expect(applied()).toHaveLength(1);
      expect(changing(runner1)).toEqual([]);

      const invBefore = await store.inventory.count('valkyrie01');
      expect((await grpc!.push('valkyrie01', { kind: 'apply_config', reason: 'test' }, { actor: 'alice' })).delivered).toBe(true);
      await until(() => applied().length === 2);
      expect(events.filter((e) => e.type === 'config').at(-1)).toMatchObject({ source: 'unchanged' });
      await grpc!.push('valkyrie01', { kind: 'collect_inventory' });
      await until(async () => (await store.inventory.count('valkyrie01')) === invBefore + 1);
      expect(runner1.argvs.some((a) => a[0] === 'systemctl' && a[1] === 'reboot')).toBe(false);
      await grpc!.push('valkyrie01', { kind: 'reboot', reason: 'maintenance' });
      await until(() => runner1.argvs.some((a) => a.join(' ') === 'systemctl reboot'));

      // a node added to the cluster: a new config version, applied by itself
      await store.nodes.upsert({ name: 'valkyrie03', profile: 'compute', ip: '10.10.3.3', macs: [], pet: false }, { actor: 'test' });
      await until(() => read(root1, 'etc/hosts').includes('10.10.3.3  valkyrie03.cluster.local valkyrie03'));
      const v3 = (await configForNode(store, 'valkyrie01')).version;
      await until(async () => (await store.agents.get('valkyrie01'))?.appliedVersion === v3);
      expect((await loadCachedConfig(state1))?.version).toBe(v3);
    } finally {
      ac.abort();
      await done;
    }
  });

  it('run loop: a partial inventory is collected again with more time and reported again once it knows more', async () => {
    const partial: Inventory = { ...dgx, cpus: { ...dgx.cpus, threads: 0, cores: 0, model: '' }, unknown: [{ section: 'cpus', reason: 'cpu: no answer in 10 s' }], partial: true };
    const answers = [partial, partial, dgx];
    const retries: number[] = [];
    const logs: string[] = [];
    const ac = new AbortController();
    const events: AgentEvent[] = [];
    const before = await store.inventory.count('valkyrie01');
    const done = runAgent({
      stateDir: state1,
      signal: ac.signal,
      heartbeatMs: 60_000,
      callTimeoutMs: 3000,
      backoff: { initialMs: 20, maxMs: 200 },
      collectBoot: boot('boot-partial'),
      inventoryRetryMs: [30, 30, 30, 30],
      work: { ...work1(), collectInventory: async (retry) => (retries.push(retry), answers[Math.min(retry, answers.length - 1)]!) },
      onEvent: (e) => events.push(e),
      log: (l) => logs.push(l),
    });
    try {
      await until(() => retries.length === 3 && events.filter((e) => e.type === 'inventory-reported').length === 2);
      // the loop stops asking once nothing is unknown
      await new Promise((r) => setTimeout(r, 200));
      expect(retries).toEqual([0, 1, 2]);
      // sent: the first partial one and the complete one; the second partial one knew no more and was not sent
      expect(events.filter((e) => e.type === 'inventory-reported')).toHaveLength(2);
      expect(await store.inventory.count('valkyrie01')).toBe(before + 2);
      const rows = (await (await fetch(`${url}/api/v1/inventory/valkyrie01/history?limit=2`)).json()) as { reports: { inventory: Inventory }[] };
      expect(rows.reports[0]!.inventory.unknown).toEqual([]);
      expect(rows.reports[0]!.inventory.cpus.threads).toBe(dgx.cpus.threads);
      expect(rows.reports[1]!.inventory.unknown).toMatchObject([{ section: 'cpus' }]);
      expect(logs).toContain('inventory reported (partial: cpus unknown)');
      expect(logs.some((l) => /^inventory partial \(cpus: cpu: no answer in 10 s\): probing again in 0 s with 2x the time$/.test(l))).toBe(true);
      expect(logs).toContain('inventory still partial (cpus unknown)');
    } finally {
      ac.abort();
      await done;
    }
  });

  it('fleet-agent CLI: inventory --json (its time is npm run bench -- inventory); plan shows the diff per role; run --once', async () => {
    // Probes get time: on a loaded CI machine the default 1.5 s left the CPU empty (a warning, not a failure).
    const inv = await agentCli(['inventory', '--json', '--probe-timeout', '15s']);
    expect(inv.code, inv.err).toBe(0);
    const parsed = JSON.parse(inv.out) as Inventory;
    expect(Object.keys(parsed).sort()).toEqual(['baseboard', 'bios', 'collectedAt', 'cpus', 'disks', 'gpus', 'infiniband', 'memory', 'nics', 'os', 'partial', 'system', 'unknown', 'warnings']);
    // Every probe answered in time on this machine: nothing unknown, not partial.
    expect(parsed.unknown, JSON.stringify(parsed.unknown)).toEqual([]);
    expect(parsed.partial).toBe(false);
    expect(parsed.cpus.threads).toBeGreaterThan(0);
    expect(parsed.memory.totalBytes).toBeGreaterThan(0);
    const bad = await agentCli(['inventory', '--probe-timeout', 'soon']);
    expect(bad.code).toBe(Exit.USAGE);
    expect(bad.err).toContain('--probe-timeout: "soon" is not a duration');
    const text = await agentCli(['inventory']);
    expect(text.out).toMatch(/^system +/);

    // plan --config on a fresh root: every role would change, with the diff; nothing is written
    const fresh = seedAlma(path.join(tmp, 'fresh'));
    const before = read(fresh, 'etc/hosts');
    const runner = new RecordingRunner();
    const plan = await agentCli(['plan', '--config', path.join(state1, CONFIG_CACHE_FILE), '--root', fresh], { runner });
    expect(plan.code).toBe(0);
    expect(plan.out).toMatch(/^repos: changed/m);
    expect(plan.out).toMatch(/^hosts: changed/m);
    expect(plan.out).toContain('  update /etc/hosts');
    expect(plan.out).toMatch(/^ +\+10\.10\.3\.1 +valkyrie01\.cluster\.local valkyrie01$/m);
    expect(plan.out).toMatch(/^chrony: changed/m);
    expect(plan.out).toContain('run systemctl restart chronyd');
    expect(read(fresh, 'etc/hosts')).toBe(before);
    expect(changing(runner)).toEqual([]);
    // {roles, cluster} works as well; --json
    const settingsFile = path.join(tmp, 'settings.json');
    fs.writeFileSync(settingsFile, JSON.stringify({ roles: { hosts: { enabled: true } }, cluster: { domain: 'lab', managementAddress: '10.0.0.1', hosts: [{ name: 'a', address: '10.0.0.5' }] } }));
    const pj = await agentCli(['plan', '--config', settingsFile, '--root', fresh, '--json']);
    expect(pj.code).toBe(0);
    expect((JSON.parse(pj.out) as { results: { role: string; status: string }[] }).results).toMatchObject([{ role: 'hosts', status: 'changed' }]);

    // plan from the cache on the configured root: nothing to do
    const cachedPlan = await agentCli(['plan', '--state-dir', state1, '--root', root1], { runner });
    expect(cachedPlan.out).toBe('repos: ok - already as declared\nhosts: ok - already as declared\nchrony: ok - already as declared\n');
    // no cache, no --config: a configuration error
    const none = await agentCli(['plan', '--state-dir', path.join(tmp, 'nowhere'), '--root', fresh]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/no cached config/);

    // run --once with the real inventory collector, against the server
    const once = await agentCli(['run', '--once', '--json', '--state-dir', state2, '--root', root2], { runner: runner2 });
    expect(once.code).toBe(0);
    expect(once.err).toContain('fleet-agent: applied config sha256:');
    expect(JSON.parse(once.out)).toMatchObject({ node: 'valkyrie02', bootReported: true, inventoryReported: true, applyReported: true });
  });

  it('server away: a cycle applies the cached config and does not throw; the loop applies it at start without waiting', async () => {
    await grpc!.close(200);
    grpc = undefined;
    // someone edited /etc/hosts meanwhile: the cached config repairs it
    fs.writeFileSync(path.join(root1, 'etc/hosts'), LOCALHOST);
    const r = await runCycle({ stateDir: state1, work: work1(), collectBoot: boot('boot-away'), callTimeoutMs: 2000 });
    expect(r).toMatchObject({ bootReported: false, inventoryReported: false, config: 'cached', applyReported: false });
    expect(r.results.find((x) => x.role === 'hosts')?.status).toBe('changed');
    expect(r.errors.length).toBeGreaterThanOrEqual(3);
    expect(r.errors.join('\n')).toMatch(/applying the cached one/);
    expect(read(root1, 'etc/hosts')).toContain('10.10.3.3  valkyrie03.cluster.local valkyrie03');

    // the service: boot reporting retries in the background while the cache is applied
    fs.writeFileSync(path.join(root1, 'etc/hosts'), LOCALHOST);
    const ac = new AbortController();
    const events: AgentEvent[] = [];
    const t0 = Date.now();
    const done = runAgent({
      stateDir: state1,
      signal: ac.signal,
      heartbeatMs: 100,
      callTimeoutMs: 1000,
      backoff: { initialMs: 20, maxMs: 200 },
      collectBoot: boot('boot-away'),
      work: work1(),
      onEvent: (e) => events.push(e),
    });
    try {
      await until(() => events.some((e) => e.type === 'applied'), 5000);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(read(root1, 'etc/hosts')).toContain('# BEGIN fleet managed');
      await until(() => events.filter((e) => e.type === 'error' && e.task === 'boot').length >= 2);
      expect(events.some((e) => e.type === 'boot-reported')).toBe(false);
      await until(() => events.some((e) => e.type === 'error' && e.task === 'apply-report'));
    } finally {
      ac.abort();
      await done;
    }
  });
});

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyConfig } from '../../../server/apply/config.js';
import { configForNode, createConfigService } from '../../../server/agents/config.js';
import { parseConfig } from '../../../server/config/index.js';
import { MUNGE_KEY_SECRET, redactSlurmSecrets } from '../../../server/slurm/index.js';
import { openStore, type Store } from '../../../server/store/index.js';

const YAML = `
cluster: { name: lab, domain: cluster.local, timezone: Europe/Brussels, management_address: 10.10.0.1 }
networks: { provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254 } }
profiles:
  head: { os: { tree: "http://10.10.0.1/os" }, roles: { hosts: {}, slurm: { role: controller } } }
  compute: { os: { tree: "http://10.10.0.1/os" }, roles: { hosts: {}, slurm: { role: compute } } }
  login: { os: { tree: "http://10.10.0.1/os" }, roles: { hosts: {} } }
nodes:
  ctl01: { profile: head, ip: 10.10.1.1, mac: "08:00:27:00:01:01" }
  login01: { profile: login, ip: 10.10.2.1, mac: "08:00:27:00:02:01" }
  "valkyrie[01-02]": { profile: compute, ip: "10.10.3.[1-2]", mac: ["08:00:27:00:03:01", "08:00:27:00:03:02"] }
`;

const GiB = 1024 ** 3;
let dir: string;
let file: string;
const stores: Store[] = [];

async function open(key: Buffer): Promise<Store> {
  const s = await openStore({ file }, { secretKey: key });
  stores.push(s);
  return s;
}

function factsOf(clusterJson: string): { slurm?: { conf: string; mungeKeyB64: string } } {
  return JSON.parse(clusterJson) as { slurm?: { conf: string; mungeKeyB64: string } };
}

/** Every byte SQLite keeps for this database. */
function dbBytes(): Buffer {
  return Buffer.concat(['', '-wal', '-shm'].map((x) => (fs.existsSync(file + x) ? fs.readFileSync(file + x) : Buffer.alloc(0))));
}

const keyA = crypto.randomBytes(32);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-slurm-'));
  file = path.join(dir, 'fleet.db');
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function cluster(): Promise<Store> {
  const store = await open(keyA);
  await applyConfig(store, parseConfig(YAML), {}, { actor: 'test', dryRun: false });
  return store;
}

describe('GetConfig: slurm in cluster_json', () => {
  it('slurm nodes get slurm.conf and one munge key of 1024 bytes; other nodes get neither', async () => {
    const store = await cluster();
    const ctl = factsOf((await configForNode(store, 'ctl01')).clusterJson);
    const v1 = factsOf((await configForNode(store, 'valkyrie01')).clusterJson);
    expect(ctl.slurm).toBeDefined();
    expect(Buffer.from(ctl.slurm!.mungeKeyB64, 'base64')).toHaveLength(1024);
    expect(v1.slurm).toEqual(ctl.slurm);
    expect(ctl.slurm!.conf).toContain('SlurmctldHost=ctl01(10.10.1.1)\n');
    expect(ctl.slurm!.conf).toContain('# valkyrie01 left out: no inventory reported yet\n');
    const login = await configForNode(store, 'login01');
    expect(factsOf(login.clusterJson).slurm).toBeUndefined();
    expect(login.clusterJson).not.toContain(ctl.slurm!.mungeKeyB64);
    // Generated once: the same key on every call, one secret.created event.
    expect(factsOf((await configForNode(store, 'ctl01')).clusterJson).slurm!.mungeKeyB64).toBe(ctl.slurm!.mungeKeyB64);
    const events = (await store.events.list({ limit: 1000 })).events;
    expect(events.filter((e) => e.kind === 'secret.created').map((e) => e.details)).toEqual([{ secret: MUNGE_KEY_SECRET }]);
  });

  it('a new inventory report that changes slurm.conf is a new version for slurm nodes only', async () => {
    const store = await cluster();
    const before = { ctl: await configForNode(store, 'ctl01'), login: await configForNode(store, 'login01') };
    expect((await configForNode(store, 'ctl01')).version).toBe(before.ctl.version);
    await store.inventory.record('valkyrie01', { cpu: { threads: 8 }, memory: { totalBytes: String(16 * GiB) } }, { actor: 'agent' });
    const after = await configForNode(store, 'ctl01');
    expect(after.version).not.toBe(before.ctl.version);
    expect(factsOf(after.clusterJson).slurm!.conf).toContain('NodeName=valkyrie01 NodeAddr=10.10.3.1 CPUs=8 RealMemory=16056 State=UNKNOWN\n');
    expect((await configForNode(store, 'login01')).version).toBe(before.login.version);
    // The same inventory again: same conf, same version.
    await store.inventory.record('valkyrie01', { cpu: { threads: 8 }, memory: { totalBytes: String(16 * GiB) } }, { actor: 'agent' });
    expect((await configForNode(store, 'ctl01')).version).toBe(after.version);
    // A heartbeat announces it.
    const svc = createConfigService({ store, clock: () => new Date() });
    expect((await svc.heartbeat('ctl01', { agentVersion: '', bootId: '' } as never)).configVersion).toBe(after.version);
    const answer = await svc.getConfig('valkyrie02', { knownVersion: '' });
    expect(factsOf(answer.clusterJson).slurm!.mungeKeyB64).toBe(factsOf(after.clusterJson).slurm!.mungeKeyB64);
  });

  it('a partial report (memory unknown on the wire) leaves the node out, saying why; a complete one brings it back', async () => {
    const store = await cluster();
    await store.inventory.record(
      'valkyrie02',
      { cpu: { threads: 4 }, completeness: { unknown: [{ section: 'memory', reason: 'mem: timed out after 1500 ms' }], partial: true } },
      { actor: 'agent' },
    );
    const partial = factsOf((await configForNode(store, 'ctl01')).clusterJson).slurm!.conf;
    expect(partial).toContain('# valkyrie02 left out: its last inventory is partial: memory unknown (mem: timed out after 1500 ms)\n');
    expect(partial).not.toMatch(/NodeName=valkyrie02/);
    await store.inventory.record('valkyrie02', { cpu: { threads: 4 }, memory: { totalBytes: String(8 * GiB) } }, { actor: 'agent' });
    expect(factsOf((await configForNode(store, 'ctl01')).clusterJson).slurm!.conf).toContain('NodeName=valkyrie02 NodeAddr=10.10.3.2 CPUs=4 RealMemory=7936 State=UNKNOWN\n');
  });

  it('the key is stored sealed, and no event, secret listing or redacted config shows it', async () => {
    const store = await cluster();
    const cfg = await configForNode(store, 'valkyrie02');
    const keyB64 = factsOf(cfg.clusterJson).slurm!.mungeKeyB64;
    const raw = Buffer.from(keyB64, 'base64');
    const probes = [raw.subarray(0, 32), Buffer.from(keyB64.slice(0, 40))];
    for (const phase of ['open', 'closed']) {
      if (phase === 'closed') await stores[0]!.close();
      const bytes = dbBytes();
      for (const p of probes) expect(bytes.includes(p), `${phase}: key bytes in the database`).toBe(false);
    }
    const again = await open(keyA);
    const shown = JSON.stringify([(await again.events.list({ limit: 1000 })).events, await again.secrets.list(), redactSlurmSecrets(cfg)]);
    expect(shown).not.toContain(keyB64.slice(0, 40));
    expect(shown).toContain('<redacted>');
    expect(factsOf((await configForNode(again, 'ctl01')).clusterJson).slurm!.mungeKeyB64).toBe(keyB64);
  });

  it('a data dir whose secret key changed gets a new munge key (secret.replaced), not an error', async () => {
    const store = await cluster();
    const k1 = factsOf((await configForNode(store, 'ctl01')).clusterJson).slurm!.mungeKeyB64;
    await store.close();
    const other = await open(crypto.randomBytes(32));
    const k2 = factsOf((await configForNode(other, 'ctl01')).clusterJson).slurm!.mungeKeyB64;
    expect(k2).not.toBe(k1);
    const replaced = (await other.events.list({ limit: 1000 })).events.filter((e) => e.kind === 'secret.replaced');
    expect(replaced).toHaveLength(1);
    expect(replaced[0]!.details).toMatchObject({ secret: MUNGE_KEY_SECRET, reason: expect.stringMatching(/sealed with another secret key/) });
  });

  it('without a single controller node, slurm nodes get no slurm facts', async () => {
    const store = await cluster();
    await store.nodes.upsert({ name: 'ctl02', profile: 'head', ip: '10.10.1.2', macs: [], pet: false }, { actor: 'test' });
    expect(factsOf((await configForNode(store, 'valkyrie01')).clusterJson).slurm).toBeUndefined();
  });
});

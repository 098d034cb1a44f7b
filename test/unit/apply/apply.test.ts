import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applySpec,
  digestSecrets,
  executeApply,
  formatPlan,
  isEmptyPlan,
  loadCurrentState,
  planApply,
  type Secrets,
} from '../../../server/apply/index.js';
import { FleetError } from '../../../common/errors.js';
import type { ClusterSpec, NodeSpec, ProfileSpec } from '../../../server/model.js';
import { openStore, type Store } from '../../../server/store/index.js';

const IPMI_PW = 'ipmi-pw-Zq81-never-print';
const REDFISH_PW = 'redfish-pw-Xk22-never-print';

const profile = (name: string, packages: string[] = ['vim']): ProfileSpec => ({
  name,
  os: { install: 'kickstart', tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' },
  kernelArgs: ['console=ttyS0,115200'],
  packages,
  sshKeys: ['ssh-ed25519 AAAA test'],
  roles: { chrony: { servers: ['10.10.0.1'], makestep: '1 3' } },
});

const node = (i: number, extra: Partial<NodeSpec> = {}): NodeSpec => ({
  name: `valkyrie${String(i).padStart(2, '0')}`,
  profile: 'compute',
  ip: `10.10.3.${i}`,
  macs: [`52:54:00:00:03:${i.toString(16).padStart(2, '0')}`],
  bmc: { address: `10.10.103.${i}`, port: 623, protocol: 'ipmi', credentials: 'ipmi-admin' },
  pet: false,
  ...extra,
});

function fixture(): ClusterSpec {
  return {
    cluster: { name: 'valhalla', domain: 'cluster.local', timezone: 'Europe/Brussels', managementAddress: '10.10.0.1' },
    networks: {
      provisioning: {
        subnet: '10.10.0.0/16',
        unknownRange: { start: '10.10.254.1', end: '10.10.254.254' },
        dns: ['10.10.0.1'],
        ntp: ['10.10.0.1'],
      },
      bmc: { subnet: '10.10.100.0/22' },
    },
    credentials: [
      { name: 'ipmi-admin', username: 'admin', passwordFile: '/etc/fleet/ipmi.pw' },
      { name: 'redfish-admin', username: 'root', passwordEnv: 'REDFISH_PW' },
    ],
    profiles: [profile('compute'), profile('gpu', ['vim', 'cuda'])],
    nodes: [
      node(1),
      node(2),
      node(3),
      node(4),
      node(5, { profile: 'gpu', bmc: { address: '10.10.103.5', port: 443, protocol: 'redfish', credentials: 'redfish-admin' } }),
      node(6, { pet: true }),
    ],
    netboot: { dhcp: { enabled: true, mode: 'proxy' } },
    server: { listen: '0.0.0.0:8080' },
  };
}

const secretsOf = (ipmi = IPMI_PW, redfish = REDFISH_PW): Secrets =>
  new Map([
    ['ipmi-admin', { username: 'admin', secret: ipmi }],
    ['redfish-admin', { username: 'root', secret: redfish }],
  ]);

let dir: string;
let store: Store;

async function plan(spec: ClusterSpec, secrets: Secrets = secretsOf(), opts: { prune?: boolean } = {}) {
  return planApply(await loadCurrentState(store), spec, digestSecrets(store, secrets), opts);
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-apply-'));
  store = await openStore({ file: path.join(dir, 'fleet.db') }, { secretKey: crypto.randomBytes(32) });
});

afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('planApply / executeApply', () => {
  it('first apply adds everything, with events; the second is empty and writes nothing', async () => {
    const spec = fixture();
    const p1 = await plan(spec);
    expect(formatPlan(p1)).toBe(
      [
        '~ settings: cluster, netboot, networks, server',
        '+ credential ipmi-admin (user admin)',
        '+ credential redfish-admin (user root)',
        '+ profile compute',
        '+ profile gpu',
        '+ valkyrie01 (compute, 10.10.3.1, bmc 10.10.103.1 ipmi)',
        '+ valkyrie02 (compute, 10.10.3.2, bmc 10.10.103.2 ipmi)',
        '+ valkyrie03 (compute, 10.10.3.3, bmc 10.10.103.3 ipmi)',
        '+ valkyrie04 (compute, 10.10.3.4, bmc 10.10.103.4 ipmi)',
        '+ valkyrie05 (gpu, 10.10.3.5, bmc 10.10.103.5 redfish)',
        '+ valkyrie06 (compute, 10.10.3.6, bmc 10.10.103.6 ipmi, pet)',
        '= 0 unchanged',
      ].join('\n'),
    );
    const r1 = await executeApply(store, p1, secretsOf(), 'alice');
    expect(r1).toMatchObject({ applied: true, nodes: { added: 6, changed: 0, removed: 0 } });

    const nodes = await store.nodes.list();
    expect(nodes.map((n) => n.name)).toEqual(spec.nodes.map((n) => n.name));
    expect(nodes[4]).toMatchObject({ profile: 'gpu', bmc: { protocol: 'redfish', port: 443, credentials: 'redfish-admin' }, state: 'enrolled' });
    expect(await store.profiles.get('gpu')).toEqual(profile('gpu', ['vim', 'cuda']));
    expect((await store.credentials.revealSecret('redfish-admin')).secret).toBe(REDFISH_PW);
    const { cluster, networks, netboot, server } = spec;
    expect(await store.settings.getCluster()).toEqual({ cluster, networks, netboot, server });

    const all = (await store.events.list({ limit: 1000 })).events;
    expect(all.filter((e) => e.kind === 'node.added')).toHaveLength(6);
    expect(new Set(all.map((e) => e.actor))).toEqual(new Set(['alice']));
    expect(new Set(all.map((e) => e.cause))).toEqual(new Set(['apply']));

    const lastId = await store.events.lastId();
    const p2 = await plan(fixture());
    expect(isEmptyPlan(p2)).toBe(true);
    expect(formatPlan(p2)).toBe('No changes.\n= 6 unchanged');
    expect(await executeApply(store, p2, secretsOf(), 'alice')).toMatchObject({ applied: false });
    expect(await store.events.lastId()).toBe(lastId);
    // Also through applySpec, and with nodes given in another order.
    const shuffled = fixture();
    shuffled.nodes.reverse();
    const again = await applySpec(store, shuffled, secretsOf(), { actor: 'alice' });
    expect(again.result?.applied).toBe(false);
    expect(await store.events.lastId()).toBe(lastId);
  });

  it('plans field-level changes, prints them without secrets, and applies them', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'alice' });
    const spec = fixture();
    spec.nodes[0] = node(1, { ip: '10.10.3.9' });
    spec.nodes[1] = node(2, {
      profile: 'gpu',
      macs: ['52:54:00:00:03:02', '52:54:00:00:04:02'],
      bmc: { address: '10.10.103.2', port: 443, protocol: 'redfish', credentials: 'redfish-admin' },
      pet: true,
    });
    spec.nodes.splice(5, 1); // valkyrie06 (a pet) goes: only with prune
    spec.nodes.push(node(7));
    spec.profiles[0] = profile('compute', ['vim', 'htop']);
    spec.credentials[1] = { name: 'redfish-admin', username: 'fleet', passwordEnv: 'REDFISH_PW' };
    spec.netboot = { dhcp: { enabled: true, mode: 'authoritative' } };
    const secrets = secretsOf('new-ipmi-pw-q1', REDFISH_PW);
    const secrets2 = new Map(secrets);
    secrets2.set('redfish-admin', { username: 'fleet', secret: REDFISH_PW });

    expect(formatPlan(await plan(spec, secrets2))).toContain('! valkyrie06 (pet): would remove (use --prune)');
    const p = await plan(spec, secrets2, { prune: true });
    const text = formatPlan(p);
    expect(text).toBe(
      [
        '~ settings: netboot',
        '~ credential ipmi-admin: secret changed',
        '~ credential redfish-admin: username root → fleet',
        '~ profile compute: packages',
        '+ valkyrie07 (compute, 10.10.3.7, bmc 10.10.103.7 ipmi)',
        '~ valkyrie01: ip 10.10.3.1 → 10.10.3.9',
        '~ valkyrie02: profile compute → gpu, macs 52:54:00:00:03:02 → 52:54:00:00:03:02,52:54:00:00:04:02, ' +
          'bmc 10.10.103.2 ipmi (ipmi-admin) → 10.10.103.2 redfish (redfish-admin), pet no → yes',
        '- valkyrie06',
        '= 3 unchanged',
      ].join('\n'),
    );
    for (const s of ['new-ipmi-pw-q1', IPMI_PW, REDFISH_PW, ...p.credentials.changed.map((c) => c.secretDigest)]) {
      expect(text).not.toContain(s);
    }

    const before = await store.events.lastId();
    const r = await executeApply(store, p, secrets2, 'bob');
    expect(r).toMatchObject({
      applied: true,
      settingsChanged: true,
      nodes: { added: 1, changed: 2, removed: 1 },
      profiles: { added: 0, changed: 1, removed: 0 },
      credentials: { added: 0, changed: 2, removed: 0 },
    });
    expect((await store.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.9');
    expect(await store.nodes.get('valkyrie06')).toBeNull();
    expect((await store.credentials.revealSecret('ipmi-admin')).secret).toBe('new-ipmi-pw-q1');
    expect((await store.settings.getCluster())?.netboot).toEqual(spec.netboot);
    const events = (await store.events.list({ afterId: before, limit: 1000 })).events;
    expect(events.map((e) => `${e.kind}:${e.node ?? ''}`).sort()).toEqual(
      [
        'settings.changed:',
        'credential.changed:',
        'credential.changed:',
        'profile.changed:',
        'node.removed:valkyrie06',
        'node.changed:valkyrie01',
        'node.changed:valkyrie02',
        'node.added:valkyrie07',
      ].sort(),
    );
    expect(events.find((e) => e.node === 'valkyrie01')?.details).toEqual({ changes: { ip: { from: '10.10.3.1', to: '10.10.3.9' } } });
    expect(JSON.stringify(events)).not.toContain('new-ipmi-pw-q1');
    expect(isEmptyPlan(await plan(spec, secrets2))).toBe(true);
  });

  it('keeps runtime state of changed nodes and ignores it when planning', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    await store.nodes.setState('valkyrie01', 'ready', { actor: 'conductor' });
    await store.nodes.setArmed('valkyrie01', true, { actor: 'conductor' });
    expect(isEmptyPlan(await plan(fixture()))).toBe(true);
    const spec = fixture();
    spec.nodes[0] = node(1, { ip: '10.10.3.99' });
    await applySpec(store, spec, secretsOf(), { actor: 'a' });
    expect(await store.nodes.get('valkyrie01')).toMatchObject({ ip: '10.10.3.99', state: 'ready', armed: true });
  });

  it('swaps IPs and MACs between nodes, and removes a profile and credential together with their last users', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const spec = fixture();
    const [a, b] = [spec.nodes[0]!, spec.nodes[1]!];
    spec.nodes[0] = { ...a, ip: b.ip, macs: b.macs };
    spec.nodes[1] = { ...b, ip: a.ip, macs: a.macs };
    spec.nodes.splice(4, 1); // valkyrie05: last gpu and redfish user
    spec.profiles.splice(1, 1);
    spec.credentials.splice(1, 1);
    const secrets = new Map([...secretsOf()].filter(([k]) => k === 'ipmi-admin'));
    const { text, result } = await applySpec(store, spec, secrets, { actor: 'a' });
    expect(text).toContain('- profile gpu');
    expect(text).toContain('- credential redfish-admin');
    expect(result?.applied).toBe(true);
    expect((await store.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.2');
    expect((await store.nodes.findByMac('52:54:00:00:03:01'))?.name).toBe('valkyrie02');
    expect((await store.profiles.list()).map((x) => x.name)).toEqual(['compute']);
    expect((await store.credentials.list()).map((x) => x.name)).toEqual(['ipmi-admin']);
  });

  it('reports every problem of an unappliable spec at once', async () => {
    const spec = fixture();
    spec.nodes[0] = node(1, { profile: 'nope' });
    spec.nodes[1] = node(2, { bmc: { address: '10.10.103.2', port: 623, protocol: 'ipmi', credentials: 'ghost' } });
    spec.nodes[2] = node(3, { macs: node(4).macs });
    spec.nodes[3] = node(4, { ip: '10.10.3.5' });
    spec.nodes.push(node(6));
    const secrets = new Map([...secretsOf()].filter(([k]) => k === 'ipmi-admin'));
    const e = await plan(spec, secrets).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    const messages = ((e as FleetError).details as { message: string }[]).map((d) => d.message);
    expect(messages).toEqual(
      expect.arrayContaining([
        'valkyrie06 is declared twice',
        'no secret was read for credential redfish-admin',
        'valkyrie01: unknown profile nope',
        'valkyrie02: unknown credentials ghost',
        "valkyrie04: MAC 52:54:00:00:03:04 is also valkyrie03's",
        "valkyrie05: IP 10.10.3.5 is also valkyrie04's",
      ]),
    );
    expect(messages).toHaveLength(6);
  });

  it('planApply is pure: same inputs, same plan, inputs untouched', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const current = await loadCurrentState(store);
    const spec = fixture();
    spec.nodes[0] = node(1, { macs: ['52:54:00:00:03:01'.toUpperCase()] });
    const snapshot = JSON.stringify([current, spec]);
    const digests = digestSecrets(store, secretsOf());
    const p1 = planApply(current, spec, digests);
    const p2 = planApply(current, spec, digests);
    expect(p1).toEqual(p2);
    expect(JSON.stringify([current, spec])).toBe(snapshot);
    // Upper-case MACs normalize to the stored form: no change.
    expect(isEmptyPlan(p1)).toBe(true);
  });

  it('refuses a stale plan and a secret that is not the planned one', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const spec = fixture();
    spec.nodes[0] = node(1, { ip: '10.10.3.50' });
    const stale = await plan(spec);
    const other = fixture();
    other.nodes[2] = node(3, { ip: '10.10.3.60' });
    await applySpec(store, other, secretsOf(), { actor: 'b' });
    const e1 = await executeApply(store, stale, secretsOf(), 'a').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e1 as FleetError).code).toBe('conflict');
    expect((await store.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.1');

    const spec2 = fixture();
    const fresh = await plan(spec2, secretsOf('changed-pw'));
    const e2 = await executeApply(store, fresh, secretsOf('yet-another-pw'), 'a').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e2 as FleetError).code).toBe('conflict');
    expect((e2 as FleetError).message).not.toContain('yet-another-pw');
    expect((await store.credentials.revealSecret('ipmi-admin')).secret).toBe(IPMI_PW);
  });

  it('a failure midway leaves the store as it was (one transaction)', async () => {
    const raw = new Database(store.file!);
    raw.exec(`CREATE TRIGGER fail_last BEFORE INSERT ON events WHEN NEW.node = 'valkyrie06'
              BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    raw.close();
    await expect(applySpec(store, fixture(), secretsOf(), { actor: 'a' })).rejects.toThrow(/injected failure/);
    expect(await store.nodes.list()).toEqual([]);
    expect(await store.profiles.list()).toEqual([]);
    expect(await store.credentials.list()).toEqual([]);
    expect(await store.settings.getCluster()).toBeNull();
    expect(await store.events.lastId()).toBe(0);
  });

  it('formats BMC ports, missing IPs and removed BMCs', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const spec = fixture();
    spec.nodes[0] = node(1, { bmc: { address: '10.10.103.1', port: 6230, protocol: 'ipmi', credentials: 'ipmi-admin' } });
    spec.nodes[1] = node(2, { bmc: undefined, ip: undefined });
    spec.nodes.push({ name: 'valkyrie08', profile: 'compute', macs: [], pet: false });
    const text = formatPlan(await plan(spec));
    expect(text.split('\n')).toEqual([
      '+ valkyrie08 (compute, no ip)',
      '~ valkyrie01: bmc 10.10.103.1 ipmi → 10.10.103.1:6230 ipmi',
      '~ valkyrie02: ip 10.10.3.2 → none, bmc 10.10.103.2 ipmi → none',
      '= 4 unchanged',
    ]);
  });

  it("shows a Redfish node's system, auth and power wait in the plan", async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const spec = fixture();
    spec.nodes[4] = node(5, { profile: 'gpu', bmc: { address: '10.10.103.5', port: 443, protocol: 'redfish', credentials: 'redfish-admin', system: 'Blade2', auth: 'basic', powerWait: 60 } });
    const text = formatPlan(await plan(spec));
    expect(text.split('\n')).toEqual(['~ valkyrie05: bmc 10.10.103.5 redfish → 10.10.103.5 redfish system Blade2 auth basic power_wait 60s', '= 5 unchanged']);
  });
});

describe('apply removes only what it may (issue 9)', () => {
  const errOf = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => undefined,
      (e: unknown) => e,
    );
  /** fixture() without valkyrie03 (index 2). */
  const without3 = (): ClusterSpec => {
    const spec = fixture();
    spec.nodes.splice(2, 1);
    return spec;
  };

  it('a node mid-operation gone from the file is held: refused without prune, removed with it', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    await store.nodes.setState('valkyrie03', 'installing', { actor: 'conductor' });
    const p = await plan(without3());
    expect(p.nodes.removed).toEqual([]);
    expect(p.nodes.held).toEqual([{ name: 'valkyrie03', state: 'installing', pet: false, reasons: ['busy'] }]);
    expect(formatPlan(p).split('\n')).toContain('! valkyrie03 (installing): would remove (use --prune)');

    const before = await store.events.lastId();
    const e = await errOf(applySpec(store, without3(), secretsOf(), { actor: 'a' }));
    expect((e as FleetError).code).toBe('conflict');
    expect((e as FleetError).message).toMatch(/valkyrie03 \(installing\).*--prune; nothing was changed/);
    expect(await store.nodes.get('valkyrie03')).not.toBeNull();
    expect(await store.events.lastId()).toBe(before);

    // The server's own apply at start keeps it and applies the rest.
    const spec = without3();
    spec.nodes[0] = node(1, { ip: '10.10.3.77' });
    const kept = await applySpec(store, spec, secretsOf(), { actor: 'fleet-server', held: 'keep' });
    expect(kept.result?.applied).toBe(true);
    expect((await store.nodes.get('valkyrie01'))?.ip).toBe('10.10.3.77');
    expect((await store.nodes.get('valkyrie03'))?.state).toBe('installing');

    const pruned = await applySpec(store, spec, secretsOf(), { actor: 'a', prune: true });
    expect(pruned.text.split('\n')).toContain('- valkyrie03');
    expect(await store.nodes.get('valkyrie03')).toBeNull();
  });

  it('a pet gone from the file is held; a resting cattle node is removed without prune', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const spec = fixture();
    spec.nodes.splice(5, 1); // valkyrie06, a pet
    spec.nodes.splice(3, 1); // valkyrie04, ready
    await store.nodes.setState('valkyrie04', 'ready', { actor: 'conductor' });
    const p = await plan(spec);
    expect(p.nodes.removed.map((n) => n.name)).toEqual(['valkyrie04']);
    expect(p.nodes.held.map((h) => [h.name, h.reasons])).toEqual([['valkyrie06', ['pet']]]);
    expect((await errOf(applySpec(store, spec, secretsOf(), { actor: 'a' })) as FleetError).code).toBe('conflict');
    await applySpec(store, spec, secretsOf(), { actor: 'a', prune: true });
    expect((await store.nodes.list()).map((n) => n.name)).toEqual(['valkyrie01', 'valkyrie02', 'valkyrie03', 'valkyrie05']);
  });

  it('refuses a removal that was not confirmed, and one whose node started an operation after the plan', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    const e = await errOf(applySpec(store, without3(), secretsOf(), { actor: 'a', confirmedRemovals: [] }));
    expect((e as FleetError).message).toMatch(/also removes valkyrie03, which was not confirmed/);
    const p = await plan(without3());
    expect(p.nodes.removed.map((n) => n.name)).toEqual(['valkyrie03']);
    await store.nodes.setState('valkyrie03', 'pxe-armed', { actor: 'conductor' });
    const e2 = await errOf(executeApply(store, p, secretsOf(), 'a'));
    expect((e2 as FleetError).code).toBe('conflict');
    expect((e2 as FleetError).message).toMatch(/valkyrie03 started an operation/);
    expect(await store.nodes.get('valkyrie03')).not.toBeNull();
  });

  it('keeps enrolled nodes and the profile they use; a file that declares one adopts it', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    await store.nodes.upsert({ name: 'odin', profile: 'gpu', macs: ['52:54:00:00:09:01'], ip: '10.10.3.200', pet: false }, { actor: 'x', cause: 'enroll' }, { origin: 'enroll' });
    expect((await store.nodes.get('odin'))?.origin).toBe('enroll');
    const spec = fixture();
    spec.nodes.splice(4, 1); // valkyrie05: the last declared gpu node
    spec.profiles.splice(1, 1); // gpu is gone from the file, but odin uses it
    const p = await plan(spec);
    expect(p.nodes.removed.map((n) => n.name)).toEqual(['valkyrie05']);
    expect(p.nodes.kept).toEqual([{ name: 'odin', origin: 'enroll' }]);
    expect(p.profiles.removed).toEqual([]);
    expect(p.profiles.kept).toEqual([{ name: 'gpu', nodes: ['odin'] }]);
    expect(formatPlan(p).split('\n').slice(-3)).toEqual([
      '= profile gpu kept: used by odin',
      '= 1 not in fleet.yaml, kept (enrolled): odin',
      '= 5 unchanged',
    ]);
    await applySpec(store, spec, secretsOf(), { actor: 'a' });
    expect(await store.nodes.get('odin')).toMatchObject({ origin: 'enroll', profile: 'gpu' });
    expect(isEmptyPlan(await plan(spec))).toBe(true);

    // A declared node may not take a MAC or IP of a node that stays.
    const clash = fixture();
    clash.nodes[0] = node(1, { ip: '10.10.3.200' });
    const e = await errOf(plan(clash));
    expect(((e as FleetError).details as { message: string }[]).map((d) => d.message)).toContain(
      'valkyrie01: IP 10.10.3.200 belongs to node odin, which stays (not declared here)',
    );

    // Declared in the file: adopted (origin config), and from then on removable by apply.
    const adopt = fixture();
    adopt.nodes.push({ name: 'odin', profile: 'gpu', macs: ['52:54:00:00:09:01'], ip: '10.10.3.200', pet: false });
    const pa = await plan(adopt);
    expect(pa.nodes.adopted).toEqual([{ name: 'odin', from: 'enroll' }]);
    expect(formatPlan(pa)).toContain('~ odin: now declared in fleet.yaml (was enrolled)');
    await applySpec(store, adopt, secretsOf(), { actor: 'a' });
    expect((await store.nodes.get('odin'))?.origin).toBe('config');
    const events = (await store.events.list({ node: 'odin', limit: 100 })).events;
    expect(events.at(-1)).toMatchObject({ kind: 'node.changed', details: { changes: { origin: { from: 'enroll', to: 'config' } } } });
    expect((await plan(fixture())).nodes.removed.map((n) => n.name)).toEqual(['odin']);
  });
});

describe('migration 004_node_origin', () => {
  it('marks nodes whose latest node.added came from an enrolment as enrolled, the rest as config', async () => {
    await applySpec(store, fixture(), secretsOf(), { actor: 'a' });
    await store.nodes.upsert({ name: 'odin', profile: 'gpu', macs: ['52:54:00:00:09:01'], pet: false }, { actor: 'x', cause: 'enroll' }, { origin: 'enroll' });
    const file = store.file!;
    await store.close();
    // The database as it was before 004: no origin column, no record of the migration — nor of
    // the later ones (Kysely runs migrations in order), so 005's columns and index and 006's table go too.
    const raw = new Database(file);
    raw.exec(`ALTER TABLE nodes DROP COLUMN origin;
      DROP TABLE node_flags;
      DROP INDEX tokens_one_outstanding;
      ${['sealed', 'key_id', 'revoked_at', 'revoked_reason', 'last_ip', 'last_used_at'].map((c) => `ALTER TABLE tokens DROP COLUMN ${c};`).join('\n')}
      DELETE FROM kysely_migration WHERE name >= '004'`);
    raw.close();
    store = await openStore({ file }, { secretKey: crypto.randomBytes(32) });
    expect((await store.nodes.list()).map((n) => [n.name, n.origin])).toEqual([
      ['odin', 'enroll'],
      ...fixture().nodes.map((n) => [n.name, 'config']),
    ]);
  });
});

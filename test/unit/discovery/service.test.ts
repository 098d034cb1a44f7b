/**
 * The discovery shell against a real (in-memory) store, with fleet.yaml
 * applied as fleet apply does: the plan from the store, accept (nodes through
 * the enroll path, machine.accepted, the reinstall for install), reject, the
 * refusals that change nothing, and policy auto's hook.
 */
import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { EVENT } from '../../../common/events.js';
import { applyConfig } from '../../../server/apply/config.js';
import { parseConfig } from '../../../server/config/index.js';
import { acceptMachines, AutoAccept, currentPlan, rejectMachines, unrejectMachines, type DiscoveryDeps } from '../../../server/discovery/index.js';
import type { ReinstallOptions } from '../../../server/lifecycle/types.js';
import { openStore, type Store } from '../../../server/store/index.js';

const YAML = (policy: 'manual' | 'auto') => `
cluster: {name: lab, domain: cluster.local, timezone: UTC, management_address: 10.10.0.1}
networks:
  provisioning: {subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254}
credentials:
  bmc-admin: {username: ADMIN, password_env: BMC_PW}
profiles:
  compute: {os: {tree: "http://10.10.0.1/os"}}
nodes:
  valkyrie01: {profile: compute, ip: 10.10.3.1}
discovery:
  policy: ${policy}
  rules:
    - name: lab
      match: {mac_prefix: "52:54:00"}
      names: valkyrie[01-04]
      profile: compute
      ip: 10.10.3.[1-4]
      bmc: {address: "10.10.103.[1-4]", credentials: bmc-admin}
      on_accept: install
    - name: spare
      match: {mac_prefix: "0c:c4:7a"}
      names: spare[1-9]
      profile: compute
    - name: po4711
      match: {serial: [SN-A, SN-B]}
      names: gpu[1-2]
      profile: compute
`;

let nowMs = Date.parse('2026-03-01T10:00:00.000Z');
let store: Store;
let reinstalls: { names: string[]; opts: ReinstallOptions }[];
let failing: string[];

function deps(extra: Partial<DiscoveryDeps> = {}): DiscoveryDeps {
  return {
    store,
    conductor: {
      reinstall: async (names: string[], opts: ReinstallOptions) => {
        reinstalls.push({ names, opts });
        return names.map((node) => ({ node, ok: true, from: 'enrolled', state: 'pxe-armed' }));
      },
    },
    preflight: async (profiles) => (failing.length ? profiles.map(() => ({ id: 'os-tree', status: 'fail' as const, message: failing.join(', '), fix: 'publish the tree' })) : []),
    ...extra,
  };
}

async function apply(policy: 'manual' | 'auto'): Promise<void> {
  await applyConfig(store, parseConfig(YAML(policy)), { 'bmc-admin': 'secret-pw' }, { actor: 'test', dryRun: false });
}

async function see(mac: string): Promise<void> {
  await store.discovered.record({ mac, ip: '10.10.254.9', vendorClass: 'PXEClient' });
  nowMs += 1000;
}

beforeEach(async () => {
  store = await openStore({ memory: true }, { secretKey: crypto.randomBytes(32), clock: () => new Date(nowMs) });
  reinstalls = [];
  failing = [];
  await apply('manual');
});
afterEach(async () => store.close());

async function expectRefused(p: Promise<unknown>, code: string, message: RegExp): Promise<FleetError> {
  const e = await p.catch((x: unknown) => x);
  expect(e).toBeInstanceOf(FleetError);
  expect((e as FleetError).code).toBe(code);
  expect((e as FleetError).message).toMatch(message);
  return e as FleetError;
}

describe('discovery against the store', () => {
  it('plans from the applied rules, skipping what nodes hold', async () => {
    await see('52:54:00:00:00:01');
    await see('0c:c4:7a:00:00:01');
    await see('aa:00:00:00:00:01');
    const { policy, rules, plan } = await currentPlan(store);
    expect(policy).toBe('manual');
    expect(rules).toEqual(['lab', 'spare', 'po4711']);
    // valkyrie01 is a node of fleet.yaml: the lab rule's first free slot is valkyrie02.
    expect(plan.planned.map((p) => [p.mac, p.name, p.ip, p.bmc?.address ?? null])).toEqual([
      ['52:54:00:00:00:01', 'valkyrie02', '10.10.3.2', '10.10.103.2'],
      ['0c:c4:7a:00:00:01', 'spare1', null, null],
    ]);
    // The serial rule needs a serial, which no machine has until inspection reports exist: it waits.
    expect(plan.unplanned).toEqual([{ mac: 'aa:00:00:00:00:01', status: 'waiting', reason: 'rule po4711: serial unknown: no inspection report yet', rule: 'po4711' }]);
  });

  it('accept: the planned node through the enroll path (kept by apply), machine.accepted, then the reinstall', async () => {
    await see('52:54:00:00:00:01');
    const res = await acceptMachines(deps(), { actor: 'alice', via: 'command', stagger: { count: 10, intervalMs: 30_000 } });
    expect(res.accepted.map((a) => [a.name, a.install?.state])).toEqual([['valkyrie02', 'pxe-armed']]);
    const node = await store.nodes.get('valkyrie02');
    expect(node).toMatchObject({ profile: 'compute', ip: '10.10.3.2', macs: ['52:54:00:00:00:01'], origin: 'enroll', bmc: { address: '10.10.103.2', port: 623, protocol: 'ipmi', credentials: 'bmc-admin' } });
    expect(reinstalls).toEqual([{ names: ['valkyrie02'], opts: { actor: 'alice', force: false, stagger: { count: 10, intervalMs: 30_000 } } }]);
    expect(await store.discovered.get('52:54:00:00:00:01')).toBeNull();
    const [ev] = (await store.events.list({ kinds: [EVENT.machineAccepted] })).events;
    expect(ev).toMatchObject({ node: 'valkyrie02', actor: 'alice', cause: 'fleet discover --accept', details: { mac: '52:54:00:00:00:01', rule: 'lab', ip: '10.10.3.2', bmc: '10.10.103.2:623', onAccept: 'install', via: 'command' } });
    // A re-apply of the same fleet.yaml keeps the accepted node.
    await apply('manual');
    expect(await store.nodes.get('valkyrie02')).not.toBeNull();
  });

  it('accept: the machine\'s events from before it had a name (its first lease) become the node\'s; another machine\'s stay unnamed', async () => {
    await see('52:54:00:00:00:01');
    await see('aa:00:00:00:00:01');
    await acceptMachines(deps(), { actor: 'alice', via: 'command', macs: ['52:54:00:00:00:01'] });
    const mine = (await store.events.list({ node: 'valkyrie02' })).events;
    expect(mine.map((e) => e.kind)).toEqual([EVENT.machineDiscovered, 'node.added', EVENT.machineAccepted]);
    expect(mine[0]).toMatchObject({ node: 'valkyrie02', actor: 'netboot', details: { mac: '52:54:00:00:00:01', ip: '10.10.254.9' } });
    const other = (await store.events.list({ kinds: [EVENT.machineDiscovered] })).events.filter((e) => (e.details as { mac?: string } | null)?.mac === 'aa:00:00:00:00:01');
    expect(other).toEqual([expect.objectContaining({ node: null })]);
  });

  it('refuses, changing nothing: a MAC not planned, a plan that moved, a failing check of an install profile', async () => {
    await see('52:54:00:00:00:01');
    await see('aa:00:00:00:00:01');
    const e = await expectRefused(acceptMachines(deps(), { macs: ['52:54:00:00:00:01', 'aa:00:00:00:00:01', '52:54:00:00:00:99'], actor: 'a', via: 'command' }), 'conflict', /^2 machines are not in the plan; nothing was accepted$/);
    expect((e.details as { errors: string[] }).errors).toEqual([
      'aa:00:00:00:00:01: waiting: rule po4711: serial unknown: no inspection report yet',
      '52:54:00:00:00:99: not a discovered machine (fleet discovered)',
    ]);
    await expectRefused(acceptMachines(deps(), { macs: ['52:54:00:00:00:01'], expect: { '52:54:00:00:00:01': 'valkyrie03' }, actor: 'a', via: 'command' }), 'conflict', /plan changed/);
    failing = ['no OS tree at http://10.10.0.1/os'];
    const pre = await expectRefused(acceptMachines(deps(), { actor: 'a', via: 'command' }), 'precondition.failed', /^accept refused: 1 check that profile compute depends on fails/);
    expect((pre.details as { errors: string[] }).errors[0]).toMatch(/no OS tree/);
    expect(await store.nodes.get('valkyrie02')).toBeNull();
    expect(await store.discovered.get('52:54:00:00:00:01')).not.toBeNull();
    expect(reinstalls).toEqual([]);
    // force: accepted anyway, as fleet reinstall --force.
    expect((await acceptMachines(deps(), { force: true, actor: 'a', via: 'command' })).accepted).toHaveLength(1);
  });

  it('install without a conductor is refused before anything is written', async () => {
    await see('52:54:00:00:00:01');
    await expectRefused(acceptMachines(deps({ conductor: undefined }), { actor: 'a', via: 'command' }), 'not_implemented', /without the lifecycle conductor/);
    expect(await store.nodes.get('valkyrie02')).toBeNull();
  });

  it('reject: plans skip the machine and list it; again is a no-op; a node MAC or unknown MAC is refused', async () => {
    await see('52:54:00:00:00:01');
    await see('52:54:00:00:00:02');
    expect(await rejectMachines(store, ['52-54-00-00-00-01'], 'bob')).toEqual([{ mac: '52:54:00:00:00:01', rejectedAt: expect.any(String), already: false }]);
    expect((await rejectMachines(store, ['52:54:00:00:00:01'], 'bob'))[0]!.already).toBe(true);
    const { plan } = await currentPlan(store);
    expect(plan.rejected).toEqual([{ mac: '52:54:00:00:00:01', rejectedAt: expect.any(String), rejectedBy: 'bob' }]);
    // The other machine now gets the first free name.
    expect(plan.planned.map((p) => [p.mac, p.name])).toEqual([['52:54:00:00:00:02', 'valkyrie02']]);
    // Seen again, it stays rejected.
    await see('52:54:00:00:00:01');
    expect((await currentPlan(store)).plan.rejected).toHaveLength(1);
    expect((await store.events.list({ kinds: [EVENT.machineRejected] })).events.map((e) => e.details)).toEqual([{ mac: '52:54:00:00:00:01' }]);
    await expectRefused(rejectMachines(store, ['52:54:00:00:00:77'], 'bob'), 'not_found', /no discovered machine/);
    await expectRefused(rejectMachines(store, ['nope'], 'bob'), 'request.invalid', /not a MAC/);
    await expectRefused(acceptMachines(deps(), { macs: ['52:54:00:00:00:01'], actor: 'a', via: 'command' }), 'conflict', /not in the plan/);
  });

  it('unreject: the machine is planned again, with machine.unrejected; one not rejected is a no-op; all or nothing', async () => {
    await see('52:54:00:00:00:01');
    await see('52:54:00:00:00:02');
    await rejectMachines(store, ['52:54:00:00:00:01'], 'bob');
    await expectRefused(unrejectMachines(store, ['52:54:00:00:00:01', '52:54:00:00:00:77'], 'carol'), 'not_found', /no discovered machine with MAC 52:54:00:00:00:77/);
    expect((await currentPlan(store)).plan.rejected).toHaveLength(1); // nothing changed
    expect(await unrejectMachines(store, ['52-54-00-00-00-01', '52:54:00:00:00:02'], 'carol')).toEqual([
      { mac: '52:54:00:00:00:01', already: false },
      { mac: '52:54:00:00:00:02', already: true },
    ]);
    const { plan } = await currentPlan(store);
    expect(plan.rejected).toEqual([]);
    expect(plan.planned.map((p) => [p.mac, p.name])).toEqual([
      ['52:54:00:00:00:01', 'valkyrie02'],
      ['52:54:00:00:00:02', 'valkyrie03'],
    ]);
    const ev = (await store.events.list({ kinds: [EVENT.machineUnrejected] })).events;
    expect(ev.map((e) => [e.actor, e.details])).toEqual([['carol', { mac: '52:54:00:00:00:01', rejectedAt: expect.any(String), rejectedBy: 'bob' }]]);
    await expectRefused(unrejectMachines(store, [], 'carol'), 'request.invalid', /take back which machines/);
  });

  it('policy auto accepts a planned machine when it is seen; manual does nothing; a machine waiting for a fact waits', async () => {
    const auto = new AutoAccept(deps());
    await see('52:54:00:00:00:01');
    auto.seen('52:54:00:00:00:01');
    await auto.idle();
    expect(await store.nodes.get('valkyrie02')).toBeNull(); // policy manual
    await apply('auto');
    await see('aa:00:00:00:00:05');
    auto.seen('52:54:00:00:00:01');
    auto.seen('aa:00:00:00:00:05');
    await auto.idle();
    expect((await store.nodes.get('valkyrie02'))?.origin).toBe('enroll');
    expect(reinstalls.map((r) => [r.names, r.opts.actor])).toEqual([[['valkyrie02'], 'discovery-auto']]);
    expect(await store.discovered.get('aa:00:00:00:00:05')).not.toBeNull(); // waiting: serial unknown
    const [ev] = (await store.events.list({ kinds: [EVENT.machineAccepted] })).events;
    expect(ev).toMatchObject({ actor: 'discovery-auto', cause: 'discovery policy auto', details: { via: 'policy' } });
  });

  it('policy auto leaves machines discovered when a check fails, and logs why', async () => {
    await apply('auto');
    failing = ['boot environment missing'];
    const warned: string[] = [];
    const auto = new AutoAccept({ ...deps(), log: { info: () => {}, warn: (o) => warned.push((o as { err: string }).err) } });
    await see('52:54:00:00:00:01');
    auto.seen('52:54:00:00:00:01');
    await auto.idle();
    expect(await store.nodes.get('valkyrie02')).toBeNull();
    expect(warned[0]).toMatch(/^accept refused/);
    await auto.stop();
  });
});

/**
 * Redfish through the whole server path: fleet.yaml → store → registry →
 * RedfishDriver over HTTPS against the stateful DMTF-mockup double. The BMC's
 * certificate is pinned at first contact (stored in the DB) and a changed
 * certificate is refused afterwards.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.js';
import { makeTestPki, RedfishDouble, type TestPki } from '../helpers/redfish-double.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'Redfish-Bmc-Pw-2207';

describe('fleet power/bmc info on a Redfish BMC (DMTF mockup double over HTTPS)', () => {
  let dir: string;
  let pki: TestPki;
  let bmc: RedfishDouble;
  let srv: TestServer;
  let server: RunningServer;

  const fleet = (...args: string[]) => srv.fleet(...args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-redfish-'));
    await mkdir(join(dir, 'pki'));
    pki = makeTestPki(join(dir, 'pki'));
    bmc = await RedfishDouble.start({ username: 'root', password: PASSWORD, tls: pki.server });
    bmc.setPowerState('Off');
    srv = await startTestServer(
      `
cluster: {name: rf, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  rf: {username: root, password_env: RF_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/os"}}
nodes:
  rack01:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${bmc.port}, protocol: redfish, credentials: rf}
`,
      { dir, env: { RF_PASSWORD: PASSWORD }, bmc: { timeoutMs: 5000, retries: 0 } },
    );
    server = srv.server;
  }, 60_000);

  afterAll(async () => {
    await srv?.close();
    await bmc?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('powers on through Redfish and pins the certificate seen first', async () => {
    const r = await fleet('power', 'on', 'rack01');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out.trim()).toBe('rack01: on');
    expect(bmc.system().PowerState).toBe('On');
    expect((await server.store.bmc.get('rack01'))?.tlsFingerprint).toBe(pki.fingerprint);
    expect(bmc.liveSessions).toBe(0);
  });

  it('reads the identity from the mockup', async () => {
    const r = await fleet('bmc', 'info', 'rack01', '--json');
    expect(r.code, r.err).toBe(0);
    const id = (JSON.parse(r.out) as { results: { identity: { serial: string; manufacturer: string } }[] }).results[0]!.identity;
    expect(id.serial).toBe(bmc.system().SerialNumber);
    expect(id.manufacturer).toBe(bmc.system().Manufacturer);
  });

  it('refuses a BMC whose certificate changed since it was pinned', async () => {
    bmc.rotateCertificate(pki.server2);
    const r = await fleet('power', 'status', 'rack01');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^rack01: TLS certificate not trusted \(bmc 127\.0\.0\.1:\d+, redfish\): /m);
    expect(r.out).toContain(pki.fingerprint2);
    expect(r.out).not.toContain(PASSWORD);
  });
});

/**
 * Issue 9: a blade chassis (one Redfish BMC, four ComputerSystems, no
 * SessionService: HTTP Basic only) behind four nodes that each name their
 * system, and a node on a second chassis that names none.
 */
describe('fleet power/bootdev on a four-system Redfish chassis without SessionService', () => {
  const BLADES = ['Blade1', 'Blade2', 'Blade3', 'Blade4'];
  let dir: string;
  let pki: TestPki;
  let chassis: RedfishDouble;
  let other: RedfishDouble;
  let srv: TestServer;
  let server: RunningServer;

  const fleet = (...args: string[]) => srv.fleet(...args);
  const powerStates = () => BLADES.map((b) => chassis.system(b)['PowerState']);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-chassis-'));
    await mkdir(join(dir, 'pki'));
    pki = makeTestPki(join(dir, 'pki'));
    // Power changes land 200 ms after the 204, as on slow BMCs.
    chassis = await RedfishDouble.start({ username: 'root', password: PASSWORD, tls: pki.server, systems: BLADES, sessionService: false, powerDelayMs: 200 });
    other = await RedfishDouble.start({ username: 'root', password: PASSWORD, tls: pki.server, systems: BLADES, sessionService: false });
    srv = await startTestServer(
      `
cluster: {name: rf, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  rf: {username: root, password_env: RF_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/os"}}
nodes:
  blade[1-4]:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${chassis.port}, protocol: redfish, credentials: rf, system: "Blade[1-4]", auth: auto, power_wait: 5}
  lonely:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${other.port}, protocol: redfish, credentials: rf}
`,
      { dir, env: { RF_PASSWORD: PASSWORD }, bmc: { timeoutMs: 5000, retries: 0 } },
    );
    server = srv.server;
  }, 60_000);

  afterAll(async () => {
    await srv?.close();
    await chassis?.close();
    await other?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('each node powers its own system, and the change has landed when fleet answers', async () => {
    const off = await fleet('power', 'off', 'blade2');
    expect(off.code, off.out + off.err).toBe(0);
    expect(powerStates()).toEqual(['On', 'Off', 'On', 'On']);
    const on = await fleet('power', 'on', 'blade2');
    expect(on.code, on.out + on.err).toBe(0);
    expect(powerStates()).toEqual(['On', 'On', 'On', 'On']);
    const cycle = await fleet('power', 'cycle', 'blade[1-4]');
    expect(cycle.code, cycle.out + cycle.err).toBe(0);
    expect(cycle.out.trim().split('\n')).toEqual(['blade1: on', 'blade2: on', 'blade3: on', 'blade4: on']);
    expect(powerStates()).toEqual(['On', 'On', 'On', 'On']);
    // One ForceOff+On per blade, each on its own system; blade2's off and on before that.
    const perSystem = (b: string) => chassis.resets.filter((r) => r.system.endsWith(`/${b}`)).map((r) => r.resetType);
    expect(BLADES.map(perSystem)).toEqual([['ForceOff', 'On'], ['ForceOff', 'On', 'ForceOff', 'On'], ['ForceOff', 'On'], ['ForceOff', 'On']]);
    expect(chassis.boots.map((b) => b.system).sort()).toEqual([...BLADES, 'Blade2'].map((b) => `/redfish/v1/Systems/${b}`).sort());
    // HTTP Basic only: no session was ever tried.
    expect(chassis.sessionsCreated).toBe(0);
    expect(chassis.requests.some((r) => r.path.startsWith('/redfish/v1/SessionService'))).toBe(false);
  });

  it('sets the boot override of its own system only and reports what the BMC stored', async () => {
    const r = await fleet('bootdev', 'cdrom', 'blade3', '--json');
    expect(r.code, r.out + r.err).toBe(0);
    const res = JSON.parse(r.out) as { results: { node: string; bootdev: { stored: unknown; quirks: string[] } }[] };
    expect(res.results[0]!.bootdev).toMatchObject({ device: 'cdrom', stored: { target: 'Cd', enabled: 'Once' }, quirks: [] });
    const boot = (b: string) => chassis.system(b)['Boot'] as Record<string, string>;
    expect(BLADES.map((b) => boot(b)['BootSourceOverrideTarget'])).toEqual(['Pxe', 'Pxe', 'Cd', 'Pxe']);
    const ev = (await server.store.events.list({ node: 'blade3', kinds: ['bmc.bootdev'] })).events.at(-1);
    expect(ev?.details).toMatchObject({ outcome: 'ok', stored: { target: 'Cd', enabled: 'Once' }, quirks: [] });
  });

  it('a node that names no system on a multi-system BMC fails with the list of systems, and nothing is done', async () => {
    const r = await fleet('power', 'off', 'lonely');
    expect(r.code).toBe(1);
    expect(r.out).toContain(`lonely: not supported (bmc 127.0.0.1:${other.port}, redfish): BMC 127.0.0.1:${other.port} manages 4 systems (Blade1, Blade2, Blade3, Blade4): name this node's system in fleet.yaml (bmc.system)`);
    expect(other.resets).toEqual([]);
    expect(r.out + r.err).not.toContain(PASSWORD);
  });
});

/**
 * Redfish through the whole server path: fleet.yaml → store → registry →
 * RedfishDriver over HTTPS against the stateful DMTF-mockup double. The BMC's
 * certificate is pinned at first contact (stored in the DB) and a changed
 * certificate is refused afterwards.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst } from '../helpers/cli.js';
import { makeTestPki, RedfishDouble, type TestPki } from '../helpers/redfish-double.js';

const PASSWORD = 'Redfish-Bmc-Pw-2207';

describe('fleet power/bmc info on a Redfish BMC (DMTF mockup double over HTTPS)', () => {
  let dir: string;
  let pki: TestPki;
  let bmc: RedfishDouble;
  let server: RunningServer;

  const fleet = (...args: string[]) => cliAgainst(server, dir, { USER: 'tester' })(...args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-redfish-'));
    await mkdir(join(dir, 'pki'));
    pki = makeTestPki(join(dir, 'pki'));
    bmc = await RedfishDouble.start({ username: 'root', password: PASSWORD, tls: pki.server });
    bmc.setPowerState('Off');
    await writeFile(
      join(dir, 'fleet.yaml'),
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
    );
    server = await startServer({
      configPath: join(dir, 'fleet.yaml'),
      dataDir: join(dir, 'data'),
      listen: '127.0.0.1:0',
      logLevel: 'warn',
      env: { RF_PASSWORD: PASSWORD },
      bmc: { timeoutMs: 5000, retries: 0 },
    });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
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

/**
 * RedfishDriver against the stateful Redfish double over real HTTPS, with a
 * certificate generated for this run (issue 3, Redfish part).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FleetError, isFleetError } from '../../common/errors.js';
import { RedfishDriver, type RedfishDriverOptions } from '../../server/bmc/redfish/driver.js';
import type { BmcTarget } from '../../server/bmc/types.js';
import { makeTestPki, RedfishDouble, type RedfishDoubleOptions, type TestPki } from '../helpers/redfish-double.js';

let pki: TestPki;
const doubles: RedfishDouble[] = [];
const drivers: RedfishDriver[] = [];

beforeAll(() => {
  pki = makeTestPki(mkdtempSync(join(tmpdir(), 'fleet-redfish-pki-')));
});
afterAll(() => {
  rmSync(pki.dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(drivers.splice(0).map((d) => d.close()));
  await Promise.all(doubles.splice(0).map((d) => d.close()));
});

async function bmcDouble(opts: RedfishDoubleOptions = {}): Promise<RedfishDouble> {
  const d = await RedfishDouble.start({ tls: pki.server, ...opts });
  doubles.push(d);
  return d;
}

function target(bmc: RedfishDouble, over: Partial<BmcTarget> = {}): BmcTarget {
  return {
    address: '127.0.0.1',
    port: bmc.port,
    username: bmc.username,
    password: bmc.password,
    tls: { fingerprint: pki.fingerprint },
    ...over,
  };
}

function driver(bmc: RedfishDouble, opts: RedfishDriverOptions = {}, over: Partial<BmcTarget> = {}): RedfishDriver {
  const d = new RedfishDriver(target(bmc, over), { timeoutMs: 5_000, settlePollMs: 25, ...opts });
  drivers.push(d);
  return d;
}

/** Rejects with a FleetError of this code whose message and details carry no password or token. */
async function failsWith(p: Promise<unknown>, code: FleetError['code'], bmc?: RedfishDouble): Promise<FleetError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a rejection').toBeDefined();
  expect(isFleetError(err), String(err)).toBe(true);
  const fe = err as FleetError;
  expect(fe.code, fe.message).toBe(code);
  if (bmc) expectNoSecrets(fe, bmc);
  return fe;
}

function expectNoSecrets(e: FleetError, bmc: RedfishDouble): void {
  const text = fe2text(e);
  expect(text).not.toContain(bmc.password);
  expect(text).not.toContain(Buffer.from(`${bmc.username}:${bmc.password}`).toString('base64'));
  for (const t of bmc.issuedTokens) expect(text).not.toContain(t);
}

function fe2text(e: FleetError): string {
  return `${e.message} ${JSON.stringify(e.details ?? null)} ${JSON.stringify(e.toJSON())}`;
}

const resetsOf = (bmc: RedfishDouble) => bmc.resets.map((r) => r.resetType);
const bootPatches = (bmc: RedfishDouble) =>
  bmc.requests.filter((r) => r.method === 'PATCH').map((r) => (JSON.parse(r.body) as { Boot: Record<string, string> }).Boot);

describe('power', () => {
  it('reads PowerState', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    expect(await d.powerStatus()).toBe('on');
    bmc.setPowerState('Off');
    expect(await d.powerStatus()).toBe('off');
  });

  it('powers off with ForceOff, and off again without a call', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.powerOff();
    expect(bmc.system()['PowerState']).toBe('Off');
    await d.powerOff();
    await d.powerSoft();
    expect(resetsOf(bmc)).toEqual(['ForceOff']);
  });

  it('powers on with On, and on when already on succeeds without a call', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.powerOn();
    expect(bmc.requests.some((r) => r.path.endsWith('ComputerSystem.Reset'))).toBe(false);
    bmc.setPowerState('Off');
    await d.powerOn();
    expect(resetsOf(bmc)).toEqual(['On']);
    expect(await d.powerStatus()).toBe('on');
  });

  it('soft off sends GracefulShutdown', async () => {
    const bmc = await bmcDouble();
    await driver(bmc).powerSoft();
    expect(resetsOf(bmc)).toEqual(['GracefulShutdown']);
    expect(bmc.system()['PowerState']).toBe('Off');
  });

  it('cycles with ForceOff + On where PowerCycle is not offered (the mockups)', async () => {
    const bmc = await bmcDouble();
    await driver(bmc).powerCycle();
    expect(resetsOf(bmc)).toEqual(['ForceOff', 'On']);
    expect(bmc.system()['PowerState']).toBe('On');
    expect(bmc.boots).toHaveLength(1);
  });

  it('cycles with PowerCycle where offered', async () => {
    const bmc = await bmcDouble({ resetTypes: ['On', 'ForceOff', 'PowerCycle', 'GracefulRestart'] });
    await driver(bmc).powerCycle();
    expect(resetsOf(bmc)).toEqual(['PowerCycle']);
  });

  it('resets with ForceRestart, else GracefulRestart', async () => {
    const bmc = await bmcDouble();
    await driver(bmc).powerReset();
    expect(resetsOf(bmc)).toEqual(['ForceRestart']);
    bmc.switches.resetTypes = ['On', 'ForceOff', 'GracefulRestart'];
    await driver(bmc).powerReset();
    expect(resetsOf(bmc)).toEqual(['ForceRestart', 'GracefulRestart']);
  });

  it('raises bmc.unsupported naming the allowed values when no ResetType fits', async () => {
    const bmc = await bmcDouble({ resetTypes: ['On', 'Nmi'] });
    const e = await failsWith(driver(bmc).powerOff(), 'bmc.unsupported', bmc);
    expect(e.message).toContain('ForceOff');
    expect(e.message).toContain('On, Nmi');
    expect(resetsOf(bmc)).toEqual([]);
  });
});

describe('boot device', () => {
  it('sets pxe once (UEFI) with If-Match, reads it back, and the override is used by the next boot only', async () => {
    const bmc = await bmcDouble({ mockup: 'public-tower' });
    const d = driver(bmc);
    await d.setBootDevice('pxe', { persistent: false, mode: 'uefi' });
    const patch = bmc.requests.find((r) => r.method === 'PATCH')!;
    expect(JSON.parse(patch.body)).toEqual({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } });
    const lastGet = bmc.requests.filter((r) => r.method === 'GET' && r.path === patch.path).at(-1)!;
    expect(patch.headers['if-match']).toMatch(/^W\/"[0-9a-f]+"$/);
    expect(lastGet).toBeDefined();
    expect(await d.getBootDevice()).toEqual({ device: 'pxe', persistent: false, mode: 'uefi' });
    await d.powerCycle();
    expect(bmc.boots.at(-1)).toMatchObject({ target: 'Pxe', enabled: 'Once' });
    expect(await d.getBootDevice()).toEqual({ device: 'none', persistent: null, mode: 'uefi' });
  });

  it('sets disk persistent (Legacy) and reads it back', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.setBootDevice('disk', { persistent: true, mode: 'legacy' });
    expect(await d.getBootDevice()).toEqual({ device: 'disk', persistent: true, mode: 'legacy' });
    await d.powerReset();
    await d.powerReset();
    expect(bmc.boots.map((b) => b.target)).toEqual(['Hdd', 'Hdd']);
  });

  it('omits BootSourceOverrideMode when the mode is auto', async () => {
    const bmc = await bmcDouble();
    await driver(bmc).setBootDevice('cdrom', { persistent: true, mode: 'auto' });
    expect(bootPatches(bmc)).toEqual([{ BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' }]);
  });

  it('refuses a mode the BMC does not offer, before any PATCH', async () => {
    const bmc = await bmcDouble({ bootModes: ['UEFI'] });
    await failsWith(driver(bmc).setBootDevice('pxe', { persistent: false, mode: 'legacy' }), 'bmc.unsupported', bmc);
    expect(bootPatches(bmc)).toEqual([]);
  });

  it('a stale ETag (412) is read again and the PATCH sent once more', async () => {
    const bmc = await bmcDouble({ staleEtagPatches: 1 });
    const d = driver(bmc);
    await d.setBootDevice('pxe', { persistent: true, mode: 'uefi' });
    const patches = bmc.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.status)).toEqual([412, 204]);
    expect(await d.getBootDevice()).toEqual({ device: 'pxe', persistent: true, mode: 'uefi' });
  });

  it('a stale ETag the BMC keeps refusing → bmc.command_failed', async () => {
    const bmc = await bmcDouble();
    bmc.switches.staleEtagPatches = 5;
    const e = await failsWith(driver(bmc).setBootDevice('pxe', { persistent: true, mode: 'uefi' }), 'bmc.command_failed', bmc);
    expect(e.message).toContain('HTTP 412');
    expect(bmc.requests.filter((r) => r.method === 'PATCH')).toHaveLength(2);
  });

  it('rejected PATCH → bmc.command_failed with the BMC reason', async () => {
    const bmc = await bmcDouble({ modeRequired: true });
    const e = await failsWith(driver(bmc).setBootDevice('pxe', { persistent: false, mode: 'auto' }), 'bmc.command_failed', bmc);
    expect(e.message).toContain('BootSourceOverrideMode is a required property');
    expect(e.message).toContain('HTTP 400');
  });
});

describe('identity and inventory', () => {
  it('public-rackmount1', async () => {
    const bmc = await bmcDouble({ mockup: 'public-rackmount1' });
    const d = driver(bmc);
    expect(await d.identity()).toEqual({
      manufacturer: 'Contoso',
      model: '3500',
      serial: '437XR1138R2',
      uuid: '38947555-7742-3448-3784-823347823834',
      bmcFirmware: '1.45.455b66-rev4',
      macs: ['12:44:6a:3b:04:11', 'aa:bb:cc:dd:ee:00', '12:44:6a:3b:88:90'],
    });
    const inv = await d.inventory();
    expect(inv.system).toMatchObject({ id: '437XR1138R2', serial: '437XR1138R2', processorCount: 2, memoryGiB: 96, powerState: 'On' });
    expect(inv.processors.map((p) => [p.id, p.type, p.state])).toEqual([
      ['CPU1', 'CPU', 'Enabled'],
      ['CPU2', 'CPU', 'Absent'],
      ['FPGA1', 'FPGA', 'Enabled'],
    ]);
    expect(inv.processors[0]).toMatchObject({ cores: 8, threads: 16, maxSpeedMHz: 3700, manufacturer: 'Intel(R) Corporation' });
    expect(inv.memory).toHaveLength(4);
    expect(inv.memory[0]).toMatchObject({ id: 'DIMM1', capacityMiB: 32768, type: 'DDR4' });
    expect(inv.totalMemoryMiB).toBe(3 * 32768);
    expect(inv.ethernet.map((n) => [n.id, n.hostInterface])).toEqual([
      ['12446A3B0411', false],
      ['12446A3B8890', false],
      ['VLAN1', false],
      ['ToManager', true],
    ]);
    expect(inv.bmcFirmware).toBe('1.45.455b66-rev4');
  });

  it('public-tower', async () => {
    const bmc = await bmcDouble({ mockup: 'public-tower' });
    const d = driver(bmc);
    expect(await d.identity()).toEqual({
      manufacturer: 'Contoso',
      model: '3500',
      serial: '437XR1238R2',
      uuid: '38947555-7742-3448-3784-823347823834',
      bmcFirmware: '1.45.455b66-rev4',
      macs: ['fb:aa:1d:4e:d0:7a', 'fb:aa:1d:4e:d0:7c'],
    });
    const inv = await d.inventory();
    expect(inv.processors).toHaveLength(10);
    expect(inv.processors.filter((p) => p.type === 'GPU').map((p) => p.id)).toEqual(['GPU1', 'GPU2']);
    expect(inv.memory).toHaveLength(16);
    expect(inv.totalMemoryMiB).toBe(1024 * 1024);
    expect(inv.system.memoryGiB).toBe(1024);
    expect(await d.getBootDevice()).toEqual({ device: 'none', persistent: null, mode: 'uefi' });
  });
});

describe('sessions and wire', () => {
  it('one session for many requests over few connections, deleted by close(); no chunked bodies', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.inventory();
    await d.setBootDevice('pxe', { persistent: false, mode: 'uefi' });
    await d.powerCycle();
    expect(bmc.liveSessions).toBe(1);
    await d.close();
    await d.close();
    expect(bmc.sessionsCreated).toBe(1);
    expect(bmc.sessionsDeleted).toBe(1);
    expect(bmc.liveSessions).toBe(0);
    const del = bmc.requests.filter((r) => r.method === 'DELETE');
    expect(del).toHaveLength(1);
    expect(del[0]!.path).toMatch(/^\/redfish\/v1\/SessionService\/Sessions\/[0-9A-F]+$/);
    expect(bmc.requests.length).toBeGreaterThan(20);
    expect(bmc.connections).toBeLessThanOrEqual(2);
    for (const r of bmc.requests) {
      expect(r.chunked, `${r.method} ${r.path}`).toBe(false);
      if (r.method === 'POST' || r.method === 'PATCH') expect(r.contentLength).toBe(Buffer.byteLength(r.body));
    }
    // Only the login carries the password; everything else carries the token.
    const withPassword = bmc.requests.filter((r) => r.body.includes(bmc.password));
    expect(withPassword.map((r) => r.method + ' ' + r.path)).toEqual(['POST /redfish/v1/SessionService/Sessions']);
    expect(bmc.requests.filter((r) => r.headers['authorization'] !== undefined)).toEqual([]);
  });

  it('deletes the session after a failed operation', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.powerStatus();
    bmc.switches.fail500 = [bmc.systemPaths[0]!];
    await failsWith(d.powerOff(), 'bmc.command_failed', bmc);
    expect(bmc.liveSessions).toBe(1);
    await d.close();
    expect(bmc.liveSessions).toBe(0);
    expect(bmc.sessionsDeleted).toBe(1);
  });

  it('a session limit is survived by closing: sequential drivers each get one', async () => {
    const bmc = await bmcDouble({ maxSessions: 1 });
    for (let i = 0; i < 3; i++) {
      const d = driver(bmc);
      expect(await d.powerStatus()).toBe('on');
      await d.close();
    }
    expect(bmc.sessionsCreated).toBe(3);
    const a = driver(bmc);
    await a.powerStatus();
    const e = await failsWith(driver(bmc).powerStatus(), 'bmc.command_failed', bmc);
    expect(e.message).toContain('simultaneous sessions');
  });

  it('re-logs in once when the session expired', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc);
    await d.powerStatus();
    // Expire the session on the BMC side.
    const token = bmc.liveTokens[0]!;
    const res = await fetchWithToken(bmc, token);
    expect(res).toBe(204);
    expect(bmc.liveSessions).toBe(0);
    expect(await d.powerStatus()).toBe('on');
    expect(bmc.sessionsCreated).toBe(2);
    await d.close();
    expect(bmc.liveSessions).toBe(0);
  });

  it('basic auth mode: no session, Authorization on every request', async () => {
    const bmc = await bmcDouble();
    const d = driver(bmc, { auth: 'basic' });
    await d.powerOff();
    await d.setBootDevice('pxe', { persistent: false, mode: 'uefi' });
    expect(await d.getBootDevice()).toMatchObject({ device: 'pxe' });
    await d.close();
    expect(bmc.sessionsCreated).toBe(0);
    for (const r of bmc.requests) expect(r.headers['authorization'], r.path).toMatch(/^Basic /);
    expect(bmc.requests.some((r) => r.headers['x-auth-token'] !== undefined)).toBe(false);
  });

  it('wrong password → bmc.auth_failed (session and basic), without the password in the message', async () => {
    const bmc = await bmcDouble();
    const wrong = 'wrong-secret-pw';
    const e1 = await failsWith(driver(bmc, {}, { password: wrong }).powerStatus(), 'bmc.auth_failed', bmc);
    const e2 = await failsWith(driver(bmc, { auth: 'basic' }, { password: wrong }).powerStatus(), 'bmc.auth_failed', bmc);
    for (const e of [e1, e2]) expect(fe2text(e)).not.toContain(wrong);
    expect(bmc.sessionsCreated).toBe(0);
  });

  it('basic auth refused by a BMC that only takes sessions → bmc.auth_failed', async () => {
    const bmc = await bmcDouble({ basicAuth: false });
    await failsWith(driver(bmc, { auth: 'basic' }).powerStatus(), 'bmc.auth_failed', bmc);
  });

  it('speaks plain HTTP only when asked with scheme insecure-http', async () => {
    const bmc = await bmcDouble({ scheme: 'http', tls: undefined });
    expect(bmc.url.startsWith('http://')).toBe(true);
    expect(await driver(bmc, { scheme: 'insecure-http' }).powerStatus()).toBe('on');
    await failsWith(driver(bmc, { timeoutMs: 2_000 }).powerStatus(), 'bmc.tls', bmc);
  });
});

describe('TLS', () => {
  it('pinned fingerprint matches (any notation)', async () => {
    const bmc = await bmcDouble();
    const lower = 'sha256:' + pki.fingerprint.replace(/:/g, '').toLowerCase();
    const d = driver(bmc, {}, { tls: { fingerprint: lower } });
    expect(await d.powerStatus()).toBe('on');
    expect(d.seenFingerprint).toBe(pki.fingerprint);
  });

  it('pinned fingerprint mismatch → bmc.tls with expected and seen, before any byte is sent', async () => {
    const bmc = await bmcDouble();
    const e = await failsWith(driver(bmc, {}, { tls: { fingerprint: pki.fingerprint2 } }).powerStatus(), 'bmc.tls', bmc);
    expect(e.message).toContain(`expected SHA-256 ${pki.fingerprint2}`);
    expect(e.message).toContain(`seen ${pki.fingerprint}`);
    expect(bmc.requests).toEqual([]);
  });

  it('CA-verified certificate is accepted', async () => {
    const bmc = await bmcDouble();
    expect(await driver(bmc, {}, { tls: { ca: pki.caPem } }).powerStatus()).toBe('on');
  });

  it('unknown CA → bmc.tls', async () => {
    const bmc = await bmcDouble();
    const e = await failsWith(driver(bmc, {}, { tls: { ca: pki.otherCaPem } }).powerStatus(), 'bmc.tls', bmc);
    expect(e.message).toContain('not trusted by the configured CA');
    expect(e.message).toContain(pki.fingerprint);
    expect(bmc.requests).toEqual([]);
  });

  it('no trust configured → bmc.tls showing the fingerprint to pin', async () => {
    const bmc = await bmcDouble();
    const e = await failsWith(driver(bmc, {}, { tls: {} }).powerStatus(), 'bmc.tls', bmc);
    expect(e.message).toContain(pki.fingerprint);
    expect(bmc.requests).toEqual([]);
  });

  it('trust on first use returns the fingerprint once and pins it', async () => {
    const bmc = await bmcDouble();
    const seen: string[] = [];
    const d = driver(bmc, { tls: { trustOnFirstUse: true }, onFirstContact: (fp) => seen.push(fp) }, { tls: {} });
    expect(await d.powerStatus()).toBe('on');
    await d.inventory();
    expect(seen).toEqual([pki.fingerprint]);
    expect(d.seenFingerprint).toBe(pki.fingerprint);
  });

  it('TOFU refuses a certificate that changes within the client', async () => {
    const bmc = await bmcDouble();
    const seen: string[] = [];
    const d = driver(bmc, { tls: { trustOnFirstUse: true }, onFirstContact: (fp) => seen.push(fp) }, { tls: {} });
    await d.powerStatus();
    bmc.rotateCertificate(pki.server2);
    const e = await failsWith(d.powerStatus(), 'bmc.tls', bmc);
    expect(e.message).toContain(`expected SHA-256 ${pki.fingerprint}, seen ${pki.fingerprint2}`);
    expect(seen).toEqual([pki.fingerprint]);
  });
});

describe('quirks', () => {
  it('onceIgnored: without the flag the lost override is seen on the read-back; with it Continuous + a follow-up that clears it', async () => {
    const bmc = await bmcDouble({ mockup: 'public-tower', onceIgnored: true });
    const plain = driver(bmc);
    const lost = await failsWith(plain.setBootDevice('pxe', { persistent: false, mode: 'uefi' }), 'bmc.command_failed', bmc);
    expect(lost.message).toMatch(/accepted the boot override Pxe\/Once\/UEFI but stored .*\(the override was not stored\)/);
    expect((await plain.getBootDevice()).device).toBe('none');

    const d = driver(bmc, { quirks: { onceIgnored: true } });
    const r = await d.setBootDeviceDetailed('pxe', { persistent: false, mode: 'uefi' });
    expect(r.sent).toEqual({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' } });
    expect(r.followUp).toMatchObject({ action: 'clearBootOverride', when: 'afterNextPowerOn' });
    expect(d.pendingFollowUp).not.toBeNull();
    expect(await d.getBootDevice()).toEqual({ device: 'pxe', persistent: true, mode: 'uefi' });
    await d.powerCycle();
    expect(bmc.boots.at(-1)).toMatchObject({ target: 'Pxe' });
    await d.clearBootOverride();
    expect(d.pendingFollowUp).toBeNull();
    expect(await d.getBootDevice()).toMatchObject({ device: 'none' });
    await d.powerReset();
    expect(bmc.boots.at(-1)).toMatchObject({ target: 'None' });
  });

  it('modeRequired: the flag echoes the current mode', async () => {
    const bmc = await bmcDouble({ modeRequired: true });
    await failsWith(driver(bmc).setBootDevice('pxe', { persistent: false, mode: 'auto' }), 'bmc.command_failed', bmc);
    await driver(bmc, { quirks: { modeRequired: true } }).setBootDevice('pxe', { persistent: true, mode: 'auto' });
    expect(bootPatches(bmc).at(-1)).toEqual({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' });
    expect(bmc.system()['Boot']).toMatchObject({ BootSourceOverrideEnabled: 'Continuous' });
  });

  it('modeRequired from the quirk table, matched on Manufacturer', async () => {
    const bmc = await bmcDouble({ modeRequired: true });
    const d = driver(bmc, { quirkTable: [{ name: 'contoso', match: { manufacturer: 'contoso', model: /^35/ }, quirks: { modeRequired: true } }] });
    await d.setBootDevice('disk', { persistent: false, mode: 'auto' });
    expect((await d.quirks()).rules).toEqual(['contoso']);
    expect(await d.getBootDevice()).toEqual({ device: 'disk', persistent: false, mode: 'uefi' });
  });

  it('uefiRejected: the flag omits the mode', async () => {
    const bmc = await bmcDouble({ uefiRejected: true });
    const e = await failsWith(driver(bmc).setBootDevice('pxe', { persistent: false, mode: 'uefi' }), 'bmc.command_failed', bmc);
    expect(e.message).toContain('UEFI');
    await driver(bmc, { quirks: { uefiRejected: true } }).setBootDevice('pxe', { persistent: false, mode: 'uefi' });
    expect(bootPatches(bmc).at(-1)).toEqual({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
  });

  it('powerSettles: with power_wait 0 the state lags; the flag makes the driver wait anyway', async () => {
    const bmc = await bmcDouble({ powerDelayMs: 300 });
    await driver(bmc, {}, { redfish: { powerWaitMs: 0 } }).powerOff();
    expect(bmc.system()['PowerState']).toBe('On');
    await sleep(400);
    expect(bmc.system()['PowerState']).toBe('Off');

    const d = driver(bmc, { quirks: { powerSettles: true } }, { redfish: { powerWaitMs: 0 } });
    const t0 = Date.now();
    await d.powerOn();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(bmc.system()['PowerState']).toBe('On');
    await d.powerCycle();
    expect(resetsOf(bmc)).toEqual(['ForceOff', 'On', 'ForceOff', 'On']);
    expect(bmc.system()['PowerState']).toBe('On');
  });

  it('powerSettles: a state that never lands → bmc.timeout', async () => {
    const bmc = await bmcDouble({ powerDelayMs: 10_000 });
    const d = driver(bmc, { quirks: { powerSettles: true }, settleTimeoutMs: 300 });
    const e = await failsWith(d.powerOff(), 'bmc.timeout', bmc);
    expect(e.message).toContain('did not become Off');
  });
});

describe('a service without SessionService (HTTP Basic, issue 9)', () => {
  it('auto drives it with Basic: power on/off/cycle, boot override set and read back; no session login is tried', async () => {
    const bmc = await bmcDouble({ sessionService: false });
    const d = driver(bmc);
    await d.powerOff();
    expect(bmc.system()['PowerState']).toBe('Off');
    await d.powerOn();
    expect(bmc.system()['PowerState']).toBe('On');
    await d.powerCycle();
    expect(resetsOf(bmc)).toEqual(['ForceOff', 'On', 'ForceOff', 'On']);
    const report = await d.setBootDevice('pxe', { persistent: false, mode: 'uefi' });
    expect(report).toEqual({ stored: { target: 'Pxe', enabled: 'Once', mode: 'UEFI' }, quirks: [], notes: [] });
    expect(await d.getBootDevice()).toEqual({ device: 'pxe', persistent: false, mode: 'uefi' });
    expect(d.client.authInUse).toEqual({ mode: 'basic', reason: 'the service offers no SessionService' });
    await d.close();
    expect(bmc.sessionsCreated).toBe(0);
    expect(bmc.requests.some((r) => r.path.startsWith('/redfish/v1/SessionService'))).toBe(false);
    // Everything but the anonymous read of the service root carried Basic credentials.
    for (const r of bmc.requests.filter((x) => x.path !== '/redfish/v1')) expect(r.headers['authorization'], r.path).toMatch(/^Basic /);
  });

  it('the double refuses a session login when it has no SessionService', async () => {
    const bmc = await bmcDouble({ sessionService: false, scheme: 'http', tls: undefined });
    const res = await fetch(`${bmc.url}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ UserName: bmc.username, Password: bmc.password }),
    });
    expect(res.status).toBe(404);
    const root = (await (await fetch(`${bmc.url}/redfish/v1/`)).json()) as Record<string, unknown>;
    expect(root).not.toHaveProperty('SessionService');
    expect(root['Links']).not.toHaveProperty('Sessions');
    expect(bmc.sessionsCreated).toBe(0);
  });

  it('auth session on such a service → bmc.unsupported naming the way out; auto on a session service uses a session', async () => {
    const bare = await bmcDouble({ sessionService: false });
    const e = await failsWith(driver(bare, { auth: 'session' }).powerStatus(), 'bmc.unsupported', bare);
    expect(e.message).toContain('offers no SessionService');
    expect(e.message).toContain('basic or auto');
    // The node's setting (target.redfish.auth) wins over the provider default.
    expect(await driver(bare, { auth: 'session' }, { redfish: { auth: 'basic' } }).powerStatus()).toBe('on');

    const full = await bmcDouble();
    const d = driver(full);
    expect(await d.powerStatus()).toBe('on');
    expect(d.client.authInUse?.mode).toBe('session');
    expect(full.sessionsCreated).toBe(1);
  });

  it('auto falls back to Basic when a SessionService refuses logins (405) or the root wants credentials', async () => {
    const refusing = await bmcDouble({ sessionLoginStatus: 405 });
    const d1 = driver(refusing);
    await d1.powerOff();
    expect(refusing.system()['PowerState']).toBe('Off');
    expect(d1.client.authInUse).toEqual({ mode: 'basic', reason: 'the session login answered HTTP 405' });
    expect(refusing.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Sessions'))).toHaveLength(1);
    // A configured session mode does not fall back.
    await failsWith(driver(refusing, { auth: 'session' }).powerStatus(), 'bmc.unsupported', refusing);

    const closed = await bmcDouble({ anonymousRoot: false });
    const d2 = driver(closed);
    expect(await d2.powerStatus()).toBe('on');
    expect(d2.client.authInUse).toEqual({ mode: 'basic', reason: 'the service root refuses anonymous reads' });
    expect(closed.sessionsCreated).toBe(0);
  });

  it('a wrong password with Basic → bmc.auth_failed without the password', async () => {
    const bmc = await bmcDouble({ sessionService: false });
    await failsWith(driver(bmc, {}, { password: 'wrong-basic-pw' }).powerOff(), 'bmc.auth_failed', bmc);
    expect(resetsOf(bmc)).toEqual([]);
  });
});

describe('a BMC with four systems (blade chassis, issue 9)', () => {
  const BLADES = ['Blade1', 'Blade2', 'Blade3', 'Blade4'];

  it('each node drives its own system: power and boot override land on that system only', async () => {
    const bmc = await bmcDouble({ systems: BLADES });
    const drivers4 = BLADES.map((system) => driver(bmc, {}, { redfish: { system } }));
    await drivers4[1]!.powerOff();
    expect(BLADES.map((b) => bmc.system(b)['PowerState'])).toEqual(['On', 'Off', 'On', 'On']);
    // The mockup's systems start with Pxe/Once; Blade3 alone gets Cd/Continuous.
    await drivers4[2]!.setBootDevice('cdrom', { persistent: true, mode: 'auto' });
    const boot = (b: string) => bmc.system(b)['Boot'] as Record<string, string>;
    expect(BLADES.map((b) => `${boot(b)['BootSourceOverrideTarget']}/${boot(b)['BootSourceOverrideEnabled']}`)).toEqual(['Pxe/Once', 'Pxe/Once', 'Cd/Continuous', 'Pxe/Once']);
    await drivers4[2]!.powerCycle();
    expect(bmc.boots.map((b) => [b.system, b.target])).toEqual([['/redfish/v1/Systems/Blade3', 'Cd']]);
    expect(bmc.resets.map((r) => r.system)).toEqual(['/redfish/v1/Systems/Blade2', '/redfish/v1/Systems/Blade3', '/redfish/v1/Systems/Blade3']);
    expect((await drivers4[3]!.identity()).serial).toBe(bmc.system('Blade4')['SerialNumber']);
    expect(await drivers4[0]!.powerStatus()).toBe('on');
    expect(await drivers4[1]!.powerStatus()).toBe('off');
  });

  it('an unnamed choice among several is an error listing the systems, before any action', async () => {
    const bmc = await bmcDouble({ systems: BLADES });
    const e = await failsWith(driver(bmc).powerOff(), 'bmc.unsupported', bmc);
    expect(e.message).toBe(`BMC 127.0.0.1:${bmc.port} manages 4 systems (Blade1, Blade2, Blade3, Blade4): name this node's system in fleet.yaml (bmc.system)`);
    const e2 = await failsWith(driver(bmc, {}, { redfish: { system: 'Blade7' } }).setBootDevice('pxe', { persistent: false, mode: 'auto' }), 'bmc.unsupported', bmc);
    expect(e2.message).toContain('has no system "Blade7" (it has Blade1, Blade2, Blade3, Blade4)');
    expect(bmc.requests.filter((r) => r.method === 'PATCH' || r.path.endsWith('ComputerSystem.Reset'))).toEqual([]);
    expect(bmc.resets).toEqual([]);
  });
});

describe('boot override read back (issue 9)', () => {
  it('a BMC that stores Once as Continuous: reported as stored, with the quirk and a follow-up', async () => {
    const bmc = await bmcDouble({ onceAsContinuous: true });
    const d = driver(bmc);
    const r = await d.setBootDeviceDetailed('pxe', { persistent: false, mode: 'uefi' });
    expect(r.sent).toEqual({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } });
    expect(r.stored).toEqual({ target: 'Pxe', enabled: 'Continuous', mode: 'UEFI' });
    expect(r.quirks).toEqual(['onceStoredAsContinuous']);
    expect(r.followUp).toMatchObject({ action: 'clearBootOverride', reason: 'the BMC stored Once as Continuous' });
    // What it means: the override outlives the boot.
    await d.powerCycle();
    await d.powerCycle();
    expect(bmc.boots.map((b) => b.target)).toEqual(['Pxe', 'Pxe']);
    await d.clearBootOverride();
    await d.powerCycle();
    expect(bmc.boots.at(-1)?.target).toBe('None');
  });
});

describe('power changes that land after the 204 (issue 9)', () => {
  it('waits for PowerState by default before returning, one Reset each', async () => {
    const bmc = await bmcDouble({ powerDelayMs: 300 });
    const d = driver(bmc);
    const t0 = Date.now();
    await d.powerOff();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(bmc.system()['PowerState']).toBe('Off');
    await d.powerOn();
    expect(bmc.system()['PowerState']).toBe('On');
    expect(resetsOf(bmc)).toEqual(['ForceOff', 'On']);
  });

  it('gives up after power_wait with bmc.timeout, having sent the Reset once', async () => {
    const bmc = await bmcDouble({ powerDelayMs: 10_000 });
    const t0 = Date.now();
    const e = await failsWith(driver(bmc, {}, { redfish: { powerWaitMs: 400 } }).powerOff(), 'bmc.timeout', bmc);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(e.message).toContain('did not become Off within 400 ms after ForceOff (accepted');
    expect(e.details).toMatchObject({ resetType: 'ForceOff', sent: 'accepted' });
    expect(resetsOf(bmc)).toEqual(['ForceOff']);
  });

  it('a Reset that timed out is not sent again: the state is read back instead', async () => {
    const bmc = await bmcDouble({ slowMs: 1_500, slowPaths: [/ComputerSystem\.Reset$/] });
    const d = driver(bmc, { timeoutMs: 500 }, { redfish: { powerWaitMs: 600 } });
    const e = await failsWith(d.powerOff(), 'bmc.timeout', bmc);
    expect(e.message).toContain('(timed out; not sent again');
    expect(bmc.requests.filter((r) => r.method === 'POST' && r.path.endsWith('ComputerSystem.Reset'))).toHaveLength(1);
  });

  it('a Reset that timed out but landed is a success after the read-back', async () => {
    const bmc = await bmcDouble({ slowMs: 700, slowPaths: [/ComputerSystem\.Reset$/] });
    const d = driver(bmc, { timeoutMs: 500 }, { redfish: { powerWaitMs: 3_000 } });
    // The double applies a slow Reset only if the client is still there; land it by hand as a BMC would.
    setTimeout(() => bmc.setPowerState('Off'), 300);
    await d.powerOff();
    expect(bmc.system()['PowerState']).toBe('Off');
    expect(bmc.requests.filter((r) => r.method === 'POST' && r.path.endsWith('ComputerSystem.Reset'))).toHaveLength(1);
  });
});

describe('faults', () => {
  it('500 → bmc.command_failed with the Redfish reason', async () => {
    const bmc = await bmcDouble({ fail500Message: 'Simulated controller fault 42.' });
    bmc.switches.fail500 = ['/redfish/v1/Systems/*'];
    const e = await failsWith(driver(bmc).powerStatus(), 'bmc.command_failed', bmc);
    expect(e.message).toContain('HTTP 500');
    expect(e.message).toContain('Simulated controller fault 42.');
    expect(e.details).toMatchObject({ status: 500, reason: 'Simulated controller fault 42.' });
  });

  it('a BMC that echoes the password in its error text does not get it into the message', async () => {
    const bmc = await bmcDouble();
    bmc.switches.fail500Message = `Login for admin with password ${bmc.password} is locked`;
    bmc.switches.fail500 = ['/redfish/v1/Systems/*'];
    const e = await failsWith(driver(bmc).powerStatus(), 'bmc.command_failed', bmc);
    expect(e.message).toContain('with password *** is locked');
  });

  it('slow answer beyond the timeout → bmc.timeout within timeout + slack; the session is still deleted', async () => {
    const bmc = await bmcDouble({ slowMs: 5_000 });
    const d = driver(bmc, { timeoutMs: 400 });
    await failsWith(d.powerStatus(), 'bmc.timeout', bmc); // service root itself is slow
    bmc.switches.slowPaths = ['/redfish/v1/Systems/*'];
    const d2 = driver(bmc, { timeoutMs: 400 });
    const t0 = Date.now();
    const e = await failsWith(d2.powerStatus(), 'bmc.timeout', bmc);
    const took = Date.now() - t0;
    expect(took).toBeLessThan(400 + 1_000);
    expect(e.message).toContain('400 ms');
    expect(bmc.liveSessions).toBe(1);
    await d2.close();
    expect(bmc.liveSessions).toBe(0);
  });

  it('non-JSON 200 → bmc.protocol', async () => {
    const bmc = await bmcDouble();
    bmc.switches.garbage = ['/redfish/v1/Systems/*'];
    const e = await failsWith(driver(bmc).identity(), 'bmc.protocol', bmc);
    expect(e.message).toContain('not JSON');
    bmc.switches.garbage = ['/redfish/v1/'];
    await failsWith(driver(bmc).powerStatus(), 'bmc.protocol', bmc);
  });

  it('JSON of the wrong shape → bmc.protocol', async () => {
    const bmc = await bmcDouble();
    bmc.system()['PowerState'] = 42;
    await failsWith(driver(bmc).powerStatus(), 'bmc.protocol', bmc);
  });

  it('nothing listening → bmc.timeout (unreachable)', async () => {
    const bmc = await bmcDouble();
    const port = bmc.port;
    await bmc.close();
    doubles.splice(doubles.indexOf(bmc), 1);
    const d = new RedfishDriver({ address: '127.0.0.1', port, username: 'u', password: 'p-secret', tls: { fingerprint: pki.fingerprint } }, { timeoutMs: 1_000 });
    drivers.push(d);
    const e = await failsWith(d.powerStatus(), 'bmc.timeout');
    expect(e.message).toContain('ECONNREFUSED');
  });
});

async function fetchWithToken(bmc: RedfishDouble, token: string): Promise<number> {
  // Delete the session with its own token through a separate client (as a BMC expiring it would).
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    const coll = await request(`${bmc.url}/redfish/v1/SessionService/Sessions`, { headers: { 'x-auth-token': token }, dispatcher: agent });
    const body = (await coll.body.json()) as { Members: { '@odata.id': string }[] };
    const res = await request(`${bmc.url}${body.Members[0]!['@odata.id']}`, { method: 'DELETE', headers: { 'x-auth-token': token }, dispatcher: agent });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

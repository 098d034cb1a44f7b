/**
 * The ipmitool provider without a BMC: output parsers on captured ipmitool
 * 1.8.19 output, stderr → error mapping, and a fake `ipmitool` script to
 * check argv/env (the password is never in argv) and the hard kill.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIpmitoolDriver } from '../../../server/bmc/ipmitool/driver.js';
import { mapFailure, parseBootParam5, parseFruPrint, parseGuid, parseMcInfo, parsePowerStatus } from '../../../server/bmc/ipmitool/parse.js';
import { FleetError } from '../../../common/errors.js';

const SECRET = 'Pa55-w0rd-NOT-in-argv';

describe('ipmitool output parsers', () => {
  it('chassis power status', () => {
    expect(parsePowerStatus('Chassis Power is on\n')).toBe('on');
    expect(parsePowerStatus('Chassis Power is off\n')).toBe('off');
    expect(() => parsePowerStatus('huh')).toThrow(FleetError);
  });

  it('chassis bootparam get 5 (ipmi_sim drops the flags; a real BMC keeps them)', () => {
    const sim = 'Boot parameter version: 1\nBoot parameter 5 is valid/unlocked\nBoot parameter data: 0004000000\n Boot Flags :\n   - Boot Flag Invalid\n';
    expect(parseBootParam5(sim)).toEqual({ device: 'pxe', persistent: null, mode: null });
    expect(parseBootParam5('Boot parameter data: e008000000')).toEqual({ device: 'disk', persistent: true, mode: 'uefi' });
    expect(parseBootParam5('Boot parameter data: 8014000000')).toEqual({ device: 'cdrom', persistent: false, mode: 'legacy' });
    expect(parseBootParam5('Boot parameter data: 0000000000')).toEqual({ device: 'none', persistent: null, mode: null });
  });

  it('mc info, mc guid, fru print', () => {
    const mc = 'Device ID                 : 0\nDevice Revision           : 3\nFirmware Revision         : 9.08\nIPMI Version              : 2.0\nManufacturer ID           : 4753\n';
    expect(parseMcInfo(mc)).toEqual({ firmware: '9.08', manufacturerId: 4753 });
    expect(parseGuid('System GUID   : efcdab89-6745-2301-efcd-ab89674523a1\nGUID Encoding : IPMI\n')).toBe('efcdab89-6745-2301-efcd-ab89674523a1');
    const fru = ' Board Mfg Date        : Unspecified\n Board Mfg             : Acme\n Board Product         : Board X\n Board Serial          : B123\n Product Manufacturer  : Acme Corp\n Product Name          : Rack 9000\n Product Serial        : SN0001\n';
    expect(parseFruPrint(fru)).toEqual({ manufacturer: 'Acme Corp', model: 'Rack 9000', serial: 'SN0001' });
    expect(parseFruPrint(' Board Mfg : Acme\n Board Product : X\n Board Serial : 1\n')).toEqual({ manufacturer: 'Acme', model: 'X', serial: '1' });
    expect(parseFruPrint(' Device not present (Invalid data field in request)\n')).toEqual({});
  });
});

describe('ipmitool failure mapping (captured stderr of ipmitool -v)', () => {
  const cases: [string, string][] = [
    ['Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'bmc.auth_failed'],
    ['Loading IANA PEN Registry...\nRAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'bmc.auth_failed'],
    ['Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'bmc.timeout'],
    ['Error in open session response message : invalid authentication algorithm\n\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'bmc.unsupported'],
    ['Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nDiscovered IPMB address 0x0\nSet Chassis Power Control to Up/On failed: Invalid data field in request\n', 'bmc.command_failed'],
  ];
  it.each(cases)('%#', (stderr, code) => {
    const e = mapFailure('chassis power on on 10.0.0.1:623', stderr, '');
    expect(e.code).toBe(code);
    expect(e.message).not.toMatch(/Loading IANA|Running Get VSO/);
  });
});

describe('IpmitoolDriver with a fake ipmitool', () => {
  let dir: string;
  let fake: string;
  let hung: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-ipmitool-'));
    fake = join(dir, 'ipmitool');
    // Records its argv (as the kernel sees it) and environment, then answers like ipmitool.
    await writeFile(
      fake,
      `#!/bin/sh
tr '\\0' '\\n' < /proc/$$/cmdline > "${dir}/argv"
printf '%s' "$IPMI_PASSWORD" > "${dir}/env-password"
case "$*" in
  *"chassis power status"*) echo "Chassis Power is on" ;;
  *"chassis bootparam get 5"*) echo "Boot parameter data: 8014000000" ;;
  *"chassis power"*) echo "Chassis Power Control: ok" ;;
  *"chassis bootdev"*) echo "Set Boot Device to x" ;;
  *"mc info"*) printf 'Firmware Revision         : 1.23\\nManufacturer ID           : 674\\n' ;;
  *"mc guid"*) echo "System GUID   : 01234567-89ab-cdef-0123-456789abcdef" ;;
  *"fru print"*) echo " Device not present (Invalid data field in request)"; exit 1 ;;
  *) echo "unknown $*" >&2; exit 1 ;;
esac
`,
    );
    hung = join(dir, 'ipmitool-hung');
    // Hangs in a child process (not exec), so only a process-group kill gets rid of it.
    await writeFile(hung, `#!/bin/sh\necho $$ > "${dir}/hung.pid"\nsleep 1000 &\necho $! > "${dir}/sleep.pid"\nwait\n`);
    await chmod(fake, 0o755);
    await chmod(hung, 0o755);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const target = { address: '192.0.2.10', port: 6230, username: 'admin', password: SECRET };

  it('passes the password only through IPMI_PASSWORD, never in argv', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: fake });
    expect(d.argv(['chassis', 'power', 'status']).join(' ')).not.toContain(SECRET);
    expect(await d.powerStatus()).toBe('on');
    const argv = readFileSync(join(dir, 'argv'), 'utf8');
    expect(argv).not.toContain(SECRET);
    expect(argv.split('\n')).toEqual(expect.arrayContaining(['-I', 'lanplus', '-C', '3', '-H', '192.0.2.10', '-p', '6230', '-U', 'admin', '-E']));
    expect(readFileSync(join(dir, 'env-password'), 'utf8')).toBe(SECRET);
  });

  it('once-only power actions run with -R 1 (no ipmitool retransmit); reads keep their retries', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: fake });
    await d.powerReset(); // on: status, then reset
    const argv = readFileSync(join(dir, 'argv'), 'utf8').split('\n');
    expect(argv).toContain('reset');
    expect(argv[argv.indexOf('-R') + 1]).toBe('1');
    expect(argv[argv.indexOf('-N') + 1]).toBe('5');
    const read = d.argv(['chassis', 'power', 'status']);
    expect(read[read.indexOf('-R') + 1]).toBe('3');
  });

  it('idempotent power verbs, boot device, identity without FRU', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: fake, cipherSuite: 17 });
    await d.powerOn(); // already on: only the status call
    expect(readFileSync(join(dir, 'argv'), 'utf8')).toContain('status');
    await d.powerOff();
    expect(readFileSync(join(dir, 'argv'), 'utf8')).toMatch(/\noff\n?$/);
    expect(readFileSync(join(dir, 'argv'), 'utf8').split('\n')).toEqual(expect.arrayContaining(['-C', '17']));
    await d.setBootDevice('pxe', { persistent: true, mode: 'uefi' });
    expect(readFileSync(join(dir, 'argv'), 'utf8')).toMatch(/bootdev\npxe\noptions=persistent,efiboot/);
    expect(await d.getBootDevice()).toEqual({ device: 'cdrom', persistent: false, mode: 'legacy' });
    expect(await d.identity()).toEqual({ macs: [], bmcFirmware: '1.23', uuid: '01234567-89ab-cdef-0123-456789abcdef' });
  });

  it('a hung ipmitool is SIGKILLed with its children → bmc.timeout', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: hung, timeoutMs: 500 });
    const t0 = Date.now();
    const e = await d.powerStatus().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('bmc.timeout');
    expect(Date.now() - t0).toBeLessThan(1500);
    expect((e as FleetError).message).not.toContain(SECRET);
    await new Promise((r) => setTimeout(r, 100));
    for (const f of ['hung.pid', 'sleep.pid']) {
      const pid = Number(readFileSync(join(dir, f), 'utf8'));
      expect(isRunning(pid)).toBe(false);
    }
  });

  it('close() kills a running ipmitool', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: hung, timeoutMs: 10_000 });
    const p = d.powerStatus().catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 200));
    await d.close();
    await d.close();
    const pid = Number(readFileSync(join(dir, 'sleep.pid'), 'utf8'));
    await new Promise((r) => setTimeout(r, 100));
    expect(isRunning(pid)).toBe(false);
    // The run settles (as a failed command) instead of hanging.
    expect(await p).toBeInstanceOf(FleetError);
  });

  it('a missing ipmitool → bmc.unsupported', async () => {
    const d = createIpmitoolDriver(target, { ipmitoolPath: join(dir, 'nope') });
    const e = await d.powerStatus().catch((x: unknown) => x);
    expect((e as FleetError).code).toBe('bmc.unsupported');
  });
});

/** Alive and not a zombie (a container's PID 1 may not reap orphans). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  const state = readFileSync(stat, 'utf8').split(') ')[1]?.[0];
  return state !== 'Z';
}

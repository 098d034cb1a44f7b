/**
 * Both IPMI providers (native RMCP+ client and ipmitool) against real
 * OpenIPMI ipmi_sim BMCs. Every state change is checked independently: with
 * the real `ipmitool -I lanplus -C 3` and with the chassis_control state file.
 */
import dgram from 'node:dgram';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIpmiDriver } from '../../server/bmc/ipmi/driver.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { createIpmitoolDriver } from '../../server/bmc/ipmitool/driver.js';
import type { BmcDriver, BmcTarget, BootDevice } from '../../server/bmc/types.js';
import { FleetError } from '../../common/errors.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, type SimBmc, startIpmiSims } from '../helpers/ipmisim.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
const suite = READY ? describe : describe.skip;
const title = READY
  ? 'IPMI providers against ipmi_sim'
  : 'IPMI providers against ipmi_sim — SKIPPED: ipmi_sim and/or ipmitool not installed (apt-get install openipmi ipmitool)';

const FRU = {
  board: { manufacturer: 'Acme', product: 'Board X', serial: 'B-0001', partNumber: 'P-1' },
  product: { manufacturer: 'Acme Corp', name: 'Rack 9000', serial: 'SN-0001', partNumber: 'PN-9', version: 'v1', assetTag: 'A-1' },
};
const WRONG = 'Wr0ng-Pass-XYZ';

async function fail(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

async function until(check: () => boolean, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Independent reads with the real ipmitool. */
async function ipmitoolPower(b: SimBmc): Promise<string> {
  const r = await b.ipmitool(['chassis', 'power', 'status']);
  expect(r.code).toBe(0);
  return /Chassis Power is (on|off)/.exec(r.stdout)![1]!;
}
async function ipmitoolBootSelector(b: SimBmc): Promise<number> {
  const r = await b.ipmitool(['chassis', 'bootparam', 'get', '5']);
  expect(r.code).toBe(0);
  return parseInt(/Boot parameter data: ([0-9a-f]{10})/i.exec(r.stdout)![1]!.slice(2, 4), 16);
}

async function udpSocket(reply?: (msg: Buffer) => Buffer): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  if (reply) s.on('message', (m, r) => s.send(reply(m), r.port, r.address));
  return s;
}

suite(title, () => {
  let lab: IpmiSimLab;
  let transport: IpmiTransport;
  let scratch: string;
  const drivers: BmcDriver[] = [];

  beforeAll(async () => {
    lab = await startIpmiSims(6, { fru: (i) => (i === 0 ? FRU : undefined) });
    transport = await IpmiTransport.open();
    scratch = await mkdtemp(join(tmpdir(), 'fleet-ipmi-it-'));
  });

  afterAll(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    await transport?.close();
    await lab?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  type Make = (t: BmcTarget, o?: { timeoutMs?: number }) => BmcDriver;
  const providers: [string, number, Make][] = [
    ['native', 1, (t, o) => createIpmiDriver(transport, t, { timeoutMs: o?.timeoutMs ?? 5000 })],
    ['ipmitool', 2, (t, o) => createIpmitoolDriver(t, { timeoutMs: o?.timeoutMs ?? 10_000, retries: 1 })],
  ];
  const make = (m: Make, t: BmcTarget, o?: { timeoutMs?: number }): BmcDriver => {
    const d = m(t, o);
    drivers.push(d);
    return d;
  };

  describe.each(providers)('%s provider', (name, index, m) => {
    it('power on / off / cycle / reset / soft / status, idempotent, checked with ipmitool and the state file', async () => {
      const b = lab.bmcs[index]!;
      const d = make(m, b.target);
      expect(await d.powerStatus()).toBe('off');
      await d.powerOn();
      expect(b.state().power).toBe('on');
      expect(await ipmitoolPower(b)).toBe('on');
      expect(await d.powerStatus()).toBe('on');

      const sets = () => b.calls().filter((c) => c.startsWith('set power')).length;
      const before = sets();
      await d.powerOn(); // already on
      expect(sets()).toBe(before);

      await d.powerCycle(); // ipmi_sim: off now, on again ~1 s later
      await until(() => b.calls().slice(-3).includes('set power 0'));
      await until(() => b.state().power === 'on');
      expect(await ipmitoolPower(b)).toBe('on');

      const resets = b.state().resets;
      await d.powerReset();
      expect(b.state().resets).toBe(resets + 1);

      await d.powerSoft();
      expect(b.state().softs).toBe(1);
      expect(b.state().power).toBe('off');
      expect(await ipmitoolPower(b)).toBe('off');
      expect(await d.powerStatus()).toBe('off');

      const offCalls = sets();
      await d.powerOff(); // already off
      await d.powerSoft(); // already off
      expect(sets()).toBe(offCalls);

      await d.powerReset(); // off → on
      expect(b.state().power).toBe('on');
      await d.powerOff();
      expect(b.state().power).toBe('off');
      expect(await ipmitoolPower(b)).toBe('off');
      if (name === 'native') expect((d as ReturnType<typeof createIpmiDriver>).sessionsOpened).toBe(1);
    });

    it('boot device set and read back (pxe, disk, cdrom, bios, none), checked with ipmitool and the state file', async () => {
      const b = lab.bmcs[index]!;
      const d = make(m, b.target);
      const cases: [BootDevice, number, string][] = [
        ['pxe', 0x04, 'pxe'],
        ['disk', 0x08, 'default'],
        ['cdrom', 0x14, 'cdrom'],
        ['bios', 0x18, 'bios'],
        ['none', 0x00, 'none'],
      ];
      for (const [device, selector, simName] of cases) {
        await d.setBootDevice(device, { persistent: false, mode: 'legacy' });
        expect(b.state().boot).toBe(simName);
        expect(await ipmitoolBootSelector(b)).toBe(selector);
        // ipmi_sim drops the valid/persistent/EFI flags: the driver says it cannot tell.
        expect(await d.getBootDevice()).toEqual({ device, persistent: null, mode: null });
      }
      await d.setBootDevice('pxe', { persistent: true, mode: 'uefi' });
      expect(b.state().boot).toBe('pxe');
      expect((await d.getBootDevice()).device).toBe('pxe');
    });

    it('identity: firmware, GUID as ipmitool prints it, FRU strings (absent without FRU)', async () => {
      const withFru = lab.bmcs[0]!;
      const id = await make(m, withFru.target).identity();
      const mcGuid = await withFru.ipmitool(['mc', 'guid', 'smbios']);
      expect(mcGuid.stdout).toContain(withFru.uuid);
      expect(id).toEqual({ bmcFirmware: '9.08', uuid: withFru.uuid, manufacturer: 'Acme Corp', model: 'Rack 9000', serial: 'SN-0001', macs: [] });
      const bare = lab.bmcs[index]!;
      expect(await make(m, bare.target).identity()).toEqual({ bmcFirmware: '9.08', uuid: bare.uuid, macs: [] });
    });

    it('wrong password → bmc.auth_failed within the timeout while other BMCs answer; no password in messages', async () => {
      const bad = lab.bmcs[3]!;
      const t0 = Date.now();
      const [e, ...others] = await Promise.all([
        fail(make(m, { ...bad.target, password: WRONG }, { timeoutMs: 5000 }).powerStatus()),
        make(m, lab.bmcs[4]!.target).powerStatus(),
        make(m, lab.bmcs[5]!.target).powerStatus(),
      ]);
      expect(e.code).toBe('bmc.auth_failed');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(e.message).not.toContain(WRONG);
      expect(e.message).not.toContain(bad.password);
      expect(JSON.stringify(e.toJSON())).not.toContain(WRONG);
      expect(others).toEqual(['off', 'off']);
    });

    it('bad peers, concurrently: nothing listening / swallowing socket → bmc.timeout; garbage → bmc.protocol (native) or bmc.timeout (ipmitool cannot tell)', async () => {
      const closed = await udpSocket();
      const closedPort = closed.address().port;
      await new Promise<void>((r) => closed.close(() => r()));
      const swallow = await udpSocket();
      const garbage = await udpSocket(() => Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 64) }, () => Math.floor(Math.random() * 256))));
      try {
        const timeoutMs = 2000;
        const peer = (port: number) => make(m, { address: '127.0.0.1', port, username: 'admin', password: WRONG }, { timeoutMs });
        const timed = async (p: Promise<unknown>) => {
          const t0 = Date.now();
          const e = await fail(p);
          return { e, ms: Date.now() - t0 };
        };
        const [none, swallowed, junk] = await Promise.all([
          timed(peer(closedPort).powerStatus()),
          timed(peer(swallow.address().port).powerStatus()),
          timed(peer(garbage.address().port).powerStatus()),
        ]);
        for (const r of [none, swallowed]) {
          expect(r.e.code).toBe('bmc.timeout');
          expect(r.ms).toBeLessThan(timeoutMs + 1000);
        }
        expect(junk.e.code).toBe(name === 'native' ? 'bmc.protocol' : 'bmc.timeout');
        if (name === 'native') expect(junk.ms).toBeLessThan(1000);
        for (const r of [none, swallowed, junk]) expect(r.e.message).not.toContain(WRONG);
      } finally {
        swallow.close();
        garbage.close();
      }
    });
  });

  it('ipmitool provider: a hung ipmitool is killed → bmc.timeout', async () => {
    const hung = join(scratch, 'ipmitool');
    await writeFile(hung, '#!/bin/sh\nsleep 1000\n');
    await chmod(hung, 0o755);
    const d = createIpmitoolDriver(lab.bmcs[1]!.target, { ipmitoolPath: hung, timeoutMs: 700 });
    const t0 = Date.now();
    const e = await fail(d.powerStatus());
    expect(e.code).toBe('bmc.timeout');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('native: ASF presence ping answered by ipmi_sim', async () => {
    const b = lab.bmcs[0]!;
    expect(await transport.ping({ address: b.address, port: b.port }, Date.now() + 2000)).toMatchObject({ iana: 4542, ipmi: true });
  });

  it('native: session reuse across verbs, closed on close(), fresh session afterwards', async () => {
    const b = lab.bmcs[4]!;
    const d = createIpmiDriver(transport, b.target, { timeoutMs: 5000 });
    await d.powerStatus();
    await d.getBootDevice();
    await d.identity();
    expect(d.sessionsOpened).toBe(1);
    await d.close();
    await d.close();
    expect(await d.powerStatus()).toBe('off');
    expect(d.sessionsOpened).toBe(2);
    await d.close();
  });

  it('every ipmi_sim is still alive', () => {
    for (const b of lab.bmcs) expect(b.alive()).toBe(true);
  });
});

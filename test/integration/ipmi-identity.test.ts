/**
 * The BMC's identity for reconciliation (issue 12 item 4), read from real
 * OpenIPMI ipmi_sim BMCs over UDP on loopback by both IPMI providers: the
 * system GUID configured from a machine UUID (the SMBIOS byte order) and a
 * FRU with serials come back exactly as configured, and the real ipmitool
 * prints the same; a FRU that does not parse leaves the GUID readable and
 * says why, without failing the operation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSystemGuid } from '../../server/bmc/ipmi/commands.js';
import { createIpmiDriver } from '../../server/bmc/ipmi/driver.js';
import { encodeFru } from '../../server/bmc/ipmi/fru.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { createIpmitoolDriver } from '../../server/bmc/ipmitool/driver.js';
import type { BmcDriver, BmcTarget } from '../../server/bmc/types.js';
import { reconcile } from '../../server/inventory/reconcile.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
const suite = READY ? describe : describe.skip;

/** As QEMU's -smbios type=1,uuid=… sets it and dmidecode prints it (version 4, RFC 4122 variant). */
const MACHINE_UUID = '6f2b8c1e-4d3a-4b2c-9e1f-0a1b2c3d4e5f';
const FRU = {
  board: { manufacturer: 'Acme', product: 'Board X', serial: 'MB-0042', partNumber: 'P-1' },
  product: { manufacturer: 'Acme Corp', name: 'Rack 9000', serial: 'SYS-0042', partNumber: 'PN-9', version: 'v1', assetTag: 'A-1' },
};
const GOOD = encodeFru(FRU);
/** Another machine's FRU. */
const OTHER = encodeFru({ board: { ...FRU.board, serial: 'MB-0099' }, product: { ...FRU.product, serial: 'SYS-0099' } });
/** The common header's checksum broken. */
const BAD_CHECKSUM = Buffer.from(GOOD);
BAD_CHECKSUM[7] = BAD_CHECKSUM[7]! ^ 0xff;
/** Header and the start of the board area only: the area claims more bytes than the FRU holds. */
const TRUNCATED = Buffer.from(GOOD.subarray(0, 24));

suite(READY ? 'BMC identity for reconciliation against ipmi_sim' : 'BMC identity against ipmi_sim — SKIPPED: ipmi_sim and/or ipmitool not installed', () => {
  let lab: IpmiSimLab;
  let transport: IpmiTransport;
  const drivers: BmcDriver[] = [];

  beforeAll(async () => {
    lab = await startIpmiSims(4, {
      uuid: (i) => (i === 0 ? MACHINE_UUID : undefined),
      fruImage: (i) => [GOOD, OTHER, BAD_CHECKSUM, TRUNCATED][i],
    });
    transport = await IpmiTransport.open();
  });

  afterAll(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    await transport?.close();
    await lab?.stop();
  });

  const providers: [string, (t: BmcTarget) => BmcDriver][] = [
    ['native', (t) => createIpmiDriver(transport, t, { timeoutMs: 5000 })],
    ['ipmitool', (t) => createIpmitoolDriver(t, { timeoutMs: 10_000, retries: 1 })],
  ];
  const make = (m: (t: BmcTarget) => BmcDriver, t: BmcTarget): BmcDriver => {
    const d = m(t);
    drivers.push(d);
    return d;
  };

  it('ipmi_sim sends the configured GUID bytes; ipmitool decodes them in the SMBIOS order to the machine UUID', async () => {
    const b = lab.bmcs[0]!;
    expect(b.guid).toBe(encodeSystemGuid(MACHINE_UUID).toString('hex'));
    expect(b.uuid).toBe(MACHINE_UUID);
    const smbios = await b.ipmitool(['mc', 'guid', 'smbios']);
    expect(smbios.code).toBe(0);
    expect(smbios.stdout).toMatch(new RegExp(`System GUID\\s*:\\s*${MACHINE_UUID}`, 'i'));
    // The raw bytes, as ipmitool dumps them: exactly what lan.conf holds.
    const raw = await b.ipmitool(['raw', '0x06', '0x37']);
    expect(raw.stdout.replace(/\s+/g, '')).toBe(b.guid);
  });

  describe.each(providers)('%s provider', (_name, m) => {
    it('reads back the configured UUID and FRU strings; reconcile with the agent\'s view is a match', async () => {
      const id = await make(m, lab.bmcs[0]!.target).identity();
      expect(id).toMatchObject({ uuid: MACHINE_UUID, manufacturer: 'Acme Corp', model: 'Rack 9000', serial: 'SYS-0042', macs: [] });
      expect(id.notes).toBeUndefined();
      const agent = { system: { uuid: MACHINE_UUID.toUpperCase(), serial: 'SYS-0042' }, baseboard: { serial: 'MB-0042' }, nics: [{ mac: '52:54:00:00:00:01' }] };
      expect(reconcile(agent, id)).toMatchObject({ status: 'match', reason: 'uuid matches, serial matches' });
      // The same agent against another machine's BMC.
      const other = await make(m, lab.bmcs[1]!.target).identity();
      expect(reconcile(agent, other)).toMatchObject({ status: 'mismatch' });
    });

    it('a FRU with a bad header checksum or a truncated area: the GUID still comes back, no failure', async () => {
      for (const b of [lab.bmcs[2]!, lab.bmcs[3]!]) {
        const id = await make(m, b.target).identity();
        expect(id.uuid).toBe(b.uuid);
        // The native decoder refuses a header whose checksum is wrong; ipmitool does not check it and prints the strings.
        if (m === providers[0]![1] || b === lab.bmcs[3]) expect(id.serial).toBeUndefined();
      }
    });
  });

  it('native provider: the reason a FRU does not parse is in notes', async () => {
    const [bad, cut] = await Promise.all([make(providers[0]![1], lab.bmcs[2]!.target).identity(), make(providers[0]![1], lab.bmcs[3]!.target).identity()]);
    expect(bad).toMatchObject({ uuid: lab.bmcs[2]!.uuid, notes: ['FRU 0: FRU header: bad checksum'] });
    expect(bad.serial).toBeUndefined();
    expect(cut.notes).toEqual(['FRU 0: FRU board area: area length 40 outside the data; FRU product area offset 48 past the end (24 bytes)']);
  });
});

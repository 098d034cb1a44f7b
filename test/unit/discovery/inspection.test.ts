/**
 * Inspection reports (server/discovery/inspection.ts): the report the boot
 * environment posts, checked and interpreted. The BMC texts are what the
 * real ipmitool printed against ipmi_sim (test/fixtures/inspection/, captured
 * over lanplus: the same text the open interface prints in band).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { inspectionFacts, inspectionSummary, parseBmcTexts, parseInspectionReport, parseUserList } from '../../../server/discovery/inspection.js';
import { bmcOwners, candidatesOf, factsOf } from '../../../server/discovery/facts.js';
import type { DiscoveredMachine } from '../../../server/store/index.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/inspection/${name}`, import.meta.url), 'utf8');
/** What tcpdump wrote in a namespace: lldpd 1.0.16 heard on a veth (hostname sw-lab-01, port ID local Ethernet1/7), and a capture that timed out. */
const pcap64 = (name: string) => readFileSync(new URL(`../../fixtures/lldp/${name}`, import.meta.url)).toString('base64');
const HEARD = pcap64('lldpd-1.0.16-local-port.pcap');
const SILENT = pcap64('tcpdump-timed-out.pcap');
const BMC = { channel: 1, lan: fixture('ipmi_sim-lan-print.txt'), mc: fixture('ipmi_sim-mc-info.txt'), users: fixture('ipmi_sim-user-list.txt'), guid: fixture('ipmi_sim-guid-raw.txt') };

function report(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    firmware: 'bios',
    system: { sys_vendor: 'QEMU', product_name: 'Standard PC (i440FX + PIIX, 1996)', product_serial: 'LAB-RACK-0003', product_uuid: '4C4C4544-0042-3510-8052-B4C04F4E4E31', bios_vendor: 'SeaBIOS', bios_version: '1.16.2-debian-1.16.2-1' },
    cpu: { model: 'QEMU Virtual CPU version 2.5+', count: 2 },
    memoryKiB: 786_432,
    disks: [
      { name: 'vda', sectors: 6_291_456, model: '', serial: 'DISK-A', rotational: 1, removable: 0 },
      { name: 'vdb', sectors: 2_097_152, model: '', serial: '', rotational: 1, removable: 0 },
      { name: 'sda', sectors: 0, model: 'USB stick', serial: '', rotational: 0, removable: 1 },
    ],
    nics: [
      { name: 'eth0', mac: '52:54:00:77:00:21', carrier: 1, speed: -1, driver: 'virtio_net' },
      { name: 'eth1', mac: '52:54:00:77:01:21', carrier: 0, speed: 1000, driver: 'e1000' },
    ],
    bmc: BMC,
    notes: [],
    ...over,
  };
}

describe('parseInspectionReport', () => {
  it('reads SMBIOS, CPUs, memory, disks, NICs and the BMC texts', () => {
    const i = parseInspectionReport(report());
    expect(i.system).toEqual({
      manufacturer: 'QEMU',
      model: 'Standard PC (i440FX + PIIX, 1996)',
      serial: 'LAB-RACK-0003',
      uuid: '4c4c4544-0042-3510-8052-b4c04f4e4e31',
      biosVendor: 'SeaBIOS',
      biosVersion: '1.16.2-debian-1.16.2-1',
    });
    expect(i.cpu).toEqual({ model: 'QEMU Virtual CPU version 2.5+', count: 2 });
    expect(i.memoryMiB).toBe(768);
    expect(i.disks[0]).toEqual({ name: 'vda', sizeBytes: 3 * 1024 ** 3, serial: 'DISK-A', rotational: true, removable: false });
    expect(i.nics).toEqual([
      { name: 'eth0', mac: '52:54:00:77:00:21', link: 'up', driver: 'virtio_net' },
      { name: 'eth1', mac: '52:54:00:77:01:21', link: 'down', speedMbps: 1000, driver: 'e1000' },
    ]);
    expect(i.bmc).toEqual({
      channel: 1,
      ip: '10.77.1.50',
      ipSource: 'Static Address',
      mac: '52:54:00:aa:bb:01',
      cipherSuites: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
      firmware: '9.08',
      ipmiVersion: '2.0',
      manufacturerId: 4753,
      manufacturer: 'MontaVista Software, Inc.',
      productId: 3842,
      guid: '67452301-ab89-efcd-0123-456789abcdef',
      users: [{ id: 2, name: 'admin', privilege: 'ADMINISTRATOR', ipmiMessaging: true }],
    });
    expect(i.notes).toEqual([]);
  });

  it('facts for the rules: every MAC, counts without removable or empty disks, the BMC address and MAC', () => {
    expect(inspectionFacts(parseInspectionReport(report()))).toEqual({
      macs: ['52:54:00:77:00:21', '52:54:00:77:01:21'],
      serial: 'LAB-RACK-0003',
      manufacturer: 'QEMU',
      model: 'Standard PC (i440FX + PIIX, 1996)',
      nicCount: 2,
      diskCount: 2,
      bmc: { mac: '52:54:00:aa:bb:01', ip: '10.77.1.50' },
    });
  });

  it('LLDP: each NIC\'s capture decoded (neighbour, or null when none was heard); a capture that does not decode is a note and the report is kept', () => {
    const i = parseInspectionReport(
      report({
        nics: [
          { name: 'eth0', mac: '52:54:00:77:00:21', carrier: 1, driver: 'virtio_net', lldp: HEARD },
          { name: 'eth1', mac: '52:54:00:77:01:21', carrier: 0, driver: 'e1000', lldp: SILENT },
          { name: 'eth2', mac: '52:54:00:77:02:21', carrier: 1, driver: 'e1000', lldp: '' },
          { name: 'eth3', mac: '52:54:00:77:03:21', carrier: 1, driver: 'e1000', lldp: Buffer.from('not a pcap file at all, but long enough').toString('base64') },
          { name: 'eth4', mac: '52:54:00:77:04:21', carrier: 1, driver: 'e1000' },
        ],
      }),
    );
    expect(i.nics[0]!.lldp).toMatchObject({
      switch: 'sw-lab-01',
      port: 'Ethernet1/7',
      systemName: 'sw-lab-01',
      portId: { subtype: 'local', value: 'Ethernet1/7' },
      portDescription: 'uplink to rack 12',
      chassisId: { subtype: 'mac' },
    });
    expect(i.nics[0]!.lldp).not.toHaveProperty('destination');
    expect(i.nics.map((n) => n.lldp === undefined ? 'not listened' : n.lldp === null ? 'none heard' : 'heard')).toEqual(['heard', 'none heard', 'none heard', 'not listened', 'not listened']);
    expect(i.notes).toEqual(['nics[3].lldp: LLDP capture: not a pcap file (magic 0x20746f6e)']);
    expect(inspectionSummary(i).lldp).toEqual(['eth0 sw-lab-01 Ethernet1/7', 'eth1 none heard', 'eth2 none heard']);
  });

  it('LLDP: what is not base64 or too long for one frame refuses the report', () => {
    const nic = (lldp: unknown) => report({ nics: [{ name: 'eth0', mac: '52:54:00:77:00:21', carrier: 1, lldp }] });
    expect(() => parseInspectionReport(nic('%%%'))).toThrow(/nics\[0\]\.lldp: not base64/);
    expect(() => parseInspectionReport(nic(42))).toThrow(/nics\[0\]\.lldp: not a string/);
    expect(() => parseInspectionReport(nic('A'.repeat(20_000)))).toThrow(/nics\[0\]\.lldp: longer than 16384 characters/);
  });

  it('LLDP facts: the boot NIC\'s neighbour, else the first heard; {} when listened and none heard; absent when not listened', () => {
    const nics = (a: unknown, b: unknown) => report({ nics: [{ name: 'eth0', mac: '52:54:00:77:00:21', carrier: 1, lldp: a }, { name: 'eth1', mac: '52:54:00:77:01:21', carrier: 1, lldp: b }] });
    expect(inspectionFacts(parseInspectionReport(nics(SILENT, HEARD)), '52:54:00:77:00:21').lldp).toEqual({ switch: 'sw-lab-01', port: 'Ethernet1/7' });
    expect(inspectionFacts(parseInspectionReport(nics(HEARD, SILENT)), '52:54:00:77:01:21').lldp).toEqual({ switch: 'sw-lab-01', port: 'Ethernet1/7' });
    expect(inspectionFacts(parseInspectionReport(nics(SILENT, '')), '52:54:00:77:00:21').lldp).toEqual({});
    expect(inspectionFacts(parseInspectionReport(nics(undefined, undefined))).lldp).toBeUndefined();
  });

  it('SMBIOS placeholders name no machine: dropped with a note', () => {
    const i = parseInspectionReport(report({ system: { sys_vendor: 'To Be Filled By O.E.M.', product_name: 'System Product Name', product_serial: 'Not Specified', product_uuid: '00000000-0000-0000-0000-000000000000' } }));
    expect(i.system).toEqual({});
    expect(i.notes).toEqual([
      'system.sys_vendor is a placeholder ("To Be Filled By O.E.M."): ignored',
      'system.product_name is a placeholder ("System Product Name"): ignored',
      'system.product_serial is a placeholder ("Not Specified"): ignored',
    ]);
  });

  it('a machine without a BMC says why; the BMC that printed unset addresses has none', () => {
    expect(parseInspectionReport(report({ bmc: { absent: 'no in-band IPMI device (/dev/ipmi0)' } })).bmc).toEqual({ absent: 'no in-band IPMI device (/dev/ipmi0)' });
    const notes: string[] = [];
    const bmc = parseBmcTexts({ channel: 1, lan: 'IP Address Source       : DHCP Address\nIP Address              : 0.0.0.0\nMAC Address             : 00:00:00:00:00:00\n' }, notes);
    expect(bmc).toEqual({ channel: 1, ipSource: 'DHCP Address', users: [] });
    expect(notes).toEqual(['bmc: no mc info', 'bmc: no user list of channel 1']);
    expect(parseBmcTexts({ channel: 1, guid: '01 02' }, []).guid).toBeUndefined();
  });

  it('refuses what is not a report, naming every problem, and keeps nothing', () => {
    expect(() => parseInspectionReport('x')).toThrow('inspection report: not a JSON object');
    expect(() => parseInspectionReport({ ...report(), version: 2 })).toThrow('version 2 is not 1');
    const bad = report({
      nics: [{ name: 'eth0', mac: 'zz:54:00:77:00:21' }, { name: 'a b', mac: '52:54:00:77:00:22' }],
      disks: [{ name: '../x', sectors: 1 }],
      memoryKiB: -1,
      cpu: { count: 1.5 },
    });
    expect(() => parseInspectionReport(bad)).toThrow(
      'inspection report: cpu.count: not an integer in 0..65536; memoryKiB: not an integer in 0..1099511627776; disks[0].name: not a block device name; nics[0].mac: not a MAC address; nics[1].name: not an interface name',
    );
    expect(() => parseInspectionReport(report({ nics: Array.from({ length: 65 }, () => ({})) }))).toThrow('nics: more than 64 entries');
    expect(() => parseInspectionReport(report({ system: { product_serial: 'x'.repeat(300) } }))).toThrow('system.product_serial: longer than 256 characters');
    expect(() => parseInspectionReport(report({ bmc: { channel: 1, lan: 'x'.repeat(40_000) } }))).toThrow('bmc.lan: longer than 32768 characters');
  });

  it('a serial with characters a rule cannot name is noted, not kept; control characters are dropped', () => {
    const i = parseInspectionReport(report({ system: { product_serial: 'AB$12', sys_vendor: 'Ven\u0007dor' } }));
    expect(i.system).toEqual({ manufacturer: 'Vendor' });
    expect(i.notes).toEqual(['system.product_serial "AB$12" has characters a serial rule cannot name: ignored']);
  });

  it('the summary for events carries user names, never more of the BMC', () => {
    const s = inspectionSummary(parseInspectionReport(report()));
    expect(s.bmc).toEqual({ ip: '10.77.1.50', mac: '52:54:00:aa:bb:01', firmware: '9.08', users: ['admin'] });
    expect(s.nics).toEqual(['52:54:00:77:00:21 up', '52:54:00:77:01:21 down']);
  });
});

describe('parseUserList', () => {
  it('keeps named users and unnamed ones with a privilege', () => {
    const text = 'ID  Name\t     Callin  Link Auth\tIPMI Msg   Channel Priv Limit\n1                    true    false      false      Unknown (0x00)\n2   ADMIN            false   false      true       ADMINISTRATOR\n3   ops team         true    true       true       OPERATOR\n4                    true    false      true       USER\n5   gone             true    false      false      NO ACCESS\n';
    expect(parseUserList(text)).toEqual([
      { id: 2, name: 'ADMIN', privilege: 'ADMINISTRATOR', ipmiMessaging: true },
      { id: 3, name: 'ops team', privilege: 'OPERATOR', ipmiMessaging: true },
      { id: 4, name: '', privilege: 'USER', ipmiMessaging: true },
      { id: 5, name: 'gone', privilege: 'NO ACCESS', ipmiMessaging: false },
    ]);
  });
});

describe('a BMC lease is its machine\'s', () => {
  const base = (mac: string, ip: string, at: string): DiscoveredMachine => ({
    mac, ip, hostname: null, vendorClass: null, arch: null, pxe: false, firstSeen: at, lastSeen: at, node: null, rejectedAt: null, rejectedBy: null, inspection: null, inspectedAt: null,
  });
  const inspected = (over: Record<string, unknown>): DiscoveredMachine => ({
    ...base('52:54:00:77:00:21', '10.77.0.200', '2026-12-07T08:00:00.000Z'),
    pxe: true,
    inspection: parseInspectionReport(report(over)),
    inspectedAt: '2026-12-07T08:01:00.000Z',
  });

  it('the BMC named by an inspection is not a machine to plan; its lease address is the BMC\'s when the BMC said none', () => {
    const lanDhcp = 'IP Address Source       : DHCP Address\nIP Address              : 0.0.0.0\nMAC Address             : 52:54:00:aa:bb:01\n';
    const machine = inspected({ bmc: { ...BMC, lan: lanDhcp } });
    const bmcLease = base('52:54:00:aa:bb:01', '10.77.0.201', '2026-12-07T07:59:00.000Z');
    const other = base('52:54:00:99:99:99', '10.77.0.202', '2026-12-07T08:02:00.000Z');
    expect(bmcOwners([machine, bmcLease, other])).toEqual(new Map([['52:54:00:aa:bb:01', '52:54:00:77:00:21']]));
    const c = candidatesOf([machine, bmcLease, other]);
    expect(c.map((x) => x.facts.mac)).toEqual(['52:54:00:77:00:21', '52:54:00:99:99:99']);
    expect(c[0]!.facts.bmc).toEqual({ mac: '52:54:00:aa:bb:01', ip: '10.77.0.201' });
    expect(c[0]!.facts.serial).toBe('LAB-RACK-0003');
    expect(c[0]!.facts.inspectedAt).toBe('2026-12-07T08:01:00.000Z');
  });

  it('an address the BMC reports wins over its lease; an uninspected machine has only its lease facts', () => {
    const machine = inspected({});
    const bmcLease = base('52:54:00:aa:bb:01', '10.77.0.201', '2026-12-07T07:59:00.000Z');
    expect(candidatesOf([machine, bmcLease])[0]!.facts.bmc).toEqual({ mac: '52:54:00:aa:bb:01', ip: '10.77.1.50' });
    expect(factsOf(base('52:54:00:99:99:99', '10.77.0.202', '2026-12-07T08:02:00.000Z'))).toEqual({ mac: '52:54:00:99:99:99', ip: '10.77.0.202' });
  });
});

/**
 * The LLDP decoder (server/discovery/lldp.ts) on frames built here byte by
 * byte from IEEE 802.1AB-2016 §8 (TLV header: 7-bit type, 9-bit length),
 * wrapped in classic pcap files as tcpdump writes them. The real peer
 * (lldpd sending to a lab VM's NIC) comes with the boot environment's capture.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeLldpFrame, lldpNeighbour, parsePcapFrames } from '../../../server/discovery/lldp.js';

const tlv = (type: number, value: Buffer | string): Buffer => {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  const h = Buffer.alloc(2);
  h.writeUInt16BE((type << 9) | v.length);
  return Buffer.concat([h, v]);
};
const sub = (subtype: number, v: Buffer | string) => Buffer.concat([Buffer.from([subtype]), typeof v === 'string' ? Buffer.from(v) : v]);
const macBytes = (m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
const ttl = (s: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(s);
  return b;
};
/** Management address TLV: length of (family + address), family 1 IPv4, the address, then interface numbering (ifIndex 2) and an empty OID. */
const mgmt4 = (ip: string) => Buffer.concat([Buffer.from([5, 1, ...ip.split('.').map(Number)]), Buffer.from([2, 0, 0, 0, 7, 0])]);

function frame(tlvs: Buffer[], o: { vlan?: number; src?: string; end?: boolean } = {}): Buffer {
  const head = Buffer.concat([macBytes('01:80:c2:00:00:0e'), macBytes(o.src ?? '00:1c:73:aa:bb:0c')]);
  const tag = o.vlan !== undefined ? Buffer.from([0x81, 0x00, (o.vlan >> 8) & 0x0f, o.vlan & 0xff]) : Buffer.alloc(0);
  return Buffer.concat([head, tag, Buffer.from([0x88, 0xcc]), ...tlvs, ...(o.end === false ? [] : [Buffer.from([0, 0])])]);
}

function pcap(frames: Buffer[], o: { bigEndian?: boolean; linktype?: number } = {}): Buffer {
  const w32 = (b: Buffer, v: number, off: number) => (o.bigEndian ? b.writeUInt32BE(v, off) : b.writeUInt32LE(v, off));
  const w16 = (b: Buffer, v: number, off: number) => (o.bigEndian ? b.writeUInt16BE(v, off) : b.writeUInt16LE(v, off));
  const g = Buffer.alloc(24);
  w32(g, 0xa1b2c3d4, 0);
  w16(g, 2, 4);
  w16(g, 4, 6);
  w32(g, 262144, 16);
  w32(g, o.linktype ?? 1, 20);
  return Buffer.concat([
    g,
    ...frames.flatMap((f) => {
      const r = Buffer.alloc(16);
      w32(r, 1796650000, 0);
      w32(r, f.length, 8);
      w32(r, f.length, 12);
      return [r, f];
    }),
  ]);
}

const leaf = [
  tlv(1, sub(4, macBytes('00:1c:73:aa:bb:00'))),
  tlv(2, sub(5, 'Ethernet1/12')),
  tlv(3, ttl(120)),
  tlv(4, 'rack3 u12 valkyrie12'),
  tlv(5, 'leaf-r3'),
  tlv(6, 'Arista Networks EOS version 4.28'),
  tlv(8, mgmt4('10.10.9.3')),
];

describe('LLDP from a pcap of one frame', () => {
  it('a typical switch frame: the system name and the port name, the rest kept', () => {
    expect(lldpNeighbour(pcap([frame(leaf)]))).toEqual({
      source: '00:1c:73:aa:bb:0c',
      destination: '01:80:c2:00:00:0e',
      chassisId: { subtype: 'mac', value: '00:1c:73:aa:bb:00' },
      portId: { subtype: 'interface-name', value: 'Ethernet1/12' },
      ttl: 120,
      portDescription: 'rack3 u12 valkyrie12',
      systemName: 'leaf-r3',
      systemDescription: 'Arista Networks EOS version 4.28',
      managementAddresses: ['10.10.9.3'],
      switch: 'leaf-r3',
      port: 'Ethernet1/12',
    });
  });

  it('a big-endian capture of a tagged frame reads the same, with the VLAN', () => {
    const n = lldpNeighbour(pcap([frame(leaf, { vlan: 42 })], { bigEndian: true }))!;
    expect(n).toMatchObject({ vlan: 42, switch: 'leaf-r3', port: 'Ethernet1/12' });
  });

  it.each([
    ['a port ID that is a MAC: the port description names the port', [tlv(1, sub(7, 'SW-SERIAL-1')), tlv(2, sub(3, macBytes('00:1c:73:aa:bb:0c'))), tlv(3, ttl(120)), tlv(4, 'ge-0/0/7')], { switch: 'SW-SERIAL-1', port: 'ge-0/0/7' }],
    ['no system name: the chassis ID names the switch', [tlv(1, sub(4, macBytes('00:1c:73:aa:bb:00'))), tlv(2, sub(7, '7')), tlv(3, ttl(120))], { switch: '00:1c:73:aa:bb:00', port: '7' }],
    ['control characters are dropped from names', [tlv(1, sub(7, 'c')), tlv(2, sub(5, 'swp1\n')), tlv(3, ttl(120)), tlv(5, 'spine\u0000-1')], { switch: 'spine-1', port: 'swp1' }],
  ] as const)('%s', (_what, tlvs, want) => {
    expect(lldpNeighbour(pcap([frame([...tlvs])]))).toMatchObject(want);
  });

  it('a capture that heard nothing (tcpdump timed out) is no neighbour', () => {
    expect(lldpNeighbour(pcap([]))).toBeNull();
  });

  it.each([
    ['pcapng', Buffer.concat([Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]), Buffer.alloc(28)]), /pcapng is not read/],
    ['not a pcap', Buffer.alloc(32, 7), /not a pcap file/],
    ['too short', Buffer.alloc(10), /shorter than a pcap global header/],
    ['another link type', pcap([frame(leaf)], { linktype: 113 }), /link type 113, not Ethernet/],
    ['a record cut short', pcap([frame(leaf)]).subarray(0, 60), /runs past the end of the file/],
    ['a header cut short', pcap([frame(leaf)]).subarray(0, 30), /record header is cut short/],
    ['too big', Buffer.alloc(70_000), /more than a capture of one frame/],
  ] as const)('refuses %s', (_what, buf, msg) => {
    expect(() => parsePcapFrames(buf)).toThrow(msg);
  });

  it.each([
    ['not LLDP', Buffer.concat([frame(leaf).subarray(0, 12), Buffer.from([0x08, 0x00]), Buffer.alloc(40)]), /EtherType 0x0800, not LLDP/],
    ['no End TLV', frame(leaf, { end: false }), /ends without an End TLV/],
    ['a TLV longer than the frame', Buffer.concat([frame([]).subarray(0, 14), Buffer.from([0x02, 0x40, 1, 2, 3])]), /runs past the frame/],
    ['mandatory TLVs out of order', frame([tlv(2, sub(5, 'x')), tlv(1, sub(7, 'c')), tlv(3, ttl(1))]), /does not start with Chassis ID, Port ID and TTL/],
    ['a chassis MAC of 5 bytes', frame([tlv(1, sub(4, Buffer.alloc(5))), tlv(2, sub(5, 'x')), tlv(3, ttl(1))]), /chassis ID is a MAC of 5 bytes/],
    ['a TTL of 3 bytes', frame([tlv(1, sub(7, 'c')), tlv(2, sub(5, 'x')), tlv(3, Buffer.alloc(3))]), /TTL TLV is not 2 bytes/],
    ['a runt', Buffer.alloc(8), /shorter than an Ethernet header/],
  ] as const)('refuses a frame: %s', (_what, f, msg) => {
    expect(() => decodeLldpFrame(f)).toThrow(msg);
  });
});

describe('captures of the real peer', () => {
  const pcap = (name: string) => readFileSync(new URL(`../../fixtures/lldp/${name}`, import.meta.url));
  it('lldpd 1.0.16 as tcpdump -w wrote it on a veth in a namespace: system name, local port ID, description, an IPv6 management address', () => {
    const n = lldpNeighbour(pcap('lldpd-1.0.16-local-port.pcap'))!;
    expect(n).toMatchObject({
      destination: '01:80:c2:00:00:0e',
      chassisId: { subtype: 'mac', value: n.source },
      portId: { subtype: 'local', value: 'Ethernet1/7' },
      ttl: 8,
      portDescription: 'uplink to rack 12',
      systemName: 'sw-lab-01',
      switch: 'sw-lab-01',
      port: 'Ethernet1/7',
    });
    expect(n.systemDescription).toMatch(/^Debian GNU\/Linux 12/);
    expect(n.managementAddresses).toEqual([expect.stringMatching(/^fe80:/)]);
  });
  it('a capture tcpdump ended at its timeout holds the header only: nothing heard', () => {
    expect(pcap('tcpdump-timed-out.pcap')).toHaveLength(24);
    expect(lldpNeighbour(pcap('tcpdump-timed-out.pcap'))).toBeNull();
  });
});

/**
 * LLDP neighbours from what the boot environment captured (issue 13 item 1):
 * a classic pcap file (`tcpdump -c 1 -w FILE 'ether proto 0x88cc'` on one
 * NIC) holding one Ethernet frame, whose LLDPDU (IEEE 802.1AB-2016 §8) names
 * the switch and the port the NIC is cabled to. Pure: bytes in, facts out;
 * anything malformed is a clear error, never a guess.
 *
 *   parsePcapFrames(buf)  -> the frames of a pcap file (both byte orders, µs or ns)
 *   decodeLldpFrame(buf)  -> the LLDPDU's fields (Ethernet II, or one 802.1Q tag)
 *   lldpNeighbour(pcap)   -> what a discovery rule matches: {switch, port}, and the rest
 *
 * The rule's `match.lldp.switch` is the System Name TLV when the switch sends
 * one (most do), else its chassis ID; `port` is the Port ID when it is an
 * interface name or local value, else the Port Description.
 */
import { FleetError } from '../../common/errors.js';

/** The LLDP EtherType and the nearest-bridge destination most switches send to. */
export const LLDP_ETHERTYPE = 0x88cc;
export const LLDP_NEAREST_BRIDGE = '01:80:c2:00:00:0e';
const VLAN_ETHERTYPE = 0x8100;
const LINKTYPE_ETHERNET = 1;
/** A capture of one frame needs no more; anything bigger is not what inspect.sh sends. */
export const MAX_PCAP_BYTES = 64 * 1024;

function bad(msg: string): FleetError {
  return new FleetError('request.invalid', `LLDP capture: ${msg}`);
}

/** The frames of a classic pcap file (libpcap format, not pcapng), Ethernet link type only. */
export function parsePcapFrames(buf: Buffer): Buffer[] {
  if (buf.length > MAX_PCAP_BYTES) throw bad(`${buf.length} bytes is more than a capture of one frame (${MAX_PCAP_BYTES})`);
  if (buf.length < 24) throw bad('shorter than a pcap global header (24 bytes)');
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else if (magic === 0x0a0d0d0a) throw bad('pcapng is not read: capture with tcpdump -w (classic pcap)');
  else throw bad(`not a pcap file (magic 0x${magic.toString(16).padStart(8, '0')})`);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20) & 0x0fffffff;
  if (linktype !== LINKTYPE_ETHERNET) throw bad(`link type ${linktype}, not Ethernet (1)`);
  const frames: Buffer[] = [];
  let o = 24;
  while (o < buf.length) {
    if (o + 16 > buf.length) throw bad(`a record header is cut short at byte ${o}`);
    const incl = u32(o + 8);
    if (o + 16 + incl > buf.length) throw bad(`a record of ${incl} bytes at byte ${o} runs past the end of the file`);
    frames.push(buf.subarray(o + 16, o + 16 + incl));
    o += 16 + incl;
  }
  return frames;
}

/** Chassis ID and Port ID subtypes (802.1AB Tables 8-2 and 8-3), in words. */
const CHASSIS_SUBTYPES: Record<number, string> = { 1: 'chassis-component', 2: 'interface-alias', 3: 'port-component', 4: 'mac', 5: 'network-address', 6: 'interface-name', 7: 'local' };
const PORT_SUBTYPES: Record<number, string> = { 1: 'interface-alias', 2: 'port-component', 3: 'mac', 4: 'network-address', 5: 'interface-name', 6: 'agent-circuit-id', 7: 'local' };

export interface LldpId {
  subtype: string;
  /** Text for names and local values, aa:bb:... for a MAC, dotted or colon form for an address. */
  value: string;
}

export interface LldpFrame {
  /** Source MAC of the frame (the switch port's). */
  source: string;
  destination: string;
  vlan?: number;
  chassisId: LldpId;
  portId: LldpId;
  ttl: number;
  portDescription?: string;
  systemName?: string;
  systemDescription?: string;
  managementAddresses: string[];
}

const mac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Printable text of a TLV string (control characters dropped, at most 255 bytes as the TLV allows). */
function text(b: Buffer): string {
  return b.toString('utf8').replace(/[\x00-\x1f\x7f]/g, '').trim();
}

/** IANA address family 1 (IPv4) or 2 (IPv6); other families as hex. */
function address(b: Buffer): string {
  if (b.length < 2) throw bad('a network address without its family');
  const family = b[0]!;
  const a = b.subarray(1);
  if (family === 1 && a.length === 4) return [...a].join('.');
  if (family === 2 && a.length === 16) return Array.from({ length: 8 }, (_, i) => a.readUInt16BE(i * 2).toString(16)).join(':');
  return `family ${family}: ${a.toString('hex')}`;
}

function id(b: Buffer, subtypes: Record<number, string>, what: string, macSubtype: number, addressSubtype: number): LldpId {
  if (b.length < 2) throw bad(`the ${what} TLV is empty`);
  const st = b[0]!;
  const v = b.subarray(1);
  const subtype = subtypes[st] ?? `reserved-${st}`;
  if (st === macSubtype) {
    if (v.length !== 6) throw bad(`the ${what} is a MAC of ${v.length} bytes`);
    return { subtype, value: mac(v) };
  }
  if (st === addressSubtype) return { subtype, value: address(v) };
  return { subtype, value: text(v) };
}

/** Decodes an Ethernet frame carrying an LLDPDU: the mandatory TLVs in their order, then the optional ones we use. */
export function decodeLldpFrame(frame: Buffer): LldpFrame {
  if (frame.length < 14) throw bad('a frame shorter than an Ethernet header');
  let o = 12;
  let type = frame.readUInt16BE(o);
  let vlan: number | undefined;
  if (type === VLAN_ETHERTYPE) {
    if (frame.length < 18) throw bad('an 802.1Q tag cut short');
    vlan = frame.readUInt16BE(14) & 0x0fff;
    o = 16;
    type = frame.readUInt16BE(o);
  }
  if (type !== LLDP_ETHERTYPE) throw bad(`EtherType 0x${type.toString(16).padStart(4, '0')}, not LLDP (0x88cc)`);
  o += 2;
  const tlvs: { type: number; value: Buffer }[] = [];
  for (;;) {
    if (o + 2 > frame.length) throw bad('the LLDPDU ends without an End TLV');
    const head = frame.readUInt16BE(o);
    const t = head >> 9;
    const len = head & 0x1ff;
    if (o + 2 + len > frame.length) throw bad(`TLV type ${t} of ${len} bytes runs past the frame`);
    if (t === 0) break;
    tlvs.push({ type: t, value: frame.subarray(o + 2, o + 2 + len) });
    o += 2 + len;
  }
  if (tlvs[0]?.type !== 1 || tlvs[1]?.type !== 2 || tlvs[2]?.type !== 3) throw bad('the LLDPDU does not start with Chassis ID, Port ID and TTL');
  if (tlvs[2].value.length !== 2) throw bad('the TTL TLV is not 2 bytes');
  const one = (t: number): Buffer | undefined => tlvs.find((x) => x.type === t)?.value;
  const portDescription = one(4);
  const systemName = one(5);
  const systemDescription = one(6);
  const managementAddresses: string[] = [];
  for (const m of tlvs.filter((x) => x.type === 8)) {
    const alen = m.value[0] ?? 0;
    if (alen < 2 || 1 + alen > m.value.length) throw bad('a Management Address TLV with a bad address length');
    managementAddresses.push(address(m.value.subarray(1, 1 + alen)));
  }
  return {
    source: mac(frame.subarray(6, 12)),
    destination: mac(frame.subarray(0, 6)),
    ...(vlan !== undefined ? { vlan } : {}),
    chassisId: id(tlvs[0].value, CHASSIS_SUBTYPES, 'chassis ID', 4, 5),
    portId: id(tlvs[1].value, PORT_SUBTYPES, 'port ID', 3, 4),
    ttl: tlvs[2].value.readUInt16BE(0),
    ...(portDescription !== undefined ? { portDescription: text(portDescription) } : {}),
    ...(systemName !== undefined ? { systemName: text(systemName) } : {}),
    ...(systemDescription !== undefined ? { systemDescription: text(systemDescription) } : {}),
    managementAddresses,
  };
}

/** What a discovery rule matches on (`match.lldp`): the switch's name and the port, from a frame. */
export function neighbourOf(f: LldpFrame): { switch: string; port: string } {
  const sw = f.systemName || f.chassisId.value;
  const named = f.portId.subtype === 'interface-name' || f.portId.subtype === 'local' || f.portId.subtype === 'interface-alias';
  const port = named && f.portId.value ? f.portId.value : f.portDescription || f.portId.value;
  return { switch: sw, port };
}

/** The neighbour of one NIC's capture: the first LLDP frame of the pcap, decoded; null when it holds none (nothing was heard). */
export function lldpNeighbour(pcap: Buffer): (LldpFrame & { switch: string; port: string }) | null {
  const frames = parsePcapFrames(pcap);
  if (frames.length === 0) return null;
  const f = decodeLldpFrame(frames[0]!);
  return { ...f, ...neighbourOf(f) };
}

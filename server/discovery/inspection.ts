/**
 * Inspection reports (issue 13 item 1, docs/discovery.md "Inspection"): what
 * the fleet boot environment in *inspect* mode posts about a machine no node
 * declares, checked and turned into what the store keeps. Pure.
 *
 *   boot environment (inspect.sh) ──POST report──▶ parseInspectionReport ──▶ Inspection
 *                                                        │ parseBmcTexts (ipmitool's own words, in band over KCS)
 *   Inspection ──inspectionFacts──▶ MachineFacts (serial, model, NICs, disks, BMC) for the naming rules
 *
 * The boot environment collects and the server interprets: SMBIOS, CPUs,
 * memory, disks and NICs arrive as values read from /sys and /proc; the BMC
 * arrives as the text of `ipmitool lan print`, `mc info`, `user list` and the
 * bytes of Get System GUID, parsed here, where they are unit-tested against
 * what ipmitool prints (test/fixtures/inspection/).
 */
import { FleetError } from '../../common/errors.js';
import { MAC_CANONICAL, SERIAL_NUMBER } from '../../common/patterns.js';
import { parseSystemGuid } from '../bmc/ipmi/commands.js';
import { lldpNeighbour, type LldpFrame } from './lldp.js';

/** Largest report body accepted (the BMC's texts dominate; 63 users' list is ~4 KiB). */
export const MAX_INSPECTION_BODY = 256 * 1024;
const MAX_TEXT = 32 * 1024;
const MAX_STR = 256;
const MAX_ITEMS = 64;
/** One NIC's capture, base64: `tcpdump -c 1 -s 1600` writes under 2 KiB; room for a jumbo frame. */
const MAX_LLDP_B64 = 16 * 1024;

export interface InspectedDisk {
  name: string;
  sizeBytes: number;
  model?: string;
  serial?: string;
  rotational: boolean;
  removable: boolean;
}

export interface InspectedNic {
  name: string;
  mac: string;
  /** From /sys/class/net/NIC/carrier: up (1), down (0), unknown (the NIC was never brought up). */
  link: 'up' | 'down' | 'unknown';
  speedMbps?: number;
  driver?: string;
  /**
   * The switch port at the other end (LLDP), when the boot environment
   * listened (discovery lldp_wait): the neighbour heard, or null when no LLDP
   * frame came within the wait. Absent: not listened for on this NIC.
   */
  lldp?: NicNeighbour | null;
}

/** One NIC's LLDP neighbour as decoded from the frame it heard (server/discovery/lldp.ts). */
export type NicNeighbour = Omit<LldpFrame, 'destination'> & { switch: string; port: string };

export interface BmcUser {
  id: number;
  name: string;
  /** Channel privilege limit as ipmitool prints it (ADMINISTRATOR, OPERATOR, USER, CALLBACK, NO ACCESS). */
  privilege: string;
  ipmiMessaging: boolean;
}

/** The machine's own BMC as read in band (KCS, `ipmitool` open interface). */
export interface InspectedBmc {
  channel: number;
  ip?: string;
  /** Static Address, DHCP Address, ... (ipmitool's words). */
  ipSource?: string;
  netmask?: string;
  gateway?: string;
  mac?: string;
  firmware?: string;
  ipmiVersion?: string;
  manufacturerId?: number;
  manufacturer?: string;
  productId?: number;
  /** The system GUID in the SMBIOS order (the host's product_uuid when the BMC follows SMBIOS). */
  guid?: string;
  /** Named users (and unnamed ones with a privilege): no password is ever read. */
  users: BmcUser[];
  cipherSuites?: number[];
}

export interface Inspection {
  firmware: 'bios' | 'uefi';
  system: { manufacturer?: string; model?: string; serial?: string; uuid?: string; biosVendor?: string; biosVersion?: string };
  cpu: { model?: string; count: number };
  memoryMiB: number;
  disks: InspectedDisk[];
  nics: InspectedNic[];
  /** The BMC, or why none was read (no KCS device, ipmitool failed). */
  bmc: InspectedBmc | { absent: string };
  /** What the report said it could not read, in words (a partial report is still a report). */
  notes: string[];
}

/** SMBIOS placeholders that name no machine: a rule must never match (or two machines share) them. */
const PLACEHOLDER = /^(?:|0+|none|n\/?a|not (?:specified|applicable|available)|default string|to be filled by o\.?e\.?m\.?|system (?:serial )?number|system product name|system manufacturer|0123456789|123456789|x+|unknown)$/i;

class Problems {
  readonly list: string[] = [];
  add(path: string, what: string): void {
    if (this.list.length < 20) this.list.push(`${path}: ${what}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A printable string (control characters dropped), trimmed, at most `max`; undefined for absent/empty. */
function str(v: unknown, path: string, p: Problems, max = MAX_STR, multiline = false): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    p.add(path, 'not a string');
    return undefined;
  }
  if (v.length > max) {
    p.add(path, `longer than ${max} characters`);
    return undefined;
  }
  const s = (multiline ? v.replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '') : v.replace(/[\x00-\x1f\x7f]/g, '')).trim();
  return s === '' ? undefined : s;
}

function int(v: unknown, path: string, p: Problems, max = 2 ** 53 - 1): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    p.add(path, `not an integer in 0..${max}`);
    return undefined;
  }
  return v;
}

function flag(v: unknown, path: string, p: Problems): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === true || v === 1 || v === '1') return true;
  if (v === false || v === 0 || v === '0') return false;
  p.add(path, 'not 0 or 1');
  return undefined;
}

function list(v: unknown, path: string, p: Problems): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    p.add(path, 'not a list');
    return [];
  }
  if (v.length > MAX_ITEMS) {
    p.add(path, `more than ${MAX_ITEMS} entries`);
    return [];
  }
  return v;
}

/** An SMBIOS string, or undefined for a vendor placeholder (noted). */
function smbios(v: unknown, path: string, p: Problems, notes: string[]): string | undefined {
  const s = str(v, path, p);
  if (s !== undefined && PLACEHOLDER.test(s)) {
    notes.push(`${path} is a placeholder (${JSON.stringify(s)}): ignored`);
    return undefined;
  }
  return s;
}

function normalizeUuid(s: string | undefined, path: string, p: Problems): string | undefined {
  if (s === undefined) return undefined;
  const h = s.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h)) {
    p.add(path, 'not a UUID');
    return undefined;
  }
  if (/^0+$|^f+$/.test(h)) return undefined;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Checks a report as the boot environment posts it (docs/discovery.md
 * "Inspection" has the shape) and interprets the BMC texts. Throws
 * request.invalid naming every problem (at most 20); nothing is kept then.
 */
export function parseInspectionReport(body: unknown): Inspection {
  const p = new Problems();
  if (!isObject(body)) throw new FleetError('request.invalid', 'inspection report: not a JSON object');
  if (body.version !== 1) throw new FleetError('request.invalid', `inspection report: version ${JSON.stringify(body.version)} is not 1`);
  const notes: string[] = [];
  for (const n of list(body.notes, 'notes', p)) {
    const s = str(n, 'notes[]', p);
    if (s !== undefined) notes.push(s);
  }

  const firmware = body.firmware === 'uefi' ? 'uefi' : body.firmware === 'bios' ? 'bios' : (p.add('firmware', 'not bios or uefi'), 'bios');

  const sys = isObject(body.system) ? body.system : (p.add('system', 'not an object'), {});
  const system: Inspection['system'] = {};
  const sysFields = [
    ['manufacturer', 'sys_vendor'],
    ['model', 'product_name'],
    ['serial', 'product_serial'],
    ['biosVendor', 'bios_vendor'],
    ['biosVersion', 'bios_version'],
  ] as const;
  for (const [key, wire] of sysFields) {
    const s = smbios(sys[wire], `system.${wire}`, p, notes);
    if (s !== undefined) system[key] = s;
  }
  if (system.serial !== undefined && !SERIAL_NUMBER.test(system.serial)) {
    notes.push(`system.product_serial ${JSON.stringify(system.serial)} has characters a serial rule cannot name: ignored`);
    delete system.serial;
  }
  const uuid = normalizeUuid(str(sys.product_uuid, 'system.product_uuid', p), 'system.product_uuid', p);
  if (uuid !== undefined) system.uuid = uuid;

  const cpuIn = isObject(body.cpu) ? body.cpu : (p.add('cpu', 'not an object'), {});
  const cpuModel = str(cpuIn.model, 'cpu.model', p);
  const cpu = { ...(cpuModel !== undefined ? { model: cpuModel } : {}), count: int(cpuIn.count, 'cpu.count', p, 65536) ?? 0 };
  const memKiB = int(body.memoryKiB, 'memoryKiB', p, 2 ** 40) ?? 0;

  const disks: InspectedDisk[] = [];
  list(body.disks, 'disks', p).forEach((d, i) => {
    const at = `disks[${i}]`;
    if (!isObject(d)) return p.add(at, 'not an object');
    const name = str(d.name, `${at}.name`, p, 32);
    if (name === undefined || !/^[A-Za-z0-9_-]+$/.test(name)) return p.add(`${at}.name`, 'not a block device name');
    const sectors = int(d.sectors, `${at}.sectors`, p) ?? 0;
    const model = str(d.model, `${at}.model`, p);
    const serial = str(d.serial, `${at}.serial`, p);
    disks.push({
      name,
      sizeBytes: sectors * 512,
      ...(model !== undefined ? { model } : {}),
      ...(serial !== undefined ? { serial } : {}),
      rotational: flag(d.rotational, `${at}.rotational`, p) ?? false,
      removable: flag(d.removable, `${at}.removable`, p) ?? false,
    });
  });

  const nics: InspectedNic[] = [];
  list(body.nics, 'nics', p).forEach((n, i) => {
    const at = `nics[${i}]`;
    if (!isObject(n)) return p.add(at, 'not an object');
    const name = str(n.name, `${at}.name`, p, 15);
    const mac = str(n.mac, `${at}.mac`, p, 17)?.toLowerCase();
    if (name === undefined || !/^[A-Za-z0-9_.:-]+$/.test(name)) return p.add(`${at}.name`, 'not an interface name');
    if (mac === undefined || !MAC_CANONICAL.test(mac)) return p.add(`${at}.mac`, 'not a MAC address');
    const carrier = flag(n.carrier, `${at}.carrier`, p);
    const speed = typeof n.speed === 'number' && n.speed > 0 ? int(n.speed, `${at}.speed`, p, 10_000_000) : undefined;
    const driver = str(n.driver, `${at}.driver`, p, 64);
    const lldp = nicLldp(n.lldp, `${at}.lldp`, p, notes);
    nics.push({
      name,
      mac,
      link: carrier === undefined ? 'unknown' : carrier ? 'up' : 'down',
      ...(speed !== undefined ? { speedMbps: speed } : {}),
      ...(driver !== undefined ? { driver } : {}),
      ...(lldp !== undefined ? { lldp } : {}),
    });
  });

  let bmc: Inspection['bmc'];
  const b = body.bmc;
  if (!isObject(b)) {
    p.add('bmc', 'not an object');
    bmc = { absent: 'no BMC section in the report' };
  } else {
    const absent = str(b.absent, 'bmc.absent', p);
    if (absent !== undefined) bmc = { absent };
    else {
      const texts = {
        channel: int(b.channel, 'bmc.channel', p, 15) ?? 1,
        lan: str(b.lan, 'bmc.lan', p, MAX_TEXT, true),
        mc: str(b.mc, 'bmc.mc', p, MAX_TEXT, true),
        users: str(b.users, 'bmc.users', p, MAX_TEXT, true),
        guid: str(b.guid, 'bmc.guid', p, 200),
      };
      bmc = parseBmcTexts(texts, notes);
    }
  }

  if (p.list.length > 0) throw new FleetError('request.invalid', `inspection report: ${p.list.join('; ')}`);
  return { firmware, system, cpu, memoryMiB: Math.floor(memKiB / 1024), disks, nics, bmc, notes };
}

/**
 * A NIC's `lldp` in the report: absent (not listened for), "" (listened,
 * tcpdump wrote nothing), or the base64 of the pcap tcpdump wrote. A capture
 * that does not decode is a note, not a refused report: the machine's other
 * facts are good, and a switch's odd frame must not hide the machine.
 */
function nicLldp(v: unknown, path: string, p: Problems, notes: string[]): NicNeighbour | null | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    p.add(path, 'not a string (base64 of a pcap capture)');
    return undefined;
  }
  if (v.length > MAX_LLDP_B64) {
    p.add(path, `longer than ${MAX_LLDP_B64} characters (a capture of one frame is smaller)`);
    return undefined;
  }
  const b64 = v.replace(/\s+/g, '');
  if (b64 === '') return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    p.add(path, 'not base64');
    return undefined;
  }
  try {
    const n = lldpNeighbour(Buffer.from(b64, 'base64'));
    if (n === null) return null;
    const { destination: _dst, ...rest } = n;
    return rest;
  } catch (e) {
    notes.push(`${path}: ${(e as Error).message}`);
    return undefined;
  }
}

/** `Key   : value` lines of ipmitool's lan print / mc info (continuation lines, starting with ':', are skipped). */
function keyValues(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i).trim();
    if (key === '' || m.has(key)) continue;
    m.set(key, line.slice(i + 1).trim());
  }
  return m;
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;

/** An address ipmitool printed, or undefined when it is unset (0.0.0.0, 00:00:…). */
function addr(v: string | undefined): string | undefined {
  return v !== undefined && IPV4.test(v) && v !== '0.0.0.0' ? v : undefined;
}

/**
 * What the machine's BMC said in band: `ipmitool lan print CH`, `mc info`,
 * `user list CH` and `raw 0x06 0x37` (Get System GUID), as printed. A text
 * that is missing or does not parse is noted, never guessed.
 */
export function parseBmcTexts(t: { channel: number; lan?: string | undefined; mc?: string | undefined; users?: string | undefined; guid?: string | undefined }, notes: string[]): InspectedBmc {
  const bmc: InspectedBmc = { channel: t.channel, users: [] };
  if (t.lan === undefined) notes.push(`bmc: no lan print of channel ${t.channel}`);
  else {
    const kv = keyValues(t.lan);
    const ip = addr(kv.get('IP Address'));
    if (ip !== undefined) bmc.ip = ip;
    const source = kv.get('IP Address Source');
    if (source) bmc.ipSource = source;
    const mask = addr(kv.get('Subnet Mask'));
    if (mask !== undefined) bmc.netmask = mask;
    const gw = addr(kv.get('Default Gateway IP'));
    if (gw !== undefined) bmc.gateway = gw;
    const mac = kv.get('MAC Address')?.toLowerCase();
    if (mac !== undefined && MAC_CANONICAL.test(mac) && mac !== '00:00:00:00:00:00') bmc.mac = mac;
    const ciphers = kv.get('RMCP+ Cipher Suites');
    if (ciphers && /^\d+(?:,\d+)*$/.test(ciphers)) bmc.cipherSuites = ciphers.split(',').map(Number);
    if (!kv.has('IP Address') && !kv.has('MAC Address')) notes.push(`bmc: lan print of channel ${t.channel} has no address lines`);
  }
  if (t.mc === undefined) notes.push('bmc: no mc info');
  else {
    const kv = keyValues(t.mc);
    const fw = kv.get('Firmware Revision');
    if (fw) bmc.firmware = fw;
    const v = kv.get('IPMI Version');
    if (v) bmc.ipmiVersion = v;
    const mid = kv.get('Manufacturer ID');
    if (mid && /^\d+$/.test(mid)) bmc.manufacturerId = Number(mid);
    const mname = kv.get('Manufacturer Name');
    if (mname && !/^Unknown/.test(mname)) bmc.manufacturer = mname;
    const pid = /^(\d+)/.exec(kv.get('Product ID') ?? '');
    if (pid) bmc.productId = Number(pid[1]);
  }
  if (t.users !== undefined) bmc.users = parseUserList(t.users);
  else notes.push(`bmc: no user list of channel ${t.channel}`);
  if (t.guid !== undefined) {
    const bytes = t.guid.trim().split(/\s+/);
    if (bytes.length === 16 && bytes.every((x) => /^[0-9a-fA-F]{2}$/.test(x))) {
      const g = parseSystemGuid(Buffer.from(bytes.join(''), 'hex'));
      if (!/^[0-]+$|^[f-]+$/.test(g)) bmc.guid = g;
    } else notes.push(`bmc: the system GUID is not 16 bytes (${JSON.stringify(t.guid.slice(0, 60))})`);
  }
  return bmc;
}

const USER_LINE = /^(\d+)\s+(.*?)\s*(true|false)\s+(true|false)\s+(true|false)\s+(.+?)\s*$/;

/** `ipmitool user list CH`: the users with a name or a privilege (empty slots are left out). */
export function parseUserList(text: string): BmcUser[] {
  const users: BmcUser[] = [];
  for (const line of text.split('\n')) {
    const m = USER_LINE.exec(line);
    if (!m) continue;
    const name = m[2]!.trim();
    const privilege = m[6]!.replace(/\s*\(0x[0-9a-f]+\)$/i, '').trim();
    const unused = privilege === 'Unknown' || privilege === 'NO ACCESS';
    if (name === '' && unused) continue;
    users.push({ id: Number(m[1]), name, privilege, ipmiMessaging: m[5] === 'true' });
  }
  return users;
}

/**
 * The switch and port a discovery rule's `match.lldp` sees: those of the NIC
 * the machine booted from when it heard a neighbour, else of the first NIC
 * that did; {} when the boot environment listened and heard none; undefined
 * when it did not listen.
 */
export function lldpFacts(i: Inspection, bootMac?: string): { switch?: string; port?: string } | undefined {
  const listened = i.nics.filter((n) => n.lldp !== undefined);
  if (listened.length === 0) return undefined;
  const heard = listened.find((n) => n.mac === bootMac && n.lldp) ?? listened.find((n) => n.lldp);
  return heard?.lldp ? { switch: heard.lldp.switch, port: heard.lldp.port } : {};
}

/** The report's facts for the naming rules (server/discovery/types.ts MachineFacts); `bootMac` picks the NIC whose LLDP neighbour counts. */
export function inspectionFacts(i: Inspection, bootMac?: string): {
  macs: string[];
  serial?: string;
  manufacturer?: string;
  model?: string;
  nicCount: number;
  diskCount: number;
  bmc?: { mac?: string; ip?: string };
  lldp?: { switch?: string; port?: string };
} {
  const lldp = lldpFacts(i, bootMac);
  const disks = i.disks.filter((d) => !d.removable && d.sizeBytes > 0);
  const bmc = 'absent' in i.bmc ? undefined : { ...(i.bmc.mac ? { mac: i.bmc.mac } : {}), ...(i.bmc.ip ? { ip: i.bmc.ip } : {}) };
  return {
    macs: i.nics.map((n) => n.mac),
    ...(i.system.serial !== undefined ? { serial: i.system.serial } : {}),
    ...(i.system.manufacturer !== undefined ? { manufacturer: i.system.manufacturer } : {}),
    ...(i.system.model !== undefined ? { model: i.system.model } : {}),
    nicCount: i.nics.length,
    diskCount: disks.length,
    ...(bmc !== undefined ? { bmc } : {}),
    ...(lldp !== undefined ? { lldp } : {}),
  };
}

/** One line for events and `fleet discovered`: what was found, never a secret. */
export function inspectionSummary(i: Inspection): Record<string, unknown> {
  const b = 'absent' in i.bmc ? { absent: i.bmc.absent } : { ip: i.bmc.ip ?? null, mac: i.bmc.mac ?? null, firmware: i.bmc.firmware ?? null, users: i.bmc.users.map((u) => u.name).filter((n) => n !== '') };
  return {
    serial: i.system.serial ?? null,
    manufacturer: i.system.manufacturer ?? null,
    model: i.system.model ?? null,
    uuid: i.system.uuid ?? null,
    firmware: i.firmware,
    cpus: i.cpu.count,
    memoryMiB: i.memoryMiB,
    disks: i.disks.length,
    nics: i.nics.map((n) => `${n.mac} ${n.link}`),
    ...(i.nics.some((n) => n.lldp !== undefined)
      ? { lldp: i.nics.filter((n) => n.lldp !== undefined).map((n) => (n.lldp ? `${n.name} ${n.lldp.switch} ${n.lldp.port}` : `${n.name} none heard`)) }
      : {}),
    bmc: b,
  };
}

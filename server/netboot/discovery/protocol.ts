/**
 * The line the dhcp-script hook writes (server/netboot/hook/script.ts) and its
 * parser. Pure. A line that does not parse is reported with a reason, never
 * thrown: the listener counts and logs it and goes on.
 */
import { timingSafeEqual } from 'node:crypto';
import { isHostname, isIPv4, normalizeMac } from '../../../common/patterns.js';
import { HOOK_FIELDS, HOOK_MAGIC } from '../hook/script.js';

export type LeaseAction = 'add' | 'old' | 'del';

/** Architecture names derived from dnsmasq's tags (set by the dhcp-match lines) or the PXE vendor class. */
export type ClientArch = 'bios' | 'efi32' | 'efi64' | 'arm32' | 'arm64';

export interface LeaseEvent {
  action: LeaseAction;
  /** Lower-case colon form. */
  mac: string;
  ip: string;
  /** The name dnsmasq gave the lease (validated), else null. */
  hostname: string | null;
  vendorClass: string | null;
  userClasses: string[];
  tags: string[];
  clientId: string | null;
  interface: string | null;
  /** The host name the client asked for (validated), else null. */
  suppliedHostname: string | null;
  /** Lease expiry, seconds since the epoch (null: infinite or unknown). */
  expires: number | null;
  /** dnsmasq replays leases from its lease file at start with DNSMASQ_DATA_MISSING=1: not a new sighting. */
  dataMissing: boolean;
  arch: ClientArch | null;
  /** A PXE ROM or iPXE asked (vendor class PXEClient, or the ipxe tag). */
  pxe: boolean;
  /** iPXE asked (option 175 / user class iPXE). */
  ipxe: boolean;
  receivedAt: Date;
}

export type ParseResult = { ok: true; event: LeaseEvent } | { ok: false; reason: 'unauthenticated' | 'malformed'; detail: string };

/** Client system architecture (option 93, RFC 4578 / IANA) → name. */
const ARCH_BY_CODE: Record<number, ClientArch> = { 0: 'bios', 6: 'efi32', 7: 'efi64', 8: 'efi64', 9: 'efi64', 10: 'arm32', 11: 'arm64' };
const ARCH_TAGS: readonly ClientArch[] = ['bios', 'efi64', 'arm64'];

const PRINTABLE = /^[\x20-\x7e]*$/;

function nonEmpty(s: string | undefined, max: number): string | null {
  if (s === undefined) return null;
  const t = s.trim();
  if (t === '' || t.length > max || !PRINTABLE.test(t)) return null;
  return t;
}

function secretsEqual(a: string, b: Buffer): boolean {
  const ab = Buffer.from(a, 'latin1');
  return ab.length === b.length && timingSafeEqual(ab, b);
}

/** Architecture from the tags, else from a PXE vendor class (PXEClient:Arch:00007:UNDI:003016). */
export function archOf(tags: readonly string[], vendorClass: string | null): ClientArch | null {
  for (const t of ARCH_TAGS) if (tags.includes(t)) return t;
  const m = vendorClass ? /^PXEClient:Arch:(\d{5})/.exec(vendorClass) : null;
  return m ? (ARCH_BY_CODE[Number(m[1])] ?? null) : null;
}

/**
 * Parses one line (without its newline). `secret` is the listener's
 * per-start secret; a line with another secret is 'unauthenticated'.
 */
export function parseHookLine(line: string, secret: Buffer, now: Date = new Date()): ParseResult {
  const f = line.split('\t');
  if (f[0] !== HOOK_MAGIC) return { ok: false, reason: 'malformed', detail: 'does not start with the protocol marker' };
  if (f.length < HOOK_FIELDS.length + 1) return { ok: false, reason: 'malformed', detail: `has ${f.length - 1} fields, expected ${HOOK_FIELDS.length}` };
  const get = (name: (typeof HOOK_FIELDS)[number]): string => f[HOOK_FIELDS.indexOf(name) + 1]!;
  if (!secretsEqual(get('secret'), secret)) return { ok: false, reason: 'unauthenticated', detail: 'wrong secret' };
  const action = get('action');
  if (action !== 'add' && action !== 'old' && action !== 'del') return { ok: false, reason: 'malformed', detail: `unknown action ${JSON.stringify(action.slice(0, 16))}` };
  const mac = normalizeMac(get('mac'));
  if (!mac) return { ok: false, reason: 'malformed', detail: `not a unicast Ethernet MAC: ${JSON.stringify(get('mac').slice(0, 64))}` };
  const ip = get('ip');
  if (!isIPv4(ip)) return { ok: false, reason: 'malformed', detail: `not an IPv4 address: ${JSON.stringify(ip.slice(0, 64))}` };
  const host = nonEmpty(get('hostname'), 253);
  const supplied = nonEmpty(get('suppliedHostname'), 253);
  const vendorClass = nonEmpty(get('vendorClass'), 255);
  const userClasses = get('userClasses')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && PRINTABLE.test(s));
  const tags = get('tags')
    .split(' ')
    .filter((s) => s !== '' && /^[A-Za-z0-9_.:-]{1,64}$/.test(s));
  const expiresRaw = get('expires').trim();
  const expires = /^\d{1,15}$/.test(expiresRaw) ? Number(expiresRaw) : null;
  const ipxe = tags.includes('ipxe') || userClasses.includes('iPXE');
  const event: LeaseEvent = {
    action,
    mac,
    ip,
    hostname: host !== null && isHostname(host) ? host : null,
    vendorClass,
    userClasses,
    tags,
    clientId: nonEmpty(get('clientId'), 255),
    interface: nonEmpty(get('interface'), 32),
    suppliedHostname: supplied !== null && isHostname(supplied) ? supplied : null,
    expires: expires === 0 ? null : expires,
    dataMissing: get('dataMissing').trim() === '1',
    arch: archOf(tags, vendorClass),
    pxe: ipxe || (vendorClass?.startsWith('PXEClient') ?? false),
    ipxe,
    receivedAt: now,
  };
  return { ok: true, event };
}

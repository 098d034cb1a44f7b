/**
 * What the answers of one address mean (pure): the raw outcome of each probe
 * (scan-ipmi.ts, scan-redfish.ts) becomes a finding per protocol, and the
 * findings one verdict for the address:
 *
 *   bmc     something answered as a BMC does (a pong that claims IPMI, a
 *           Get Channel Auth Caps answer, a Redfish service root, or a
 *           Redfish root that wants credentials);
 *   other   something answered, but not as a BMC (garbage, an ASF NIC
 *           without IPMI, a web server that is not Redfish, not TLS);
 *   silent  nothing answered in time, or the port is closed.
 *
 * Every string a peer sent is cleaned (no control characters, bounded
 * length) before it is stored or printed.
 */
import type { AsfPong, ChannelAuthCaps } from '../bmc/ipmi/codec.js';
import { authTypeNames, completionCodeText, parseChannelAuthCaps } from '../bmc/ipmi/codec.js';

export type Verdict = 'bmc' | 'other' | 'silent';

/** How a probe request ended, without the I/O: an answer, or the error code and message. */
export type Settled<T> = { ok: T } | { error: { code: string; message: string } };

export interface IpmiRaw {
  pong: Settled<AsfPong>;
  /** Get Channel Auth Caps asking for the IPMI v2.0 data: completion code and data. */
  caps: Settled<{ completionCode: number; data: Buffer }>;
  /** The same without bit 7, asked only when the first answered with an error completion code. */
  capsV15?: Settled<{ completionCode: number; data: Buffer }>;
}

export interface IpmiFinding {
  verdict: Verdict;
  port: number;
  /** Why it is `other` or `silent`, or what could not be read of a BMC. */
  notes: string[];
  /** The presence pong: IANA (4542 = ASF, i.e. no OEM), OEM-defined value, IPMI claimed. */
  pong: { iana: number; oem: number; ipmi: boolean; entities: number; interactions: number } | null;
  /** IPMI versions the channel accepts, from Get Channel Auth Caps. */
  versions: ('1.5' | '2.0')[];
  /** IPMI v1.5 authentication types offered: none, md2, md5, password, oem. */
  authTypes: string[];
  channel: number | null;
  anonymousLogin: boolean | null;
  nullUsernames: boolean | null;
  kgSet: boolean | null;
  perMessageAuthDisabled: boolean | null;
  userLevelAuthDisabled: boolean | null;
  /** IANA enterprise of an OEM auth type (Get Channel Auth Caps bytes 5-7), 0 when none. */
  oemId: number | null;
  /** Name of a well-known IANA enterprise among oemId and the pong's, when there is one. */
  enterprise: string | null;
}

export type RedfishRaw =
  | { kind: 'refused'; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'tls'; message: string }
  | { kind: 'error'; message: string }
  | {
      kind: 'http';
      status: number;
      contentType: string | null;
      /** The body as text; null when it was larger than allowed. */
      body: string | null;
      /** SHA-256 of the leaf certificate, upper-case colon form. */
      fingerprint: string | null;
    };

export interface RedfishFinding {
  verdict: Verdict;
  port: number;
  notes: string[];
  /** SHA-256 of the certificate seen (to pin later); only identified, never trusted. */
  fingerprint: string | null;
  /** true: the service root was read; false: it wants credentials (HTTP 401/403). */
  rootRead: boolean;
  uuid: string | null;
  vendor: string | null;
  product: string | null;
  redfishVersion: string | null;
  name: string | null;
}

export interface HostFinding {
  address: string;
  verdict: Verdict;
  ipmi: IpmiFinding | null;
  redfish: RedfishFinding | null;
}

/** Well-known IANA private enterprise numbers of BMC makers (https://www.iana.org/assignments/enterprise-numbers). */
export const ENTERPRISES: Readonly<Record<number, string>> = {
  2: 'IBM',
  11: 'Hewlett-Packard',
  343: 'Intel',
  674: 'Dell',
  10876: 'Super Micro',
  19046: 'Lenovo',
  47196: 'Hewlett Packard Enterprise',
};

/** The ASF enterprise number: a pong carrying it says "no OEM" (ASF 2.0 §3.2.4.3). */
export const ASF_IANA = 4542;

export function enterpriseName(iana: number | null | undefined): string | null {
  if (iana === null || iana === undefined) return null;
  return Object.hasOwn(ENTERPRISES, iana) ? ENTERPRISES[iana]! : null;
}

/** A peer's string made safe to store and print: control characters replaced, at most `max` characters; null when empty or not a string. */
export function cleanText(v: unknown, max = 128): string | null {
  if (typeof v !== 'string') return null;
  // eslint-disable-next-line no-control-regex
  const s = v.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?').trim();
  if (s === '') return null;
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const isTimeout = (s: Settled<unknown>): boolean => 'error' in s && s.error.code === 'bmc.timeout';
const isGarbage = (s: Settled<unknown>): boolean => 'error' in s && s.error.code !== 'bmc.timeout';

function emptyIpmi(port: number, verdict: Verdict, notes: string[]): IpmiFinding {
  return {
    verdict,
    port,
    notes,
    pong: null,
    versions: [],
    authTypes: [],
    channel: null,
    anonymousLogin: null,
    nullUsernames: null,
    kgSet: null,
    perMessageAuthDisabled: null,
    userLevelAuthDisabled: null,
    oemId: null,
    enterprise: null,
  };
}

/** What the pre-session IPMI answers of one address say. */
export function classifyIpmi(raw: IpmiRaw, port: number): IpmiFinding {
  const answers = [raw.pong, raw.caps, ...(raw.capsV15 ? [raw.capsV15] : [])];
  if (answers.every(isTimeout)) return emptyIpmi(port, 'silent', [`no RMCP answer on UDP port ${port}`]);

  const notes: string[] = [];
  const f = emptyIpmi(port, 'other', notes);
  let caps: ChannelAuthCaps | null = null;
  let refused: number | null = null;
  for (const c of [raw.caps, raw.capsV15]) {
    if (!c || !('ok' in c)) continue;
    if (c.ok.completionCode !== 0) {
      refused = c.ok.completionCode;
      continue;
    }
    try {
      caps = parseChannelAuthCaps(c.ok.data);
      break;
    } catch (e) {
      notes.push(`Get Channel Auth Caps answer does not parse: ${(e as Error).message}`);
    }
  }
  if ('ok' in raw.pong) {
    const p = raw.pong.ok;
    f.pong = { iana: p.iana, oem: p.oem, ipmi: p.ipmi, entities: p.entities, interactions: p.interactions };
  }
  if (caps) {
    f.versions = [...(caps.ipmi15 ? (['1.5'] as const) : []), ...(caps.ipmi20 ? (['2.0'] as const) : [])];
    f.authTypes = authTypeNames(caps.authTypes);
    f.channel = caps.channel;
    f.anonymousLogin = caps.anonymousLogin;
    f.nullUsernames = caps.nullUsernames;
    f.kgSet = caps.kgSet;
    f.perMessageAuthDisabled = caps.perMessageAuthDisabled;
    f.userLevelAuthDisabled = caps.userLevelAuthDisabled;
    f.oemId = caps.oemId;
  }
  f.enterprise = enterpriseName(caps?.oemId || undefined) ?? enterpriseName(f.pong && f.pong.iana !== ASF_IANA ? f.pong.iana : undefined);

  const claimsIpmi = f.pong?.ipmi === true;
  if (caps || claimsIpmi || refused !== null) {
    f.verdict = 'bmc';
    if (!caps && refused !== null) notes.push(`Get Channel Auth Caps refused: ${completionCodeText(refused)} (0x${refused.toString(16).padStart(2, '0')})`);
    else if (!caps && isTimeout(raw.caps)) notes.push('no answer to Get Channel Auth Caps');
    if (isTimeout(raw.pong)) notes.push('no answer to the RMCP presence ping');
    return f;
  }
  // Something answered, and nothing of it was a BMC.
  if (f.pong && !f.pong.ipmi) notes.push(`presence pong without IPMI (supported entities 0x${f.pong.entities.toString(16).padStart(2, '0')}): an ASF agent, not a BMC`);
  for (const a of answers) if (isGarbage(a) && 'error' in a) notes.push(a.error.message);
  if (notes.length === 0) notes.push('answered, but not as a BMC');
  f.notes = [...new Set(notes)];
  return f;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function emptyRedfish(port: number, verdict: Verdict, notes: string[], fingerprint: string | null = null): RedfishFinding {
  return { verdict, port, notes, fingerprint, rootRead: false, uuid: null, vendor: null, product: null, redfishVersion: null, name: null };
}

/** What GET /redfish/v1/ over TLS (not verified) says about one address. */
export function classifyRedfish(raw: RedfishRaw, port: number): RedfishFinding {
  switch (raw.kind) {
    case 'refused':
    case 'timeout':
      return emptyRedfish(port, 'silent', [raw.message]);
    case 'tls':
      return emptyRedfish(port, 'other', [`TCP port ${port} is open but does not speak TLS as a Redfish service must: ${raw.message}`]);
    case 'error':
      return emptyRedfish(port, 'other', [raw.message]);
    case 'http':
      break;
  }
  const fp = raw.fingerprint;
  if (raw.status === 401 || raw.status === 403) {
    const f = emptyRedfish(port, 'bmc', [`the service root wants credentials (HTTP ${raw.status}); DSP0266 lets anyone read it, so its identity is unknown`], fp);
    return f;
  }
  if (raw.status < 200 || raw.status > 299) return emptyRedfish(port, 'other', [`GET /redfish/v1/ answered HTTP ${raw.status}: not a Redfish service root`], fp);
  if (raw.body === null) return emptyRedfish(port, 'other', ['GET /redfish/v1/ answered a body larger than a service root can be'], fp);
  let json: unknown;
  try {
    json = JSON.parse(raw.body);
  } catch {
    return emptyRedfish(port, 'other', [`GET /redfish/v1/ answered HTTP ${raw.status} with a body that is not JSON${raw.contentType ? ` (${cleanText(raw.contentType, 64)})` : ''}`], fp);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return emptyRedfish(port, 'other', ['GET /redfish/v1/ answered JSON that is not an object'], fp);
  const root = json as Record<string, unknown>;
  const type = typeof root['@odata.type'] === 'string' ? (root['@odata.type'] as string) : '';
  const version = cleanText(root['RedfishVersion'], 32);
  if (!version && !/^#ServiceRoot\./.test(type)) {
    return emptyRedfish(port, 'other', ['GET /redfish/v1/ answered JSON without RedfishVersion or a ServiceRoot @odata.type: not a Redfish service root'], fp);
  }
  const notes: string[] = [];
  const uuidText = cleanText(root['UUID'], 64);
  const uuid = uuidText && UUID.test(uuidText) ? uuidText.toLowerCase() : null;
  if (uuidText && !uuid) notes.push(`service root UUID ${JSON.stringify(uuidText)} is not a UUID`);
  return {
    verdict: 'bmc',
    port,
    notes,
    fingerprint: fp,
    rootRead: true,
    uuid,
    vendor: cleanText(root['Vendor']),
    product: cleanText(root['Product']),
    redfishVersion: version,
    name: cleanText(root['Name']),
  };
}

/** One verdict for an address: a BMC when any protocol found one, else other when anything answered, else silent. */
export function classifyHost(address: string, ipmi: IpmiFinding | null, redfish: RedfishFinding | null): HostFinding {
  const vs = [ipmi?.verdict, redfish?.verdict];
  const verdict: Verdict = vs.includes('bmc') ? 'bmc' : vs.includes('other') ? 'other' : 'silent';
  return { address, verdict, ipmi, redfish };
}

export interface ScanCounts {
  addresses: number;
  /** Addresses where anything answered (bmc + other). */
  answered: number;
  silent: number;
  bmcs: number;
  other: number;
}

export function countVerdicts(hosts: readonly HostFinding[]): ScanCounts {
  const bmcs = hosts.filter((h) => h.verdict === 'bmc').length;
  const other = hosts.filter((h) => h.verdict === 'other').length;
  return { addresses: hosts.length, answered: bmcs + other, silent: hosts.length - bmcs - other, bmcs, other };
}

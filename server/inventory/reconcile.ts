/**
 * Reconciliation of what a node's agent reports with what its BMC says
 * (issue 12 item 4): is the BMC fleet drives for this node the BMC of the
 * machine the agent runs on? A mis-cabled or mis-declared BMC powers the
 * wrong machine; this comparison finds it. Pure: the agent's inventory and
 * the BMC's identity in, a verdict out.
 *
 * Checks, in the order they decide:
 *
 * - `uuid`: the SMBIOS system UUID (agent) against the BMC's system GUID
 *   (IPMI Get System GUID) or the Redfish ComputerSystem UUID. Compared as
 *   16 bytes, case and format insensitive; BMCs disagree on the GUID's byte
 *   order (IPMI says least significant byte first, most send the SMBIOS order,
 *   some RFC 4122), so a value that equals the agent's once re-ordered is a
 *   match with a note, never a mismatch.
 * - `serial`: the SMBIOS system serial (or, failing that, the baseboard
 *   serial) against the BMC's serial (IPMI FRU product serial, else board
 *   serial; Redfish SerialNumber). Trimmed, case insensitive.
 * - `macs`: the agent's NIC MACs against the host NIC MACs the BMC lists
 *   (Redfish EthernetInterfaces of the system). IPMI lists none (what an
 *   IPMI BMC exposes is its own LAN MAC, never a host NIC), so on IPMI this
 *   check is always unknown.
 *
 * Decisive are `uuid` and `serial`, each unique per machine:
 *   - any of them matching → `match` (the other disagreeing is a data quality
 *     problem — a FRU nobody programmed, a BMC whose GUID is its own — and is
 *     said in the reason, but the machine is the same);
 *   - else any of them differing → `mismatch`;
 *   - else (both unknown) the MACs decide: overlap → `match`, disjoint →
 *     `mismatch`, nothing to compare → `unknown`.
 * A value unknown on either side — absent, a section the agent could not
 * read, or a placeholder ("To Be Filled By O.E.M.", "0123456789", an all-zero
 * UUID...) — makes its check `unknown`, never a mismatch.
 */

export type CheckResult = 'match' | 'mismatch' | 'unknown';
export type ReconcileStatus = CheckResult;
export type CheckField = 'uuid' | 'serial' | 'macs';

export interface ReconcileCheck {
  field: CheckField;
  /** What the agent says (canonical form), null when unknown. */
  agent: string | null;
  /** What the BMC says (canonical form), null when unknown. */
  bmc: string | null;
  result: CheckResult;
  /** Why unknown, or what else there is to know (byte order, which serial matched). */
  note?: string;
}

export interface ReconcileResult {
  status: ReconcileStatus;
  checks: ReconcileCheck[];
  /** One line for people: what decided. */
  reason: string;
}

/** The parts of an agent inventory (common/inventory/types.ts) the comparison reads. */
export interface AgentIdentityFacts {
  system: { serial: string; uuid: string };
  baseboard?: { serial: string };
  nics: { mac: string }[];
  /** Sections the agent could not read (a newer report shape); their values mean nothing. */
  unknown?: { section: string; reason?: string }[];
}

/** The parts of a BMC identity (server/bmc/types.ts BmcIdentity) the comparison reads. */
export interface BmcIdentityFacts {
  uuid?: string;
  serial?: string;
  macs: string[];
}

// ------------------------------------------------------------------ UUID

/** UUIDs that firmware ships when nobody set one (all zeros, all ones, the AMI/Supermicro default in both byte orders). */
const PLACEHOLDER_UUIDS = new Set([
  '00000000000000000000000000000000',
  'ffffffffffffffffffffffffffffffff',
  '03000200040005000006000700080009',
  '00020003000400050006000700080009',
]);

/** 32 lower-case hex digits, or null for anything that is not a UUID (braces, urn:uuid: and dashes are accepted). */
export function uuidHex(v: string | undefined | null): string | null {
  if (!v) return null;
  const s = v
    .trim()
    .toLowerCase()
    .replace(/^urn:uuid:/, '')
    .replace(/^\{(.*)\}$/, '$1')
    .replace(/-/g, '');
  return /^[0-9a-f]{32}$/.test(s) ? s : null;
}

/** 8-4-4-4-12 lower-case form of 32 hex digits. */
export function uuidString(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Canonical UUID string, or null when absent, malformed or a placeholder. */
export function canonicalUuid(v: string | undefined | null): string | null {
  const h = uuidHex(v);
  return h === null || PLACEHOLDER_UUIDS.has(h) ? null : uuidString(h);
}

/** SMBIOS 2.6+ / RFC 4122 swap: the first three fields (4, 2, 2 bytes) byte-reversed, the rest as is. An involution. */
function swapFields(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b.toString('hex');
}

/** All 16 bytes reversed (IPMI's "least significant byte first"). An involution. */
function reverseAll(hex: string): string {
  return Buffer.from(hex, 'hex').reverse().toString('hex');
}

/**
 * The byte orders a BMC's GUID may have been sent and decoded in, relative to
 * the SMBIOS UUID the agent read: name → re-ordering of the BMC's value.
 */
const GUID_ORDERS: readonly [string, (h: string) => string][] = [
  ['SMBIOS/RFC 4122 field swap', swapFields],
  ['IPMI (all bytes reversed)', reverseAll],
  ['IPMI, then field swap', (h) => reverseAll(swapFields(h))],
  ['field swap, then IPMI', (h) => swapFields(reverseAll(h))],
];

function compareUuid(agent: string | null, bmc: string | null): ReconcileCheck {
  const base = { field: 'uuid' as const, agent, bmc };
  if (agent === null || bmc === null) return { ...base, result: 'unknown' };
  const a = uuidHex(agent)!;
  const b = uuidHex(bmc)!;
  if (a === b) return { ...base, result: 'match' };
  for (const [name, reorder] of GUID_ORDERS) {
    if (reorder(b) === a) return { ...base, result: 'match', note: `same 16 bytes in another byte order (${name}): the BMC encodes its GUID differently` };
  }
  return { ...base, result: 'mismatch' };
}

// ------------------------------------------------------------------ serial

/** Serials firmware ships when nobody set one. Compared trimmed and lower-cased. */
const PLACEHOLDER_SERIAL =
  /^(to be filled by o\.?e\.?m\.?|not specified|not applicable|not available|n\/?a|none|null|unknown|default string|default|system serial number|chassis serial number|serial number|serial|sn|oem|o\.e\.m\.|empty|invalid|0123456789|1234567890|123456789|[0]+|[x]+|[.]+|[-]+|[*]+|[ ]+)$/;

/** Trimmed serial with inner blanks collapsed, or null when absent or a placeholder. */
export function canonicalSerial(v: string | undefined | null): string | null {
  if (!v) return null;
  // eslint-disable-next-line no-control-regex
  const s = v.replace(/[\x00-\x1f\x7f]/g, '').trim().replace(/\s+/g, ' ');
  if (s === '' || PLACEHOLDER_SERIAL.test(s.toLowerCase())) return null;
  return s;
}

function compareSerial(system: string | null, board: string | null, bmc: string | null): ReconcileCheck {
  const agent = system ?? board;
  const base = { field: 'serial' as const, agent, bmc };
  if (agent === null || bmc === null) return { ...base, result: 'unknown' };
  const eq = (x: string | null): boolean => x !== null && x.toLowerCase() === bmc.toLowerCase();
  if (eq(system)) return { ...base, result: 'match' };
  if (eq(board)) return { ...base, agent: board, result: 'match', note: "the BMC's serial is the baseboard serial" };
  return { ...base, result: 'mismatch' };
}

// ------------------------------------------------------------------ MACs

function canonicalMac(v: string): string | null {
  const hex = v.replace(/[:\-.\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{12}$/.test(hex) || /^0+$/.test(hex) || /^f+$/.test(hex)) return null;
  return hex.match(/../g)!.join(':');
}

function macList(vs: readonly string[]): string[] {
  return [...new Set(vs.map(canonicalMac).filter((m): m is string => m !== null))].sort();
}

function compareMacs(agent: string[] | null, bmc: string[]): ReconcileCheck {
  const field = 'macs' as const;
  const show = (l: string[] | null): string | null => (l === null || l.length === 0 ? null : l.join(','));
  if (bmc.length === 0) return { field, agent: show(agent), bmc: null, result: 'unknown', note: 'the BMC lists no host NIC (IPMI never does)' };
  if (agent === null || agent.length === 0) return { field, agent: null, bmc: show(bmc), result: 'unknown' };
  const common = bmc.filter((m) => agent.includes(m));
  if (common.length > 0) return { field, agent: show(agent), bmc: show(bmc), result: 'match', note: `in common: ${common.join(',')}` };
  return { field, agent: show(agent), bmc: show(bmc), result: 'mismatch' };
}

// ------------------------------------------------------------------ verdict

function unknownSection(agent: AgentIdentityFacts, section: string): string | undefined {
  const u = agent.unknown?.find((x) => x.section === section);
  return u ? (u.reason ? `${section} unknown in the report: ${u.reason}` : `${section} unknown in the report`) : undefined;
}

function whyUnknown(c: ReconcileCheck, agentNote: string | undefined): string {
  if (c.note) return c.note;
  if (c.agent === null) return agentNote ?? 'the agent reports none';
  return 'the BMC reports none';
}

function describe(c: ReconcileCheck): string {
  if (c.result === 'mismatch') return `${c.field} differs: agent ${c.agent}, BMC ${c.bmc}`;
  if (c.result === 'match') return c.field === 'macs' ? `a MAC is common (${c.note?.replace(/^in common: /, '') ?? ''})` : `${c.field} matches`;
  return `${c.field} unknown`;
}

/** Compares an agent's inventory with its BMC's identity (see the module comment for the rules). */
export function reconcile(agent: AgentIdentityFacts, bmc: BmcIdentityFacts): ReconcileResult {
  const systemUnknown = unknownSection(agent, 'system');
  const boardUnknown = unknownSection(agent, 'baseboard');
  const nicsUnknown = unknownSection(agent, 'nics');

  const uuid = compareUuid(systemUnknown ? null : canonicalUuid(agent.system.uuid), canonicalUuid(bmc.uuid));
  const serial = compareSerial(
    systemUnknown ? null : canonicalSerial(agent.system.serial),
    boardUnknown || !agent.baseboard ? null : canonicalSerial(agent.baseboard.serial),
    canonicalSerial(bmc.serial),
  );
  const macs = compareMacs(nicsUnknown ? null : macList(agent.nics.map((n) => n.mac)), macList(bmc.macs));

  // Say why each unknown check is unknown.
  if (uuid.result === 'unknown') uuid.note = whyUnknown(uuid, systemUnknown);
  if (serial.result === 'unknown') serial.note = whyUnknown(serial, systemUnknown ?? boardUnknown);
  if (macs.result === 'unknown') macs.note = whyUnknown(macs, nicsUnknown);
  const checks = [uuid, serial, macs];

  const decisive = [uuid, serial];
  const matched = decisive.filter((c) => c.result === 'match');
  const differing = decisive.filter((c) => c.result === 'mismatch');
  if (matched.length > 0) {
    const also = [...differing, ...(macs.result === 'mismatch' ? [macs] : [])];
    const reason = matched.map(describe).join(', ') + (also.length ? `; but ${also.map(describe).join('; ')} (the same machine: its identity data disagree)` : '');
    return { status: 'match', checks, reason };
  }
  if (differing.length > 0) return { status: 'mismatch', checks, reason: differing.map(describe).join('; ') };
  if (macs.result !== 'unknown') {
    return { status: macs.result, checks, reason: `uuid and serial unknown; ${describe(macs)}` };
  }
  return { status: 'unknown', checks, reason: `nothing to compare: ${checks.map((c) => `${c.field} (${c.note})`).join(', ')}` };
}

/** One line per node for the CLI: `match  uuid=… serial=…`, `mismatch  uuid agent=… bmc=…`. */
export function summarizeChecks(r: Pick<ReconcileResult, 'status' | 'checks'>): string {
  if (r.status === 'mismatch') {
    return r.checks
      .filter((c) => c.result === 'mismatch')
      .map((c) => `${c.field} agent=${c.agent} bmc=${c.bmc}`)
      .join('  ');
  }
  if (r.status === 'match') {
    return r.checks
      .filter((c) => c.result === 'match')
      .map((c) => `${c.field}=${c.field === 'macs' ? (c.note?.replace(/^in common: /, '') ?? c.bmc) : c.agent}`)
      .join(' ');
  }
  return '';
}

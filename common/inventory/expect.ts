/**
 * A profile's expected hardware (`expect:` in fleet.yaml, USER-STORIES Day 3)
 * checked against a reported inventory. Pure: `checkExpect(spec, inv)`.
 *
 *   expect: {gpus: 8, memory_gib: ">= 512", cpus: ">= 64", disks: ">= 2"}
 *
 * A bare number means "exactly"; a string is an operator and a number
 * (`>=`, `<=`, `>`, `<`, `==`). What each field counts is in EXPECT_FIELDS.
 * A field whose section the report does not know (`Inventory.unknown`) is
 * neither met nor short: it is `unknown`, and the caller waits for a report
 * that knows it instead of judging the node on a probe that timed out.
 */
import type { Inventory, InventorySection } from './types.js';

export type ExpectOp = '>=' | '<=' | '>' | '<' | '==';

export interface ExpectRule {
  op: ExpectOp;
  value: number;
}

/** The fields a profile may expect, with what each counts in a report and the section it needs. */
export const EXPECT_FIELDS = {
  /** Logical CPUs (threads), all sockets. */
  cpus: { section: 'cpus', unit: '', count: (i: Inventory) => i.cpus.threads },
  /** Physical cores, all sockets. */
  cores: { section: 'cpus', unit: '', count: (i: Inventory) => i.cpus.cores },
  sockets: { section: 'cpus', unit: '', count: (i: Inventory) => i.cpus.sockets },
  /** The memory total in GiB, rounded to the nearest GiB (the kernel keeps a little for itself). */
  memory_gib: { section: 'memory', unit: ' GiB', count: (i: Inventory) => Math.round(i.memory.totalBytes / 1024 ** 3) },
  dimms: { section: 'dimms', unit: '', count: (i: Inventory) => i.memory.dimms.length },
  gpus: { section: 'gpus', unit: '', count: (i: Inventory) => i.gpus.length },
  disks: { section: 'disks', unit: '', count: (i: Inventory) => i.disks.length },
  nics: { section: 'nics', unit: '', count: (i: Inventory) => i.nics.length },
  /** InfiniBand HCAs. */
  infiniband: { section: 'infiniband', unit: '', count: (i: Inventory) => i.infiniband.length },
} as const satisfies Record<string, { section: InventorySection; unit: string; count: (i: Inventory) => number }>;

export type ExpectField = keyof typeof EXPECT_FIELDS;
export type ExpectSpec = Partial<Record<ExpectField, ExpectRule>>;

export const EXPECT_FIELD_NAMES = Object.keys(EXPECT_FIELDS) as ExpectField[];

const RULE = /^\s*(>=|<=|==|>|<)?\s*(\d+(?:\.\d+)?)\s*$/;

/**
 * One rule from YAML: a non-negative number (exactly) or "OP N".
 * Returns the rule or an error message (for the config parser to place).
 */
export function parseExpectRule(v: unknown): ExpectRule | string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) return `${v} is not a count (a number of 0 or more)`;
    return { op: '==', value: v };
  }
  if (typeof v !== 'string') return 'expected a number or a comparison such as ">= 512"';
  const m = RULE.exec(v);
  if (!m) return `${JSON.stringify(v)} is not a comparison: write a number, or one of >=, <=, >, <, == and a number (e.g. ">= 512")`;
  return { op: (m[1] as ExpectOp | undefined) ?? '==', value: Number(m[2]) };
}

export function meets(got: number, r: ExpectRule): boolean {
  switch (r.op) {
    case '>=':
      return got >= r.value;
    case '<=':
      return got <= r.value;
    case '>':
      return got > r.value;
    case '<':
      return got < r.value;
    case '==':
      return got === r.value;
  }
}

export function ruleText(r: ExpectRule): string {
  return r.op === '==' ? `${r.value}` : `${r.op} ${r.value}`;
}

export interface ExpectOutcome {
  /** Rules the report meets. */
  met: ExpectField[];
  /** Rules the report falls short of, with what it has. */
  short: { field: ExpectField; want: string; got: number }[];
  /** Rules that cannot be judged: their section is unknown in this report. */
  unknown: { field: ExpectField; section: InventorySection }[];
}

export function checkExpect(spec: ExpectSpec, inv: Inventory): ExpectOutcome {
  const out: ExpectOutcome = { met: [], short: [], unknown: [] };
  const unknownSections = new Set(inv.unknown.map((u) => u.section));
  for (const field of EXPECT_FIELD_NAMES) {
    const rule = spec[field];
    if (!rule) continue;
    const def = EXPECT_FIELDS[field];
    if (unknownSections.has(def.section)) {
      out.unknown.push({ field, section: def.section });
      continue;
    }
    const got = def.count(inv);
    if (meets(got, rule)) out.met.push(field);
    else out.short.push({ field, want: ruleText(rule), got });
  }
  return out;
}

/** "gpus: 7, expected 8; memory_gib: 256 GiB, expected >= 512" — the reason a node is held. */
export function shortfallText(o: Pick<ExpectOutcome, 'short'>): string {
  return o.short.map((s) => `${s.field}: ${s.got}${EXPECT_FIELDS[s.field].unit}, expected ${s.want}${EXPECT_FIELDS[s.field].unit}`).join('; ');
}

/** "memory_gib (memory unknown)" — the rules a partial report could not judge. */
export function unknownText(o: Pick<ExpectOutcome, 'unknown'>): string {
  return o.unknown.map((u) => `${u.field} (${u.section} unknown)`).join(', ');
}

/**
 * What the lifecycle reads from an inventory report (the agent.inventory and
 * agent.applied events carry it as `expect`): `met`, `short` with the reason,
 * or `unknown` (a section it needs is unknown in the report). Null when the
 * profile expects nothing.
 */
export interface ExpectAssessment {
  status: 'met' | 'short' | 'unknown';
  reason: string;
}

export function assessExpect(spec: ExpectSpec | undefined, inv: Inventory): ExpectAssessment | null {
  if (!spec || Object.keys(spec).length === 0) return null;
  const o = checkExpect(spec, inv);
  if (o.short.length > 0) return { status: 'short', reason: `hardware short of profile: ${shortfallText(o)}` };
  if (o.unknown.length > 0) return { status: 'unknown', reason: `cannot check ${unknownText(o)}` };
  return { status: 'met', reason: `hardware meets profile: ${o.met.join(', ')}` };
}

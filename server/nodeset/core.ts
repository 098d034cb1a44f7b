/**
 * Set algebra over node patterns (clustershell NodeSetBase).
 *
 * A node name is split into text and digit runs: "rack1node07-bmc" is the
 * pattern "rack%snode%s-bmc" with the index tuple ("1", "07"). A Core maps
 * each pattern to its indexes: nothing (a name without digits), a RangeSet
 * (one numeric part) or a RangeSetND (several). Cores are treated as
 * immutable values: operations build new ones.
 */
import { Ctx, MAX_INDEX, RangeSyntaxError, appendAll } from './context.js';
import { RangeSet, type Run } from './rangeset.js';
import { RangeSetND, type Box } from './rangesetnd.js';

export type Value = null | RangeSet | RangeSetND;

export interface Entry {
  /** Text around the numeric parts: frags.length = dimensions + 1. */
  readonly frags: readonly string[];
  readonly value: Value;
}

export type Core = ReadonlyMap<string, Entry>;

export const EMPTY_CORE: Core = new Map();

/** clustershell's pattern string ("n%s-eth%s", '%' escaped as '%%'), used as key and sort key. */
export function patternKey(frags: readonly string[]): string {
  return frags.map((f) => f.replaceAll('%', '%%')).join('%s');
}

/** Compares strings by code point, like Python. */
export function cmpCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1; // surrogates (astral code points) sort after the BMP
      return x - y;
    }
  }
  return a.length - b.length;
}

export interface SplitName {
  frags: string[];
  indexes: string[];
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Splits a single node name into text fragments and digit runs (clustershell _scan_string_single). */
export function splitName(name: string): SplitName {
  const frags: string[] = [];
  const indexes: string[] = [];
  let text = 0;
  let i = 0;
  const n = name.length;
  while (i < n) {
    if (!isDigit(name.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    while (i < n && isDigit(name.charCodeAt(i))) i++;
    frags.push(name.slice(text, start));
    indexes.push(name.slice(start, i));
    text = i;
  }
  frags.push(name.slice(text));
  return { frags, indexes };
}

/** Throws RangeSyntaxError when an index is beyond what we support. */
export function checkIndex(index: string): void {
  if (index.length > 15 && Number(index) > MAX_INDEX) {
    throw new RangeSyntaxError(index, `index too large (max ${MAX_INDEX})`);
  }
}

export function valueSize(v: Value): number {
  return v === null ? 1 : v.size;
}

export function coreSize(c: Core): number {
  let n = 0;
  for (const e of c.values()) n += valueSize(e.value);
  return n;
}

/** A core of one pattern. */
export function singleEntry(frags: readonly string[], value: Value): Core {
  return new Map([[patternKey(frags), { frags, value }]]);
}

/** A value from per-dimension range sets (one box). */
export function valueOf(rsets: readonly RangeSet[]): Value {
  if (rsets.length === 0) return null;
  if (rsets.length === 1) return rsets[0]!;
  return RangeSetND.ofBox(rsets);
}

export function boxSize(rsets: readonly RangeSet[]): number {
  let n = 1;
  for (const rs of rsets) n *= rs.size;
  return n;
}

function isEmptyValue(v: Value): boolean {
  return v !== null && v.size === 0;
}

function vUnion(a: Value, b: Value, ctx: Ctx): Value {
  if (a === null || b === null) return null;
  if (a instanceof RangeSet) {
    ctx.spend(RangeSet.unionCost(a, b as RangeSet));
    return a.union(b as RangeSet);
  }
  return a.union(b as RangeSetND, ctx);
}

function vDifference(a: RangeSet | RangeSetND, b: RangeSet | RangeSetND, ctx: Ctx): RangeSet | RangeSetND {
  if (a instanceof RangeSet) {
    ctx.spend(a.runs.length + (b as RangeSet).runs.length);
    return a.difference(b as RangeSet);
  }
  return a.difference(b as RangeSetND, ctx);
}

function vIntersection(a: RangeSet | RangeSetND, b: RangeSet | RangeSetND, ctx: Ctx): RangeSet | RangeSetND {
  if (a instanceof RangeSet) {
    ctx.spend(a.runs.length + (b as RangeSet).runs.length);
    return a.intersection(b as RangeSet);
  }
  return a.intersection(b as RangeSetND, ctx);
}

function vXor(a: RangeSet | RangeSetND, b: RangeSet | RangeSetND, ctx: Ctx): RangeSet | RangeSetND {
  if (a instanceof RangeSet) {
    ctx.spend(a.runs.length + (b as RangeSet).runs.length);
    return a.xor(b as RangeSet);
  }
  return a.xor(b as RangeSetND, ctx);
}

export function union(a: Core, b: Core, ctx: Ctx): Core {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const out = new Map(a);
  for (const [k, e] of b) {
    const mine = out.get(k);
    out.set(k, mine === undefined ? e : { frags: mine.frags, value: vUnion(mine.value, e.value, ctx) });
  }
  return out;
}

/** Bulk union of many cores (one sort per pattern instead of one merge per operand). */
export function unionAll(cores: readonly Core[], ctx: Ctx): Core {
  if (cores.length === 1) return cores[0]!;
  const groups = new Map<string, Entry[]>();
  for (const c of cores) {
    for (const [k, e] of c) {
      const g = groups.get(k);
      if (g === undefined) groups.set(k, [e]);
      else g.push(e);
    }
  }
  const out = new Map<string, Entry>();
  for (const [k, g] of groups) {
    const first = g[0]!;
    if (g.length === 1 || first.value === null) {
      out.set(k, first);
    } else if (first.value instanceof RangeSet) {
      // sort the newcomers only, then one linear merge with the first (usually the big accumulated) set
      const runs: Run[] = [];
      for (let i = 1; i < g.length; i++) appendAll(runs, (g[i]!.value as RangeSet).runs);
      const added = RangeSet.fromRuns(runs);
      ctx.spend(runs.length * Math.ceil(Math.log2(runs.length + 2)) + RangeSet.unionCost(first.value, added));
      out.set(k, { frags: first.frags, value: first.value.union(added) });
    } else {
      out.set(k, { frags: first.frags, value: RangeSetND.unionAll(g.map((e) => e.value as RangeSetND), ctx) });
    }
  }
  return out;
}

export function difference(a: Core, b: Core, ctx: Ctx): Core {
  if (a.size === 0 || b.size === 0) return a;
  const out = new Map(a);
  for (const [k, e] of b) {
    const mine = out.get(k);
    if (mine === undefined) continue;
    if (mine.value === null || e.value === null) {
      out.delete(k);
      continue;
    }
    const v = vDifference(mine.value, e.value, ctx);
    if (isEmptyValue(v)) out.delete(k);
    else out.set(k, { frags: mine.frags, value: v });
  }
  return out;
}

export function intersection(a: Core, b: Core, ctx: Ctx): Core {
  const out = new Map<string, Entry>();
  for (const [k, e] of b) {
    const mine = a.get(k);
    if (mine === undefined) continue;
    if (mine.value === null || e.value === null) {
      out.set(k, mine);
      continue;
    }
    const v = vIntersection(mine.value, e.value, ctx);
    if (!isEmptyValue(v)) out.set(k, { frags: mine.frags, value: v });
  }
  return out;
}

export function xor(a: Core, b: Core, ctx: Ctx): Core {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const out = new Map(a);
  for (const [k, e] of b) {
    const mine = out.get(k);
    if (mine === undefined) {
      out.set(k, e);
    } else if (mine.value === null || e.value === null) {
      out.delete(k);
    } else {
      const v = vXor(mine.value, e.value, ctx);
      if (isEmptyValue(v)) out.delete(k);
      else out.set(k, { frags: mine.frags, value: v });
    }
  }
  return out;
}

/** Entries in clustershell order (sorted by pattern string). */
export function sortedEntries(c: Core): Entry[] {
  return [...c.entries()].sort((x, y) => cmpCodePoints(x[0], y[0])).map(([, e]) => e);
}

/** Fills a pattern's fragments with one string per dimension. */
export function render(frags: readonly string[], parts: readonly string[]): string {
  let s = frags[0]!;
  for (let i = 0; i < parts.length; i++) s += parts[i]! + frags[i + 1]!;
  return s;
}

/** The index tuples of an entry in clustershell order. */
export function* entryTuples(e: Entry): Generator<string[]> {
  const v = e.value;
  if (v === null) yield [];
  else if (v instanceof RangeSet) for (const i of v.indexes()) yield [i];
  else yield* v.tuples();
}

/** Node names in clustershell order. */
export function* names(c: Core): Generator<string> {
  for (const e of sortedEntries(c)) {
    for (const t of entryTuples(e)) yield render(e.frags, t);
  }
}

function rangeText(rs: RangeSet, autostep: number | undefined): string {
  const s = rs.toString(autostep);
  return rs.size > 1 ? `[${s}]` : s;
}

/** The folded text of one entry, as a list of comma-separated items (clustershell NodeSetBase.__str__). */
export function entryFold(e: Entry, autostep?: number): string[] {
  const v = e.value;
  if (v === null) return [e.frags[0]!];
  if (v instanceof RangeSet) return [render(e.frags, [rangeText(v, autostep)])];
  return v.vectors().map((box: Box) => render(e.frags, box.map((rs) => rangeText(rs, autostep))));
}

/** clustershell str(NodeSet). */
export function fold(c: Core, autostep?: number): string {
  const out: string[] = [];
  for (const e of sortedEntries(c)) appendAll(out, entryFold(e, autostep));
  return out.join(',');
}

export function has(c: Core, name: string): boolean {
  const { frags, indexes } = splitName(name);
  const e = c.get(patternKey(frags));
  if (e === undefined) return false;
  const v = e.value;
  if (v === null) return true;
  try {
    for (const i of indexes) checkIndex(i);
  } catch {
    return false;
  }
  if (v instanceof RangeSet) return v.hasIndex(indexes[0]!);
  return v.has(indexes);
}

/**
 * Builds a core from single names (clustershell NodeSet._fromlist1), with
 * an exact count of distinct names checked against the limit as we go.
 */
export function fromNames(list: Iterable<string>, ctx: Ctx, check: (name: string, split: SplitName) => void): Core {
  interface Group {
    frags: string[];
    dim: number;
    keys: Set<string>;
  }
  const groups = new Map<string, Group>();
  let count = 0;
  for (const name of list) {
    const split = splitName(name);
    check(name, split);
    const k = patternKey(split.frags);
    let g = groups.get(k);
    if (g === undefined) {
      g = { frags: split.frags, dim: split.indexes.length, keys: new Set() };
      groups.set(k, g);
    }
    const key = split.indexes.join(',');
    if (!g.keys.has(key)) {
      g.keys.add(key);
      count++;
      ctx.checkSize(count);
    }
  }
  const out = new Map<string, Entry>();
  for (const [k, g] of groups) {
    let value: Value;
    if (g.dim === 0) value = null;
    else if (g.dim === 1) value = RangeSet.fromRuns([...g.keys].map((i) => ({ w: i.length, lo: Number(i), hi: Number(i) })));
    else value = RangeSetND.fromTuples([...g.keys].map((key) => key.split(',')), g.dim);
    out.set(k, { frags: g.frags, value });
  }
  return out;
}

/** The names at positions [start, end) in clustershell order, as a core (for --split and -I). */
export function sliceCore(c: Core, start: number, end: number): Core {
  const out = new Map<string, Entry>();
  let pos = 0;
  for (const e of sortedEntries(c)) {
    const n = valueSize(e.value);
    const a = Math.max(start, pos);
    const b = Math.min(end, pos + n);
    if (a < b) {
      const k = patternKey(e.frags);
      const v = e.value;
      if (v === null) out.set(k, e);
      else if (v instanceof RangeSet) out.set(k, { frags: e.frags, value: v.slice(a - pos, b - pos) });
      else {
        const picked: string[][] = [];
        let i = 0;
        for (const t of v.tuples()) {
          if (i >= b - pos) break;
          if (i >= a - pos) picked.push(t);
          i++;
        }
        out.set(k, { frags: e.frags, value: RangeSetND.fromTuples(picked, v.dim) });
      }
    }
    pos += n;
    if (pos >= end) break;
  }
  return out;
}

/** clustershell NodeSet.contiguous(): one core per contiguous piece. */
export function contiguous(c: Core): Core[] {
  const out: Core[] = [];
  for (const e of sortedEntries(c)) {
    const v = e.value;
    if (v === null) out.push(singleEntry(e.frags, null));
    else for (const piece of v.contiguous()) out.push(singleEntry(e.frags, piece));
  }
  return out;
}

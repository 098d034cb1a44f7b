/**
 * One-dimensional range sets of node indexes, clustershell 1.9 semantics.
 *
 * An index is a digit string: "1", "01" and "001" are three distinct
 * indexes. We represent an index as (w, v): w is the string length, v the
 * numeric value (v < 10^w; the index is zero-padded when w > digits(v)).
 * clustershell orders indexes by (length, value), which is exactly (w, v).
 *
 * A RangeSet is an immutable, sorted list of disjoint runs {w, lo, hi}
 * (all values lo..hi written with width w), merged where adjacent. Set
 * operations work on runs, never on expanded names.
 */
import { Ctx, MAX_INDEX, RangeSyntaxError, tooLarge } from './context.js';

export interface Run {
  readonly w: number;
  readonly lo: number;
  readonly hi: number;
}

/** Number of decimal digits of v (v >= 0). */
export function digitCount(v: number): number {
  return v < 10 ? 1 : String(v).length;
}

/** The index string of (w, v). */
export function fmtIndex(w: number, v: number): string {
  const s = String(v);
  return s.length >= w ? s : '0'.repeat(w - s.length) + s;
}

/** clustershell's "padded" notion: more than one character and a leading zero. */
function isPadded(w: number, v: number): boolean {
  return w > digitCount(v);
}

function pow10(n: number): number {
  return 10 ** n;
}

/** Appends the runs of the unpadded values a..b (one run per digit count). */
function pushNaturalRuns(out: Run[], a: number, b: number): void {
  const wa = digitCount(a);
  const wb = digitCount(b);
  for (let w = wa; w <= wb; w++) {
    const lo = w === wa ? a : pow10(w - 1);
    const hi = w === wb ? b : pow10(w) - 1;
    out.push({ w, lo, hi });
  }
}

function cmpRun(a: Run, b: Run): number {
  return a.w - b.w || a.lo - b.lo;
}

/** Sorts and merges arbitrary runs. */
function normalize(runs: Run[]): Run[] {
  if (runs.length <= 1) return runs.slice();
  let sorted = true;
  for (let i = 1; i < runs.length; i++) {
    if (cmpRun(runs[i - 1]!, runs[i]!) > 0) {
      sorted = false;
      break;
    }
  }
  const src = sorted ? runs : runs.slice().sort(cmpRun);
  const out: Run[] = [];
  let cur = src[0]!;
  for (let i = 1; i < src.length; i++) {
    const r = src[i]!;
    if (r.w === cur.w && r.lo <= cur.hi + 1) {
      if (r.hi > cur.hi) cur = { w: cur.w, lo: cur.lo, hi: r.hi };
    } else {
      out.push(cur);
      cur = r;
    }
  }
  out.push(cur);
  return out;
}

/** True when `a` is so much smaller than `b` that inserting its runs one by one beats a linear merge. */
function isSmallAgainst(a: RangeSet, b: RangeSet): boolean {
  return a.runs.length <= 8 && b.runs.length >= 64;
}

/** First index in sorted runs whose (w, hi) >= (w, v). */
function lowerBoundIn(runs: readonly Run[], w: number, v: number): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (r.w < w || (r.w === w && r.hi < v)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sizeOf(runs: readonly Run[]): number {
  let n = 0;
  for (const r of runs) n += r.hi - r.lo + 1;
  return n;
}

type Keep = (inA: boolean, inB: boolean) => boolean;
const KEEP_UNION: Keep = (a, b) => a || b;
const KEEP_INTER: Keep = (a, b) => a && b;
const KEEP_DIFF: Keep = (a, b) => a && !b;
const KEEP_XOR: Keep = (a, b) => a !== b;

/** Boolean combination of two normalized run lists, linear in their lengths. */
function combine(a: readonly Run[], b: readonly Run[], keep: Keep): Run[] {
  const out: Run[] = [];
  const emit = (w: number, lo: number, hi: number): void => {
    const last = out[out.length - 1];
    if (last !== undefined && last.w === w && last.lo <= lo && last.hi + 1 >= lo) {
      out[out.length - 1] = { w, lo: last.lo, hi: Math.max(hi, last.hi) };
    } else {
      out.push({ w, lo, hi });
    }
  };
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const w = Math.min(a[i]?.w ?? Infinity, b[j]?.w ?? Infinity);
    const i1 = i;
    while (i < a.length && a[i]!.w === w) i++;
    const j1 = j;
    while (j < b.length && b[j]!.w === w) j++;
    // sweep the boundaries of a[i1..i) and b[j1..j)
    let p = i1;
    let q = j1;
    let inA = false;
    let inB = false;
    let cur = 0;
    for (;;) {
      const na = p < i ? (inA ? a[p]!.hi + 1 : a[p]!.lo) : Infinity;
      const nb = q < j ? (inB ? b[q]!.hi + 1 : b[q]!.lo) : Infinity;
      const x = Math.min(na, nb);
      if (x === Infinity) break;
      if (x > cur && (inA || inB) && keep(inA, inB)) emit(w, cur, x - 1);
      if (na === x) {
        if (inA) p++;
        inA = !inA;
      }
      if (nb === x) {
        if (inB) q++;
        inB = !inB;
      }
      cur = x;
    }
  }
  return out;
}

export class RangeSet {
  static readonly EMPTY = new RangeSet([], 0);

  private constructor(
    readonly runs: readonly Run[],
    readonly size: number,
  ) {}

  /** From runs in any order (sorted and merged here). */
  static fromRuns(runs: Run[]): RangeSet {
    const norm = normalize(runs);
    return new RangeSet(norm, sizeOf(norm));
  }

  static single(w: number, v: number): RangeSet {
    return new RangeSet([{ w, lo: v, hi: v }], 1);
  }

  /** From an index string of digits (its padding is kept). */
  static ofIndex(index: string): RangeSet {
    return RangeSet.single(index.length, Number(index));
  }

  get isEmpty(): boolean {
    return this.runs.length === 0;
  }

  has(w: number, v: number): boolean {
    const runs = this.runs;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = runs[mid]!;
      if (r.w < w || (r.w === w && r.hi < v)) lo = mid + 1;
      else if (r.w > w || r.lo > v) hi = mid - 1;
      else return true;
    }
    return false;
  }

  hasIndex(index: string): boolean {
    return this.has(index.length, Number(index));
  }

  equals(o: RangeSet): boolean {
    if (this === o) return true;
    if (this.size !== o.size || this.runs.length !== o.runs.length) return false;
    for (let i = 0; i < this.runs.length; i++) {
      const a = this.runs[i]!;
      const b = o.runs[i]!;
      if (a.w !== b.w || a.lo !== b.lo || a.hi !== b.hi) return false;
    }
    return true;
  }

  /** this ⊆ o */
  isSubsetOf(o: RangeSet): boolean {
    if (this.size > o.size) return false;
    let k = 0;
    const o2 = o.runs;
    for (const r of this.runs) {
      while (k < o2.length && (o2[k]!.w < r.w || (o2[k]!.w === r.w && o2[k]!.hi < r.lo))) k++;
      const c = o2[k];
      if (c === undefined || c.w !== r.w || c.lo > r.lo || c.hi < r.hi) return false;
    }
    return true;
  }

  /** clustershell `a < b`: proper subset. */
  isProperSubsetOf(o: RangeSet): boolean {
    return this.size < o.size && this.isSubsetOf(o);
  }

  intersects(o: RangeSet): boolean {
    let i = 0;
    let j = 0;
    const a = this.runs;
    const b = o.runs;
    while (i < a.length && j < b.length) {
      const x = a[i]!;
      const y = b[j]!;
      if (x.w !== y.w) {
        if (x.w < y.w) i++;
        else j++;
      } else if (x.hi < y.lo) i++;
      else if (y.hi < x.lo) j++;
      else return true;
    }
    return false;
  }

  union(o: RangeSet): RangeSet {
    if (o.isEmpty) return this;
    if (this.isEmpty) return o;
    if (isSmallAgainst(o, this)) return this.insertFew(o);
    if (isSmallAgainst(this, o)) return o.insertFew(this);
    const runs = combine(this.runs, o.runs, KEEP_UNION);
    return new RangeSet(runs, sizeOf(runs));
  }

  /** Work units of this.union(o), for budgets. */
  static unionCost(a: RangeSet, b: RangeSet): number {
    const small = Math.min(a.runs.length, b.runs.length);
    if (isSmallAgainst(a, b) || isSmallAgainst(b, a)) return small * (Math.ceil(Math.log2(a.runs.length + b.runs.length + 2)) + 1);
    return a.runs.length + b.runs.length;
  }

  /** Union with a few runs: binary search and splice instead of a full merge (unchanged sets are returned as is). */
  private insertFew(o: RangeSet): RangeSet {
    if (o.runs.every((r) => this.containsRun(r))) return this;
    const out = this.runs.slice();
    let size = this.size;
    for (const r of o.runs) {
      let lo = r.lo;
      let hi = r.hi;
      // the runs of the same width that overlap or touch r are replaced by one run
      const a = lowerBoundIn(out, r.w, r.lo - 1);
      let b = a;
      while (b < out.length && out[b]!.w === r.w && out[b]!.lo <= r.hi + 1) {
        const x = out[b]!;
        lo = Math.min(lo, x.lo);
        hi = Math.max(hi, x.hi);
        size -= x.hi - x.lo + 1;
        b++;
      }
      out.splice(a, b - a, { w: r.w, lo, hi });
      size += hi - lo + 1;
    }
    return new RangeSet(out, size);
  }

  private containsRun(r: Run): boolean {
    const c = this.runs[lowerBoundIn(this.runs, r.w, r.lo)];
    return c !== undefined && c.w === r.w && c.lo <= r.lo && c.hi >= r.hi;
  }

  intersection(o: RangeSet): RangeSet {
    const runs = combine(this.runs, o.runs, KEEP_INTER);
    return new RangeSet(runs, sizeOf(runs));
  }

  difference(o: RangeSet): RangeSet {
    if (o.isEmpty || this.isEmpty) return this;
    const runs = combine(this.runs, o.runs, KEEP_DIFF);
    return new RangeSet(runs, sizeOf(runs));
  }

  xor(o: RangeSet): RangeSet {
    const runs = combine(this.runs, o.runs, KEEP_XOR);
    return new RangeSet(runs, sizeOf(runs));
  }

  /** First index string in clustershell order (rs[0]). */
  first(): string {
    const r = this.runs[0]!;
    return fmtIndex(r.w, r.lo);
  }

  /** Last index string in clustershell order (rs[-1]). */
  last(): string {
    const r = this.runs[this.runs.length - 1]!;
    return fmtIndex(r.w, r.hi);
  }

  /** Index strings in clustershell order. */
  *indexes(): Generator<string> {
    for (const r of this.runs) for (let v = r.lo; v <= r.hi; v++) yield fmtIndex(r.w, v);
  }

  /** The sub-RangeSet of the indexes at positions [start, end) in clustershell order. */
  slice(start: number, end: number): RangeSet {
    const out: Run[] = [];
    let pos = 0;
    for (const r of this.runs) {
      const n = r.hi - r.lo + 1;
      const a = Math.max(start, pos);
      const b = Math.min(end, pos + n);
      if (a < b) out.push({ w: r.w, lo: r.lo + (a - pos), hi: r.lo + (b - pos) - 1 });
      pos += n;
      if (pos >= end) break;
    }
    return new RangeSet(out, sizeOf(out));
  }

  /**
   * The items clustershell prints for this set (RangeSet._slices_padding):
   * [start, stop (exclusive), step, pad]. `autostep` is a node count like
   * --autostep; undefined disables a-b/step items.
   */
  slices(autostep?: number): Slice[] {
    const a = autostep === undefined || !Number.isFinite(autostep) ? Infinity : Math.trunc(autostep) - 1;
    return [...slicesPadding(this.runs, a)];
  }

  /** Contiguous sub-RangeSets (clustershell RangeSet.contiguous()). */
  contiguous(): RangeSet[] {
    return this.slices().map(([start, stop, , pad]) => {
      const runs: Run[] = [];
      if (pad > 0) runs.push({ w: pad, lo: start, hi: stop - 1 });
      else pushNaturalRuns(runs, start, stop - 1);
      return RangeSet.fromRuns(runs);
    });
  }

  /**
   * clustershell's str(RangeSet): comma-separated items "a", "a-b" and, when
   * autostep (a node count, like --autostep) is given, "a-b/step".
   */
  toString(autostep?: number): string {
    const parts: string[] = [];
    for (const [start, stop, step, pad] of this.slices(autostep)) {
      if (start + 1 === stop) parts.push(fmtIndex(pad, start));
      else if (step === 1) parts.push(`${fmtIndex(pad, start)}-${fmtIndex(pad, stop - 1)}`);
      else parts.push(`${fmtIndex(pad, start)}-${fmtIndex(pad, stop - 1)}/${step}`);
    }
    return parts.join(',');
  }
}

/** [start, stop (exclusive), step, pad] */
export type Slice = [number, number, number, number];

/**
 * Port of clustershell 1.9 RangeSet._slices_padding() with an autostep
 * threshold `a` (= node count - 1, Infinity when disabled), quirks included
 * (e.g. 22-406,04 folds to 04,22-99,100-406: a chain can inherit the padding
 * of the one before). Walks the indexes, but skips through the inside of a
 * run whenever the next indexes cannot change the state (step 1, same
 * padding), so folding stays proportional to the number of runs.
 */
function* slicesPadding(runs: readonly Run[], a: number): Generator<Slice> {
  let curStart: number | null = null;
  let curPadded = false;
  let curPad = 0;
  let curStep: number | null = null;
  let lastIdx = 0;
  const padOf = (): number => (curPadded ? curPad : 0);
  for (const r of runs) {
    for (let idx = r.lo; idx <= r.hi; idx++) {
      const digitlen = r.w;
      const padded = isPadded(r.w, idx);
      if (curStart === null) {
        curPadded = padded;
        curPad = digitlen;
        curStart = idx;
        curStep = null;
        lastIdx = idx;
        continue;
      }
      const paddingMismatch = curPadded ? digitlen !== curPad : padded;
      const stepMismatch: boolean = !paddingMismatch && curStep !== null && curStep !== idx - lastIdx;
      if (paddingMismatch || stepMismatch) {
        let stepped: boolean;
        let step: number;
        if (curStep !== null) {
          stepped = curStep === 1 || lastIdx - curStart >= a * curStep;
          step = curStep;
        } else {
          stepped = true;
          step = 1;
        }
        if (stepped) {
          yield [curStart, lastIdx + 1, step, padOf()];
          curStart = idx;
          curPadded = padded;
          curPad = digitlen;
        } else {
          const stop = paddingMismatch ? lastIdx + 1 : lastIdx - step + 1;
          for (let k = curStart; k < stop; k += step) yield [k, k + 1, 1, padOf()];
          if (paddingMismatch) {
            curStart = idx;
            curPadded = padded;
            curPad = digitlen;
          } else {
            curStart = lastIdx;
          }
        }
        curStep = stepMismatch ? idx - lastIdx : null;
        lastIdx = idx;
        continue;
      }
      curStep = idx - lastIdx;
      lastIdx = idx;
      // fast-forward: no padding mismatch here means none for the rest of this run
      // (same width; unpadded stays unpadded), so with step 1 the chain just extends
      if (curStep === 1 && idx < r.hi) {
        lastIdx = r.hi;
        break;
      }
    }
  }
  if (curStart !== null) {
    const stepped = curStep !== null ? lastIdx - curStart >= a * curStep : true;
    if (stepped || curStep === 1) {
      yield [curStart, lastIdx + 1, curStep ?? 1, padOf()];
    } else {
      for (let k = curStart; k <= lastIdx; k += curStep!) yield [k, k + 1, 1, padOf()];
    }
  }
}

// ---------------------------------------------------------------------------
// Range syntax: "1-10/2,15,020-030" (clustershell RangeSet._parse)

const DIGITS = /^[0-9]+$/;

/** Python's str.strip() for the whitespace that matters here. */
export function pyStrip(s: string): string {
  return s.trim();
}

/** Parses an index number; throws RangeSyntaxError when out of the supported range. */
function indexValue(digits: string, part: string): number {
  const v = Number(digits);
  if (v > MAX_INDEX) throw new RangeSyntaxError(part, `index too large (max ${MAX_INDEX})`);
  return v;
}

/** Parses a step: Python int() on a plain signed decimal number. */
function parseStep(text: string, part: string): number {
  const t = text.trim();
  if (!/^[+-]?[0-9]+$/.test(t)) throw new RangeSyntaxError(part, 'cannot convert string to integer');
  return Number(t);
}

/** One parsed subrange: start..stop by step, zero padding `pad` (0: natural width). */
export interface SubRange {
  start: number;
  stop: number;
  step: number;
  pad: number;
  /** number of indexes */
  count: number;
  text: string;
}

/** Parses one comma-separated item of a range list. Throws RangeSyntaxError. */
export function parseSubRange(raw: string): SubRange {
  const sub = pyStrip(raw);
  let base: string;
  let step = 1;
  const slash = sub.indexOf('/');
  if (slash < 0) {
    base = sub;
  } else {
    base = sub.slice(0, slash);
    step = parseStep(sub.slice(slash + 1), sub);
  }
  let begin: string;
  let end: string;
  if (!base.includes('-')) {
    if (step !== 1) throw new RangeSyntaxError(sub, 'invalid step usage');
    begin = end = base.trim();
  } else {
    const parts = base.split('-').map((p) => p.trim());
    if (parts[0] === '') throw new RangeSyntaxError(sub, 'negative indexes are not supported');
    if (parts.length !== 2) throw new RangeSyntaxError(sub, 'cannot convert string to integer');
    begin = parts[0]!;
    end = parts[1]!;
  }
  if (!DIGITS.test(begin) || !DIGITS.test(end)) {
    throw new RangeSyntaxError(sub, sub.length === 0 ? 'empty range' : 'cannot convert string to integer');
  }
  const start = indexValue(begin, sub);
  const stop = indexValue(end, sub);
  let pad = 0;
  if (start !== 0) {
    if (begin[0] === '0') pad = begin.length;
  } else if (begin.length > 1) {
    pad = begin.length;
  }
  const endpad = stop !== 0 && end[0] === '0' ? end.length : 0;
  if ((pad > 0 || endpad > 0) && begin.length !== end.length) {
    throw new RangeSyntaxError(sub, 'padding length mismatch');
  }
  if (start > stop || !(step >= 1)) throw new RangeSyntaxError(sub, 'invalid values in range');
  const count = Math.floor((stop - start) / step) + 1;
  return { start, stop, step, pad, count, text: sub };
}

/** Appends the runs of one subrange (step > 1 gives one run per index). */
function pushSubRange(out: Run[], r: SubRange): void {
  if (r.step === 1) {
    if (r.pad > 0) out.push({ w: r.pad, lo: r.start, hi: r.stop });
    else pushNaturalRuns(out, r.start, r.stop);
    return;
  }
  for (let v = r.start; v <= r.stop; v += r.step) {
    out.push({ w: r.pad > 0 ? r.pad : digitCount(v), lo: v, hi: v });
  }
}

/**
 * Parses a clustershell range list ("1-3,5,07-09/2") into a RangeSet,
 * enforcing ctx.limit before anything is allocated. Throws RangeSyntaxError
 * on bad syntax and FleetError(nodeset.too_large) past the limit.
 */
export function parseRangeSet(pattern: string, ctx: Ctx): RangeSet {
  let base = RangeSet.EMPTY;
  let pending: Run[] = [];
  let bound = 0;
  const settle = (): void => {
    const added = RangeSet.fromRuns(pending);
    ctx.spend(pending.length * Math.ceil(Math.log2(pending.length + 2)) + RangeSet.unionCost(base, added));
    base = base.union(added);
    pending = [];
    bound = base.size;
  };
  for (const raw of pattern.split(',')) {
    const r = parseSubRange(raw);
    if (r.count > ctx.limit) throw tooLarge(ctx.limit, r.count, r.text, 'range');
    pushSubRange(pending, r);
    ctx.spend(r.step === 1 ? 1 : r.count);
    bound += r.count;
    if (bound > ctx.limit) {
      settle();
      if (bound > ctx.limit) throw tooLarge(ctx.limit, bound, pattern, 'range');
    }
  }
  settle();
  return base;
}

/** Index strings of a range list in declaration order, no sorting or dedup (for expandPattern). */
export function rangeListInOrder(pattern: string): { count: number; items: SubRange[] } {
  const items: SubRange[] = [];
  let count = 0;
  for (const raw of pattern.split(',')) {
    const r = parseSubRange(raw);
    items.push(r);
    count += r.count;
  }
  return { count, items };
}

export function* subRangeIndexes(r: SubRange): Generator<string> {
  for (let v = r.start; v <= r.stop; v += r.step) yield fmtIndex(r.pad, v);
}

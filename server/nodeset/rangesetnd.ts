/**
 * N-dimensional range sets (node names with several numeric parts, e.g.
 * rack[1-2]node[01-03]), clustershell 1.9 RangeSetND semantics.
 *
 * Invariant: a RangeSetND holds a list of pairwise *disjoint* boxes (one
 * RangeSet per dimension), so its size is always exact without expansion.
 *
 * How it prints follows clustershell, whose folded form depends only on the
 * set of names: a single box stays as it is; boxes that differ on one
 * dimension only are merged ("univariate" fold); otherwise clustershell
 * expands to single names and merges them greedily ("multivariate" fold),
 * which we port exactly (mergePhase) for sets of up to POINT_CAP names. For
 * bigger sets we run the same greedy merge on the boxes instead: the set is
 * the same, the folded text may be split differently than clustershell's.
 */
import { Ctx, POINT_COST, appendAll } from './context.js';
import { RangeSet, type Run } from './rangeset.js';

export type Box = readonly RangeSet[];

/** Sets up to this many names use the exact (name-by-name) clustershell fold and point-based set operations. */
export const POINT_CAP = 200_000;

/** Comparison budget of one greedy merge (fold); past it, folding stops (the set stays correct). */
const MERGE_WORK = 5_000_000;

/** Box pairs an operation may compare with the box-based algorithms before switching to names. */
const BOX_PAIR_CAP = 65_536;

function boxSize(b: Box): number {
  let n = 1;
  for (const rs of b) n *= rs.size;
  return n;
}

function sumSizes(boxes: readonly Box[]): number {
  let n = 0;
  for (const b of boxes) n += boxSize(b);
  return n;
}

function boxIntersection(a: Box, b: Box): Box | null {
  const out: RangeSet[] = [];
  for (let d = 0; d < a.length; d++) {
    const x = a[d]!.intersection(b[d]!);
    if (x.isEmpty) return null;
    out.push(x);
  }
  return out;
}

function boxesIntersect(a: Box, b: Box): boolean {
  for (let d = 0; d < a.length; d++) if (!a[d]!.intersects(b[d]!)) return false;
  return true;
}

/** p \ r as disjoint boxes. */
function subtractBox(p: Box, r: Box): Box[] {
  if (!boxesIntersect(p, r)) return [p];
  const out: Box[] = [];
  const cur = p.slice();
  for (let d = 0; d < p.length; d++) {
    const diff = cur[d]!.difference(r[d]!);
    if (!diff.isEmpty) {
      const piece = cur.slice();
      piece[d] = diff;
      out.push(piece);
    }
    cur[d] = cur[d]!.intersection(r[d]!);
  }
  return out;
}

/**
 * clustershell _fold_univariate: when all boxes are equal on every
 * dimension but one, their union is one box. Works on overlapping boxes too.
 */
function foldUnivariate(boxes: readonly Box[]): Box | null {
  if (boxes.length === 0) return null;
  const first = boxes[0]!;
  const dim = first.length;
  let vardim = -1;
  for (let d = 0; d < dim; d++) {
    const rs = first[d]!;
    for (let i = 1; i < boxes.length; i++) {
      if (!boxes[i]![d]!.equals(rs)) {
        if (vardim >= 0) return null;
        vardim = d;
        break;
      }
    }
  }
  if (vardim < 0) return first;
  const runs: Run[] = [];
  for (const b of boxes) appendAll(runs, b[vardim]!.runs);
  const merged = first.slice();
  merged[vardim] = RangeSet.fromRuns(runs);
  return merged;
}

/** Index strings of every name of a box, as keys "i1,i2,..." (product order, last dimension fastest). */
function* boxKeys(b: Box): Generator<string> {
  const lists = b.map((rs) => [...rs.indexes()]);
  const dim = lists.length;
  const pos = new Array<number>(dim).fill(0);
  for (;;) {
    let key = lists[0]![pos[0]!]!;
    for (let d = 1; d < dim; d++) key += ',' + lists[d]![pos[d]!]!;
    yield key;
    let d = dim - 1;
    while (d >= 0) {
      pos[d]!++;
      if (pos[d]! < lists[d]!.length) break;
      pos[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}

function keySet(boxes: readonly Box[]): Set<string> {
  const s = new Set<string>();
  for (const b of boxes) for (const k of boxKeys(b)) s.add(k);
  return s;
}

/** Builds single-name boxes from keys, sharing RangeSet objects per (dimension, index). */
function keysToBoxes(keys: Iterable<string>, dim: number): Box[] {
  const caches: Map<string, RangeSet>[] = [];
  for (let d = 0; d < dim; d++) caches.push(new Map());
  const out: Box[] = [];
  for (const k of keys) {
    const parts = k.split(',');
    const box: RangeSet[] = [];
    for (let d = 0; d < dim; d++) {
      const idx = parts[d]!;
      const cache = caches[d]!;
      let rs = cache.get(idx);
      if (rs === undefined) {
        rs = RangeSet.ofIndex(idx);
        cache.set(idx, rs);
      }
      box.push(rs);
    }
    out.push(box);
  }
  return out;
}

interface SortKey {
  size: number;
  dims: { n: number; first: string; last: string }[];
}

function sortKey(b: Box): SortKey {
  return { size: boxSize(b), dims: b.map((rs) => ({ n: rs.size, first: rs.first(), last: rs.last() })) };
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** clustershell RangeSetND._sort: larger boxes first, then per dimension larger, lower first index, lower last index. */
function cmpKey(a: SortKey, b: SortKey): number {
  if (a.size !== b.size) return b.size - a.size;
  for (let d = 0; d < a.dims.length; d++) {
    const x = a.dims[d]!;
    const y = b.dims[d]!;
    if (x.n !== y.n) return y.n - x.n;
    const c = cmpStr(x.first, y.first) || cmpStr(x.last, y.last);
    if (c !== 0) return c;
  }
  return 0;
}

function sortBoxes(boxes: Box[]): Box[] {
  const keyed = boxes.map((b) => ({ b, k: sortKey(b) }));
  keyed.sort((x, y) => cmpKey(x.k, y.k)); // stable, like Python's sort
  return keyed.map((x) => x.b);
}

/** clustershell's pairwise merge test of _fold_multivariate_merge; returns the merged box or null. */
function tryMerge(item1: Box, item2: Box): Box | null {
  const merged: RangeSet[] = [];
  let nbDiff = 0;
  for (let pos = 0; pos < item1.length; pos++) {
    const rg1 = item1[pos]!;
    const rg2 = item2[pos]!;
    if (rg1.equals(rg2)) {
      merged.push(rg1);
    } else if (!rg1.intersects(rg2)) {
      if (++nbDiff > 1) return null;
      merged.push(rg1.union(rg2));
    } else if (rg2.isProperSubsetOf(rg1)) {
      if (++nbDiff > 1) return null;
      merged.push(rg1);
    } else if (rg1.isProperSubsetOf(rg2)) {
      if (++nbDiff > 1) return null;
      merged.push(rg2);
    } else {
      return null;
    }
  }
  return merged;
}

/**
 * Port of clustershell RangeSetND._fold_multivariate_merge: sorted passes
 * merging neighbours ("easy" passes), then full O(n²) passes. Merged-away
 * boxes are tombstoned instead of spliced out.
 */
function mergePhase(input: Box[]): Box[] {
  let list: Box[] = input;
  let full = false;
  let chg = true;
  let work = 0;
  while (chg) {
    chg = false;
    const vl: (Box | null)[] = sortBoxes(list);
    work += vl.length * 4;
    const n = vl.length;
    let i = 0;
    outer: while (i < n) {
      let j = i + 1;
      while (j < n && vl[j] === null) j++;
      if (j >= n) break;
      let item1 = vl[i]!;
      for (; j < n; j++) {
        const item2 = vl[j] ?? null;
        if (item2 === null) continue;
        if (++work > MERGE_WORK) {
          vl[i] = item1;
          list = vl.filter((b): b is Box => b !== null);
          return list;
        }
        const merged = tryMerge(item1, item2);
        if (merged !== null) {
          chg = true;
          item1 = merged;
          vl[i] = merged;
          vl[j] = null;
        } else if (!full) {
          break;
        }
      }
      i++;
      while (i < n && vl[i] === null) i++;
      if (i >= n) break outer;
    }
    list = vl.filter((b): b is Box => b !== null);
    if (!chg && !full) chg = full = true;
  }
  return list;
}

export class RangeSetND {
  private boxes: Box[];
  private canonical: boolean;

  private constructor(
    boxes: Box[],
    readonly size: number,
    readonly dim: number,
    canonical: boolean,
  ) {
    this.boxes = boxes;
    this.canonical = canonical;
  }

  /** One box (a product of range sets), e.g. from "rack[1-2]node[01-03]". */
  static ofBox(box: Box): RangeSetND {
    return new RangeSetND([box], boxSize(box), box.length, true);
  }

  /** From single names given as index-string tuples (duplicates allowed). */
  static fromTuples(tuples: Iterable<readonly string[]>, dim: number): RangeSetND {
    const keys = new Set<string>();
    for (const t of tuples) keys.add(t.join(','));
    return RangeSetND.fromKeys(keys, dim);
  }

  private static fromKeys(keys: Set<string>, dim: number): RangeSetND {
    const boxes = keysToBoxes(keys, dim);
    return new RangeSetND(boxes, keys.size, dim, boxes.length <= 1);
  }

  private static ofDisjoint(boxes: Box[], dim: number): RangeSetND {
    return new RangeSetND(boxes, sumSizes(boxes), dim, boxes.length <= 1);
  }

  /** Union of many sets of the same dimension (bulk, for parsing lists). */
  static unionAll(sets: readonly RangeSetND[], ctx: Ctx): RangeSetND {
    if (sets.length === 1) return sets[0]!;
    const dim = sets[0]!.dim;
    const all: Box[] = [];
    for (const s of sets) appendAll(all, s.boxes);
    ctx.spend(all.length * dim);
    const uni = foldUnivariate(all);
    if (uni !== null) return RangeSetND.ofBox(uni);
    const bound = sumSizes(all);
    if (bound <= POINT_CAP) {
      ctx.spend(bound * POINT_COST);
      return RangeSetND.fromKeys(keySet(all), dim);
    }
    // big: fold left with box-based unions (each keeps the disjoint invariant)
    let acc = sets[0]!;
    for (let i = 1; i < sets.length; i++) acc = acc.union(sets[i]!, ctx);
    return acc;
  }

  get isEmpty(): boolean {
    return this.size === 0;
  }

  /** Boxes in clustershell's folded order. */
  vectors(): readonly Box[] {
    this.canonicalize();
    return this.boxes;
  }

  private canonicalize(): void {
    if (this.canonical) return;
    this.canonical = true;
    if (this.boxes.length <= 1) return;
    const uni = foldUnivariate(this.boxes);
    if (uni !== null) {
      this.boxes = [uni];
      return;
    }
    if (this.size <= POINT_CAP) {
      this.boxes = mergePhase(keysToBoxes(keySet(this.boxes), this.dim));
    } else {
      this.boxes = mergePhase(this.boxes);
    }
  }

  has(indexes: readonly string[]): boolean {
    if (indexes.length !== this.dim) return false;
    return this.boxes.some((b) => b.every((rs, d) => rs.hasIndex(indexes[d]!)));
  }

  /** Index tuples in clustershell order (box by box, last dimension fastest). */
  *tuples(): Generator<string[]> {
    for (const b of this.vectors()) {
      for (const k of boxKeys(b)) yield k.split(',');
    }
  }

  /** clustershell RangeSetND.contiguous(): every box split into contiguous pieces on every dimension. */
  contiguous(): RangeSetND[] {
    const out: RangeSetND[] = [];
    for (const b of this.vectors()) {
      let vecs: RangeSet[][] = [b.slice()];
      for (let d = 0; d < this.dim; d++) {
        const next: RangeSet[][] = [];
        for (const v of vecs) {
          for (const piece of v[d]!.contiguous()) {
            const nv = v.slice();
            nv[d] = piece;
            next.push(nv);
          }
        }
        vecs = next;
      }
      for (const v of vecs) out.push(RangeSetND.ofBox(v));
    }
    return out;
  }

  private usePoints(o: RangeSetND): boolean {
    return this.boxes.length * o.boxes.length > BOX_PAIR_CAP && this.size + o.size <= POINT_CAP;
  }

  union(o: RangeSetND, ctx: Ctx): RangeSetND {
    if (o.isEmpty) return this;
    if (this.isEmpty) return o;
    ctx.spend(this.boxes.length + o.boxes.length);
    const uni = foldUnivariate([...this.boxes, ...o.boxes]);
    if (uni !== null) return RangeSetND.ofBox(uni);
    if (this.usePoints(o)) {
      ctx.spend((this.size + o.size) * POINT_COST);
      const keys = keySet(this.boxes);
      for (const b of o.boxes) for (const k of boxKeys(b)) keys.add(k);
      return RangeSetND.fromKeys(keys, this.dim);
    }
    const extra = o.minusBoxes(this.boxes, ctx);
    return RangeSetND.ofDisjoint([...this.boxes, ...extra], this.dim);
  }

  /** This set's boxes minus `other`, as disjoint boxes (box algorithm). */
  private minusBoxes(other: readonly Box[], ctx: Ctx): Box[] {
    const out: Box[] = [];
    for (const a of this.boxes) {
      let pieces: Box[] = [a];
      for (const b of other) {
        ctx.spend(pieces.length);
        const next: Box[] = [];
        for (const p of pieces) appendAll(next, subtractBox(p, b));
        pieces = next;
        if (pieces.length === 0) break;
      }
      appendAll(out, pieces);
    }
    return out;
  }

  difference(o: RangeSetND, ctx: Ctx): RangeSetND {
    if (o.isEmpty || this.isEmpty) return this;
    if (this.usePoints(o)) {
      ctx.spend((this.size + o.size) * POINT_COST);
      const drop = keySet(o.boxes);
      const keys = new Set<string>();
      for (const k of keySet(this.boxes)) if (!drop.has(k)) keys.add(k);
      return RangeSetND.fromKeys(keys, this.dim);
    }
    return RangeSetND.ofDisjoint(this.minusBoxes(o.boxes, ctx), this.dim);
  }

  intersection(o: RangeSetND, ctx: Ctx): RangeSetND {
    if (o.isEmpty || this.isEmpty) return RangeSetND.ofDisjoint([], this.dim);
    if (this.usePoints(o)) {
      ctx.spend((this.size + o.size) * POINT_COST);
      const mine = keySet(this.boxes);
      const keys = new Set<string>();
      for (const k of keySet(o.boxes)) if (mine.has(k)) keys.add(k);
      return RangeSetND.fromKeys(keys, this.dim);
    }
    ctx.spend(this.boxes.length * o.boxes.length);
    const out: Box[] = [];
    for (const a of this.boxes) {
      for (const b of o.boxes) {
        const x = boxIntersection(a, b);
        if (x !== null) out.push(x);
      }
    }
    return RangeSetND.ofDisjoint(out, this.dim);
  }

  xor(o: RangeSetND, ctx: Ctx): RangeSetND {
    if (o.isEmpty) return this;
    if (this.isEmpty) return o;
    if (this.usePoints(o)) {
      ctx.spend((this.size + o.size) * POINT_COST);
      const mine = keySet(this.boxes);
      const theirs = keySet(o.boxes);
      const keys = new Set<string>();
      for (const k of mine) if (!theirs.has(k)) keys.add(k);
      for (const k of theirs) if (!mine.has(k)) keys.add(k);
      return RangeSetND.fromKeys(keys, this.dim);
    }
    const a = this.minusBoxes(o.boxes, ctx);
    const b = o.minusBoxes(this.boxes, ctx);
    return RangeSetND.ofDisjoint([...a, ...b], this.dim);
  }
}

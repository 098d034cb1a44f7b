/**
 * expandPattern: one pattern expanded in declaration order, for per-node
 * values that step in lockstep with a nodeset ('10.10.3.[1-3]').
 *
 * Text outside brackets is literal (operators and digits included); each
 * bracket holds a clustershell range list whose items are taken in the
 * order written, without sorting or dedup. Several brackets iterate like
 * nested loops, leftmost outermost.
 */
import { Ctx, MAX_EXPRESSION_LENGTH, RangeSyntaxError, badRange, parseError, tooLarge, type NodeSetOptions } from './context.js';
import { rangeListInOrder, subRangeIndexes, type SubRange } from './rangeset.js';

export function expandPattern(pattern: string, opts?: NodeSetOptions): string[] {
  const ctx = Ctx.from(opts);
  if (typeof pattern !== 'string') throw parseError(`pattern must be a string, got ${typeof pattern}`);
  if (pattern === '') throw parseError('empty pattern');
  if (pattern.length > MAX_EXPRESSION_LENGTH) throw parseError('pattern too long');
  const texts: string[] = [];
  const groups: SubRange[][] = [];
  let total = 1;
  let i = 0;
  for (;;) {
    const open = pattern.indexOf('[', i);
    const close = pattern.indexOf(']', i);
    if (close >= 0 && (open < 0 || close < open)) {
      throw parseError('illegal closing bracket', pattern.slice(i), pattern);
    }
    if (open < 0) {
      texts.push(pattern.slice(i));
      break;
    }
    texts.push(pattern.slice(i, open));
    const end = pattern.indexOf(']', open + 1);
    if (end < 0) throw parseError('missing bracket', pattern.slice(open), pattern);
    const inner = pattern.slice(open + 1, end);
    if (inner.includes('[')) throw parseError('illegal reopening bracket', pattern.slice(open), pattern);
    let list: { count: number; items: SubRange[] };
    try {
      list = rangeListInOrder(inner);
    } catch (e) {
      if (e instanceof RangeSyntaxError) throw badRange(e, pattern);
      throw e;
    }
    total *= list.count;
    if (total > ctx.limit) throw tooLarge(ctx.limit, total, pattern);
    groups.push(list.items);
    i = end + 1;
  }
  // each group's values, then the product (leftmost outermost)
  const values = groups.map((items) => {
    const out: string[] = [];
    for (const r of items) for (const v of subRangeIndexes(r)) out.push(v);
    return out;
  });
  let results = [texts[0]!];
  for (let g = 0; g < values.length; g++) {
    const next: string[] = [];
    const after = texts[g + 1]!;
    for (const prefix of results) for (const v of values[g]!) next.push(prefix + v + after);
    results = next;
  }
  return results;
}

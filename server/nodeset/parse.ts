/**
 * Nodeset expression parser, a port of clustershell 1.9
 * ParsingEngine._scan_string (same grammar, same error wording).
 *
 *   expr    := operand (op operand)*        evaluated left to right
 *   op      := ","  union | "!" difference | "&" intersection | "^" xor
 *   operand := text with digit runs and bracketed range lists, e.g.
 *              "rack[1-2]node[01-03]-bmc", "n[1-10/3]", "n1.example.com"
 *
 * Digits written right before "[" or right after "]" join the range
 * (n1[0-2] = n[10-12]; n[1-3]0 = n[10-30/10]), as in clustershell.
 * Node groups: `@name`, `@source:name` and group name patterns
 * (`@rack[1-3]`) are expanded through the GroupResolver of the options
 * (their definitions may name other groups; a cycle is an error), and
 * refused without one. Deliberate differences: wildcards (* ?) are
 * refused; whitespace inside a node name is refused
 * (clustershell would make "n1 n2" one node); negative and huge indexes
 * are refused.
 */
import { Ctx, MAX_EXPRESSION_LENGTH, MAX_GROUP_DEPTH, RangeSyntaxError, badRange, clip, parseError, tooLarge } from './context.js';
import { closest } from '../../common/closest.js';
import {
  type Core,
  EMPTY_CORE,
  boxSize,
  checkIndex,
  coreSize,
  difference,
  intersection,
  singleEntry,
  splitName,
  names as coreNames,
  unionAll,
  valueOf,
  xor,
} from './core.js';
import { RangeSet, parseRangeSet } from './rangeset.js';
import { FleetError } from '../../common/errors.js';

type Op = ',' | '!' | '&' | '^';

function isOp(c: string): c is Op {
  return c === ',' || c === '!' || c === '&' || c === '^';
}

function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

const WS = /\s/;

/** next[i] = smallest j >= i where pred(s[j]), or -1. */
function nextIndexTable(s: string, pred: (c: string) => boolean): Int32Array {
  const t = new Int32Array(s.length + 1);
  t[s.length] = -1;
  for (let i = s.length - 1; i >= 0; i--) t[i] = pred(s[i]!) ? i : t[i + 1]!;
  return t;
}

/** Rethrows RangeSyntaxError as clustershell's 'bad range' parse error. */
function withRange<T>(fn: () => T, expression: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeSyntaxError) throw badRange(e, expression);
    throw e;
  }
}

/** clustershell _amend_trailing_digits: "[1-3]0" → "10-30/10". */
function amendTrailing(inner: string, digits: string): string {
  const elems = inner.split(',');
  const bounds = inner.split('-').length + elems.length;
  if (inner.length + bounds * (digits.length + 2) > MAX_EXPRESSION_LENGTH) {
    throw parseError('expression too long');
  }
  return elems
    .map((elem) => elem.split('-').map((b) => b + digits).join('-'))
    .map((s) => (s.includes('-') ? `${s}/1${'0'.repeat(digits.length)}` : s))
    .join(',');
}

/** clustershell _amend_leading_digits: "1[0-2]" → "10-12" (each contiguous piece prefixed). */
function amendLeading(digits: string, inner: string, ctx: Ctx): string {
  const pieces = parseRangeSet(inner, ctx).contiguous();
  if (pieces.length * 2 * (digits.length + 20) > MAX_EXPRESSION_LENGTH) throw parseError('expression too long');
  return pieces
    .map((rs) =>
      rs
        .toString()
        .split('-')
        .map((b) => digits + b)
        .join('-'),
    )
    .join(',');
}

/** Accumulates the left-to-right evaluation; unions are batched (one sort per pattern). */
class Evaluator {
  private core: Core = EMPTY_CORE;
  private size = 0;
  private pending: Core[] = [];
  private pendingSize = 0;

  constructor(
    private readonly ctx: Ctx,
    private readonly expression: string,
  ) {}

  apply(op: Op, operand: Core, operandSize: number): void {
    if (op === ',') {
      this.pending.push(operand);
      this.pendingSize += operandSize;
      if (this.size + this.pendingSize > this.ctx.limit) this.flush();
      return;
    }
    this.flush();
    if (op === '!') this.core = difference(this.core, operand, this.ctx);
    else if (op === '&') this.core = intersection(this.core, operand, this.ctx);
    else this.core = xor(this.core, operand, this.ctx);
    this.size = coreSize(this.core);
    this.check();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.core = unionAll([this.core, ...this.pending], this.ctx);
    this.pending = [];
    this.pendingSize = 0;
    this.size = coreSize(this.core);
    this.check();
  }

  private check(): void {
    if (this.size > this.ctx.limit) throw tooLarge(this.ctx.limit, this.size, this.expression);
  }

  result(): Core {
    this.flush();
    return this.core;
  }
}

/** Builds one operand: text fragments around range sets. */
class OperandBuilder {
  readonly frags: string[] = [''];
  readonly rsets: RangeSet[] = [];

  text(t: string): void {
    this.frags[this.frags.length - 1] += t;
  }

  range(rs: RangeSet): void {
    this.rsets.push(rs);
    this.frags.push('');
  }

  /** Appends a bracket-free piece of a name: its digit runs become single-index dimensions. */
  single(t: string, expression: string): void {
    const { frags, indexes } = splitName(t);
    this.text(frags[0]!);
    for (let i = 0; i < indexes.length; i++) {
      const idx = indexes[i]!;
      withRange(() => checkIndex(idx), expression);
      this.range(RangeSet.ofIndex(idx));
      this.text(frags[i + 1]!);
    }
  }
}

function operandCore(b: OperandBuilder, source: string, ctx: Ctx): { core: Core; size: number } {
  const first = b.frags[0]!;
  if (first.startsWith('@')) {
    throw parseError('node groups are not supported', source);
  }
  for (const f of b.frags) {
    if (f.includes('*') || f.includes('?')) throw parseError('node wildcards are not supported', source);
    if (WS.test(f)) throw parseError("whitespace inside a node name (separate nodes with ',')", source);
  }
  const size = boxSize(b.rsets);
  if (size > ctx.limit) throw tooLarge(ctx.limit, size, source);
  return { core: singleEntry(b.frags, valueOf(b.rsets)), size };
}

/**
 * Parses a nodeset expression into a Core. Whitespace-only input gives the
 * empty set (clustershell: NodeSet("") is empty). Throws FleetError.
 */
export function parseCore(input: string, ctx: Ctx): Core {
  if (input.length > MAX_EXPRESSION_LENGTH) {
    throw parseError(`expression too long (${input.length} characters, max ${MAX_EXPRESSION_LENGTH})`);
  }
  const s = input.trim();
  const n = s.length;
  const nextOp = nextIndexTable(s, isOp);
  const nextOpen = nextIndexTable(s, (c) => c === '[');
  const nextClose = nextIndexTable(s, (c) => c === ']');
  const ev = new Evaluator(ctx, input);
  let nextOpCode: Op = ',';
  let p = 0;
  while (p < n) {
    while (p < n && WS.test(s[p]!)) p++;
    const opCode = nextOpCode;
    if (s[p] === '@' && ctx.groups !== undefined) {
      // a node group: up to the next operator outside brackets
      let e = p;
      let depth = 0;
      while (e < n && !(depth === 0 && isOp(s[e]!))) {
        if (s[e] === '[') depth++;
        else if (s[e] === ']') depth--;
        e++;
      }
      const token = s.slice(p, e).trim();
      if (e < n) {
        nextOpCode = s[e] as Op;
        p = e + 1;
        if (p >= n) throw parseError(`missing nodeset operand with '${nextOpCode}' operator`, token, input);
      } else p = n;
      const g = groupCore(token, ctx, input);
      ev.apply(opCode, g, coreSize(g));
      continue;
    }
    let opIdx = nextOp[p]!;
    let brIdx = nextOpen[p]!;
    const b = new OperandBuilder();
    const tokenStart = p;
    if (brIdx >= 0 && (opIdx > brIdx || opIdx < 0)) {
      // a pattern with brackets: pfx[rng]pfx[rng]...sfx
      let sfx = p;
      while (brIdx >= 0 && (opIdx > brIdx || opIdx < 0)) {
        let pfx = s.slice(sfx, brIdx);
        const close = nextClose[brIdx + 1]!;
        if (close < 0) throw parseError('missing bracket', s.slice(tokenStart), input);
        let rng = s.slice(brIdx + 1, close);
        sfx = close + 1;
        if (pfx.includes(']')) throw parseError('illegal closing bracket', pfx, input);
        if (sfx < n) {
          const braEnd = nextClose[sfx]!;
          const braStart = nextOpen[sfx]!;
          if (braEnd >= 0 && (braStart < 0 || braEnd < braStart)) {
            throw parseError('illegal closing bracket', s.slice(sfx), input);
          }
          let d = sfx;
          while (d < n && isDigitCode(s.charCodeAt(d))) d++;
          if (d > sfx) {
            if (rng.includes('/')) {
              throw parseError('illegal trailing digits after range with steps', s.slice(sfx), input);
            }
            rng = amendTrailing(rng, s.slice(sfx, d));
            sfx = d;
          }
        }
        if (pfx.length > 0) {
          let e = pfx.length;
          while (e > 0 && isDigitCode(pfx.charCodeAt(e - 1))) e--;
          if (e < pfx.length) {
            const digits = pfx.slice(e);
            const inner = rng;
            rng = withRange(() => amendLeading(digits, inner, ctx), input);
            pfx = pfx.slice(0, e);
          }
          if (pfx) b.single(pfx, input);
        }
        brIdx = nextOpen[sfx]!;
        opIdx = nextOp[sfx]!;
        if (sfx < n && s[sfx] === '[') throw parseError('illegal reopening bracket', s.slice(sfx), input);
        const text = rng;
        b.range(withRange(() => parseRangeSet(text, ctx), input));
      }
      opIdx = nextOp[sfx]!;
      let sfxEnd: number;
      if (opIdx < 0) {
        sfxEnd = n;
        p = n;
      } else {
        sfxEnd = opIdx;
        nextOpCode = s[opIdx] as Op;
        p = opIdx + 1;
        if (p >= n) throw parseError(`missing nodeset operand with '${nextOpCode}' operator`, null, input);
      }
      const tail = s.slice(sfx, sfxEnd).trimEnd();
      if (tail) b.single(tail, input);
    } else {
      // a single node name
      let node: string;
      if (opIdx < 0) {
        node = s.slice(p);
        p = n;
      } else {
        node = s.slice(p, opIdx);
        nextOpCode = s[opIdx] as Op;
        p = opIdx + 1;
        if (!node || p >= n) {
          throw parseError(`missing nodeset operand with '${nextOpCode}' operator`, node || s.slice(p), input);
        }
      }
      if (node.includes(']')) throw parseError('illegal closing bracket', node, input);
      b.single(node.trimEnd(), input);
    }
    const source = s.slice(tokenStart, p < n ? p - 1 : n).trim();
    const { core, size } = operandCore(b, source, ctx);
    ev.apply(opCode, core, size);
  }
  return ev.result();
}

/** Group names a `@…` operand designates: `name`, `source:name`, `rack[1-3]` (a pattern of names). */
function groupRefs(token: string, ctx: Ctx, input: string): { source: string | undefined; names: string[] } {
  const body = token.slice(1);
  const colon = body.indexOf(':');
  const bracket = body.indexOf('[');
  const hasSource = colon >= 0 && (bracket < 0 || colon < bracket);
  const source = hasSource ? body.slice(0, colon) : undefined;
  const pattern = hasSource ? body.slice(colon + 1) : body;
  if (pattern === '' || (source !== undefined && !/^[A-Za-z0-9_.-]+$/.test(source))) throw parseError('bad node group', token, input);
  if (!pattern.includes('[')) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(pattern)) throw parseError('bad node group', token, input);
    return { source, names: [pattern] };
  }
  const sub = new Ctx(Math.min(ctx.limit, 10_000));
  const names = [...coreNames(parseCore(pattern, sub))];
  return { source, names };
}

/** Expands one `@group` operand through the resolver; nested references recurse, a cycle or an unknown group is nodeset.invalid. */
function groupCore(token: string, ctx: Ctx, input: string): Core {
  const resolver = ctx.groups!;
  const { source, names } = groupRefs(token, ctx, input);
  const parts: Core[] = [];
  for (const name of names) {
    const key = source === undefined ? name : `${source}:${name}`;
    const hit = ctx.groupMemo.get(key) as Core | undefined;
    if (hit !== undefined) {
      parts.push(hit);
      continue;
    }
    if (ctx.groupStack.includes(key)) {
      throw new FleetError('nodeset.invalid', `group @${key} refers to itself (${[...ctx.groupStack, key].map((k) => `@${k}`).join(' -> ')})`, {
        group: key,
        cycle: [...ctx.groupStack, key],
      });
    }
    if (ctx.groupStack.length >= MAX_GROUP_DEPTH) throw parseError(`node groups nested deeper than ${MAX_GROUP_DEPTH}`, token, input);
    const expr = resolver.resolve(name, source);
    if (expr === undefined) {
      const known = resolver.names(source);
      const guess = closest(name, known);
      const listed = known.length > 20 ? `${known.slice(0, 20).join(', ')}, ...` : known.join(', ');
      throw new FleetError(
        'nodeset.invalid',
        `unknown node group @${clip(key)}${guess !== undefined ? ` (did you mean @${source === undefined ? '' : `${source}:`}${guess}?)` : ''}; ${source === undefined ? 'groups' : `groups of ${source}`}: ${listed || 'none'}`,
        { group: key, ...(guess !== undefined ? { suggestion: guess } : {}) },
      );
    }
    ctx.groupStack.push(key);
    let c: Core;
    try {
      c = parseCore(expr, ctx);
    } finally {
      ctx.groupStack.pop();
    }
    ctx.groupMemo.set(key, c);
    parts.push(c);
  }
  const out = parts.length === 1 ? parts[0]! : unionAll(parts, ctx);
  const size = coreSize(out);
  if (size > ctx.limit) throw tooLarge(ctx.limit, size, token);
  return out;
}

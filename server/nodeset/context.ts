/**
 * Shared limits and error helpers of the nodeset module.
 *
 * Every nodeset value is bounded by a *limit* (the most names it may expand
 * to) and every evaluation by a *work budget*, so that hostile input fails
 * fast with a FleetError instead of exhausting memory or CPU.
 */
import { FleetError } from '../../common/errors.js';

export const DEFAULT_EXPAND_LIMIT = 100_000;

/** Largest index value we accept (clustershell accepts bigger ones; we keep exact integer arithmetic). */
export const MAX_INDEX = Number.MAX_SAFE_INTEGER;

/**
 * Work units one parse or one set operation may spend before giving up
 * (about a second or two): a unit is one run or box visited; handling a
 * single name costs POINT_COST units.
 */
export const WORK_BUDGET = 100_000_000;
export const POINT_COST = 20;

/** Longest expression accepted by the parser. */
export const MAX_EXPRESSION_LENGTH = 4 * 1024 * 1024;

/**
 * Where node groups (`@name`, `@source:name`) come from. `resolve` gives
 * the nodeset expression of one group (it may name other groups), or
 * undefined when there is no such group; `names` lists the groups of a
 * source, for the did-you-mean of an unknown one. Pure lookups: the caller
 * loads whatever it needs (fleet.yaml groups, a groups file, the nodes of a
 * profile) before parsing.
 */
export interface GroupResolver {
  resolve(name: string, source: string | undefined): string | undefined;
  names(source: string | undefined): readonly string[];
  /** The sources besides the default one (e.g. `profile`), for `nodeset -L`. */
  sources?(): readonly string[];
}

export interface NodeSetOptions {
  /** Max names an expansion may produce; default DEFAULT_EXPAND_LIMIT. */
  limit?: number;
  /** Node groups; without it an `@group` operand is refused. */
  groups?: GroupResolver;
}

/** Most nested group references one expression may follow. */
export const MAX_GROUP_DEPTH = 64;

/** Evaluation context: the size limit, a work budget and the group resolver. */
export class Ctx {
  readonly limit: number;
  readonly groups: GroupResolver | undefined;
  /** Groups being expanded, outermost first (cycle detection). */
  readonly groupStack: string[] = [];
  /** Groups already expanded in this evaluation, by `source:name`. */
  readonly groupMemo = new Map<string, unknown>();
  private work = 0;

  constructor(limit: number, groups?: GroupResolver) {
    this.limit = limit;
    this.groups = groups;
  }

  static from(opts: NodeSetOptions | undefined): Ctx {
    return new Ctx(checkLimit(opts?.limit), opts?.groups);
  }

  /** Spends work units; throws nodeset.too_large when the budget is exhausted. */
  spend(units: number): void {
    this.work += units;
    if (this.work > WORK_BUDGET) {
      throw new FleetError('nodeset.too_large', 'nodeset expression is too complex to evaluate (work budget exhausted)', {
        limit: this.limit,
      });
    }
  }

  /** Throws nodeset.too_large when `count` names exceed the limit. */
  checkSize(count: number, what?: string): void {
    if (count > this.limit) throw tooLarge(this.limit, count, what);
  }
}

export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_EXPAND_LIMIT;
  if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) {
    throw new FleetError('usage.invalid', `invalid nodeset limit: ${String(limit)} (must be a number >= 0)`);
  }
  return limit;
}

/** Shortens user text quoted in messages so hostile input cannot produce huge messages. */
export function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}...(${text.length} chars)`;
}

export function tooLarge(limit: number, count: number, what?: string, kind = 'nodeset'): FleetError {
  const subject = what === undefined ? kind : `${kind} "${clip(what)}"`;
  const n = Number.isFinite(count) && count <= Number.MAX_SAFE_INTEGER ? String(count) : 'too many';
  return new FleetError('nodeset.too_large', `${subject} expands to ${n} names, more than the limit of ${limit}`, {
    limit,
    count: Number.isFinite(count) ? count : undefined,
  });
}

/**
 * A clustershell-style parse error. `part` is the faulty fragment (may be
 * empty); the message reads like clustershell's: `msg: "part"`.
 */
export function parseError(msg: string, part?: string | null, expression?: string): FleetError {
  const text = part ? `${msg}: "${clip(part, 200)}"` : msg;
  return new FleetError('nodeset.invalid', `Parse error: ${text}`, {
    reason: text,
    ...(expression === undefined ? {} : { expression: clip(expression, 200) }),
  });
}

/** Error of the range syntax inside brackets, worded like clustershell's RangeSetParseError. */
export class RangeSyntaxError extends Error {
  constructor(
    readonly part: string,
    readonly reason: string,
  ) {
    super(part ? `${reason} : "${clip(part)}"` : reason);
  }
}

/** Wraps a RangeSyntaxError the way clustershell's NodeSetParseRangeError does: bad range: "…". */
export function badRange(e: RangeSyntaxError, expression?: string): FleetError {
  return parseError('bad range', e.message, expression);
}

/** dst.push(...src) without the argument-count limit of spreading huge arrays. */
export function appendAll<T>(dst: T[], src: readonly T[]): void {
  for (const x of src) dst.push(x);
}

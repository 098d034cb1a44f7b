/**
 * The public NodeSet value object.
 */
import { FleetError } from '../../common/errors.js';
import { Ctx, RangeSyntaxError, badRange, parseError, type NodeSetOptions } from './context.js';
import * as core from './core.js';
import { parseCore } from './parse.js';

/** Refuses names that would not parse back to themselves (fromNames input). */
function checkName(name: string, split: core.SplitName): void {
  if (typeof name !== 'string') throw new FleetError('nodeset.invalid', `node name must be a string, got ${typeof name}`);
  if (name === '') throw parseError('empty node name');
  if (/[\s[\],!&^*?]/.test(name) || name.startsWith('@')) {
    throw parseError('invalid character in node name', name);
  }
  try {
    for (const i of split.indexes) core.checkIndex(i);
  } catch (e) {
    if (e instanceof RangeSyntaxError) throw badRange(e);
    throw e;
  }
}

/** An immutable set of node names with clustershell semantics. */
export class NodeSet {
  readonly #core: core.Core;
  readonly #limit: number;

  private constructor(c: core.Core, limit: number) {
    this.#core = c;
    this.#limit = limit;
  }

  /** Parses a full nodeset expression (ranges and the operators , ! & ^). Throws FleetError. */
  static parse(expr: string, opts?: NodeSetOptions): NodeSet {
    const ctx = Ctx.from(opts);
    if (typeof expr !== 'string') throw new FleetError('nodeset.invalid', `nodeset must be a string, got ${typeof expr}`);
    if (expr.trim() === '') throw parseError('empty nodeset');
    return new NodeSet(parseCore(expr, ctx), ctx.limit);
  }

  /** A set of single node names (no range syntax); throws FleetError on names that are not plain node names. */
  static fromNames(names: Iterable<string>, opts?: NodeSetOptions): NodeSet {
    const ctx = Ctx.from(opts);
    return new NodeSet(core.fromNames(names, ctx, checkName), ctx.limit);
  }

  get size(): number {
    return core.coreSize(this.#core);
  }

  /** Names in clustershell order (by pattern, then index), no duplicates. */
  expand(): string[] {
    const out: string[] = [];
    for (const name of core.names(this.#core)) out.push(name);
    return out;
  }

  /** The folded form, e.g. 'valkyrie[01-03,05]'. */
  fold(): string {
    return core.fold(this.#core);
  }

  toString(): string {
    return this.fold();
  }

  has(name: string): boolean {
    return typeof name === 'string' && core.has(this.#core, name);
  }

  union(o: NodeSet): NodeSet {
    return this.#combine(o, core.union);
  }

  difference(o: NodeSet): NodeSet {
    return this.#combine(o, core.difference);
  }

  intersection(o: NodeSet): NodeSet {
    return this.#combine(o, core.intersection);
  }

  xor(o: NodeSet): NodeSet {
    return this.#combine(o, core.xor);
  }

  #combine(o: NodeSet, op: (a: core.Core, b: core.Core, ctx: Ctx) => core.Core): NodeSet {
    if (!(o instanceof NodeSet)) throw new FleetError('nodeset.invalid', 'set operation needs a NodeSet operand');
    const ctx = new Ctx(this.#limit);
    const result = op(this.#core, o.#core, ctx);
    ctx.checkSize(core.coreSize(result));
    return new NodeSet(result, this.#limit);
  }
}

/**
 * Clustershell-compatible nodesets (pure code, no I/O).
 *
 *   NodeSet.parse('rack[1-2]node[01-03],login1!rack2node02').fold()
 *   expandNodeSet('n[1-3]')            → ['n1', 'n2', 'n3']
 *   foldNames(['n1', 'n2', 'n4'])      → 'n[1-2,4]'
 *   expandPattern('10.10.3.[1-3]')     → ['10.10.3.1', '10.10.3.2', '10.10.3.3']
 *   runNodesetCommand(['-f', 'n1', 'n2']) → 'n[1-2]'
 *
 * Semantics follow clustershell 1.9 (see parse.ts for the few deliberate
 * differences). Every value is bounded by a limit (default 100,000 names)
 * checked on range representations before anything is expanded.
 */
import { NodeSet } from './nodeset.js';
import type { NodeSetOptions } from './context.js';

export { DEFAULT_EXPAND_LIMIT } from './context.js';
export type { GroupResolver, NodeSetOptions } from './context.js';
export { NodeSet } from './nodeset.js';
export { expandPattern } from './pattern.js';
export { runNodesetCommand } from './command.js';

/** = NodeSet.parse(expr, opts).expand() */
export function expandNodeSet(expr: string, opts?: NodeSetOptions): string[] {
  return NodeSet.parse(expr, opts).expand();
}

/** Folds single node names, e.g. ['n1', 'n2', 'n4'] → 'n[1-2,4]'. */
export function foldNames(names: Iterable<string>): string {
  return NodeSet.fromNames(names).fold();
}

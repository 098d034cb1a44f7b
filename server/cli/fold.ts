/**
 * Per-node failures folded by reason into nodesets, as clush -b does:
 * `valkyrie[06-40]: not in the store` rather than 35 lines of it.
 */
import { foldNames } from '../nodeset/index.js';

export interface NodeFailure {
  node: string;
  reason: string;
}

/**
 * One line per distinct reason, `NODESET: reason`, the reasons in the order
 * they first appear (results come in nodeset order, so the lines follow it).
 */
export function foldFailures(failures: readonly NodeFailure[]): string[] {
  const byReason = new Map<string, string[]>();
  for (const f of failures) {
    const nodes = byReason.get(f.reason);
    if (nodes) nodes.push(f.node);
    else byReason.set(f.reason, [f.node]);
  }
  return [...byReason].map(([reason, nodes]) => `${foldNames(nodes)}: ${reason}`);
}

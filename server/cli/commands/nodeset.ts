import { runNodesetCommand, type GroupResolver } from '../../nodeset/index.js';
import { Exit } from '../../../common/errors.js';
import type { GroupsResponse } from '../../../common/api/schemas.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

/** Whether the arguments need the server's node groups: an `@group`, or a group option (-l, -L, -s, --groupsources). */
export function needsGroups(args: readonly string[]): boolean {
  if (args.some((a) => a.includes('@'))) return true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--' || !a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      if (/^--(list|list-all|groupsource|groupsources|list-sources)(=|$)/.test(a)) return true;
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      if ('lLs'.includes(a[j]!)) return true;
      if ('xiXSOI'.includes(a[j]!)) {
        if (j === a.length - 1) i++;
        break;
      }
    }
  }
  return false;
}

/** A resolver over the groups the server listed: `@name` by its definition, `@profile:NAME` by its nodes. */
export function resolverOf(res: GroupsResponse): GroupResolver {
  const bySource = new Map<string | undefined, Map<string, string>>();
  for (const g of res.groups) {
    const source = g.source === 'fleet' ? undefined : g.source;
    const name = source === undefined ? g.name : g.name.slice(source.length + 1);
    let m = bySource.get(source);
    if (m === undefined) bySource.set(source, (m = new Map()));
    // A fleet group by its definition (it may name others); any other by its nodes.
    m.set(name, source === undefined ? g.definition : g.nodes);
  }
  const sources = [...bySource.keys()].filter((s): s is string => s !== undefined).sort();
  const of = (s: string | undefined) => bySource.get(s === 'local' ? undefined : s);
  return {
    resolve: (name, source) => of(source)?.get(name),
    names: (source) => [...(of(source)?.keys() ?? [])].sort(),
    sources: () => sources,
  };
}

/**
 * `fleet nodeset -e|-f|-c EXPR...`: same output as clustershell's nodeset.
 * Works offline; node groups (`@name`, `@profile:NAME`, -l, -L) come from
 * the server (GET /api/v1/groups), asked only when the arguments use them.
 */
export async function cmdNodeset(flags: GlobalFlags, args: string[], io: CliIo): Promise<number> {
  let groups: GroupResolver | undefined;
  if (needsGroups(args)) {
    const settings = await resolveClientSettings(flags, io);
    groups = resolverOf(await apiRequest<GroupsResponse>(settings, 'GET', '/api/v1/groups'));
  }
  const out = runNodesetCommand(args, groups ? { groups } : {});
  io.stdout(out + '\n');
  return Exit.OK;
}

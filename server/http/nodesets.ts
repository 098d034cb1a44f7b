/**
 * Nodeset expressions as the API resolves them: clustershell syntax plus
 * node groups (`@name` from fleet.yaml groups: and groups_file, stored with
 * the cluster settings at `fleet apply`; `@profile:NAME` from the nodes in
 * the store). Groups are loaded only for an expression that names one.
 */
import { groupResolver, mentionsGroup } from '../config/groups.js';
import { NodeSet, type GroupResolver } from '../nodeset/index.js';
import type { Store } from '../store/index.js';

/** The resolver of the groups the store knows now. */
export async function storeGroupResolver(store: Store): Promise<GroupResolver> {
  const settings = (await store.settings.getCluster()) as { groups?: Record<string, string> } | null;
  const profiles = new Map<string, string[]>();
  for (const p of await store.profiles.list()) profiles.set(p.name, []);
  for (const n of await store.nodes.list({})) {
    let list = profiles.get(n.profile);
    if (list === undefined) profiles.set(n.profile, (list = []));
    list.push(n.name);
  }
  return groupResolver(settings?.groups ?? {}, profiles);
}

/** Every group the store knows, by the key `@` takes (`name`, `profile:NAME`), with its definition as written and its nodes folded. */
export async function listGroups(store: Store, limit: number): Promise<{ name: string; source: string; definition: string; nodes: string; count: number }[]> {
  const resolver = await storeGroupResolver(store);
  const out: { name: string; source: string; definition: string; nodes: string; count: number }[] = [];
  for (const source of [undefined, ...(resolver.sources?.() ?? [])]) {
    for (const name of resolver.names(source)) {
      const key = source === undefined ? name : `${source}:${name}`;
      const set = NodeSet.parse(`@${key}`, { groups: resolver, limit });
      out.push({ name: key, source: source ?? 'fleet', definition: resolver.resolve(name, source) ?? '', nodes: set.fold(), count: set.size });
    }
  }
  return out;
}

/** Expands a nodeset expression, groups included. Throws FleetError nodeset.invalid / nodeset.too_large. */
export async function expandNodeset(store: Store, expr: string, limit: number): Promise<string[]> {
  if (typeof expr !== 'string' || !mentionsGroup(expr)) return NodeSet.parse(expr, { limit }).expand();
  return NodeSet.parse(expr, { limit, groups: await storeGroupResolver(store) }).expand();
}

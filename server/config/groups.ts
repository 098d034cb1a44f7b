/**
 * Node groups: fleet.yaml `groups:` (name → nodeset, which may name other
 * groups) and `groups_file:` (a clustershell groups file in the flat
 * `name: nodeset` format of /etc/clustershell/groups.d/local.cfg, the file
 * the default `[local]` source of groups.conf reads), plus the `@profile:NAME`
 * source (the nodes of a profile). Pure: the loader reads the groups file
 * (by the path as written, relative to fleet.yaml) and passes its text in.
 *
 *   groups:
 *     compute: "valkyrie[01-32]"
 *     gpu: "@compute&valkyrie[25-32]"
 *     login: "@profile:login,login[1-2]"
 *   groups_file: /etc/clustershell/groups.d/local.cfg
 *
 * Group names share one namespace: a name in both places is an error. The
 * definitions are stored as written (settings key `groups`) and resolved
 * when a nodeset is, so that `@profile:NAME` follows the nodes in the store.
 */
import { isNode, parseDocument, type Node } from 'yaml';
import { FleetError } from '../../common/errors.js';
import { checkFilePath, show } from '../../common/patterns.js';
import { GROUP_NAME, parseFlatGroups } from '../inventory/import-groups.js';
import { foldNames, NodeSet, type GroupResolver } from '../nodeset/index.js';
import type { Fields, Reader } from './reader.js';

/** Group name → nodeset expression as written. */
export type NodeGroups = Record<string, string>;

/** The sources besides the default one: `@profile:NAME`; `@local:NAME` is the default source by clustershell's name. */
export const GROUP_SOURCES = ['profile'] as const;

/**
 * The resolver of `@group` operands: `groups` for `@name` (and `@local:name`),
 * the nodes of each profile for `@profile:NAME`.
 */
export function groupResolver(groups: NodeGroups, profiles: ReadonlyMap<string, readonly string[]>): GroupResolver {
  const names = Object.keys(groups).sort();
  const profileNames = [...profiles.keys()].sort();
  const folded = new Map<string, string>();
  return {
    resolve(name, source) {
      if (source === undefined || source === 'local') return Object.hasOwn(groups, name) ? groups[name] : undefined;
      if (source === 'profile') {
        const nodes = profiles.get(name);
        if (nodes === undefined) return undefined;
        let f = folded.get(name);
        if (f === undefined) folded.set(name, (f = nodes.length === 0 ? '' : foldNames(nodes)));
        return f;
      }
      return undefined;
    },
    names(source) {
      if (source === undefined || source === 'local') return names;
      if (source === 'profile') return profileNames;
      return [];
    },
    sources() {
      return GROUP_SOURCES;
    },
  };
}

/** Whether a nodeset expression names a group (only then does a caller need to load groups). */
export function mentionsGroup(expr: string): boolean {
  return expr.includes('@');
}

/** The groups file a fleet.yaml text names (top-level groups_file), for the loader to read before parseConfig. Lenient, like serialsFilesNamed. */
export function groupsFileNamed(text: string): string[] {
  try {
    const doc = parseDocument(text, { schema: 'core', merge: false, uniqueKeys: false });
    if (doc.errors.length > 0) return [];
    const node = doc.get('groups_file', true);
    const v = isNode(node) ? node.toJS(doc, { maxAliasCount: 1000 }) : undefined;
    return typeof v === 'string' && v !== '' ? [v] : [];
  } catch {
    return [];
  }
}

interface Def {
  expr: string;
  /** Where to report a problem: a fleet.yaml node, or file:line. */
  path: string;
  node: Node | undefined;
  prefix: string;
}

/**
 * `groups:` and `groups_file:` of fleet.yaml. Every group is resolved once
 * against the others and the declared profiles, so that a bad nodeset, an
 * unknown group or a cycle is a config error at the group's line.
 */
export function parseGroupsSection(
  r: Reader,
  top: Fields,
  files: Readonly<Record<string, string>> | undefined,
  profiles: ReadonlyMap<string, readonly string[]>,
  limit: number,
): { groups?: NodeGroups; groupsFile?: string } {
  const defs = new Map<string, Def>();
  const entries = r.map(top.get('groups'), 'groups', top.keyNode('groups'));
  for (const e of entries ?? []) {
    if (!GROUP_NAME.test(e.key)) {
      r.error(e.path, e.keyNode, `group name ${show(e.key)} may only have letters, digits, '_' and '-'`);
      continue;
    }
    const expr = r.string(e.value, e.path, e.keyNode);
    if (expr === undefined) continue;
    defs.set(e.key, { expr, path: e.path, node: e.value, prefix: '' });
  }
  let groupsFile: string | undefined;
  if (top.has('groups_file')) {
    groupsFile = top.string('groups_file', checkFilePath);
    const text = groupsFile === undefined ? undefined : files?.[groupsFile];
    if (groupsFile !== undefined && text === undefined) {
      r.error('groups_file', top.get('groups_file'), `groups_file ${groupsFile} was not read (fleet reads it relative to fleet.yaml)`);
    } else if (groupsFile !== undefined && text !== undefined) {
      try {
        const parsed = parseFlatGroups(text, groupsFile).get('local')!;
        for (const [name, d] of parsed) {
          const prev = defs.get(name);
          if (prev !== undefined) {
            r.error(prev.path, prev.node, `group ${name} is also defined in ${groupsFile}:${d.line}; a group is defined once`);
            continue;
          }
          // As clustershell reads a group's line: whitespace separates nodesets (a union).
          defs.set(name, { expr: d.expr.trim().split(/\s+/).join(','), path: 'groups_file', node: top.get('groups_file'), prefix: `${groupsFile}:${d.line}:${d.col}: ` });
        }
      } catch (e) {
        if (!(e instanceof FleetError)) throw e;
        const problems = (e.details as { problems?: string[] } | undefined)?.problems ?? [e.message];
        for (const p of problems) r.error('groups_file', top.get('groups_file'), p);
      }
    }
  }
  if (defs.size === 0) return groupsFile === undefined ? {} : { groups: {}, groupsFile };
  const groups: NodeGroups = {};
  for (const [name, d] of defs) groups[name] = d.expr;
  const resolver = groupResolver(groups, profiles);
  for (const [name, d] of defs) {
    try {
      NodeSet.parse(`@${name}`, { groups: resolver, limit });
    } catch (e) {
      if (!(e instanceof FleetError)) throw e;
      r.error(d.path, d.node, `${d.prefix}group ${name}: ${e.message}`);
    }
  }
  return { groups, ...(groupsFile !== undefined ? { groupsFile } : {}) };
}

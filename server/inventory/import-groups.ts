/**
 * `fleet import groups`: a clustershell groups file to a fleet.yaml
 * `nodes:` skeleton (names and profiles), for sites whose node list lives in
 * clustershell. Two formats, as clustershell 1.9 ships them:
 *
 *   flat   `group: nodeset` per line, `#` comments: the file the default
 *          `[local]` source of groups.conf reads with sed
 *          (/etc/clustershell/groups.d/local.cfg, /etc/clustershell/groups)
 *   YAML   `source: {group: nodeset | [nodeset, ...]}`: groups.d/*.yaml
 *
 * A group's nodeset may name other groups (`@io,@compute`, `@racks:rack2`,
 * `@rack[1,3]`) and use clustershell's operators (`,` union, `!`
 * difference, `&` intersection, `^` xor, evaluated left to right). Pure:
 * text in, groups or text out.
 */
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node } from 'yaml';
import { FleetError } from '../../common/errors.js';
import { OBJECT_NAME, show } from '../../common/patterns.js';
import { expandNodeSet, NodeSet } from '../nodeset/index.js';

interface GroupDef {
  expr: string;
  line: number;
  col: number;
}

/** source -> group -> its nodeset expression and where it is written. */
export type GroupsFile = Map<string, Map<string, GroupDef>>;

export const GROUP_NAME = /^[0-9A-Za-z_-]+$/;

/** The flat format: one source (named `local`, as in groups.conf). */
export function parseFlatGroups(text: string, file: string): GroupsFile {
  const groups = new Map<string, GroupDef>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    const line = k + 1;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) return;
    const m = /^([^:\s]+):(.*)$/.exec(raw);
    if (!m || !GROUP_NAME.test(m[1]!)) {
      problems.push(`${file}:${line}:1: not a 'group: nodeset' line`);
      return;
    }
    const expr = m[2]!.replace(/\s+#.*$/, '').trim();
    const col = m[1]!.length + 2 + (m[2]!.length - m[2]!.trimStart().length);
    if (groups.has(m[1]!)) problems.push(`${file}:${line}:1: group ${m[1]} also on line ${groups.get(m[1]!)!.line}`);
    else groups.set(m[1]!, { expr, line, col });
  });
  if (problems.length > 0) throw invalid(file, problems);
  return new Map([['local', groups]]);
}

/** The YAML format: a mapping of sources, each a mapping of groups to a nodeset or a list of nodesets. */
export function parseYamlGroups(text: string, file: string): GroupsFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  const where = (n: Node | null | undefined): { line: number; col: number } => (n?.range ? lc.linePos(n.range[0]) : { line: 1, col: 1 });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw invalid(file, [`${file}:${e.linePos?.[0].line ?? 1}:${e.linePos?.[0].col ?? 1}: ${e.message.split('\n')[0]}`]);
  }
  const problems: string[] = [];
  const out: GroupsFile = new Map();
  if (!isMap(doc.contents)) throw invalid(file, [`${file}:1:1: not a mapping of group sources`]);
  for (const s of doc.contents.items) {
    const source = isScalar(s.key) ? String(s.key.value) : '';
    const k = where(s.key as Node);
    if (!GROUP_NAME.test(source) || !isMap(s.value)) {
      problems.push(`${file}:${k.line}:${k.col}: a group source is a name with a mapping of groups`);
      continue;
    }
    const groups = new Map<string, GroupDef>();
    for (const g of s.value.items) {
      const name = isScalar(g.key) ? String(g.key.value) : '';
      const at = where((g.value ?? g.key) as Node);
      const values = isSeq(g.value) ? g.value.items : [g.value];
      if (!GROUP_NAME.test(name) || !values.every((v) => isScalar(v) && (typeof v.value === 'string' || typeof v.value === 'number'))) {
        const kp = where(g.key as Node);
        problems.push(`${file}:${kp.line}:${kp.col}: group ${show(name)}: a nodeset or a list of nodesets`);
        continue;
      }
      groups.set(name, { expr: values.map((v) => String((v as { value: unknown }).value)).join(','), ...at });
    }
    out.set(source, groups);
  }
  if (problems.length > 0) throw invalid(file, problems);
  return out;
}

export function parseGroupsFile(text: string, file: string): GroupsFile {
  // YAML when named so, or when a line is a source with nothing after its colon (a nested mapping follows).
  const yamlLike = /\.ya?ml$/.test(file) || /^[0-9A-Za-z_-]+:\s*(#.*)?$/m.test(text);
  return yamlLike ? parseYamlGroups(text, file) : parseFlatGroups(text, file);
}

/** Every group's node set, references and operators resolved; a bad nodeset, unknown group or cycle names its line and column. */
export function resolveGroups(file: GroupsFile, fileName: string): Map<string, Map<string, NodeSet>> {
  const done = new Map<string, NodeSet>();
  const resolve = (source: string, group: string, stack: string[], from: string): NodeSet => {
    const key = `${source}:${group}`;
    const hit = done.get(key);
    if (hit) return hit;
    const def = file.get(source)?.get(group);
    if (!def) throw new FleetError('config.invalid', `${from}: unknown group @${key}`);
    const here = `${fileName}:${def.line}:${def.col}`;
    if (stack.includes(key)) throw new FleetError('config.invalid', `${here}: group @${key} refers to itself (${[...stack, key].join(' -> ')})`);
    let acc: NodeSet | undefined;
    for (const { op, operand } of split(def.expr, here)) {
      let set: NodeSet;
      if (operand.startsWith('@')) {
        const ref = operand.slice(1);
        const colon = ref.indexOf(':');
        const [src, pattern] = colon >= 0 ? [ref.slice(0, colon), ref.slice(colon + 1)] : [source, ref];
        set = NodeSet.fromNames([]);
        for (const g of expandNodeSet(pattern)) set = set.union(resolve(src, g, [...stack, key], here));
      } else {
        try {
          set = NodeSet.parse(operand);
        } catch (e) {
          throw new FleetError('config.invalid', `${here}: ${show(operand)}: ${(e as Error).message}`);
        }
      }
      acc = acc === undefined ? set : op === ',' ? acc.union(set) : op === '!' ? acc.difference(set) : op === '&' ? acc.intersection(set) : acc.xor(set);
    }
    const result = acc ?? NodeSet.fromNames([]);
    done.set(key, result);
    return result;
  };
  const out = new Map<string, Map<string, NodeSet>>();
  for (const [source, groups] of file) {
    const m = new Map<string, NodeSet>();
    for (const g of groups.keys()) m.set(g, resolve(source, g, [], fileName));
    out.set(source, m);
  }
  return out;
}

/** Operands and the operator before each (the first gets ','), split outside brackets, left to right. */
function split(expr: string, here: string): { op: string; operand: string }[] {
  const out: { op: string; operand: string }[] = [];
  let depth = 0;
  let op = ',';
  let cur = '';
  for (const ch of expr) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (depth === 0 && (ch === ',' || ch === '!' || ch === '&' || ch === '^' || ch === ' ')) {
      if (cur.trim() !== '') out.push({ op, operand: cur.trim() });
      else if (ch !== ' ' && ch !== ',' && out.length > 0) throw new FleetError('config.invalid', `${here}: ${show(expr)}: an operator without a nodeset before it`);
      if (ch !== ' ' || cur.trim() !== '') op = ch === ' ' ? ',' : ch;
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (depth !== 0) throw new FleetError('config.invalid', `${here}: ${show(expr)}: unbalanced brackets`);
  if (cur.trim() !== '') out.push({ op, operand: cur.trim() });
  return out;
}

/**
 * A fleet.yaml `nodes:` skeleton: each group mapped to a profile becomes a
 * nodeset key with that profile. A node in two mapped groups is an error
 * naming both (fleet.yaml declares a node once).
 */
export function groupsFragment(groups: Map<string, Map<string, NodeSet>>, profiles: ReadonlyMap<string, string>, source: string, fileName: string): string {
  const src = groups.get(source);
  if (!src) throw new FleetError('usage.invalid', `${fileName} has no group source ${show(source)} (it has: ${[...groups.keys()].join(', ')})`);
  const owner = new Map<string, string>();
  const lines = [`# generated by fleet import groups from ${fileName} (source ${source}): add ip, mac and bmc, merge into fleet.yaml, run fleet apply`, 'nodes:'];
  for (const [group, profile] of profiles) {
    const set = src.get(group);
    if (!set) throw new FleetError('usage.invalid', `--profile ${group}=${profile}: ${fileName} has no group ${group} in source ${source} (groups: ${[...src.keys()].join(', ')})`);
    if (!OBJECT_NAME.test(profile)) throw new FleetError('usage.invalid', `--profile ${group}=${profile}: not a valid profile name`);
    for (const n of set.expand()) {
      const prev = owner.get(n);
      if (prev !== undefined) throw new FleetError('config.invalid', `node ${n} is in both @${prev} and @${group}, mapped to profiles ${profiles.get(prev)} and ${profile}: map one of them (fleet.yaml declares a node once)`);
      owner.set(n, group);
    }
    if (set.expand().length > 0) lines.push(`  ${JSON.stringify(set.fold())}:    # @${source}:${group}`, `    profile: ${JSON.stringify(profile)}`);
  }
  return lines.join('\n') + '\n';
}

function invalid(file: string, problems: string[]): FleetError {
  return new FleetError('config.invalid', `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}, nothing imported:\n${problems.join('\n')}`, { problems });
}

/**
 * The pure core of `fleet nodeset`: clustershell 1.9's `nodeset` command
 * (ClusterShell/CLI/Nodeset.py) without I/O. Takes the arguments, returns
 * what nodeset prints on stdout (without the trailing newline).
 *
 * Supported: -c/-e/-f, -x/-i/-X (as options and between nodesets),
 * -S/--separator, -O/--output-format, -I/--slice, --split, --contiguous,
 * --autostep (N, N% or auto), -q/-d/-G (accepted, no effect).
 * Node groups (`@name`, `@source:name`) when the options carry a group
 * resolver; -l/-ll/-lll (groups of the default source, or of -s SOURCE, or
 * those holding the given nodes), -L (every source), --groupsources.
 * Refused with usage.invalid: -r, -a, --groupsconf, -R/--rangeset, --axis,
 * --pick, and reading nodesets from standard input ("-" or no nodeset
 * argument).
 */
import { FleetError } from '../../common/errors.js';
import { Ctx, RangeSyntaxError, parseError, tooLarge, type NodeSetOptions } from './context.js';
import * as core from './core.js';
import { parseCore } from './parse.js';
import { parseRangeSet } from './rangeset.js';

const USAGE = 'Usage: nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]';

const HELP = `${USAGE}

Commands:
  -c, --count           show number of nodes in nodeset(s)
  -e, --expand          expand nodeset(s) to separate nodes
  -f, --fold            fold nodeset(s) (or separate nodes) into one nodeset

Operations:
  -x SUB_NODES, --exclude=SUB_NODES     exclude specified nodeset
  -i AND_NODES, --intersection=AND_NODES
                                        calculate nodesets intersection
  -X XOR_NODES, --xor=XOR_NODES         calculate symmetric difference between nodesets

Options:
  --autostep=AUTOSTEP   enable a-b/step style syntax when folding, value is min
                        node count threshold (eg. '4', '50%' or 'auto')
  -S SEPARATOR, --separator=SEPARATOR
                        separator string to use when expanding nodesets (default: ' ')
  -O FORMAT, --output-format=FORMAT
                        output format (default: '%s')
  -I SLICE_RANGESET, --slice=SLICE_RANGESET
                        return sliced off result
  --split=MAXSPLIT      split result into a number of subsets
  --contiguous          split result into contiguous subsets
  -q, --quiet, -d, --debug, -G, --groupbase   accepted, no effect

Groups (from fleet.yaml groups:, its groups_file, and @profile:NAME):
  -l, --list            list groups (-ll: with their nodes, -lll: and counts);
                        with nodesets: the groups that hold any of them
  -L, --list-all        list the groups of every source
  -s GROUPSOURCE, --groupsource=GROUPSOURCE
                        the group source -l lists (e.g. profile)
  --groupsources        list the group sources`;

function usage(msg: string): FleetError {
  return new FleetError('usage.invalid', `nodeset: error: ${msg}`, { usage: USAGE });
}

type Kind = 'flag' | 'count' | 'value' | 'append';

interface OptSpec {
  dest: string;
  kind: Kind;
  short?: string;
  long?: string[];
}

const SPECS: OptSpec[] = [
  { dest: 'count', kind: 'flag', short: '-c', long: ['--count'] },
  { dest: 'expand', kind: 'flag', short: '-e', long: ['--expand'] },
  { dest: 'fold', kind: 'flag', short: '-f', long: ['--fold'] },
  { dest: 'list', kind: 'count', short: '-l', long: ['--list'] },
  { dest: 'listall', kind: 'count', short: '-L', long: ['--list-all'] },
  { dest: 'regroup', kind: 'flag', short: '-r', long: ['--regroup'] },
  { dest: 'groupsources', kind: 'flag', long: ['--list-sources', '--groupsources'] },
  { dest: 'sub_nodes', kind: 'append', short: '-x', long: ['--exclude'] },
  { dest: 'and_nodes', kind: 'append', short: '-i', long: ['--intersection'] },
  { dest: 'xor_nodes', kind: 'append', short: '-X', long: ['--xor'] },
  { dest: 'all', kind: 'flag', short: '-a', long: ['--all'] },
  { dest: 'autostep', kind: 'value', long: ['--autostep'] },
  { dest: 'debug', kind: 'flag', short: '-d', long: ['--debug'] },
  { dest: 'quiet', kind: 'flag', short: '-q', long: ['--quiet'] },
  { dest: 'rangeset', kind: 'flag', short: '-R', long: ['--rangeset'] },
  { dest: 'groupbase', kind: 'flag', short: '-G', long: ['--groupbase'] },
  { dest: 'separator', kind: 'value', short: '-S', long: ['--separator'] },
  { dest: 'output_format', kind: 'value', short: '-O', long: ['--output-format'] },
  { dest: 'slice_rangeset', kind: 'value', short: '-I', long: ['--slice'] },
  { dest: 'maxsplit', kind: 'value', long: ['--split'] },
  { dest: 'contiguous', kind: 'flag', long: ['--contiguous'] },
  { dest: 'axis', kind: 'value', long: ['--axis'] },
  { dest: 'pick', kind: 'value', long: ['--pick'] },
  { dest: 'groupsource', kind: 'value', short: '-s', long: ['--groupsource'] },
  { dest: 'groupsconf', kind: 'value', long: ['--groupsconf'] },
  { dest: 'help', kind: 'flag', short: '-h', long: ['--help'] },
  { dest: 'version', kind: 'flag', long: ['--version'] },
];

interface Parsed {
  flags: Map<string, number>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  args: string[];
}

function matchLong(name: string): OptSpec {
  const exact = SPECS.find((s) => s.long?.includes(name));
  if (exact) return exact;
  const candidates: string[] = [];
  const specs = new Set<OptSpec>();
  for (const s of SPECS) {
    for (const l of s.long ?? []) {
      if (l.startsWith(name)) {
        candidates.push(l);
        specs.add(s);
      }
    }
  }
  if (candidates.length === 0) throw usage(`no such option: ${name}`);
  if (specs.size > 1) throw usage(`ambiguous option: ${name} (${candidates.sort().join(', ')}?)`);
  return [...specs][0]!;
}

/** optparse with interspersed arguments disabled: options stop at the first nodeset. */
function parseOptions(argv: readonly string[]): Parsed {
  const p: Parsed = { flags: new Map(), values: new Map(), lists: new Map(), args: [] };
  const store = (spec: OptSpec, value: string | undefined): void => {
    if (spec.kind === 'flag' || spec.kind === 'count') p.flags.set(spec.dest, (p.flags.get(spec.dest) ?? 0) + 1);
    else if (spec.kind === 'value') p.values.set(spec.dest, value!);
    else p.lists.set(spec.dest, [...(p.lists.get(spec.dest) ?? []), value!]);
  };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (typeof a !== 'string') throw usage('arguments must be strings');
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(0, eq) : a;
      const spec = matchLong(name);
      const label = spec.long?.find((l) => l.startsWith(name)) ?? name;
      if (spec.kind === 'value' || spec.kind === 'append') {
        let value: string;
        if (eq >= 0) value = a.slice(eq + 1);
        else if (i + 1 < argv.length) value = argv[++i]!;
        else throw usage(`${label} option requires 1 argument`);
        store(spec, value);
      } else {
        if (eq >= 0) throw usage(`${label} option does not take a value`);
        store(spec, undefined);
      }
      i++;
      continue;
    }
    if (a.startsWith('-') && a !== '-') {
      for (let j = 1; j < a.length; j++) {
        const opt = `-${a[j]}`;
        const spec = SPECS.find((s) => s.short === opt);
        if (!spec) throw usage(`no such option: ${opt}`);
        if (spec.kind === 'value' || spec.kind === 'append') {
          let value: string;
          if (j + 1 < a.length) value = a.slice(j + 1);
          else if (i + 1 < argv.length) value = argv[++i]!;
          else throw usage(`${opt} option requires 1 argument`);
          store(spec, value);
          break;
        }
        store(spec, undefined);
      }
      i++;
      continue;
    }
    break;
  }
  p.args = argv.slice(i);
  return p;
}

/** Python str.splitlines(). */
function splitLines(s: string): string[] {
  if (s === '') return [];
  const parts = s.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** Evaluates a Python '''...''' string literal body (the -S separator). */
function pyUnescape(s: string): string {
  if (s.includes("'''") || /(^|[^\\])(\\\\)*\\$/.test(s) || s.endsWith("'")) throw usage('invalid separator');
  const simple: Record<string, string> = {
    '\\': '\\',
    "'": "'",
    '"': '"',
    a: '\x07',
    b: '\b',
    f: '\f',
    n: '\n',
    r: '\r',
    t: '\t',
    v: '\v',
    '\n': '',
  };
  return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|[\s\S])/g, (m, e: string) => {
    if (e in simple) return simple[e]!;
    if (e[0] === 'x' || e[0] === 'u' || e[0] === 'U') {
      if (e.length === 1) throw usage('invalid separator');
      return String.fromCodePoint(parseInt(e.slice(1), 16));
    }
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return m;
  });
}

/** Python "%s"-style formatting with a single %s (and %% escapes). */
function makeFormatter(fmt: string): (s: string) => string {
  if (fmt === '%s') return (s) => s;
  const pieces = fmt.split('%%');
  const count = pieces.reduce((n, piece) => n + (piece.match(/%s/g)?.length ?? 0), 0);
  const other = pieces.some((piece) => /%(?!s)/.test(piece));
  if (count !== 1 || other) throw usage(`unsupported output format: ${JSON.stringify(fmt)} (use one %s, and %% for a literal %)`);
  return (s) => pieces.map((piece) => piece.replace('%s', () => s)).join('%');
}

type Autostep = { kind: 'count'; n: number } | { kind: 'percent'; f: number } | { kind: 'auto' };

function parseAutostep(v: string): Autostep {
  const t = v.trim();
  if (v.includes('%')) {
    const num = v.slice(0, -1).trim();
    if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(num)) return { kind: 'percent', f: Number(num) / 100 };
  } else if (/^[+-]?\d+$/.test(t)) {
    return { kind: 'count', n: Number(t) };
  }
  if (v === 'auto') return { kind: 'auto' };
  throw usage(`option --autostep: invalid value: '${v}', should be node count, node percentage or 'auto'`);
}

function parseIntOption(name: string, v: string): number {
  const t = v.trim();
  if (!/^[+-]?\d+$/.test(t)) throw usage(`option ${name}: invalid integer value: '${v}'`);
  return Number(t);
}

/** clustershell NodeSet.fromlist(arg.splitlines()): the union of each line parsed as a nodeset. */
function parseArg(arg: string, ctx: Ctx): core.Core {
  if (arg === '-') throw usage('reading nodesets from standard input is not supported');
  let acc: core.Core = core.EMPTY_CORE;
  for (const line of splitLines(arg)) {
    acc = core.union(acc, parseCore(line, ctx), ctx);
    checkSize(acc, ctx);
  }
  return acc;
}

function checkSize(c: core.Core, ctx: Ctx): void {
  const n = core.coreSize(c);
  if (n > ctx.limit) throw tooLarge(ctx.limit, n);
}

/**
 * Runs `nodeset ARGS` and returns its stdout (no trailing newline).
 * Throws FleetError: nodeset.invalid / nodeset.too_large for nodesets,
 * usage.invalid for bad options.
 */
export function runNodesetCommand(args: string[], opts?: NodeSetOptions): string {
  const ctx = Ctx.from(opts);
  if (!Array.isArray(args)) throw usage('arguments must be an array of strings');
  const o = parseOptions(args);
  const flag = (d: string): number => o.flags.get(d) ?? 0;
  const list = (d: string): string[] => o.lists.get(d) ?? [];

  if (flag('help')) return HELP;
  if (flag('version')) return 'nodeset 1.9.1 (fleet)';

  const cmdcount =
    Math.min(flag('count'), 1) +
    Math.min(flag('expand'), 1) +
    Math.min(flag('fold'), 1) +
    Math.min(flag('list'), 1) +
    Math.min(flag('listall'), 1) +
    Math.min(flag('regroup'), 1) +
    Math.min(flag('groupsources'), 1);
  if (cmdcount === 0) throw usage('No command specified.');
  if (cmdcount > 1) throw usage('Multiple commands not allowed.');
  if (flag('regroup') || flag('all')) throw usage('-r/--regroup and -a/--all are not supported');
  if (o.values.has('groupsconf')) throw usage('--groupsconf is not supported (fleet reads groups from fleet.yaml groups: and groups_file)');
  if (flag('list') || flag('listall') || flag('groupsources') || o.values.has('groupsource')) {
    if (!opts?.groups) throw usage('node groups are not available here');
    if (flag('groupsources')) return ['(default)', ...(opts.groups.sources?.() ?? [])].join('\n');
    if (!flag('list') && !flag('listall')) throw usage('-s/--groupsource goes with -l');
    const sourceOpt = o.values.get('groupsource');
    const sources: (string | undefined)[] = flag('listall') ? [undefined, ...(opts.groups.sources?.() ?? [])] : [sourceOpt];
    const filter = o.args.length > 0 ? o.args.map((a) => parseArg(a, ctx)).reduce((a, b) => core.union(a, b, ctx)) : undefined;
    const level = Math.max(flag('list'), flag('listall'));
    const lines: string[] = [];
    for (const src of sources) {
      for (const name of opts.groups.names(src)) {
        const label = `@${src === undefined ? '' : `${src}:`}${name}`;
        let members: core.Core | undefined;
        if (level > 1 || filter !== undefined) members = parseCore(label, new Ctx(ctx.limit, opts.groups));
        if (filter !== undefined && core.coreSize(core.intersection(members!, filter, ctx)) === 0) continue;
        if (level === 1) lines.push(label);
        else if (level === 2) lines.push(`${label} ${core.fold(members!)}`);
        else lines.push(`${label} ${core.fold(members!)} ${core.coreSize(members!)}`);
      }
    }
    return lines.join('\n');
  }
  if (flag('rangeset')) throw usage('-R/--rangeset is not supported');
  if (o.values.has('pick')) throw usage('--pick is not supported');
  if (o.values.has('axis')) {
    if (!flag('fold')) throw usage('--axis option is only supported when folding nodeset');
    throw usage('--axis is not supported');
  }
  const maxsplitText = o.values.get('maxsplit');
  let maxsplit = maxsplitText === undefined ? undefined : parseIntOption('--split', maxsplitText);
  const contiguous = flag('contiguous') > 0;
  if (maxsplit !== undefined && contiguous) throw usage('incompatible splitting options (split, contiguous)');
  maxsplit ??= 1;
  const autostepText = o.values.get('autostep');
  const autostepOpt = autostepText === undefined ? undefined : parseAutostep(autostepText);
  const separator = pyUnescape(o.values.get('separator') ?? ' ');
  const fmt = makeFormatter(o.values.get('output_format') ?? '%s');

  if (o.args.length === 0) throw usage('no nodeset given (reading nodesets from standard input is not supported)');

  // options -i, -x, -X given before the first nodeset apply to the (empty) initial set
  let xset: core.Core = core.EMPTY_CORE;
  for (const n of list('and_nodes')) xset = core.intersection(xset, parseArg(n, ctx), ctx);
  for (const n of list('sub_nodes')) xset = core.difference(xset, parseArg(n, ctx), ctx);
  for (const n of list('xor_nodes')) xset = core.xor(xset, parseArg(n, ctx), ctx);

  const rest = o.args.slice();
  while (rest.length > 0) {
    const arg = rest.shift()!;
    const op =
      arg === '-i' || arg === '--intersection'
        ? core.intersection
        : arg === '-x' || arg === '--exclude'
          ? core.difference
          : arg === '-X' || arg === '--xor'
            ? core.xor
            : null;
    if (op !== null) {
      const val = rest.shift();
      if (val === undefined) throw usage(`${arg} needs a nodeset argument`);
      xset = op(xset, parseArg(val, ctx), ctx);
    } else {
      xset = core.union(xset, parseArg(arg, ctx), ctx);
    }
    checkSize(xset, ctx);
  }

  const sliceText = o.values.get('slice_rangeset');
  if (sliceText !== undefined) {
    let positions;
    try {
      positions = parseRangeSet(sliceText, ctx);
    } catch (e) {
      if (e instanceof RangeSyntaxError) throw parseError(e.message);
      throw e;
    }
    const pieces = positions.slices().map(([start, stop]) => core.sliceCore(xset, start, stop));
    xset = pieces.length === 0 ? core.EMPTY_CORE : core.unionAll(pieces, ctx);
  }

  const size = core.coreSize(xset);
  let autostep: number | undefined;
  if (autostepOpt?.kind === 'count') autostep = autostepOpt.n;
  else if (autostepOpt?.kind === 'auto') autostep = Math.max(3, size);
  else if (autostepOpt?.kind === 'percent') autostep = Math.ceil(size * autostepOpt.f);

  let show: (c: core.Core) => string;
  if (flag('expand')) {
    show = (c) => Array.from(core.names(c), fmt).join(separator);
  } else if (flag('fold')) {
    if (o.values.has('output_format') && o.values.get('output_format') !== '%s') {
      // clustershell folds the formatted names (NodeSet._fromlist1)
      xset = core.fromNames(Array.from(core.names(xset), fmt), new Ctx(ctx.limit), () => undefined);
    }
    show = (c) => core.fold(c, autostep);
  } else {
    show = (c) => fmt(String(core.coreSize(c)));
  }

  if (core.coreSize(xset) === 0 || (maxsplit <= 1 && !contiguous)) return show(xset);
  let subsets: core.Core[];
  if (contiguous) {
    subsets = core.contiguous(xset);
  } else {
    const total = core.coreSize(xset);
    const sliceSize = Math.floor(total / maxsplit);
    const left = total % maxsplit;
    subsets = [];
    let begin = 0;
    for (let k = 0; k < Math.min(maxsplit, total); k++) {
      const length = sliceSize + (k < left ? 1 : 0);
      subsets.push(core.sliceCore(xset, begin, begin + length));
      begin += length;
    }
  }
  return subsets.map(show).join('\n');
}

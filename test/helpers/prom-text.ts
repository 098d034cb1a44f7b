/**
 * A strict parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for tests:
 * anything Prometheus would refuse, or that breaks the format's rules, throws
 * with the line number. Stricter than Prometheus where fleet wants more:
 * every family has exactly one HELP and one TYPE, both before its samples.
 *
 * Checked: line endings (\n, a final newline), metric and label names, label
 * value escapes (\\, \", \n only), duplicate labels, float values, optional
 * integer timestamps, samples of a family contiguous, no duplicate series,
 * counters ≥ 0, histograms (per label set: `le` buckets strictly increasing,
 * cumulative counts non-decreasing, a `+Inf` bucket equal to `_count`, a
 * `_sum`), summaries (`quantile` in [0, 1], `_sum` and `_count`).
 */

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

export interface PromFamily {
  name: string;
  type: PromType;
  help: string;
  samples: PromSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export class PromParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

/** A float as Prometheus reads one (Go's strconv.ParseFloat: NaN and Inf in any case, Infinity too). */
function parseValue(s: string, line: number): number {
  const l = s.toLowerCase();
  if (l === '+inf' || l === 'inf' || l === '+infinity' || l === 'infinity') return Infinity;
  if (l === '-inf' || l === '-infinity') return -Infinity;
  if (l === 'nan') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new PromParseError(line, `not a float: ${JSON.stringify(s)}`);
  return Number(s);
}

/** The family a sample name belongs to, given the declared types. */
function familyOf(name: string, types: ReadonlyMap<string, PromType>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = types.get(base);
      if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return base;
    }
  }
  return name;
}

/** Parses `{a="x",b="y"}` starting at text[i] === '{'; returns the labels and the index after '}'. */
function parseLabels(text: string, start: number, line: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 };
    const nameMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (!nameMatch) throw new PromParseError(line, `bad label name at ${JSON.stringify(text.slice(i, i + 20))}`);
    const name = nameMatch[0];
    if (name.startsWith('__')) throw new PromParseError(line, `reserved label name ${name}`);
    if (Object.hasOwn(labels, name)) throw new PromParseError(line, `duplicate label ${name}`);
    i += name.length;
    if (text[i] !== '=' || text[i + 1] !== '"') throw new PromParseError(line, `expected ="…" after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new PromParseError(line, `unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new PromParseError(line, `bad escape \\${e ?? ''} in label ${name}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++;
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] !== '}') throw new PromParseError(line, `expected , or } after label ${name}`);
  }
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;
}

function unescapeHelp(s: string, line: number): string {
  return s.replace(/\\(.?)/g, (_m, e: string) => {
    if (e === '\\') return '\\';
    if (e === 'n') return '\n';
    throw new PromParseError(line, `bad escape \\${e} in HELP`);
  });
}

export function parsePromText(text: string): Map<string, PromFamily> {
  if (text.includes('\r')) throw new PromParseError(0, 'carriage return in the exposition');
  if (text.length > 0 && !text.endsWith('\n')) throw new PromParseError(0, 'the last line does not end with a newline');
  const lines = text.split('\n').slice(0, -1);
  const families = new Map<string, PromFamily>();
  const types = new Map<string, PromType>();
  const helps = new Map<string, string>();
  const seen = new Set<string>();
  const closed = new Set<string>();
  let current: string | undefined;

  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (!m) return; // a comment
      const [, what, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) throw new PromParseError(line, `bad metric name ${JSON.stringify(name)}`);
      if (families.get(name)?.samples.length) throw new PromParseError(line, `${what} of ${name} after its samples`);
      if (what === 'HELP') {
        if (helps.has(name)) throw new PromParseError(line, `second HELP for ${name}`);
        helps.set(name, unescapeHelp(rest ?? '', line));
      } else {
        const t = (rest ?? '').trim();
        if (!TYPES.has(t)) throw new PromParseError(line, `unknown type ${JSON.stringify(t)} for ${name}`);
        if (types.has(name)) throw new PromParseError(line, `second TYPE for ${name}`);
        types.set(name, t as PromType);
      }
      if (!families.has(name)) families.set(name, { name, type: 'untyped', help: '', samples: [] });
      const f = families.get(name)!;
      f.type = types.get(name) ?? 'untyped';
      f.help = helps.get(name) ?? '';
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nameMatch) throw new PromParseError(line, `bad sample line ${JSON.stringify(raw.slice(0, 60))}`);
    const name = nameMatch[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (raw[i] === '{') ({ labels, end: i } = parseLabels(raw, i, line));
    const rest = raw.slice(i);
    const vm = /^ +(\S+)(?: +(-?\d+))?$/.exec(rest);
    if (!vm) throw new PromParseError(line, `expected a value after ${name}: ${JSON.stringify(rest.slice(0, 40))}`);
    const value = parseValue(vm[1]!, line);
    const family = familyOf(name, types);
    if (!families.has(family)) families.set(family, { name: family, type: 'untyped', help: '', samples: [] });
    if (current !== family) {
      if (closed.has(family)) throw new PromParseError(line, `samples of ${family} are not contiguous`);
      if (current !== undefined) closed.add(current);
      current = family;
    }
    const key = seriesKey(name, labels);
    if (seen.has(key)) throw new PromParseError(line, `duplicate series ${key}`);
    seen.add(key);
    families.get(family)!.samples.push({ name, labels, value, ...(vm[2] !== undefined ? { timestamp: Number(vm[2]) } : {}) });
  });

  for (const f of families.values()) {
    if (!helps.has(f.name)) throw new PromParseError(0, `${f.name} has no HELP`);
    if (!types.has(f.name)) throw new PromParseError(0, `${f.name} has no TYPE`);
    checkFamily(f);
  }
  return families;
}

function checkFamily(f: PromFamily): void {
  const bad = (msg: string): never => {
    throw new PromParseError(0, `${f.name}: ${msg}`);
  };
  if (f.type === 'counter') {
    for (const s of f.samples) {
      if (s.name !== f.name) bad(`counter sample named ${s.name}`);
      if (!(s.value >= 0)) bad(`counter value ${s.value}`);
    }
  }
  if (f.type === 'gauge' || f.type === 'untyped') for (const s of f.samples) if (s.name !== f.name) bad(`sample named ${s.name}`);
  if (f.type === 'histogram') {
    const groups = new Map<string, { buckets: { le: number; value: number }[]; sum?: number; count?: number }>();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const key = seriesKey('', rest);
      const g = groups.get(key) ?? { buckets: [] };
      groups.set(key, g);
      if (s.name === `${f.name}_bucket`) {
        if (le === undefined) bad('bucket without le');
        g.buckets.push({ le: parseValue(le!, 0), value: s.value });
      } else if (s.name === `${f.name}_sum`) {
        if (le !== undefined) bad('_sum with le');
        g.sum = s.value;
      } else if (s.name === `${f.name}_count`) {
        if (le !== undefined) bad('_count with le');
        g.count = s.value;
      } else bad(`sample named ${s.name}`);
    }
    for (const [key, g] of groups) {
      if (g.count === undefined || g.sum === undefined) bad(`${key} lacks _sum or _count`);
      if (g.buckets.length === 0) bad(`${key} has no bucket`);
      for (let i = 1; i < g.buckets.length; i++) {
        if (!(g.buckets[i]!.le > g.buckets[i - 1]!.le)) bad(`${key}: le not increasing at ${g.buckets[i]!.le}`);
        if (g.buckets[i]!.value < g.buckets[i - 1]!.value) bad(`${key}: bucket counts decrease at le=${g.buckets[i]!.le}`);
      }
      const last = g.buckets.at(-1)!;
      if (last.le !== Infinity) bad(`${key} has no +Inf bucket`);
      if (last.value !== g.count) bad(`${key}: +Inf bucket ${last.value} ≠ _count ${g.count}`);
    }
  }
  if (f.type === 'summary') {
    for (const s of f.samples) {
      if (s.name === f.name) {
        const q = s.labels['quantile'];
        if (q === undefined) bad('summary sample without quantile');
        const v = parseValue(q!, 0);
        if (!(v >= 0 && v <= 1)) bad(`quantile ${q}`);
      } else if (s.name !== `${f.name}_sum` && s.name !== `${f.name}_count`) bad(`sample named ${s.name}`);
    }
  }
}

/** The value of one series (labels matched exactly); undefined when absent. */
export function valueOf(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = [...families.values()].find((f) => f.samples.some((s) => s.name === name));
  const want = seriesKey(name, labels);
  return family?.samples.find((s) => seriesKey(s.name, s.labels) === want)?.value;
}

/** The sum of every series of `name` whose labels include `match`. */
export function sumOf(families: Map<string, PromFamily>, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

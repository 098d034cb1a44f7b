/**
 * A small typed walker over a parsed YAML document that records every
 * problem with its path and position instead of stopping at the first.
 *
 * Readers return `undefined` after recording an issue, so callers simply skip
 * what could not be read and go on; cross-checks run only on what was valid.
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Alias, type Document, type LineCounter, type Node, type YAMLMap } from 'yaml';
import type { ConfigIssue } from './issues.js';
import { show } from '../../common/patterns.js';
import { closest } from '../../common/closest.js';

/**
 * Most alias dereferences one document may make. Past it the document is
 * refused (an alias bomb, or a file that should use nodeset keys instead of
 * one alias per node).
 */
export const MAX_ALIAS_RESOLUTIONS = 10_000;

/**
 * Most mapping entries and list items the reader may walk beyond the
 * document's own node count. Aliases and `<<` merges let a small file make the
 * reader walk the same large mapping thousands of times; this bounds that.
 */
export const MAX_ALIAS_EXPANSION = 250_000;

/** Thrown by the Reader when aliases expand past a bound: parseConfig turns it into config.invalid with this one issue. */
export class AliasBombError extends Error {
  constructor(readonly issue: ConfigIssue) {
    super(issue.message);
  }
}

/** What one pass over a parsed document learns (see indexDocument). */
export interface DocIndex {
  /** Every alias with the node it refers to (undefined: no anchor of that name before it). */
  aliasTargets: Map<Alias, Node | undefined>;
  /** Nodes in the document (scalars, collections, aliases). */
  nodeCount: number;
  /** Keys repeated inside one mapping, in document order. */
  duplicateKeys: Node[];
}

/**
 * One visit of the document: alias targets, node count and repeated keys.
 *
 * yaml's own Alias.resolve(doc) walks the whole document on every call, so a
 * file with n aliases costs n × document size (20,000 aliases took 24 s); and
 * its uniqueKeys check compares each key with every earlier key of its
 * mapping (a 20,000-node `nodes:` mapping took 9 s). This pass does both in
 * one linear walk, with yaml's semantics: an alias refers to the last node
 * anchored with its name before it, in document order; two keys are equal
 * when they are scalars of equal value.
 */
export function indexDocument(doc: Document): DocIndex {
  const aliasTargets = new Map<Alias, Node | undefined>();
  const anchors = new Map<string, Node>();
  const duplicateKeys: Node[] = [];
  let nodeCount = 0;
  visit(doc, {
    Node: (_key, node) => {
      nodeCount++;
      if (isAlias(node)) {
        aliasTargets.set(node, anchors.get(node.source));
        return;
      }
      if (node.anchor) anchors.set(node.anchor, node);
      if (isMap(node)) {
        const seen = new Set<unknown>();
        for (const pair of node.items) {
          if (!isScalar(pair.key)) continue;
          if (seen.has(pair.key.value)) duplicateKeys.push(pair.key);
          else seen.add(pair.key.value);
        }
      }
    },
  });
  return { aliasTargets, nodeCount, duplicateKeys };
}

export interface Entry {
  key: string;
  keyNode: Node;
  /** The value, aliases resolved; undefined when the value is empty (null). */
  value: Node | undefined;
  /** Path of the value. */
  path: string;
}

/** Appends a key to a path: a.b, or a["odd key"] when the key has characters a reader could misread. */
export function joinPath(path: string, key: string): string {
  if (/^[A-Za-z0-9_\-[\],]+$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

export function indexPath(path: string, i: number): string {
  return `${path}[${i}]`;
}

export { closest };

export class Reader {
  readonly issues: ConfigIssue[] = [];
  private aliasCount = 0;
  /** Entries and items walked so far (see MAX_ALIAS_EXPANSION). */
  private walked = 0;
  private readonly index: DocIndex;

  constructor(
    doc: Document,
    private readonly lc: LineCounter,
  ) {
    this.index = indexDocument(doc);
  }

  /** Keys repeated inside one mapping (parseConfig reports them as YAML syntax errors). */
  get duplicateKeys(): readonly Node[] {
    return this.index.duplicateKeys;
  }

  /** Counts `n` walked entries; throws AliasBombError once aliases have multiplied the walk past the bound. */
  private walk(n: number, path: string, at: Node): void {
    this.walked += n;
    const bound = this.index.nodeCount + MAX_ALIAS_EXPANSION;
    if (this.walked > bound) {
      throw this.bomb(path, at, `aliases and merge keys expand this document past ${bound} entries (the file has ${this.index.nodeCount} nodes): refusing it`);
    }
  }

  private bomb(path: string, at: Node, message: string): AliasBombError {
    const offset = at.range?.[0];
    return new AliasBombError(offset === undefined ? { path, message } : { path, ...this.posOf(offset), message });
  }

  /** Position (1-based) of a source offset. */
  posOf(offset: number): { line: number; column: number } {
    const p = this.lc.linePos(offset);
    return { line: p.line, column: p.col };
  }

  error(path: string, at: Node | undefined, message: string): void {
    const offset = at?.range?.[0];
    this.issues.push(offset === undefined ? { path, message } : { path, ...this.posOf(offset), message });
  }

  /** Follows aliases; undefined for a null scalar or an unresolvable alias. */
  resolve(node: unknown, path: string): Node | undefined {
    let n = node;
    let hops = 0;
    while (isAlias(n)) {
      if (++this.aliasCount > MAX_ALIAS_RESOLUTIONS) {
        throw this.bomb(path, n, `too many alias references (more than ${MAX_ALIAS_RESOLUTIONS}): refusing the document (declare many nodes with one nodeset key, e.g. n[001-500], rather than one alias each)`);
      }
      const target = this.index.aliasTargets.get(n);
      if (target === undefined || ++hops > 100) {
        this.error(path, n, `alias *${n.source} cannot be resolved`);
        return undefined;
      }
      n = target;
    }
    if (isScalar(n) && n.value === null) return undefined;
    return (n as Node | undefined) ?? undefined;
  }

  describe(node: Node | undefined): string {
    if (node === undefined) return 'nothing';
    if (isMap(node)) return 'a mapping';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string') return 'a string';
      if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
      if (typeof v === 'boolean') return 'a boolean';
      if (v === null) return 'nothing';
    }
    return 'an unsupported value';
  }

  private typeError(path: string, node: Node | undefined, expected: string, hint = ''): void {
    this.error(path, node, `expected ${expected}, got ${this.describe(node)}${hint}`);
  }

  /** Entries of a mapping in order, with `<<` merge keys applied (explicit keys win). */
  private entries(map: YAMLMap, path: string, depth = 0): Entry[] {
    const out: Entry[] = [];
    const merged: Entry[] = [];
    this.walk(map.items.length, path, map);
    for (const pair of map.items) {
      const keyNode = pair.key as Node;
      const keyValue = isScalar(keyNode) ? keyNode.value : undefined;
      const isMerge = keyValue === '<<' || (typeof keyValue === 'symbol' && keyValue.description === '<<');
      if (isMerge && depth < 10) {
        const v = this.resolve(pair.value, path);
        const sources = isSeq(v) ? v.items.map((it) => this.resolve(it, path)) : [v];
        for (const s of sources) {
          if (isMap(s)) merged.push(...this.entries(s, path, depth + 1));
          else this.typeError(path, s ?? keyNode, 'a mapping (or list of mappings) to merge with <<');
        }
        continue;
      }
      if (!isScalar(keyNode) || keyValue === null || typeof keyValue === 'object' || typeof keyValue === 'symbol') {
        this.error(path, keyNode, 'keys must be plain strings');
        continue;
      }
      const key = String(keyValue);
      const vpath = joinPath(path, key);
      out.push({ key, keyNode, value: this.resolve(pair.value, vpath), path: vpath });
    }
    const seen = new Set(out.map((e) => e.key));
    for (const e of merged) {
      if (!seen.has(e.key)) {
        seen.add(e.key);
        out.push(e);
      }
    }
    return out;
  }

  /**
   * A mapping's entries, or undefined (with an issue) when `node` is not a
   * mapping. An absent value gives undefined silently: whoever required it
   * has reported it missing.
   */
  map(node: Node | undefined, path: string, at?: Node): Entry[] | undefined {
    if (node === undefined) return undefined;
    if (!isMap(node)) {
      this.typeError(path, node ?? at, 'a mapping');
      return undefined;
    }
    return this.entries(node, path);
  }

  /**
   * A mapping with a fixed set of keys: unknown keys (with a did-you-mean) and
   * missing required keys are reported. `at` positions missing-key issues.
   */
  fields(node: Node | undefined, path: string, known: readonly string[], required: readonly string[] = [], at?: Node, opts: { extensions?: boolean } = {}): Fields | undefined {
    const entries = this.map(node, path, at);
    if (!entries) return undefined;
    const byKey = new Map<string, Entry>();
    const suggested = new Set<string>();
    for (const e of entries) {
      if (opts.extensions && e.key.startsWith('x-')) continue;
      if (!known.includes(e.key)) {
        const guess = closest(e.key, known);
        if (guess) suggested.add(guess);
        this.error(
          e.path,
          e.keyNode,
          guess ? `unknown key '${show(e.key, 40)}' (did you mean '${guess}'?)` : `unknown key '${show(e.key, 40)}'; expected one of: ${known.join(', ')}`,
        );
        continue;
      }
      byKey.set(e.key, e);
    }
    const f = new Fields(this, path, node, byKey, at);
    for (const k of required) {
      // A misspelt required key is one mistake: the unknown-key issue already names it.
      if (byKey.get(k)?.value === undefined && !(suggested.has(k) && !byKey.has(k))) f.missing(k);
    }
    return f;
  }

  // ------------------------------------------------------------ scalars

  string(node: Node | undefined, path: string, at?: Node): string | undefined {
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    const hint = isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean') ? ' (quote it to make it a string)' : '';
    this.typeError(path, node ?? at, 'a string', hint);
    return undefined;
  }

  bool(node: Node | undefined, path: string, at?: Node): boolean | undefined {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.typeError(path, node ?? at, 'true or false');
    return undefined;
  }

  int(node: Node | undefined, path: string, at?: Node): number | undefined {
    if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value)) return node.value;
    this.typeError(path, node ?? at, 'an integer');
    return undefined;
  }

  /** A list's items (aliases resolved; empty items reported and left out), or undefined with an issue. */
  list(node: Node | undefined, path: string, at?: Node): { node: Node; path: string }[] | undefined {
    if (!isSeq(node)) {
      this.typeError(path, node ?? at, 'a list');
      return undefined;
    }
    const out: { node: Node; path: string }[] = [];
    this.walk(node.items.length, path, node);
    node.items.forEach((it, i) => {
      const p = indexPath(path, i);
      const v = this.resolve(it, p);
      if (v === undefined) this.error(p, (it as Node | null) ?? node, 'empty list item');
      else out.push({ node: v, path: p });
    });
    return out;
  }

  /** A list of strings, each passed through `check` (returns a problem or undefined). Invalid items are dropped. */
  stringList(node: Node | undefined, path: string, check?: (s: string) => string | undefined, at?: Node): string[] | undefined {
    const items = this.list(node, path, at);
    if (!items) return undefined;
    const out: string[] = [];
    for (const it of items) {
      const s = this.string(it.node, it.path, node);
      if (s === undefined) continue;
      const bad = check?.(s);
      if (bad) this.error(it.path, it.node, bad);
      else out.push(s);
    }
    return out;
  }

  /** A string checked against `check`. */
  checked(node: Node | undefined, path: string, check: (s: string) => string | undefined, at?: Node): string | undefined {
    const s = this.string(node, path, at);
    if (s === undefined) return undefined;
    const bad = check(s);
    if (bad) {
      this.error(path, node, bad);
      return undefined;
    }
    return s;
  }
}

/** The known keys of one mapping. */
export class Fields {
  constructor(
    readonly r: Reader,
    readonly path: string,
    readonly node: Node | undefined,
    private readonly byKey: Map<string, Entry>,
    private readonly at?: Node,
  ) {}

  /** Value node of a key (undefined when absent or null). */
  get(key: string): Node | undefined {
    return this.byKey.get(key)?.value;
  }
  /** Whether the key is written (even with an empty value). */
  has(key: string): boolean {
    return this.byKey.has(key);
  }
  entry(key: string): Entry | undefined {
    return this.byKey.get(key);
  }
  keyNode(key: string): Node | undefined {
    return this.byKey.get(key)?.keyNode;
  }
  p(key: string): string {
    return joinPath(this.path, key);
  }
  /** Where to point for an issue about `key`: its value, else its key, else the mapping. */
  where(key: string): Node | undefined {
    const e = this.byKey.get(key);
    return e?.value ?? e?.keyNode ?? this.at ?? this.node;
  }
  missing(key: string): void {
    this.r.error(this.p(key), this.byKey.get(key)?.keyNode ?? this.at ?? this.node, `'${key}' is required`);
  }

  string(key: string, check?: (s: string) => string | undefined): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    return check ? this.r.checked(v, this.p(key), check) : this.r.string(v, this.p(key));
  }
  bool(key: string): boolean | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : this.r.bool(v, this.p(key));
  }
  int(key: string): number | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : this.r.int(v, this.p(key));
  }
  stringList(key: string, check?: (s: string) => string | undefined): string[] | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : this.r.stringList(v, this.p(key), check);
  }
}

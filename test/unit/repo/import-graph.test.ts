/**
 * The import graph between the rooms (issue 10): the agent and the server
 * share code only through common/, which imports neither.
 *
 *   agent/   may import agent/, common/ and proto/gen/ (and npm packages, node:)
 *   server/  may import anything but agent/
 *   common/  may import common/ and proto/gen/ (and npm packages, node:)
 *
 * Every .ts file of the three rooms is read; its import specifiers
 * (`import … from '…'`, `import '…'`, `export … from '…'`, `import('…')`)
 * come from a small lexer that skips comments, string and template contents
 * and regular expressions, so an import spelt inside a string or a comment
 * is not one. The lexer is checked against TypeScript's own pre-processor on
 * every file, so a form it misses fails here instead of passing unseen.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ROOMS = ['agent', 'common', 'server'] as const;
type Room = (typeof ROOMS)[number];

/** Where each room's relative imports may land (repository-relative prefixes). */
const ALLOWED: Record<Room, readonly string[] | null> = {
  agent: ['agent/', 'common/', 'proto/gen/'],
  common: ['common/', 'proto/gen/'],
  server: null, // everything but agent/ (checked below)
};
const FORBIDDEN: Record<Room, readonly string[]> = {
  agent: ['server/'],
  common: ['server/', 'agent/'],
  server: ['agent/'],
};

/** Replaces comments, string contents, template text and regex literals so that only code is left; string literals become `'#N'` with N the index of their text. */
function maskSource(src: string): { code: string; strings: string[] } {
  const strings: string[] = [];
  let out = '';
  let i = 0;
  /** Template nesting: each entry counts the open braces inside one `${`. */
  const tmpl: number[] = [];
  let lastSignificant = '';
  const regexCanStart = (): boolean => {
    if (lastSignificant === '') return true;
    if (/[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSignificant)) return true;
    return /(?:^|[^\w$])(?:return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/.test(out.trimEnd());
  };
  const readQuoted = (q: string): string => {
    let j = i + 1;
    let text = '';
    while (j < src.length && src[j] !== q) {
      if (src[j] === '\\') {
        text += src[j]! + (src[j + 1] ?? '');
        j += 2;
        continue;
      }
      if (src[j] === '\n') break; // unterminated: stop at the line end
      text += src[j];
      j++;
    }
    i = j + 1;
    return text;
  };
  const skipTemplateText = (): void => {
    // i is just after ` or }; reads until ` (end) or ${ (code)
    while (i < src.length) {
      const c = src[i]!;
      if (c === '\\') {
        out += '  ';
        i += 2;
      } else if (c === '`') {
        out += '`';
        i++;
        return;
      } else if (c === '$' && src[i + 1] === '{') {
        out += '${';
        i += 2;
        tmpl.push(0);
        return;
      } else {
        out += c === '\n' ? '\n' : ' ';
        i++;
      }
    }
  };
  while (i < src.length) {
    const c = src[i]!;
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
      continue;
    }
    if (c === "'" || c === '"') {
      strings.push(readQuoted(c));
      out += `'#${strings.length - 1}'`;
      lastSignificant = "'";
      continue;
    }
    if (c === '`') {
      out += '`';
      i++;
      skipTemplateText();
      lastSignificant = '`';
      continue;
    }
    if (tmpl.length > 0 && c === '{') tmpl[tmpl.length - 1]!++;
    if (tmpl.length > 0 && c === '}') {
      if (tmpl[tmpl.length - 1] === 0) {
        tmpl.pop();
        out += '}';
        i++;
        skipTemplateText();
        lastSignificant = '`';
        continue;
      }
      tmpl[tmpl.length - 1]!--;
    }
    if (c === '/' && regexCanStart()) {
      let j = i + 1;
      let inClass = false;
      while (j < src.length && src[j] !== '\n') {
        const d = src[j]!;
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      out += ' '.repeat(j + 1 - i);
      i = j + 1;
      lastSignificant = '/';
      continue;
    }
    out += c;
    if (!/\s/.test(c)) lastSignificant = c;
    i++;
  }
  return { code: out, strings };
}

const STATIC = /(?:^|[^\w$.])(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s*from\s*)?'#(\d+)'/g;
const DYNAMIC = /(?:^|[^\w$.])import\s*\(\s*'#(\d+)'\s*\)/g;

/** The import specifiers of a TypeScript source, in order of appearance, each once. */
function importSpecifiers(src: string): string[] {
  const { code, strings } = maskSource(src);
  const found: Array<[number, string]> = [];
  for (const re of [STATIC, DYNAMIC]) {
    for (const m of code.matchAll(re)) found.push([m.index, strings[Number(m[1])]!]);
  }
  return [...new Set(found.sort((a, b) => a[0] - b[0]).map(([, s]) => s))];
}

interface Violation {
  file: string;
  specifier: string;
  resolved: string;
}

/** Violations of the room rules by one file (repository-relative path) with the given specifiers. */
function violationsOf(file: string, specifiers: readonly string[]): Violation[] {
  const room = ROOMS.find((r) => file.startsWith(`${r}/`));
  if (!room) return [];
  const out: Violation[] = [];
  for (const specifier of specifiers) {
    if (!specifier.startsWith('.')) continue; // npm packages and node: builtins
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
    const forbidden = FORBIDDEN[room].some((p) => resolved.startsWith(p));
    const allowed = ALLOWED[room];
    if (forbidden || (allowed !== null && !allowed.some((p) => resolved.startsWith(p)))) out.push({ file, specifier, resolved });
  }
  return out;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...tsFiles(rel));
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const FILES = ROOMS.flatMap((r) => tsFiles(r));

/** Whether `spec` is imported by an `export * as NAME from` statement (a form TypeScript's pre-processor does not report). */
function namespaceReExport(src: string, spec: string): boolean {
  const quoted = spec.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`export\\s+\\*\\s+as\\s+[\\w$]+\\s+from\\s+['"]${quoted}['"]`).test(src);
}

describe('import graph: agent, server and common share only common/', () => {
  it('reads imports of every form and ignores what only looks like one', () => {
    const src = [
      `import a from './a.js';`,
      `import type { B } from "../b.js";`,
      `import {`,
      `  c,`,
      `  type D as E,`,
      `} from '../../server/c.js';`,
      `import './side-effect.js';`,
      `export * from './star.js';`,
      `export type * from './types.js';`,
      `export { f } from './f.js';`,
      `const g = await import('./lazy.js');`,
      `// import h from '../server/commented.js';`,
      `/* export * from '../agent/block.js' */`,
      `const s = "import i from '../server/in-string.js'";`,
      'const t = `import j from \'../server/in-template.js\' ${x ? `import k from "./nested.js"` : \'\'}`;',
      `const re = /import l from '..\\/server\\/regex.js'/;`,
      `export const m = 'not an import';`,
      `obj.import('./method.js');`,
    ].join('\n');
    expect(importSpecifiers(src)).toEqual(['./a.js', '../b.js', '../../server/c.js', './side-effect.js', './star.js', './types.js', './f.js', './lazy.js']);
  });

  it('finds the same imports as TypeScript on every file of the three rooms', () => {
    expect(FILES.length).toBeGreaterThan(100);
    expect(FILES.some((f) => f.startsWith('common/'))).toBe(true);
    const differ: string[] = [];
    for (const file of FILES) {
      const src = fs.readFileSync(path.join(ROOT, file), 'utf8');
      const theirs = new Set(ts.preProcessFile(src, true, true).importedFiles.map((f) => f.fileName));
      const ours = new Set(importSpecifiers(src));
      // TypeScript's pre-processor does not report `export * as ns from '…'`; every other extra is a difference.
      const extra = [...ours].filter((s) => !theirs.has(s) && !namespaceReExport(src, s));
      if (extra.length > 0 || [...theirs].some((s) => !ours.has(s))) {
        differ.push(`${file}: typescript [${[...theirs].join(', ')}] vs [${[...ours].join(', ')}]`);
      }
    }
    expect(differ).toEqual([]);
  });

  it('names the file and the import of a violation', () => {
    expect(violationsOf('agent/run.ts', ['../server/errors.js', '../common/errors.js', 'node:fs', '@grpc/grpc-js'])).toEqual([
      { file: 'agent/run.ts', specifier: '../server/errors.js', resolved: 'server/errors.js' },
    ]);
    expect(violationsOf('server/http/routes/inventory.ts', ['../../../agent/inventory/diff.js'])).toEqual([
      { file: 'server/http/routes/inventory.ts', specifier: '../../../agent/inventory/diff.js', resolved: 'agent/inventory/diff.js' },
    ]);
    expect(violationsOf('common/fingerprint.ts', ['../server/errors.js', '../agent/state.js', '../test/helpers/x.js', './errors.js'])).toHaveLength(3);
    expect(violationsOf('agent/inventory/proto.ts', ['../../proto/gen/fleet/v1/agent.js', '../../bin/x.js'])).toEqual([
      { file: 'agent/inventory/proto.ts', specifier: '../../bin/x.js', resolved: 'bin/x.js' },
    ]);
    expect(violationsOf('server/serve.ts', ['../common/errors.js', './lifecycle/index.js', '../proto/gen/fleet/v1/agent.js'])).toEqual([]);
  });

  it('no file of agent/ imports server/, none of server/ imports agent/, common/ imports neither', () => {
    const violations = FILES.flatMap((file) => violationsOf(file, importSpecifiers(fs.readFileSync(path.join(ROOT, file), 'utf8'))));
    expect(violations.map((v) => `${v.file} imports '${v.specifier}' (${v.resolved})`)).toEqual([]);
  });
});

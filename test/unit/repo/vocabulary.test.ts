/**
 * One vocabulary (issue 10): event and fact kinds, lifecycle state groups and
 * agent command kinds are spelled once, in their catalogue, and named
 * through it everywhere else:
 *
 *   event/fact kinds   common/events.ts    (EVENT; facts: server/lifecycle/facts.ts)
 *   lifecycle states   server/lifecycle/states.ts (S, and its groups)
 *   agent commands     common/commands.ts  (AGENT_COMMAND)
 *
 * Every string literal of server/, agent/ and common/ is read with
 * TypeScript's own parser (so text in comments is not a literal), and a
 * literal that spells a catalogued word outside its catalogue fails here.
 * Exceptions, each with its reason:
 * - server/store/migrations.ts: migrations are history; their SQL is frozen.
 * - an error code that is also an event kind ('token.used' is both) where the
 *   literal is used as an error code (the error catalogue is its home).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { AGENT_COMMAND } from '../../../common/commands.js';
import { CATALOGUE } from '../../../common/errors.js';
import { EVENT_KINDS } from '../../../common/events.js';
import { ALL_STATES } from '../../../server/lifecycle/states.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Literal {
  file: string;
  line: number;
  text: string;
  lineText: string;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(rel));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Every string literal of a source text, with its line. */
export function literalsOf(file: string, src: string): Literal[] {
  const sf = ts.createSourceFile(file, src, ts.ScriptTarget.Latest, true);
  const lines = src.split('\n');
  const out: Literal[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) {
      const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      out.push({ file, line: line + 1, text: n.text, lineText: lines[line] ?? '' });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const FILES = ['server', 'agent', 'common'].flatMap(tsFiles);
const LITERALS = FILES.flatMap((f) => literalsOf(f, fs.readFileSync(path.join(ROOT, f), 'utf8')));

const ERROR_CODES = new Set(Object.keys(CATALOGUE));
/** A literal used as an error code: `new FleetError('x', …)`, `code === 'x'`, `case 'x':` in a switch on a code, the catalogue's keys. */
function usedAsErrorCode(l: Literal): boolean {
  if (!ERROR_CODES.has(l.text)) return false;
  return /FleetError\(|code|case '/.test(l.lineText) || l.file === 'common/errors.ts';
}

const where = (ls: Literal[]): string[] => ls.map((l) => `${l.file}:${l.line}: ${l.lineText.trim()}`);

describe('one vocabulary', () => {
  it('spells each event and fact kind only in common/events.ts', () => {
    const kinds = new Set<string>(EVENT_KINDS);
    const home = new Set(['common/events.ts', 'server/store/migrations.ts']);
    const stray = LITERALS.filter((l) => kinds.has(l.text) && !home.has(l.file) && !usedAsErrorCode(l));
    expect(where(stray)).toEqual([]);
  });

  it('lists lifecycle states together only in server/lifecycle/ (their groups live in states.ts)', () => {
    const states = new Set<string>(ALL_STATES);
    const byLine = new Map<string, Set<string>>();
    for (const l of LITERALS) {
      if (!states.has(l.text) || l.file.startsWith('server/lifecycle/states.ts')) continue;
      const key = `${l.file}:${l.line}: ${l.lineText.trim()}`;
      byLine.set(key, (byLine.get(key) ?? new Set()).add(l.text));
    }
    const groups = [...byLine].filter(([, s]) => s.size >= 2).map(([k]) => k);
    expect(groups).toEqual([]);
  });

  it('spells each agent command kind only in common/commands.ts', () => {
    const kinds = new Set<string>(Object.values(AGENT_COMMAND));
    // 'reboot' is also a systemctl verb: only its use as a command kind counts.
    const stray = LITERALS.filter((l) => kinds.has(l.text) && l.file !== 'common/commands.ts' && (l.text !== AGENT_COMMAND.reboot || /kind/i.test(l.lineText)));
    expect(where(stray)).toEqual([]);
  });

  it('finds a planted literal (the scanner is not blind), and none in a comment', () => {
    const planted = literalsOf('x.ts', "// 'agent.boot' in a comment\nconst k = 'agent.boot';\nconst t = `state.changed`;\n");
    expect(planted.map((l) => [l.line, l.text])).toEqual([
      [2, 'agent.boot'],
      [3, 'state.changed'],
    ]);
  });
});

/**
 * What a CLI command loads at start. The program (main.ts, register.ts) must
 * import only commander and small modules; a command's module is imported
 * when its action runs. Here: the runtime import graph of the sources, read
 * with the TypeScript parser (`import type`, `export type` and dynamic
 * `import()` load nothing at start and are not followed). The built binary's
 * real loads are checked in test/integration/cli-server.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Specifiers a file loads when it is loaded: value imports and re-exports, not type-only ones. */
function runtimeImports(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const c = st.importClause;
      const typeOnly =
        c !== undefined &&
        (c.isTypeOnly || (c.name === undefined && c.namedBindings !== undefined && ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) out.push(st.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && !st.isTypeOnly) {
      out.push(st.moduleSpecifier.text);
    }
  }
  return out;
}

/** Every source file and package a set of entry files loads, transitively (packages by name, not followed). */
function loadedBy(...entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = entries.map((e) => path.join(ROOT, e));
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const spec of runtimeImports(f)) {
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
        continue;
      }
      const target = path.resolve(path.dirname(f), spec.replace(/\.js$/, '.ts'));
      if (!existsSync(target)) throw new Error(`${path.relative(ROOT, f)} imports ${spec}, which does not exist`);
      todo.push(target);
    }
  }
  return { files: new Set([...files].map((f) => path.relative(ROOT, f))), packages };
}

const HEAVY_PACKAGES = ['fastify', '@fastify/swagger', '@fastify/rate-limit', '@grpc/grpc-js', '@bufbuild/protobuf', 'kysely', 'better-sqlite3', 'systeminformation', '@peculiar/x509', 'typebox', 'undici', 'yaml'];
const HEAVY_FILES = /^server\/(serve|listeners)\.ts$|^server\/(http|grpc|store|lab\/(?!defaults)|images|bootenv|netboot|repo|config\/(?!issues)|apply|lifecycle\/(?!states))|^proto\//;

function heavyIn(l: { files: Set<string>; packages: Set<string> }): string[] {
  return [...HEAVY_PACKAGES.filter((p) => l.packages.has(p)), ...[...l.files].filter((f) => HEAVY_FILES.test(f))];
}

describe('CLI start-up loads', () => {
  it('the program (every command defined, --help) loads commander and small modules only', () => {
    const l = loadedBy('server/cli/main.ts');
    expect([...l.packages]).toEqual(['commander']);
    expect(heavyIn(l)).toEqual([]);
    expect([...l.files].filter((f) => f.startsWith('server/cli/commands/'))).toEqual([]);
  });

  it.each([
    ['fleet nodeset', 'server/cli/commands/nodeset.ts'],
    ['fleet nodes / show', 'server/cli/commands/api.ts'],
    ['fleet status / watch / reinstall', 'server/cli/commands/lifecycle.ts'],
    ['fleet events', 'server/cli/commands/events.ts'],
    ['fleet power / bootdev', 'server/cli/commands/bmc.ts'],
    ['fleet import csv', 'server/cli/commands/import.ts'],
  ])('%s loads neither the server nor its libraries', (_name, command) => {
    expect(heavyIn(loadedBy('server/cli/main.ts', command))).toEqual([]);
  });

  it('sees the server behind `fleet server` (the check can fail)', () => {
    const heavy = heavyIn(loadedBy('server/cli/main.ts', 'server/cli/commands/server.ts'));
    expect(heavy).toEqual(expect.arrayContaining(['fastify', '@grpc/grpc-js', 'kysely', 'better-sqlite3', 'server/serve.ts']));
  });

  it('follows value imports and re-exports, not type-only ones', () => {
    // completion.ts imports commander's Command as a type only; settings.ts loads yaml only inside a function.
    expect(loadedBy('server/cli/completion.ts').packages.has('commander')).toBe(false);
    expect(loadedBy('server/cli/settings.ts').packages.has('yaml')).toBe(false);
    expect(loadedBy('server/lab/server.ts').files.has('server/lab/defaults.ts')).toBe(true);
  });
});

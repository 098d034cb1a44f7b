#!/usr/bin/env node
/**
 * Stages what the agent needs to run, for agent/package/build.sh:
 *
 *   node agent/package/stage.mjs --dist DIST --root REPO --out STAGE/app [--entry agent/main.js]
 *
 * - the compiled modules reachable from DIST/agent/main.js through relative
 *   imports (agent/, proto/gen/, the few server/ modules the agent shares),
 *   copied with the same layout (no source maps);
 * - the npm packages they import, and the packages those depend on
 *   (dependencies + optionalDependencies but @types/*, resolved as Node does, from
 *   REPO/node_modules), each copied whole minus TypeScript sources, maps and
 *   its own node_modules (nested packages are copied where Node finds them);
 * - package.json (name fleet, the version, type module) and bin/fleet-agent.js.
 * Prints one JSON line: {modules, packages}. No network: everything comes
 * from the build tree.
 */
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';

function args() {
  const a = process.argv.slice(2);
  const o = {};
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith('--') || a[i + 1] === undefined) throw new Error(`usage: stage.mjs --dist DIR --root DIR --out DIR [--entry agent/main.js]`);
    o[a[i].slice(2)] = a[i + 1];
  }
  if (!o.dist || !o.root || !o.out) throw new Error('usage: stage.mjs --dist DIR --root DIR --out DIR');
  return { dist: path.resolve(o.dist), root: path.resolve(o.root), out: path.resolve(o.out), entry: o.entry ?? 'agent/main.js' };
}

const IMPORT_RE = /(?:^|[;\s})])(?:import|export)\s*(?:[\w*{}\s,$]+\s*from\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const BUILTIN = new Set(builtinModules);

function specifiers(code) {
  const out = new Set();
  for (const m of code.matchAll(IMPORT_RE)) out.add(m[1] ?? m[2]);
  return [...out];
}

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Node's lookup: DIR/node_modules/NAME, then up to the repository root. */
function resolvePackage(name, fromDir, root) {
  let dir = fromDir;
  for (;;) {
    const cand = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
    if (dir === root || dir === path.dirname(dir)) return null;
    dir = path.dirname(dir);
  }
}

function copyPackage(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.name === 'node_modules') continue;
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyPackage(s, d);
    else if (e.isFile() && !/\.(map|ts|mts|cts|tsbuildinfo)$/.test(e.name)) fs.copyFileSync(s, d);
    else if (e.isSymbolicLink()) {
      const real = fs.realpathSync(s);
      if (fs.statSync(real).isDirectory()) copyPackage(real, d);
      else fs.copyFileSync(real, d);
    }
  }
}

function main() {
  const { dist, root, out, entry } = args();
  const nm = path.join(root, 'node_modules');
  if (!fs.existsSync(nm)) throw new Error(`${nm} does not exist (npm ci first)`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });

  // 1. our modules
  const seen = new Set();
  const bare = new Set();
  const todo = [path.join(dist, entry)];
  while (todo.length) {
    const file = todo.pop();
    if (seen.has(file)) continue;
    if (!fs.existsSync(file)) throw new Error(`missing compiled module ${path.relative(dist, file)} (build with tsc first)`);
    seen.add(file);
    const code = fs.readFileSync(file, 'utf8');
    for (const spec of specifiers(code)) {
      if (spec.startsWith('.')) todo.push(path.resolve(path.dirname(file), spec));
      else if (spec.startsWith('node:') || BUILTIN.has(spec)) continue;
      else bare.add(packageName(spec));
    }
    const rel = path.relative(dist, file);
    fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
    fs.copyFileSync(file, path.join(out, rel));
  }

  // 2. npm packages, transitively
  const copied = new Map(); // source dir -> relative dest
  const pkgTodo = [...bare].map((name) => ({ name, from: root }));
  while (pkgTodo.length) {
    const { name, from } = pkgTodo.pop();
    if (name.startsWith('@types/')) continue; // declarations only
    const src = resolvePackage(name, from, root);
    if (!src) {
      // optional dependencies for other platforms are legitimately absent
      continue;
    }
    if (copied.has(src)) continue;
    const rel = path.relative(root, src);
    if (!rel.startsWith('node_modules' + path.sep)) throw new Error(`package ${name} resolves outside node_modules: ${src}`);
    copied.set(src, rel);
    copyPackage(src, path.join(out, rel));
    const pj = JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8'));
    for (const dep of Object.keys({ ...(pj.dependencies ?? {}), ...(pj.optionalDependencies ?? {}) })) pkgTodo.push({ name: dep, from: src });
  }

  // 3. package.json and the entry point
  const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  fs.writeFileSync(
    path.join(out, 'package.json'),
    JSON.stringify({ name: 'fleet', version: rootPkg.version, private: true, type: 'module', description: 'fleet-agent runtime bundle' }, null, 2) + '\n',
  );
  fs.mkdirSync(path.join(out, 'bin'), { recursive: true });
  const entryRel = path.posix.join('..', entry.split(path.sep).join('/'));
  fs.writeFileSync(
    path.join(out, 'bin', 'fleet-agent.js'),
    [
      '#!/usr/bin/env node',
      '// fleet-agent entry point (generated by agent/package/stage.mjs).',
      `import { main } from '${entryRel}';`,
      '',
      '// Exit with the code as soon as the command is done: probes that ran late',
      '// (inventory) must not keep the process alive.',
      'main(process.argv).then((code) => process.exit(code));',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  process.stdout.write(JSON.stringify({ modules: seen.size, packages: [...copied.values()].map((r) => r.slice('node_modules/'.length)).sort() }) + '\n');
}

try {
  main();
} catch (e) {
  process.stderr.write(`stage: ${e.message}\n`);
  process.exit(1);
}

#!/usr/bin/env node
/**
 * Stages what the agent needs to run, for agent/package/build.sh:
 *
 *   node agent/package/stage.mjs --root REPO --out STAGE/app [--dist DIST] [--entry agent/main]
 *
 * - the agent bundled by esbuild (docs/decisions/0007-esbuild-agent-bundle.md)
 *   into one ES module, STAGE/app/agent/main.js: everything reachable from
 *   the entry (agent/, common/, proto/gen/) resolved by the bundler, not
 *   by a scan of the text. The entry is REPO/agent/main.ts, or with --dist the
 *   already compiled DIST/agent/main.js;
 * - the npm packages the bundle imports (from esbuild's metafile), and the
 *   packages those depend on (dependencies + optionalDependencies but @types/*,
 *   resolved as Node does, from REPO/node_modules), each copied whole minus
 *   TypeScript sources, maps and its own node_modules (nested packages are
 *   copied where Node finds them). They stay packages rather than being
 *   bundled, so they load exactly as in a checkout (native and optional
 *   parts, their own files);
 * - package.json (name fleet, the version, type module) and bin/fleet-agent.js.
 * Prints one JSON line: {modules, packages}. No network: everything comes
 * from the build tree.
 */
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules, createRequire } from 'node:module';

function args() {
  const a = process.argv.slice(2);
  const o = {};
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith('--') || a[i + 1] === undefined) throw new Error(`usage: stage.mjs --root DIR --out DIR [--dist DIR] [--entry agent/main]`);
    o[a[i].slice(2)] = a[i + 1];
  }
  if (!o.root || !o.out) throw new Error('usage: stage.mjs --root DIR --out DIR [--dist DIR]');
  return { dist: o.dist ? path.resolve(o.dist) : null, root: path.resolve(o.root), out: path.resolve(o.out), entry: (o.entry ?? 'agent/main').replace(/\.(ts|js)$/, '') };
}

const BUILTIN = new Set(builtinModules);

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

async function main() {
  const { dist, root, out, entry } = args();
  const nm = path.join(root, 'node_modules');
  if (!fs.existsSync(nm)) throw new Error(`${nm} does not exist (npm ci first)`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });

  // 1. our modules, bundled
  const entryFile = dist ? path.join(dist, `${entry}.js`) : path.join(root, `${entry}.ts`);
  if (!fs.existsSync(entryFile)) throw new Error(`missing entry ${entryFile}${dist ? ' (build with tsc first)' : ''}`);
  // esbuild comes from the build tree (devDependency), like tsc did.
  const esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
  const result = await esbuild.build({
    entryPoints: [entryFile],
    outfile: path.join(out, `${entry}.js`),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    metafile: true,
    sourcemap: false,
    logLevel: 'silent',
  });
  for (const w of result.warnings) process.stderr.write(`stage: esbuild: ${w.text}\n`);
  const bare = new Set();
  const modules = Object.keys(result.metafile.inputs).length;
  for (const o of Object.values(result.metafile.outputs)) {
    for (const imp of o.imports) {
      if (!imp.external) continue;
      const spec = imp.path;
      if (spec.startsWith('node:') || BUILTIN.has(spec)) continue;
      if (spec.startsWith('.') || spec.startsWith('/')) throw new Error(`the bundle imports a file it did not include: ${spec}`);
      bare.add(packageName(spec));
    }
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
  const entryRel = path.posix.join('..', `${entry.split(path.sep).join('/')}.js`);
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
  process.stdout.write(JSON.stringify({ modules, packages: [...copied.values()].map((r) => r.slice('node_modules/'.length)).sort() }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`stage: ${e.message}\n`);
  process.exit(1);
});

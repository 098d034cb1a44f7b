/**
 * `fleet image build` (I/O): mmdebstrap from the management node's own apt
 * sources into a tree under DATA/images/tmp, the agent baked in, the
 * artefacts made, the image published by rename and registered last.
 * A build whose key is already registered is reused (unless force).
 */
import { existsSync, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { show } from '../../common/patterns.js';
import type { NamedManifest } from './manifest.js';
import { packageList, parseArch, parseFrom, requireImageName } from './names.js';
import { VARIANT, agentDigest, buildKey, isolatedArgv, mmdebstrapArgs } from './plan.js';
import { imageSourceLines, isSourcesFile, osReleaseCodename, parseSources, type SourceFile } from './sources.js';
import { cleanStale, findByKey, imagePaths, isRegularFile, lockImages, makeWorkspace, register, removeTree, sha256File } from './store.js';
import { bakeAgent, mustRun, publishTree, type Tools } from './tree.js';

export interface BuildOptions {
  dataDir: string;
  name: string;
  from: string;
  includes?: string[];
  arch?: string;
  force?: boolean;
  /** A directory holding fleet-agent and fleet-agent.service (agent/package/build.sh output). Default: DATA/www/agent, built there when absent. */
  agentDir?: string;
  /** Where the management node's apt configuration is (tests). Default /etc/apt. */
  aptDir?: string;
  /** Its /etc/os-release (tests). */
  osRelease?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  now?: () => Date;
  /** Runs instead of mmdebstrap (tests of failure and cleanup): gets the argv, fills or fails the tree. */
  bootstrap?: (argv: [string, string[]], tree: string) => Promise<void>;
}

export interface BuildResult {
  image: NamedManifest;
  reused: boolean;
}

const MMDEBSTRAP_TIMEOUT_MS = 60 * 60_000;

function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new FleetError('usage.invalid', `${what} needs root: the image's files keep their real owners (run it as root, e.g. sudo node bin/fleet.js image ...)`);
  }
}

export function requireTool(name: string, pkg: string): string {
  const p = findExecutable(name);
  if (!p) throw new FleetError('unavailable', `${name} is missing: apt-get install ${pkg} (.ci/deps.sh installs it)`);
  return p;
}

export function packTools(): Tools {
  return { tar: requireTool('tar', 'tar'), mksquashfs: requireTool('mksquashfs', 'squashfs-tools'), zstd: requireTool('zstd', 'zstd') };
}

/** The management node's apt sources, as files. */
export async function hostSourceFiles(aptDir: string): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const main = path.join(aptDir, 'sources.list');
  if (await isRegularFile(main)) out.push({ name: 'sources.list', text: await fs.readFile(main, 'utf8') });
  let names: string[] = [];
  try {
    names = (await fs.readdir(path.join(aptDir, 'sources.list.d'))).sort();
  } catch {
    /* none */
  }
  for (const n of names.filter(isSourcesFile)) out.push({ name: n, text: await fs.readFile(path.join(aptDir, 'sources.list.d', n), 'utf8') });
  return out;
}

/** The fleet checkout this code runs from (agent/package/build.sh lives there). */
export function sourceRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'agent', 'package', 'build.sh'))) return dir;
    dir = path.dirname(dir);
  }
  throw new FleetError('unavailable', 'cannot find agent/package/build.sh above server/images: give --agent DIR (agent/package/build.sh --out DIR)');
}

/** What the agent bundle is built from (agent/package/build.sh bundles agent/, common/ and proto/gen/ with the locked npm packages). */
export const AGENT_SOURCE_DIRS = ['agent', 'common', 'proto/gen'] as const;
export const AGENT_SOURCE_FILES = ['package.json', 'package-lock.json'] as const;
/** Beside the bundle in DATA/www/agent: the agentSourceDigest it was built from. */
export const AGENT_SOURCE_RECORD = 'fleet-agent.source';

/**
 * SHA-256 over the agent's sources in a checkout: every file under
 * AGENT_SOURCE_DIRS and AGENT_SOURCE_FILES, by relative path and content,
 * in path order. A bundle built from other sources is rebuilt.
 */
export async function agentSourceDigest(root: string): Promise<string> {
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') await walk(r);
      } else if (e.isFile()) files.push(r);
    }
  };
  for (const d of AGENT_SOURCE_DIRS) await walk(d);
  for (const f of AGENT_SOURCE_FILES) if (await isRegularFile(path.join(root, f))) files.push(f);
  files.sort();
  const h = createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(await fs.readFile(path.join(root, f))).update('\0');
  return `sha256:${h.digest('hex')}`;
}

/**
 * Whether DATA/www/agent must be (re)built, and why; null when the bundle
 * there was built from these sources. Pure.
 */
export function bundleBuildReason(have: { bundle: boolean; unit: boolean; recorded: string | null }, sources: string): string | null {
  if (!have.bundle || !have.unit) return 'absent';
  if (have.recorded === null) return 'built from unrecorded sources';
  if (have.recorded.trim() !== sources) return 'built from other agent sources';
  return null;
}

/**
 * The agent bundle to bake in: --agent DIR as given, else DATA/www/agent,
 * (re)built there by agent/package/build.sh when absent or built from other
 * agent sources than this checkout's (a stale bundle would bake an old agent
 * into every image and be served at /agent/).
 */
export async function agentBundle(dataDir: string, agentDir: string | undefined, log: (s: string) => void, signal?: AbortSignal): Promise<{ bundle: string; unit: string; sha256: string }> {
  const dir = path.resolve(agentDir ?? path.join(dataDir, 'www', 'agent'));
  const bundle = path.join(dir, 'fleet-agent');
  const unit = path.join(dir, 'fleet-agent.service');
  const have = { bundle: await isRegularFile(bundle), unit: await isRegularFile(unit) };
  if (agentDir !== undefined) {
    if (!have.bundle || !have.unit) throw new FleetError('usage.invalid', `--agent ${show(dir)} does not hold fleet-agent and fleet-agent.service (agent/package/build.sh --out DIR makes them)`);
  } else {
    const root = sourceRoot();
    const sources = await agentSourceDigest(root);
    const recorded = await fs.readFile(path.join(dir, AGENT_SOURCE_RECORD), 'utf8').catch(() => null);
    const why = bundleBuildReason({ ...have, recorded }, sources);
    if (why !== null) {
      log(`building the agent bundle into ${dir} (${why}; agent/package/build.sh; what the server serves at /agent/)`);
      await mustRun('agent/package/build.sh', requireTool('sh', 'dash'), [path.join(root, 'agent', 'package', 'build.sh'), '--out', dir], { timeoutMs: 10 * 60_000, ...(signal ? { signal } : {}) });
      await fs.writeFile(path.join(dir, AGENT_SOURCE_RECORD), sources + '\n', { mode: 0o644 });
    }
  }
  return { bundle, unit, sha256: agentDigest(await sha256File(bundle), await sha256File(unit)) };
}

export async function buildImage(o: BuildOptions): Promise<BuildResult> {
  const now = o.now ?? (() => new Date());
  const name = requireImageName(o.name);
  const src = parseFrom(o.from);
  const arch = parseArch(o.arch);
  const packages = packageList(arch, o.includes);
  requireRoot('fleet image build');
  const mmdebstrap = o.bootstrap ? 'mmdebstrap' : requireTool('mmdebstrap', 'mmdebstrap');
  const unshare = o.bootstrap ? 'unshare' : requireTool('unshare', 'util-linux');
  const tools = packTools();

  const hostCodename = osReleaseCodename(await fs.readFile(o.osRelease ?? '/etc/os-release', 'utf8').catch(() => ''));
  if (!hostCodename) throw new FleetError('unavailable', `cannot tell the management node's release (no VERSION_CODENAME in ${o.osRelease ?? '/etc/os-release'})`);
  const aptDir = o.aptDir ?? '/etc/apt';
  const sources = imageSourceLines(parseSources(await hostSourceFiles(aptDir)), hostCodename, src.suite);
  if (sources.length === 0) {
    throw new FleetError('unavailable', `the apt sources in ${aptDir} name no ${hostCodename} entry to build ${src.suite} from (fleet builds from the management node's own sources)`);
  }

  const p = imagePaths(o.dataDir);
  const lock = await lockImages(p, `fleet image build ${name}`);
  let ws: string | undefined;
  try {
    await cleanStale(p, o.log);
    const agent = await agentBundle(o.dataDir, o.agentDir, o.log, o.signal);
    const key = buildKey({ suite: src.suite, arch, packages, sources, agentSha256: agent.sha256 });
    if (!o.force) {
      const hit = await findByKey(p, key);
      if (hit) {
        await register(p, name, hit, now);
        o.log(`reusing ${hit.digest} (same build key ${key.slice(0, 19)}; --force rebuilds)`);
        return { image: { name, ...hit }, reused: true };
      }
    }
    ws = await makeWorkspace(p, 'build');
    const tree = path.join(ws, 'tree');
    const out = path.join(ws, 'out');
    await fs.mkdir(out);
    const mirrorFile = path.join(ws, 'sources.list');
    await fs.writeFile(mirrorFile, sources.join('\n') + '\n', { mode: 0o644 });
    const argv = isolatedArgv(unshare, mmdebstrap, mmdebstrapArgs({ suite: src.suite, arch, packages, mirrorFile, tree }));
    o.log(`mmdebstrap ${src.suite} ${arch} (${VARIANT} + ${packages.join(', ')}) from ${sources.length} apt source line(s) of this machine; takes minutes`);
    if (o.bootstrap) await o.bootstrap(argv, tree);
    else await mustRun('mmdebstrap', argv[0], argv[1], { timeoutMs: MMDEBSTRAP_TIMEOUT_MS, ...(o.signal ? { signal: o.signal } : {}) });
    o.log('baking in the agent (fleet-agent, fleet-agent.service enabled)');
    await bakeAgent(tree, agent.bundle, agent.unit);
    return await publishTree({ paths: p, name, tree, out, tools, id: { from: `${src.distro}:${src.suite}`, arch, buildKey: key, origin: { kind: 'build', suite: src.suite, variant: VARIANT, packages, sources, agentSha256: agent.sha256 }, agent: true }, log: o.log, ...(o.signal ? { signal: o.signal } : {}), now });
  } finally {
    if (ws) await removeTree(ws).catch((e: Error) => o.log(`warning: ${e.message}`));
    lock.release();
  }
}

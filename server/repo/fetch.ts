/**
 * `fleet repo fetch PKG...`: packages and their dependency closure from
 * the management node's own apt sources (the lines `fleet image build`
 * uses: server/images/sources.ts, rewritten for --suite), downloaded by
 * apt-get into a private apt configuration, then added to the repository.
 *
 * The host's apt state is never touched: APT_CONFIG names a private file
 * that points every directory apt reads or writes into a workspace
 * (DATA/repo/tmp/fetch-…): lists, cache, status, sources, preferences,
 * apt.conf.d (so none of the host's hooks run), trusted keys (copies of
 * the host's trusted.gpg.d and of the keyrings its sources name with
 * Signed-By). The dpkg status is an empty file, so the closure is complete
 * (a node installed from this repository needs nothing else); Recommends
 * are left out, as the agent's package role installs them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { show } from '../../common/patterns.js';
import { runProcess } from '../../common/spawn.js';
import { hostSourceFiles } from '../images/build.js';
import { imageSourceLines, osReleaseCodename, parseSources } from '../images/sources.js';
import { PACKAGE_NAME } from './deb.js';
import { addDebs, repoPaths, REPO_ARCH, requireSuite, type AddResult } from './store.js';

export interface FetchOptions {
  dataDir: string;
  packages: string[];
  /** The suite fetched from and published as; default the management node's code name. */
  suite?: string;
  /** The management node's apt configuration (tests). Default /etc/apt. */
  aptDir?: string;
  osRelease?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  now?: () => Date;
}

const APT_TIMEOUT_MS = 30 * 60_000;

/** A private apt.conf: every directory apt uses lives under `ws` (pure). */
export function privateAptConf(ws: string, opts: { arch: string; sandboxRoot: boolean }): string {
  const q = (s: string) => `"${s.replace(/["\\]/g, '')}"`;
  return [
    `Dir::State ${q(`${ws}/state`)};`,
    `Dir::State::status ${q(`${ws}/dpkg/status`)};`,
    `Dir::Cache ${q(`${ws}/cache`)};`,
    `Dir::Etc::sourcelist ${q(`${ws}/sources.list`)};`,
    `Dir::Etc::sourceparts ${q(`${ws}/sources.list.d`)};`,
    `Dir::Etc::parts ${q(`${ws}/apt.conf.d`)};`,
    `Dir::Etc::preferences ${q(`${ws}/preferences`)};`,
    `Dir::Etc::preferencesparts ${q(`${ws}/preferences.d`)};`,
    `Dir::Etc::trusted ${q(`${ws}/trusted.gpg`)};`,
    `Dir::Etc::trustedparts ${q(`${ws}/trusted.gpg.d`)};`,
    `Dir::Log ${q(`${ws}/log`)};`,
    `APT::Architecture ${q(opts.arch)};`,
    `APT::Architectures { ${q(opts.arch)}; };`,
    'APT::Install-Recommends "false";',
    'APT::Install-Suggests "false";',
    'Acquire::Languages "none";',
    ...(opts.sandboxRoot ? ['APT::Sandbox::User "root";'] : []),
    '',
  ].join('\n');
}

/** Creates the workspace's directories and files for privateAptConf. */
export async function preparePrivateApt(ws: string, sourceLines: readonly string[], keyFiles: readonly string[]): Promise<string> {
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'dpkg', 'sources.list.d', 'apt.conf.d', 'preferences.d', 'trusted.gpg.d', 'log']) {
    await fs.mkdir(path.join(ws, d), { recursive: true, mode: 0o755 });
  }
  await fs.writeFile(path.join(ws, 'dpkg', 'status'), '');
  await fs.writeFile(path.join(ws, 'sources.list'), sourceLines.join('\n') + '\n');
  let i = 0;
  for (const k of keyFiles) {
    const ext = k.endsWith('.asc') ? '.asc' : '.gpg';
    await fs.copyFile(k, path.join(ws, 'trusted.gpg.d', `host-${String(i++).padStart(2, '0')}-${path.basename(k, ext).replace(/[^A-Za-z0-9_.-]/g, '_')}${ext}`));
  }
  const conf = path.join(ws, 'apt.conf');
  await fs.writeFile(conf, privateAptConf(ws, { arch: REPO_ARCH, sandboxRoot: process.getuid?.() === 0 }));
  return conf;
}

/** Keyrings the host's sources name with Signed-By / signed-by= (absolute paths only). */
export function signedByFiles(texts: readonly string[]): string[] {
  const out = new Set<string>();
  for (const t of texts) {
    for (const m of t.matchAll(/^\s*Signed-By:\s*(\/\S+)\s*$/gim)) out.add(m[1]!);
    for (const m of t.matchAll(/signed-by=(\/[^\s\],]+)/gi)) out.add(m[1]!);
  }
  return [...out].sort();
}

async function hostKeyFiles(aptDir: string, sourceTexts: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const parts = path.join(aptDir, 'trusted.gpg.d');
  for (const n of (await fs.readdir(parts).catch(() => [] as string[])).sort()) if (/\.(gpg|asc)$/.test(n)) out.push(path.join(parts, n));
  const legacy = path.join(aptDir, 'trusted.gpg');
  if (await fs.stat(legacy).then((s) => s.isFile() && s.size > 0, () => false)) out.push(legacy);
  for (const f of signedByFiles(sourceTexts)) if (await fs.stat(f).then((s) => s.isFile(), () => false)) out.push(f);
  return out;
}

async function apt(conf: string, args: string[], what: string, signal?: AbortSignal): Promise<string> {
  const exe = findExecutable('apt-get');
  if (!exe) throw new FleetError('unavailable', 'apt-get is missing: fleet repo fetch uses the management node\'s apt (a Debian management node)');
  const env: NodeJS.ProcessEnv = { ...process.env, APT_CONFIG: conf, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
  const r = await runProcess(exe, ['-q', ...args], { timeoutMs: APT_TIMEOUT_MS, env, ...(signal ? { signal } : {}), killGraceMs: 5000 });
  if (r.code !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-6).join('\n  ');
    throw new FleetError(r.aborted ? 'unavailable' : 'request.invalid', `apt-get ${what} failed${r.aborted ? ' (interrupted)' : r.timedOut ? ' (timed out)' : ''}:\n  ${tail}`);
  }
  return r.stdout;
}

export async function fetchPackages(o: FetchOptions): Promise<AddResult & { suite: string }> {
  if (o.packages.length === 0) throw new FleetError('usage.invalid', 'name at least one package to fetch');
  for (const n of o.packages) if (!PACKAGE_NAME.test(n)) throw new FleetError('usage.invalid', `${show(n)} is not a Debian package name`);
  const hostCodename = osReleaseCodename(await fs.readFile(o.osRelease ?? '/etc/os-release', 'utf8').catch(() => ''));
  if (!hostCodename) throw new FleetError('unavailable', `cannot tell the management node's release (no VERSION_CODENAME in ${o.osRelease ?? '/etc/os-release'})`);
  const suite = requireSuite(o.suite ?? hostCodename);
  const aptDir = o.aptDir ?? '/etc/apt';
  const files = await hostSourceFiles(aptDir);
  const lines = imageSourceLines(parseSources(files), hostCodename, suite);
  if (lines.length === 0) throw new FleetError('unavailable', `the apt sources in ${aptDir} name no ${hostCodename} entry to fetch ${suite} from (fleet fetches from the management node's own sources)`);
  const p = repoPaths(o.dataDir);
  await fs.mkdir(p.tmp, { recursive: true, mode: 0o700 });
  const ws = await fs.mkdtemp(path.join(p.tmp, 'fetch-'));
  try {
    const conf = await preparePrivateApt(ws, lines, await hostKeyFiles(aptDir, files.map((f) => f.text)));
    o.log(`apt-get update (${suite}, ${lines.length} source line(s) of this machine, private state in ${ws})`);
    await apt(conf, ['update'], 'update', o.signal);
    o.log(`apt-get install --download-only ${o.packages.join(' ')} (and their dependencies)`);
    await apt(conf, ['install', '--download-only', '-y', ...o.packages], 'install --download-only', o.signal);
    const dir = path.join(ws, 'cache', 'archives');
    const debs = (await fs.readdir(dir)).filter((n) => n.endsWith('.deb')).sort().map((n) => path.join(dir, n));
    if (debs.length === 0) throw new FleetError('internal', 'apt-get downloaded no package');
    o.log(`downloaded ${debs.length} package(s); adding them to ${suite}`);
    return { suite, ...(await addDebs({ dataDir: o.dataDir, suite, files: debs, log: o.log, ...(o.now ? { now: o.now } : {}) })) };
  } finally {
    await fs.rm(ws, { recursive: true, force: true });
  }
}

/**
 * `fleet repo add|fetch|list|remove|key`: the local apt repository the
 * server serves at /repo/debian/ (server/repo, docs/repo.md). Like
 * `fleet image`, they work on this machine's data dir under the
 * repository's own lock (DATA/repo/repo.lock), so they run while a server
 * serves.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Exit, FleetError } from '../../../common/errors.js';
import { osReleaseCodename } from '../../images/sources.js';
import { addDebs, fetchPackages, listPackages, removePackages, repoPaths, type ListedEntry, type RepoEntry } from '../../repo/index.js';
import type { CliIo } from '../io.js';
import { localDataDir, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

function dataDirOf(globals: GlobalFlags, io: CliIo): string {
  return localDataDir(globals.data, io);
}

/** --suite, else the management node's code name. */
function suiteOf(flag: string | undefined): string {
  if (flag) return flag;
  let text = '';
  try {
    text = readFileSync('/etc/os-release', 'utf8');
  } catch {
    /* none */
  }
  const c = osReleaseCodename(text);
  if (!c) throw new FleetError('usage.invalid', 'cannot tell this machine\'s Debian code name (/etc/os-release): give --suite');
  return c;
}

function progress(io: CliIo): (line: string) => void {
  const t0 = Date.now();
  return (line) => io.stderr(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] repo: ${line}\n`);
}

function summary(verb: string, suite: string, r: { added: RepoEntry[]; replaced: RepoEntry[] }): string {
  const lines = r.added.map((e) => `${verb} ${e.package} ${e.version} ${e.architecture} to ${suite}\n`);
  for (const e of r.replaced) lines.push(`replaced ${e.package} ${e.version} ${e.architecture}\n`);
  return lines.join('');
}

export async function cmdRepoAdd(globals: GlobalFlags, files: string[], flags: { suite?: string; json?: boolean }, io: CliIo): Promise<number> {
  const suite = suiteOf(flags.suite);
  const r = await addDebs({ dataDir: dataDirOf(globals, io), suite, files: files.map((f) => resolve(io.cwd, f)), log: progress(io) });
  io.stdout(flags.json ? JSON.stringify({ suite, added: r.added.map(brief), replaced: r.replaced.map(brief) }, null, 2) + '\n' : summary('added', suite, r));
  return Exit.OK;
}

export async function cmdRepoFetch(globals: GlobalFlags, packages: string[], flags: { suite?: string; json?: boolean }, io: CliIo): Promise<number> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const r = await fetchPackages({ dataDir: dataDirOf(globals, io), packages, ...(flags.suite ? { suite: flags.suite } : {}), log: progress(io), signal: ac.signal });
    io.stdout(flags.json ? JSON.stringify({ suite: r.suite, added: r.added.map(brief), replaced: r.replaced.map(brief) }, null, 2) + '\n' : summary('fetched', r.suite, r));
    return Exit.OK;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function brief(e: RepoEntry): Omit<ListedEntry, 'suite'> {
  return { package: e.package, version: e.version, architecture: e.architecture, filename: e.filename, size: e.size, sha256: e.sha256 };
}

export async function cmdRepoList(globals: GlobalFlags, flags: { suite?: string; json?: boolean }, io: CliIo): Promise<number> {
  const rows = await listPackages(dataDirOf(globals, io), flags.suite);
  if (flags.json) io.stdout(JSON.stringify(rows, null, 2) + '\n');
  else if (rows.length === 0) io.stdout('the repository holds no package (fleet repo add FILE.deb, fleet repo fetch PKG)\n');
  else io.stdout(formatTable(['SUITE', 'PACKAGE', 'VERSION', 'ARCH', 'SIZE'], rows.map((r) => [r.suite, r.package, r.version, r.architecture, String(r.size)])) + '\n');
  return Exit.OK;
}

export async function cmdRepoRemove(globals: GlobalFlags, names: string[], flags: { suite?: string }, io: CliIo): Promise<number> {
  const suite = suiteOf(flags.suite);
  const gone = await removePackages({ dataDir: dataDirOf(globals, io), suite, names, log: progress(io) });
  io.stdout(gone.map((e) => `removed ${e.package} ${e.version} ${e.architecture} from ${suite}\n`).join(''));
  return Exit.OK;
}

export async function cmdRepoKey(globals: GlobalFlags, io: CliIo): Promise<number> {
  const p = repoPaths(dataDirOf(globals, io));
  let asc: string;
  try {
    asc = readFileSync(p.keyringAsc, 'utf8');
  } catch {
    throw new FleetError('not_found', `the repository has no key yet (${p.keyringAsc}): the first fleet repo add or fetch makes it`);
  }
  io.stdout(asc);
  return Exit.OK;
}

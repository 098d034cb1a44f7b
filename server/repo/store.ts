/**
 * The local apt repository on disk (docs/repo.md):
 *
 *   DATA/repo/debian/                      served at /repo/debian/ (boot face)
 *     dists/SUITE/{Release,InRelease,Release.gpg}
 *     dists/SUITE/main/binary-amd64/{Packages,Packages.gz}
 *     pool/main/<p>/<source>/<package>_<version>_<arch>.deb
 *     fleet-archive-keyring.gpg, fleet-archive-keyring.asc
 *   DATA/repo/key/                         the signing key's GnuPG home (0700; never served)
 *   DATA/repo/index.json                   suite → the packages it holds (never served)
 *   DATA/repo/repo.lock(.json)             one writer at a time
 *   DATA/repo/tmp/                         fetches in progress
 *
 * Every write of a suite ends with `publish`: Packages, Packages.gz and
 * Release rendered from index.json, then signed (InRelease last, so a
 * client that sees the new InRelease finds the indexes it names). Pool
 * files no suite refers to any more are deleted.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { show } from '../../common/patterns.js';
import { lockDataDir, type DataDirLock } from '../store/index.js';
import { poolPath, readDeb, type ControlFields, type Decompress } from './deb.js';
import { renderPackages, renderRelease, renderStanza, type IndexFile, type PoolFile } from './render.js';
import { ensureKey, signRelease } from './sign.js';

/** The one architecture served; Architecture: all packages are listed in its index too. */
export const REPO_ARCH = 'amd64';
export const REPO_COMPONENT = 'main';
/** The public key's file names under /repo/debian/. */
export const KEYRING_GPG = 'fleet-archive-keyring.gpg';
export const KEYRING_ASC = 'fleet-archive-keyring.asc';
/** A suite (dists/ directory): a Debian code name or suite name. */
export const SUITE = /^[a-z][a-z0-9-]{0,31}$/;

export interface RepoPaths {
  root: string;
  /** The tree served at /repo/debian/. */
  debian: string;
  key: string;
  index: string;
  tmp: string;
  keyringGpg: string;
  keyringAsc: string;
}

export function repoPaths(dataDir: string): RepoPaths {
  const root = path.join(dataDir, 'repo');
  const debian = path.join(root, 'debian');
  return {
    root,
    debian,
    key: path.join(root, 'key'),
    index: path.join(root, 'index.json'),
    tmp: path.join(root, 'tmp'),
    keyringGpg: path.join(debian, KEYRING_GPG),
    keyringAsc: path.join(debian, KEYRING_ASC),
  };
}

export interface RepoEntry extends PoolFile {
  package: string;
  version: string;
  architecture: string;
  fields: ControlFields;
}

interface RepoIndex {
  suites: Record<string, RepoEntry[]>;
}

export function requireSuite(suite: string): string {
  if (!SUITE.test(suite)) throw new FleetError('usage.invalid', `suite ${show(suite)} is not a Debian suite name (${SUITE.source})`);
  return suite;
}

async function readIndex(p: RepoPaths): Promise<RepoIndex> {
  let text: string;
  try {
    text = await fs.readFile(p.index, 'utf8');
  } catch {
    return { suites: {} };
  }
  const v = JSON.parse(text) as RepoIndex;
  if (!v || typeof v.suites !== 'object') throw new FleetError('internal', `${p.index} is not a repository index`);
  return v;
}

async function writeIndex(p: RepoPaths, idx: RepoIndex): Promise<void> {
  await writeFileAtomic(p.index, JSON.stringify(idx, null, 1) + '\n', { mode: 0o644 });
}

/** The repository's writer lock (creates DATA/repo). */
export async function lockRepo(p: RepoPaths, what: string): Promise<DataDirLock> {
  await fs.mkdir(path.dirname(p.root), { recursive: true, mode: 0o700 });
  await fs.mkdir(p.root, { recursive: true, mode: 0o755 });
  await fs.mkdir(p.debian, { recursive: true, mode: 0o755 });
  return lockDataDir(p.root, what, 'repo.lock');
}

function digests(buf: Buffer): { md5: string; sha1: string; sha256: string } {
  const h = (a: string) => createHash(a).update(buf).digest('hex');
  return { md5: h('md5'), sha1: h('sha1'), sha256: h('sha256') };
}

/** mkdir -p of `rel` under `base`, refusing a path that resolves out of `base` (a planted link). */
async function mkdirInside(base: string, rel: string): Promise<string> {
  const dir = path.join(base, rel);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const [b, d] = [await fs.realpath(base), await fs.realpath(dir)];
  if (d !== b && !d.startsWith(b + path.sep)) throw new FleetError('internal', `${dir} resolves to ${d}, outside the repository ${b}`);
  return dir;
}

export interface AddOptions {
  dataDir: string;
  suite: string;
  files: string[];
  log: (line: string) => void;
  now?: () => Date;
  decompress?: Decompress;
}

export interface AddResult {
  added: RepoEntry[];
  /** Entries the same package (and architecture) had before, replaced. */
  replaced: RepoEntry[];
}

/**
 * Adds .deb files to a suite (each read and checked first: nothing is
 * written when one is not a package), replacing the suite's older entry of
 * the same package and architecture; then publishes the suite.
 */
export async function addDebs(o: AddOptions): Promise<AddResult> {
  const suite = requireSuite(o.suite);
  const p = repoPaths(o.dataDir);
  const checked: { entry: RepoEntry; buf: Buffer }[] = [];
  for (const file of o.files) {
    let buf: Buffer;
    try {
      const st = await fs.stat(file);
      if (!st.isFile()) throw new FleetError('usage.invalid', `${file} is not a regular file`);
      buf = await fs.readFile(file);
    } catch (e) {
      if (e instanceof FleetError) throw e;
      throw new FleetError('usage.invalid', `cannot read ${file}: ${(e as Error).message}`);
    }
    const info = await readDeb(buf, show(file), o.decompress);
    if (info.architecture !== REPO_ARCH && info.architecture !== 'all') {
      throw new FleetError('request.invalid', `${show(file)} is for ${info.architecture}: the repository serves ${REPO_ARCH} (and all)`);
    }
    const filename = poolPath(info, REPO_COMPONENT);
    checked.push({ entry: { package: info.package, version: info.version, architecture: info.architecture, fields: info.fields, filename, size: buf.length, ...digests(buf) }, buf });
  }
  const lock = await lockRepo(p, `fleet repo add (${suite})`);
  try {
    const idx = await readIndex(p);
    const entries = idx.suites[suite] ?? [];
    const all = Object.values(idx.suites).flat();
    const added: RepoEntry[] = [];
    const replaced: RepoEntry[] = [];
    for (const { entry, buf } of checked) {
      const same = all.find((e) => e.filename === entry.filename) ?? added.find((e) => e.filename === entry.filename);
      if (same && same.sha256 !== entry.sha256) {
        throw new FleetError('conflict', `the pool already holds a different ${entry.filename} (sha256 ${same.sha256.slice(0, 16)}…, this one ${entry.sha256.slice(0, 16)}…): a package's name, version and architecture name one file`);
      }
      const dest = path.join(p.debian, entry.filename);
      await mkdirInside(p.debian, path.dirname(entry.filename));
      const st = await fs.lstat(dest).catch(() => undefined);
      if (!st || !st.isFile() || st.size !== entry.size) await writeFileAtomic(dest, buf, { mode: 0o644 });
      for (let i = entries.length - 1; i >= 0; i--) {
        const e = entries[i]!;
        if (e.package === entry.package && e.architecture === entry.architecture) {
          entries.splice(i, 1);
          if (e.filename !== entry.filename) replaced.push(e);
        }
      }
      entries.push(entry);
      added.push(entry);
      o.log(`${entry.package} ${entry.version} ${entry.architecture} → ${entry.filename}`);
    }
    idx.suites[suite] = entries;
    await writeIndex(p, idx);
    await publish(p, suite, entries, o.now?.() ?? new Date(), o.log);
    await collectPool(p, idx, o.log);
    return { added, replaced };
  } finally {
    lock.release();
  }
}

/** Removes packages (by name, every architecture) from a suite and publishes it. */
export async function removePackages(o: { dataDir: string; suite: string; names: string[]; log: (s: string) => void; now?: () => Date }): Promise<RepoEntry[]> {
  const suite = requireSuite(o.suite);
  const p = repoPaths(o.dataDir);
  const lock = await lockRepo(p, `fleet repo remove (${suite})`);
  try {
    const idx = await readIndex(p);
    const entries = idx.suites[suite] ?? [];
    const missing = o.names.filter((n) => !entries.some((e) => e.package === n));
    if (missing.length > 0) throw new FleetError('not_found', `suite ${suite} holds no package ${missing.map((n) => show(n)).join(', ')} (fleet repo list --suite ${suite})`);
    const gone = entries.filter((e) => o.names.includes(e.package));
    idx.suites[suite] = entries.filter((e) => !o.names.includes(e.package));
    await writeIndex(p, idx);
    await publish(p, suite, idx.suites[suite], o.now?.() ?? new Date(), o.log);
    await collectPool(p, idx, o.log);
    return gone;
  } finally {
    lock.release();
  }
}

export interface ListedEntry {
  suite: string;
  package: string;
  version: string;
  architecture: string;
  filename: string;
  size: number;
  sha256: string;
}

/** The packages of one suite, or of every suite; sorted. */
export async function listPackages(dataDir: string, suite?: string): Promise<ListedEntry[]> {
  const idx = await readIndex(repoPaths(dataDir));
  const out: ListedEntry[] = [];
  for (const [s, entries] of Object.entries(idx.suites)) {
    if (suite !== undefined && s !== suite) continue;
    for (const e of entries) out.push({ suite: s, package: e.package, version: e.version, architecture: e.architecture, filename: e.filename, size: e.size, sha256: e.sha256 });
  }
  return out.sort((a, b) => (a.suite + '\0' + a.package + '\0' + a.architecture < b.suite + '\0' + b.package + '\0' + b.architecture ? -1 : 1));
}

/** Packages, Packages.gz, Release, InRelease, Release.gpg of one suite. */
async function publish(p: RepoPaths, suite: string, entries: readonly RepoEntry[], now: Date, log: (s: string) => void): Promise<void> {
  const fpr = await ensureKey({ home: p.key, keyringGpg: p.keyringGpg, keyringAsc: p.keyringAsc }, log);
  const dist = await mkdirInside(p.debian, `dists/${suite}`);
  const binRel = `${REPO_COMPONENT}/binary-${REPO_ARCH}`;
  const bin = await mkdirInside(dist, binRel);
  const packages = renderPackages(entries.map((e) => ({ ...e, stanza: renderStanza(e.fields, e) })));
  const gz = gzipSync(packages, { level: 9 });
  const files: IndexFile[] = [];
  for (const [name, data] of [
    ['Packages', Buffer.from(packages)],
    ['Packages.gz', gz],
  ] as const) {
    await writeFileAtomic(path.join(bin, name), data, { mode: 0o644 });
    files.push({ path: `${binRel}/${name}`, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  }
  const release = renderRelease({ suite, codename: suite, date: now, architectures: [REPO_ARCH], components: [REPO_COMPONENT], files });
  const releaseFile = path.join(dist, 'Release');
  await writeFileAtomic(releaseFile, release, { mode: 0o644 });
  await signRelease(p.key, fpr, releaseFile, dist);
  log(`published dists/${suite}: ${entries.length} package(s), signed by ${fpr.slice(-16)}`);
}

/** Deletes pool files no suite refers to (and their emptied directories). */
async function collectPool(p: RepoPaths, idx: RepoIndex, log: (s: string) => void): Promise<void> {
  const wanted = new Set(Object.values(idx.suites).flatMap((es) => es.map((e) => e.filename)));
  const walk = async (rel: string): Promise<void> => {
    const dir = path.join(p.debian, rel);
    const ents = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const d of ents) {
      const r = `${rel}/${d.name}`;
      if (d.isDirectory()) {
        await walk(r);
        await fs.rmdir(path.join(p.debian, r)).catch(() => {});
      } else if (d.isFile() && r.endsWith('.deb') && !wanted.has(r)) {
        await fs.unlink(path.join(p.debian, r));
        log(`removed ${r} (no suite refers to it)`);
      }
    }
  };
  await walk('pool');
}

/** The repository's public key (binary keyring), or undefined when the repository has none yet. */
export async function readPublicKey(dataDir: string): Promise<Buffer | undefined> {
  try {
    const b = await fs.readFile(repoPaths(dataDir).keyringGpg);
    return b.length > 0 && b.length <= 64 * 1024 ? b : undefined;
  } catch {
    return undefined;
  }
}

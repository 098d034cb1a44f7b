/**
 * The image store under the data dir (I/O): a file index, content-addressed
 * image directories and build workspaces (docs/decisions/0009-image-store.md).
 *
 *   DATA/images/index.json          name → digest, build key (atomic writes)
 *   DATA/images/sha256/<hex>/       rootfs.tar.zst rootfs.squashfs vmlinuz
 *                                   initrd.img manifest.json SHA256SUMS
 *   DATA/images/tmp/<id>/           a build or import in progress
 *   DATA/images/images.lock(.json)  one writer at a time (SQLite lock, as
 *                                   the data dir's; not the server's lock)
 *
 * A build or import works in tmp/, publishes its directory by one rename
 * into sha256/ and registers the name last (one atomic write of the index).
 * A crash leaves a tmp/ directory or an unregistered sha256/ directory,
 * which the next writer removes under the lock: nothing is ever
 * half-registered. Readers (list, show, the server) take no lock.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { show } from '../../common/patterns.js';
import { lockDataDir, type DataDirLock } from '../store/lock.js';
import {
  FILES,
  digestHex,
  manifestArtefacts,
  parseIndex,
  parseManifest,
  referencedDigests,
  renderIndex,
  renderManifest,
  renderSums,
  withEntry,
  withoutEntry,
  type Artefact,
  type ImageIndex,
  type ImageManifest,
  type NamedManifest,
} from './manifest.js';

export const IMAGES_DIR = 'images';
export const IMAGES_LOCK = 'images.lock';

export interface ImagePaths {
  root: string;
  index: string;
  blobs: string;
  tmp: string;
}

export function imagePaths(dataDir: string): ImagePaths {
  const root = path.join(path.resolve(dataDir), IMAGES_DIR);
  return { root, index: path.join(root, 'index.json'), blobs: path.join(root, 'sha256'), tmp: path.join(root, 'tmp') };
}

export function imageDir(p: ImagePaths, digest: string): string {
  return path.join(p.blobs, digestHex(digest));
}

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export async function readIndex(p: ImagePaths): Promise<ImageIndex> {
  return parseIndex(await readText(p.index), p.index);
}

export async function writeIndex(p: ImagePaths, index: ImageIndex): Promise<void> {
  await writeFileAtomic(p.index, renderIndex(index), { mode: 0o644 });
}

export async function readManifest(p: ImagePaths, digest: string): Promise<ImageManifest | null> {
  const file = path.join(imageDir(p, digest), FILES.manifest);
  const text = await readText(file);
  return text === null ? null : parseManifest(text, file);
}

/** Every registered image with its manifest, by name. */
export async function listImages(dataDir: string): Promise<NamedManifest[]> {
  const p = imagePaths(dataDir);
  const index = await readIndex(p);
  const out: NamedManifest[] = [];
  for (const name of Object.keys(index.images).sort()) {
    const m = await readManifest(p, index.images[name]!.digest);
    if (m) out.push({ name, ...m });
  }
  return out;
}

export async function showImage(dataDir: string, name: string): Promise<NamedManifest> {
  const p = imagePaths(dataDir);
  const e = (await readIndex(p)).images[name];
  if (!e) throw new FleetError('not_found', `no image ${show(name)} in ${p.root} (fleet image list)`);
  const m = await readManifest(p, e.digest);
  if (!m) throw new FleetError('internal', `image ${show(name)}: ${imageDir(p, e.digest)} has no manifest`);
  return { name, ...m };
}

/** The image store's writer lock (creates DATA/images). */
export async function lockImages(p: ImagePaths, what: string): Promise<DataDirLock> {
  // A data dir made here is made as openDataDir makes it (0700); images/ inside may be read by a file server.
  await fs.mkdir(path.dirname(p.root), { recursive: true, mode: 0o700 });
  await fs.mkdir(p.root, { recursive: true, mode: 0o755 });
  return lockDataDir(p.root, what, IMAGES_LOCK);
}

/** Mount points at or under `dir` in a /proc/self/mountinfo text (octal escapes decoded). */
export function mountPointsUnder(mountinfo: string, dir: string): string[] {
  const d = dir.replace(/\/+$/, '');
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === d || p.startsWith(`${d}/`)) out.push(p);
  }
  return out;
}

/** Removes a workspace, never across a mount point (a killed build's /proc, /dev): those are left and named. */
export async function removeTree(dir: string): Promise<void> {
  const info = await readText('/proc/self/mountinfo');
  const mounts = info === null ? [] : mountPointsUnder(info, dir);
  if (mounts.length > 0) {
    throw new FleetError('internal', `not removing ${dir}: ${mounts.join(', ')} ${mounts.length === 1 ? 'is' : 'are'} mounted under it (umount, then remove it)`);
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * Under the lock: removes what a crashed or interrupted writer left (tmp/*,
 * and sha256/* directories no name refers to). Returns what it removed.
 */
export async function cleanStale(p: ImagePaths, log: (s: string) => void): Promise<string[]> {
  const removed: string[] = [];
  const index = await readIndex(p);
  const live = new Set([...referencedDigests(index)].map(digestHex));
  for (const [dir, keep] of [
    [p.tmp, () => false],
    [p.blobs, (n: string) => live.has(n)],
  ] as const) {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (keep(n)) continue;
      const full = path.join(dir, n);
      try {
        await removeTree(full);
        removed.push(full);
      } catch (e) {
        log(`warning: ${(e as Error).message}`);
      }
    }
  }
  if (removed.length) log(`removed what an interrupted build left: ${removed.map((r) => path.relative(p.root, r)).join(', ')}`);
  return removed;
}

/** A fresh workspace under tmp/ (0700). */
export async function makeWorkspace(p: ImagePaths, label: string): Promise<string> {
  await fs.mkdir(p.tmp, { recursive: true, mode: 0o700 });
  const dir = path.join(p.tmp, `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(dir, { mode: 0o700 });
  return dir;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function artefact(dir: string, file: string): Promise<Artefact> {
  const full = path.join(dir, file);
  const st = await fs.lstat(full);
  return { file, size: st.size, sha256: await sha256File(full) };
}

/** An image already registered with this build key whose directory is intact, if any. */
export async function findByKey(p: ImagePaths, key: string): Promise<ImageManifest | null> {
  const index = await readIndex(p);
  for (const e of Object.values(index.images)) {
    if (e.buildKey !== key) continue;
    const m = await readManifest(p, e.digest).catch(() => null);
    if (m && m.buildKey === key) return m;
  }
  return null;
}

/** Registers `name` on an existing digest (the index's one atomic write). */
export async function register(p: ImagePaths, name: string, m: ImageManifest, now: () => Date): Promise<void> {
  const index = await readIndex(p);
  const cur = index.images[name];
  if (cur && cur.digest === m.digest && cur.buildKey === m.buildKey) return;
  await writeIndex(p, withEntry(index, name, { digest: m.digest, buildKey: m.buildKey, registered: now().toISOString() }));
}

/**
 * Publishes a finished image directory (its artefacts, without manifest and
 * sums) and registers `name`: manifest.json and SHA256SUMS are written
 * into it, it is renamed to sha256/<hex> (an identical one already there is
 * kept and this copy dropped), then the index names it.
 */
export async function publish(p: ImagePaths, name: string, outDir: string, m: ImageManifest, now: () => Date): Promise<void> {
  await writeFileAtomic(path.join(outDir, FILES.manifest), renderManifest(m), { mode: 0o644 });
  await writeFileAtomic(path.join(outDir, FILES.sums), renderSums(Object.values(m.artefacts).filter((a): a is Artefact => a !== null)), { mode: 0o644 });
  await fs.chmod(outDir, 0o755);
  await fs.mkdir(p.blobs, { recursive: true, mode: 0o755 });
  const dest = imageDir(p, m.digest);
  try {
    await fs.rename(outDir, dest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    // The same content is there already (an identical import): keep that one.
    await fs.rm(outDir, { recursive: true, force: true });
  }
  await register(p, name, (await readManifest(p, m.digest)) ?? m, now);
}

export interface RemoveResult {
  digest: string;
  /** Whether the image directory went too (no other name refers to it). */
  removedContent: boolean;
}

/** Unregisters `name` (lock held by the caller); its directory goes once no name refers to it. */
export async function unregister(p: ImagePaths, name: string): Promise<RemoveResult> {
  const index = await readIndex(p);
  const e = index.images[name];
  if (!e) throw new FleetError('not_found', `no image ${show(name)} in ${p.root} (fleet image list)`);
  const next = withoutEntry(index, name);
  await writeIndex(p, next);
  if (referencedDigests(next).has(e.digest)) return { digest: e.digest, removedContent: false };
  await removeTree(imageDir(p, e.digest));
  return { digest: e.digest, removedContent: true };
}

/** Whether `file` is a regular file (lstat: a link is not). */
export async function isRegularFile(file: string): Promise<boolean> {
  try {
    return (await fs.lstat(file)).isFile();
  } catch {
    return false;
  }
}


/**
 * Copies image `name` of another data dir's store into this one as `as`
 * (hard links where both are on one filesystem, else copies), checking
 * every artefact against its manifest: a lab or a test reuses an image built
 * once per machine or CI run. The copy is published like a build (tmp/,
 * one rename, the name last); an image with that digest already here is
 * just registered.
 */
export async function copyImage(o: { fromDataDir: string; name: string; toDataDir: string; as: string; log: (s: string) => void; now?: () => Date }): Promise<{ image: NamedManifest; copied: boolean }> {
  const now = o.now ?? (() => new Date());
  const src = await showImage(o.fromDataDir, o.name);
  const from = imagePaths(o.fromDataDir);
  const p = imagePaths(o.toDataDir);
  if (path.resolve(from.root) === path.resolve(p.root)) {
    throw new FleetError('usage.invalid', `copying image ${show(o.name)} onto its own store ${p.root}`);
  }
  const lock = await lockImages(p, `copy image ${o.name}`);
  let ws: string | undefined;
  try {
    await cleanStale(p, o.log);
    const here = await readManifest(p, src.digest).catch(() => null);
    if (here) {
      await register(p, o.as, here, now);
      return { image: { name: o.as, ...here }, copied: false };
    }
    ws = await makeWorkspace(p, 'copy');
    const out = path.join(ws, 'out');
    await fs.mkdir(out);
    const srcDir = imageDir(from, src.digest);
    for (const a of manifestArtefacts(src)) {
      const to = path.join(out, a.file);
      try {
        await fs.link(path.join(srcDir, a.file), to);
      } catch {
        await fs.copyFile(path.join(srcDir, a.file), to);
      }
      const got = await artefact(out, a.file);
      if (got.sha256 !== a.sha256 || got.size !== a.size) {
        throw new FleetError('image.build_failed', `${path.join(srcDir, a.file)} does not match its manifest (sha256 ${got.sha256.slice(0, 12)}…, expected ${a.sha256.slice(0, 12)}…)`);
      }
    }
    const { name: _n, ...manifest } = src;
    await publish(p, o.as, out, manifest, now);
    o.log(`image ${o.as}: ${src.digest} copied from ${from.root}`);
    return { image: { name: o.as, ...manifest }, copied: true };
  } finally {
    if (ws) await removeTree(ws).catch((e: Error) => o.log(`warning: ${e.message}`));
    lock.release();
  }
}

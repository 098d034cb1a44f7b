/**
 * `fleet image import NAME FILE` (I/O): a root filesystem tarball (.tar,
 * .tar.gz, .tar.zst: told by content, not by name) or an OCI image archive
 * (oci-archive or docker save). Every member is checked (server/images/tar.ts)
 * before GNU tar extracts anything; a hostile archive is refused with
 * FleetError('image.unsafe') and nothing is registered. OCI layers are
 * applied bottom first with their whiteouts. The kernel and initramfs are
 * taken from /boot when the image has them, else the manifest says absent.
 */
import { createReadStream, createWriteStream, closeSync, openSync, readSync, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FleetError } from '../../common/errors.js';
import { show } from '../../common/patterns.js';
import { runProcess } from '../../common/spawn.js';
import type { NamedManifest } from './manifest.js';
import { requireImageName } from './names.js';
import { INDEX_TYPES, blobPath, compressionOf, configArch, dockerLayers, manifestLayers, pickFromIndex } from './oci.js';
import { importKey, tarExtractArgs } from './plan.js';
import { cleanStale, findByKey, imagePaths, lockImages, makeWorkspace, register, removeTree, sha256File } from './store.js';
import { TreeGuard, memberPath, tarEntries, whiteoutOf, type TarEntry, type Whiteout } from './tar.js';
import { failureTail, mustRun, publishTree, type Tools } from './tree.js';
import { packTools } from './build.js';

export interface ImportOptions {
  dataDir: string;
  name: string;
  file: string;
  /** Picks the image of a multi-architecture OCI index. */
  arch?: string;
  force?: boolean;
  log: (line: string) => void;
  signal?: AbortSignal;
  now?: () => Date;
}

/** Copies bytes [start, start+size) of `file` to `dest`, decompressed by their magic; returns the sha256 of the bytes read. */
async function unpackRange(file: string, start: number, size: number, dest: string, zstd: string, signal?: AbortSignal): Promise<string> {
  const raw = `${dest}.raw`;
  const h = createHash('sha256');
  if (size === 0) await fs.writeFile(raw, '', { mode: 0o600 });
  else {
    const src = createReadStream(file, { start, end: start + size - 1, highWaterMark: 1 << 20 });
    src.on('data', (c) => h.update(c as Buffer));
    await pipeline(src, createWriteStream(raw, { mode: 0o600 }));
  }
  const fd = openSync(raw, 'r');
  const head = Buffer.alloc(4);
  const n = readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  const kind = compressionOf(head.subarray(0, n));
  if (kind === 'none') await fs.rename(raw, dest);
  else if (kind === 'gzip') {
    await pipeline(createReadStream(raw), createGunzip(), createWriteStream(dest, { mode: 0o600 }));
    await fs.rm(raw);
  } else {
    const r = await runProcess(zstd, ['-d', '-q', '-f', '-o', dest, raw], { timeoutMs: 30 * 60_000, ...(signal ? { signal } : {}) });
    if (r.code !== 0) throw new FleetError('image.unsafe', `cannot decompress (zstd ${failureTail(r)})`);
    await fs.rm(raw);
  }
  return h.digest('hex');
}

/** The members of a plain tar file. */
function readMembers(file: string, size: number): TarEntry[] {
  const fd = openSync(file, 'r');
  try {
    const read = (off: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      const n = readSync(fd, b, 0, len, off);
      return b.subarray(0, n);
    };
    return [...tarEntries(read, size)];
  } finally {
    closeSync(fd);
  }
}

function readAt(file: string, off: number, len: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    return b.subarray(0, readSync(fd, b, 0, len, off));
  } finally {
    closeSync(fd);
  }
}

/** Top-level names that make an archive an OCI/docker image rather than a root filesystem. */
export function looksLikeOci(paths: readonly string[]): boolean {
  const top = new Set(paths);
  return (top.has('oci-layout') && top.has('index.json')) || (top.has('manifest.json') && !top.has('etc') && !paths.some((p) => p.startsWith('etc/')));
}

interface Layer {
  what: string;
  entry: TarEntry;
  digest: string | null;
}

/** The layers of an OCI archive (members of the outer tar), bottom first, and the architecture its config says. */
function ociLayers(outer: string, members: Map<string, TarEntry>, arch: string | undefined): { layers: Layer[]; arch: string | null } {
  const file = (p: string, hops = 0): TarEntry => {
    const e = members.get(p);
    if (!e) throw new FleetError('image.unsafe', `not a usable OCI image archive: ${show(p)} is missing`);
    if (e.type === 'symlink' && hops < 8) return file(memberPath(path.posix.join(path.posix.dirname(p), e.linkname), 'link in the archive'), hops + 1);
    if (e.type !== 'file') throw new FleetError('image.unsafe', `not a usable OCI image archive: ${show(p)} is not a file`);
    return e;
  };
  const text = (p: string): string => {
    const e = file(p);
    if (e.size > 4 * 1024 * 1024) throw new FleetError('image.unsafe', `${show(p)} is too large for image metadata`);
    return readAt(outer, e.offset, e.size).toString('utf8');
  };
  if (members.has('index.json')) {
    let d = pickFromIndex(text('index.json'), arch);
    for (let depth = 0; INDEX_TYPES.includes(d.mediaType); depth++) {
      if (depth > 4) throw new FleetError('image.unsafe', 'not a usable OCI image archive: indexes nested too deep');
      d = pickFromIndex(text(blobPath(d.digest)), arch, blobPath(d.digest));
    }
    const m = manifestLayers(text(blobPath(d.digest)), blobPath(d.digest));
    const a = m.config ? configArch(text(blobPath(m.config.digest))) : null;
    return { layers: m.layers.map((l) => ({ what: blobPath(l.digest), entry: file(blobPath(l.digest)), digest: l.digest })), arch: a };
  }
  const m = dockerLayers(text('manifest.json'));
  return { layers: m.layers.map((l) => ({ what: l, entry: file(l), digest: null })), arch: m.config ? configArch(text(m.config)) : null };
}

/** Applies one layer's whiteouts to the tree on disk (the guard has checked their paths). */
async function applyWhiteouts(tree: string, whiteouts: readonly Whiteout[]): Promise<void> {
  for (const w of whiteouts) {
    if (w.kind === 'delete') await fs.rm(path.join(tree, w.path), { recursive: true, force: true });
    else {
      const dir = path.join(tree, w.dir);
      let names: string[] = [];
      try {
        names = await fs.readdir(dir);
      } catch {
        continue;
      }
      for (const n of names) await fs.rm(path.join(dir, n), { recursive: true, force: true });
    }
  }
}

async function extract(tar: string, file: string, tree: string, excludeWhiteouts: boolean, signal?: AbortSignal): Promise<void> {
  await mustRun('tar (extract)', tar, tarExtractArgs(file, tree, { excludeWhiteouts }), { timeoutMs: 60 * 60_000, ...(signal ? { signal } : {}) });
}

export async function importImage(o: ImportOptions): Promise<{ image: NamedManifest; reused: boolean }> {
  const now = o.now ?? (() => new Date());
  const name = requireImageName(o.name);
  const file = path.resolve(o.file);
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) throw new FleetError('usage.invalid', `${show(file)} is not a file`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new FleetError('usage.invalid', 'fleet image import needs root: the image\'s files keep their real owners');
  }
  const tools: Tools = packTools();
  const p = imagePaths(o.dataDir);
  const lock = await lockImages(p, `fleet image import ${name}`);
  let ws: string | undefined;
  try {
    await cleanStale(p, o.log);
    o.log(`reading ${file}`);
    const fileSha = await sha256File(file);
    ws = await makeWorkspace(p, 'import');
    const outer = path.join(ws, 'input.tar');
    await unpackRange(file, 0, st.size, outer, tools.zstd, o.signal);
    const outerSize = (await fs.stat(outer)).size;
    const members = readMembers(outer, outerSize);
    const format = looksLikeOci(members.map((m) => memberPath(m.name, 'member'))) ? 'oci' : 'tar';
    const key = importKey(fileSha, format);
    if (!o.force) {
      const hit = await findByKey(p, key);
      if (hit) {
        await register(p, name, hit, now);
        o.log(`reusing ${hit.digest} (this file was imported before; --force imports again)`);
        return { image: { name, ...hit }, reused: true };
      }
    }
    const tree = path.join(ws, 'tree');
    const out = path.join(ws, 'out');
    await fs.mkdir(tree, { mode: 0o755 });
    await fs.mkdir(out);
    let arch: string | null = o.arch ?? null;
    if (format === 'tar') {
      o.log(`checking ${members.length} members`);
      const guard = new TreeGuard();
      for (const m of members) guard.add(m);
      o.log('extracting');
      await extract(tools.tar, outer, tree, false, o.signal);
    } else {
      const byPath = new Map<string, TarEntry>();
      for (const m of members) byPath.set(memberPath(m.name, 'member'), m);
      const oci = ociLayers(outer, byPath, o.arch);
      arch ??= oci.arch;
      const guard = new TreeGuard();
      for (const [i, l] of oci.layers.entries()) {
        o.log(`layer ${i + 1}/${oci.layers.length}: ${l.what}`);
        const layerTar = path.join(ws, `layer-${i}.tar`);
        const sha = await unpackRange(outer, l.entry.offset, l.entry.size, layerTar, tools.zstd, o.signal);
        if (l.digest && `sha256:${sha}` !== l.digest) throw new FleetError('image.unsafe', `layer ${l.what} does not match its digest (sha256:${sha})`);
        const whiteouts: Whiteout[] = [];
        const entries = readMembers(layerTar, (await fs.stat(layerTar)).size);
        for (const m of entries) {
          const w = whiteoutOf(memberPath(m.name));
          if (!w) continue;
          guard.check({ name: m.name, type: 'file', linkname: '' });
          whiteouts.push(w);
        }
        // Whiteouts hide what the layers below hold; then this layer's files land.
        for (const w of whiteouts) guard.whiteout(w);
        for (const m of entries) if (!whiteoutOf(memberPath(m.name))) guard.add(m);
        await applyWhiteouts(tree, whiteouts);
        await extract(tools.tar, layerTar, tree, true, o.signal);
        await fs.rm(layerTar);
      }
    }
    await fs.rm(outer);
    return await publishTree({ paths: p, name, tree, out, tools, id: { from: `import:${path.basename(file)}`, arch: arch ?? null, buildKey: key, origin: { kind: 'import', file: path.basename(file), format, sha256: fileSha }, agent: false }, log: o.log, ...(o.signal ? { signal: o.signal } : {}), now });
  } finally {
    if (ws) await removeTree(ws).catch((e: Error) => o.log(`warning: ${e.message}`));
    lock.release();
  }
}


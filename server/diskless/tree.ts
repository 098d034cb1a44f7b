/**
 * What a diskless node's NFS exports hold (I/O; spec.ts has the paths):
 *
 * - the image's tree, unpacked from its squashfs once per image (ownership,
 *   modes, setuid bits and xattrs kept: unsquashfs as root; /dev left empty,
 *   the node mounts a devtmpfs there) into a
 *   temporary directory and published by one rename, with tree.json saying
 *   what it is; single-flight per image within the process;
 * - a node's /var, copied from its image's /var the first time fleet serves
 *   the node (`cp -a`, published by one rename) and then the node's own:
 *   kept as it is at every later boot, at an image change and when the node
 *   is removed, until `fleet node remove --purge` (purgeNode).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';
import { disklessRoot, imageTreeDir, nodeDir } from './spec.js';

export interface TreeRecord {
  digest: string;
  image: string;
  unpackedAt: string;
  seconds: number;
}

export interface NodeVarRecord {
  node: string;
  /** The image whose /var this node's /var was copied from. */
  digest: string;
  createdAt: string;
}

const building = new Map<string, Promise<TreeRecord>>();

async function tmpDir(dataDir: string, label: string): Promise<string> {
  const dir = path.join(disklessRoot(dataDir), 'tmp', `${label}-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The image's tree under DATA/diskless/images/<hex>/root, unpacked now unless it already is. */
export function ensureImageTree(o: { dataDir: string; image: string; digest: string; squashfs: string; log?: (l: string) => void }): Promise<TreeRecord> {
  const dir = imageTreeDir(o.dataDir, o.digest);
  const have = building.get(dir);
  if (have) return have;
  const p = (async (): Promise<TreeRecord> => {
    const rec = await readJson<TreeRecord>(path.join(dir, 'tree.json'));
    if (rec && rec.digest === o.digest && existsSync(path.join(dir, 'root'))) return rec;
    const exe = findExecutable('unsquashfs');
    if (!exe) throw new FleetError('unavailable', 'cannot unpack the diskless image tree: unsquashfs missing (apt-get install squashfs-tools)');
    const t0 = Date.now();
    o.log?.(`diskless: unpacking image ${o.image} (${o.digest.slice(0, 19)}) for NFS`);
    const tmp = await tmpDir(o.dataDir, 'tree');
    try {
      const failed = (r: { code: number | null; error?: Error; stderr: string; stdout: string }, what: string) =>
        new FleetError('internal', `unpacking image ${o.image} for diskless nodes: unsquashfs ${what} failed (${r.error ?? `exit ${r.code}`}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
      // Everything but /dev's device nodes: nodes get a devtmpfs there, and fleet server may run without CAP_MKNOD.
      const ls = await runProcess(exe, ['-n', '-ls', '-d', '', o.squashfs], { timeoutMs: 5 * 60_000, maxOutputBytes: 256 * 1024 * 1024 });
      if (ls.code !== 0 || ls.truncated) throw failed(ls, '-ls');
      const tops = [...new Set(ls.stdout.split('\n').map((l) => /^\/([^/]+)$/.exec(l)?.[1]).filter((n): n is string => n !== undefined && n !== 'dev'))];
      const r = await runProcess(exe, ['-n', '-q', '-f', '-d', path.join(tmp, 'root'), o.squashfs, ...tops], { timeoutMs: 30 * 60_000, maxOutputBytes: 1024 * 1024 });
      if (r.code !== 0) throw failed(r, '');
      await fs.mkdir(path.join(tmp, 'root', 'dev'), { recursive: true, mode: 0o755 });
      const out: TreeRecord = { digest: o.digest, image: o.image, unpackedAt: new Date().toISOString(), seconds: (Date.now() - t0) / 1000 };
      await writeFileAtomic(path.join(tmp, 'tree.json'), `${JSON.stringify(out, null, 2)}\n`, { mode: 0o644 });
      await fs.mkdir(path.dirname(dir), { recursive: true });
      // A half-made tree from a crash is replaced; a complete one is published by this rename alone.
      if (existsSync(dir)) await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(tmp, dir);
      o.log?.(`diskless: image ${o.image} unpacked in ${out.seconds.toFixed(1)} s`);
      return out;
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  })();
  building.set(dir, p);
  void p.then(
    () => building.delete(dir),
    () => building.delete(dir),
  );
  return p;
}

/**
 * The node's /var under DATA/diskless/nodes/<node>/var: copied from the
 * image's /var when it does not exist yet, else kept as it is (it is the
 * node's: its logs, its agent's state, what it wrote).
 */
export async function ensureNodeVar(o: { dataDir: string; node: string; digest: string }): Promise<{ created: boolean; record: NodeVarRecord }> {
  const dir = nodeDir(o.dataDir, o.node);
  const rec = await readJson<NodeVarRecord>(path.join(dir, 'node.json'));
  if (rec && existsSync(path.join(dir, 'var'))) return { created: false, record: rec };
  const from = path.join(imageTreeDir(o.dataDir, o.digest), 'root', 'var');
  if (!existsSync(from)) throw new FleetError('internal', `diskless ${o.node}: the image tree has no /var to copy (${from})`);
  const tmp = await tmpDir(o.dataDir, `var-${o.node}`);
  try {
    const r = await runProcess('cp', ['-a', '--', from, path.join(tmp, 'var')], { timeoutMs: 10 * 60_000, maxOutputBytes: 64 * 1024 });
    if (r.code !== 0) throw new FleetError('internal', `diskless ${o.node}: copying the image's /var failed: ${(r.stderr.trim() || r.error?.message || `exit ${r.code}`)}`);
    const record: NodeVarRecord = { node: o.node, digest: o.digest, createdAt: new Date().toISOString() };
    await writeFileAtomic(path.join(tmp, 'node.json'), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
    await fs.mkdir(path.dirname(dir), { recursive: true });
    if (existsSync(dir)) await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(tmp, dir);
    return { created: true, record };
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Removes a node's diskless directory (its /var): `fleet node remove --purge`. True when there was one. */
export async function purgeNodeVar(dataDir: string, node: string): Promise<boolean> {
  const dir = nodeDir(dataDir, node);
  if (!existsSync(dir)) return false;
  await fs.rm(dir, { recursive: true, force: true });
  return true;
}

/** Removes builds a crash left behind (DATA/diskless/tmp); called before the first build of a process. */
export async function cleanDisklessTmp(dataDir: string): Promise<void> {
  await fs.rm(path.join(disklessRoot(dataDir), 'tmp'), { recursive: true, force: true });
}

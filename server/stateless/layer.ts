/**
 * The image's module layer for stateless stage 1 (I/O; spec.ts has the pure
 * parts): the kernel modules stage 1 needs, taken from the image's own
 * squashfs with `unsquashfs` (modules.dep and modules.builtin first, then
 * only the .ko files the plan names: no whole-tree extraction), packed as a
 * zstd cpio the kernel unpacks over the boot environment's initrd.
 *
 *   DATA/stateless/<image hex>/<key>/modules.img   the layer
 *   DATA/stateless/<image hex>/<key>/layer.json    what it holds (kernel, module order, sizes)
 *   DATA/stateless/tmp/<id>/                       a build in progress (published by one rename)
 *
 * The same image gives the same key: a stored layer is reused.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';
import { CpioArchive } from '../bootenv/cpio.js';
import { MODULE_ROOTS, STATELESS_DIR, STATELESS_LAYER_FORMAT, STATELESS_MODULES, layerKey, resolveModules, statelessLayerDir } from './spec.js';

export interface StatelessLayer {
  format: string;
  key: string;
  imageDigest: string;
  kernelVersion: string;
  modules: string[];
  builtin: string[];
  /** Wanted NIC/disk drivers this kernel lacks (noted; loop, squashfs and overlay must be there). */
  missing: string[];
  file: { size: number; sha256: string; compression: 'zstd'; uncompressed: number };
  builtAt: string;
}

export interface StatelessLayerBuild {
  dir: string;
  /** DIR/modules.img */
  path: string;
  layer: StatelessLayer;
  reused: boolean;
}

/** Modules stage 1 cannot boot an image without. */
const REQUIRED = ['loop', 'squashfs', 'overlay'];

async function unsquash(squashfs: string, dest: string, patterns: string[], what: string): Promise<void> {
  const exe = findExecutable('unsquashfs');
  if (!exe) throw new FleetError('unavailable', 'cannot build the stateless module layer: unsquashfs missing (apt-get install squashfs-tools)');
  const r = await runProcess(exe, ['-n', '-q', '-f', '-d', dest, squashfs, ...patterns], { timeoutMs: 300_000, maxOutputBytes: 1024 * 1024 });
  if (r.code !== 0) throw new FleetError('internal', `${what}: unsquashfs failed (${r.error ?? `exit ${r.code}`}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
}

async function readIfThere(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Builds (or reuses) the module layer of the image whose squashfs is
 * `squashfs` and whose kernel is `kernelVersion` (its manifest's).
 */
export async function buildStatelessLayer(o: { dataDir: string; imageDigest: string; squashfs: string; kernelVersion: string; log?: (l: string) => void }): Promise<StatelessLayerBuild> {
  const log = o.log ?? (() => {});
  const kver = o.kernelVersion;
  if (!/^[A-Za-z0-9._+-]+$/.test(kver)) throw new FleetError('request.invalid', `image ${o.imageDigest}: kernel version ${JSON.stringify(kver)} is not a plain word`);
  const zstd = findExecutable('zstd');
  if (!zstd) throw new FleetError('unavailable', 'cannot build the stateless module layer: zstd missing (apt-get install zstd)');
  const tmpRoot = path.join(path.resolve(o.dataDir), STATELESS_DIR, 'tmp');
  await fs.mkdir(tmpRoot, { recursive: true, mode: 0o700 });
  const work = path.join(tmpRoot, randomBytes(6).toString('hex'));
  await fs.mkdir(work);
  try {
    // 1. The image's module index (either module root; merged /usr has both, one a symlink).
    const tree = path.join(work, 'tree');
    await unsquash(o.squashfs, tree, MODULE_ROOTS.flatMap((r) => [`${r}/${kver}/modules.dep`, `${r}/${kver}/modules.builtin`]), `image ${o.imageDigest}: its module index`);
    let root: string | undefined;
    let depText: string | null = null;
    for (const r of MODULE_ROOTS) {
      depText = await readIfThere(path.join(tree, r, kver, 'modules.dep'));
      if (depText !== null) {
        root = r;
        break;
      }
    }
    if (root === undefined || depText === null) throw new FleetError('request.invalid', `image ${o.imageDigest} has no modules.dep for its kernel ${kver} (under /usr/lib/modules or /lib/modules): it cannot boot stateless`);
    const builtinText = (await readIfThere(path.join(tree, root, kver, 'modules.builtin'))) ?? '';
    let plan;
    try {
      plan = resolveModules(depText, builtinText, STATELESS_MODULES);
    } catch (e) {
      throw new FleetError('request.invalid', `image ${o.imageDigest}: ${(e as Error).message}`);
    }
    const absent = REQUIRED.filter((m) => plan.missing.includes(m));
    if (absent.length > 0) throw new FleetError('request.invalid', `image ${o.imageDigest}: kernel ${kver} has no ${absent.join(', ')} (neither a module nor built in): stage 1 cannot mount the image`);
    const key = layerKey({ imageDigest: o.imageDigest, kernelVersion: kver, order: plan.order });
    const dir = statelessLayerDir(o.dataDir, o.imageDigest, key);
    const have = await readIfThere(path.join(dir, 'layer.json'));
    if (have !== null && existsSync(path.join(dir, 'modules.img'))) {
      log(`reusing ${dir}`);
      return { dir, path: path.join(dir, 'modules.img'), layer: JSON.parse(have) as StatelessLayer, reused: true };
    }

    // 2. Only the module files the plan names.
    await unsquash(o.squashfs, tree, plan.order.map((m) => `${root}/${kver}/${m}`), `image ${o.imageDigest}: ${plan.order.length} modules`);
    const a = new CpioArchive();
    for (const m of plan.order) a.file(`lib/modules/${kver}/${m}`, await fs.readFile(path.join(tree, root, kver, m)));
    a.file('etc/fleet/modules', `${plan.order.join('\n')}\n`);
    a.file('etc/fleet/kernel', `${kver}\n`);
    const raw = a.toBuffer();
    const cpio = path.join(work, 'modules.cpio');
    await fs.writeFile(cpio, raw);
    const out = path.join(work, 'out');
    await fs.mkdir(out);
    const r = await runProcess(zstd, ['-q', '-19', '-T0', '--rm', '-o', path.join(out, 'modules.img'), cpio], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new FleetError('internal', `zstd failed (${r.error ?? `exit ${r.code}`}): ${r.stderr.trim()}`);
    await fs.chmod(path.join(out, 'modules.img'), 0o644);
    const img = await fs.readFile(path.join(out, 'modules.img'));
    const layer: StatelessLayer = {
      format: STATELESS_LAYER_FORMAT,
      key,
      imageDigest: o.imageDigest,
      kernelVersion: kver,
      modules: plan.order,
      builtin: plan.builtin,
      missing: plan.missing,
      file: { size: img.length, sha256: createHash('sha256').update(img).digest('hex'), compression: 'zstd', uncompressed: raw.length },
      builtAt: new Date().toISOString(),
    };
    await writeFileAtomic(path.join(out, 'layer.json'), `${JSON.stringify(layer, null, 2)}\n`, { mode: 0o644 });
    await fs.mkdir(path.dirname(dir), { recursive: true });
    if (existsSync(dir)) await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(out, dir);
    log(`built ${dir}: ${plan.order.length} modules for kernel ${kver}, ${(img.length / 1024).toFixed(0)} KiB${plan.missing.length > 0 ? ` (not in this kernel: ${plan.missing.join(', ')})` : ''}`);
    return { dir, path: path.join(dir, 'modules.img'), layer, reused: false };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

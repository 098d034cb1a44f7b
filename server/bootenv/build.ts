/**
 * Building and storing the fleet boot environment (I/O; the pure parts are in
 * spec.ts). docs/bootenv.md:
 *
 *   DATA/bootenv/<key>/{vmlinuz,initrd.img,manifest.json}   one build, named by its build key
 *   DATA/bootenv/current -> <key>                           the latest (a symlink, replaced by rename)
 *   DATA/bootenv/tmp/<id>/                                  a build in progress
 *   DATA/bootenv/bootenv.lock(.json)                        one writer at a time
 *
 * A build works in tmp/, publishes its directory by one rename and then
 * points `current` at it (a new symlink renamed over the old one): readers
 * (the boot face, `fleet bootenv show`) never see half a build and take no
 * lock. The same inputs (kernel, package versions, modules, the shell
 * assets) give the same key, and a stored build with that key is reused.
 */
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, realpathSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';
import { lockDataDir, type DataDirLock } from '../store/lock.js';
import { CpioArchive } from './cpio.js';
import {
  BOOTENV_ASSETS,
  BOOTENV_FORMAT,
  BOOTENV_MODULES,
  BOOTENV_PACKAGES,
  BOOTENV_TOOLS,
  GRUB_PLATFORMS,
  bootenvKey,
  mergeModuleOrder,
  parseDpkgVersions,
  parseLdd,
  parseShowDepends,
  renderInit,
  bootenvPaths,
  type BootenvManifest,
  type BootenvPaths,
} from './spec.js';

export { BOOTENV_DIR, bootenvPaths, type BootenvPaths } from './spec.js';

export const BOOTENV_LOCK = 'bootenv.lock';

export interface BootenvBuild {
  dir: string;
  manifest: BootenvManifest;
  reused: boolean;
}

export interface BootenvBuildOptions {
  dataDir: string;
  /** Kernel version; default the newest /boot/vmlinuz-KVER with /lib/modules/KVER. */
  kernelVersion?: string;
  force?: boolean;
  log?: (line: string) => void;
}

/** Directory of the shell assets (works from server/bootenv and from dist/server/bootenv). */
export function bootenvAssetsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const c of [path.join(dir, 'assets'), path.join(dir, 'server', 'bootenv', 'assets')]) {
      if (existsSync(path.join(c, 'install.sh'))) return c;
    }
    dir = path.dirname(dir);
  }
  throw new FleetError('internal', 'server/bootenv/assets not found next to the bootenv module');
}

async function must(file: string, args: string[], what: string, timeoutMs = 60_000): Promise<string> {
  const r = await runProcess(file, args, { timeoutMs, maxOutputBytes: 16 * 1024 * 1024 });
  if (r.code !== 0) throw new FleetError('internal', `${what}: ${file} ${args.join(' ')} failed (${r.error ?? `exit ${r.code}`}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

/** Kernel versions with /boot/vmlinuz-KVER and /lib/modules/KVER/modules.dep, newest first. */
export function hostKernels(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/boot');
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((k) => existsSync(`/lib/modules/${k}/modules.dep`))
    .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
}

/** What this host lacks to build the boot environment, as "name (package)" ([] when nothing). */
export function bootenvPrerequisites(): string[] {
  const missing: string[] = [];
  for (const [n, p] of [['busybox', 'busybox-static'], ['modprobe', 'kmod'], ['ldd', 'libc-bin'], ['dpkg-query', 'dpkg']] as const) if (!findExecutable(n)) missing.push(`${n} (${p})`);
  for (const t of BOOTENV_TOOLS) if (!findExecutable(t.name)) missing.push(`${t.name} (${t.pkg})`);
  for (const g of GRUB_PLATFORMS) if (!existsSync(`/usr/lib/grub/${g}/modinfo.sh`)) missing.push(`/usr/lib/grub/${g} (${g === 'i386-pc' ? 'grub-pc-bin' : 'grub-efi-amd64-bin'})`);
  if (hostKernels().length === 0) missing.push('a kernel in /boot with /lib/modules (linux-image-amd64)');
  return missing;
}

export async function readBootenvAssets(): Promise<Record<string, string>> {
  const dir = bootenvAssetsDir();
  const out: Record<string, string> = {};
  for (const a of BOOTENV_ASSETS) out[a.name] = await fs.readFile(path.join(dir, a.name), 'utf8');
  return out;
}

async function moduleOrder(kver: string): Promise<string[]> {
  const modprobe = findExecutable('modprobe')!;
  const lists: string[][] = [];
  // One module per call: --show-depends resolves only its first argument.
  for (const m of BOOTENV_MODULES) lists.push(parseShowDepends(await must(modprobe, ['-S', kver, '--show-depends', m], `module ${m}`, 10_000), kver));
  return mergeModuleOrder(lists);
}

async function packageVersions(kver: string): Promise<Record<string, string>> {
  const r = await runProcess(findExecutable('dpkg-query')!, ['-W', '-f', '${Package} ${Version}\n', `linux-image-${kver}`, ...BOOTENV_PACKAGES], { timeoutMs: 30_000 });
  // Exit 1 when some package is not installed (a tool from elsewhere): the versions that are known still count.
  return parseDpkgVersions(r.stdout);
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function readBootenvManifest(dir: string): Promise<BootenvManifest | null> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as BootenvManifest;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The current build (what DATA/bootenv/current points at), or null when none was built. */
export async function currentBootenv(dataDir: string): Promise<{ dir: string; manifest: BootenvManifest } | null> {
  const p = bootenvPaths(dataDir);
  let target: string;
  try {
    target = await fs.readlink(p.current);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const dir = path.resolve(p.root, target);
  const manifest = await readBootenvManifest(dir);
  return manifest ? { dir, manifest } : null;
}

async function pointCurrent(p: BootenvPaths, key: string): Promise<void> {
  const link = path.join(p.root, `.current.${process.pid}.${randomBytes(4).toString('hex')}`);
  await fs.symlink(key, link);
  await fs.rename(link, p.current);
}

export async function lockBootenv(p: BootenvPaths, what: string): Promise<DataDirLock> {
  await fs.mkdir(path.dirname(p.root), { recursive: true, mode: 0o700 });
  await fs.mkdir(p.root, { recursive: true, mode: 0o755 });
  return lockDataDir(p.root, what, BOOTENV_LOCK);
}

/** Builds the boot environment, or reuses the stored build with the same key; `current` points at it either way. */
export async function buildBootenv(o: BootenvBuildOptions): Promise<BootenvBuild> {
  const log = o.log ?? (() => {});
  const missing = bootenvPrerequisites();
  if (missing.length > 0) throw new FleetError('unavailable', `cannot build the boot environment, missing: ${missing.join(', ')}`);
  const kver = o.kernelVersion ?? hostKernels()[0]!;
  if (!existsSync(`/boot/vmlinuz-${kver}`) || !existsSync(`/lib/modules/${kver}/modules.dep`)) {
    throw new FleetError('unavailable', `kernel ${kver} not found in /boot and /lib/modules (apt-get install linux-image-amd64)`);
  }
  const modules = await moduleOrder(kver);
  const packages = await packageVersions(kver);
  const assets = await readBootenvAssets();
  const key = bootenvKey({ kernelVersion: kver, packages, modules, assets });
  const p = bootenvPaths(o.dataDir);
  const lock = await lockBootenv(p, 'fleet bootenv build');
  try {
    await fs.rm(p.tmp, { recursive: true, force: true });
    const dir = path.join(p.root, key);
    const have = await readBootenvManifest(dir);
    if (have && !o.force) {
      await pointCurrent(p, key);
      log(`reusing ${dir}`);
      return { dir, manifest: have, reused: true };
    }
    log(`building ${key.slice(0, 16)} (kernel ${kver}, ${modules.length} modules)`);
    const work = path.join(p.tmp, randomBytes(6).toString('hex'));
    await fs.mkdir(work, { recursive: true });
    const a = new CpioArchive();
    // Base tree.
    for (const d of ['proc', 'sys', 'run', 'mnt', 'target', 'etc', 'usr/bin', 'usr/sbin', 'var/log', 'lib', 'lib64']) a.dir(d);
    a.dir('dev');
    a.charDevice('dev/console', 5, 1, 0o600);
    a.charDevice('dev/null', 1, 3, 0o666);
    a.dir('tmp', 0o1777);
    a.dir('root', 0o700);
    a.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
    a.file('etc/group', 'root:x:0:\n');
    a.file('etc/hosts', '127.0.0.1 localhost\n');
    a.file('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
    a.file('etc/os-release', `NAME="fleet boot environment"\nID=fleet-bootenv\nID_LIKE=debian\nVERSION_ID=${key.slice(0, 12)}\n`);
    if (existsSync('/etc/mke2fs.conf')) a.file('etc/mke2fs.conf', readFileSync('/etc/mke2fs.conf'));
    // busybox and its applets (real tools below replace any applet of the same name by path order: /usr/sbin, /usr/bin first).
    const busybox = findExecutable('busybox')!;
    a.file('bin/busybox', readFileSync(busybox), 0o755);
    const applets = (await must(busybox, ['--list'], 'busybox --list')).split('\n').map((s) => s.trim()).filter((s) => /^[A-Za-z0-9_.[-]+$/.test(s) && s !== 'busybox');
    for (const n of applets) a.symlink(`bin/${n}`, 'busybox');
    a.dir('sbin');
    // Tools and their libraries.
    const libs: string[] = [];
    for (const t of BOOTENV_TOOLS) {
      const exe = realpathSync(findExecutable(t.name)!);
      a.file(t.dest, readFileSync(exe), 0o755);
      for (const al of t.aliases ?? []) a.symlink(path.join(path.dirname(t.dest), al), path.basename(t.dest));
      const r = await runProcess(findExecutable('ldd')!, [exe], { timeoutMs: 10_000 });
      if (r.code === 0) for (const l of parseLdd(r.stdout)) if (!libs.includes(l)) libs.push(l);
    }
    for (const l of libs) a.file(l, readFileSync(realpathSync(l)), 0o755);
    // GRUB's platform modules (grub-install --directory=/usr/lib/grub/PLATFORM).
    for (const g of GRUB_PLATFORMS) {
      const gdir = `/usr/lib/grub/${g}`;
      for (const f of readdirSync(gdir).sort()) {
        const st = await fs.stat(path.join(gdir, f));
        if (st.isFile()) a.file(`usr/lib/grub/${g}/${f}`, readFileSync(path.join(gdir, f)), st.mode & 0o777);
      }
    }
    // Kernel modules in load order.
    for (const m of modules) a.file(`lib/modules/${kver}/${m}`, readFileSync(`/lib/modules/${kver}/${m}`));
    a.file('etc/fleet/modules', `${modules.join('\n')}\n`);
    for (const s of BOOTENV_ASSETS) {
      const text = s.name === 'init.sh' ? renderInit(assets[s.name]!, { kernelVersion: kver, build: key.slice(0, 16) }) : assets[s.name]!;
      a.file(s.dest, text, s.mode);
    }
    const raw = a.toBuffer();
    const cpioFile = path.join(work, 'initrd.cpio');
    await fs.writeFile(cpioFile, raw);
    log(`initramfs: ${a.paths().length} entries, ${(raw.length / 1048576).toFixed(1)} MiB; compressing (zstd)`);
    await must(findExecutable('zstd')!, ['-q', '-19', '-T0', '--rm', '-o', path.join(work, 'initrd.img'), cpioFile], 'zstd', 600_000);
    const initrd = readFileSync(path.join(work, 'initrd.img'));
    const kernel = readFileSync(`/boot/vmlinuz-${kver}`);
    await fs.writeFile(path.join(work, 'vmlinuz'), kernel, { mode: 0o644 });
    await fs.chmod(path.join(work, 'initrd.img'), 0o644);
    const manifest: BootenvManifest = {
      format: BOOTENV_FORMAT,
      key,
      kernelVersion: kver,
      packages,
      modules,
      tools: BOOTENV_TOOLS.map((t) => t.name),
      grubPlatforms: [...GRUB_PLATFORMS],
      files: {
        vmlinuz: { size: kernel.length, sha256: sha256(kernel) },
        'initrd.img': { size: initrd.length, sha256: sha256(initrd), compression: 'zstd', uncompressed: raw.length },
      },
      builtAt: new Date().toISOString(),
    };
    await writeFileAtomic(path.join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
    if (existsSync(dir)) await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(work, dir);
    await pointCurrent(p, key);
    log(`built ${dir}: initrd.img ${(initrd.length / 1048576).toFixed(1)} MiB, vmlinuz ${(kernel.length / 1048576).toFixed(1)} MiB`);
    return { dir, manifest, reused: false };
  } finally {
    lock.release();
  }
}

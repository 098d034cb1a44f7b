/**
 * The lab's boot images, built from the host's own Debian packages
 * (docs/lab.md):
 *
 *   <cacheDir>/<key>/tree/images/pxeboot/vmlinuz     the host's kernel (/boot/vmlinuz-KVER)
 *   <cacheDir>/<key>/tree/images/pxeboot/initrd.img  the stand-in installer (assets/installer-init.sh)
 *   <cacheDir>/<key>/os-initrd.gz                    the installed "OS" initramfs (also inside initrd.img)
 *   <cacheDir>/<key>/fleet-agent                     the agent wrapper %post downloads (/agent/fleet-agent)
 *   <cacheDir>/runtime-<key>/{bin/node,lib/*}        node and its libraries, shared into VMs over 9p (tag fleetrt)
 *
 * `tree/` is an OS tree in the RHEL layout fleet's install.ipxe expects:
 * serve it at SERVER/images/lab/ and give the lab profile
 * `os.tree: SERVER/images/lab`. A directory is reused while its inputs
 * (kernel, modules, tools, libraries, assets, node) are unchanged: the key
 * hashes their paths, sizes and mtimes and the assets' contents. Directories
 * are built under a temporary name and renamed into place, so concurrent
 * builders never see half an image; old keys are left for their labs.
 */
import { createHash } from 'node:crypto';
import { existsSync, linkSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../../common/errors.js';
import { hostKernels } from '../bootenv/build.js';
import { CpioArchive } from '../bootenv/cpio.js';
import { findExecutable } from '../../common/executable.js';
import { run, runOk } from './exec.js';

/** Bumped when the image layout or build recipe changes (forces a rebuild). */
const FORMAT = 'lab-images-4';
/** /etc/os-release of the lab "OS" (a busybox userland on Debian's kernel): Debian family for the agent's roles. */
export const LAB_OS_RELEASE = 'PRETTY_NAME="fleet lab OS (busybox on Debian)"\nNAME="fleet lab OS"\nID=fleet-lab\nID_LIKE=debian\nVERSION_ID=12\n';

/** Kernel modules loaded, with their dependencies, in this order (virtio_pci is a module in Debian's kernel). */
export const LAB_MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'ext4', '9p', '9pnet_virtio'] as const;

/** 9p mount tags of the two read-only shares a lab VM gets. */
export const RUNTIME_TAG = 'fleetrt';
export const SOURCE_TAG = 'fleetsrc';
/** Where the VM mounts them (installer %post chroot and the installed OS). */
export const RUNTIME_MOUNT = '/run/fleet-runtime';
export const SOURCE_MOUNT = '/run/fleet-src';

export interface LabImageOptions {
  /** Cache directory, e.g. DATA/lab/images. Created when missing. */
  cacheDir: string;
  /** Kernel version (e.g. 6.1.0-56-amd64); default: the newest /boot/vmlinuz-* that has /lib/modules/KVER. */
  kernelVersion?: string;
  /** node binary shared into the VMs (default: the one running this code). */
  node?: string;
  /** Rebuild even when the inputs are unchanged. */
  force?: boolean;
  log?: (line: string) => void;
}

export interface LabImages {
  /** Hash of every input; names the image directory. */
  key: string;
  /** <cacheDir>/<key> */
  dir: string;
  kernelVersion: string;
  /** The OS tree to serve at SERVER/images/lab/ (images/pxeboot/vmlinuz and initrd.img under it). */
  tree: string;
  kernel: string;
  /** The stand-in installer initramfs. */
  initrd: string;
  /** The "OS" initramfs the installer writes to the disk (also inside `initrd`). */
  osInitrd: string;
  /** The fleet-agent wrapper to serve at SERVER/agent/fleet-agent. */
  agentWrapper: string;
  /** The agent's systemd unit, served at SERVER/agent/fleet-agent.service (the kickstart installs it). */
  agentUnit: string;
  /** node + its libraries: the 9p share `fleetrt`. */
  runtime: string;
  /** True when an existing build was reused. */
  reused: boolean;
  /** Byte sizes of the artefacts. */
  sizes: { kernel: number; initrd: number; osInitrd: number };
}

/** Directory of this module's shell assets (works from server/lab and from dist/server/lab). */
export function labAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const c of [join(dir, 'assets'), join(dir, 'server', 'lab', 'assets')]) {
      if (existsSync(join(c, 'installer-init.sh'))) return c;
    }
    dir = dirname(dir);
  }
  throw new FleetError('internal', 'server/lab/assets not found next to the lab module');
}

export function assetPath(name: string): string {
  return join(labAssetsDir(), name);
}

/** The agent's systemd unit in the checkout (agent/fleet-agent.service). */
function agentUnitPath(): string {
  return join(labAssetsDir(), '..', '..', '..', 'agent', 'fleet-agent.service');
}

const MBR_CANDIDATES = ['/usr/lib/EXTLINUX/mbr.bin', '/usr/lib/syslinux/mbr/mbr.bin', '/usr/share/syslinux/mbr.bin'];

interface Tools {
  busybox: string;
  bash: string;
  sfdisk: string;
  mke2fs: string;
  extlinux: string;
  install: string;
  modprobe: string;
  mbr: string;
}

/** What is missing on this host to build the images, as Debian package hints ([] when nothing). */
export function labImagePrerequisites(): string[] {
  const missing: string[] = [];
  const need = (name: string, pkg: string) => {
    if (!findExecutable(name)) missing.push(`${name} (${pkg})`);
  };
  need('busybox', 'busybox-static');
  need('bash', 'bash');
  need('sfdisk', 'fdisk');
  need('mke2fs', 'e2fsprogs');
  need('extlinux', 'extlinux');
  need('install', 'coreutils');
  need('modprobe', 'kmod');
  if (!MBR_CANDIDATES.some((p) => existsSync(p))) missing.push('mbr.bin (syslinux-common)');
  if (hostKernels().length === 0) missing.push('a kernel with modules in /boot and /lib/modules (linux-image-amd64)');
  return missing;
}

function tools(): Tools {
  const missing = labImagePrerequisites();
  if (missing.length > 0) throw new FleetError('unavailable', `cannot build the lab images, missing: ${missing.join(', ')}`);
  return {
    busybox: findExecutable('busybox')!,
    bash: findExecutable('bash')!,
    sfdisk: findExecutable('sfdisk')!,
    mke2fs: findExecutable('mke2fs')!,
    extlinux: findExecutable('extlinux')!,
    install: findExecutable('install')!,
    modprobe: findExecutable('modprobe')!,
    mbr: MBR_CANDIDATES.find((p) => existsSync(p))!,
  };
}

/** Shared libraries of a dynamic executable as ldd names them (path in the guest = path on the host). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const r = await run('ldd', [binary], { timeoutMs: 10_000 });
  if (r.code !== 0 || /not a dynamic executable|statically linked/.test(r.stdout + r.stderr)) return [];
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m && !libs.includes(m[1]!)) libs.push(m[1]!);
  }
  return libs;
}

/** Module files (paths relative to /lib/modules/KVER) for LAB_MODULES with dependencies, in load order. */
export async function moduleLoadOrder(modprobe: string, kver: string, roots: readonly string[] = LAB_MODULES): Promise<string[]> {
  const out: string[] = [];
  const prefix = `/lib/modules/${kver}/`;
  for (const m of roots) {
    // One module per call: modprobe --show-depends resolves only its first argument.
    const text = await runOk(modprobe, ['-S', kver, '--show-depends', m], { timeoutMs: 10_000 });
    for (const line of text.split('\n')) {
      const mm = /^insmod\s+(\S+)/.exec(line.trim());
      if (!mm) continue;
      let p = mm[1]!;
      if (p.startsWith(prefix)) p = p.slice(prefix.length);
      else {
        const i = p.indexOf(`/${kver}/`);
        if (i >= 0) p = p.slice(i + kver.length + 2);
      }
      if (/\.ko\.(xz|zst|gz)$/.test(p)) {
        throw new FleetError('unavailable', `module ${p} is compressed; the lab initramfs needs uncompressed .ko modules (busybox insmod)`);
      }
      if (!out.includes(p)) out.push(p);
    }
  }
  return out;
}

function stamp(path: string): string {
  const st = statSync(path);
  return `${path}:${st.size}:${Math.floor(st.mtimeMs)}`;
}

const ASSETS = ['installer-init.sh', 'os-initrd-init.sh', 'os-init.sh', 'curl-shim.sh', 'udhcpc.script', 'systemctl-shim.sh'] as const;

function addBusybox(a: CpioArchive, busybox: Buffer, applets: string[]): void {
  a.file('bin/busybox', busybox, 0o755);
  for (const name of applets) {
    if (!/^[A-Za-z0-9_.[-]+$/.test(name) || name === 'busybox') continue;
    if (!a.has(`bin/${name}`)) a.symlink(`bin/${name}`, 'busybox');
  }
}

function addBase(a: CpioArchive): void {
  for (const d of ['proc', 'sys', 'run', 'sbin', 'mnt', 'etc', 'usr/bin', 'usr/sbin', 'usr/local/bin', 'var/lib', 'var/log']) a.dir(d);
  a.dir('dev');
  a.charDevice('dev/console', 5, 1, 0o600);
  a.charDevice('dev/null', 1, 3, 0o666);
  a.dir('tmp', 0o1777);
  a.dir('root', 0o700);
  a.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  a.file('etc/group', 'root:x:0:\n');
  a.file('etc/hosts', '127.0.0.1 localhost\n');
}

function addModules(a: CpioArchive, kver: string, modules: string[]): void {
  for (const m of modules) a.file(`lib/modules/${kver}/${m}`, readFileSync(`/lib/modules/${kver}/${m}`));
  a.file('etc/fleet-lab/modules', `${modules.join('\n')}\n`);
}

/** The wrapper served at SERVER/agent/fleet-agent in the lab: runs the repo's agent with the shared node. */
export function renderAgentWrapper(): string {
  return `#!/bin/sh
# fleet lab: fleet-agent for lab VMs (docs/lab.md). The node runtime and the
# fleet source tree are the host's, shared read-only over 9p (tags
# ${RUNTIME_TAG} and ${SOURCE_TAG}); the guest's C library is the host's too
# (the stand-in installer copies it), so LD_LIBRARY_PATH is enough.
RT=${RUNTIME_MOUNT}
SRC=${SOURCE_MOUNT}
for share in ${RUNTIME_TAG}:$RT ${SOURCE_TAG}:$SRC; do
  dir="\${share#*:}"
  grep -q " $dir " /proc/mounts 2>/dev/null && continue
  mkdir -p "$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose "\${share%%:*}" "$dir" || {
    echo "fleet-agent (lab): cannot mount the 9p share \${share%%:*} on $dir" >&2
    exit 1
  }
done
export LD_LIBRARY_PATH="$RT/lib"
exec "$RT/bin/node" "$SRC/bin/fleet-agent.js" "$@"
`;
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    linkSync(from, to);
  } catch {
    await copyFile(from, to);
  }
}

async function buildRuntime(cacheDir: string, node: string, log: (l: string) => void): Promise<string> {
  const real = realpathSync(node);
  const libs = await sharedLibraries(real);
  const key = createHash('sha256')
    .update([FORMAT, stamp(real), ...libs.map((l) => stamp(realpathSync(l)))].join('\n'))
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir, `runtime-${key}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  log(`lab images: building the node runtime share ${dir}`);
  const tmp = join(cacheDir, `.tmp-runtime-${key}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'bin'), { recursive: true });
  await mkdir(join(tmp, 'lib'), { recursive: true });
  await linkOrCopy(real, join(tmp, 'bin', 'node'));
  for (const l of libs) await linkOrCopy(realpathSync(l), join(tmp, 'lib', basename(l)));
  await writeFile(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
  await publish(tmp, dir);
  return dir;
}

/** Renames a finished build into place; if another builder got there first, keeps theirs. */
async function publish(tmp: string, dir: string): Promise<void> {
  try {
    await rename(tmp, dir);
    return;
  } catch {
    // `dir` exists: complete (another builder won, or a forced rebuild raced) or a leftover.
  }
  if (existsSync(join(dir, '.complete'))) {
    await rm(tmp, { recursive: true, force: true });
    return;
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

/** Builds (or reuses) the lab images. */
export async function buildLabImages(o: LabImageOptions): Promise<LabImages> {
  const log = o.log ?? (() => {});
  const t = tools();
  const kernels = hostKernels();
  const kver = o.kernelVersion ?? kernels[0];
  if (!kver || !existsSync(`/boot/vmlinuz-${kver}`) || !existsSync(`/lib/modules/${kver}`)) {
    throw new FleetError('unavailable', `kernel ${kver ?? '(none)'} not found in /boot and /lib/modules (apt-get install linux-image-amd64)`);
  }
  const kernelFile = `/boot/vmlinuz-${kver}`;
  await mkdir(o.cacheDir, { recursive: true });
  const runtime = await buildRuntime(o.cacheDir, o.node ?? process.execPath, log);

  const modules = await moduleLoadOrder(t.modprobe, kver);
  const progs = [t.bash, t.sfdisk, t.mke2fs, t.extlinux, t.install];
  const libs: string[] = [];
  for (const p of progs) for (const l of await sharedLibraries(p)) if (!libs.includes(l)) libs.push(l);
  const assets = Object.fromEntries(await Promise.all(ASSETS.map(async (n) => [n, await readFile(assetPath(n))] as const))) as Record<
    (typeof ASSETS)[number],
    Buffer
  >;
  const h = createHash('sha256');
  h.update(`${FORMAT}\n${kver}\n${runtime}\n`);
  for (const f of [kernelFile, t.busybox, t.mbr, ...progs, ...libs.map((l) => realpathSync(l)), ...modules.map((m) => `/lib/modules/${kver}/${m}`)]) {
    h.update(`${stamp(f)}\n`);
  }
  if (existsSync('/etc/mke2fs.conf')) h.update(stamp('/etc/mke2fs.conf'));
  for (const n of ASSETS) h.update(n).update(assets[n]);
  h.update(await readFile(agentUnitPath()));
  const key = h.digest('hex').slice(0, 16);
  const dir = join(o.cacheDir, key);
  const paths = {
    tree: join(dir, 'tree'),
    kernel: join(dir, 'tree', 'images', 'pxeboot', 'vmlinuz'),
    initrd: join(dir, 'tree', 'images', 'pxeboot', 'initrd.img'),
    osInitrd: join(dir, 'os-initrd.gz'),
    agentWrapper: join(dir, 'fleet-agent'),
    agentUnit: join(dir, 'fleet-agent.service'),
  };
  const result = (reused: boolean): LabImages => ({
    key,
    dir,
    kernelVersion: kver,
    ...paths,
    runtime,
    reused,
    sizes: { kernel: statSync(paths.kernel).size, initrd: statSync(paths.initrd).size, osInitrd: statSync(paths.osInitrd).size },
  });
  if (!o.force && existsSync(join(dir, '.complete'))) return result(true);

  log(`lab images: building ${dir} (kernel ${kver})`);
  const busybox = readFileSync(t.busybox);
  const applets = (await runOk(t.busybox, ['--list'], { timeoutMs: 10_000 })).split('\n').map((s) => s.trim()).filter(Boolean);

  // The "OS" initramfs: busybox, modules, an init that mounts root= and switches to it.
  const os = new CpioArchive();
  addBase(os);
  addBusybox(os, busybox, applets);
  addModules(os, kver, modules);
  os.file('init', assets['os-initrd-init.sh'], 0o755);
  const osGz = os.toGzip();

  // The installer initramfs.
  const inst = new CpioArchive();
  addBase(inst);
  inst.file('bin/bash', readFileSync(t.bash), 0o755);
  addBusybox(inst, busybox, applets);
  inst.file('usr/sbin/sfdisk', readFileSync(t.sfdisk), 0o755);
  inst.file('usr/sbin/mke2fs', readFileSync(t.mke2fs), 0o755);
  inst.symlink('usr/sbin/mkfs.ext4', 'mke2fs');
  inst.file('usr/bin/extlinux', readFileSync(t.extlinux), 0o755);
  // busybox-static has no install applet; fleet's %post uses install -d -m.
  inst.file('usr/bin/install', readFileSync(t.install), 0o755);
  for (const l of libs) inst.file(l, readFileSync(realpathSync(l)), 0o755);
  if (existsSync('/etc/mke2fs.conf')) inst.file('etc/mke2fs.conf', readFileSync('/etc/mke2fs.conf'));
  // Copied to the installed disk with the rest of /etc: the agent's configuration roles need an
  // OS family (RHEL or Debian) and refuse to apply anything without one. Debian's kernel and busybox.
  inst.file('etc/os-release', LAB_OS_RELEASE);
  addModules(inst, kver, modules);
  inst.file('usr/bin/curl', assets['curl-shim.sh'], 0o755);
  inst.file('usr/bin/systemctl', assets['systemctl-shim.sh'], 0o755);
  inst.file('usr/share/udhcpc/default.script', assets['udhcpc.script'], 0o755);
  inst.file('usr/share/fleet-lab/os-init', assets['os-init.sh'], 0o755);
  inst.file('usr/share/fleet-lab/os-initrd.gz', osGz);
  inst.file('usr/share/fleet-lab/mbr.bin', readFileSync(t.mbr));
  inst.dir('mnt/sysroot');
  inst.file('init', assets['installer-init.sh'], 0o755);
  const instGz = inst.toGzip();

  const tmp = join(o.cacheDir, `.tmp-${key}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'tree', 'images', 'pxeboot'), { recursive: true });
  await copyFile(kernelFile, join(tmp, 'tree', 'images', 'pxeboot', 'vmlinuz'));
  await writeFile(join(tmp, 'tree', 'images', 'pxeboot', 'initrd.img'), instGz);
  await writeFile(join(tmp, 'os-initrd.gz'), osGz);
  await writeFile(join(tmp, 'fleet-agent'), renderAgentWrapper());
  await chmod(join(tmp, 'fleet-agent'), 0o755);
  await copyFile(agentUnitPath(), join(tmp, 'fleet-agent.service'));
  await writeFile(
    join(tmp, 'manifest.json'),
    `${JSON.stringify({ format: FORMAT, key, kernelVersion: kver, modules, libraries: libs, runtime, builtAt: new Date().toISOString() }, null, 2)}\n`,
  );
  await writeFile(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
  if (o.force) await rm(dir, { recursive: true, force: true });
  await publish(tmp, dir);
  log(`lab images: installer initrd ${instGz.length} bytes, OS initrd ${osGz.length} bytes`);
  return result(false);
}

/**
 * The fleet boot environment, pure parts (docs/bootenv.md): what goes into
 * the initramfs (modules, tools, GRUB platforms, packages), the build key,
 * module load order from `modprobe --show-depends`, the /init renderer, the
 * kernel command line and the manifest. No I/O here; server/bootenv/build.ts
 * does the reading and writing.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

/** Bumped when the layout or the recipe changes (forces a rebuild). */
export const BOOTENV_FORMAT = 'fleet-bootenv-1';

/** Root modules, loaded with their dependencies in this order (Debian's kernel has them as modules). */
export const BOOTENV_MODULES = [
  // buses, NICs
  'virtio_pci',
  'virtio_net',
  'e1000',
  'e1000e',
  'igb',
  // disks
  'virtio_blk',
  'virtio_scsi',
  'sd_mod',
  'ahci',
  'nvme',
  // filesystems
  'ext4',
  'vfat',
  'nls_ascii',
  'nls_cp437',
  'nls_iso8859_1',
  'nls_utf8',
  'efivarfs',
  // the in-band BMC
  'ipmi_si',
  'ipmi_devintf',
] as const;

/** GRUB platforms whose modules are carried (/usr/lib/grub/<platform>). */
export const GRUB_PLATFORMS = ['i386-pc', 'x86_64-efi'] as const;

/** A real program carried in the initramfs: found on the host (PATH and sbin dirs), copied with its shared libraries. */
export interface ToolSpec {
  /** Executable name on the host. */
  name: string;
  /** Where it lands in the initramfs. */
  dest: string;
  /** Debian package that provides it. */
  pkg: string;
  /** More names for the same file (symlinks next to dest). */
  aliases?: string[];
}

export const BOOTENV_TOOLS: readonly ToolSpec[] = [
  { name: 'sfdisk', dest: 'usr/sbin/sfdisk', pkg: 'fdisk' },
  { name: 'mke2fs', dest: 'usr/sbin/mke2fs', pkg: 'e2fsprogs', aliases: ['mkfs.ext4'] },
  { name: 'mkfs.fat', dest: 'usr/sbin/mkfs.fat', pkg: 'dosfstools', aliases: ['mkfs.vfat'] },
  { name: 'blkid', dest: 'usr/sbin/blkid', pkg: 'util-linux' },
  { name: 'grub-install', dest: 'usr/sbin/grub-install', pkg: 'grub2-common' },
  { name: 'grub-probe', dest: 'usr/sbin/grub-probe', pkg: 'grub-common' },
  { name: 'zstd', dest: 'usr/bin/zstd', pkg: 'zstd' },
  { name: 'curl', dest: 'usr/bin/curl', pkg: 'curl' },
  { name: 'tar', dest: 'usr/bin/tar', pkg: 'tar' },
  { name: 'jq', dest: 'usr/bin/jq', pkg: 'jq' },
  { name: 'ipmitool', dest: 'usr/bin/ipmitool', pkg: 'ipmitool' },
  // LLDP: one frame captured per linked NIC while inspecting (run with -Z root: the initramfs has no tcpdump user)
  { name: 'tcpdump', dest: 'usr/bin/tcpdump', pkg: 'tcpdump' },
];

/** Debian packages whose versions enter the build key (besides the kernel's). */
export const BOOTENV_PACKAGES = ['busybox-static', 'fdisk', 'e2fsprogs', 'dosfstools', 'util-linux', 'grub2-common', 'grub-common', 'grub-pc-bin', 'grub-efi-amd64-bin', 'zstd', 'curl', 'tar', 'jq', 'ipmitool', 'tcpdump', 'libpcap0.8', 'libc6'] as const;

/** The jobs of the boot environment (fleet.job=): install a node, inspect an unknown machine, or boot a stateless node's image into RAM. */
export type BootenvJob = 'install' | 'inspect' | 'stateless' | 'diskless';

/** Shell assets (server/bootenv/assets) and where they land. */
export const BOOTENV_ASSETS = [
  { name: 'init.sh', dest: 'init', mode: 0o755 },
  { name: 'lib.sh', dest: 'usr/share/fleet/lib.sh', mode: 0o644 },
  { name: 'install.sh', dest: 'usr/share/fleet/install.sh', mode: 0o755 },
  { name: 'inspect.sh', dest: 'usr/share/fleet/inspect.sh', mode: 0o755 },
  { name: 'stateless.sh', dest: 'usr/share/fleet/stateless.sh', mode: 0o755 },
  { name: 'udhcpc.script', dest: 'usr/share/fleet/udhcpc.script', mode: 0o755 },
] as const;

/**
 * Module files (relative to /lib/modules/KVER) from one `modprobe -S KVER --show-depends M` output, in load order.
 * Builtins ("builtin x") are skipped; compressed modules are refused (busybox insmod takes plain .ko).
 */
export function parseShowDepends(text: string, kver: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^insmod\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    let p = m[1]!;
    const i = p.indexOf(`/${kver}/`);
    if (i >= 0) p = p.slice(i + kver.length + 2);
    if (/\.ko\.(xz|zst|gz)$/.test(p)) throw new Error(`module ${p} is compressed; the boot environment needs plain .ko modules (busybox insmod)`);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Concatenates per-root load orders, keeping each module's first position (dependencies stay before dependants). */
export function mergeModuleOrder(lists: readonly (readonly string[])[]): string[] {
  const out: string[] = [];
  for (const l of lists) for (const m of l) if (!out.includes(m)) out.push(m);
  return out;
}

/** Shared library paths from `ldd` output (absolute paths, in order, deduplicated). */
export function parseLdd(text: string): string[] {
  const libs: string[] = [];
  for (const line of text.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m && !libs.includes(m[1]!)) libs.push(m[1]!);
  }
  return libs;
}

/** The fleet.* parameters of a kernel command line (fleet.server=… → { server: … }); the last one of a key wins. */
export function parseCmdline(cmdline: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of cmdline.trim().split(/\s+/)) {
    const m = /^fleet\.([A-Za-z0-9._-]+)=(.*)$/.exec(w);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export const BOOTENV_DIR = 'bootenv';

export interface BootenvPaths {
  root: string;
  /** The build in force: a symlink to a sibling build directory (the boot face serves its vmlinuz and initrd.img). */
  current: string;
  tmp: string;
}

/** Where the boot environment lives under the data dir. */
export function bootenvPaths(dataDir: string): BootenvPaths {
  const root = path.join(path.resolve(dataDir), BOOTENV_DIR);
  return { root, current: path.join(root, 'current'), tmp: path.join(root, 'tmp') };
}

/**
 * The boot environment's kernel arguments for a job, in the contract's order
 * (docs/bootenv.md "Protocol"): consoles, then fleet.server, fleet.node,
 * fleet.token (when known), fleet.mac, fleet.job. The boot script adds the
 * token later (scripts.ts withInstallToken puts it after fleet.node). An
 * inspect job has no node (the machine is unknown): no fleet.node; it may
 * get fleet.lldp_wait=SECONDS last (how long to listen for LLDP on each
 * linked NIC; absent or 0: not listened for).
 */
export function cmdlineArgs(o: { server: string; node?: string; token?: string; mac: string; job: BootenvJob; console?: string[]; lldpWait?: number }): string[] {
  // The last console is /dev/console, where the boot environment's own lines go: the serial line (SOL, the lab's log).
  const consoles = o.console ?? ['tty0', 'ttyS0'];
  return [
    ...consoles.map((c) => `console=${c}`),
    `fleet.server=${o.server}`,
    ...(o.node !== undefined ? [`fleet.node=${o.node}`] : []),
    ...(o.token !== undefined ? [`fleet.token=${o.token}`] : []),
    `fleet.mac=${o.mac}`,
    `fleet.job=${o.job}`,
    ...(o.lldpWait !== undefined && o.lldpWait > 0 ? [`fleet.lldp_wait=${Math.floor(o.lldpWait)}`] : []),
  ];
}

/** The kernel command line the server gives the boot environment for a job. */
export function renderCmdline(o: { server: string; node?: string; token: string; mac: string; job: BootenvJob; console?: string[] }): string {
  return cmdlineArgs(o).join(' ');
}

/** /init with its build-time values filled in. */
export function renderInit(template: string, v: { kernelVersion: string; build: string }): string {
  for (const [k, val] of Object.entries(v)) {
    if (!/^[A-Za-z0-9._+-]+$/.test(val)) throw new Error(`renderInit: ${k} ${JSON.stringify(val)} is not a plain word`);
  }
  const out = template.replaceAll('@@KVER@@', v.kernelVersion).replaceAll('@@BUILD@@', v.build);
  const left = /@@[A-Z_]+@@/.exec(out);
  if (left) throw new Error(`renderInit: ${left[0]} left unfilled`);
  return out;
}

export interface BootenvInputs {
  kernelVersion: string;
  /** package → version (dpkg), the kernel's package included. */
  packages: Record<string, string>;
  modules: readonly string[];
  /** asset name → content. */
  assets: Record<string, string>;
}

/** The build key over every input: the same inputs give the same key (and the stored build is reused). */
export function bootenvKey(i: BootenvInputs): string {
  const h = createHash('sha256');
  h.update(`${BOOTENV_FORMAT}\nkernel ${i.kernelVersion}\n`);
  for (const p of Object.keys(i.packages).sort()) h.update(`pkg ${p} ${i.packages[p]}\n`);
  for (const m of i.modules) h.update(`mod ${m}\n`);
  for (const t of BOOTENV_TOOLS) h.update(`tool ${t.name} ${t.dest}\n`);
  for (const g of GRUB_PLATFORMS) h.update(`grub ${g}\n`);
  for (const a of Object.keys(i.assets).sort()) h.update(`asset ${a} ${createHash('sha256').update(i.assets[a]!).digest('hex')}\n`);
  return h.digest('hex');
}

/** `dpkg-query -W -f '${Package} ${Version}\n'` output → package → version. */
export function parseDpkgVersions(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [p, v] = line.trim().split(/\s+/);
    if (p && v) out[p] = v;
  }
  return out;
}

export interface BootenvManifest {
  format: string;
  key: string;
  kernelVersion: string;
  packages: Record<string, string>;
  modules: string[];
  tools: string[];
  grubPlatforms: string[];
  files: { vmlinuz: { size: number; sha256: string }; 'initrd.img': { size: number; sha256: string; compression: 'zstd' | 'gzip'; uncompressed: number } };
  builtAt: string;
}

export function formatBootenv(m: BootenvManifest, dir: string): string {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  return [
    `boot environment ${m.key.slice(0, 16)} (${dir})`,
    `  kernel      ${m.kernelVersion}  vmlinuz ${mib(m.files.vmlinuz.size)}`,
    `  initrd.img  ${mib(m.files['initrd.img'].size)} ${m.files['initrd.img'].compression} (${mib(m.files['initrd.img'].uncompressed)} unpacked)`,
    `  modules     ${m.modules.length}`,
    `  tools       ${m.tools.join(' ')}`,
    `  grub        ${m.grubPlatforms.join(' ')}`,
    `  built       ${m.builtAt}`,
    '',
  ].join('\n');
}

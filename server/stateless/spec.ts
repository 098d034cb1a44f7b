/**
 * Stateless nodes, pure parts (issue 14 item 1, docs/stateless.md): which
 * kernel modules the image's **module layer** carries, their load order
 * from the image's own modules.dep, the layer's key and where it is kept.
 *
 * Stage 1 of a stateless boot runs under the image's kernel: iPXE loads the
 * image's vmlinuz with two initrds, the fleet boot environment's initrd.img
 * and this layer (a second cpio that the kernel unpacks over the first):
 *
 *   bootenv initrd.img   busybox, curl, jq, /init, stateless.sh, the bootenv's own modules
 *   layer modules.img    lib/modules/<image KVER>/… (NICs, loop, squashfs, overlay),
 *                        etc/fleet/modules (their load order), etc/fleet/kernel (KVER)
 *
 * so /init loads modules that match the running kernel, whatever kernel the
 * boot environment itself was built for. No I/O here (layer.ts does it).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { BOOTENV_MODULES } from '../bootenv/spec.js';

/** Bumped when the layer's layout changes (forces a rebuild). */
export const STATELESS_LAYER_FORMAT = 'fleet-stateless-layer-2';

/**
 * What stage 1 loads: the boot environment's NICs and disks, what it mounts
 * a stateless image with (loop, squashfs, overlay), and the NFSv4 client a
 * diskless node mounts its root and /var with (nfsv4 brings nfs, sunrpc and
 * the rest through modules.dep), and crc32c for its ext4 scratch disk.
 */
export const STATELESS_MODULES: readonly string[] = [
  ...BOOTENV_MODULES.filter((m) => !m.startsWith('ipmi_')),
  'loop',
  'squashfs',
  'overlay',
  'nfsv4',
  // ext4 asks the crypto API for crc32c at mount time (no modules.dep line says so): a diskless scratch disk needs it.
  'crc32c_generic',
];

export const STATELESS_DIR = 'stateless';

/** DATA/stateless: the layers (served under /stateless/ by hex and key only) and their builds in progress (tmp/). */
export function statelessRoot(dataDir: string): string {
  return path.join(path.resolve(dataDir), STATELESS_DIR);
}

/** DATA/stateless/<image hex>/<layer key>/{modules.img,layer.json}: derived from the image, rebuilt when lost. */
export function statelessLayerDir(dataDir: string, imageDigest: string, key: string): string {
  const hex = imageDigest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`statelessLayerDir: ${JSON.stringify(imageDigest)} is not a sha256 digest`);
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`statelessLayerDir: ${JSON.stringify(key)} is not a layer key`);
  return path.join(path.resolve(dataDir), STATELESS_DIR, hex, key);
}

/** A module's name as modprobe knows it: the file's base name without .ko[.xz|.zst|.gz], dashes as underscores. */
export function moduleName(file: string): string {
  return path.basename(file).replace(/\.ko(?:\.(?:xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** modules.dep (`kernel/a.ko: kernel/b.ko kernel/c.ko`): each module's path and its dependencies' paths. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const p = line.slice(0, i).trim();
    const deps = line.slice(i + 1).trim().split(/\s+/).filter((d) => d !== '');
    out.set(moduleName(p), { path: p, deps });
  }
  return out;
}

export interface ModulePlan {
  /** Module files relative to lib/modules/KVER, each after its dependencies. */
  order: string[];
  /** Wanted modules the kernel has built in (nothing to load). */
  builtin: string[];
  /** Wanted modules this kernel has neither as a module nor built in. */
  missing: string[];
}

/**
 * The load order of `wanted` and their dependencies from the image's
 * modules.dep and modules.builtin (a module's dependencies first, each file
 * once). Compressed modules are refused: busybox insmod reads plain .ko.
 */
export function resolveModules(depText: string, builtinText: string, wanted: readonly string[]): ModulePlan {
  const dep = parseModulesDep(depText);
  const builtins = new Set(builtinText.split('\n').map((l) => l.trim()).filter((l) => l !== '').map(moduleName));
  const byPath = new Map([...dep.values()].map((e) => [e.path, e]));
  const order: string[] = [];
  const builtin: string[] = [];
  const missing: string[] = [];
  const visit = (p: string, chain: string[]): void => {
    if (order.includes(p)) return;
    if (chain.includes(p)) throw new Error(`modules.dep has a dependency loop: ${[...chain, p].join(' -> ')}`);
    if (/\.ko\.(xz|zst|gz)$/.test(p)) throw new Error(`module ${p} is compressed; stage 1 needs plain .ko modules (busybox insmod)`);
    const e = byPath.get(p);
    if (!e) throw new Error(`modules.dep names ${p} as a dependency but has no line for it`);
    for (const d of e.deps) visit(d, [...chain, p]);
    order.push(p);
  };
  for (const w of wanted) {
    const name = moduleName(w);
    const e = dep.get(name);
    if (e) visit(e.path, []);
    else if (builtins.has(name)) builtin.push(name);
    else missing.push(name);
  }
  return { order, builtin, missing };
}

/** The layer's key: the image, its kernel, the module order and the layer format. */
export function layerKey(o: { imageDigest: string; kernelVersion: string; order: readonly string[] }): string {
  const h = createHash('sha256');
  h.update(`${STATELESS_LAYER_FORMAT}\n${o.imageDigest}\n${o.kernelVersion}\n`);
  for (const m of o.order) h.update(`${m}\n`);
  return h.digest('hex');
}

/** Where the kernel's modules sit in the image tree (merged /usr: usr/lib/modules; else lib/modules). */
export const MODULE_ROOTS = ['usr/lib/modules', 'lib/modules'] as const;

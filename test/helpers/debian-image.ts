/**
 * The real Debian image of the integration tests, built once per checkout
 * (per CI run): `fleet image build itest --from debian:bookworm --include
 * LAB_IMAGE_INCLUDES` (the lab's packages: the e2e's lab reuses it) into the
 * data dir cached under .tmp/image-build, whose index is keyed by the build
 * key, so the second caller (image-build.test.ts, stateless-vm.test.ts, diskless-vm.test.ts,
 * in either order or at once under the store's lock) reuses the image.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../../common/executable.js';
import type { CliIo } from '../../server/cli/io.js';
import { main } from '../../server/cli/main.js';
import type { NamedManifest } from '../../server/images/index.js';
import { LAB_IMAGE_INCLUDES } from '../../server/lab/os.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IMAGE_CACHE = join(ROOT, '.tmp', 'image-build');
export const IMAGE_DATA = join(IMAGE_CACHE, 'data');
export const IMAGE_NAME = 'itest';
export const IMAGE_FROM = 'debian:bookworm';

/** Why the real image cannot be built here, or null. */
export function imageBuildMissing(): string | null {
  const missing = ['mmdebstrap', 'mksquashfs', 'unsquashfs', 'zstd', 'unshare', 'tar'].filter((t) => !findExecutable(t));
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return !isRoot ? 'needs root' : missing.length ? `needs ${missing.join(', ')} (sudo bash .ci/deps.sh)` : null;
}

/** `fleet --data IMAGE_DATA ARGS...` in-process. */
export async function fleetImage(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  mkdirSync(IMAGE_CACHE, { recursive: true });
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: process.env, isTTY: false, home: IMAGE_CACHE, cwd: ROOT };
  const code = await main(['node', 'fleet', '--data', IMAGE_DATA, ...args], io);
  return { code, out, err };
}

export interface DebianImage {
  image: NamedManifest;
  reused: boolean;
  /** DATA/images/sha256/<hex>: rootfs.tar.zst, vmlinuz, initrd.img, manifest.json. */
  dir: string;
  log: string;
}

/** Builds the image, or reuses this checkout's build while its key holds. */
export async function debianImage(): Promise<DebianImage> {
  // The lab's packages too: one build key, so the e2e's lab reuses this build (server/lab/os.ts).
  const r = await fleetImage('image', 'build', IMAGE_NAME, '--from', IMAGE_FROM, '--include', LAB_IMAGE_INCLUDES.join(','), '--json');
  if (r.code !== 0) throw new Error(`fleet image build ${IMAGE_NAME} failed (${r.code}): ${r.err}`);
  const o = JSON.parse(r.out) as { reused: boolean; image: NamedManifest };
  return { image: o.image, reused: o.reused, dir: join(IMAGE_DATA, 'images', 'sha256', o.image.digest.slice('sha256:'.length)), log: r.err };
}

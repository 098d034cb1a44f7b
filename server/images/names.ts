/**
 * Naming rules of images (pure): image names, the `--from` source, the
 * architecture and the package list a build includes.
 */
import { FleetError } from '../../common/errors.js';
import { OBJECT_NAME, checkPackageName, show } from '../../common/patterns.js';

/** What every built image holds besides what `--include` adds (DESIGN §8; docs/images.md). */
export const BASE_PACKAGES: readonly string[] = ['systemd-sysv', 'linux-image-amd64', 'openssh-server', 'zstd'];

/** Debian architectures fleet builds for; the kernel package follows the architecture. */
export const ARCHES = ['amd64', 'arm64'] as const;
export type ImageArch = (typeof ARCHES)[number];

const KERNEL_PACKAGE: Record<ImageArch, string> = { amd64: 'linux-image-amd64', arm64: 'linux-image-arm64' };

/** Why `name` is not a valid image name, or undefined. Names are file-index keys: no slash, no leading dot. */
export function checkImageName(name: string): string | undefined {
  if (!OBJECT_NAME.test(name)) return `image name ${show(name)} must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit`;
  return undefined;
}

export function requireImageName(name: string): string {
  const why = checkImageName(name);
  if (why) throw new FleetError('usage.invalid', why);
  return name;
}

export interface ImageSource {
  /** Distribution family; only debian builds here (EL images: dnf --installroot, designed for, not built). */
  distro: 'debian';
  /** Suite code name, e.g. bookworm. */
  suite: string;
}

/** `debian:bookworm` → { distro, suite }; FleetError('usage.invalid') otherwise. */
export function parseFrom(from: string): ImageSource {
  const m = /^([a-z]+):([a-z0-9][a-z0-9.-]{0,31})$/.exec(from);
  if (!m) throw new FleetError('usage.invalid', `--from ${show(from)} must be DISTRO:SUITE, e.g. debian:bookworm`);
  if (m[1] !== 'debian') {
    throw new FleetError('usage.invalid', `--from ${show(from)}: only debian images are built here (EL images with dnf --installroot are not implemented yet)`);
  }
  return { distro: 'debian', suite: m[2]! };
}

export function parseArch(arch: string | undefined): ImageArch {
  const a = arch ?? 'amd64';
  if (!(ARCHES as readonly string[]).includes(a)) throw new FleetError('usage.invalid', `--arch ${show(a)} must be one of ${ARCHES.join(', ')}`);
  return a as ImageArch;
}

/**
 * The packages a build installs: the base set (with the kernel of `arch`)
 * plus `--include` (comma- or blank-separated, repeatable), deduplicated and
 * sorted so that the same set always gives the same build key.
 */
export function packageList(arch: ImageArch, includes: readonly string[] = []): string[] {
  const base = BASE_PACKAGES.map((p) => (p === 'linux-image-amd64' ? KERNEL_PACKAGE[arch] : p));
  const extra: string[] = [];
  for (const item of includes) {
    for (const p of item.split(/[\s,]+/)) {
      if (p === '') continue;
      const why = checkPackageName(p);
      if (why || p.startsWith('@')) throw new FleetError('usage.invalid', `--include: ${why ?? `${show(p)} is not a Debian package name`}`);
      extra.push(p);
    }
  }
  return [...new Set([...base, ...extra])].sort();
}

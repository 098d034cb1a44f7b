/**
 * The package list of a root filesystem (pure): parsed from its dpkg
 * database (var/lib/dpkg/status), so the management node needs no dpkg of
 * its own and an EL management node reads Debian images the same way.
 */
import type { ImagePackage } from './manifest.js';

export interface DpkgPackage extends ImagePackage {
  arch: string;
}

/**
 * Packages whose Status is "install ok installed", sorted by name, from the
 * text of a dpkg status file (RFC 822-style paragraphs; continuation lines
 * start with a blank and are ignored).
 */
export function parseDpkgStatus(text: string): DpkgPackage[] {
  const out: DpkgPackage[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    for (const line of para.split('\n')) {
      if (line === '' || line.startsWith(' ') || line.startsWith('\t')) continue;
      const i = line.indexOf(':');
      if (i <= 0) continue;
      f.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
    }
    const name = f.get('package');
    const version = f.get('version');
    if (!name || !version || (f.get('status') ?? '').replace(/\s+/g, ' ') !== 'install ok installed') continue;
    out.push({ name, version, arch: f.get('architecture') ?? '' });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.arch < b.arch ? -1 : 1));
}

/** The image's architecture as its packages say (the most common one that is not `all`), or null. */
export function dominantArch(pkgs: readonly DpkgPackage[]): string | null {
  const n = new Map<string, number>();
  for (const p of pkgs) if (p.arch && p.arch !== 'all') n.set(p.arch, (n.get(p.arch) ?? 0) + 1);
  let best: string | null = null;
  for (const [a, c] of n) if (best === null || c > n.get(best)!) best = a;
  return best;
}

/**
 * The kernel an image boots: from the names in its /boot, the highest
 * version that has both vmlinuz-V and initrd.img-V; null when none has both.
 */
export function pickKernel(bootNames: readonly string[]): { version: string; kernel: string; initrd: string } | null {
  const names = new Set(bootNames);
  const versions = bootNames
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => v !== '' && names.has(`initrd.img-${v}`))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const v = versions.at(-1);
  return v === undefined ? null : { version: v, kernel: `vmlinuz-${v}`, initrd: `initrd.img-${v}` };
}

/**
 * The TFTP root dnsmasq serves: the iPXE binaries, copied from Debian's `ipxe`
 * package (default /usr/lib/ipxe) into a directory fleet owns (DATA/tftp).
 *
 * Read-only for dnsmasq: the directory is owned by the server's user (0755),
 * the files are 0444. dnsmasq runs with `tftp-secure`, which serves only files
 * owned by the user dnsmasq runs as, so the files are chowned to that user when
 * the server runs as root; anything else that lands in the root (a symlink to
 * /etc/passwd, a hard link to a root-owned file) is refused by dnsmasq. Files
 * are copied, never hard-linked: the chown would otherwise change the
 * package's own files (and /usr/lib/ipxe/ipxe.efi is a symlink to /boot).
 *
 * A copy is replaced atomically (temp file + rename) and only when its
 * content differs, so a transfer in progress keeps reading the old inode.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/atomic-write.js';

export const DEFAULT_IPXE_SOURCE = '/usr/lib/ipxe';
/** Binaries fleet hands out: BIOS, UEFI x86-64 (own drivers / firmware's SNP). */
export const IPXE_BINARIES = ['undionly.kpxe', 'ipxe.efi', 'snponly.efi'] as const;
/** arm64 UEFI binaries, copied when the source has one (Debian's `ipxe` package has none). */
export const ARM64_BINARIES = ['snponly-arm64.efi', 'ipxe-arm64.efi'] as const;

const PURPOSE: Record<string, string> = {
  'undionly.kpxe': 'BIOS PXE clients cannot chainload iPXE',
  'ipxe.efi': 'x86-64 UEFI clients cannot chainload iPXE',
  'snponly.efi': 'x86-64 UEFI clients set up for snponly.efi cannot chainload iPXE',
};

export interface PrepareTftpOptions {
  /** The TFTP root (created 0755 if missing). */
  dir: string;
  /** Where the binaries come from. Default /usr/lib/ipxe. */
  sourceDir?: string;
  /** Owner of the copies (the user dnsmasq runs as); only applied when this process runs as root. */
  owner?: { uid: number; gid: number } | null;
  /** Names to copy. Default IPXE_BINARIES + ARM64_BINARIES. */
  binaries?: readonly string[];
}

export interface TftpRootReport {
  dir: string;
  /** Binaries now in the root. */
  present: string[];
  /** Binaries the source lacks (arm64 ones are optional and not listed). */
  missing: string[];
  /** Copies written this time (others were already up to date). */
  copied: string[];
  /** The arm64 binary in the root, if any. */
  arm64: string | null;
  /** One line each, for the admin. */
  warnings: string[];
}

async function digest(file: string): Promise<string | null> {
  try {
    return createHash('sha256').update(await fs.readFile(file)).digest('hex');
  } catch {
    return null;
  }
}

/** Copies the iPXE binaries into the TFTP root; never throws for a missing binary (a warning says which package to install). */
export async function prepareTftpRoot(opts: PrepareTftpOptions): Promise<TftpRootReport> {
  const dir = path.resolve(opts.dir);
  const source = path.resolve(opts.sourceDir ?? DEFAULT_IPXE_SOURCE);
  const names = opts.binaries ?? [...IPXE_BINARIES, ...ARM64_BINARIES];
  const owner = opts.owner && process.getuid?.() === 0 ? opts.owner : null;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.chmod(dir, 0o755);
  const report: TftpRootReport = { dir, present: [], missing: [], copied: [], arm64: null, warnings: [] };

  for (const name of names) {
    const optional = (ARM64_BINARIES as readonly string[]).includes(name);
    const src = path.join(source, name);
    const dst = path.join(dir, name);
    const srcDigest = await digest(src);
    if (srcDigest === null) {
      const already = await fs.lstat(dst).then((s) => s.isFile(), () => false);
      if (already) {
        report.present.push(name);
        report.warnings.push(`TFTP root: ${name} is not in ${source} any more; keeping the copy in ${dir}`);
      } else if (!optional) {
        report.missing.push(name);
        report.warnings.push(
          `TFTP root: ${name} not found in ${source} (install the Debian package \`ipxe\`): ${PURPOSE[name] ?? 'clients asking for it cannot boot'}`,
        );
      }
      continue;
    }
    const dstStat = await fs.lstat(dst).catch(() => null);
    const upToDate = dstStat?.isFile() === true && (await digest(dst)) === srcDigest;
    if (!upToDate) {
      await writeFileAtomic(dst, await fs.readFile(src), { mode: 0o444, ...(owner ? { owner } : {}) });
      report.copied.push(name);
    } else {
      if (owner && (dstStat!.uid !== owner.uid || dstStat!.gid !== owner.gid)) await fs.chown(dst, owner.uid, owner.gid);
      if ((dstStat!.mode & 0o777) !== 0o444) await fs.chmod(dst, 0o444);
    }
    report.present.push(name);
    if (optional && report.arm64 === null) report.arm64 = name;
  }

  // Entries fleet did not put there are left alone (an operator may add files), but symlinks are called out:
  // tftp-secure refuses them unless the target is owned by the dnsmasq user.
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) {
      report.warnings.push(`TFTP root: ${entry.name} is a symlink; dnsmasq (tftp-secure) refuses it unless its target is owned by the dnsmasq user`);
    }
  }
  return report;
}

/**
 * What a build runs and what makes two builds the same (pure).
 *
 * The build key: SHA-256 of the canonical JSON of every input that changes
 * what a build produces — the suite, the architecture, the variant, the
 * sorted package list (base + --include), the apt source lines the image is
 * built from, the agent bundle and unit digest, and RECIPE (raised whenever
 * this code changes what goes into an image). The image name is not in it:
 * building `lab2` with the inputs of `lab` registers `lab2` on lab's digest.
 * New package versions on the mirror do not change the key: `--force`
 * rebuilds (docs/images.md "Idempotence").
 */
import { canonicalJson } from '../store/json.js';
import { sha256Hex } from './manifest.js';

/** Raise when the build recipe (argv, agent baking, artefact formats, scrubbing) changes what an image holds. 3: per-machine secrets removed (tree.ts scrubMachineSecrets). */
export const RECIPE = 3;
/** mmdebstrap variant: Debian's priority required + important packages (apt, systemd's neighbours, ...). */
export const VARIANT = 'important';

export interface BuildInputs {
  suite: string;
  arch: string;
  packages: readonly string[];
  sources: readonly string[];
  /** sha256 of the agent bundle followed by its unit (agentDigest). */
  agentSha256: string;
}

export function buildKey(inputs: BuildInputs): string {
  return `sha256:${sha256Hex(canonicalJson({ recipe: RECIPE, variant: VARIANT, ...inputs, packages: [...inputs.packages].sort() }))}`;
}

/** Key of an import: the file's content, its format and the recipe. */
export function importKey(fileSha256: string, format: 'tar' | 'oci'): string {
  return `sha256:${sha256Hex(canonicalJson({ recipe: RECIPE, import: fileSha256, format }))}`;
}

/** One digest for the agent bundle and its unit. */
export function agentDigest(bundleSha256: string, unitSha256: string): string {
  return sha256Hex(`${bundleSha256}\n${unitSha256}\n`);
}

/**
 * mmdebstrap's argv (after the program name): a directory tree, as root,
 * from the apt source lines in `mirrorFile` (a file mirror argument is pasted
 * into the image's sources.list, so the image also updates from them).
 */
export function mmdebstrapArgs(p: { suite: string; arch: string; packages: readonly string[]; mirrorFile: string; tree: string }): string[] {
  return [
    '--mode=root',
    '--format=directory',
    `--variant=${VARIANT}`,
    `--architectures=${p.arch}`,
    `--include=${[...p.packages].sort().join(',')}`,
    p.suite,
    p.tree,
    p.mirrorFile,
  ];
}

/**
 * mmdebstrap in a private mount namespace: the /proc, /sys and /dev it
 * mounts inside the tree die with it, even when it is killed, so a stale
 * build directory never hides a mount of the host.
 */
export function isolatedArgv(unshare: string, program: string, args: readonly string[]): [string, string[]] {
  return [unshare, ['--mount', '--propagation', 'private', '--', program, ...args]];
}

/** GNU tar argv for rootfs.tar.zst: names sorted, numeric owners, xattrs (file capabilities), no atime/ctime. */
export function tarCreateArgs(tree: string, out: string): string[] {
  return [
    '--create',
    '--zstd',
    `--file=${out}`,
    `--directory=${tree}`,
    '--sort=name',
    '--numeric-owner',
    '--format=posix',
    '--pax-option=delete=atime,delete=ctime',
    '--xattrs',
    '--xattrs-include=*',
    '.',
  ];
}

/** GNU tar argv extracting a checked archive into `tree` as root: owners, modes and xattrs kept. */
export function tarExtractArgs(file: string, tree: string, opts: { excludeWhiteouts?: boolean } = {}): string[] {
  return [
    '--extract',
    `--file=${file}`,
    `--directory=${tree}`,
    '--numeric-owner',
    '--same-owner',
    '--preserve-permissions',
    '--xattrs',
    '--xattrs-include=*',
    ...(opts.excludeWhiteouts ? ['--exclude=.wh.*'] : []),
  ];
}

/**
 * mksquashfs argv for rootfs.squashfs (zstd: the kernel mounts it since
 * 4.14). Level 3, not mksquashfs's default 15: on 2 cores a Debian image
 * packs in ~5 s instead of ~140 s, for ~12% more bytes (measured,
 * docs/images.md). The creation time is pinned, so the same tree gives the
 * same bytes (and an identical import the same digest).
 */
export function squashfsArgs(tree: string, out: string): string[] {
  return [tree, out, '-noappend', '-comp', 'zstd', '-Xcompression-level', '3', '-mkfs-time', '0', '-no-progress', '-quiet'];
}

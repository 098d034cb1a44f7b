/**
 * The image manifest and the image index (pure): their types, the content
 * digest, their rendering (JSON on disk, text for `fleet image show|list`)
 * and the checks applied when they are read back.
 *
 * An image is content-addressed: its digest is the SHA-256 of its SHA256SUMS
 * file (one `<sha256>  <file>` line per artefact, sorted by file name), so
 * `sha256sum -c SHA256SUMS` in the image directory verifies every artefact
 * and the digest verifies SHA256SUMS. The manifest (created time, package
 * list, how it was made) describes the content and is not part of the digest.
 * Names live in the index, not in the content: two names may share a digest.
 */
import { createHash } from 'node:crypto';
import { FleetError } from '../../common/errors.js';

export const MANIFEST_SCHEMA = 1;

/** Artefact file names inside DATA/images/sha256/<digest>/. */
export const FILES = {
  rootfs: 'rootfs.tar.zst',
  squashfs: 'rootfs.squashfs',
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  manifest: 'manifest.json',
  sums: 'SHA256SUMS',
} as const;

export interface Artefact {
  file: string;
  size: number;
  sha256: string;
}

export interface ImagePackage {
  name: string;
  version: string;
}

export type ImageOrigin =
  | { kind: 'build'; suite: string; variant: string; packages: string[]; sources: string[]; agentSha256: string }
  | { kind: 'import'; file: string; format: 'tar' | 'oci'; sha256: string };

export interface ImageManifest {
  schema: typeof MANIFEST_SCHEMA;
  /** sha256:<hex> of SHA256SUMS. */
  digest: string;
  /** `debian:bookworm` for builds, `import:<file name>` for imports. */
  from: string;
  /** Debian architecture, or null when an import does not say. */
  arch: string | null;
  created: string;
  /** The build key the image answers (docs/images.md "Idempotence"). */
  buildKey: string;
  origin: ImageOrigin;
  /** The kernel version of vmlinuz/initrd.img, or null when the image has none (imports). */
  kernelVersion: string | null;
  /** Whether the fleet agent and its enabled unit are baked in. */
  agent: boolean;
  packageCount: number;
  packages: ImagePackage[];
  artefacts: { rootfs: Artefact; squashfs: Artefact; kernel: Artefact | null; initrd: Artefact | null };
}

/** What `fleet image show` prints: the manifest under its name. */
export type NamedManifest = ImageManifest & { name: string };

export interface IndexEntry {
  digest: string;
  buildKey: string;
  registered: string;
}

export interface ImageIndex {
  schema: 1;
  images: Record<string, IndexEntry>;
}

export const EMPTY_INDEX: ImageIndex = { schema: 1, images: {} };

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function presentArtefacts(a: ImageManifest['artefacts']): Artefact[] {
  return [a.rootfs, a.squashfs, a.kernel, a.initrd].filter((x): x is Artefact => x !== null);
}

/** SHA256SUMS text for the artefacts (sorted by file, sha256sum's own format). */
export function renderSums(artefacts: readonly Artefact[]): string {
  return [...artefacts]
    .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))
    .map((a) => `${a.sha256}  ${a.file}\n`)
    .join('');
}

/** The image digest: sha256 of its SHA256SUMS. */
export function imageDigest(artefacts: readonly Artefact[]): string {
  return `sha256:${sha256Hex(renderSums(artefacts))}`;
}

/** The directory name of a digest under DATA/images/sha256/. */
export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new FleetError('internal', `not an image digest: ${JSON.stringify(digest)}`);
  return m[1]!;
}

export function manifestArtefacts(m: ImageManifest): Artefact[] {
  return presentArtefacts(m.artefacts);
}

/** The manifest as stored: canonical order, two-space indent, final newline. */
export function renderManifest(m: ImageManifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isArtefact = (v: unknown): v is Artefact =>
  isObj(v) && typeof v.file === 'string' && typeof v.size === 'number' && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256);

/** Reads a stored manifest back; FleetError('internal') naming `where` when it is not one. */
export function parseManifest(text: string, where: string): ImageManifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FleetError('internal', `${where} is not JSON: ${(e as Error).message}`);
  }
  const bad = (why: string): never => {
    throw new FleetError('internal', `${where} is not an image manifest: ${why}`);
  };
  if (!isObj(v)) return bad('not an object');
  if (v.schema !== MANIFEST_SCHEMA) return bad(`schema ${JSON.stringify(v.schema)}, expected ${MANIFEST_SCHEMA}`);
  if (typeof v.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(v.digest)) return bad('digest');
  if (!isObj(v.artefacts) || !isArtefact(v.artefacts.rootfs) || !isArtefact(v.artefacts.squashfs)) return bad('artefacts');
  for (const k of ['kernel', 'initrd']) if (v.artefacts[k] !== null && !isArtefact(v.artefacts[k])) return bad(`artefacts.${k}`);
  if (!Array.isArray(v.packages) || typeof v.packageCount !== 'number') return bad('packages');
  const m = v as unknown as ImageManifest;
  if (imageDigest(manifestArtefacts(m)) !== m.digest) return bad('its digest does not match its artefacts');
  return m;
}

/** Reads DATA/images/index.json back (an absent file is the empty index). */
export function parseIndex(text: string | null, where: string): ImageIndex {
  if (text === null) return { schema: 1, images: {} };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FleetError('internal', `${where} is not JSON: ${(e as Error).message}`);
  }
  if (!isObj(v) || v.schema !== 1 || !isObj(v.images)) throw new FleetError('internal', `${where} is not an image index`);
  const images: Record<string, IndexEntry> = {};
  for (const [name, e] of Object.entries(v.images)) {
    if (!isObj(e) || typeof e.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(e.digest) || typeof e.buildKey !== 'string') {
      throw new FleetError('internal', `${where}: entry ${JSON.stringify(name)} is not an index entry`);
    }
    images[name] = { digest: e.digest, buildKey: e.buildKey, registered: String(e.registered ?? '') };
  }
  return { schema: 1, images };
}

export function renderIndex(index: ImageIndex): string {
  const images: Record<string, IndexEntry> = {};
  for (const name of Object.keys(index.images).sort()) images[name] = index.images[name]!;
  return JSON.stringify({ schema: 1, images }, null, 2) + '\n';
}

/** The index with `name` → entry (a new object). */
export function withEntry(index: ImageIndex, name: string, entry: IndexEntry): ImageIndex {
  return { schema: 1, images: { ...index.images, [name]: entry } };
}

export function withoutEntry(index: ImageIndex, name: string): ImageIndex {
  const images = { ...index.images };
  delete images[name];
  return { schema: 1, images };
}

/** Digests some name still refers to. */
export function referencedDigests(index: ImageIndex): Set<string> {
  return new Set(Object.values(index.images).map((e) => e.digest));
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** `fleet image show NAME`: the manifest as text (the packages by count; --json prints them all). */
export function formatManifest(m: NamedManifest): string {
  const a = m.artefacts;
  const art = (label: string, x: Artefact | null): string =>
    x ? `  ${label.padEnd(9)} ${x.file.padEnd(16)} ${humanBytes(x.size).padStart(10)}  sha256:${x.sha256}` : `  ${label.padEnd(9)} absent`;
  const origin =
    m.origin.kind === 'build'
      ? `built by mmdebstrap (${m.origin.variant}) from ${m.origin.suite}; included: ${m.origin.packages.join(', ')}`
      : `imported from ${m.origin.file} (${m.origin.format}, sha256:${m.origin.sha256})`;
  return [
    `name:      ${m.name}`,
    `digest:    ${m.digest}`,
    `from:      ${m.from}`,
    `arch:      ${m.arch ?? '-'}`,
    `created:   ${m.created}`,
    `origin:    ${origin}`,
    `kernel:    ${m.kernelVersion ?? 'absent'}`,
    `agent:     ${m.agent ? 'fleet-agent.service enabled' : 'absent'}`,
    `packages:  ${m.packageCount}`,
    `artefacts:`,
    art('rootfs', a.rootfs),
    art('squashfs', a.squashfs),
    art('kernel', a.kernel),
    art('initrd', a.initrd),
    '',
  ].join('\n');
}

/** `fleet image list`: one line per name. */
export function formatList(rows: readonly NamedManifest[]): string {
  if (rows.length === 0) return 'no images (fleet image build NAME --from debian:bookworm, or fleet image import NAME FILE)\n';
  const head = ['NAME', 'DIGEST', 'FROM', 'ARCH', 'PACKAGES', 'ROOTFS', 'KERNEL', 'CREATED'];
  const body = rows.map((m) => [
    m.name,
    m.digest.slice(0, 19),
    m.from,
    m.arch ?? '-',
    String(m.packageCount),
    humanBytes(m.artefacts.rootfs.size),
    m.kernelVersion ?? '-',
    m.created,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  return [head, ...body].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/**
 * The apt repository's index files as text (pure): a package's stanza in
 * `Packages` and the suite's `Release`. The stanza is what
 * `dpkg-scanpackages -m` writes: the control fields in dpkg's canonical
 * order for a binary index (Dpkg::Control::FieldsCore, CTRL_INDEX_PKG;
 * fields it does not know follow, in their own order), with Filename,
 * Size, MD5sum, SHA1 and SHA256 in their place. The Release is what apt
 * needs: Origin, Label, Suite, Codename, Date, Architectures, Components,
 * Description and the SHA256 of each index file (path relative to the
 * suite's directory).
 */
import type { ControlFields } from './deb.js';

/** dpkg's field order for a binary package index (lower case). */
const INDEX_ORDER = [
  'package',
  'package-type',
  'source',
  'version',
  'kernel-version',
  'built-for-profiles',
  'auto-built-package',
  'architecture',
  'subarchitecture',
  'installer-menu-item',
  'build-essential',
  'essential',
  'protected',
  'origin',
  'bugs',
  'maintainer',
  'installed-size',
  'pre-depends',
  'depends',
  'recommends',
  'suggests',
  'enhances',
  'conflicts',
  'breaks',
  'replaces',
  'provides',
  'built-using',
  'static-built-using',
  'filename',
  'size',
  'md5sum',
  'sha1',
  'sha256',
  'section',
  'priority',
  'multi-arch',
  'homepage',
  'description',
  'tag',
  'task',
];
const RANK = new Map(INDEX_ORDER.map((f, i) => [f, i]));

/** Fields the repository computes: whatever the package says for them is replaced. */
const COMPUTED = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256']);

export interface PoolFile {
  /** Path from the repository root, e.g. pool/main/h/hello/hello_1.0_all.deb. */
  filename: string;
  size: number;
  md5: string;
  sha1: string;
  sha256: string;
}

/** One package's paragraph of a Packages file, ending with a newline (no blank line). */
export function renderStanza(fields: ControlFields, file: PoolFile): string {
  const all: [string, string][] = fields.filter(([k]) => !COMPUTED.has(k.toLowerCase()));
  all.push(['Filename', file.filename], ['Size', String(file.size)], ['MD5sum', file.md5], ['SHA1', file.sha1], ['SHA256', file.sha256]);
  const ranked = all.map((f, i) => ({ f, i, r: RANK.get(f[0].toLowerCase()) ?? INDEX_ORDER.length }));
  ranked.sort((a, b) => a.r - b.r || a.i - b.i);
  return ranked.map(({ f: [k, v] }) => `${k}: ${v}\n`).join('');
}

/** A Packages file: stanzas separated by blank lines, sorted by package, then version text, then architecture. */
export function renderPackages(entries: readonly { package: string; version: string; architecture: string; stanza: string }[]): string {
  const sorted = [...entries].sort((a, b) => cmp(a.package, b.package) || cmp(a.version, b.version) || cmp(a.architecture, b.architecture));
  return sorted.map((e) => e.stanza).join('\n');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface IndexFile {
  /** Path relative to dists/SUITE/, e.g. main/binary-amd64/Packages.gz. */
  path: string;
  size: number;
  sha256: string;
}

export interface ReleaseInfo {
  suite: string;
  codename: string;
  date: Date;
  architectures: string[];
  components: string[];
  files: IndexFile[];
  origin?: string;
  label?: string;
  description?: string;
}

/** RFC 2822 date in UTC, as the Debian archive writes it. */
export function releaseDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, 'UTC');
}

/** The suite's Release file. */
export function renderRelease(r: ReleaseInfo): string {
  const width = Math.max(0, ...r.files.map((f) => String(f.size).length));
  const files = [...r.files].sort((a, b) => cmp(a.path, b.path));
  return [
    `Origin: ${r.origin ?? 'fleet'}`,
    `Label: ${r.label ?? 'fleet'}`,
    `Suite: ${r.suite}`,
    `Codename: ${r.codename}`,
    `Date: ${releaseDate(r.date)}`,
    `Architectures: ${r.architectures.join(' ')}`,
    `Components: ${r.components.join(' ')}`,
    `Description: ${r.description ?? 'packages served by the fleet server'}`,
    'SHA256:',
    ...files.map((f) => ` ${f.sha256} ${String(f.size).padStart(width)} ${f.path}`),
    '',
  ].join('\n');
}

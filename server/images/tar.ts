/**
 * Reading tar archives without trusting them (pure): the headers (ustar,
 * GNU long names, pax extended headers, base-256 sizes) from a reader
 * function, and `TreeGuard`, which checks each member against what the
 * archive (or the layers before it) already put in the tree:
 *
 * - a member name must be relative and must not climb: no leading '/', no
 *   '..' component, no NUL (a leading './' and repeated slashes are fine);
 * - no member may pass through a symbolic link an earlier member (or layer)
 *   made: `link -> /etc` then `link/passwd` would write outside the tree;
 * - a hard link must name a member path by the same rules;
 * - a relative symlink must not climb above the tree's root from where it
 *   is; an absolute one is a path inside the image (/etc/alternatives/...),
 *   which the previous rule keeps from being followed while extracting.
 *
 * Only what passes is handed to GNU tar, whose own defaults (it strips
 * leading '/' and skips '..' members) are a second line, not the first.
 */
import { posix } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { show } from '../../common/patterns.js';

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** The member name as the archive gives it (after pax / GNU long names). */
  name: string;
  type: TarType;
  /** Link target for symlinks and hard links. */
  linkname: string;
  size: number;
  mode: number;
  /** Offset of the member's data in the archive. */
  offset: number;
}

/** Reads `length` bytes at `offset` (fewer at the end of the file). */
export type ReadAt = (offset: number, length: number) => Buffer;

const BLOCK = 512;

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? s.length : z).toString('utf8');
}

function num(b: Buffer, start: number, len: number): number {
  const f = b.subarray(start, start + len);
  if (f[0]! & 0x80) {
    // GNU base-256: big-endian, the first byte's high bit is the flag.
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  const t = cstr(b, start, len).trim();
  if (t === '') return 0;
  if (!/^[0-7]+$/.test(t)) throw new FleetError('request.invalid', `not a tar archive: bad number ${show(t)} in a header`);
  return parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === num(h, 148, 8);
}

/** Records of a pax extended header ("LEN key=value\n"...). */
export function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.subarray(i, sp).toString('ascii'), 10);
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) throw new FleetError('request.invalid', 'not a tar archive: bad pax record');
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

/**
 * The members of a tar archive, in order. Throws FleetError('request.invalid')
 * when the bytes are not a tar archive (bad checksum, truncated member) or a
 * member has a type fleet does not extract (sparse, volume, multi-volume).
 */
export function* tarEntries(read: ReadAt, totalSize: number): Generator<TarEntry> {
  let off = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;
  let global = new Map<string, string>();
  let first = true;
  while (off + BLOCK <= totalSize) {
    const h = read(off, BLOCK);
    if (h.length < BLOCK) break;
    if (h.every((x) => x === 0)) return;
    if (!checksumOk(h)) throw new FleetError('request.invalid', first ? 'not a tar archive' : `not a tar archive: bad header checksum at byte ${off}`);
    first = false;
    const flag = String.fromCharCode(h[156]!);
    const size = num(h, 124, 12);
    const dataOff = off + BLOCK;
    const next = dataOff + Math.ceil(size / BLOCK) * BLOCK;
    if (dataOff + size > totalSize) throw new FleetError('request.invalid', `tar archive truncated in a member at byte ${off}`);
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size > 1024 * 1024) throw new FleetError('request.invalid', `tar extended header of ${size} bytes at byte ${off}: too large`);
      const data = read(dataOff, size);
      if (flag === 'L') longName = cstr(data, 0, data.length);
      else if (flag === 'K') longLink = cstr(data, 0, data.length);
      else if (flag === 'x') pax = parsePax(data);
      else global = new Map([...global, ...parsePax(data)]);
      off = next;
      continue;
    }
    const type = TYPES[flag];
    const ustar = cstr(h, 257, 6) === 'ustar';
    const prefix = ustar && h.subarray(257, 263).toString('latin1') === 'ustar\0' ? cstr(h, 345, 155) : '';
    let name = prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100);
    let linkname = cstr(h, 157, 100);
    name = pax?.get('path') ?? longName ?? global.get('path') ?? name;
    linkname = pax?.get('linkpath') ?? longLink ?? linkname;
    const realSize = pax?.has('size') ? Number(pax.get('size')) : size;
    if (type === undefined) {
      throw new FleetError('request.invalid', `tar member ${show(name)} has type ${show(flag)}, which fleet does not extract (sparse, volume or multi-volume members)`);
    }
    yield { name, type, linkname, size: type === 'file' ? realSize : 0, mode: num(h, 100, 8), offset: dataOff };
    longName = longLink = pax = undefined;
    off = next;
  }
}

/**
 * A member name as a path inside the tree: '' for the root itself, else a
 * normalised relative path. Throws FleetError('image.unsafe') for absolute
 * names, '..' components and NULs.
 */
export function memberPath(name: string, what = 'member'): string {
  if (name.includes('\0')) throw new FleetError('image.unsafe', `${what} ${show(name)} holds a NUL byte`);
  if (name.startsWith('/')) throw new FleetError('image.unsafe', `${what} ${show(name)} is an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new FleetError('image.unsafe', `${what} ${show(name)} climbs out of the tree ('..')`);
  return parts.join('/');
}

/** OCI whiteouts: `.wh.NAME` deletes NAME of the layers below, `.wh..wh..opq` empties its directory. */
export type Whiteout = { kind: 'delete'; path: string } | { kind: 'opaque'; dir: string };

export function whiteoutOf(path: string): Whiteout | null {
  const base = posix.basename(path);
  if (!base.startsWith('.wh.')) return null;
  const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
  if (base === '.wh..wh..opq') return { kind: 'opaque', dir };
  const target = base.slice('.wh.'.length);
  if (target === '' || target === '.' || target === '..') throw new FleetError('image.unsafe', `whiteout ${show(path)} names no file`);
  return { kind: 'delete', path: dir ? `${dir}/${target}` : target };
}

/**
 * What the tree holds so far (path → type), across an archive's members and
 * an OCI image's layers, and the checks above. `check` throws
 * FleetError('image.unsafe') for a hostile member, `apply` records one.
 */
export class TreeGuard {
  private readonly types = new Map<string, TarType>();

  /** The type recorded for `path`, if any. */
  typeOf(path: string): TarType | undefined {
    return this.types.get(path);
  }

  private throughLink(path: string, name: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const up = parts.slice(0, i).join('/');
      if (this.types.get(up) === 'symlink') {
        throw new FleetError('image.unsafe', `member ${show(name)} passes through the symbolic link ${show(up)}: it could write outside the tree`);
      }
    }
  }

  /** Checks one member; returns its path in the tree ('' for the root). */
  check(e: Pick<TarEntry, 'name' | 'type' | 'linkname'>): string {
    const path = memberPath(e.name);
    if (path === '') {
      if (e.type !== 'dir') throw new FleetError('image.unsafe', `member ${show(e.name)} replaces the root of the tree`);
      return path;
    }
    this.throughLink(path, e.name);
    if (e.type === 'hardlink') {
      const target = memberPath(e.linkname, `hard link target of ${show(e.name)}:`);
      if (target === '') throw new FleetError('image.unsafe', `hard link ${show(e.name)} points at the root of the tree`);
      this.throughLink(target, e.linkname);
    }
    if (e.type === 'symlink') {
      if (e.linkname.includes('\0') || e.linkname === '') throw new FleetError('image.unsafe', `symbolic link ${show(e.name)} has an empty or NUL target`);
      if (!e.linkname.startsWith('/')) {
        const resolved = posix.normalize(posix.join('/', posix.dirname(path), e.linkname));
        // Above the root, normalize stops at '/': compare depths instead.
        if (climbs(posix.dirname(path), e.linkname)) {
          throw new FleetError('image.unsafe', `symbolic link ${show(e.name)} -> ${show(e.linkname)} points outside the tree (${show(resolved)} from above its root)`);
        }
      }
    }
    return path;
  }

  /** Records a checked member. */
  apply(path: string, type: TarType): void {
    if (path === '') return;
    const was = this.types.get(path);
    if (was === 'dir' && type !== 'dir') this.removeUnder(path);
    this.types.set(path, type === 'hardlink' ? 'file' : type === 'dir' || type === 'symlink' ? type : 'file');
  }

  /**
   * Checks and records one member; returns its path. A hard link is what
   * its target is: a hard link to a symbolic link is a symbolic link on
   * disk, and nothing may later pass through it either.
   */
  add(e: Pick<TarEntry, 'name' | 'type' | 'linkname'>): string {
    const p = this.check(e);
    this.apply(p, e.type === 'hardlink' ? (this.types.get(memberPath(e.linkname)) ?? 'file') : e.type);
    return p;
  }

  /** A whiteout of a layer: forget what it deletes. */
  whiteout(w: Whiteout): void {
    if (w.kind === 'delete') {
      this.types.delete(w.path);
      this.removeUnder(w.path);
    } else if (w.dir === '') {
      this.types.clear();
    } else {
      this.removeUnder(w.dir);
    }
  }

  private removeUnder(dir: string): void {
    const prefix = `${dir}/`;
    for (const k of [...this.types.keys()]) if (k.startsWith(prefix)) this.types.delete(k);
  }
}

/** Whether a relative link target, followed from directory `dir` ('.' for the root), goes above the root. */
export function climbs(dir: string, target: string): boolean {
  let depth = dir === '.' || dir === '' ? 0 : dir.split('/').filter((p) => p !== '' && p !== '.').length;
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      depth--;
      if (depth < 0) return true;
    } else depth++;
  }
  return false;
}

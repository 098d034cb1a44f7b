/**
 * File access confined to a root directory.
 *
 * Roles name paths as the node sees them ('/etc/hosts'); `RootFs` resolves
 * them inside its root ('/' on a node, a temporary directory in tests, a
 * mounted image during an install). Symbolic links are followed only while
 * they stay inside the root: a link that leads out of it (e.g.
 * ROOT/etc/hosts -> /etc/hosts) or dangles is refused with `UnsafePathError`,
 * before anything is read or written through it.
 *
 * Writes are atomic (temporary file in the same directory, fsync, rename)
 * with an explicit mode; the first time fleet replaces or deletes a file it
 * keeps the original under /var/lib/fleet-agent/backup/<path> (inside the
 * root) and never overwrites that copy.
 */
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write.js';

export const BACKUP_DIR = '/var/lib/fleet-agent/backup';

export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}

export interface WriteOptions {
  /** File mode, e.g. 0o644 (applied regardless of umask). */
  mode: number;
  /** Owner; applied only when the agent runs as root. */
  uid?: number;
  gid?: number;
  /** Mode of directories created on the way (default 0o755). */
  dirMode?: number;
}

export interface ResolveOptions {
  noFollowLast?: boolean;
  noFollowUnder?: string;
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

export class RootFs {
  private rootReal?: string;

  constructor(readonly root: string) {}

  private async realRoot(): Promise<string> {
    this.rootReal ??= await fs.realpath(this.root);
    return this.rootReal;
  }

  /** Splits and checks a node path ('/etc/hosts'). */
  private segments(p: string): string[] {
    if (!p.startsWith('/')) throw new UnsafePathError(`${JSON.stringify(p)} is not an absolute path`);
    if (p.includes('\0')) throw new UnsafePathError('path contains NUL');
    const segs = p.split('/').filter((s) => s !== '' && s !== '.');
    if (segs.includes('..')) throw new UnsafePathError(`${p}: ".." is not allowed`);
    return segs;
  }

  /**
   * The real host path of node path `p`, following links that stay inside
   * the root. Components that do not exist yet are appended as they are.
   * With `noFollowLast` a link as the last component is refused; with
   * `noFollowUnder` (a node path) any link below that directory is refused —
   * for directories other users own (a home), where a link is an attack.
   */
  async resolve(p: string, opts: ResolveOptions = {}): Promise<string> {
    const root = await this.realRoot();
    const segs = this.segments(p);
    let cur = root;
    for (let i = 0; i < segs.length; i++) {
      const next = path.join(cur, segs[i]!);
      let st;
      try {
        st = await fs.lstat(next);
      } catch (e) {
        if (errno(e) === 'ENOENT') return path.join(next, ...segs.slice(i + 1));
        throw e;
      }
      if (st.isSymbolicLink()) {
        const last = i === segs.length - 1;
        const here = `/${segs.slice(0, i + 1).join('/')}`;
        const under = opts.noFollowUnder !== undefined && isInside(path.posix.normalize(opts.noFollowUnder), here) && here !== path.posix.normalize(opts.noFollowUnder);
        if (under || (last && opts.noFollowLast)) throw new UnsafePathError(`${p}: ${path.join('/', ...segs.slice(0, i + 1))} is a symbolic link; refusing to follow it`);
        const target = await fs.readlink(next);
        let real: string;
        try {
          real = await fs.realpath(path.isAbsolute(target) ? target : path.join(cur, target));
        } catch (e) {
          if (errno(e) === 'ENOENT') throw new UnsafePathError(`${p}: ${path.join('/', ...segs.slice(0, i + 1))} is a dangling symbolic link (-> ${target})`);
          throw e;
        }
        if (!isInside(root, real)) throw new UnsafePathError(`${p}: ${path.join('/', ...segs.slice(0, i + 1))} is a symbolic link out of the root (-> ${target}); refusing to follow it`);
        cur = real;
      } else {
        cur = next;
      }
    }
    return cur;
  }

  /** File content, or undefined when it does not exist. */
  async read(p: string, opts: ResolveOptions = {}): Promise<string | undefined> {
    const real = await this.resolve(p, opts);
    try {
      return await fs.readFile(real, 'utf8');
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async exists(p: string): Promise<boolean> {
    try {
      await fs.lstat(await this.resolve(p));
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT') return false;
      throw e;
    }
  }

  /** Whether `p` exists, without following it when it is a link (a link to anywhere counts). */
  async lexists(p: string): Promise<boolean> {
    const parent = path.posix.dirname(p);
    const dir = parent === p ? await this.realRoot() : await this.resolve(parent);
    try {
      await fs.lstat(path.join(dir, path.posix.basename(p)));
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
      throw e;
    }
  }

  async stat(p: string, opts: ResolveOptions = {}): Promise<import('node:fs').Stats | undefined> {
    try {
      return await fs.lstat(await this.resolve(p, opts));
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Names in a directory (sorted); [] when it does not exist. */
  async list(dir: string): Promise<string[]> {
    try {
      return (await fs.readdir(await this.resolve(dir))).sort();
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return [];
      throw e;
    }
  }

  /**
   * mkdir -p inside the root; returns the real path. Directories created on
   * the way get 0755, the last one `mode` (and `owner` as root); existing
   * ones are left as they are.
   */
  async mkdirp(p: string, mode = 0o755, owner?: { uid: number; gid: number }, opts: ResolveOptions = {}): Promise<string> {
    const segs = this.segments(p);
    let sofar = '';
    let real = await this.realRoot();
    for (let i = 0; i < segs.length; i++) {
      sofar += `/${segs[i]}`;
      const last = i === segs.length - 1;
      real = await this.resolve(sofar, opts);
      try {
        await fs.mkdir(real, { mode: last ? mode : 0o755 });
        await fs.chmod(real, last ? mode : 0o755);
        if (last && owner && process.getuid?.() === 0) await fs.chown(real, owner.uid, owner.gid);
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
        const st = await fs.stat(real);
        if (!st.isDirectory()) throw new UnsafePathError(`${sofar} exists and is not a directory`);
      }
    }
    return real;
  }

  /**
   * Writes `content` atomically: a temporary file next to the target, fsync,
   * explicit mode (and owner as root), rename over the target.
   */
  async writeAtomic(p: string, content: string | Uint8Array, opts: WriteOptions & ResolveOptions): Promise<void> {
    const ro: ResolveOptions = opts.noFollowUnder !== undefined ? { noFollowUnder: opts.noFollowUnder } : {};
    await this.mkdirp(path.posix.dirname(p), opts.dirMode ?? 0o755, undefined, ro);
    // A link inside the root is written through (rename replaces the file it points to).
    const target = await this.resolve(p, ro);
    const owner = opts.uid !== undefined && opts.gid !== undefined && process.getuid?.() === 0 ? { uid: opts.uid, gid: opts.gid } : undefined;
    await writeFileAtomic(target, content, { mode: opts.mode, ...(owner ? { owner } : {}) });
  }

  /** Sets mode (and owner as root) of an existing path, without following a final link. */
  async chmodOwn(p: string, mode: number, owner?: { uid: number; gid: number }, opts: ResolveOptions = {}): Promise<void> {
    const real = await this.resolve(p, { ...opts, noFollowLast: true });
    await fs.chmod(real, mode);
    if (owner && process.getuid?.() === 0) await fs.lchown(real, owner.uid, owner.gid);
  }

  /** Node path of the backup copy of `p`. */
  backupPathOf(p: string): string {
    return `${BACKUP_DIR}${path.posix.normalize(p)}`;
  }

  /**
   * Keeps a copy of `p` under BACKUP_DIR the first time; later calls leave
   * that copy alone. Returns the backup's node path when one was made now.
   */
  async backupOnce(p: string, opts: ResolveOptions = {}): Promise<string | undefined> {
    const src = await this.resolve(p, opts);
    let st;
    try {
      st = await fs.stat(src);
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw e;
    }
    const dest = this.backupPathOf(p);
    if (await this.exists(dest)) return undefined;
    await this.mkdirp(path.posix.dirname(dest), 0o700);
    const destReal = await this.resolve(dest);
    await fs.copyFile(src, destReal, fsc.COPYFILE_EXCL);
    await fs.chmod(destReal, st.mode & 0o7777);
    return dest;
  }

  /** Deletes `p` (a file), backing it up first. */
  async remove(p: string): Promise<void> {
    await this.backupOnce(p);
    const real = await this.resolve(p, { noFollowLast: true });
    try {
      await fs.unlink(real);
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }
}

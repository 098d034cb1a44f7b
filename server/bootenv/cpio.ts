/**
 * An initramfs builder: a cpio archive in the kernel's "newc" format, built in
 * memory (no staging directory, no root needed: device nodes and ownership are
 * just header fields), gzip-compressed. Parents are added before children;
 * every entry is owned by root with mtime 0, so the same inputs give the same
 * bytes.
 */
import { gzipSync } from 'node:zlib';

type Entry =
  | { kind: 'dir'; path: string; mode: number }
  | { kind: 'file'; path: string; mode: number; data: Buffer }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char'; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function norm(path: string): string {
  const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`cpio: bad path ${JSON.stringify(path)}`);
  return p;
}

export class CpioArchive {
  private readonly entries = new Map<string, Entry>();

  has(path: string): boolean {
    return this.entries.has(norm(path));
  }

  /** Paths in archive order. */
  paths(): string[] {
    return [...this.entries.keys()];
  }

  private parents(p: string): void {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const e = this.entries.get(dir);
      if (!e) this.entries.set(dir, { kind: 'dir', path: dir, mode: 0o755 });
      else if (e.kind !== 'dir') throw new Error(`cpio: ${dir} is not a directory`);
    }
  }

  private put(e: Entry): this {
    this.parents(e.path);
    // A later entry for the same path replaces the earlier one (keeps its position).
    this.entries.set(e.path, e);
    return this;
  }

  dir(path: string, mode = 0o755): this {
    return this.put({ kind: 'dir', path: norm(path), mode });
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    return this.put({ kind: 'file', path: norm(path), mode, data: typeof data === 'string' ? Buffer.from(data) : data });
  }

  symlink(path: string, target: string): this {
    return this.put({ kind: 'symlink', path: norm(path), target });
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    return this.put({ kind: 'char', path: norm(path), mode, major, minor });
  }

  /** The uncompressed newc archive. */
  toBuffer(): Buffer {
    const chunks: Buffer[] = [];
    let ino = 1;
    const pad = (n: number) => (4 - (n % 4)) % 4;
    const header = (name: string, mode: number, size: number, nlink: number, rmaj = 0, rmin = 0): void => {
      const nameBuf = Buffer.from(`${name}\0`);
      const fields = [ino++, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, nameBuf.length, 0];
      const h = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`, 'ascii');
      chunks.push(h, nameBuf, Buffer.alloc(pad(h.length + nameBuf.length)));
    };
    for (const e of this.entries.values()) {
      switch (e.kind) {
        case 'dir':
          header(e.path, S_IFDIR | e.mode, 0, 2);
          break;
        case 'file':
          header(e.path, S_IFREG | e.mode, e.data.length, 1);
          chunks.push(e.data, Buffer.alloc(pad(e.data.length)));
          break;
        case 'symlink': {
          const t = Buffer.from(e.target);
          header(e.path, S_IFLNK | 0o777, t.length, 1);
          chunks.push(t, Buffer.alloc(pad(t.length)));
          break;
        }
        case 'char':
          header(e.path, S_IFCHR | e.mode, 0, 1, e.major, e.minor);
          break;
      }
    }
    header('TRAILER!!!', 0, 0, 1);
    return Buffer.concat(chunks);
  }

  /** The gzip-compressed archive, as the kernel takes it for an initrd. */
  toGzip(level = 9): Buffer {
    return gzipSync(this.toBuffer(), { level });
  }
}

/** Hand-made tar archives for the tests: ustar headers, any member name (hostile ones included). */
export interface MakeEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
}

const FLAG = { file: '0', dir: '5', symlink: '2', hardlink: '1' } as const;

function field(b: Buffer, off: number, len: number, s: string): void {
  b.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

export function tarHeader(e: MakeEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const type = e.type ?? 'file';
  field(h, 0, 100, e.name);
  field(h, 100, 8, octal(e.mode ?? (type === 'dir' ? 0o755 : 0o644), 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, octal(size, 12));
  field(h, 136, 12, octal(1_700_000_000, 12));
  h.fill(0x20, 148, 156);
  field(h, 156, 1, FLAG[type]);
  field(h, 157, 100, e.linkname ?? '');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const x of h) sum += x;
  field(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** A whole archive: each member's header and body padded to 512, then two zero blocks. */
export function makeTar(entries: readonly MakeEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = e.type && e.type !== 'file' ? Buffer.alloc(0) : Buffer.from(e.body ?? '');
    parts.push(tarHeader(e, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function reader(buf: Buffer): (off: number, len: number) => Buffer {
  return (off, len) => buf.subarray(off, off + len);
}

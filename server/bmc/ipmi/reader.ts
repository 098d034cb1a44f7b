/**
 * Bounds-checked reading of untrusted bytes. Every decoder in server/bmc/ipmi
 * reads through a Reader, so a short or malformed packet can only ever raise
 * FleetError('bmc.protocol'), never a RangeError.
 */
import { FleetError } from '../../../common/errors.js';

export function protocolError(message: string): FleetError {
  return new FleetError('bmc.protocol', message);
}

export class Reader {
  private off: number;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
    offset = 0,
  ) {
    if (!(buf instanceof Uint8Array)) throw protocolError(`${what}: not a byte buffer`);
    this.off = offset;
  }

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return Math.max(0, this.buf.length - this.off);
  }

  private need(n: number, field: string): void {
    if (this.off + n > this.buf.length) {
      throw protocolError(`${this.what}: truncated at ${field} (need ${n} byte(s) at offset ${this.off}, have ${this.remaining})`);
    }
  }

  u8(field = 'byte'): number {
    this.need(1, field);
    return this.buf[this.off++]!;
  }

  u16le(field = 'u16'): number {
    this.need(2, field);
    const v = this.buf[this.off]! | (this.buf[this.off + 1]! << 8);
    this.off += 2;
    return v;
  }

  u32le(field = 'u32'): number {
    this.need(4, field);
    const b = this.buf;
    const o = this.off;
    const v = (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
    this.off += 4;
    return v;
  }

  u32be(field = 'u32'): number {
    this.need(4, field);
    const b = this.buf;
    const o = this.off;
    const v = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
    this.off += 4;
    return v;
  }

  bytes(n: number, field = 'bytes'): Buffer {
    if (!Number.isInteger(n) || n < 0) throw protocolError(`${this.what}: bad length ${n} for ${field}`);
    this.need(n, field);
    const out = Buffer.from(this.buf.subarray(this.off, this.off + n));
    this.off += n;
    return out;
  }

  rest(): Buffer {
    return this.bytes(this.remaining, 'rest');
  }

  skip(n: number, field = 'reserved'): void {
    this.need(n, field);
    this.off += n;
  }
}

/** Two's-complement checksum of an IPMI message range: sum of range + checksum ≡ 0 (mod 256). */
export function checksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + bytes[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
}

export function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

export function u16le(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v & 0xffff, 0);
  return b;
}

/**
 * IPMI Platform Management FRU Information Storage Definition v1.0:
 * common header, board info area and product info area, decoded into the
 * strings fleet cares about. Encoder included for tests and simulated BMCs.
 */
import { FleetError } from '../../../common/errors.js';
import { Reader, checksum, protocolError } from './reader.js';

export interface FruHeader {
  version: number;
  /** Byte offsets (0 = area absent). */
  internalOffset: number;
  chassisOffset: number;
  boardOffset: number;
  productOffset: number;
  multiRecordOffset: number;
}

export interface FruBoard {
  manufacturer?: string;
  product?: string;
  serial?: string;
  partNumber?: string;
}

export interface FruProduct {
  manufacturer?: string;
  name?: string;
  partNumber?: string;
  version?: string;
  serial?: string;
  assetTag?: string;
}

export interface Fru {
  board?: FruBoard;
  product?: FruProduct;
}

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw protocolError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function decodeFruHeader(buf: Uint8Array): FruHeader {
  return guard('FRU header', () => {
    const r = new Reader(buf, 'FRU header');
    const h = r.bytes(8, 'common header');
    if ((h[0]! & 0x0f) !== 0x01) throw protocolError(`FRU header: unsupported format version ${h[0]}`);
    if (checksum(h, 0, 7) !== h[7]) throw protocolError('FRU header: bad checksum');
    return {
      version: h[0]! & 0x0f,
      internalOffset: h[1]! * 8,
      chassisOffset: h[2]! * 8,
      boardOffset: h[3]! * 8,
      productOffset: h[4]! * 8,
      multiRecordOffset: h[5]! * 8,
    };
  });
}

const BCD_PLUS = '0123456789 -.:,_';

/** Decodes one type/length field; returns null at the end marker (0xC1). */
function readField(r: Reader): string | null {
  const tl = r.u8('type/length');
  if (tl === 0xc1) return null;
  const type = tl >> 6;
  const len = tl & 0x3f;
  const raw = r.bytes(len, 'field');
  let s: string;
  if (type === 3) s = raw.toString('latin1');
  else if (type === 2) s = unpack6bit(raw);
  else if (type === 1) s = [...raw].map((b) => BCD_PLUS[b >> 4]! + BCD_PLUS[b & 0x0f]!).join('');
  else s = raw.toString('hex');
  // Trim trailing NULs/spaces and drop control characters.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, '').trim();
}

function unpack6bit(raw: Buffer): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of raw) {
    acc |= b << bits;
    bits += 8;
    while (bits >= 6) {
      out += String.fromCharCode((acc & 0x3f) + 0x20);
      acc >>= 6;
      bits -= 6;
    }
  }
  return out;
}

function areaReader(buf: Uint8Array, what: string): Reader {
  const r = new Reader(buf, what);
  const version = r.u8('area version');
  if ((version & 0x0f) !== 0x01) throw protocolError(`${what}: unsupported area version ${version}`);
  const length = r.u8('area length') * 8;
  if (length < 8 || length > buf.length) throw protocolError(`${what}: area length ${length} outside the data`);
  // Area checksums are not enforced: many shipping FRUs get them wrong.
  return new Reader(buf.subarray(0, length), what, 2);
}

function put<T extends object>(o: T, k: keyof T, v: string | null): void {
  if (v) (o as Record<keyof T, string>)[k] = v;
}

/** Board info area starting at its first byte. */
export function decodeFruBoard(buf: Uint8Array): FruBoard {
  return guard('FRU board area', () => {
    const r = areaReader(buf, 'FRU board area');
    r.u8('language');
    r.skip(3, 'mfg date/time');
    const out: FruBoard = {};
    const keys: (keyof FruBoard)[] = ['manufacturer', 'product', 'serial', 'partNumber'];
    for (const k of keys) {
      const v = readField(r);
      if (v === null) break;
      put(out, k, v);
    }
    return out;
  });
}

/** Product info area starting at its first byte. */
export function decodeFruProduct(buf: Uint8Array): FruProduct {
  return guard('FRU product area', () => {
    const r = areaReader(buf, 'FRU product area');
    r.u8('language');
    const out: FruProduct = {};
    const keys: (keyof FruProduct)[] = ['manufacturer', 'name', 'partNumber', 'version', 'serial', 'assetTag'];
    for (const k of keys) {
      const v = readField(r);
      if (v === null) break;
      put(out, k, v);
    }
    return out;
  });
}

/** Length in bytes of the area starting at buf[0] (from its second byte). */
export function fruAreaLength(buf: Uint8Array): number {
  return guard('FRU area', () => {
    const r = new Reader(buf, 'FRU area');
    r.u8('area version');
    return r.u8('area length') * 8;
  });
}

/** Decodes a whole FRU image. */
export function decodeFru(buf: Uint8Array): Fru {
  return guard('FRU', () => {
    const h = decodeFruHeader(buf);
    const out: Fru = {};
    if (h.boardOffset) out.board = decodeFruBoard(sliceFrom(buf, h.boardOffset));
    if (h.productOffset) out.product = decodeFruProduct(sliceFrom(buf, h.productOffset));
    return out;
  });
}

function sliceFrom(buf: Uint8Array, off: number): Uint8Array {
  if (off >= buf.length) throw protocolError(`FRU: area offset ${off} past the end (${buf.length} bytes)`);
  return buf.subarray(off);
}

// --- encoder (tests, simulated BMCs)

function field(s: string | undefined): Buffer {
  const b = Buffer.from(s ?? '', 'latin1').subarray(0, 63);
  return Buffer.concat([Buffer.from([0xc0 | b.length]), b]);
}

function area(head: number[], fields: (string | undefined)[]): Buffer {
  const body = Buffer.concat([Buffer.from(head), ...fields.map(field), Buffer.from([0xc1])]);
  const total = Math.ceil((body.length + 1) / 8) * 8;
  const out = Buffer.alloc(total);
  body.copy(out);
  out[1] = total / 8;
  out[total - 1] = checksum(out, 0, total - 1);
  return out;
}

export function encodeFru(fru: Fru): Buffer {
  const board = fru.board ? area([0x01, 0, 0x19, 0, 0, 0], [fru.board.manufacturer, fru.board.product, fru.board.serial, fru.board.partNumber, '']) : null;
  const product = fru.product
    ? area([0x01, 0, 0x19], [fru.product.manufacturer, fru.product.name, fru.product.partNumber, fru.product.version, fru.product.serial, fru.product.assetTag, ''])
    : null;
  const header = Buffer.alloc(8);
  header[0] = 0x01;
  let off = 8;
  if (board) {
    header[3] = off / 8;
    off += board.length;
  }
  if (product) header[4] = off / 8;
  header[7] = checksum(header, 0, 7);
  return Buffer.concat([header, ...(board ? [board] : []), ...(product ? [product] : [])]);
}

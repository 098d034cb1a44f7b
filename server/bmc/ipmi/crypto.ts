/**
 * RMCP+ cryptography (IPMI v2.0 §13.28–13.32): cipher suites, RAKP HMACs,
 * session key derivation (SIK, K1, K2), integrity AuthCodes and AES-CBC-128
 * confidentiality. Pure functions over node:crypto.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FleetError } from '../../../common/errors.js';
import { Reader, protocolError } from './reader.js';

export type HashName = 'sha1' | 'sha256';

/** Authentication algorithm numbers (Open Session payload, §13.28). */
export const AuthAlg = { NONE: 0x00, HMAC_SHA1: 0x01, HMAC_MD5: 0x02, HMAC_SHA256: 0x03 } as const;
/** Integrity algorithm numbers (§13.28.4). */
export const IntegrityAlg = { NONE: 0x00, HMAC_SHA1_96: 0x01, HMAC_MD5_128: 0x02, MD5_128: 0x03, HMAC_SHA256_128: 0x04 } as const;
/** Confidentiality algorithm numbers (§13.28.5). */
export const ConfAlg = { NONE: 0x00, AES_CBC_128: 0x01, XRC4_128: 0x02, XRC4_40: 0x03 } as const;

export interface CipherSuite {
  id: 3 | 17;
  authAlg: number;
  integrityAlg: number;
  confAlg: number;
  /** Hash of the RAKP HMACs and of the integrity HMAC. */
  hash: HashName;
  /** Length of the RAKP 2 / RAKP 3 key exchange auth codes (full HMAC). */
  rakpAuthCodeLength: number;
  /** Length of the RAKP 4 integrity check value. */
  rakp4IcvLength: number;
  /** Length of the per-packet AuthCode. */
  integrityLength: number;
}

export const CIPHER_SUITES: Readonly<Record<3 | 17, CipherSuite>> = {
  3: {
    id: 3,
    authAlg: AuthAlg.HMAC_SHA1,
    integrityAlg: IntegrityAlg.HMAC_SHA1_96,
    confAlg: ConfAlg.AES_CBC_128,
    hash: 'sha1',
    rakpAuthCodeLength: 20,
    rakp4IcvLength: 12,
    integrityLength: 12,
  },
  17: {
    id: 17,
    authAlg: AuthAlg.HMAC_SHA256,
    integrityAlg: IntegrityAlg.HMAC_SHA256_128,
    confAlg: ConfAlg.AES_CBC_128,
    hash: 'sha256',
    rakpAuthCodeLength: 32,
    rakp4IcvLength: 16,
    integrityLength: 16,
  },
};

export function cipherSuite(id: number): CipherSuite {
  if (id === 3 || id === 17) return CIPHER_SUITES[id];
  throw new FleetError('bmc.unsupported', `cipher suite ${id} is not supported (use 3 or 17)`);
}

export function hmac(hash: HashName, key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac(hash, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Constant-time comparison that tolerates different lengths (→ false). */
export function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The fields every RAKP HMAC is computed over (§13.31, §13.32). */
export interface RakpContext {
  consoleSessionId: number; // SIDm
  bmcSessionId: number; // SIDc
  consoleRandom: Uint8Array; // Rm, 16 bytes
  bmcRandom: Uint8Array; // Rc, 16 bytes
  bmcGuid: Uint8Array; // GUIDc, 16 bytes
  /** ROLEm: the requested privilege byte exactly as sent in RAKP 1 (lookup bit included). */
  role: number;
  username: Uint8Array; // UNAMEm, 0..16 bytes
}

function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

function roleAndName(ctx: RakpContext): Buffer {
  return Buffer.concat([Buffer.from([ctx.role & 0xff, ctx.username.length & 0xff]), ctx.username]);
}

/** RAKP 2 key exchange auth code: HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm). */
export function rakp2AuthCode(suite: CipherSuite, kuid: Uint8Array, ctx: RakpContext): Buffer {
  return hmac(suite.hash, kuid, le32(ctx.consoleSessionId), le32(ctx.bmcSessionId), ctx.consoleRandom, ctx.bmcRandom, ctx.bmcGuid, roleAndName(ctx));
}

/** RAKP 3 key exchange auth code: HMAC_Kuid(Rc, SIDm, ROLEm, ULENGTHm, UNAMEm). */
export function rakp3AuthCode(suite: CipherSuite, kuid: Uint8Array, ctx: RakpContext): Buffer {
  return hmac(suite.hash, kuid, ctx.bmcRandom, le32(ctx.consoleSessionId), roleAndName(ctx));
}

/** Session Integrity Key: HMAC_Kg(Rm, Rc, ROLEm, ULENGTHm, UNAMEm); Kg defaults to Kuid. */
export function deriveSik(suite: CipherSuite, kg: Uint8Array, ctx: RakpContext): Buffer {
  return hmac(suite.hash, kg, ctx.consoleRandom, ctx.bmcRandom, roleAndName(ctx));
}

/** RAKP 4 integrity check value: HMAC_SIK(Rm, SIDc, GUIDc) truncated to the suite's ICV length. */
export function rakp4Icv(suite: CipherSuite, sik: Uint8Array, ctx: RakpContext): Buffer {
  return hmac(suite.hash, sik, ctx.consoleRandom, le32(ctx.bmcSessionId), ctx.bmcGuid).subarray(0, suite.rakp4IcvLength);
}

const CONST_1 = Buffer.alloc(20, 0x01);
const CONST_2 = Buffer.alloc(20, 0x02);

/** K1 = HMAC_SIK(20 × 0x01): integrity key. */
export function deriveK1(suite: CipherSuite, sik: Uint8Array): Buffer {
  return hmac(suite.hash, sik, CONST_1);
}

/** K2 = HMAC_SIK(20 × 0x02): its first 16 bytes are the AES-128 key. */
export function deriveK2(suite: CipherSuite, sik: Uint8Array): Buffer {
  return hmac(suite.hash, sik, CONST_2);
}

export interface SessionKeys {
  sik: Buffer;
  k1: Buffer;
  k2: Buffer;
}

export function deriveSessionKeys(suite: CipherSuite, kg: Uint8Array, ctx: RakpContext): SessionKeys {
  const sik = deriveSik(suite, kg, ctx);
  return { sik, k1: deriveK1(suite, sik), k2: deriveK2(suite, sik) };
}

/** Per-packet AuthCode: HMAC_K1(AuthType … Next Header) truncated to the suite's integrity length. */
export function integrityAuthCode(suite: CipherSuite, k1: Uint8Array, covered: Uint8Array): Buffer {
  return hmac(suite.hash, k1, covered).subarray(0, suite.integrityLength);
}

/**
 * AES-CBC-128 payload (§13.29): IV (16) + AES(data, pad 1,2,3…N, N) with
 * N chosen so that the plaintext is a multiple of 16 bytes.
 */
export function encryptAesCbc128(k2: Uint8Array, plaintext: Uint8Array, iv: Uint8Array = randomBytes(16)): Buffer {
  if (iv.length !== 16) throw protocolError('AES-CBC-128 needs a 16-byte IV');
  const padLength = (16 - ((plaintext.length + 1) % 16)) % 16;
  const pad = Buffer.alloc(padLength + 1);
  for (let i = 0; i < padLength; i++) pad[i] = i + 1;
  pad[padLength] = padLength;
  const cipher = createCipheriv('aes-128-cbc', k2.subarray(0, 16), iv);
  cipher.setAutoPadding(false);
  return Buffer.concat([Buffer.from(iv), cipher.update(Buffer.concat([plaintext, pad])), cipher.final()]);
}

export function decryptAesCbc128(k2: Uint8Array, payload: Uint8Array): Buffer {
  const r = new Reader(payload, 'AES-CBC-128 payload');
  const iv = r.bytes(16, 'IV');
  const body = r.rest();
  if (body.length === 0 || body.length % 16 !== 0) {
    throw protocolError(`AES-CBC-128 payload: ciphertext length ${body.length} is not a positive multiple of 16`);
  }
  const decipher = createDecipheriv('aes-128-cbc', k2.subarray(0, 16), iv);
  decipher.setAutoPadding(false);
  const plain = Buffer.concat([decipher.update(body), decipher.final()]);
  const padLength = plain[plain.length - 1]!;
  if (padLength > 15 || padLength + 1 > plain.length) {
    throw protocolError(`AES-CBC-128 payload: bad confidentiality pad length ${padLength}`);
  }
  return plain.subarray(0, plain.length - 1 - padLength);
}

/**
 * RMCP+ session establishment payloads (IPMI v2.0 §13.17–13.23):
 * Open Session Request/Response and RAKP messages 1–4. Encoders and decoders
 * for both directions, so tests and fakes can play the BMC side.
 */
import { FleetError } from '../../../common/errors.js';
import { Reader, protocolError, u32le } from './reader.js';

export const Privilege = { CALLBACK: 1, USER: 2, OPERATOR: 3, ADMINISTRATOR: 4, OEM: 5 } as const;
/** RAKP 1 role bit 4: name-only lookup (ipmitool and FreeIPMI default). */
export const NAME_ONLY_LOOKUP = 0x10;

/** RMCP+ status codes (§13.24). */
export const RmcpStatus = {
  OK: 0x00,
  INSUFFICIENT_RESOURCES: 0x01,
  INVALID_SESSION_ID: 0x02,
  INVALID_PAYLOAD_TYPE: 0x03,
  INVALID_AUTH_ALG: 0x04,
  INVALID_INTEGRITY_ALG: 0x05,
  NO_MATCHING_AUTH_PAYLOAD: 0x06,
  NO_MATCHING_INTEGRITY_PAYLOAD: 0x07,
  INACTIVE_SESSION_ID: 0x08,
  INVALID_ROLE: 0x09,
  UNAUTHORIZED_ROLE: 0x0a,
  INSUFFICIENT_RESOURCES_FOR_ROLE: 0x0b,
  INVALID_NAME_LENGTH: 0x0c,
  UNAUTHORIZED_NAME: 0x0d,
  UNAUTHORIZED_GUID: 0x0e,
  INVALID_INTEGRITY_CHECK: 0x0f,
  INVALID_CONF_ALG: 0x10,
  NO_CIPHER_SUITE_MATCH: 0x11,
  ILLEGAL_PARAMETER: 0x12,
} as const;

const STATUS_TEXT: Record<number, string> = {
  0x01: 'insufficient resources to create a session',
  0x02: 'invalid session ID',
  0x03: 'invalid payload type',
  0x04: 'invalid authentication algorithm',
  0x05: 'invalid integrity algorithm',
  0x06: 'no matching authentication payload',
  0x07: 'no matching integrity payload',
  0x08: 'inactive session ID',
  0x09: 'invalid role',
  0x0a: 'unauthorized role or privilege level requested',
  0x0b: 'insufficient resources to create a session at the requested role',
  0x0c: 'invalid name length',
  0x0d: 'unauthorized name',
  0x0e: 'unauthorized GUID',
  0x0f: 'invalid integrity check value',
  0x10: 'invalid confidentiality algorithm',
  0x11: 'no cipher suite match with proposed security algorithms',
  0x12: 'illegal or unrecognized parameter',
};

export function rmcpStatusText(status: number): string {
  return STATUS_TEXT[status] ?? `RMCP+ status 0x${status.toString(16).padStart(2, '0')}`;
}

export interface OpenSessionRequest {
  tag: number;
  /** 0 = highest level matching the proposed algorithms. */
  maxPrivilege: number;
  consoleSessionId: number;
  authAlg: number;
  integrityAlg: number;
  confAlg: number;
}

export interface OpenSessionResponse {
  tag: number;
  status: number;
  maxPrivilege: number;
  consoleSessionId: number;
  /** Present when status is 0. */
  bmcSessionId?: number;
  authAlg?: number;
  integrityAlg?: number;
  confAlg?: number;
}

export interface Rakp1 {
  tag: number;
  bmcSessionId: number;
  consoleRandom: Buffer;
  /** Requested privilege (low nibble) + lookup bit: ROLEm. */
  role: number;
  username: Buffer;
}

export interface Rakp2 {
  tag: number;
  status: number;
  consoleSessionId: number;
  /** Present when status is 0. */
  bmcRandom?: Buffer;
  bmcGuid?: Buffer;
  authCode?: Buffer;
}

export interface Rakp3 {
  tag: number;
  status: number;
  bmcSessionId: number;
  authCode: Buffer;
}

export interface Rakp4 {
  tag: number;
  status: number;
  consoleSessionId: number;
  integrityCheckValue: Buffer;
}

function algPayload(type: number, alg: number): Buffer {
  return Buffer.from([type, 0x00, 0x00, 0x08, alg & 0x3f, 0x00, 0x00, 0x00]);
}

function readAlgPayload(r: Reader, type: number, name: string): number {
  const t = r.u8(`${name} payload type`);
  r.skip(2, `${name} reserved`);
  const len = r.u8(`${name} payload length`);
  if (t !== type || len !== 8) throw protocolError(`Open Session: malformed ${name} payload`);
  const alg = r.u8(`${name} algorithm`) & 0x3f;
  r.skip(3, `${name} reserved`);
  return alg;
}

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw protocolError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function encodeOpenSessionRequest(m: OpenSessionRequest): Buffer {
  return Buffer.concat([
    Buffer.from([m.tag & 0xff, m.maxPrivilege & 0x0f, 0x00, 0x00]),
    u32le(m.consoleSessionId),
    algPayload(0x00, m.authAlg),
    algPayload(0x01, m.integrityAlg),
    algPayload(0x02, m.confAlg),
  ]);
}

export function decodeOpenSessionRequest(buf: Uint8Array): OpenSessionRequest {
  return guard('Open Session Request', () => {
    const r = new Reader(buf, 'Open Session Request');
    const tag = r.u8('tag');
    const maxPrivilege = r.u8('privilege') & 0x0f;
    r.skip(2);
    const consoleSessionId = r.u32le('console session id');
    const authAlg = readAlgPayload(r, 0x00, 'authentication');
    const integrityAlg = readAlgPayload(r, 0x01, 'integrity');
    const confAlg = readAlgPayload(r, 0x02, 'confidentiality');
    return { tag, maxPrivilege, consoleSessionId, authAlg, integrityAlg, confAlg };
  });
}

export function encodeOpenSessionResponse(m: OpenSessionResponse): Buffer {
  const head = Buffer.concat([Buffer.from([m.tag & 0xff, m.status & 0xff, m.maxPrivilege & 0x0f, 0x00]), u32le(m.consoleSessionId)]);
  if (m.status !== 0) return head;
  return Buffer.concat([
    head,
    u32le(m.bmcSessionId ?? 0),
    algPayload(0x00, m.authAlg ?? 0),
    algPayload(0x01, m.integrityAlg ?? 0),
    algPayload(0x02, m.confAlg ?? 0),
  ]);
}

export function decodeOpenSessionResponse(buf: Uint8Array): OpenSessionResponse {
  return guard('Open Session Response', () => {
    const r = new Reader(buf, 'Open Session Response');
    const tag = r.u8('tag');
    const status = r.u8('status');
    // Error responses may stop after the status code (§13.18).
    const maxPrivilege = r.remaining > 0 ? r.u8('privilege') & 0x0f : 0;
    if (r.remaining > 0) r.skip(1);
    const consoleSessionId = r.remaining >= 4 ? r.u32le('console session id') : 0;
    if (status !== 0) return { tag, status, maxPrivilege, consoleSessionId };
    const bmcSessionId = r.u32le('managed system session id');
    const authAlg = readAlgPayload(r, 0x00, 'authentication');
    const integrityAlg = readAlgPayload(r, 0x01, 'integrity');
    const confAlg = readAlgPayload(r, 0x02, 'confidentiality');
    return { tag, status, maxPrivilege, consoleSessionId, bmcSessionId, authAlg, integrityAlg, confAlg };
  });
}

export function encodeRakp1(m: Rakp1): Buffer {
  if (m.consoleRandom.length !== 16) throw protocolError('RAKP 1: console random must be 16 bytes');
  if (m.username.length > 16) throw protocolError('RAKP 1: user name longer than 16 bytes');
  return Buffer.concat([
    Buffer.from([m.tag & 0xff, 0, 0, 0]),
    u32le(m.bmcSessionId),
    m.consoleRandom,
    Buffer.from([m.role & 0xff, 0, 0, m.username.length]),
    m.username,
  ]);
}

export function decodeRakp1(buf: Uint8Array): Rakp1 {
  return guard('RAKP 1', () => {
    const r = new Reader(buf, 'RAKP 1');
    const tag = r.u8('tag');
    r.skip(3);
    const bmcSessionId = r.u32le('managed system session id');
    const consoleRandom = r.bytes(16, 'console random');
    const role = r.u8('role');
    r.skip(2);
    const len = r.u8('user name length');
    if (len > 16) throw protocolError(`RAKP 1: user name length ${len} > 16`);
    const username = r.bytes(len, 'user name');
    return { tag, bmcSessionId, consoleRandom, role, username };
  });
}

export function encodeRakp2(m: Rakp2): Buffer {
  const head = Buffer.concat([Buffer.from([m.tag & 0xff, m.status & 0xff, 0, 0]), u32le(m.consoleSessionId)]);
  if (m.status !== 0) return head;
  return Buffer.concat([head, m.bmcRandom ?? Buffer.alloc(16), m.bmcGuid ?? Buffer.alloc(16), m.authCode ?? Buffer.alloc(0)]);
}

/** authCodeLength: the suite's RAKP auth code length (20 for SHA-1, 32 for SHA-256). */
export function decodeRakp2(buf: Uint8Array, authCodeLength: number): Rakp2 {
  return guard('RAKP 2', () => {
    const r = new Reader(buf, 'RAKP 2');
    const tag = r.u8('tag');
    const status = r.u8('status');
    if (r.remaining > 0) r.skip(Math.min(2, r.remaining));
    const consoleSessionId = r.remaining >= 4 ? r.u32le('console session id') : 0;
    if (status !== 0) return { tag, status, consoleSessionId };
    const bmcRandom = r.bytes(16, 'managed system random');
    const bmcGuid = r.bytes(16, 'managed system GUID');
    const authCode = r.bytes(authCodeLength, 'key exchange auth code');
    return { tag, status, consoleSessionId, bmcRandom, bmcGuid, authCode };
  });
}

export function encodeRakp3(m: Rakp3): Buffer {
  return Buffer.concat([Buffer.from([m.tag & 0xff, m.status & 0xff, 0, 0]), u32le(m.bmcSessionId), m.authCode]);
}

export function decodeRakp3(buf: Uint8Array): Rakp3 {
  return guard('RAKP 3', () => {
    const r = new Reader(buf, 'RAKP 3');
    const tag = r.u8('tag');
    const status = r.u8('status');
    r.skip(2);
    const bmcSessionId = r.u32le('managed system session id');
    return { tag, status, bmcSessionId, authCode: r.rest() };
  });
}

export function encodeRakp4(m: Rakp4): Buffer {
  return Buffer.concat([Buffer.from([m.tag & 0xff, m.status & 0xff, 0, 0]), u32le(m.consoleSessionId), m.integrityCheckValue]);
}

/** icvLength: the suite's RAKP 4 ICV length (12 for SHA-1-96, 16 for SHA-256-128). */
export function decodeRakp4(buf: Uint8Array, icvLength: number): Rakp4 {
  return guard('RAKP 4', () => {
    const r = new Reader(buf, 'RAKP 4');
    const tag = r.u8('tag');
    const status = r.u8('status');
    if (r.remaining > 0) r.skip(Math.min(2, r.remaining));
    const consoleSessionId = r.remaining >= 4 ? r.u32le('console session id') : 0;
    if (status !== 0) return { tag, status, consoleSessionId, integrityCheckValue: Buffer.alloc(0) };
    return { tag, status, consoleSessionId, integrityCheckValue: r.bytes(icvLength, 'integrity check value') };
  });
}

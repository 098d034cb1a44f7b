/**
 * RMCP framing (IPMI v2.0 §13.1–13.8): RMCP header, ASF presence ping/pong,
 * the IPMI v1.5 session wrapper (authentication type NONE only, used for the
 * pre-session Get Channel Authentication Capabilities) and the IPMI v2.0 /
 * RMCP+ session wrapper with integrity trailer.
 */
import { FleetError } from '../../../common/errors.js';
import { type CipherSuite, integrityAuthCode, safeEqual } from './crypto.js';
import { Reader, protocolError, u16le, u32le } from './reader.js';

export const RMCP_VERSION = 0x06;
export const RMCP_SEQ_NO_ACK = 0xff;
export const RmcpClass = { ASF: 0x06, IPMI: 0x07 } as const;
export const ASF_IANA = 4542;
export const AsfType = { PING: 0x80, PONG: 0x40 } as const;

export const AuthType = { NONE: 0x00, MD2: 0x01, MD5: 0x02, STRAIGHT: 0x04, OEM: 0x05, RMCP_PLUS: 0x06 } as const;

export const PayloadType = {
  IPMI: 0x00,
  SOL: 0x01,
  OEM_EXPLICIT: 0x02,
  OPEN_SESSION_REQUEST: 0x10,
  OPEN_SESSION_RESPONSE: 0x11,
  RAKP1: 0x12,
  RAKP2: 0x13,
  RAKP3: 0x14,
  RAKP4: 0x15,
} as const;

/** Next Header value in the RMCP+ integrity trailer. */
export const NEXT_HEADER_RMCP = 0x07;

export interface AsfMessage {
  kind: 'asf';
  iana: number;
  type: number;
  tag: number;
  data: Buffer;
}

export interface AsfPong {
  tag: number;
  iana: number;
  oem: number;
  entities: number;
  interactions: number;
  /** Supported entities bit 7: IPMI is supported. */
  ipmi: boolean;
}

export interface Ipmi15Packet {
  kind: 'ipmi15';
  authType: number;
  sessionSeq: number;
  sessionId: number;
  authCode?: Buffer;
  payload: Buffer;
}

export interface Ipmi20Packet {
  kind: 'ipmi20';
  payloadType: number;
  encrypted: boolean;
  authenticated: boolean;
  oemIana?: number;
  oemPayloadId?: number;
  sessionId: number;
  sessionSeq: number;
  /** The payload as on the wire (still encrypted when `encrypted`). */
  payload: Buffer;
  /** Bytes after the payload: integrity pad, pad length, next header, AuthCode. */
  trailer: Buffer;
  /** The session part of the packet (everything after the RMCP header). */
  session: Buffer;
  /** Length of the session header + payload inside `session`. */
  bodyLength: number;
}

export type RmcpPacket = AsfMessage | Ipmi15Packet | Ipmi20Packet;

function rmcpHeader(cls: number): Buffer {
  return Buffer.from([RMCP_VERSION, 0x00, RMCP_SEQ_NO_ACK, cls]);
}

export function encodeAsfPing(tag: number): Buffer {
  return Buffer.concat([rmcpHeader(RmcpClass.ASF), Buffer.from([0x00, 0x00, 0x11, 0xbe, AsfType.PING, tag & 0xff, 0x00, 0x00])]);
}

/** A presence pong as a BMC sends it (tests and fakes). */
export function encodeAsfPong(tag: number, opts: { oem?: number; entities?: number; interactions?: number } = {}): Buffer {
  const data = Buffer.alloc(16);
  data.writeUInt32BE(ASF_IANA, 0);
  data.writeUInt32BE((opts.oem ?? 0) >>> 0, 4);
  data[8] = opts.entities ?? 0x81;
  data[9] = opts.interactions ?? 0x00;
  return Buffer.concat([rmcpHeader(RmcpClass.ASF), Buffer.from([0x00, 0x00, 0x11, 0xbe, AsfType.PONG, tag & 0xff, 0x00, data.length]), data]);
}

export function decodeAsfPong(msg: AsfMessage): AsfPong {
  if (msg.type !== AsfType.PONG) throw protocolError(`ASF: expected presence pong (0x40), got type 0x${msg.type.toString(16)}`);
  const r = new Reader(msg.data, 'ASF pong');
  const iana = r.u32be('IANA');
  const oem = r.u32be('OEM');
  const entities = r.u8('supported entities');
  const interactions = r.u8('supported interactions');
  return { tag: msg.tag, iana, oem, entities, interactions, ipmi: (entities & 0x80) !== 0 };
}

/** IPMI v1.5 session wrapper, authentication type NONE (pre-session messages only). */
export function encodeIpmi15Packet(p: { sessionSeq?: number; sessionId?: number; payload: Uint8Array }): Buffer {
  if (p.payload.length > 0xff) throw protocolError('IPMI v1.5 payload longer than 255 bytes');
  return Buffer.concat([
    rmcpHeader(RmcpClass.IPMI),
    Buffer.from([AuthType.NONE]),
    u32le(p.sessionSeq ?? 0),
    u32le(p.sessionId ?? 0),
    Buffer.from([p.payload.length]),
    p.payload,
  ]);
}

export interface Ipmi20Encode {
  payloadType: number;
  sessionId: number;
  sessionSeq: number;
  /** Wire payload: already encrypted when `encrypted` is set. */
  payload: Uint8Array;
  encrypted?: boolean;
  /** When set, the packet is authenticated: trailer + AuthCode with K1. */
  integrity?: { suite: CipherSuite; k1: Uint8Array };
}

export function encodeIpmi20Packet(p: Ipmi20Encode): Buffer {
  if (p.payload.length > 0xffff) throw protocolError('IPMI v2.0 payload longer than 65535 bytes');
  const typeByte = (p.encrypted ? 0x80 : 0) | (p.integrity ? 0x40 : 0) | (p.payloadType & 0x3f);
  const body = Buffer.concat([
    Buffer.from([AuthType.RMCP_PLUS, typeByte]),
    u32le(p.sessionId),
    u32le(p.sessionSeq),
    u16le(p.payload.length),
    p.payload,
  ]);
  if (!p.integrity) return Buffer.concat([rmcpHeader(RmcpClass.IPMI), body]);
  const padLength = (4 - ((body.length + 2) % 4)) % 4;
  const covered = Buffer.concat([body, Buffer.alloc(padLength, 0xff), Buffer.from([padLength, NEXT_HEADER_RMCP])]);
  const authCode = integrityAuthCode(p.integrity.suite, p.integrity.k1, covered);
  return Buffer.concat([rmcpHeader(RmcpClass.IPMI), covered, authCode]);
}

/** Checks the AuthCode of an authenticated RMCP+ packet. Throws bmc.protocol on any mismatch. */
export function verifyIpmi20Integrity(pkt: Ipmi20Packet, suite: CipherSuite, k1: Uint8Array): void {
  if (!pkt.authenticated) throw protocolError('RMCP+: expected an authenticated packet');
  const codeLength = suite.integrityLength;
  const t = pkt.trailer;
  if (t.length < codeLength + 2) throw protocolError('RMCP+: integrity trailer truncated');
  const nextHeader = t[t.length - codeLength - 1]!;
  const padLength = t[t.length - codeLength - 2]!;
  if (nextHeader !== NEXT_HEADER_RMCP) throw protocolError(`RMCP+: bad next header 0x${nextHeader.toString(16)}`);
  if (padLength + 2 + codeLength !== t.length) throw protocolError('RMCP+: integrity pad length does not match the packet');
  const coveredLength = pkt.bodyLength + t.length - codeLength;
  const covered = pkt.session.subarray(0, coveredLength);
  const expected = integrityAuthCode(suite, k1, covered);
  if (!safeEqual(expected, t.subarray(t.length - codeLength))) throw protocolError('RMCP+: packet AuthCode does not verify');
}

/** Decodes any RMCP datagram. Throws only FleetError('bmc.protocol'). */
export function decodeRmcpPacket(buf: Uint8Array): RmcpPacket {
  try {
    return decode(buf);
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw protocolError(`RMCP: undecodable packet (${e instanceof Error ? e.message : String(e)})`);
  }
}

function decode(buf: Uint8Array): RmcpPacket {
  const r = new Reader(buf, 'RMCP');
  const version = r.u8('version');
  if (version !== RMCP_VERSION) throw protocolError(`RMCP: unsupported version 0x${version.toString(16)}`);
  r.skip(1, 'reserved');
  r.u8('sequence');
  const cls = r.u8('class');
  if ((cls & 0x80) !== 0) throw protocolError('RMCP: unexpected ACK message');
  if (cls === RmcpClass.ASF) {
    const iana = r.u32be('IANA');
    const type = r.u8('message type');
    const tag = r.u8('message tag');
    r.skip(1);
    const length = r.u8('data length');
    const data = r.bytes(length, 'ASF data');
    if (iana !== ASF_IANA) throw protocolError(`ASF: unexpected IANA ${iana}`);
    return { kind: 'asf', iana, type, tag, data };
  }
  if (cls !== RmcpClass.IPMI) throw protocolError(`RMCP: unsupported class 0x${cls.toString(16)}`);
  const sessionStart = r.offset;
  const authType = r.u8('auth type');
  if (authType === AuthType.RMCP_PLUS) {
    const typeByte = r.u8('payload type');
    const payloadType = typeByte & 0x3f;
    let oemIana: number | undefined;
    let oemPayloadId: number | undefined;
    if (payloadType === PayloadType.OEM_EXPLICIT) {
      oemIana = r.u32le('OEM IANA');
      oemPayloadId = r.u16le('OEM payload id');
    }
    const sessionId = r.u32le('session id');
    const sessionSeq = r.u32le('session sequence');
    const length = r.u16le('payload length');
    const payload = r.bytes(length, 'payload');
    const bodyLength = r.offset - sessionStart;
    const trailer = r.rest();
    const session = Buffer.from(buf.subarray(sessionStart));
    const pkt: Ipmi20Packet = {
      kind: 'ipmi20',
      payloadType,
      encrypted: (typeByte & 0x80) !== 0,
      authenticated: (typeByte & 0x40) !== 0,
      sessionId,
      sessionSeq,
      payload,
      trailer,
      session,
      bodyLength,
    };
    if (oemIana !== undefined) pkt.oemIana = oemIana;
    if (oemPayloadId !== undefined) pkt.oemPayloadId = oemPayloadId;
    return pkt;
  }
  if (authType > AuthType.OEM || authType === 0x03) throw protocolError(`IPMI v1.5: unsupported auth type 0x${authType.toString(16)}`);
  const sessionSeq = r.u32le('session sequence');
  const sessionId = r.u32le('session id');
  const authCode = authType === AuthType.NONE ? undefined : r.bytes(16, 'auth code');
  const length = r.u8('payload length');
  const payload = r.bytes(length, 'payload');
  const pkt: Ipmi15Packet = { kind: 'ipmi15', authType, sessionSeq, sessionId, payload };
  if (authCode) pkt.authCode = authCode;
  return pkt;
}

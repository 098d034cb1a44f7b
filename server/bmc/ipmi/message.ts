/**
 * IPMI LAN message format (IPMI v2.0 §13.8):
 *   rsAddr, netFn/rsLUN, checksum 1, rqAddr, rqSeq/rqLUN, cmd, data…, checksum 2
 * and the response mirror image (rqAddr first, completion code first data byte).
 */
import { FleetError } from '../../../common/errors.js';
import { Reader, checksum, protocolError } from './reader.js';

export const BMC_SLAVE_ADDR = 0x20;
/** Remote console software ID (ipmitool and FreeIPMI use 0x81). */
export const REMOTE_SWID = 0x81;

export const NetFn = {
  CHASSIS: 0x00,
  SENSOR: 0x04,
  APP: 0x06,
  STORAGE: 0x0a,
  TRANSPORT: 0x0c,
} as const;

export interface IpmiRequest {
  rsAddr: number;
  netFn: number;
  rsLun: number;
  rqAddr: number;
  rqSeq: number;
  rqLun: number;
  cmd: number;
  data: Buffer;
}

export interface IpmiResponse {
  rqAddr: number;
  netFn: number;
  rqLun: number;
  rsAddr: number;
  rqSeq: number;
  rsLun: number;
  cmd: number;
  completionCode: number;
  data: Buffer;
}

interface Frame {
  addr1: number;
  netFn: number;
  lun1: number;
  addr2: number;
  seq: number;
  lun2: number;
  cmd: number;
  body: Buffer;
}

function encodeFrame(f: Frame): Buffer {
  const out = Buffer.alloc(7 + f.body.length);
  out[0] = f.addr1 & 0xff;
  out[1] = ((f.netFn & 0x3f) << 2) | (f.lun1 & 0x03);
  out[2] = checksum(out, 0, 2);
  out[3] = f.addr2 & 0xff;
  out[4] = ((f.seq & 0x3f) << 2) | (f.lun2 & 0x03);
  out[5] = f.cmd & 0xff;
  f.body.copy(out, 6);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}

function decodeFrame(buf: Uint8Array, what: string): Frame {
  const r = new Reader(buf, what);
  const addr1 = r.u8('address 1');
  const netFnLun = r.u8('netFn/LUN');
  const chk1 = r.u8('checksum 1');
  const addr2 = r.u8('address 2');
  const seqLun = r.u8('seq/LUN');
  const cmd = r.u8('command');
  if (r.remaining < 1) throw protocolError(`${what}: truncated at checksum 2`);
  const body = r.bytes(r.remaining - 1, 'data');
  const chk2 = r.u8('checksum 2');
  if (checksum(buf, 0, 2) !== chk1) throw protocolError(`${what}: bad header checksum`);
  if (checksum(buf, 3, buf.length - 1) !== chk2) throw protocolError(`${what}: bad data checksum`);
  return { addr1, netFn: netFnLun >> 2, lun1: netFnLun & 3, addr2, seq: seqLun >> 2, lun2: seqLun & 3, cmd, body };
}

export function encodeIpmiRequest(q: Partial<IpmiRequest> & Pick<IpmiRequest, 'netFn' | 'cmd' | 'rqSeq'>): Buffer {
  return encodeFrame({
    addr1: q.rsAddr ?? BMC_SLAVE_ADDR,
    netFn: q.netFn,
    lun1: q.rsLun ?? 0,
    addr2: q.rqAddr ?? REMOTE_SWID,
    seq: q.rqSeq,
    lun2: q.rqLun ?? 0,
    cmd: q.cmd,
    body: Buffer.from(q.data ?? []),
  });
}

export function decodeIpmiRequest(buf: Uint8Array): IpmiRequest {
  const f = guard(() => decodeFrame(buf, 'IPMI request'));
  return { rsAddr: f.addr1, netFn: f.netFn, rsLun: f.lun1, rqAddr: f.addr2, rqSeq: f.seq, rqLun: f.lun2, cmd: f.cmd, data: f.body };
}

export function encodeIpmiResponse(s: Partial<IpmiResponse> & Pick<IpmiResponse, 'netFn' | 'cmd' | 'rqSeq' | 'completionCode'>): Buffer {
  return encodeFrame({
    addr1: s.rqAddr ?? REMOTE_SWID,
    netFn: s.netFn,
    lun1: s.rqLun ?? 0,
    addr2: s.rsAddr ?? BMC_SLAVE_ADDR,
    seq: s.rqSeq,
    lun2: s.rsLun ?? 0,
    cmd: s.cmd,
    body: Buffer.concat([Buffer.from([s.completionCode & 0xff]), Buffer.from(s.data ?? [])]),
  });
}

export function decodeIpmiResponse(buf: Uint8Array): IpmiResponse {
  const f = guard(() => decodeFrame(buf, 'IPMI response'));
  if (f.body.length < 1) throw protocolError('IPMI response: missing completion code');
  if ((f.netFn & 1) !== 1) throw protocolError(`IPMI response: netFn 0x${f.netFn.toString(16)} is not a response`);
  return {
    rqAddr: f.addr1,
    netFn: f.netFn,
    rqLun: f.lun1,
    rsAddr: f.addr2,
    rqSeq: f.seq,
    rsLun: f.lun2,
    cmd: f.cmd,
    completionCode: f.body[0]!,
    data: f.body.subarray(1),
  };
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw protocolError(`IPMI message: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const COMPLETION_CODES: Record<number, string> = {
  0x00: 'success',
  0xc0: 'node busy',
  0xc1: 'invalid command',
  0xc2: 'command invalid for given LUN',
  0xc3: 'timeout while processing command',
  0xc4: 'out of space',
  0xc5: 'reservation cancelled or invalid',
  0xc6: 'request data truncated',
  0xc7: 'request data length invalid',
  0xc8: 'request data field length limit exceeded',
  0xc9: 'parameter out of range',
  0xca: 'cannot return number of requested data bytes',
  0xcb: 'requested sensor, data, or record not present',
  0xcc: 'invalid data field in request',
  0xcd: 'command illegal for specified sensor or record type',
  0xce: 'command response could not be provided',
  0xcf: 'cannot execute duplicated request',
  0xd0: 'SDR repository in update mode',
  0xd1: 'device in firmware update mode',
  0xd2: 'BMC initialization in progress',
  0xd3: 'destination unavailable',
  0xd4: 'insufficient privilege level',
  0xd5: 'command not supported in present state',
  0xd6: 'command sub-function disabled or unavailable',
  0xff: 'unspecified error',
};

export function completionCodeText(cc: number): string {
  return COMPLETION_CODES[cc] ?? `completion code 0x${cc.toString(16).padStart(2, '0')}`;
}

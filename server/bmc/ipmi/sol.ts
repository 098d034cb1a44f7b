/**
 * Serial over LAN (IPMI v2.0 §15, §24): the SOL payload codec and the
 * Activate / Deactivate Payload commands. Pure: no I/O. Decoders throw only
 * FleetError('bmc.protocol').
 *
 * SOL payload (§15.9), both directions:
 *   byte 0  packet sequence number, 1..15 (0: an ack-only packet, no data)
 *   byte 1  ack/nack sequence number being acknowledged (0: none)
 *   byte 2  accepted character count (of the packet acknowledged)
 *   byte 3  operation (console → BMC) / status (BMC → console); bit 6 NACK
 *   4..     character data
 */
import { FleetError } from '../../../common/errors.js';
import type { CommandSpec } from './commands.js';
import { NetFn } from './message.js';
import { Reader, protocolError } from './reader.js';

export const SolCmd = { ACTIVATE_PAYLOAD: 0x48, DEACTIVATE_PAYLOAD: 0x49, GET_PAYLOAD_ACTIVATION_STATUS: 0x4a, GET_PAYLOAD_INSTANCE_INFO: 0x4b } as const;

/** Status bits of a BMC → console packet (§15.9 byte 4). */
export const SolStatus = {
  NACK: 0x40,
  CHAR_TRANSFER_UNAVAILABLE: 0x20,
  DEACTIVATING: 0x10,
  TRANSMIT_OVERRUN: 0x08,
  BREAK: 0x04,
} as const;

/** Operation bits of a console → BMC packet (§15.9 byte 4). */
export const SolOp = {
  NACK: 0x40,
  RING_WOR: 0x20,
  GENERATE_BREAK: 0x10,
  CTS_PAUSE: 0x08,
  DROP_DCD_DSR: 0x04,
  FLUSH_INBOUND: 0x02,
  FLUSH_OUTBOUND: 0x01,
} as const;

/** The most character data one packet carries unless the BMC says less (ipmi_sim: 255). */
export const SOL_MAX_DATA = 200;

export interface SolPacket {
  /** 1..15, or 0 for an ack-only packet. */
  seq: number;
  /** Sequence number acknowledged or nacked; 0: none. */
  ackSeq: number;
  accepted: number;
  /** Operation (outbound) or status (inbound) bits. */
  flags: number;
  data: Buffer;
}

export function encodeSolPacket(p: { seq: number; ackSeq?: number; accepted?: number; flags?: number; data?: Uint8Array }): Buffer {
  const data = p.data ?? Buffer.alloc(0);
  if (!Number.isInteger(p.seq) || p.seq < 0 || p.seq > 15) throw new FleetError('internal', `SOL: sequence number ${p.seq} out of 0..15`);
  if (p.seq === 0 && data.length > 0) throw new FleetError('internal', 'SOL: an ack-only packet (sequence 0) carries no data');
  const ackSeq = p.ackSeq ?? 0;
  if (!Number.isInteger(ackSeq) || ackSeq < 0 || ackSeq > 15) throw new FleetError('internal', `SOL: ack sequence number ${ackSeq} out of 0..15`);
  const accepted = p.accepted ?? 0;
  if (!Number.isInteger(accepted) || accepted < 0 || accepted > 255) throw new FleetError('internal', `SOL: accepted count ${accepted} out of 0..255`);
  return Buffer.concat([Buffer.from([p.seq, ackSeq, accepted, (p.flags ?? 0) & 0xff]), data]);
}

export function decodeSolPacket(buf: Uint8Array): SolPacket {
  const r = new Reader(buf, 'SOL packet');
  const seqByte = r.u8('sequence number');
  const ackByte = r.u8('ack sequence number');
  const accepted = r.u8('accepted character count');
  const flags = r.u8('status');
  const data = r.rest();
  // Bits 7:4 of the two sequence bytes are reserved; a BMC that sets them is not speaking SOL.
  if (seqByte > 15) throw protocolError(`SOL packet: sequence number byte 0x${seqByte.toString(16)} out of range`);
  if (ackByte > 15) throw protocolError(`SOL packet: ack sequence number byte 0x${ackByte.toString(16)} out of range`);
  if (seqByte === 0 && data.length > 0) throw protocolError('SOL packet: data in an ack-only packet (sequence 0)');
  return { seq: seqByte, ackSeq: ackByte, accepted, flags, data: Buffer.from(data) };
}

/** The sequence number after `seq` (1..15, wrapping past 0). */
export function nextSolSeq(seq: number): number {
  return seq >= 15 ? 1 : seq + 1;
}

// --- Activate Payload (App 0x48, §24.1)

export const SOL_PAYLOAD_TYPE = 0x01;

export function activatePayload(instance = 1): CommandSpec {
  // Aux byte 1: bit 7 encrypt, bit 6 authenticate (the session's algorithms); serial alerts deferred (bits 3:2 = 01b).
  return { netFn: NetFn.APP, cmd: SolCmd.ACTIVATE_PAYLOAD, data: Buffer.from([SOL_PAYLOAD_TYPE, instance, 0xc4, 0, 0, 0]) };
}

export function deactivatePayload(instance = 1): CommandSpec {
  return { netFn: NetFn.APP, cmd: SolCmd.DEACTIVATE_PAYLOAD, data: Buffer.from([SOL_PAYLOAD_TYPE, instance, 0, 0, 0, 0]) };
}

/** Get Payload Instance Info (App 0x4B, §24.5): which session holds SOL instance `instance`. */
export function getPayloadInstanceInfo(instance = 1): CommandSpec {
  return { netFn: NetFn.APP, cmd: SolCmd.GET_PAYLOAD_INSTANCE_INFO, data: Buffer.from([SOL_PAYLOAD_TYPE, instance]) };
}

/** The BMC session ID that activated the instance; 0: not active. */
export function parsePayloadInstanceInfo(data: Buffer): number {
  return new Reader(data, 'Get Payload Instance Info response').u32le('session id');
}

export interface ActivatedPayload {
  /** Largest payload the BMC accepts from us / sends us (SOL header included). */
  inboundSize: number;
  outboundSize: number;
  /** The UDP port the BMC wants SOL on (often 623 whatever port the session uses). */
  port: number;
  vlan: number | null;
}

export function parseActivatePayload(data: Buffer): ActivatedPayload {
  const r = new Reader(data, 'Activate Payload response');
  r.skip(4, 'auxiliary data');
  const inboundSize = r.u16le('inbound payload size');
  const outboundSize = r.u16le('outbound payload size');
  const port = r.u16le('payload UDP port');
  const vlan = r.remaining >= 2 ? r.u16le('payload VLAN') : 0xffff;
  return { inboundSize, outboundSize, port, vlan: vlan === 0xffff || vlan === 0 ? null : vlan };
}

/** What an Activate Payload completion code means for a console user (§24.1). */
export function activateErrorText(cc: number): { code: 'conflict' | 'bmc.unsupported' | 'bmc.command_failed'; text: string } | null {
  switch (cc) {
    case 0x00:
      return null;
    case 0x80:
      return { code: 'conflict', text: 'console busy: the BMC says SOL is already active on another session (someone else is attached; `fleet console --force` takes it over)' };
    case 0x81:
      return { code: 'bmc.unsupported', text: 'SOL is disabled on this BMC (enable it: ipmitool sol set enabled true)' };
    case 0x82:
      return { code: 'conflict', text: 'console busy: the BMC has reached its limit of SOL sessions' };
    case 0x83:
      return { code: 'bmc.unsupported', text: 'the BMC cannot activate SOL with encryption' };
    case 0x84:
      return { code: 'bmc.unsupported', text: 'the BMC cannot activate SOL without encryption' };
    case 0xc1:
      return { code: 'bmc.unsupported', text: 'this BMC does not support Serial over LAN (Activate Payload: invalid command)' };
    default:
      return { code: 'bmc.command_failed', text: `Activate Payload (SOL) failed with completion code 0x${cc.toString(16).padStart(2, '0')}` };
  }
}

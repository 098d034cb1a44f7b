import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import {
  SolStatus,
  activateErrorText,
  activatePayload,
  deactivatePayload,
  decodeSolPacket,
  encodeSolPacket,
  getPayloadInstanceInfo,
  parsePayloadInstanceInfo,
  nextSolSeq,
  parseActivatePayload,
} from '../../../server/bmc/ipmi/sol.js';
import { EscapeScanner } from '../../../server/console/escape.js';

function protocolErr(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('bmc.protocol');
    return e as FleetError;
  }
  throw new Error('expected bmc.protocol');
}

describe('SOL packet codec (IPMI v2.0 §15.9)', () => {
  it('encodes and decodes a data packet and an ack-only packet', () => {
    const data = encodeSolPacket({ seq: 3, ackSeq: 7, accepted: 12, flags: 0, data: Buffer.from('hi') });
    expect([...data]).toEqual([3, 7, 12, 0, 0x68, 0x69]);
    expect(decodeSolPacket(data)).toEqual({ seq: 3, ackSeq: 7, accepted: 12, flags: 0, data: Buffer.from('hi') });
    const ack = encodeSolPacket({ seq: 0, ackSeq: 15, accepted: 200 });
    expect([...ack]).toEqual([0, 15, 200, 0]);
    expect(decodeSolPacket(Buffer.from([0, 2, 0, SolStatus.NACK | SolStatus.CHAR_TRANSFER_UNAVAILABLE])).flags).toBe(0x60);
  });

  it('rejects malformed packets with bmc.protocol, never a crash', () => {
    protocolErr(() => decodeSolPacket(Buffer.alloc(0)));
    protocolErr(() => decodeSolPacket(Buffer.from([1, 0, 0])));
    expect(protocolErr(() => decodeSolPacket(Buffer.from([0x10, 0, 0, 0]))).message).toMatch(/sequence number/);
    protocolErr(() => decodeSolPacket(Buffer.from([1, 0xf1, 0, 0])));
    expect(protocolErr(() => decodeSolPacket(Buffer.from([0, 1, 1, 0, 0x41]))).message).toMatch(/ack-only/);
    protocolErr(() => decodeSolPacket('abcd' as unknown as Buffer));
    // Random bytes: either a packet or bmc.protocol.
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(Array.from({ length: i % 9 }, () => Math.floor(Math.random() * 256)));
      try {
        const p = decodeSolPacket(b);
        expect(p.seq).toBeLessThanOrEqual(15);
      } catch (e) {
        expect((e as FleetError).code).toBe('bmc.protocol');
      }
    }
  });

  it('refuses to encode what the wire cannot carry', () => {
    expect(() => encodeSolPacket({ seq: 16 })).toThrow(/0\.\.15/);
    expect(() => encodeSolPacket({ seq: 0, data: Buffer.from('x') })).toThrow(/ack-only/);
    expect(() => encodeSolPacket({ seq: 1, accepted: 256 })).toThrow(/accepted/);
  });

  it('sequence numbers run 1..15 and skip 0', () => {
    expect(nextSolSeq(0)).toBe(1);
    expect(nextSolSeq(14)).toBe(15);
    expect(nextSolSeq(15)).toBe(1);
  });

  it('Activate / Deactivate Payload requests and the activate response', () => {
    expect(activatePayload()).toMatchObject({ netFn: 0x06, cmd: 0x48 });
    expect([...activatePayload().data.subarray(0, 2)]).toEqual([1, 1]);
    expect(activatePayload().data[2]! & 0xc0).toBe(0xc0); // encrypted and authenticated
    expect(deactivatePayload()).toMatchObject({ netFn: 0x06, cmd: 0x49 });
    const res = Buffer.from([0, 0, 0, 0, 0x00, 0x01, 0xff, 0x00, 0x6f, 0x02, 0xff, 0xff]);
    expect(parseActivatePayload(res)).toEqual({ inboundSize: 256, outboundSize: 255, port: 623, vlan: null });
    protocolErr(() => parseActivatePayload(Buffer.from([0, 0, 0, 0, 1])));
  });

  it('Get Payload Instance Info names the holding session', () => {
    expect(getPayloadInstanceInfo()).toMatchObject({ netFn: 0x06, cmd: 0x4b, data: Buffer.from([1, 1]) });
    expect(parsePayloadInstanceInfo(Buffer.from([0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(0x12345678);
    protocolErr(() => parsePayloadInstanceInfo(Buffer.from([1, 2])));
  });

  it('names the busy console clearly', () => {
    expect(activateErrorText(0)).toBeNull();
    expect(activateErrorText(0x80)).toMatchObject({ code: 'conflict', text: expect.stringMatching(/console busy.*someone else is attached/) });
    expect(activateErrorText(0x81)?.code).toBe('bmc.unsupported');
    expect(activateErrorText(0xd4)?.text).toMatch(/0xd4/);
  });
});

describe('console escape sequence', () => {
  const run = (s: EscapeScanner, text: string) => {
    const r = s.feed(Buffer.from(text));
    return { send: r.send.toString(), actions: r.actions };
  };

  it('~. at the start or after Enter detaches; elsewhere it is typed', () => {
    expect(run(new EscapeScanner(), '~.')).toEqual({ send: '', actions: ['detach'] });
    expect(run(new EscapeScanner(), 'ls\r~.rest')).toEqual({ send: 'ls\r', actions: ['detach'] });
    expect(run(new EscapeScanner(), 'a~.')).toEqual({ send: 'a~.', actions: [] });
  });

  it('~? helps, ~B breaks, ~~ sends one ~, ~x sends both', () => {
    expect(run(new EscapeScanner(), '~?')).toEqual({ send: '', actions: ['help'] });
    expect(run(new EscapeScanner(), '~B')).toEqual({ send: '', actions: ['break'] });
    expect(run(new EscapeScanner(), '~~.')).toEqual({ send: '~.', actions: [] });
    expect(run(new EscapeScanner(), '~x')).toEqual({ send: '~x', actions: [] });
  });

  it('keeps state across chunks (keys arrive one by one from a TTY)', () => {
    const s = new EscapeScanner();
    expect(run(s, 'echo\n')).toEqual({ send: 'echo\n', actions: [] });
    expect(run(s, '~')).toEqual({ send: '', actions: [] });
    expect(run(s, '.')).toEqual({ send: '', actions: ['detach'] });
  });
});

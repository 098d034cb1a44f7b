/**
 * Client → server framing on an attached console (after the HTTP upgrade):
 * each frame is type (1 byte), length (2 bytes, big-endian), payload.
 *   type 0  keystrokes for the serial line
 *   type 1  send a serial break (no payload)
 * Server → client is the raw console output, nothing else; the server ends
 * the connection with one last "[fleet console: why]" line when it ends it.
 * Pure: the decoder takes chunks as TCP cuts them.
 */
import { FleetError } from '../../common/errors.js';

export const FrameType = { DATA: 0, BREAK: 1 } as const;
export const MAX_FRAME = 0xffff;

export type ClientFrame = { type: 'data'; data: Buffer } | { type: 'break' };

export function encodeDataFrames(data: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += MAX_FRAME) {
    const chunk = data.subarray(off, off + MAX_FRAME);
    const h = Buffer.alloc(3);
    h[0] = FrameType.DATA;
    h.writeUInt16BE(chunk.length, 1);
    parts.push(h, Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

export function encodeBreakFrame(): Buffer {
  return Buffer.from([FrameType.BREAK, 0, 0]);
}

export class FrameDecoder {
  private buf = Buffer.alloc(0);

  /** Complete frames in `chunk` (and before it); throws request.invalid on an unknown frame type (the connection is then closed). */
  push(chunk: Uint8Array): ClientFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: ClientFrame[] = [];
    while (this.buf.length >= 3) {
      const type = this.buf[0]!;
      const len = this.buf.readUInt16BE(1);
      if (type !== FrameType.DATA && type !== FrameType.BREAK) throw new FleetError('request.invalid', `console stream: unknown frame type ${type}`);
      if (type === FrameType.BREAK && len !== 0) throw new FleetError('request.invalid', 'console stream: a break frame carries no data');
      if (this.buf.length < 3 + len) break;
      if (type === FrameType.BREAK) out.push({ type: 'break' });
      else if (len > 0) out.push({ type: 'data', data: Buffer.from(this.buf.subarray(3, 3 + len)) });
      this.buf = this.buf.subarray(3 + len);
    }
    return out;
  }
}

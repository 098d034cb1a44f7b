/**
 * One native SOL console (IPMI v2.0 §15): an RMCP+ session of its own,
 * Activate Payload (SOL, instance 1), then character data both ways:
 *   - BMC → us: every data packet is acknowledged (ack-only packet, accepted
 *     count = its length); a repeat of the last sequence number is acked
 *     again but not delivered twice;
 *   - us → BMC: one packet in flight; retransmitted (same SOL sequence
 *     number) until acked; a partial acceptance sends the rest as the next
 *     packet; a NACK (character transfer unavailable) is retried later;
 *   - a keepalive command every `keepaliveMs` (BMCs expire idle sessions,
 *     and it notices a BMC that went away);
 *   - close(): Deactivate Payload, then Close Session.
 * The BMC enforces one SOL per system (instance 1): a second Activate gets
 * completion code 0x80, reported as `conflict` ("console busy").
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { FleetError, toFleetError } from '../../../common/errors.js';
import type { BmcTarget } from '../types.js';
import { IpmiSession } from './session.js';
import {
  SOL_MAX_DATA,
  SolOp,
  SolStatus,
  activateErrorText,
  activatePayload,
  deactivatePayload,
  decodeSolPacket,
  getPayloadInstanceInfo,
  parsePayloadInstanceInfo,
  encodeSolPacket,
  nextSolSeq,
  parseActivatePayload,
} from './sol.js';
import { type Endpoint, type IpmiTransport, remoteKeyOf } from './transport.js';

export interface SolConsoleOptions {
  cipherSuite?: 3 | 17;
  /** Limit for opening (session + activate) and for each command. Default 10 000 ms. */
  timeoutMs?: number;
  /** Deactivate an SOL someone else holds on the BMC first (as `ipmitool sol deactivate`). */
  force?: boolean;
  /** Keepalive interval; default 15 000 ms. */
  keepaliveMs?: number;
  /** Retransmit interval of an unacknowledged data packet; default 500 ms. */
  retransmitMs?: number;
  /** Retransmits before the console is declared lost; default 10. */
  maxRetransmits?: number;
}

export interface SolHandlers {
  /** Characters from the serial line. */
  onData(data: Buffer): void;
  /** The console ended on its own: the BMC deactivated SOL, or stopped answering. Not called after close(). */
  onEnd(reason: FleetError): void;
}

interface InFlight {
  seq: number;
  data: Buffer;
  flags: number;
  sends: number;
  timer: NodeJS.Timeout | null;
}

export class SolConsole {
  private outSeq = 0;
  private lastInSeq = 0;
  private pending: Buffer[] = [];
  private pendingFlags = 0;
  private inflight: InFlight | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private ended = false;
  private readonly maxData: number;
  readonly label: string;

  private constructor(
    private readonly session: IpmiSession,
    private readonly handlers: SolHandlers,
    private readonly opts: SolConsoleOptions,
    maxData: number,
  ) {
    this.maxData = maxData;
    this.label = session.remoteKey;
  }

  static async open(transport: IpmiTransport, target: BmcTarget, opts: SolConsoleOptions, handlers: SolHandlers): Promise<SolConsole> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const endpoint = await resolve(transport, target);
    const label = remoteKeyOf(endpoint.address, endpoint.port);
    const session = await IpmiSession.open(transport, endpoint, {
      username: target.username,
      password: target.password,
      ...(opts.cipherSuite ? { cipherSuite: opts.cipherSuite } : {}),
      privilege: 'administrator',
      deadline: Date.now() + timeoutMs,
    });
    try {
      let res = await session.command(activatePayload(1), { deadline: Date.now() + timeoutMs });
      if (res.completionCode === 0x80 && opts.force) {
        // Take it over: the BMC ends the other session's SOL (it sees "deactivating").
        await session.command(deactivatePayload(1), { deadline: Date.now() + timeoutMs });
        res = await session.command(activatePayload(1), { deadline: Date.now() + timeoutMs });
      }
      const err = activateErrorText(res.completionCode);
      if (err) throw new FleetError(err.code, `SOL on ${label}: ${err.text}`, { completionCode: res.completionCode });
      const act = parseActivatePayload(res.data);
      // The BMC's inbound size counts the 4-byte SOL header; keep within it and within one small datagram.
      const maxData = Math.max(1, Math.min(SOL_MAX_DATA, (act.inboundSize || SOL_MAX_DATA + 4) - 4));
      const c = new SolConsole(session, handlers, opts, maxData);
      session.onSolPayload((p) => c.onPayload(p));
      c.startKeepalive();
      return c;
    } catch (e) {
      await session.close({ deadline: Date.now() + 2000 }).catch(() => undefined);
      throw e;
    }
  }

  /** Queues characters for the serial line. */
  write(data: Uint8Array): void {
    if (this.ended || data.length === 0) return;
    this.pending.push(Buffer.from(data));
    this.pump();
  }

  /** Sends a serial break. */
  sendBreak(): void {
    if (this.ended) return;
    this.pendingFlags |= SolOp.GENERATE_BREAK;
    this.pump();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Deactivate Payload, Close Session. Safe to call twice; never throws. */
  async close(): Promise<void> {
    if (this.ended && this.session.isClosed) return;
    this.stop();
    const deadline = Date.now() + Math.min(this.opts.timeoutMs ?? 10_000, 5000);
    if (!this.session.isClosed) {
      try {
        // 0x80 here: already deactivated (the BMC or a --force did it): fine.
        await this.session.command(deactivatePayload(1), { deadline });
      } catch {
        // the BMC is gone: it expires the session itself
      }
      await this.session.close({ deadline }).catch(() => undefined);
    }
  }

  private stop(): void {
    this.ended = true;
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    if (this.inflight?.timer) clearTimeout(this.inflight.timer);
    this.inflight = null;
    this.pending = [];
    this.session.onSolPayload(undefined);
  }

  private end(reason: FleetError): void {
    if (this.ended) return;
    this.stop();
    void this.session.close({ deadline: Date.now() + 2000 }).catch(() => undefined);
    this.handlers.onEnd(reason);
  }

  private startKeepalive(): void {
    const every = this.opts.keepaliveMs ?? 15_000;
    // The keepalive asks who holds SOL instance 1: it keeps the session alive, notices a BMC that
    // went away, and notices a takeover on BMCs that do not send "deactivating" (ipmi_sim).
    this.keepalive = setInterval(() => {
      this.session.command(getPayloadInstanceInfo(1), { deadline: Date.now() + (this.opts.timeoutMs ?? 10_000) }).then(
        (res) => {
          if (res.completionCode !== 0 || this.ended) return; // not supported: the answer alone is the keepalive
          let holder: number;
          try {
            holder = parsePayloadInstanceInfo(res.data);
          } catch {
            return;
          }
          if (holder !== this.session.bmcSessionId) {
            this.end(new FleetError('conflict', `SOL on ${this.label}: the console was taken over by another session (or deactivated)`));
          }
        },
        (e: unknown) => this.end(new FleetError('bmc.timeout', `SOL on ${this.label}: the BMC stopped answering (${toFleetError(e).message})`)),
      );
    }, every);
    this.keepalive.unref();
  }

  private pump(): void {
    if (this.ended || this.inflight) return;
    if (this.pending.length === 0 && this.pendingFlags === 0) return;
    const all = Buffer.concat(this.pending);
    const data = all.subarray(0, this.maxData);
    this.pending = all.length > data.length ? [all.subarray(data.length)] : [];
    this.outSeq = nextSolSeq(this.outSeq);
    this.inflight = { seq: this.outSeq, data: Buffer.from(data), flags: this.pendingFlags, sends: 0, timer: null };
    this.pendingFlags = 0;
    this.transmit();
  }

  private transmit(): void {
    const f = this.inflight;
    if (!f || this.ended) return;
    if (f.sends > (this.opts.maxRetransmits ?? 10)) {
      this.end(new FleetError('bmc.timeout', `SOL on ${this.label}: the BMC stopped acknowledging characters (another user may have taken the console over with --force)`));
      return;
    }
    f.sends++;
    try {
      this.session.sendSolPayload(encodeSolPacket({ seq: f.seq, flags: f.flags, data: f.data }));
    } catch (e) {
      this.end(toFleetError(e));
      return;
    }
    f.timer = setTimeout(() => this.transmit(), this.opts.retransmitMs ?? 500);
  }

  private onPayload(plain: Buffer): void {
    if (this.ended) return;
    let p;
    try {
      p = decodeSolPacket(plain);
    } catch {
      return; // a malformed packet is dropped; the BMC retransmits what mattered
    }
    // Acknowledgement of our packet in flight.
    const f = this.inflight;
    if (f && p.ackSeq === f.seq) {
      if (f.timer) clearTimeout(f.timer);
      f.timer = null;
      if ((p.flags & SolStatus.NACK) !== 0) {
        // Not accepted now (character transfer unavailable): send the same packet again a little later.
        f.timer = setTimeout(() => this.transmit(), this.opts.retransmitMs ?? 500);
      } else {
        const accepted = Math.min(p.accepted, f.data.length);
        this.inflight = null;
        if (accepted < f.data.length) this.pending.unshift(f.data.subarray(accepted));
        this.pump();
      }
    }
    if (p.seq !== 0) {
      const repeat = p.seq === this.lastInSeq;
      this.lastInSeq = p.seq;
      try {
        this.session.sendSolPayload(encodeSolPacket({ seq: 0, ackSeq: p.seq, accepted: p.data.length }));
      } catch (e) {
        this.end(toFleetError(e));
        return;
      }
      if (!repeat && p.data.length > 0) this.handlers.onData(p.data);
    }
    if ((p.flags & SolStatus.DEACTIVATING) !== 0) {
      this.end(new FleetError('conflict', `SOL on ${this.label}: the BMC deactivated the console (another user took it over, or SOL was disabled)`));
    }
  }
}

async function resolve(transport: IpmiTransport, target: BmcTarget): Promise<Endpoint> {
  if (isIP(target.address)) return { address: target.address, port: target.port };
  try {
    const r = await lookup(target.address, { family: transport.family === 6 ? 0 : 4 });
    return { address: r.address, port: target.port };
  } catch {
    throw new FleetError('bmc.timeout', `IPMI: cannot resolve BMC address ${target.address}`);
  }
}

/**
 * IpmiTransport: ONE UDP socket shared by every IPMI session of the process.
 *
 * Replies are demultiplexed by remote address:port plus
 *   - ASF message tag (presence pong),
 *   - rqSeq for sessionless IPMI v1.5 messages (Get Channel Auth Caps),
 *   - payload type + message tag for Open Session / RAKP replies,
 *   - console session ID + rqSeq for session messages (after the session
 *     route has verified the AuthCode and decrypted the payload).
 * Each request is retransmitted (400, 800, 1600, 3200 ms … by default) until
 * its reply arrives or its deadline passes (→ bmc.timeout); a retransmit is
 * the datagram `encode` gives for that attempt (session messages give the
 * same bytes every time: same sequence number, same rqSeq). A request marked
 * `once` is sent a single time and only waited for, one with `maxAttempts`
 * at most that many times. A datagram from a
 * BMC that does not decode fails that BMC's pending requests (→ bmc.protocol).
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { FleetError } from '../../../common/errors.js';
import { type IpmiResponse, decodeIpmiResponse } from './message.js';
import { type AsfPong, type Ipmi20Packet, type RmcpPacket, PayloadType, decodeAsfPong, decodeRmcpPacket, encodeAsfPing } from './packet.js';
import { protocolError } from './reader.js';

export interface Endpoint {
  /** Numeric IPv4 or IPv6 address. */
  address: string;
  port: number;
}

export interface IpmiTransportOptions {
  /** 4 (default): udp4 socket on 0.0.0.0. 6: dual-stack udp6 socket on :: (IPv4 targets are mapped). */
  family?: 4 | 6;
  /** Bind address; default 0.0.0.0 or ::. Port is always ephemeral. */
  bindAddress?: string;
  /** Retransmit intervals in ms; the last one repeats until the deadline. Default [400, 800, 1600, 3200]. */
  retransmitMs?: number[];
  /** SO_RCVBUF in bytes, for very large fan-outs. */
  recvBufferSize?: number;
}

/** How the transport hands authenticated session packets to their session. */
export interface SessionRoute {
  remoteKey: string;
  /** Verifies and decrypts an IPMI payload; throws bmc.protocol when it does not verify. */
  unwrap(pkt: Ipmi20Packet): IpmiResponse;
  /** SOL payloads in this session (after an Activate Payload); absent: they are dropped. Throws bmc.protocol when one does not verify. */
  onSol?(pkt: Ipmi20Packet): void;
}

export interface Reply {
  packet: RmcpPacket;
  /** The decoded IPMI response, for IPMI payloads. */
  response?: IpmiResponse;
}

export interface TransportRequest {
  remote: Endpoint;
  /** Demultiplexing key, from one of the *Key helpers. */
  key: string;
  /** Builds the datagram for attempt 0, 1, 2 … (session messages return the same datagram each time). */
  encode: (attempt: number) => Buffer;
  /** Send once, never retransmit: wait for the answer until the deadline (actions that must not run twice). */
  once?: boolean;
  /** Send at most this many times (first send included), then wait for the answer until the deadline; once is 1. */
  maxAttempts?: number;
  /** Absolute time (Date.now() scale) after which the request fails with bmc.timeout. */
  deadline: number;
  retransmitMs?: number[];
  /** For error messages, e.g. "Get Chassis Status". */
  what: string;
  /** Optional extra check on a reply that matched the key; false → ignored as a stray duplicate. */
  accept?: (reply: Reply) => boolean;
}

export interface TransportStats {
  sent: number;
  retransmits: number;
  received: number;
  dropped: number;
  garbage: number;
}

interface Pending {
  req: TransportRequest;
  remoteKey: string;
  attempt: number;
  timer: NodeJS.Timeout | null;
  /**
   * The pending wake-up is the deadline: it reports the timeout and sends
   * nothing, even when the timer fires a little before Date.now() reaches
   * the deadline (timers run on the event loop's cached clock, which can lag
   * Date.now() by the work of a loop iteration).
   */
  atDeadline?: boolean;
  resolve: (r: Reply) => void;
  reject: (e: FleetError) => void;
  lastSendError?: string;
}

const DEFAULT_RETRANSMIT = [400, 800, 1600, 3200];

export function remoteKeyOf(address: string, port: number): string {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return `${a}:${port}`;
}

export const asfKey = (remoteKey: string, tag: number): string => `${remoteKey}|asf|${tag}`;
export const sessionlessKey = (remoteKey: string, rqSeq: number): string => `${remoteKey}|sl|${rqSeq}`;
export const presessionKey = (remoteKey: string, payloadType: number, tag: number): string => `${remoteKey}|p${payloadType}|${tag}`;
export const sessionKey = (remoteKey: string, consoleSessionId: number, rqSeq: number): string => `${remoteKey}|s${consoleSessionId}|${rqSeq}`;

export class IpmiTransport {
  readonly stats: TransportStats = { sent: 0, retransmits: 0, received: 0, dropped: 0, garbage: 0 };
  private readonly pending = new Map<string, Pending>();
  private readonly sessions = new Map<number, SessionRoute>();
  private readonly counters = new Map<string, number>();
  private readonly retransmitMs: number[];
  private closed = false;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly family: 4 | 6,
    opts: IpmiTransportOptions,
  ) {
    this.retransmitMs = opts.retransmitMs?.length ? opts.retransmitMs : DEFAULT_RETRANSMIT;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    // A bound, unconnected UDP socket reports send failures in the send callback (kept
    // per request) and no ICMP errors; an 'error' event must not crash the process.
    socket.on('error', () => undefined);
    socket.unref();
  }

  static async open(opts: IpmiTransportOptions = {}): Promise<IpmiTransport> {
    const family = opts.family ?? 4;
    const socket =
      family === 6
        ? dgram.createSocket({ type: 'udp6', ipv6Only: false, ...(opts.recvBufferSize ? { recvBufferSize: opts.recvBufferSize } : {}) })
        : dgram.createSocket({ type: 'udp4', ...(opts.recvBufferSize ? { recvBufferSize: opts.recvBufferSize } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, opts.bindAddress ?? (family === 6 ? '::' : '0.0.0.0'), () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new IpmiTransport(socket, family, opts);
  }

  /** The local UDP port (ephemeral). */
  get port(): number {
    return this.socket.address().port;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** A fresh, non-zero console session ID not in use on this transport. */
  allocConsoleSessionId(): number {
    for (;;) {
      const id = randomInt(1, 0xffffffff);
      if (!this.sessions.has(id)) return id;
    }
  }

  registerSession(consoleSessionId: number, route: SessionRoute): void {
    this.sessions.set(consoleSessionId, route);
  }

  unregisterSession(consoleSessionId: number): void {
    this.sessions.delete(consoleSessionId);
  }

  /** Next value of a wrapping counter (rqSeq: modulo 64, tags: 256) for a scope, skipping values with a pending request. */
  nextCounter(scope: string, modulo: number, inUse: (v: number) => boolean = () => false): number {
    let v = this.counters.get(scope) ?? randomInt(0, modulo);
    for (let i = 0; i < modulo; i++) {
      v = (v + 1) % modulo;
      if (!inUse(v)) break;
    }
    this.counters.set(scope, v);
    return v;
  }

  isPending(key: string): boolean {
    return this.pending.has(key);
  }

  /** Sends once, no reply expected (e.g. RAKP 3 carrying an error status). */
  sendOnce(remote: Endpoint, datagram: Buffer): void {
    if (this.closed) return;
    this.stats.sent++;
    this.socket.send(datagram, remote.port, this.wireAddress(remote.address), () => undefined);
  }

  request(req: TransportRequest): Promise<Reply> {
    if (this.closed) return Promise.reject(new FleetError('bmc.timeout', `IPMI transport is closed (${req.what} to ${req.remote.address}:${req.remote.port})`));
    if (this.pending.has(req.key)) return Promise.reject(new FleetError('internal', `IPMI transport: duplicate request key for ${req.what}`));
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = { req, remoteKey: remoteKeyOf(req.remote.address, req.remote.port), attempt: 0, timer: null, resolve, reject };
      this.pending.set(req.key, p);
      if (this.pending.size === 1) this.socket.ref();
      this.transmit(p);
    });
  }

  /** ASF presence ping (RMCP class 6): is something speaking RMCP at this address, and does it claim IPMI? */
  async ping(remote: Endpoint, deadline: number, opts: { maxAttempts?: number } = {}): Promise<AsfPong> {
    const rk = remoteKeyOf(remote.address, remote.port);
    const tag = this.nextCounter(`asf|${rk}`, 255, (v) => this.isPending(asfKey(rk, v)));
    const reply = await this.request({ remote, key: asfKey(rk, tag), deadline, what: 'ASF presence ping', encode: () => encodeAsfPing(tag), ...opts });
    if (reply.packet.kind !== 'asf') throw protocolError('ASF presence ping: unexpected reply');
    return decodeAsfPong(reply.packet);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) this.finish(p, new FleetError('bmc.timeout', `IPMI transport closed during ${p.req.what} to ${p.remoteKey}`));
    this.sessions.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private wireAddress(address: string): string {
    return this.family === 6 && isIP(address) === 4 ? `::ffff:${address}` : address;
  }

  private transmit(p: Pending): void {
    const now = Date.now();
    if (now >= p.req.deadline || p.atDeadline) {
      const extra = p.lastSendError ? ` (last send error: ${p.lastSendError})` : '';
      this.finish(p, new FleetError('bmc.timeout', `IPMI ${p.req.what}: no answer from ${p.remoteKey} after ${p.attempt} attempt(s)${extra}`));
      return;
    }
    let datagram: Buffer;
    try {
      datagram = p.req.encode(p.attempt);
    } catch (e) {
      this.finish(p, e instanceof FleetError ? e : protocolError(`IPMI ${p.req.what}: cannot encode request`));
      return;
    }
    if (p.attempt > 0) this.stats.retransmits++;
    this.stats.sent++;
    try {
      this.socket.send(datagram, p.req.remote.port, this.wireAddress(p.req.remote.address), (err) => {
        if (err) p.lastSendError = err.message;
      });
    } catch (e) {
      // Bad port or address: nothing will ever arrive.
      this.finish(p, new FleetError('bmc.timeout', `IPMI ${p.req.what}: cannot send to ${p.remoteKey}: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    const schedule = p.req.retransmitMs ?? this.retransmitMs;
    // `once`, or the last of maxAttempts: the next wake-up is the deadline, where transmit() reports the timeout without sending.
    const last = p.req.once === true || (p.req.maxAttempts !== undefined && p.attempt + 1 >= p.req.maxAttempts);
    const interval = last ? p.req.deadline - now : schedule[Math.min(p.attempt, schedule.length - 1)]!;
    p.attempt++;
    p.atDeadline = last || interval >= p.req.deadline - now;
    p.timer = setTimeout(() => this.transmit(p), Math.max(1, Math.min(interval, p.req.deadline - now)));
  }

  private finish(p: Pending, result: Reply | FleetError): void {
    if (this.pending.get(p.req.key) !== p) return;
    this.pending.delete(p.req.key);
    if (p.timer) clearTimeout(p.timer);
    if (this.pending.size === 0 && !this.closed) this.socket.unref();
    if (result instanceof FleetError) p.reject(result);
    else p.resolve(result);
  }

  private failRemote(remoteKey: string, err: FleetError, only?: (p: Pending) => boolean): void {
    let hit = false;
    for (const p of [...this.pending.values()]) {
      if (p.remoteKey !== remoteKey || (only && !only(p))) continue;
      hit = true;
      this.finish(p, new FleetError('bmc.protocol', `IPMI ${p.req.what}: ${remoteKey} answered with an invalid packet: ${err.message}`));
    }
    if (!hit) this.stats.dropped++;
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stats.received++;
    const remoteKey = remoteKeyOf(rinfo.address, rinfo.port);
    let packet: RmcpPacket;
    try {
      packet = decodeRmcpPacket(msg);
    } catch (e) {
      this.stats.garbage++;
      this.failRemote(remoteKey, e instanceof FleetError ? e : protocolError('undecodable packet'));
      return;
    }
    let key: string;
    let response: IpmiResponse | undefined;
    try {
      if (packet.kind === 'asf') {
        key = asfKey(remoteKey, packet.tag);
      } else if (packet.kind === 'ipmi15') {
        if (packet.sessionId !== 0) return void this.stats.dropped++;
        response = decodeIpmiResponse(packet.payload);
        key = sessionlessKey(remoteKey, response.rqSeq);
      } else if (
        packet.payloadType === PayloadType.OPEN_SESSION_RESPONSE ||
        packet.payloadType === PayloadType.RAKP2 ||
        packet.payloadType === PayloadType.RAKP4
      ) {
        if (packet.payload.length < 1) throw protocolError(`payload type 0x${packet.payloadType.toString(16)} without message tag`);
        key = presessionKey(remoteKey, packet.payloadType, packet.payload[0]!);
      } else if (packet.payloadType === PayloadType.SOL && packet.sessionId !== 0) {
        // Not a reply to a request: the session's SOL console takes it (it verifies and decrypts).
        const route = this.sessions.get(packet.sessionId);
        if (!route?.onSol || route.remoteKey !== remoteKey) return void this.stats.dropped++;
        route.onSol(packet);
        return;
      } else if (packet.payloadType === PayloadType.IPMI && packet.sessionId !== 0) {
        const route = this.sessions.get(packet.sessionId);
        if (!route || route.remoteKey !== remoteKey) return void this.stats.dropped++;
        response = route.unwrap(packet);
        key = sessionKey(remoteKey, packet.sessionId, response.rqSeq);
      } else {
        return void this.stats.dropped++;
      }
    } catch (e) {
      this.stats.garbage++;
      this.failRemote(remoteKey, e instanceof FleetError ? e : protocolError('undecodable packet'));
      return;
    }
    const p = this.pending.get(key);
    if (!p || p.remoteKey !== remoteKey) return void this.stats.dropped++;
    const reply: Reply = response ? { packet, response } : { packet };
    if (p.req.accept && !p.req.accept(reply)) return void this.stats.dropped++;
    this.finish(p, reply);
  }
}

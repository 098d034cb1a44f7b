/**
 * Receives the lines of the dhcp-script hook (server/netboot/hook) on a FIFO
 * in the dnsmasq state directory and hands the parsed events to a sink (the
 * DiscoveryConsumer). Why a FIFO and not a loopback port: see
 * docs/decisions/0005-dnsmasq.md (dnsmasq may run in another network
 * namespace, bash cannot write to a unix socket, and a pipe gives
 * backpressure for free).
 *
 *  - The FIFO is created 0600 in a directory the caller keeps private; only
 *    root and the server's user can write to it. Each line also carries a
 *    per-start random secret (given to dnsmasq in its environment, which it
 *    passes on to the script): a line without it is counted and logged.
 *  - It is opened O_RDWR | O_NONBLOCK, so the open never waits for a writer
 *    and the reader never sees end-of-file when a hook exits.
 *  - Lines are bounded (maxLineBytes); a longer one is dropped up to its
 *    newline. Malformed lines are counted and logged (rate-limited). Nothing
 *    here throws after start().
 *  - Backpressure: when the sink says it is full, reading pauses until it
 *    drains; the pipe fills (64 KiB) and the hook's write blocks.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, open as openCallback, promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { FleetError } from '../../../common/errors.js';
import { type NetbootLogger, silentLogger } from '../dnsmasq/logger.js';
import { HOOK_ENV } from '../hook/script.js';
import type { DiscoverySink } from './consumer.js';
import { parseHookLine } from './protocol.js';

const execFileP = promisify(execFile);
const openFd = promisify(openCallback);

export interface DiscoveryListenerOptions {
  /** FIFO path, e.g. DATA/dnsmasq/events.fifo (its directory is created 0700 if missing). */
  fifo: string;
  sink: DiscoverySink;
  /** Default: 32 random bytes, hex. */
  secret?: string;
  /** Longest accepted line in bytes, newline excluded. Default 4096. */
  maxLineBytes?: number;
  logger?: NetbootLogger;
  /** Malformed lines logged one by one before logging only every 1000th. Default 20. */
  logBurst?: number;
}

export interface DiscoveryListenerStats {
  lines: number;
  accepted: number;
  malformed: number;
  unauthenticated: number;
  tooLong: number;
  /** Times reading paused for the sink to drain. */
  pauses: number;
}

export class DiscoveryListener {
  private readonly secret: string;
  private readonly secretBuf: Buffer;
  private readonly maxLine: number;
  private readonly log: NetbootLogger;
  private socket: net.Socket | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;
  private paused = false;
  private readonly counters: DiscoveryListenerStats = { lines: 0, accepted: 0, malformed: 0, unauthenticated: 0, tooLong: 0, pauses: 0 };
  private readonly onDrain = () => this.resume();

  constructor(private readonly opts: DiscoveryListenerOptions) {
    this.secret = opts.secret ?? randomBytes(32).toString('hex');
    if (!/^[A-Za-z0-9_-]{16,128}$/.test(this.secret)) throw new FleetError('internal', 'discovery listener secret must be 16-128 characters of [A-Za-z0-9_-]');
    this.secretBuf = Buffer.from(this.secret, 'latin1');
    this.maxLine = opts.maxLineBytes ?? 4096;
    this.log = opts.logger ?? silentLogger;
  }

  /** What dnsmasq's environment needs so that the hook reaches this listener. */
  hookEnv(): Record<string, string> {
    return { [HOOK_ENV.fifo]: this.opts.fifo, [HOOK_ENV.secret]: this.secret };
  }

  get fifo(): string {
    return this.opts.fifo;
  }

  stats(): DiscoveryListenerStats {
    return { ...this.counters };
  }

  async start(): Promise<void> {
    if (this.socket) return;
    const file = this.opts.fifo;
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const st = await fs.lstat(file).catch(() => null);
    if (st && !st.isFIFO()) throw new FleetError('internal', `${file} exists and is not a FIFO; remove it`);
    if (!st) {
      try {
        await execFileP('mkfifo', ['-m', '600', file]);
      } catch (e) {
        throw new FleetError('internal', `cannot create the discovery FIFO ${file}: ${(e as Error).message}`, undefined, { cause: e });
      }
    } else {
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new FleetError('internal', `discovery FIFO ${file} is owned by uid ${st.uid}, not by this server`);
      await fs.chmod(file, 0o600);
    }
    // An existing FIFO is reused: a hook blocked on a full pipe of a previous run delivers once we read.
    const fd = await openFd(file, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new net.Socket({ fd, readable: true, writable: false });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.log.error({ err: e.message, fifo: file }, 'discovery: FIFO read error'));
    this.opts.sink.on('drain', this.onDrain);
    this.socket = socket;
    this.log.info({ fifo: file }, 'discovery: listening for dnsmasq lease events');
  }

  async stop(): Promise<void> {
    const s = this.socket;
    if (!s) return;
    this.socket = null;
    this.opts.sink.off('drain', this.onDrain);
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.destroy();
    });
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket?.resume();
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.takePart(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) this.takePart(chunk.subarray(start), false);
    if (this.paused) this.socket?.pause();
  }

  /** A piece of a line; `end`: the newline follows it. */
  private takePart(part: Buffer, end: boolean): void {
    if (!this.discarding) {
      if (this.pendingBytes + part.length > this.maxLine) {
        this.discarding = true;
        this.pending = [];
        this.pendingBytes = 0;
      } else if (part.length > 0) {
        this.pending.push(part);
        this.pendingBytes += part.length;
      }
    }
    if (!end) return;
    this.counters.lines++;
    if (this.discarding) {
      this.discarding = false;
      this.counters.tooLong++;
      this.note('too long', `longer than ${this.maxLine} bytes`);
      return;
    }
    const line = (this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending)).toString('latin1');
    this.pending = [];
    this.pendingBytes = 0;
    if (line === '') return;
    const r = parseHookLine(line, this.secretBuf);
    if (!r.ok) {
      if (r.reason === 'unauthenticated') this.counters.unauthenticated++;
      else this.counters.malformed++;
      this.note(r.reason, r.detail);
      return;
    }
    this.counters.accepted++;
    if (!this.opts.sink.push(r.event) && !this.paused) {
      this.paused = true;
      this.counters.pauses++;
    }
  }

  private note(reason: string, detail: string): void {
    const bad = this.counters.malformed + this.counters.unauthenticated + this.counters.tooLong;
    const burst = this.opts.logBurst ?? 20;
    if (bad <= burst || bad % 1000 === 0) {
      this.log.warn({ reason, detail, rejected: bad, fifo: this.opts.fifo }, 'discovery: rejected a line from the dhcp-script FIFO');
    }
  }
}

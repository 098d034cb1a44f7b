/**
 * Applies lease events to the store, one at a time, in arrival order:
 *   unknown MAC → store.discovered.record({mac, ip, hostname, vendorClass, arch, pxe})
 *                 (writes machine.discovered the first time)
 *   known MAC   → store.nodes.markSeen(node)
 *   del         → nothing to store (a lease ending is not a sighting)
 * Replays are not sightings: dnsmasq re-announces every lease as "old" when it
 * starts (DNSMASQ_DATA_MISSING=1) and on SIGHUP (saying exactly what the
 * last event for that MAC said: same expiry, address, name, classes, tags).
 * For those, a known node is not marked seen and an unknown MAC is recorded
 * only if the store does not have it yet (events missed while the server was
 * down are recovered this way).
 *
 * No loss under bursts: the queue is bounded (highWater) with backpressure,
 * never dropping: push() returns false once the queue is full and 'drain' is
 * emitted when it is back under lowWater; the listener then stops reading the
 * FIFO, the hook's write blocks and dnsmasq keeps the events queued. A store
 * error is retried (bounded), then counted and logged; the consumer never
 * throws.
 */
import { EventEmitter } from 'node:events';
import { isFleetError } from '../../../common/errors.js';
import type { DiscoveryObservation, Store } from '../../store/index.js';
import { type NetbootLogger, silentLogger } from '../dnsmasq/logger.js';
import type { LeaseEvent } from './protocol.js';

export type DiscoveryOutcome =
  | { kind: 'known'; node: string; seen: boolean }
  | { kind: 'discovered'; firstSeen: boolean }
  | { kind: 'skipped'; reason: 'released' | 'replay' }
  | { kind: 'failed'; error: string };

/** Where the listener hands events (the consumer, or a test double). */
export interface DiscoverySink {
  /** Queues the event; false: the queue is full, stop reading until 'drain'. The event is queued either way. */
  push(event: LeaseEvent): boolean;
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

export interface DiscoveryConsumerOptions {
  store: { nodes: Pick<Store['nodes'], 'findByMac' | 'markSeen'>; discovered: Pick<Store['discovered'], 'record' | 'get'> };
  /** push() returns false at this queue length. Default 10000. */
  highWater?: number;
  /** 'drain' when the queue is back at this length. Default highWater / 2. */
  lowWater?: number;
  /** Attempts per event on store errors. Default 3. */
  attempts?: number;
  retryDelayMs?: number;
  logger?: NetbootLogger;
  /** Called after each event is applied (the lifecycle plugs in here); errors are logged. */
  onApplied?: (event: LeaseEvent, outcome: DiscoveryOutcome) => void | Promise<void>;
}

export interface DiscoveryConsumerStats {
  queued: number;
  maxQueued: number;
  applied: number;
  discovered: number;
  firstSeen: number;
  known: number;
  released: number;
  replays: number;
  failed: number;
}

/** MACs whose last event is remembered to tell a replay from a renewal. */
const MAX_REMEMBERED = 100_000;

function signature(ev: LeaseEvent): string {
  return [ev.ip, ev.expires, ev.hostname, ev.vendorClass, ev.userClasses.join(','), ev.tags.join(' ')].join('|');
}

export class DiscoveryConsumer extends EventEmitter implements DiscoverySink {
  private readonly queue: (LeaseEvent | undefined)[] = [];
  private head = 0;
  private running = false;
  private full = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  /** Per MAC, what the last event said (expiry, tags, classes, name): an "old" event saying the same again is a replay. */
  private readonly lastSeen = new Map<string, string>();
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  private readonly log: NetbootLogger;
  private readonly counters: Omit<DiscoveryConsumerStats, 'queued'> = {
    maxQueued: 0,
    applied: 0,
    discovered: 0,
    firstSeen: 0,
    known: 0,
    released: 0,
    replays: 0,
    failed: 0,
  };

  constructor(private readonly opts: DiscoveryConsumerOptions) {
    super();
    this.highWater = Math.max(1, opts.highWater ?? 10_000);
    this.lowWater = Math.min(this.highWater - 1, Math.max(0, opts.lowWater ?? Math.floor(this.highWater / 2)));
    this.attempts = Math.max(1, opts.attempts ?? 3);
    this.retryDelayMs = opts.retryDelayMs ?? 100;
    this.log = opts.logger ?? silentLogger;
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  push(event: LeaseEvent): boolean {
    this.queue.push(event);
    const n = this.length;
    if (n > this.counters.maxQueued) this.counters.maxQueued = n;
    if (!this.running && !this.stopped) void this.pump();
    if (n >= this.highWater) this.full = true;
    return !this.full;
  }

  stats(): DiscoveryConsumerStats {
    return { queued: this.length, ...this.counters };
  }

  /** Resolves when every queued event has been applied. */
  idle(): Promise<void> {
    if (!this.running && this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Applies what is queued, then stops taking events. */
  async stop(): Promise<void> {
    await this.idle();
    this.stopped = true;
  }

  private shift(): LeaseEvent | undefined {
    if (this.head >= this.queue.length) return undefined;
    const ev = this.queue[this.head];
    this.queue[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return ev;
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      for (let ev = this.shift(); ev !== undefined; ev = this.shift()) {
        const outcome = await this.applyWithRetry(ev);
        this.count(outcome);
        if (this.opts.onApplied) {
          try {
            await this.opts.onApplied(ev, outcome);
          } catch (e) {
            this.log.error({ err: String(e), mac: ev.mac }, 'discovery: onApplied hook failed');
          }
        }
        if (this.full && this.length <= this.lowWater) {
          this.full = false;
          this.emit('drain');
        }
      }
    } finally {
      this.running = false;
      if (this.full) {
        this.full = false;
        this.emit('drain');
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private count(o: DiscoveryOutcome): void {
    const c = this.counters;
    if (o.kind !== 'failed') c.applied++;
    if (o.kind === 'known') c.known++;
    else if (o.kind === 'discovered') {
      c.discovered++;
      if (o.firstSeen) c.firstSeen++;
    } else if (o.kind === 'skipped') {
      if (o.reason === 'released') c.released++;
      else c.replays++;
    } else c.failed++;
  }

  private async applyWithRetry(ev: LeaseEvent): Promise<DiscoveryOutcome> {
    let last: unknown;
    for (let i = 1; i <= this.attempts; i++) {
      try {
        return await this.apply(ev);
      } catch (e) {
        last = e;
        if (isFleetError(e) && e.code === 'request.invalid') break;
        if (i < this.attempts) await new Promise((r) => setTimeout(r, this.retryDelayMs * i));
      }
    }
    const error = last instanceof Error ? last.message : String(last);
    this.log.error({ mac: ev.mac, ip: ev.ip, action: ev.action, err: error }, 'discovery: lease event could not be stored');
    return { kind: 'failed', error };
  }

  /** A replay: dnsmasq re-announcing a lease it already had (start-up, SIGHUP), not the client asking. */
  private isReplay(ev: LeaseEvent): boolean {
    if (ev.action !== 'old') return false;
    if (ev.dataMissing) return true;
    return this.lastSeen.get(ev.mac) === signature(ev);
  }

  private remember(ev: LeaseEvent): void {
    this.lastSeen.delete(ev.mac);
    if (ev.action === 'del' || ev.dataMissing) return;
    this.lastSeen.set(ev.mac, signature(ev));
    if (this.lastSeen.size > MAX_REMEMBERED) {
      const oldest = this.lastSeen.keys().next().value;
      if (oldest !== undefined) this.lastSeen.delete(oldest);
    }
  }

  private async apply(ev: LeaseEvent): Promise<DiscoveryOutcome> {
    const replay = this.isReplay(ev);
    this.remember(ev);
    if (ev.action === 'del') return { kind: 'skipped', reason: 'released' };
    const { store } = this.opts;
    const node = await store.nodes.findByMac(ev.mac);
    if (node) {
      if (replay) return { kind: 'known', node: node.name, seen: false };
      try {
        await store.nodes.markSeen(node.name, ev.receivedAt);
        return { kind: 'known', node: node.name, seen: true };
      } catch (e) {
        // removed between the lookup and the write: it is an unknown machine now
        if (!(isFleetError(e) && e.code === 'node.not_found')) throw e;
      }
    }
    if (replay && (await store.discovered.get(ev.mac))) return { kind: 'skipped', reason: 'replay' };
    // Only what this event tells: a renewal from an installed OS must not erase what the PXE ROM said.
    const obs: DiscoveryObservation = { mac: ev.mac, ip: ev.ip };
    const hostname = ev.hostname ?? ev.suppliedHostname;
    if (hostname !== null) obs.hostname = hostname;
    if (ev.vendorClass !== null) obs.vendorClass = ev.vendorClass;
    if (ev.arch !== null) obs.arch = ev.arch;
    if (ev.pxe) obs.pxe = true;
    const { firstSeen } = await store.discovered.record(obs, ev.dataMissing ? undefined : ev.receivedAt);
    return { kind: 'discovered', firstSeen };
  }
}

/**
 * Sessions and locks (DESIGN §6). Work on a node runs in a *session*: first
 * the node's in-process queue (one session of a node at a time in this
 * conductor), then, for BMC steps, the node's leased lock in the store,
 * renewed while held, so two conductors on one database never run a node's
 * steps at once. Transitions alone need no lock: they are compare-and-set
 * (transition.ts).
 *
 * The pool bounds how many sessions the conductor runs at once and tracks
 * them, so that `idle()` can wait for all of them.
 */
import type { ConductorLogger } from './types.js';
import type { Store } from '../store/index.js';

/** A session that could not start: the node's queue or its store lock stayed busy. */
export const BUSY = Symbol('busy');
export type Busy = typeof BUSY;

/** Thrown once the conductor is halted (a simulated crash): its work stops and writes nothing more. */
export class Halted extends Error {
  constructor() {
    super('conductor halted');
  }
}

export interface SessionCtl {
  /** Takes the node's store lock (waiting like the session); false when another conductor holds it. */
  lock(): Promise<boolean>;
}

export interface SessionsOptions {
  locks: Pick<Store['locks'], 'acquire' | 'renew' | 'release'>;
  /** This conductor's lock owner id. */
  owner: string;
  /** Lease of a node lock; renewed every third of it while held. */
  lockTtlMs: number;
  halted: () => boolean;
  log: () => ConductorLogger;
}

export class Sessions {
  /** Tail of each node's in-process session queue. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly o: SessionsOptions) {}

  /** Whether a session of the node is queued or running in this conductor. */
  has(name: string): boolean {
    return this.chains.has(name);
  }

  /**
   * Runs fn in the node's in-process queue (waiting up to waitMs for it),
   * with the node's store lock when `lock` (or once fn calls ctl.lock()).
   * The lock is what steps need: transitions alone are compare-and-set.
   * BUSY when the queue or the lock stayed busy.
   */
  async run<T>(name: string, waitMs: number, lock: boolean, fn: (ctl: SessionCtl) => Promise<T>): Promise<T | Busy> {
    const { o } = this;
    if (o.halted()) throw new Halted();
    const prev = this.chains.get(name);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = (prev ?? Promise.resolve()).then(() => mine);
    this.chains.set(name, tail);
    let held = false;
    let renew: NodeJS.Timeout | undefined;
    const ctl: SessionCtl = {
      lock: async () => {
        if (held) return true;
        if (o.halted()) throw new Halted();
        if (!(await this.acquire(name, waitMs))) return false;
        held = true;
        renew = setInterval(() => {
          if (o.halted()) return;
          void o.locks.renew(name, o.owner, o.lockTtlMs).catch(() => undefined);
        }, Math.max(10, Math.floor(o.lockTtlMs / 3)));
        renew.unref?.();
        return true;
      },
    };
    try {
      if (prev) {
        let timer: NodeJS.Timeout | undefined;
        const ok = await Promise.race([prev.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs)))]);
        clearTimeout(timer);
        if (!ok) return BUSY;
      }
      if (o.halted()) throw new Halted();
      if (lock && !(await ctl.lock())) return BUSY;
      return await fn(ctl);
    } finally {
      if (renew) clearInterval(renew);
      // A halted conductor keeps its locks until their leases expire, as a crashed one would.
      if (held && !o.halted()) await o.locks.release(name, o.owner).catch((e: unknown) => o.log().warn({ err: e, node: name }, 'lock release failed'));
      release();
      // Forget the queue once its last session ended (not before: a BUSY session's tail still waits for prev).
      void tail.then(() => {
        if (this.chains.get(name) === tail) this.chains.delete(name);
      });
    }
  }

  /** Takes the node's store lock, polling with a growing pause until waitMs is spent. */
  private async acquire(name: string, waitMs: number): Promise<boolean> {
    const { o } = this;
    const until = Date.now() + waitMs;
    for (let i = 0; ; i++) {
      if (await o.locks.acquire(name, o.owner, o.lockTtlMs)) return true;
      const left = until - Date.now();
      if (left <= 0) return false;
      await new Promise((r) => setTimeout(r, Math.min(left, 25 * Math.min(8, i + 1))));
    }
  }
}

/**
 * Bounds the sessions run at once (the timer loop's and the background
 * BMC clean-ups) and tracks every background promise for `idle()`.
 */
export class Pool {
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;

  constructor(
    private readonly maxConcurrent: number,
    private readonly log: () => ConductorLogger,
  ) {}

  /** Runs fn when fewer than maxConcurrent run; a failure is logged (Halted is not news), never thrown. */
  async limited<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (this.active >= this.maxConcurrent) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof Halted)) this.log().error({ err: e }, 'lifecycle session failed');
      return undefined;
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  /** Counts p as work in flight until it settles. */
  track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined);
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  /** Resolves when nothing tracked is in flight (work started by work in flight included; bounded). */
  async idle(): Promise<void> {
    for (let i = 0; i < 10_000 && this.inflight.size > 0; i++) await Promise.allSettled([...this.inflight]);
  }
}

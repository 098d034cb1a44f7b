/**
 * Sessions and locks (server/lifecycle/sessions.ts) with an in-memory lock
 * table: one session of a node at a time in this conductor, the store lock
 * only when asked for, BUSY when either stays busy, nothing released by a
 * halted conductor; and the pool's bound. No store, no socket.
 */
import { describe, expect, it } from 'vitest';
import { BUSY, Halted, Pool, Sessions, type SessionsOptions } from '../../../server/lifecycle/sessions.js';

/** A lock table as the store keeps it (owner per node; leases not modelled), every call recorded. */
class Locks {
  readonly held = new Map<string, string>();
  readonly calls: string[] = [];
  async acquire(node: string, owner: string): Promise<boolean> {
    this.calls.push(`acquire ${node} ${owner}`);
    const h = this.held.get(node);
    if (h !== undefined && h !== owner) return false;
    this.held.set(node, owner);
    return true;
  }
  async renew(node: string, owner: string): Promise<boolean> {
    this.calls.push(`renew ${node} ${owner}`);
    return this.held.get(node) === owner;
  }
  async release(node: string, owner: string): Promise<boolean> {
    this.calls.push(`release ${node} ${owner}`);
    if (this.held.get(node) !== owner) return false;
    this.held.delete(node);
    return true;
  }
}

const silent = { info() {}, warn() {}, error() {} };

function sessions(o: Partial<SessionsOptions> & { locks?: Locks } = {}): { s: Sessions; locks: Locks; halt: () => void } {
  const locks = o.locks ?? new Locks();
  let halted = false;
  const s = new Sessions({ locks, owner: 'me', lockTtlMs: 60_000, halted: () => halted, log: () => silent, ...o });
  return { s, locks, halt: () => (halted = true) };
}

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { open, wait };
}

describe('Sessions', () => {
  it('runs the sessions of one node one after the other, of two nodes side by side', async () => {
    const { s } = sessions();
    const order: string[] = [];
    const g = gate();
    const a = s.run('n1', 1000, false, async () => {
      order.push('a start');
      await g.wait;
      order.push('a end');
    });
    const b = s.run('n1', 1000, false, async () => void order.push('b'));
    const c = s.run('n2', 1000, false, async () => void order.push('c'));
    await c;
    expect(order).toEqual(['a start', 'c']);
    expect(s.has('n1')).toBe(true);
    g.open();
    await Promise.all([a, b]);
    expect(order).toEqual(['a start', 'c', 'a end', 'b']);
    await new Promise((r) => setTimeout(r, 0));
    expect(s.has('n1')).toBe(false); // the queue is forgotten once its last session ended
  });

  it('answers BUSY when the queue stays busy longer than the wait, and runs nothing', async () => {
    const { s } = sessions();
    const g = gate();
    const a = s.run('n1', 1000, false, () => g.wait);
    let ran = false;
    expect(await s.run('n1', 20, false, async () => void (ran = true))).toBe(BUSY);
    expect(ran).toBe(false);
    g.open();
    await a;
  });

  it('takes the store lock only when asked, and releases it after', async () => {
    const { s, locks } = sessions();
    expect(await s.run('n1', 0, false, async () => 'no lock')).toBe('no lock');
    expect(locks.calls).toEqual([]);
    expect(await s.run('n1', 0, true, async () => locks.held.get('n1'))).toBe('me');
    expect(locks.calls).toEqual(['acquire n1 me', 'release n1 me']);
    // ctl.lock() later in the session: once, however often it is asked.
    await s.run('n1', 0, false, async (ctl) => {
      expect(await ctl.lock()).toBe(true);
      expect(await ctl.lock()).toBe(true);
    });
    expect(locks.calls.slice(2)).toEqual(['acquire n1 me', 'release n1 me']);
  });

  it('answers BUSY while another conductor holds the lock', async () => {
    const { s, locks } = sessions();
    locks.held.set('n1', 'other');
    let ran = false;
    expect(await s.run('n1', 30, true, async () => void (ran = true))).toBe(BUSY);
    expect(ran).toBe(false);
    expect(locks.held.get('n1')).toBe('other');
    // A session that asks later gets false and goes on without it.
    expect(await s.run('n1', 0, false, async (ctl) => ctl.lock())).toBe(false);
  });

  it('renews the lock while held', async () => {
    const { s, locks } = sessions({ lockTtlMs: 30 });
    await s.run('n1', 0, true, () => new Promise((r) => setTimeout(r, 60)));
    expect(locks.calls.filter((c) => c.startsWith('renew')).length).toBeGreaterThan(0);
  });

  it('once halted: starts nothing, and keeps its locks (leases expire as after a crash)', async () => {
    const { s, locks, halt } = sessions();
    const g = gate();
    const a = s.run('n1', 0, true, () => g.wait);
    await new Promise((r) => setTimeout(r, 0));
    halt();
    g.open();
    await a;
    expect(locks.held.get('n1')).toBe('me');
    await expect(s.run('n2', 0, false, async () => 1)).rejects.toBeInstanceOf(Halted);
  });
});

describe('Pool', () => {
  it('runs at most maxConcurrent at once; idle() waits for what it tracks', async () => {
    const errors: unknown[] = [];
    const pool = new Pool(2, () => ({ ...silent, error: (o: object) => void errors.push(o) }));
    let running = 0;
    let most = 0;
    const job = async (): Promise<number> => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return 1;
    };
    for (let i = 0; i < 6; i++) pool.track(pool.limited(job));
    await pool.idle();
    expect(running).toBe(0);
    expect(most).toBe(2);
  });

  it('logs a failure (not a halt) and answers undefined', async () => {
    const errors: unknown[] = [];
    const pool = new Pool(1, () => ({ ...silent, error: (o: object) => void errors.push(o) }));
    expect(await pool.limited(async () => Promise.reject(new Error('boom')))).toBeUndefined();
    expect(await pool.limited(async () => Promise.reject(new Halted()))).toBeUndefined();
    expect(errors).toHaveLength(1);
  });
});

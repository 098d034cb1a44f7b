/** The one retry rule (server/bmc/retry.ts) and the server-wide per-BMC queue (server/bmc/queue.ts). */
import { describe, expect, it } from 'vitest';
import { BmcQueue, bmcKey } from '../../../server/bmc/queue.js';
import { ACTION_KIND, markNotRun, mayFallBack, mayRetry, provedNotRun, unconfirmedError, unconfirmedOf, type BmcAction } from '../../../server/bmc/retry.js';
import { FleetError, type ErrorCode } from '../../../common/errors.js';

const ALL = Object.keys(ACTION_KIND) as BmcAction[];
const ONCE: BmcAction[] = ['power.off', 'power.soft', 'power.cycle', 'power.reset'];
const err = (code: ErrorCode) => new FleetError(code, code);

describe('mayRetry: the one rule', () => {
  it('reads and idempotent sets are retried on transient errors', () => {
    for (const a of ['power.status', 'bootdev.get', 'info', 'power.on', 'bootdev.set'] as const) {
      for (const c of ['bmc.timeout', 'bmc.protocol', 'bmc.command_failed', 'unavailable'] as const) expect(mayRetry(a, err(c)), `${a} ${c}`).toBe(true);
    }
  });

  it('off, soft, cycle and reset are never retried after an error where they may have landed', () => {
    for (const a of ONCE) {
      expect(ACTION_KIND[a]).toBe('once');
      for (const c of ['bmc.timeout', 'bmc.protocol', 'bmc.command_failed', 'unavailable'] as const) expect(mayRetry(a, err(c)), `${a} ${c}`).toBe(false);
      // The fan-out's own timeout reaches the rule as a plain Error turned into 'internal': not retried either.
      expect(mayRetry(a, new Error('socket hang up'))).toBe(false);
    }
  });

  it('a once-only action is retried only when the error proves it did not run', () => {
    for (const a of ONCE) {
      expect(mayRetry(a, markNotRun(err('bmc.timeout')))).toBe(true);
      expect(mayRetry(a, markNotRun(err('bmc.command_failed')))).toBe(true);
      // ... and never when it is also unconfirmed (sent, no answer).
      const u = unconfirmedError('no answer', { power: 'on' });
      expect(mayRetry(a, u)).toBe(false);
    }
  });

  it('errors that will not change are never retried, whatever the action', () => {
    for (const a of ALL) {
      for (const c of ['bmc.auth_failed', 'bmc.tls', 'bmc.unsupported', 'usage.invalid', 'internal'] as const) {
        expect(mayRetry(a, err(c)), `${a} ${c}`).toBe(false);
        expect(mayRetry(a, markNotRun(err(c))), `${a} ${c} notRun`).toBe(false);
      }
    }
  });

  it('markNotRun keeps code, message and details; unconfirmed errors carry the read-back', () => {
    const e = markNotRun(new FleetError('bmc.command_failed', 'busy', { completionCode: 0xc0 }));
    expect(e).toMatchObject({ code: 'bmc.command_failed', message: 'busy', details: { completionCode: 0xc0, notRun: true } });
    expect(provedNotRun(e)).toBe(true);
    expect(provedNotRun(err('bmc.timeout'))).toBe(false);
    const u = unconfirmedError('no answer; power read back: off', { power: 'off' });
    expect(u.code).toBe('bmc.timeout');
    expect(unconfirmedOf(u)).toEqual({ power: 'off' });
    expect(unconfirmedOf(err('bmc.timeout'))).toBeUndefined();
  });

  it('fallback to another provider: only for protocol trouble, and never resends a once-only action that may have landed', () => {
    expect(mayFallBack('power.status', err('bmc.protocol'))).toBe(true);
    expect(mayFallBack('bootdev.set', err('bmc.unsupported'))).toBe(true);
    expect(mayFallBack('power.status', err('bmc.timeout'))).toBe(false);
    expect(mayFallBack('power.status', err('bmc.auth_failed'))).toBe(false);
    for (const a of ONCE) {
      expect(mayFallBack(a, err('bmc.protocol'))).toBe(false);
      expect(mayFallBack(a, markNotRun(err('bmc.protocol')))).toBe(true);
      expect(mayFallBack(a, err('bmc.unsupported'))).toBe(true);
      expect(mayFallBack(a, err('bmc.timeout'))).toBe(false);
    }
  });
});

describe('BmcQueue: one caller per BMC', () => {
  const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('two callers on one BMC never overlap, and run in arrival order', async () => {
    const q = new BmcQueue();
    const log: string[] = [];
    let inside = 0;
    let overlap = 0;
    const job = (name: string, ms: number) =>
      q.run('10.0.0.1:623', async () => {
        if (++inside > 1) overlap++;
        log.push(`${name}+`);
        await tick(ms);
        log.push(`${name}-`);
        inside--;
        return name;
      });
    const results = await Promise.all([job('fanout', 30), job('lifecycle', 5), job('fanout2', 10)]);
    expect(results).toEqual(['fanout', 'lifecycle', 'fanout2']);
    expect(overlap).toBe(0);
    expect(log).toEqual(['fanout+', 'fanout-', 'lifecycle+', 'lifecycle-', 'fanout2+', 'fanout2-']);
    expect(q.busy).toBe(0);
  });

  it('a failing caller releases the BMC for the next one', async () => {
    const q = new BmcQueue();
    const a = q.run('k', async () => {
      throw new Error('boom');
    });
    const b = q.run('k', async () => 'next');
    await expect(a).rejects.toThrow('boom');
    await expect(b).resolves.toBe('next');
    expect(q.busy).toBe(0);
  });

  it('different BMCs run in parallel', async () => {
    const q = new BmcQueue();
    let inside = 0;
    let peak = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        q.run(bmcKey('10.0.0.' + i, 623), async () => {
          peak = Math.max(peak, ++inside);
          await tick(50);
          inside--;
        }),
      ),
    );
    expect(peak).toBe(10);
    expect(Date.now() - t0).toBeLessThan(400);
  });

  it('keys are address:port, case-folded', () => {
    expect(bmcKey('BMC1.Example', 623)).toBe('bmc1.example:623');
    expect(bmcKey('10.0.0.1', 624)).not.toBe(bmcKey('10.0.0.1', 623));
  });
});

import { describe, expect, it } from 'vitest';
import { MAX_STAGGER_COUNT, parseStagger, runFanout, type FanoutTarget } from '../../../server/bmc/fanout.js';
import { BmcQueue } from '../../../server/bmc/queue.js';
import { mayRetry } from '../../../server/bmc/retry.js';
import { FleetError } from '../../../common/errors.js';

const targets = (n: number, bmcs = n): FanoutTarget[] =>
  Array.from({ length: n }, (_, i) => ({ node: `n${i + 1}`, bmcKey: `bmc${(i % bmcs) + 1}` }));
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('fan-out runner', () => {
  it('never exceeds the global concurrency limit and returns one result per node in order', async () => {
    let inFlight = 0;
    let max = 0;
    const res = await runFanout(
      targets(50),
      async (t) => {
        inFlight++;
        max = Math.max(max, inFlight);
        await tick(2);
        inFlight--;
        return { value: t.node.toUpperCase(), provider: 'test' };
      },
      { concurrency: 7 },
    );
    expect(max).toBe(7);
    expect(res.map((r) => r.node)).toEqual(targets(50).map((t) => t.node));
    expect(res.every((r) => r.ok && r.value === r.node.toUpperCase())).toBe(true);
    expect(res[0]!.attempts).toEqual([expect.objectContaining({ provider: 'test', outcome: 'ok' })]);
  });

  it('serialises operations on one BMC', async () => {
    const busy = new Set<string>();
    let overlaps = 0;
    await runFanout(
      targets(12, 3),
      async (t) => {
        if (busy.has(t.bmcKey)) overlaps++;
        busy.add(t.bmcKey);
        await tick(3);
        busy.delete(t.bmcKey);
        return { value: null, provider: 'test' };
      },
      { concurrency: 64 },
    );
    expect(overlaps).toBe(0);
  });

  it('fails one node with a reason while the others succeed', async () => {
    const res = await runFanout(targets(4), async (t) => {
      if (t.node === 'n2') throw new FleetError('bmc.auth_failed', 'authentication failed (bmc 10.0.0.2, ipmi)');
      return { value: 'on', provider: 'ipmi' };
    });
    expect(res.filter((r) => r.ok).map((r) => r.node)).toEqual(['n1', 'n3', 'n4']);
    expect(res[1]).toMatchObject({ ok: false, error: { code: 'bmc.auth_failed', message: 'authentication failed (bmc 10.0.0.2, ipmi)' } });
    // auth failures are not retried: retrying only locks BMC accounts.
    expect(res[1]!.attempts).toHaveLength(1);
  });

  it('times out a hung attempt, aborts it, retries with backoff, then reports bmc.timeout', async () => {
    const aborted: number[] = [];
    const sleeps: number[] = [];
    const res = await runFanout(
      targets(2),
      (t, ctx) =>
        t.node === 'n1'
          ? new Promise<never>((_, reject) => {
              ctx.signal.addEventListener('abort', () => {
                aborted.push(ctx.attempt);
                reject(new Error('aborted'));
              });
            })
          : Promise.resolve({ value: 'ok', provider: 'test' }),
      { timeoutMs: 30, retries: 2, backoffMs: 5, sleep: async (ms) => void sleeps.push(ms) },
    );
    expect(res[0]).toMatchObject({ ok: false, error: { code: 'bmc.timeout' } });
    expect(res[0]!.attempts.map((a) => a.outcome)).toEqual(['bmc.timeout', 'bmc.timeout', 'bmc.timeout']);
    expect(aborted).toEqual([0, 1, 2]);
    expect(sleeps).toEqual([5, 10]);
    expect(res[1]!.ok).toBe(true);
  });

  it('succeeds on a retry after a transient protocol error', async () => {
    let calls = 0;
    const res = await runFanout(
      targets(1),
      async () => {
        if (calls++ === 0) throw new FleetError('bmc.protocol', 'garbage');
        return { value: 'on', provider: 'ipmi' };
      },
      { backoffMs: 1 },
    );
    expect(res[0]!.ok).toBe(true);
    expect(res[0]!.attempts.map((a) => a.outcome)).toEqual(['bmc.protocol', 'ok']);
  });

  it('records inner provider attempts (fallbacks) before the final one', async () => {
    const res = await runFanout(targets(1), async () => ({
      value: 'on',
      provider: 'ipmitool',
      inner: [{ provider: 'ipmi', durationMs: 3, outcome: 'bmc.unsupported' as const, message: 'no' }],
    }));
    expect(res[0]!.attempts.map((a) => `${a.provider}:${a.outcome}`)).toEqual(['ipmi:bmc.unsupported', 'ipmitool:ok']);
  });

  it('staggers starts: at most N per interval', async () => {
    const starts: number[] = [];
    await runFanout(
      targets(6),
      async () => {
        starts.push(Date.now());
        return { value: null, provider: 'test' };
      },
      { stagger: { count: 2, intervalMs: 60 } },
    );
    starts.sort((a, b) => a - b);
    // the 3rd start waits for the 1st to leave the window, the 5th for the 3rd.
    expect(starts[2]! - starts[0]!).toBeGreaterThanOrEqual(55);
    expect(starts[4]! - starts[2]!).toBeGreaterThanOrEqual(55);
  });

  it('parses stagger specs and refuses bad ones', () => {
    expect(parseStagger('10/2s')).toEqual({ count: 10, intervalMs: 2000 });
    expect(parseStagger('5/500ms')).toEqual({ count: 5, intervalMs: 500 });
    expect(parseStagger('3/1')).toEqual({ count: 3, intervalMs: 1000 });
    for (const bad of ['', '0/2s', '10', '/2s', 'a/b', '10/2h', '1000000/1s']) expect(() => parseStagger(bad)).toThrow(/stagger/);
  });

  it('bounds the stagger: N up to 100,000, the interval up to one hour', () => {
    expect(parseStagger('1/60m')).toEqual({ count: 1, intervalMs: 3_600_000 });
    expect(parseStagger('1/3600s')).toEqual({ count: 1, intervalMs: 3_600_000 });
    expect(parseStagger(`${MAX_STAGGER_COUNT}/0`)).toEqual({ count: 100_000, intervalMs: 0 });
    for (const bad of ['1/61m', '1/3601', '1/3600001ms', '1/99999999999s', '1/9999999999.5m']) {
      expect(() => parseStagger(bad), bad).toThrow(/the interval must be from 0 to 1 hour/);
    }
    expect(() => parseStagger('100001/1s')).toThrow(/N must be a whole number from 1 to 100000/);
    expect(() => parseStagger(`1/${'9'.repeat(400)}s`)).toThrow(/expected N\/INTERVAL/);
  });

  it('refuses an out-of-bounds stagger given directly, instead of spinning on an overflowing timer', async () => {
    // setTimeout clamps anything above 2^31-1 ms to 1 ms: the gate would wake and sleep again forever.
    const run = runFanout(targets(3), async () => ({ value: 1, provider: 't' }), { stagger: { count: 1, intervalMs: 1e14 } });
    const outcome = await Promise.race([run.then(() => 'finished', (e: unknown) => e), tick(2000).then(() => 'still running')]);
    expect(outcome).toBeInstanceOf(FleetError);
    expect((outcome as FleetError).code).toBe('usage.invalid');
  });

  it('an abort ends a staggered fan-out at once: the started node keeps its result, the waiting ones say why', async () => {
    const ctl = new AbortController();
    const calls: string[] = [];
    const t0 = Date.now();
    const run = runFanout(
      targets(5),
      async (t) => {
        calls.push(t.node);
        return { value: 'on', provider: 'test' };
      },
      { stagger: { count: 1, intervalMs: 3_600_000 }, signal: ctl.signal },
    );
    for (let i = 0; i < 100 && calls.length === 0; i++) await tick(10);
    await tick(50);
    ctl.abort(new FleetError('unavailable', 'not done: the server is stopping'));
    const res = await Promise.race([run, tick(2000).then(() => undefined)]);
    expect(res, 'the fan-out did not stop within 2 s of the abort').toBeDefined();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(calls).toEqual(['n1']);
    expect(res!.map((r) => r.ok)).toEqual([true, false, false, false, false]);
    for (const r of res!.slice(1)) {
      expect(r.error).toEqual({ code: 'unavailable', message: 'not done: the server is stopping' });
      expect(r.attempts).toEqual([]);
    }
  });

  it('an abort abandons an attempt in flight (its driver signal fires) and never retries it', async () => {
    const ctl = new AbortController();
    let calls = 0;
    let opSignal: AbortSignal | undefined;
    const run = runFanout(
      targets(1),
      (_t, ctx) => {
        calls++;
        opSignal = ctx.signal;
        return new Promise<never>(() => {}); // a BMC that never answers
      },
      { timeoutMs: 600_000, retries: 3, signal: ctl.signal },
    );
    for (let i = 0; i < 100 && calls === 0; i++) await tick(10);
    ctl.abort(new FleetError('unavailable', 'not done: the server is stopping'));
    const res = await Promise.race([run, tick(2000).then(() => undefined)]);
    expect(res).toBeDefined();
    expect(calls).toBe(1);
    expect(opSignal?.aborted).toBe(true);
    expect(res![0]!.error?.message).toBe('not done: the server is stopping; the attempt in flight was abandoned and its outcome is unknown');
    expect(res![0]!.attempts).toHaveLength(1);
  });

  it('an abort ends a backoff wait and a wait for a concurrency slot', async () => {
    const ctl = new AbortController();
    let calls = 0;
    const run = runFanout(
      targets(3),
      async (t) => {
        calls++;
        if (t.node === 'n1') throw new FleetError('bmc.timeout', 'no answer');
        return new Promise<never>(() => {}); // holds the only slot while n1 backs off
      },
      { concurrency: 1, retries: 2, backoffMs: 600_000, timeoutMs: 600_000, signal: ctl.signal },
    );
    for (let i = 0; i < 100 && calls < 2; i++) await tick(10);
    ctl.abort();
    const res = await Promise.race([run, tick(2000).then(() => undefined)]);
    expect(res).toBeDefined();
    expect(calls).toBe(2);
    expect(res!.map((r) => r.error?.code)).toEqual(['unavailable', 'unavailable', 'unavailable']);
    expect(res![0]!.attempts.map((a) => a.outcome)).toEqual(['bmc.timeout']);
    expect(res![2]!.attempts).toEqual([]);
  });

  it('never retries a once-only action after a timeout: the retry rule decides, not the error code alone', async () => {
    let calls = 0;
    const res = await runFanout(
      targets(1),
      (_t, ctx) =>
        new Promise<never>((_, reject) => {
          calls++;
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      { timeoutMs: 20, retries: 3, backoffMs: 1, retryable: (e) => mayRetry('power.reset', e) },
    );
    expect(calls).toBe(1);
    expect(res[0]).toMatchObject({ ok: false, error: { code: 'bmc.timeout' } });
    expect(res[0]!.attempts).toHaveLength(1);
  });

  it('two fan-outs sharing the server queue never drive one BMC at once; other BMCs run in parallel', async () => {
    const queue = new BmcQueue();
    const busy = new Map<string, string>();
    let overlaps = 0;
    let peak = 0;
    const op = (who: string) => async (t: FanoutTarget) => {
      if (busy.has(t.bmcKey)) overlaps++;
      busy.set(t.bmcKey, who);
      peak = Math.max(peak, busy.size);
      await tick(15);
      busy.delete(t.bmcKey);
      return { value: who, provider: 'test' };
    };
    // The CLI's fan-out and the lifecycle's single-node call both want bmc1..bmc4.
    await Promise.all([
      runFanout(targets(4), op('cli'), { queue }),
      runFanout(targets(4).map((t) => ({ ...t, node: `x-${t.node}` })), op('lifecycle'), { queue }),
    ]);
    expect(overlaps).toBe(0);
    expect(peak).toBe(4);
    expect(queue.busy).toBe(0);
  });

  it('an attempt abandoned at its timeout keeps the BMC until it has really ended: the next caller never overlaps it', async () => {
    const queue = new BmcQueue();
    let inside = 0;
    let overlap = 0;
    // A driver that ignores the abort and finishes 80 ms after the 20 ms timeout.
    const slow = async () => {
      if (++inside > 1) overlap++;
      await tick(100);
      inside--;
      return { value: 'late', provider: 'test' };
    };
    const first = runFanout([{ node: 'a', bmcKey: 'bmc1' }], slow, { queue, timeoutMs: 20, retries: 0 });
    await tick(5);
    const second = runFanout([{ node: 'b', bmcKey: 'bmc1' }], slow, { queue, timeoutMs: 1000 });
    const [r1, r2] = await Promise.all([first, second]);
    expect(r1[0]).toMatchObject({ ok: false, error: { code: 'bmc.timeout' } });
    expect(r2[0]).toMatchObject({ ok: true });
    expect(overlap).toBe(0);
  });

  it('hands each result to onResult as it lands, before the whole fan-out ends', async () => {
    const seen: string[] = [];
    let finished = false;
    const run = runFanout(
      targets(3),
      async (t) => {
        await tick(t.node === 'n3' ? 120 : 5);
        return { value: t.node, provider: 'test' };
      },
      {
        onResult: (r) => {
          expect(finished).toBe(false);
          seen.push(r.node);
        },
      },
    );
    await tick(60);
    expect(seen.sort()).toEqual(['n1', 'n2']);
    await run;
    finished = true;
    expect(seen).toContain('n3');
  });

  it('refuses duplicate nodes and bad concurrency', async () => {
    await expect(runFanout([{ node: 'a', bmcKey: 'x' }, { node: 'a', bmcKey: 'y' }], async () => ({ value: 1, provider: 't' }))).rejects.toThrow(/twice/);
    await expect(runFanout(targets(1), async () => ({ value: 1, provider: 't' }), { concurrency: 0 })).rejects.toThrow(/concurrency/);
  });
});

import { describe, expect, it } from 'vitest';
import { runLifecycleBench } from '../../../bench/lifecycle.js';

describe('lifecycle simulator (200 nodes through the real conductor and a SQLite file)', () => {
  it('reinstalls every node exactly along the path, with one power action each', async () => {
    const r = await runLifecycleBench({ nodes: 200, stagger: { count: 50, intervalMs: 10 }, maxWallMs: 60_000, print: null });
    expect(r.simErrors).toEqual([]);
    expect(r.timedOut).toBe(false);
    expect(r.ready).toBe(200);
    expect(r.lost).toBe(0);
    expect(r.duplicated).toBe(0);
    expect(r.wrongPath).toBe(0);
    expect(r.powerTwice).toBe(0);
    expect(r.powerStepTwice).toBe(0);
    expect(r.transitions).toBe(r.expectedTransitions);
    expect(r.events).toBeGreaterThan(200 * 9);
    expect(r.table).toMatch(/CPU per lifecycle/);
  }, 120_000);
});

/** common/backoff.ts: the one exponential backoff, as the fan-out, the conductor and the supervisor use it. */
import { describe, expect, it } from 'vitest';
import { backoffDelay, exponentialDelay } from '../../../common/backoff.js';

describe('exponentialDelay', () => {
  it('doubles from the first delay, without a ceiling unless given one', () => {
    expect([0, 1, 2, 3].map((a) => exponentialDelay(a, { initialMs: 500 }))).toEqual([500, 1000, 2000, 4000]);
    expect(exponentialDelay(20, { initialMs: 500 })).toBe(500 * 2 ** 20);
    expect([0, 5, 6, 40].map((a) => exponentialDelay(a, { initialMs: 500, maxMs: 30_000 }))).toEqual([500, 16_000, 30_000, 30_000]);
    expect(exponentialDelay(2, { initialMs: 100, factor: 3 })).toBe(900);
    expect(exponentialDelay(-1, { initialMs: 100 })).toBe(100);
  });

  it('is the ceiling of the jittered delay', () => {
    for (const a of [0, 1, 4, 9]) {
      const d = exponentialDelay(a, { initialMs: 1000, maxMs: 30_000 });
      expect(backoffDelay(a, { random: () => 0.999999 })).toBe(Math.round(d / 2 + (d / 2) * 0.999999));
      expect(backoffDelay(a, { random: () => 0 })).toBe(Math.round(d / 2));
    }
  });
});

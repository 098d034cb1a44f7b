/** common/duration.ts: the one duration parser, and the units each caller takes. */
import { describe, expect, it } from 'vitest';
import { parseDurationMs } from '../../../common/duration.js';
import { parseStagger } from '../../../server/bmc/fanout.js';
import { parseSince } from '../../../server/cli/time.js';
import { parseDurationSeconds } from '../../../server/lifecycle/settings.js';

describe('parseDurationMs', () => {
  it('reads a number and a unit', () => {
    expect(['500ms', '90s', '1.5m', '2h', '7d', ' 3 s '].map((t) => parseDurationMs(t))).toEqual([500, 90_000, 90_000, 7_200_000, 604_800_000, 3000]);
  });
  it('a bare number needs a default unit; a unit outside the accepted ones is refused', () => {
    expect(parseDurationMs('90')).toBeUndefined();
    expect(parseDurationMs('90', { defaultUnit: 's' })).toBe(90_000);
    expect(parseDurationMs('2d', { units: ['s', 'm', 'h'] })).toBeUndefined();
    expect(parseDurationMs('2h', { units: ['s', 'm', 'h'] })).toBe(7_200_000);
  });
  it('refuses what is not a duration', () => {
    for (const t of ['', 's', '-5s', '1e3s', '5 sec', '1.s', '5/2s', 'lots']) expect(parseDurationMs(t, { defaultUnit: 's' }), t).toBeUndefined();
  });
});

describe('its callers keep their units', () => {
  it('--stagger N/INTERVAL: ms, s (default), m', () => {
    expect(parseStagger('10/2s')).toEqual({ count: 10, intervalMs: 2000 });
    expect(parseStagger('5/500ms')).toEqual({ count: 5, intervalMs: 500 });
    expect(parseStagger('10/2')).toEqual({ count: 10, intervalMs: 2000 });
    expect(parseStagger('3/1.5m')).toEqual({ count: 3, intervalMs: 90_000 });
    expect(() => parseStagger('10/2h')).toThrow(/bad --stagger '10\/2h'/);
    expect(() => parseStagger('0/2s')).toThrow(/N must be a whole number from 1 to 100000/);
  });
  it('--since: a unit is required (a bare number is read as a time)', () => {
    const now = new Date('2026-01-01T12:00:00Z');
    expect(parseSince('30s', now)).toBe('2026-01-01T11:59:30.000Z');
    expect(parseSince('2025-12-31T00:00:00Z', now)).toBe('2025-12-31T00:00:00.000Z');
    expect(() => parseSince('5ms', now)).toThrow(/neither an ISO time nor a duration/);
  });
  it('lifecycle durations: seconds by default, every unit, positive', () => {
    expect(parseDurationSeconds('90')).toBe(90);
    expect(parseDurationSeconds('15m')).toBe(900);
    expect(parseDurationSeconds('1d')).toBe(86_400);
    expect(parseDurationSeconds('500ms')).toBe(0.5);
    expect(parseDurationSeconds('0s')).toBeUndefined();
    expect(parseDurationSeconds(45)).toBe(45);
  });
});

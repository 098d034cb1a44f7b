/**
 * The compare-and-set transition's pure part (server/lifecycle/transition.ts):
 * the deadline a node gets on entering a state. The transaction itself is
 * exercised through the conductor (lifecycle-conductor.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { defaultLifecycleSettings } from '../../../server/lifecycle/settings.js';
import { S } from '../../../server/lifecycle/states.js';
import { deadlineFor, isConflict } from '../../../server/lifecycle/transition.js';

const T = Date.parse('2030-01-01T00:00:00.000Z');
const { timeouts } = defaultLifecycleSettings();

describe('deadlineFor', () => {
  it('a transient state: its timeout from now', () => {
    expect(deadlineFor(S.netbooting, timeouts, T)).toBe('2030-01-01T00:15:00.000Z');
    expect(deadlineFor(S.netbooting, { ...timeouts, [S.netbooting]: 90 }, T)).toBe('2030-01-01T00:01:30.000Z');
  });

  it('a stagger slot still ahead: from the slot; one passed: from now', () => {
    expect(deadlineFor(S.pxeArmed, timeouts, T, T + 600_000)).toBe('2030-01-01T00:15:00.000Z');
    expect(deadlineFor(S.pxeArmed, timeouts, T, T - 600_000)).toBe('2030-01-01T00:05:00.000Z');
  });

  it('a resting state: none', () => {
    for (const s of [S.enrolled, S.ready, S.failed]) expect(deadlineFor(s, timeouts, T)).toBeNull();
  });
});

describe('isConflict', () => {
  it('is the compare-and-set losing, nothing else', () => {
    expect(isConflict(new FleetError('conflict', 'moved'))).toBe(true);
    expect(isConflict(new FleetError('state.invalid_transition', 'no'))).toBe(false);
    expect(isConflict(new Error('conflict'))).toBe(false);
  });
});

/** The FleetError a promise rejects with; the test fails when it resolves or rejects with something else. */
import { expect } from 'vitest';
import { FleetError } from '../../common/errors.js';

export async function rejection(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

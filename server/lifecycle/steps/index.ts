/** The conductor's steps, one module each, by name. */
import { stateSpec } from '../table.js';
import { STEP, type StepName } from '../states.js';
import { armPxe } from './arm-pxe.js';
import { checkAgent } from './check-agent.js';
import { checkApplied } from './check-applied.js';
import { flipToDisk } from './flip-to-disk.js';
import { powerCycle } from './power-cycle.js';
import type { StepDef } from './types.js';

export const STEP_DEFS: Readonly<Record<StepName, StepDef>> = {
  [STEP.armPxe]: armPxe,
  [STEP.powerCycle]: powerCycle,
  [STEP.flipToDisk]: flipToDisk,
  [STEP.checkAgent]: checkAgent,
  [STEP.checkApplied]: checkApplied,
};

/** Whether the step acts through the BMC (needs the node's store lock; retried; may have acted when interrupted). */
export function isBmcStep(step: StepName): boolean {
  return STEP_DEFS[step].bmcAction !== undefined;
}

/**
 * Whether entering `state` runs a BMC step, which needs the node's store
 * lock. The other steps only read the store: running one twice is harmless
 * (the compare-and-set of its transition decides).
 */
export function hasBmcStep(state: string): boolean {
  const step = stateSpec(state)?.step;
  return step !== undefined && isBmcStep(step);
}

export { settleDoubtfulCycle, type DoubtfulCycle } from './power-cycle.js';
export { diskBestEffort, pxeStoredAsContinuous } from './flip-to-disk.js';
export type { StepContext, StepDef, StepOutcome } from './types.js';

/**
 * What a step is to the conductor: the work done on entering a state (one
 * module per step in this folder), whose outcome is an event of the table,
 * a wait for a fact, or nothing (the node moved meanwhile).
 */
import type { BmcAction } from '../../bmc/retry.js';
import type { NodeRecord, Store } from '../../store/index.js';
import type { LifecycleEvent, StepName } from '../states.js';
import type { Steps } from '../steps.js';

export type StepOutcome = { kind: 'event'; event: LifecycleEvent; details: Record<string, unknown> } | { kind: 'wait' } | { kind: 'superseded' };

export interface StepContext {
  store: Store;
  /** The BMC side effects (BmcSteps, or a double). */
  steps: Steps;
  /** Writes one of the conductor's lifecycle events for the node (step started, done, failed). */
  append(node: string, kind: string, details: Record<string, unknown>): Promise<void>;
}

export interface StepDef {
  name: StepName;
  /**
   * A BMC step: what it does, for retry.ts's rule. It runs under the node's
   * store lock, writes lifecycle.step_started before each attempt and is
   * retried a bounded number of times (runner.ts). A step without one only
   * reads the store: running it twice is harmless.
   */
  bmcAction?: BmcAction;
  /** One attempt. A BMC step throws its FleetError; the runner decides about a retry. */
  run(ctx: StepContext, rec: NodeRecord, attempt: number): Promise<StepOutcome>;
}

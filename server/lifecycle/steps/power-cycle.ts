/**
 * Step power-cycle (power-cycling), and the one rule for a power cycle that
 * may have happened: it is never sent twice. A cycle is not idempotent (a
 * second one could reset a node already fetching its installer), so when
 * nobody knows whether it landed (no clear answer from the BMC, or a
 * conductor died while it ran) the power is read instead (settleDoubtfulCycle).
 * The step and recovery (recovery.ts) both go through it.
 */
import { FleetError, isFleetError, toFleetError } from '../../../common/errors.js';
import { provedNotRun, TRANSIENT_ERRORS } from '../../bmc/retry.js';
import type { PowerState } from '../../bmc/types.js';
import { E, LIFECYCLE_EVENT_KINDS as K, STEP } from '../states.js';
import type { Steps } from '../steps.js';
import { manualPowerNote, powerIsManual } from './manual.js';
import type { StepDef } from './types.js';

const step = STEP.powerCycle;

/** What reading the power after a doubtful cycle found, and did. */
export type DoubtfulCycle =
  /** The power is unreadable too: nothing more is sent; the caller fails the node. */
  | { outcome: 'unreadable'; error: FleetError }
  /** The node was off (the cycle's "off" landed, its "on" not): it was powered on. */
  | { outcome: 'powered-on' }
  /** The node is on: the cycle may have happened; nothing is sent (the netboot or the deadline tells). */
  | { outcome: 'left-on'; power: PowerState };

/**
 * The never-repeat rule: after a power cycle that may have happened, read
 * the power; off → power on; on → nothing. Never cycles.
 * @throws the power-on's error (the caller decides what a failed power-on means).
 */
export async function settleDoubtfulCycle(steps: Steps, node: string): Promise<DoubtfulCycle> {
  let power: PowerState;
  try {
    power = await steps.powerStatus(node);
  } catch (e) {
    return { outcome: 'unreadable', error: toFleetError(e) };
  }
  if (power === 'off') {
    await steps.powerOn(node);
    return { outcome: 'powered-on' };
  }
  return { outcome: 'left-on', power };
}

export const powerCycle: StepDef = {
  name: step,
  bmcAction: 'power.cycle',
  async run(ctx, rec, attempt) {
    const name = rec.name;
    if (await powerIsManual(ctx.steps, name)) {
      // No BMC: a person powers the node; it waits here (armed) for its netboot, or the deadline.
      await ctx.append(name, K.stepDone, { step, attempt, action: 'manual', power: 'manual', message: manualPowerNote(name) });
      return { kind: 'wait' };
    }
    let did: string;
    try {
      did = await ctx.steps.powerCycle(name);
    } catch (e) {
      // A power action that got no clear answer (timeout, unreadable reply) may have happened: read
      // the power instead of repeating it. Only a failure that proves it did not run is retried (runner.ts).
      if (!isFleetError(e) || provedNotRun(e) || !TRANSIENT_ERRORS.has(e.code)) throw e;
      const after = await settleDoubtfulCycle(ctx.steps, name);
      if (after.outcome === 'unreadable') {
        await ctx.append(name, K.stepFailed, { step, attempt, code: e.code, reason: e.message, willRetry: false });
        const reason = `${e.message}; the power state is unreadable too, so the power action is not repeated (${after.error.message})`;
        return { kind: 'event', event: E.fail, details: { step, reason, attempts: attempt } };
      }
      const why = e.code === 'bmc.timeout' ? 'timed out' : `unconfirmed: ${e.code}`;
      did = after.outcome === 'powered-on' ? `on (after a ${why} cycle left it off)` : `none (${why}; power is on, not repeated)`;
    }
    await ctx.append(name, K.stepDone, { step, attempt, action: did });
    // The cycle is done; the node's netboot (a fact) moves it on, or the deadline fails it.
    return { kind: 'wait' };
  },
};

/**
 * Step arm-pxe (pxe-armed): the one-time PXE boot override through the BMC
 * (loop breaker layer 1); for a stateless node the network boot for good
 * (every boot of it is a netboot, and no flip to disk follows). Idempotent.
 */
import { E, STEP } from '../states.js';
import { powerIsManual } from './manual.js';
import type { StepDef } from './types.js';
import { bootsFromNetwork } from '../../stateless/profile.js';

export const armPxe: StepDef = {
  name: STEP.armPxe,
  bmcAction: 'bootdev.set',
  async run(ctx, rec) {
    // No BMC (power is manual): nothing to override; the node is armed and a person PXE-boots it.
    if (await powerIsManual(ctx.steps, rec.name)) return { kind: 'event', event: E.cycle, details: { step: STEP.armPxe, power: 'manual' } };
    const stateless = await bootsFromNetwork(ctx.store, rec.profile);
    await ctx.steps.armPxe(rec.name, stateless ? { persistent: true } : {});
    return { kind: 'event', event: E.cycle, details: { step: STEP.armPxe, ...(stateless ? { persistent: true } : {}) } };
  },
};

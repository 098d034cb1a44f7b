/**
 * Step flip-to-disk (installed): the boot device is the disk, persistently,
 * through the BMC (loop breaker layer 3). Idempotent. The same BMC action
 * also runs outside the step, best effort: after a cancel, and at the
 * install boot when the BMC kept the one-time PXE override.
 */
import type { Store } from '../../store/index.js';
import { toFleetError } from '../../../common/errors.js';
import { E, LIFECYCLE_EVENT_KINDS as K, STEP } from '../states.js';
import type { Steps } from '../steps.js';
import { powerIsManual } from './manual.js';
import type { StepDef } from './types.js';
import { bootsFromNetwork } from '../../stateless/profile.js';
import { EVENT } from '../../../common/events.js';

export const flipToDisk: StepDef = {
  name: STEP.flipToDisk,
  bmcAction: 'bootdev.set',
  async run(ctx, rec) {
    // No BMC (power is manual): the node is disarmed, so a netboot is answered "boot the local disk" anyway.
    if (await powerIsManual(ctx.steps, rec.name)) return { kind: 'event', event: E.flip, details: { step: STEP.flipToDisk, power: 'manual' } };
    await ctx.steps.flipToDisk(rec.name);
    return { kind: 'event', event: E.flip, details: { step: STEP.flipToDisk } };
  },
};

/**
 * Whether the BMC stored this run's one-time PXE override as Continuous
 * (quirk onceStoredAsContinuous in the arm's bmc.bootdev event): then the
 * installer's reboot, or any boot after a failure, would netboot again.
 */
export async function pxeStoredAsContinuous(store: Store, name: string): Promise<boolean> {
  const [arm] = await store.events.newest({ node: name, kinds: [EVENT.bmcBootdev] });
  const quirks = (arm?.details as { quirks?: unknown } | null | undefined)?.quirks;
  return Array.isArray(quirks) && quirks.includes('onceStoredAsContinuous');
}

/** Best effort outside the step: boot the disk; a failure is written as lifecycle.cleanup_failed, never thrown. */
export async function diskBestEffort(store: Store, steps: Steps, name: string, who: { actor: string; cause: string }): Promise<void> {
  try {
    if (await powerIsManual(steps, name)) return; // power is manual: there is no BMC to ask
    // A stateless node has no system on a disk: it keeps booting from the network.
    const node = await store.nodes.get(name);
    if (node && (await bootsFromNetwork(store, node.profile))) return;
    await steps.flipToDisk(name);
  } catch (e) {
    const fe = toFleetError(e);
    await store.events
      .append({ node: name, kind: K.cleanupFailed, actor: who.actor, cause: who.cause, details: { step: STEP.flipToDisk, reason: fe.message } })
      .catch(() => undefined);
  }
}

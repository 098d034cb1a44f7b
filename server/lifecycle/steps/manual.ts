/**
 * Nodes without a BMC (fleet.yaml `bmc: none`, or no bmc block: the same,
 * docs/decisions/0011-adoption-without-bmc.md): power is manual. The BMC
 * steps do not call the BMC for them at all: arm-pxe only arms the node,
 * power-cycle records that a person must PXE-boot it and waits for its
 * netboot, flip-to-disk moves on (the node is disarmed, so any later
 * netboot is answered "boot the local disk" anyway).
 *
 * Whether a node's power is manual is the Steps' to say (BmcSteps reads the
 * store: no BMC declared); a Steps double without `powerIsManual` drives
 * every node as if it had a BMC.
 */
import type { Steps } from '../steps.js';

/** Whether the node's power is manual (no BMC). */
export async function powerIsManual(steps: Steps, node: string): Promise<boolean> {
  return (await steps.powerIsManual?.(node)) === true;
}

/** What a reinstall of a node without a BMC tells the operator (the reinstall answer and the step's event). */
export function manualPowerNote(node: string): string {
  return `power is manual (no BMC): PXE-boot ${node} by hand; waiting for its netboot`;
}

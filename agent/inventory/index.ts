/**
 * Hardware inventory of the node: `collectRaw()` gathers (I/O, parallel,
 * time-limited), `toInventory(raw)` maps (pure), `diffInventory(a, b)`
 * compares (pure). `collectInventory()` is the two first in one call.
 */
import { collectRaw, type CollectOptions } from './collect.js';
import { toInventory } from './map.js';
import type { Inventory } from '../../common/inventory/types.js';

export { collectRaw, parseProbeTimeout, probeBudgets, retryTimeout, NVIDIA_SMI_ARGS, PROBE_BUDGETS_MS, PROBE_NAMES, type CollectOptions, type ProbeName, type ProbeTimeout, type SiApi } from './collect.js';
export { toInventory, failedSections, parseNvidiaSmiCsv, normalizePciBus, VIRTUAL_NIC, VIRTUAL_BLOCK } from './map.js';
export { diffInventory } from '../../common/inventory/diff.js';
export type * from '../../common/inventory/types.js';

/** Collects and maps in one call. Never throws; failed probes make their sections `unknown`. */
export async function collectInventory(opts: CollectOptions = {}): Promise<Inventory> {
  return toInventory(await collectRaw(opts));
}

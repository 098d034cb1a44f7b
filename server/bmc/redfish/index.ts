/** Redfish provider of the BmcDriver contract (ADR 0003). */
export { RedfishClient, type RedfishClientOptions, type RedfishAuthMode, type RedfishResponse } from './client.js';
export { DEFAULT_POWER_WAIT_MS, RedfishDriver, withRedfishDriver, type RedfishDriverOptions, type RedfishInventory, type BootSetResult } from './driver.js';
export {
  checkStoredBoot,
  chooseSystem,
  decideAuth,
  decideBootPatch,
  planPower,
  type AuthDecision,
  type BootFollowUp,
  type BootPatchDecision,
  type BootReadBack,
  type BootRequest,
  type ObservedQuirk,
  type PowerPlan,
  type PowerVerb,
  type StoredBoot,
} from './decide.js';
export { DEFAULT_QUIRK_TABLE, NO_QUIRKS, resolveQuirks, type QuirkRule, type RedfishQuirks, type ResolvedQuirks } from './quirks.js';
export { certificateFingerprint, normaliseFingerprint, type RedfishTlsOptions } from './tls.js';
export type { EthernetInfo, MemoryInfo, ProcessorInfo } from './parse.js';

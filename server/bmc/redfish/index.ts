/** Redfish provider of the BmcDriver contract (ADR 0003). */
export { RedfishClient, type RedfishClientOptions, type RedfishAuthMode, type RedfishResponse } from './client.js';
export { RedfishDriver, withRedfishDriver, type RedfishDriverOptions, type RedfishInventory, type BootSetResult } from './driver.js';
export { decideBootPatch, planPower, type BootFollowUp, type BootPatchDecision, type BootRequest, type PowerPlan, type PowerVerb } from './decide.js';
export { DEFAULT_QUIRK_TABLE, NO_QUIRKS, resolveQuirks, type QuirkRule, type RedfishQuirks, type ResolvedQuirks } from './quirks.js';
export { certificateFingerprint, normaliseFingerprint, type RedfishTlsOptions } from './tls.js';
export type { EthernetInfo, MemoryInfo, ProcessorInfo } from './parse.js';

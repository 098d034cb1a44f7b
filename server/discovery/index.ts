/**
 * server/discovery: naming rules and policy for discovered machines
 * (fleet.yaml `discovery:`, docs/discovery.md).
 *
 *   rules.ts    matchRule(rule, facts): match / no (why) / unknown (which fact is missing)   pure
 *   plan.ts     planDiscovery(rules, machines, taken): names, IPs, BMCs, and why not      pure
 *   facts.ts    the plan's inputs from store records (factsOf, takenBy)                   pure
 *   serials.ts  a serials file's lines                                                      pure
 *   service.ts  currentPlan, acceptMachines, rejectMachines                               I/O shell
 *   auto.ts     policy auto: accept planned machines when they are seen                   I/O shell
 */
export * from './types.js';
export { matchRule, globRegExp, serialKey } from './rules.js';
export { planDiscovery, autoAcceptable, byFirstSeen } from './plan.js';
export { factsOf, candidateOf, candidatesOf, bmcOwners, takenBy } from './facts.js';
export { parseSerialsFile, MAX_SERIALS_FILE_BYTES } from './serials.js';
export { currentPlan, acceptMachines, rejectMachines, unrejectMachines, type DiscoveryDeps, type CurrentPlan, type AcceptRequest, type AcceptResult, type AcceptedMachine, type RejectedResult } from './service.js';
export { AutoAccept, AUTO_ACTOR, type AutoAcceptLogger } from './auto.js';

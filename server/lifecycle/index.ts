/**
 * server/lifecycle: the node state machine as data, a pure next(), and the
 * conductor that runs steps, applies transitions and recovers after a
 * restart (its recovery rules as data too, with a pure recoveryFor()).
 * See docs/lifecycle.md.
 */
export { S, E, STEP, RESTING_STATES, TRANSIENT_STATES, INSTALL_STATES, POST_INSTALL_STATES, ALL_STATES, ALL_EVENTS, REINSTALL_PATH, LIFECYCLE_EVENT_KINDS, BOOT_LOOP_SUSPECT, isLifecycleState, isLifecycleEvent, isTransient, isResting } from './states.js';
export type { LifecycleState, LifecycleEvent, StepName } from './states.js';
export { STATE_SPECS, TRANSITIONS, next, tryNext, eventsFrom, stateSpec, checkTable } from './table.js';
export type { StateSpec, Transition } from './table.js';
export { defaultLifecycleSettings, resolveLifecycleSettings, parseLifecycleConfig, parseDurationSeconds, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_MS } from './settings.js';
export type { LifecycleSettings, LifecycleIssue } from './settings.js';
export { FACT, FACT_KINDS, FACT_RULES, eventForFact, isFactKind, ignoredEverywhere, checkFactRules, installFailureReason, applyFailureReason } from './facts.js';
export { createRecorder } from './record.js';
export type { Fact, FactRecorder, FactListener } from './record.js';
export type { FactKind, FactRule, Translation, BootAssessment, FirmwareVia } from './facts.js';
export { BmcSteps } from './steps.js';
export type { Steps, BmcStepsOptions } from './steps.js';
export { Conductor, TOKEN_REVOKING_EVENTS } from './conductor.js';
export { RECOVERY_RULES, recoveryFor, stepFacts, checkRecoveryTable } from './recovery-table.js';
export type { RecoveryRule, RecoveryAction, RecoveryFacts, RecoveryDecision, StepLog } from './recovery-table.js';
export { settleDoubtfulCycle } from './steps/index.js';
export type { DoubtfulCycle } from './steps/index.js';
export type { ConductorOptions, ConductorLogger, NodeActionResult, SignalResult, RecoveryReport, ReinstallOptions } from './conductor.js';
export { nodeStatus, nodeStatuses } from './status.js';
export type { NodeStatus } from './status.js';
export { renderStateTableMarkdown, renderFactTableMarkdown, syncLifecycleDoc, generatedSection, DOC_BEGIN, DOC_END, FACTS_BEGIN, RECOVERY_BEGIN, renderRecoveryTableMarkdown } from './doc.js';

/**
 * Former name of the fact rules (facts.ts), kept while the conductor's split
 * lands; new code imports facts.ts.
 */
export {
  FACT as SIGNAL,
  FACT_KINDS as SIGNAL_KINDS,
  eventForFact as eventForSignal,
  isFactKind as isSignalKind,
  installFailureReason,
  applyFailureReason,
} from './facts.js';
export type { FactKind as SignalKind, Translation } from './facts.js';

/** server/apply: `fleet apply` — plan (pure), format, execute (through the store). */
export { planApply, isEmptyPlan, stateBasis } from './plan.js';
export type {
  ApplyPlan,
  CurrentState,
  SecretDigests,
  Secrets,
  CredentialTarget,
  CredentialChange,
  ProfileChange,
  NodeChange,
  PlanIssue,
} from './plan.js';
export { formatPlan } from './format.js';
export { executeApply, loadCurrentState, digestSecrets, applySpec } from './execute.js';
export type { ApplyResult } from './execute.js';

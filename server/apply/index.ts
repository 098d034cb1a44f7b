/** server/apply: `fleet apply` — plan (pure), format, execute (through the store). */
export { planApply, isEmptyPlan, stateBasis, holdReasons, REMOVABLE_STATES } from './plan.js';
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
  HeldNode,
  NodeMeta,
  PlanOptions,
} from './plan.js';
export { formatPlan } from './format.js';
export { executeApply, loadCurrentState, digestSecrets, applySpec, heldError } from './execute.js';
export type { ApplyResult, ApplySpecOptions } from './execute.js';

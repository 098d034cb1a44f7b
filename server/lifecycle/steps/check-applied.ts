/**
 * Step check-applied (configuring): the agent's last apply report of this
 * run decides, as its fact would (complete, or hold when the inventory falls
 * short of the profile's expect); none yet is a wait (the report's signal
 * moves the node).
 * Reads the store only.
 */
import { runStart } from '../history.js';
import { applyFailureReason, eventForFact, FACT } from '../facts.js';
import { E, S, STEP } from '../states.js';
import type { StepDef } from './types.js';

const step = STEP.checkApplied;

export const checkApplied: StepDef = {
  name: step,
  async run(ctx, rec) {
    const start = await runStart(ctx.store, rec.name);
    const [last] = await ctx.store.events.newest({ node: rec.name, kinds: [FACT.agentApplied, FACT.agentApplyFailed], afterId: start?.id ?? 0 });
    if (!last) return { kind: 'wait' };
    const d = (last.details ?? {}) as Record<string, unknown>;
    // Every role applied, but the report's inventory falls short of the profile's expect: held.
    const t = last.kind === FACT.agentApplied ? eventForFact(S.configuring, last.kind, d) : undefined;
    if (t && 'event' in t && t.event === E.hold) return { kind: 'event', event: E.hold, details: t.details };
    if (last.kind === FACT.agentApplied) return { kind: 'event', event: E.complete, details: { step, ...(d.version !== undefined ? { version: d.version } : {}) } };
    return { kind: 'event', event: E.fail, details: { step: 'configure', reason: applyFailureReason(d) } };
  },
};

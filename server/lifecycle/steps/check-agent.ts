/** Step check-agent (first-boot): the node's agent enrolled during this install, not before it. Reads the store only. */
import { runStart } from '../history.js';
import { E, STEP } from '../states.js';
import type { StepDef } from './types.js';

const step = STEP.checkAgent;

export const checkAgent: StepDef = {
  name: step,
  async run(ctx, rec) {
    const agent = await ctx.store.agents.get(rec.name);
    const start = await runStart(ctx.store, rec.name);
    if (!agent) return { kind: 'event', event: E.fail, details: { step, reason: 'no agent is enrolled for this node (the kickstart %post enrols it)' } };
    if (start && agent.enrolledAt < start.time) {
      return { kind: 'event', event: E.fail, details: { step, reason: `the agent did not enrol during this install (last enrolment ${agent.enrolledAt})` } };
    }
    return { kind: 'event', event: E.configure, details: { step, enrolledAt: agent.enrolledAt } };
  },
};

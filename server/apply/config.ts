/**
 * Applying a parsed fleet.yaml with the secrets its credential sets name:
 * shared by `fleet server --config` (at start) and POST /api/v1/apply.
 */
import { isEmptyPlan, type ApplyPlan, type Secrets } from './plan.js';
import { applySpec, type ApplySpecOptions } from './execute.js';
import { FleetError } from '../../common/errors.js';
import type { ApplyResponse } from '../../common/api/schemas.js';
import type { ClusterSpec } from '../model.js';
import type { Store } from '../store/index.js';

export async function applyConfig(
  store: Store,
  spec: ClusterSpec,
  secrets: Record<string, string>,
  opts: Omit<ApplySpecOptions, 'dryRun'> & { dryRun: boolean },
): Promise<ApplyResponse> {
  const map: Secrets = new Map();
  const missing: string[] = [];
  for (const cred of spec.credentials) {
    const secret = secrets[cred.name];
    if (typeof secret !== 'string' || secret === '') missing.push(cred.name);
    else map.set(cred.name, { username: cred.username, secret });
  }
  if (missing.length > 0) {
    throw new FleetError('request.invalid', `no secret given for credentials: ${missing.join(', ')}`, { credentials: missing });
  }
  const extra = Object.keys(secrets).filter((k) => !spec.credentials.some((c) => c.name === k));
  if (extra.length > 0) {
    throw new FleetError('request.invalid', `secrets given for credentials not in the file: ${extra.join(', ')}`, { credentials: extra });
  }
  const { plan, text, result } = await applySpec(store, spec, map, opts);
  const changed = !isEmptyPlan(plan);
  return { changed, applied: result !== null && changed, text, plan: publicPlan(plan) };
}

/** The plan as the API returns it: names and field changes, no keyed secret digests, no basis. */
export function publicPlan(plan: ApplyPlan): ApplyResponse['plan'] {
  return {
    settings: { changed: plan.settings.changed, sections: plan.settings.sections },
    credentials: {
      added: plan.credentials.added.map((c) => c.name),
      changed: plan.credentials.changed.map((c) => ({
        name: c.name,
        secretChanged: c.secretChanged,
        ...(c.usernameFrom !== undefined ? { username: { from: c.usernameFrom, to: c.username } } : {}),
      })),
      removed: plan.credentials.removed,
    },
    profiles: {
      added: plan.profiles.added.map((p) => p.name),
      changed: plan.profiles.changed.map((p) => ({ name: p.name, fields: p.fields })),
      removed: plan.profiles.removed,
      kept: plan.profiles.kept.map((k) => k.name),
    },
    nodes: {
      added: plan.nodes.added.map((n) => n.name),
      changed: plan.nodes.changed.map((n) => ({ name: n.name, changes: n.changes })),
      removed: plan.nodes.removed.map((n) => n.name),
      unchanged: plan.nodes.unchanged.length,
      held: plan.nodes.held.map((h) => ({ name: h.name, state: h.state, pet: h.pet, reasons: h.reasons })),
      kept: plan.nodes.kept.map((k) => k.name),
      adopted: plan.nodes.adopted.map((a) => a.name),
    },
  };
}

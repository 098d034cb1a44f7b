/**
 * `fleet apply`, pure part: the difference between what the store holds and
 * what fleet.yaml declares. No I/O here: loadCurrentState (execute.ts) reads
 * the store, and secrets come in only as keyed digests.
 */
import crypto from 'node:crypto';
import { FleetError } from '../../common/errors.js';
import type { ClusterSpec, NodeSpec, ProfileSpec } from '../model.js';
import {
  canonicalJson,
  clusterSettingsOf,
  diffNodeSpec,
  hasChanges,
  normalizeNodeSpec,
  profileFieldChanges,
  settingsSectionChanges,
  type ClusterSettings,
  type NodeChanges,
} from '../store/index.js';

/** What the store holds, in spec form (no runtime state: that does not take part in apply). */
export interface CurrentState {
  nodes: NodeSpec[];
  profiles: ProfileSpec[];
  credentials: { name: string; username: string; secretDigest: string }[];
  /** Last applied cluster settings, null before the first apply. */
  settings: ClusterSettings | null;
}

/** Credential name -> keyed digest of the secret read for it (store.credentials.digest). */
export type SecretDigests = Map<string, { username: string; secretDigest: string }>;
/** Credential name -> the secret read for it (from passwordFile / passwordEnv). */
export type Secrets = Map<string, { username: string; secret: string }>;

export interface CredentialTarget {
  name: string;
  username: string;
  secretDigest: string;
}

export interface CredentialChange extends CredentialTarget {
  /** Present when the username changed. */
  usernameFrom?: string;
  secretChanged: boolean;
}

export interface ProfileChange {
  name: string;
  spec: ProfileSpec;
  /** Top-level fields that changed. */
  fields: string[];
}

export interface NodeChange {
  name: string;
  spec: NodeSpec;
  changes: NodeChanges;
}

export interface ApplyPlan {
  /** Digest of the CurrentState the plan was made from; executeApply refuses to run on another one. */
  basis: string;
  settings: { changed: boolean; sections: string[]; to: ClusterSettings };
  credentials: { added: CredentialTarget[]; changed: CredentialChange[]; removed: string[]; unchanged: string[] };
  profiles: { added: ProfileSpec[]; changed: ProfileChange[]; removed: string[]; unchanged: string[] };
  /** added/changed in fleet.yaml order; removed carry the spec they had. */
  nodes: { added: NodeSpec[]; changed: NodeChange[]; removed: NodeSpec[]; unchanged: string[] };
}

export interface PlanIssue {
  path: string;
  message: string;
}

export function isEmptyPlan(plan: ApplyPlan): boolean {
  const { settings, credentials: c, profiles: p, nodes: n } = plan;
  return (
    !settings.changed &&
    c.added.length + c.changed.length + c.removed.length === 0 &&
    p.added.length + p.changed.length + p.removed.length === 0 &&
    n.added.length + n.changed.length + n.removed.length === 0
  );
}

/** Stable digest of a CurrentState (order of its lists does not matter). */
export function stateBasis(current: CurrentState): string {
  const byName = <T extends { name: string }>(xs: T[]) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const doc = {
    nodes: byName(current.nodes.map(normalizeNodeSpec)),
    profiles: byName(current.profiles),
    credentials: byName(current.credentials),
    settings: current.settings,
  };
  return crypto.createHash('sha256').update(canonicalJson(doc)).digest('hex');
}

function validate(desired: ClusterSpec, secrets: SecretDigests): void {
  const issues: PlanIssue[] = [];
  const dupes = (kind: 'nodes' | 'profiles' | 'credentials', names: string[]) => {
    const seen = new Set<string>();
    names.forEach((n, i) => {
      if (seen.has(n)) issues.push({ path: `${kind}[${i}].name`, message: `${n} is declared twice` });
      seen.add(n);
    });
    return seen;
  };
  const profiles = dupes('profiles', desired.profiles.map((p) => p.name));
  const creds = dupes('credentials', desired.credentials.map((c) => c.name));
  dupes('nodes', desired.nodes.map((n) => n.name));
  desired.credentials.forEach((c, i) => {
    if (!secrets.has(c.name)) issues.push({ path: `credentials[${i}]`, message: `no secret was read for credential ${c.name}` });
  });
  const macs = new Map<string, string>();
  const ips = new Map<string, string>();
  const checked = new Set<string>();
  desired.nodes.forEach((raw, i) => {
    const n = normalizeNodeSpec(raw);
    // A second declaration of a name is reported once, as a duplicate, not again for its MACs and IP.
    if (checked.has(n.name)) return;
    checked.add(n.name);
    if (!profiles.has(n.profile)) issues.push({ path: `nodes[${i}].profile`, message: `${n.name}: unknown profile ${n.profile}` });
    if (n.bmc && !creds.has(n.bmc.credentials)) {
      issues.push({ path: `nodes[${i}].bmc.credentials`, message: `${n.name}: unknown credentials ${n.bmc.credentials}` });
    }
    for (const mac of n.macs) {
      const other = macs.get(mac);
      if (other !== undefined && other !== n.name) issues.push({ path: `nodes[${i}].macs`, message: `${n.name}: MAC ${mac} is also ${other}'s` });
      else if (other === n.name) issues.push({ path: `nodes[${i}].macs`, message: `${n.name}: MAC ${mac} is listed twice` });
      macs.set(mac, n.name);
    }
    if (n.ip !== undefined) {
      const other = ips.get(n.ip);
      if (other !== undefined) issues.push({ path: `nodes[${i}].ip`, message: `${n.name}: IP ${n.ip} is also ${other}'s` });
      ips.set(n.ip, n.name);
    }
  });
  if (issues.length > 0) {
    throw new FleetError('config.invalid', `the cluster spec cannot be applied (${issues.length} problem${issues.length === 1 ? '' : 's'})`, issues);
  }
}

/**
 * Plans `fleet apply`: what to add, change and remove so that the store
 * matches `desired`. Throws FleetError('config.invalid') listing every
 * dangling reference, duplicate, and credential without a secret.
 * The username of a credential comes from the spec; `secrets` gives digests.
 */
export function planApply(current: CurrentState, desired: ClusterSpec, secrets: SecretDigests): ApplyPlan {
  validate(desired, secrets);

  // Settings.
  const settingsTo = clusterSettingsOf(desired);
  const sections = settingsSectionChanges(current.settings, settingsTo);

  // Credentials.
  const curCreds = new Map(current.credentials.map((c) => [c.name, c]));
  const credentials: ApplyPlan['credentials'] = { added: [], changed: [], removed: [], unchanged: [] };
  for (const c of desired.credentials) {
    const target: CredentialTarget = { name: c.name, username: c.username, secretDigest: secrets.get(c.name)!.secretDigest };
    const cur = curCreds.get(c.name);
    if (!cur) {
      credentials.added.push(target);
      continue;
    }
    const secretChanged = cur.secretDigest !== target.secretDigest;
    if (cur.username === target.username && !secretChanged) {
      credentials.unchanged.push(c.name);
      continue;
    }
    credentials.changed.push({ ...target, ...(cur.username !== target.username ? { usernameFrom: cur.username } : {}), secretChanged });
  }
  const wantedCreds = new Set(desired.credentials.map((c) => c.name));
  credentials.removed = current.credentials.map((c) => c.name).filter((n) => !wantedCreds.has(n)).sort();

  // Profiles.
  const curProfiles = new Map(current.profiles.map((p) => [p.name, p]));
  const profiles: ApplyPlan['profiles'] = { added: [], changed: [], removed: [], unchanged: [] };
  for (const p of desired.profiles) {
    const cur = curProfiles.get(p.name);
    if (!cur) {
      profiles.added.push(p);
      continue;
    }
    const fields = profileFieldChanges(cur, p);
    if (fields.length === 0) profiles.unchanged.push(p.name);
    else profiles.changed.push({ name: p.name, spec: p, fields });
  }
  const wantedProfiles = new Set(desired.profiles.map((p) => p.name));
  profiles.removed = current.profiles.map((p) => p.name).filter((n) => !wantedProfiles.has(n)).sort();

  // Nodes.
  const curNodes = new Map(current.nodes.map((n) => [n.name, normalizeNodeSpec(n)]));
  const nodes: ApplyPlan['nodes'] = { added: [], changed: [], removed: [], unchanged: [] };
  for (const raw of desired.nodes) {
    const n = normalizeNodeSpec(raw);
    const cur = curNodes.get(n.name);
    if (!cur) {
      nodes.added.push(n);
      continue;
    }
    const changes = diffNodeSpec(cur, n);
    if (hasChanges(changes)) nodes.changed.push({ name: n.name, spec: n, changes });
    else nodes.unchanged.push(n.name);
  }
  const wantedNodes = new Set(desired.nodes.map((n) => n.name));
  nodes.removed = current.nodes.filter((n) => !wantedNodes.has(n.name)).map(normalizeNodeSpec);

  return {
    basis: stateBasis(current),
    settings: { changed: sections.length > 0, sections, to: settingsTo },
    credentials,
    profiles,
    nodes,
  };
}

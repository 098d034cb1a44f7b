/**
 * `fleet apply`, pure part: the difference between what the store holds and
 * what fleet.yaml declares. No I/O here: loadCurrentState (execute.ts) reads
 * the store, and secrets come in only as keyed digests.
 */
import crypto from 'node:crypto';
import { FleetError } from '../../common/errors.js';
import { RESTING_STATES } from '../lifecycle/states.js';
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
  type NodeOrigin,
} from '../store/index.js';

/** States in which a node rests (enrolled, ready, failed): apply may remove it without --prune. */
export const REMOVABLE_STATES: readonly string[] = RESTING_STATES;

/** What apply needs to know of a node besides its spec: where it came from and where it is in its lifecycle. */
export interface NodeMeta {
  origin: NodeOrigin;
  state: string;
}

/** What the store holds, in spec form (no runtime state: that does not take part in apply). */
export interface CurrentState {
  nodes: NodeSpec[];
  /** Per node name; a node without an entry counts as a resting `config` node. */
  meta?: Record<string, NodeMeta>;
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

/** A node fleet.yaml no longer declares that this plan does not remove without --prune. */
export interface HeldNode {
  name: string;
  state: string;
  pet: boolean;
  /** 'pet' and/or 'busy' (mid-operation: not enrolled, ready or failed). */
  reasons: ('pet' | 'busy')[];
}

export interface PlanOptions {
  /** Also remove pets and nodes that are mid-operation (`fleet apply --prune`). */
  prune?: boolean;
}

export interface ApplyPlan {
  /** Digest of the CurrentState the plan was made from; executeApply refuses to run on another one. */
  basis: string;
  /** Made with --prune: pets and busy nodes may be in nodes.removed. */
  prune: boolean;
  settings: { changed: boolean; sections: string[]; to: ClusterSettings };
  credentials: { added: CredentialTarget[]; changed: CredentialChange[]; removed: string[]; unchanged: string[] };
  /** kept: not in fleet.yaml but still used by a node that stays (an enrolled or held node). */
  profiles: { added: ProfileSpec[]; changed: ProfileChange[]; removed: string[]; unchanged: string[]; kept: { name: string; nodes: string[] }[] };
  /**
   * added/changed in fleet.yaml order; removed carry the spec they had.
   * held: declared nodes gone from fleet.yaml that are pets or mid-operation
   * (removed only with --prune). kept: nodes fleet.yaml never declared
   * (enrolled): apply leaves them alone. adopted: such nodes that fleet.yaml
   * now declares (their origin becomes config).
   */
  nodes: {
    added: NodeSpec[];
    changed: NodeChange[];
    removed: NodeSpec[];
    unchanged: string[];
    held: HeldNode[];
    kept: { name: string; origin: NodeOrigin }[];
    adopted: { name: string; from: NodeOrigin }[];
  };
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
    n.added.length + n.changed.length + n.removed.length + n.adopted.length === 0
  );
}

/** Why a node gone from fleet.yaml is not removed without --prune; empty: it may be removed. */
export function holdReasons(spec: Pick<NodeSpec, 'pet'>, state: string): HeldNode['reasons'] {
  const reasons: HeldNode['reasons'] = [];
  if (spec.pet) reasons.push('pet');
  if (!REMOVABLE_STATES.includes(state)) reasons.push('busy');
  return reasons;
}

/** Stable digest of a CurrentState (order of its lists does not matter). */
export function stateBasis(current: CurrentState): string {
  const byName = <T extends { name: string }>(xs: T[]) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const doc = {
    nodes: byName(current.nodes.map(normalizeNodeSpec)),
    // Origins decide what a plan may remove; states are re-checked when the plan runs.
    origins: Object.fromEntries(
      Object.entries(current.meta ?? {})
        .filter(([, m]) => m.origin !== 'config')
        .map(([name, m]) => [name, m.origin])
        .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0)),
    ),
    profiles: byName(current.profiles),
    credentials: byName(current.credentials),
    settings: current.settings,
  };
  return crypto.createHash('sha256').update(canonicalJson(doc)).digest('hex');
}

function validate(desired: ClusterSpec, secrets: SecretDigests, staying: NodeSpec[]): void {
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
  // Nodes that stay although fleet.yaml does not declare them (enrolled, held) keep their MACs and IPs.
  desired.nodes.forEach((raw, i) => {
    const n = normalizeNodeSpec(raw);
    for (const other of staying) {
      if (other.name === n.name) continue;
      for (const mac of n.macs) {
        if (other.macs.includes(mac)) issues.push({ path: `nodes[${i}].macs`, message: `${n.name}: MAC ${mac} belongs to node ${other.name}, which stays (not declared here)` });
      }
      if (n.ip !== undefined && other.ip === n.ip) issues.push({ path: `nodes[${i}].ip`, message: `${n.name}: IP ${n.ip} belongs to node ${other.name}, which stays (not declared here)` });
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
export function planApply(current: CurrentState, desired: ClusterSpec, secrets: SecretDigests, opts: PlanOptions = {}): ApplyPlan {
  const prune = opts.prune === true;
  const metaOf = (name: string): NodeMeta => current.meta?.[name] ?? { origin: 'config', state: 'enrolled' };
  const wantedNodes = new Set(desired.nodes.map((n) => n.name));
  // Nodes fleet.yaml does not declare: removed, held (pets, busy) or kept (not from fleet.yaml).
  const gone = current.nodes.filter((n) => !wantedNodes.has(n.name)).map(normalizeNodeSpec);
  const kept = gone.filter((n) => metaOf(n.name).origin !== 'config');
  const held: HeldNode[] = [];
  const removed: NodeSpec[] = [];
  for (const n of gone) {
    const meta = metaOf(n.name);
    if (meta.origin !== 'config') continue;
    const reasons = holdReasons(n, meta.state);
    if (reasons.length > 0 && !prune) held.push({ name: n.name, state: meta.state, pet: n.pet, reasons });
    else removed.push(n);
  }
  const heldNames = new Set(held.map((h) => h.name));
  const staying = [...kept, ...gone.filter((n) => heldNames.has(n.name))];
  validate(desired, secrets, staying);

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
  // A credential set still used by a node that stays is not removed.
  const credsInUse = new Set(staying.map((n) => n.bmc?.credentials).filter((c): c is string => c !== undefined));
  credentials.removed = current.credentials.map((c) => c.name).filter((n) => !wantedCreds.has(n) && !credsInUse.has(n)).sort();

  // Profiles.
  const curProfiles = new Map(current.profiles.map((p) => [p.name, p]));
  const profiles: ApplyPlan['profiles'] = { added: [], changed: [], removed: [], unchanged: [], kept: [] };
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
  for (const name of current.profiles.map((p) => p.name).filter((n) => !wantedProfiles.has(n)).sort()) {
    const users = staying.filter((n) => n.profile === name).map((n) => n.name);
    if (users.length > 0) profiles.kept.push({ name, nodes: users });
    else profiles.removed.push(name);
  }

  // Nodes.
  const curNodes = new Map(current.nodes.map((n) => [n.name, normalizeNodeSpec(n)]));
  const nodes: ApplyPlan['nodes'] = {
    added: [],
    changed: [],
    removed,
    unchanged: [],
    held,
    kept: kept.map((n) => ({ name: n.name, origin: metaOf(n.name).origin })),
    adopted: [],
  };
  for (const raw of desired.nodes) {
    const n = normalizeNodeSpec(raw);
    const cur = curNodes.get(n.name);
    if (!cur) {
      nodes.added.push(n);
      continue;
    }
    const origin = metaOf(n.name).origin;
    if (origin !== 'config') nodes.adopted.push({ name: n.name, from: origin });
    const changes = diffNodeSpec(cur, n);
    if (hasChanges(changes)) nodes.changed.push({ name: n.name, spec: n, changes });
    else nodes.unchanged.push(n.name);
  }
  return {
    basis: stateBasis(current),
    prune,
    settings: { changed: sections.length > 0, sections, to: settingsTo },
    credentials,
    profiles,
    nodes,
  };
}

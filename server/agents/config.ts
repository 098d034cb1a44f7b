/**
 * What GetConfig answers: a node's roles and their settings, from its
 * profile, plus the cluster facts the roles need (hosts, chrony), versioned.
 * `nodeConfig` and `clusterFactsOf` are pure; `configForNode` reads the store;
 * `createConfigService` answers GetConfig and Heartbeat.
 *
 * Encoding (docs/decisions/0004): the settings travel as one JSON object
 * (`roles_json`, shaped as RolesSpec in common/model.ts, schema
 * "fleet.roles/v1") rather than as proto messages, so that the role settings
 * have one schema (fleet.yaml's) instead of two kept in step. The cluster
 * facts travel beside them (`cluster_json`). The version is the SHA-256 of
 * the canonical JSON of schema + roles + cluster facts: equal versions, equal
 * configs, whatever the profile is called — and a node added to the cluster
 * (a new /etc/hosts line) is a new version for every node.
 *
 * Slurm (docs/slurm.md): a node whose profile has the slurm role also gets
 * `slurm: {conf, mungeKeyB64}` in its cluster facts — slurm.conf derived from
 * the cluster and the compute nodes' newest inventory reports, and the
 * cluster's munge key (generated once, kept sealed in the store). Only such
 * nodes get it, only here (GetConfig over the mTLS agent channel); a new
 * inventory that changes slurm.conf, or a new key, is a new version.
 * Whatever shows a config to people redacts the key (redactSlurmSecrets).
 */
import crypto from 'node:crypto';
import type { GetConfigRequest, GetConfigResponse, HeartbeatRequest, HeartbeatResponse } from '../../proto/gen/fleet/v1/agent.js';
import type { ClusterInfo, ProfileSpec, RolesSpec } from '../model.js';
import { FleetError, isFleetError } from '../../common/errors.js';
import type { Store } from '../store/index.js';
import { readPublicKey } from '../repo/store.js';
import { canonicalJson } from '../store/json.js';
import { MUNGE_KEY_SECRET, deriveSlurmConf, generateMungeKeyB64, type SlurmDerivation, type SlurmFactsJson } from '../slurm/index.js';
import { short } from './bounds.js';
import type { AgentDeps } from './types.js';

export const ROLES_SCHEMA = 'fleet.roles/v1';

/**
 * Apply order, as the agent applies them (agent/roles/types.ts ROLE_ORDER):
 * repositories before packages that need them, users before NFS homes are
 * used, an NFS server's exports before NFS mounts (a node may mount what it
 * exports), slurm after both (jobs run as cluster users in shared homes),
 * drivers last (the GPU role may want a reboot).
 */
export const ROLE_ORDER: readonly (keyof RolesSpec)[] = ['repos', 'hosts', 'chrony', 'users', 'nfsServer', 'nfs', 'slurm', 'infiniband', 'gpu'];

/** One /etc/hosts entry. */
export interface ClusterHost {
  /** Short name, e.g. valkyrie01. */
  name: string;
  address: string;
  /** name.domain */
  fqdn: string;
}

/**
 * The cluster facts in `cluster_json`; the agent reads them as its
 * ClusterFacts (agent/roles/types.ts), which this shape extends.
 */
export interface ClusterFactsJson {
  domain: string;
  managementAddress: string;
  managementName?: string;
  /** The management node (when it has a name) first, then every node with an address, in name order. */
  hosts: ClusterHost[];
  /**
   * The server's apt repository key (base64 of the binary public keyring,
   * DATA/repo/debian/fleet-archive-keyring.gpg), when the repository has one:
   * the repos role writes it for `key: fleet` (docs/repo.md). Public material.
   */
  repoKey?: string;
  /** Only for a node whose profile has the slurm role (and a cluster with exactly one controller node). Holds a secret. */
  slurm?: SlurmFactsJson;
}

export interface NodeConfig {
  version: string;
  profile: string;
  /** Roles present, in apply order (unknown ones last, sorted). */
  roles: string[];
  rolesJson: string;
  schema: string;
  /** JSON of ClusterFactsJson, or '' when the cluster settings are unknown (before the first apply). */
  clusterJson: string;
}

/** The cluster facts from the cluster info and the nodes (those without an address are left out). */
export function clusterFactsOf(
  cluster: Pick<ClusterInfo, 'domain' | 'managementAddress' | 'managementName'>,
  nodes: readonly { name: string; ip?: string | null }[],
  repoKey?: Buffer,
): ClusterFactsJson {
  const fqdn = (n: string) => (cluster.domain ? `${n}.${cluster.domain}` : n);
  const hosts: ClusterHost[] = [];
  if (cluster.managementName) hosts.push({ name: cluster.managementName, address: cluster.managementAddress, fqdn: fqdn(cluster.managementName) });
  for (const n of nodes) if (n.ip) hosts.push({ name: n.name, address: n.ip, fqdn: fqdn(n.name) });
  return {
    domain: cluster.domain,
    managementAddress: cluster.managementAddress,
    ...(cluster.managementName ? { managementName: cluster.managementName } : {}),
    hosts,
    ...(repoKey && repoKey.length > 0 ? { repoKey: repoKey.toString('base64') } : {}),
  };
}

export function nodeConfig(profile: Pick<ProfileSpec, 'name' | 'roles'>, cluster?: ClusterFactsJson | null): NodeConfig {
  const roles = (profile.roles ?? {}) as Record<string, unknown>;
  const present = Object.keys(roles).filter((k) => roles[k] !== undefined && roles[k] !== null);
  const known = ROLE_ORDER.filter((r) => present.includes(r));
  const unknown = present.filter((r) => !(ROLE_ORDER as readonly string[]).includes(r)).sort();
  const rolesJson = canonicalJson(roles);
  // Without cluster facts the hashed object is the one of the first contract, so versions stay comparable.
  const hashed = cluster ? { schema: ROLES_SCHEMA, roles, cluster } : { schema: ROLES_SCHEMA, roles };
  const version = 'sha256:' + crypto.createHash('sha256').update(canonicalJson(hashed)).digest('hex');
  return { version, profile: profile.name, roles: [...known, ...unknown], rolesJson, schema: ROLES_SCHEMA, clusterJson: cluster ? canonicalJson(cluster) : '' };
}

/** The config of one node as GetConfig and Heartbeat answer it. */
export async function configForNode(store: Store, node: string): Promise<NodeConfig> {
  const rec = await store.nodes.require(node);
  const profile = await store.profiles.get(rec.profile);
  if (!profile) throw new FleetError('not_found', `node ${node}'s profile ${rec.profile} does not exist`, { node, profile: rec.profile });
  const settings = await store.settings.getCluster();
  // The repository key lives beside the database (DATA/repo, server/repo); an in-memory store has none.
  if (!settings?.cluster) return nodeConfig(profile, null);
  const repoKey = store.dataDir ? await readPublicKey(store.dataDir) : undefined;
  const nodes = await store.nodes.list();
  const cluster = clusterFactsOf(settings.cluster, nodes, repoKey);
  if (profile.roles?.slurm) {
    const slurm = await slurmFactsOf(store, nodes);
    if (slurm) cluster.slurm = slurm;
  }
  return nodeConfig(profile, cluster);
}

/**
 * slurm.conf and the munge key, or undefined when the cluster has no single
 * controller node (the agent's slurm role then fails saying so). The key is
 * generated and stored (sealed) the first time a slurm node asks.
 */
export async function slurmFactsOf(store: Store, nodes: readonly { name: string; profile: string; ip?: string | null }[]): Promise<SlurmFactsJson | undefined> {
  const profiles = await store.profiles.list();
  const slurmProfiles = profiles.filter((p) => p.roles?.slurm);
  const computeProfiles = new Set(slurmProfiles.filter((p) => p.roles.slurm!.role !== 'controller').map((p) => p.name));
  const computes = nodes.filter((n) => computeProfiles.has(n.profile)).map((n) => n.name);
  // Heartbeats ask for the version every few seconds: the inventories are read only when a digest (or the cluster) changed.
  const digests = await store.inventory.latestDigestsOf(computes);
  const key = canonicalJson({
    profiles: slurmProfiles.map((p) => [p.name, p.roles.slurm]),
    nodes: nodes.map((n) => [n.name, n.profile, n.ip ?? null]),
    digests: computes.map((n) => digests.get(n) ?? null),
  });
  let derived = slurmConfCache.get(store);
  if (derived?.key !== key) {
    const reports = await store.inventory.latestOf(computes);
    derived = { key, result: deriveSlurmConf(profiles, nodes, new Map([...reports].map(([name, r]) => [name, r.inventory]))) };
    slurmConfCache.set(store, derived);
  }
  if (!derived.result.ok) return undefined;
  const mungeKeyB64 = await store.secrets.getOrCreate(MUNGE_KEY_SECRET, generateMungeKeyB64, { actor: 'system', cause: 'slurm' });
  return { conf: derived.result.conf, mungeKeyB64 };
}

/** The last slurm.conf derived per store, with what it was derived from. */
const slurmConfCache = new WeakMap<Store, { key: string; result: SlurmDerivation }>();

export interface ConfigService {
  /** The node's config, or only `unchanged` when the agent already has this version. Marks the node seen. */
  getConfig(node: string, req: GetConfigRequest): Promise<GetConfigResponse>;
  /** Marks the node seen, notes its agent version; answers the server time and the config version ('' when the node has none). */
  heartbeat(node: string, req: HeartbeatRequest): Promise<HeartbeatResponse>;
}

export function createConfigService(deps: Pick<AgentDeps, 'store' | 'clock'>): ConfigService {
  const { store, clock } = deps;
  return {
    async getConfig(node, req) {
      const cfg = await configForNode(store, node);
      await store.nodes.markSeen(node);
      const unchanged = req.knownVersion !== '' && req.knownVersion === cfg.version;
      return {
        version: cfg.version,
        unchanged,
        profile: cfg.profile,
        roles: cfg.roles,
        rolesJson: unchanged ? '' : cfg.rolesJson,
        schema: cfg.schema,
        clusterJson: unchanged ? '' : cfg.clusterJson,
      };
    },
    async heartbeat(node, req) {
      await store.nodes.markSeen(node);
      if (req.agentVersion !== '') await store.agents.noteVersion(node, short(req.agentVersion, 64));
      let configVersion = '';
      try {
        configVersion = (await configForNode(store, node)).version;
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'not_found') throw e;
      }
      return { serverTimeMs: clock().getTime(), configVersion };
    },
  };
}

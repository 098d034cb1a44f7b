/**
 * The last configuration the server gave this node, kept in the state
 * directory (`config.json`, 0600) so that the agent can apply it at boot
 * while the server is away, and `fleet-agent plan` can show what applying it
 * would change without asking anyone.
 *
 * Also reads a configuration file given by hand (`plan --config FILE`):
 * the cache's own format, a GetConfig answer in its JSON form
 * (`{rolesJson, clusterJson, ...}`), or role settings (`{roles, cluster}`).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GetConfigResponse } from '../proto/gen/fleet/v1/agent.js';
import { writeFileAtomic } from '../common/atomic-write.js';
import { FleetError } from '../common/errors.js';
import type { RolesSpec } from '../common/model.js';
import type { ClusterFacts, RoleSettings } from './roles/types.js';

export const CONFIG_CACHE_FILE = 'config.json';
export const ROLES_SCHEMA = 'fleet.roles/v1';

export interface CachedConfig {
  /** Format of this file. */
  format: 1;
  /** The server's config version ("sha256:…"). */
  version: string;
  profile: string;
  /** Role names in apply order, as the server listed them. */
  roles: string[];
  schema: string;
  settings: RoleSettings;
  /** When the agent received it (its clock). */
  fetchedAt: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Cluster facts from their JSON; empty facts when there are none (a server without cluster settings yet). */
export function parseClusterFacts(json: unknown, what = 'cluster facts'): ClusterFacts {
  if (json === undefined || json === null || json === '') return { domain: '', managementAddress: '', hosts: [] };
  const v = typeof json === 'string' ? parseJson(json, what) : json;
  if (!isObj(v)) throw new FleetError('config.invalid', `${what} are not a JSON object`);
  const hostsIn = v.hosts ?? [];
  if (!Array.isArray(hostsIn)) throw new FleetError('config.invalid', `${what}: hosts is not a list`);
  const hosts = hostsIn.map((h, i) => {
    if (!isObj(h) || typeof h.name !== 'string' || typeof h.address !== 'string') throw new FleetError('config.invalid', `${what}: host ${i + 1} needs a name and an address`);
    return { name: h.name, address: h.address };
  });
  const str = (k: string): string => {
    const x = v[k] ?? '';
    if (typeof x !== 'string') throw new FleetError('config.invalid', `${what}: ${k} is not a string`);
    return x;
  };
  const managementName = str('managementName');
  const repoKey = str('repoKey');
  if (repoKey && !/^[A-Za-z0-9+/]+={0,2}$/.test(repoKey)) throw new FleetError('config.invalid', `${what}: repoKey is not base64`);
  return { domain: str('domain'), managementAddress: str('managementAddress'), ...(managementName ? { managementName } : {}), hosts, ...(repoKey ? { repoKey } : {}) };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new FleetError('config.invalid', `${what} are not valid JSON`);
  }
}

function parseRoles(json: unknown, what: string): RolesSpec {
  const v = typeof json === 'string' ? parseJson(json, what) : json;
  if (!isObj(v)) throw new FleetError('config.invalid', `${what} are not a JSON object`);
  return v as RolesSpec;
}

/** A GetConfig answer (not `unchanged`) as a cache entry. Throws FleetError config.invalid on a schema or JSON it cannot read. */
export function configFromResponse(res: Pick<GetConfigResponse, 'version' | 'profile' | 'roles' | 'rolesJson' | 'schema' | 'clusterJson'>, now = new Date()): CachedConfig {
  if (res.schema !== ROLES_SCHEMA) throw new FleetError('config.invalid', `the server sent role settings of schema ${JSON.stringify(res.schema)}; this agent reads ${ROLES_SCHEMA}`);
  return {
    format: 1,
    version: res.version,
    profile: res.profile,
    roles: [...res.roles],
    schema: res.schema,
    settings: { roles: parseRoles(res.rolesJson, 'the role settings'), cluster: parseClusterFacts(res.clusterJson) },
    fetchedAt: now.toISOString(),
  };
}

/** Writes config.json (0600, atomically) in the state directory. */
export async function saveCachedConfig(dir: string, cfg: CachedConfig): Promise<void> {
  const file = path.join(dir, CONFIG_CACHE_FILE);
  try {
    await writeFileAtomic(file, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  } catch (e) {
    throw new FleetError('config.unreadable', `cannot write ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** Any of the accepted shapes → a cache entry. */
export function configFromJson(v: unknown, what: string): CachedConfig {
  if (!isObj(v)) throw new FleetError('config.invalid', `${what} is not a JSON object`);
  if (v.format === 1 && isObj(v.settings)) {
    return {
      format: 1,
      version: typeof v.version === 'string' ? v.version : '',
      profile: typeof v.profile === 'string' ? v.profile : '',
      roles: Array.isArray(v.roles) ? v.roles.filter((r): r is string => typeof r === 'string') : [],
      schema: typeof v.schema === 'string' ? v.schema : ROLES_SCHEMA,
      settings: { roles: parseRoles(v.settings.roles, `${what}: the role settings`), cluster: parseClusterFacts(v.settings.cluster, `${what}: the cluster facts`) },
      fetchedAt: typeof v.fetchedAt === 'string' ? v.fetchedAt : '',
    };
  }
  if (typeof v.rolesJson === 'string') {
    return configFromResponse({
      version: typeof v.version === 'string' ? v.version : '',
      profile: typeof v.profile === 'string' ? v.profile : '',
      roles: Array.isArray(v.roles) ? v.roles.filter((r): r is string => typeof r === 'string') : [],
      rolesJson: v.rolesJson,
      schema: typeof v.schema === 'string' ? v.schema : ROLES_SCHEMA,
      clusterJson: typeof v.clusterJson === 'string' ? v.clusterJson : '',
    });
  }
  if (isObj(v.roles)) {
    return {
      format: 1,
      version: '',
      profile: '',
      roles: Object.keys(v.roles),
      schema: ROLES_SCHEMA,
      settings: { roles: v.roles as RolesSpec, cluster: parseClusterFacts(v.cluster, `${what}: the cluster facts`) },
      fetchedAt: '',
    };
  }
  throw new FleetError('config.invalid', `${what} is neither an agent config cache, a GetConfig answer, nor {roles, cluster}`);
}

/** Reads a configuration JSON file (any accepted shape). */
export async function readConfigFile(file: string): Promise<CachedConfig> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new FleetError('config.unreadable', `cannot read ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FleetError('config.invalid', `${file} is not JSON`);
  }
  return configFromJson(v, file);
}

/** The cached config, or null when there is none. Throws FleetError when the file exists but cannot be read. */
export async function loadCachedConfig(dir: string): Promise<CachedConfig | null> {
  const file = path.join(dir, CONFIG_CACHE_FILE);
  try {
    await fs.promises.access(file);
  } catch {
    return null;
  }
  return readConfigFile(file);
}

/**
 * What GetConfig answers: a node's roles and their settings, from its
 * profile, versioned. Pure.
 *
 * Encoding (docs/decisions/0004): the settings travel as one JSON object
 * (`roles_json`, shaped as RolesSpec in server/model.ts, schema
 * "fleet.roles/v1") rather than as proto messages, so that the role settings
 * have one schema (fleet.yaml's) instead of two kept in step. The version is
 * the SHA-256 of the canonical JSON of schema + roles: equal versions, equal
 * configs, whatever the profile is called.
 */
import crypto from 'node:crypto';
import type { ProfileSpec, RolesSpec } from '../model.js';
import { canonicalJson } from '../store/json.js';

export const ROLES_SCHEMA = 'fleet.roles/v1';

/** Apply order: repositories before packages that need them, users before NFS homes are used, drivers last. */
export const ROLE_ORDER: readonly (keyof RolesSpec)[] = ['repos', 'hosts', 'chrony', 'users', 'nfs', 'gpu', 'infiniband'];

export interface NodeConfig {
  version: string;
  profile: string;
  /** Roles present, in apply order (unknown ones last, sorted). */
  roles: string[];
  rolesJson: string;
  schema: string;
}

export function nodeConfig(profile: Pick<ProfileSpec, 'name' | 'roles'>): NodeConfig {
  const roles = (profile.roles ?? {}) as Record<string, unknown>;
  const present = Object.keys(roles).filter((k) => roles[k] !== undefined && roles[k] !== null);
  const known = ROLE_ORDER.filter((r) => present.includes(r));
  const unknown = present.filter((r) => !(ROLE_ORDER as readonly string[]).includes(r)).sort();
  const rolesJson = canonicalJson(roles);
  const version = 'sha256:' + crypto.createHash('sha256').update(canonicalJson({ schema: ROLES_SCHEMA, roles })).digest('hex');
  return { version, profile: profile.name, roles: [...known, ...unknown], rolesJson, schema: ROLES_SCHEMA };
}

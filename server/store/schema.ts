/**
 * Kysely table types: the database as the repositories see it.
 *
 * Conventions (kept portable to PostgreSQL, see docs/decisions/0001):
 * - times are ISO-8601 UTC strings with milliseconds (`2024-05-01T10:00:00.000Z`),
 *   which sort lexicographically in both engines;
 * - booleans are INTEGER 0/1;
 * - JSON documents are TEXT (jsonb is an optional later optimisation);
 * - the only binary column is credentials.secret_box (bytea on PostgreSQL).
 */
import type { Generated } from 'kysely';

export interface SettingsTable {
  key: string;
  /** JSON document. */
  value: string;
  updated_at: string;
  /** 015: bumped by every change of the value (readers cache by it). */
  version: Generated<number>;
}

export interface ProfilesTable {
  name: string;
  /** ProfileSpec as JSON. */
  spec: string;
  created_at: string;
  updated_at: string;
}

export interface CredentialsTable {
  name: string;
  username: string;
  /** Which secret key sealed the box (derived from the key, not the key). */
  key_id: string;
  /** version(1) | nonce(12) | GCM tag(16) | ciphertext. */
  secret_box: Buffer;
  /** HMAC-SHA256 of the secret under a key derived from the secret key: change detection without the plaintext. */
  secret_digest: string;
  created_at: string;
  updated_at: string;
}

export interface NodesTable {
  name: string;
  profile: string;
  ip: string | null;
  pet: number;
  state: Generated<string>;
  state_since: string;
  /** When the current state times out (set by the conductor); null: no timer. */
  state_deadline: string | null;
  armed: Generated<number>;
  last_seen: string | null;
  /** Bumped by every write to the node row except last_seen: optimistic concurrency. */
  generation: Generated<number>;
  /** Where the node came from (NodeOrigin): only 'config' nodes are removed by apply (migration 004). */
  origin: Generated<string>;
  created_at: string;
  updated_at: string;
}

export interface InterfacesTable {
  mac: string;
  node: string;
  is_primary: number;
  position: number;
}

export interface BmcEndpointsTable {
  node: string;
  address: string;
  port: number;
  protocol: string;
  credentials: string;
  tls_fingerprint: string | null;
  last_provider: string | null;
  last_answer_at: string | null;
  /** 003_bmc_system: Redfish ComputerSystem Id, auth mode, power wait (seconds); NULL: default. */
  system: string | null;
  auth: string | null;
  power_wait: number | null;
  /** 013_bmc_rotation: the per-node credential set after fleet bmc rotate (rotated.NODE); NULL: `credentials`. */
  rotated_credentials: Generated<string | null>;
}

export interface EventsTable {
  id: Generated<number>;
  time: string;
  node: string | null;
  kind: string;
  from_state: string | null;
  to_state: string | null;
  actor: string;
  cause: string | null;
  /** JSON document or null. */
  details: string | null;
}

export interface DiscoveredTable {
  mac: string;
  ip: string | null;
  hostname: string | null;
  vendor_class: string | null;
  arch: string | null;
  pxe: number;
  first_seen: string;
  last_seen: string;
  /** When an operator rejected the machine (fleet discover --reject; migration 008): discovery plans skip it. */
  rejected_at: string | null;
  rejected_by: string | null;
  /** The last inspection report (server/discovery/inspection.ts Inspection, JSON; migration 010) and when it came. */
  inspection: string | null;
  inspected_at: string | null;
  /** SHA-256 of the inspect token of the machine's last inspect script, its expiry, and when a report used it. */
  inspect_token: string | null;
  inspect_token_expires_at: string | null;
  inspect_token_used_at: string | null;
}

export interface TokensTable {
  /** SHA-256 (hex) of the token; the plaintext is stored only sealed (below). */
  hash: string;
  node: string;
  purpose: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** The plaintext sealed with the data dir's key (AES-256-GCM, bound to the hash); null for tokens of older servers. */
  sealed: Buffer | null;
  /** Key id of the key that sealed it. */
  key_id: string | null;
  /** When the token was revoked (install-finished, cancel, reinstall, superseded), and why. */
  revoked_at: string | null;
  revoked_reason: string | null;
  /** Source address and time of the token's last use (kickstart fetch, callback, enrolment). */
  last_ip: string | null;
  last_used_at: string | null;
}

export interface LocksTable {
  node: string;
  owner: string;
  acquired_at: string;
  expires_at: string;
}

/** Cluster secrets fleet generates itself (migration 007), e.g. the munge key: sealed like BMC secrets, never returned by the API. */
export interface SecretsTable {
  /** e.g. slurm.munge-key */
  name: string;
  /** Key id of the key that sealed it. */
  key_id: string;
  /** AES-256-GCM box (crypto.ts), bound to the name. */
  box: Buffer;
  created_at: string;
  updated_at: string;
}

/** API users (migration 011). */
export interface UsersTable {
  name: string;
  /** read-only | operator | admin (server/auth/roles.ts) */
  role: string;
  disabled: number;
  created_at: string;
  updated_at: string;
}

/** API tokens of users (migration 011): the SHA-256 of each token only, never the token. */
export interface UserTokensTable {
  /** SHA-256 of the token, hex. */
  hash: string;
  /** The first 8 hex digits of the hash: looked up by, shown in listings and events. */
  id: string;
  user: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
}

/** 014_bmc_setup: the in-band BMC set-up of an accepted machine (discovery rule bmc.setup). */
export interface BmcSetupsTable {
  node: string;
  mac: string;
  /** JSON BmcSetupJob without the password. */
  job: string;
  key_id: string;
  /** The new account's password, AES-256-GCM (crypto.ts), bound to bmc-setup/NODE. */
  secret_box: Buffer;
  /** pending | sent | done | failed */
  state: string;
  reason: string | null;
  /** The machine's inspect token (SHA-256) and its expiry, from the discovered row accepting removed. */
  inspect_token: string | null;
  inspect_token_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface DB {
  settings: SettingsTable;
  profiles: ProfilesTable;
  credentials: CredentialsTable;
  nodes: NodesTable;
  interfaces: InterfacesTable;
  bmc_endpoints: BmcEndpointsTable;
  bmc_setups: BmcSetupsTable;
  events: EventsTable;
  discovered: DiscoveredTable;
  tokens: TokensTable;
  locks: LocksTable;
  secrets: SecretsTable;
  users: UsersTable;
  user_tokens: UserTokensTable;
}

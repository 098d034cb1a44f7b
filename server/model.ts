/**
 * The server's view of the domain model: the shared types of common/model.ts,
 * and a ClusterSpec that also carries the lifecycle settings (typed by the
 * lifecycle module, which the agent never sees).
 */
import type { ClusterSpec as SharedClusterSpec } from '../common/model.js';
import type { LifecycleSettings } from './lifecycle/settings.js';
import type { DiscoverySpec } from './discovery/types.js';

export type * from '../common/model.js';

export interface ClusterSpec extends SharedClusterSpec {
  /** Per-state timeouts and step retries (server/lifecycle/settings.ts); defaults when absent. */
  lifecycle?: LifecycleSettings;
  /** Naming rules and policy for discovered machines (server/discovery, docs/discovery.md); absent: no rules, policy manual. */
  discovery?: DiscoverySpec;
  /** Node groups, name → nodeset as written (fleet.yaml groups: and the groups_file's; server/config/groups.ts). */
  groups?: Record<string, string>;
  /** The groups file they were read from, as written in fleet.yaml (read at fleet apply). */
  groupsFile?: string;
  /** store: a PostgreSQL database instead of DATA/fleet.db (docs/decisions/0019); absent: SQLite. */
  store?: StoreSpec;
}

/** fleet.yaml `store:`. The password (when the server asks for one) from a file or the environment, never inline. */
export interface StoreSpec {
  /** postgres://USER@HOST:PORT/DATABASE, without a password. */
  url: string;
  /** As written in fleet.yaml (relative to its directory). */
  passwordFile?: string;
  passwordEnv?: string;
}

/** Credential sets fleet writes itself, one per node, after `fleet bmc rotate` (rotated.NODE): fleet.yaml may not use the prefix. */
export const ROTATED_PREFIX = 'rotated.';

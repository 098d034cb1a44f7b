/**
 * Configuration roles: the contract.
 *
 * A role brings one part of the node to the state its profile declares
 * (common/model.ts RolesSpec). `plan` says what would change and changes
 * nothing; `apply` makes the changes and reports them. Both are idempotent:
 * on a node already as declared, plan is [] and apply reports 'ok' with no
 * changes and runs no command that changes anything.
 */
import type { Runner } from '../exec.js';
import type { RolesSpec } from '../../common/model.js';

/**
 * From ROOT/etc/os-release. 'unknown': neither family; the family-neutral
 * roles still apply, the others are 'skipped' (Role.families).
 */
export type OsFamily = 'rhel' | 'debian' | 'unknown';

/** Every family, 'unknown' included: a role that needs no package manager nor family-specific path. */
export const ANY_FAMILY: readonly OsFamily[] = ['rhel', 'debian', 'unknown'];
/** The families whose package managers and paths fleet knows. */
export const KNOWN_FAMILIES: readonly OsFamily[] = ['rhel', 'debian'];

/** The keys of RolesSpec (fleet.yaml's `nfs_server` is `nfsServer`, as in roles_json). */
export type RoleName = 'repos' | 'hosts' | 'chrony' | 'users' | 'nfsServer' | 'nfs' | 'slurm' | 'infiniband' | 'gpu';

/**
 * Apply order: repositories first (packages need them), an NFS server's
 * exports before NFS mounts (a node may mount what it exports), slurm after
 * users and NFS, GPU last (it may want a reboot). server/agents/config.ts
 * ROLE_ORDER is the same.
 */
export const ROLE_ORDER: readonly RoleName[] = ['repos', 'hosts', 'chrony', 'users', 'nfsServer', 'nfs', 'slurm', 'infiniband', 'gpu'];

export interface HostEntry {
  /** Short host name, e.g. thor (or already a FQDN). */
  name: string;
  address: string;
}

/** Facts about the cluster the roles need beyond the profile's RolesSpec. */
export interface ClusterFacts {
  /** DNS domain, e.g. cluster.local. */
  domain: string;
  /** Management node address on the provisioning network (e.g. 10.10.0.1). */
  managementAddress: string;
  managementName?: string;
  /** Every host /etc/hosts should list (management node and nodes with an address), in order. */
  hosts: HostEntry[];
  /** The fleet server's apt repository key (base64 of the binary keyring), when it has one: the repos role's `key: fleet`. */
  repoKey?: string;
  /** For the slurm role: slurm.conf and the cluster's munge key (base64), sent only to slurm nodes. A secret: never log it. */
  slurm?: SlurmFacts;
}

export interface SlurmFacts {
  conf: string;
  mungeKeyB64: string;
}

export interface RoleSettings {
  /** The profile's roles; each role reads its own slice. */
  roles: RolesSpec;
  cluster: ClusterFacts;
}

export interface RoleContext {
  /** Every path is resolved inside it; default '/'. */
  root: string;
  settings: RoleSettings;
  runner: Runner;
  osFamily: OsFamily;
  /** How the family was found, for messages: e.g. `ID=plan9 in /etc/os-release`; absent when given by the caller. */
  osSource?: string;
  log: (line: string) => void;
  /** Waits between retries (tests pass short ones); default NFS_MOUNT_RETRY_MS of the nfs role. */
  retryDelaysMs?: { nfsMount?: readonly number[] };
}

export interface Change {
  /** The node path concerned (absent for pure commands). */
  path?: string;
  action: 'create' | 'update' | 'delete' | 'run';
  /** Unified diff of the file content (create/update/delete of a file). */
  diff?: string;
  /** The argv of a command (action 'run'). */
  command?: string[];
  /** One line for people, e.g. "mount /home". */
  summary?: string;
}

/**
 * 'skipped': the role was not run because it does not support the node's OS
 * family (an unknown one); the message says why. On the wire it is OK with a
 * `skipped: ` message (agent/run.ts), as 'needs-reboot' is CHANGED.
 */
export type RoleStatus = 'ok' | 'changed' | 'failed' | 'needs-reboot' | 'skipped';

export interface RoleResult {
  role: string;
  status: RoleStatus;
  message: string;
  durationMs: number;
  /** Changes made (apply) or that would be made (dry run). */
  changes: Change[];
  /** True when produced by a dry run (nothing was changed). */
  dryRun?: boolean;
}

export interface Role {
  name: RoleName | string;
  /**
   * The OS families it runs on; on others runRoles reports it 'skipped'
   * without calling it. Absent: every family (ANY_FAMILY).
   */
  families?: readonly OsFamily[];
  plan(ctx: RoleContext): Promise<Change[]>;
  apply(ctx: RoleContext): Promise<RoleResult>;
  /** A dry run with the problems plan alone cannot express (e.g. a uid conflict); optional. */
  check?(ctx: RoleContext): Promise<RoleResult>;
}

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

export type OsFamily = 'rhel' | 'debian';

export type RoleName = 'repos' | 'hosts' | 'chrony' | 'users' | 'nfs' | 'slurm' | 'infiniband' | 'gpu';

/** Apply order: repositories first (packages need them), slurm after users and NFS, GPU last (it may want a reboot). */
export const ROLE_ORDER: readonly RoleName[] = ['repos', 'hosts', 'chrony', 'users', 'nfs', 'slurm', 'infiniband', 'gpu'];

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
  log: (line: string) => void;
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

export type RoleStatus = 'ok' | 'changed' | 'failed' | 'needs-reboot';

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
  plan(ctx: RoleContext): Promise<Change[]>;
  apply(ctx: RoleContext): Promise<RoleResult>;
  /** A dry run with the problems plan alone cannot express (e.g. a uid conflict); optional. */
  check?(ctx: RoleContext): Promise<RoleResult>;
}

/**
 * Configuration roles of the agent. See docs/agent-roles.md.
 *
 *   const ctx = await makeRoleContext({ settings: { roles, cluster } });
 *   const results = await runRoles(rolesFor(roles), ctx, { dryRun: false });
 */
export type { Change, ClusterFacts, SlurmFacts, HostEntry, OsFamily, Role, RoleContext, RoleName, RoleResult, RoleSettings, RoleStatus } from './types.js';
export { ROLE_ORDER } from './types.js';
export { ALL_ROLES, clusterFacts, detectOsFamily, makeRoleContext, osFamilyOf, rolesFor, runRoles, type ContextOptions } from './run.js';
export { RootFs, UnsafePathError, BACKUP_DIR } from './fsroot.js';
export { unifiedDiff } from './textdiff.js';
export { reposRole } from './repos.js';
export { hostsRole } from './hosts.js';
export { chronyRole } from './chrony.js';
export { usersRole } from './users.js';
export { nfsRole } from './nfs.js';
export { slurmRole } from './slurm.js';
export { gpuRole } from './gpu.js';
export { infinibandRole } from './infiniband.js';

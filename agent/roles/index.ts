/**
 * Configuration roles of the agent. See docs/agent-roles.md.
 *
 *   const ctx = await makeRoleContext({ settings: { roles, cluster } });
 *   const results = await runRoles(rolesFor(roles), ctx, { dryRun: false });
 */
export type { Change, ClusterFacts, HostEntry, OsFamily, Role, RoleContext, RoleName, RoleResult, RoleSettings, RoleStatus } from './types.js';
export { ANY_FAMILY, KNOWN_FAMILIES, ROLE_ORDER } from './types.js';
export { ALL_ROLES, clusterFacts, detectOs, detectOsFamily, makeRoleContext, osFamilyOf, rolesFor, runRoles, type ContextOptions } from './run.js';
export { RootFs, UnsafePathError, BACKUP_DIR } from './fsroot.js';
export { unifiedDiff } from './textdiff.js';
export { reposRole } from './repos.js';
export { hostsRole } from './hosts.js';
export { chronyRole } from './chrony.js';
export { usersRole } from './users.js';
export { nfsRole } from './nfs.js';
export { nfsServerRole } from './nfs-server.js';
export { gpuRole } from './gpu.js';
export { infinibandRole } from './infiniband.js';

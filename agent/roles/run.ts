/**
 * Running the roles: context, selection, order.
 */
import type { ClusterSpec, RolesSpec } from '../../common/model.js';
import { systemRunner, type Runner } from '../exec.js';
import { RootFs } from './fsroot.js';
import { familySkip } from './base.js';
import { chronyRole } from './chrony.js';
import { gpuRole } from './gpu.js';
import { hostsRole } from './hosts.js';
import { infinibandRole } from './infiniband.js';
import { nfsRole } from './nfs.js';
import { nfsServerRole } from './nfs-server.js';
import { reposRole } from './repos.js';
import { slurmRole } from './slurm.js';
import { usersRole } from './users.js';
import { ROLE_ORDER, type ClusterFacts, type OsFamily, type Role, type RoleContext, type RoleName, type RoleResult, type RoleSettings } from './types.js';

export const ALL_ROLES: Readonly<Record<RoleName, Role>> = {
  repos: reposRole,
  hosts: hostsRole,
  chrony: chronyRole,
  users: usersRole,
  nfsServer: nfsServerRole,
  nfs: nfsRole,
  slurm: slurmRole,
  infiniband: infinibandRole,
  gpu: gpuRole,
};

/** The roles a profile declares, in apply order. */
export function rolesFor(spec: RolesSpec): Role[] {
  return ROLE_ORDER.filter((n) => spec[n] !== undefined).map((n) => ALL_ROLES[n]);
}

/** The words of an os-release key (ID, ID_LIKE), unquoted, lower case. */
function osReleaseWords(osRelease: string, key: string): string[] {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(osRelease);
  return (m?.[1] ?? '').replace(/^["']|["']$/g, '').toLowerCase().split(/\s+/).filter((x) => x !== '');
}

/** 'rhel' or 'debian' from ROOT/etc/os-release (ID, then ID_LIKE); undefined when neither. */
export function osFamilyOf(osRelease: string): Exclude<OsFamily, 'unknown'> | undefined {
  for (const id of [...osReleaseWords(osRelease, 'ID'), ...osReleaseWords(osRelease, 'ID_LIKE')]) {
    if (['rhel', 'fedora', 'centos', 'almalinux', 'rocky', 'ol', 'redhat'].includes(id)) return 'rhel';
    if (['debian', 'ubuntu'].includes(id)) return 'debian';
  }
  return undefined;
}

/** The OS release file under the root (/etc/os-release, else /usr/lib/os-release), or undefined. */
async function readOsRelease(root: string): Promise<{ path: string; text: string } | undefined> {
  const fsr = new RootFs(root);
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await fsr.read(p);
    if (text !== undefined) return { path: p, text };
  }
  return undefined;
}

/** The family and where it came from (`ID=plan9 in /etc/os-release`), for the skipped roles' messages. */
export async function detectOs(root = '/'): Promise<{ family: OsFamily; source: string }> {
  const rel = await readOsRelease(root);
  if (!rel) return { family: 'unknown', source: 'no /etc/os-release or /usr/lib/os-release' };
  const id = osReleaseWords(rel.text, 'ID').join(' ');
  const like = osReleaseWords(rel.text, 'ID_LIKE').join(' ');
  const source = id ? `ID=${id}${like ? ` ID_LIKE="${like}"` : ''} in ${rel.path}` : `no ID in ${rel.path}`;
  return { family: osFamilyOf(rel.text) ?? 'unknown', source };
}

/** 'rhel' or 'debian'; undefined when ROOT's os-release names neither (or is missing). */
export async function detectOsFamily(root = '/'): Promise<Exclude<OsFamily, 'unknown'> | undefined> {
  const rel = await readOsRelease(root);
  return rel === undefined ? undefined : osFamilyOf(rel.text);
}

/** Cluster facts from the declared cluster: the management node, then every node with an address. */
export function clusterFacts(spec: Pick<ClusterSpec, 'cluster' | 'nodes'>): ClusterFacts {
  const hosts = [
    ...(spec.cluster.managementName ? [{ name: spec.cluster.managementName, address: spec.cluster.managementAddress }] : []),
    ...spec.nodes.filter((n) => n.ip).map((n) => ({ name: n.name, address: n.ip! })),
  ];
  return {
    domain: spec.cluster.domain,
    managementAddress: spec.cluster.managementAddress,
    ...(spec.cluster.managementName ? { managementName: spec.cluster.managementName } : {}),
    hosts,
  };
}

export interface ContextOptions {
  root?: string;
  settings: RoleSettings;
  runner?: Runner;
  log?: (line: string) => void;
  /** Default: detected from ROOT/etc/os-release. */
  osFamily?: OsFamily;
  retryDelaysMs?: RoleContext['retryDelaysMs'];
}

/**
 * A RoleContext. An OS family that is neither RHEL nor Debian is 'unknown':
 * the context is made all the same, and runRoles skips the roles that need
 * a known family (their results say so), applying the others.
 */
export async function makeRoleContext(opts: ContextOptions): Promise<RoleContext> {
  const root = opts.root ?? '/';
  const os = opts.osFamily !== undefined ? { family: opts.osFamily, source: undefined } : await detectOs(root);
  return {
    root,
    settings: opts.settings,
    runner: opts.runner ?? systemRunner,
    osFamily: os.family,
    ...(os.source !== undefined ? { osSource: os.source } : {}),
    log: opts.log ?? (() => {}),
    ...(opts.retryDelaysMs ? { retryDelaysMs: opts.retryDelaysMs } : {}),
  };
}

function orderIndex(name: string): number {
  const i = ROLE_ORDER.indexOf(name as RoleName);
  return i < 0 ? ROLE_ORDER.length : i;
}

/**
 * Applies (or, with dryRun, checks) the roles one after the other in the
 * fixed order (repos, hosts, chrony, users, nfsServer, nfs, slurm, infiniband, gpu), going on
 * after a failure. Never throws: a role that throws is a 'failed' result.
 * A role whose `families` lack the node's OS family is not called: its
 * result is 'skipped', saying the family and what the role needs.
 */
export async function runRoles(roles: Role[], ctx: RoleContext, opts: { dryRun?: boolean } = {}): Promise<RoleResult[]> {
  const ordered = roles.map((r, i) => ({ r, i })).sort((a, b) => orderIndex(a.r.name) - orderIndex(b.r.name) || a.i - b.i);
  const results: RoleResult[] = [];
  for (const { r } of ordered) {
    const t0 = Date.now();
    try {
      let res: RoleResult;
      const skip = familySkip(r, ctx);
      if (skip) {
        res = { role: r.name, status: 'skipped', message: skip, durationMs: Date.now() - t0, changes: [], ...(opts.dryRun ? { dryRun: true } : {}) };
      } else if (opts.dryRun) {
        if (r.check) res = await r.check(ctx);
        else {
          const changes = await r.plan(ctx);
          res = { role: r.name, status: changes.length > 0 ? 'changed' : 'ok', message: changes.length > 0 ? `would make ${changes.length} change(s)` : 'already as declared', durationMs: Date.now() - t0, changes, dryRun: true };
        }
      } else {
        res = await r.apply(ctx);
      }
      results.push(res);
      ctx.log(`role ${r.name}: ${res.status}${res.message ? ` (${res.message})` : ''}`);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      results.push({ role: r.name, status: 'failed', message, durationMs: Date.now() - t0, changes: [], ...(opts.dryRun ? { dryRun: true } : {}) });
      ctx.log(`role ${r.name}: failed (${message})`);
    }
  }
  return results;
}

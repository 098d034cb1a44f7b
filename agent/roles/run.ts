/**
 * Running the roles: context, selection, order.
 */
import path from 'node:path';
import type { ClusterSpec, RolesSpec } from '../../common/model.js';
import { FleetError } from '../../common/errors.js';
import { systemRunner, type Runner } from '../exec.js';
import { RootFs } from './fsroot.js';
import { chronyRole } from './chrony.js';
import { gpuRole } from './gpu.js';
import { hostsRole } from './hosts.js';
import { infinibandRole } from './infiniband.js';
import { nfsRole } from './nfs.js';
import { reposRole } from './repos.js';
import { slurmRole } from './slurm.js';
import { usersRole } from './users.js';
import { ROLE_ORDER, type ClusterFacts, type OsFamily, type Role, type RoleContext, type RoleName, type RoleResult, type RoleSettings } from './types.js';

export const ALL_ROLES: Readonly<Record<RoleName, Role>> = {
  repos: reposRole,
  hosts: hostsRole,
  chrony: chronyRole,
  users: usersRole,
  nfs: nfsRole,
  slurm: slurmRole,
  infiniband: infinibandRole,
  gpu: gpuRole,
};

/** The roles a profile declares, in apply order. */
export function rolesFor(spec: RolesSpec): Role[] {
  return ROLE_ORDER.filter((n) => spec[n] !== undefined).map((n) => ALL_ROLES[n]);
}

/** 'rhel' or 'debian' from ROOT/etc/os-release (ID, then ID_LIKE); undefined when neither. */
export function osFamilyOf(osRelease: string): OsFamily | undefined {
  const get = (k: string): string[] => {
    const m = new RegExp(`^${k}=(.*)$`, 'm').exec(osRelease);
    return (m?.[1] ?? '').replace(/^["']|["']$/g, '').toLowerCase().split(/\s+/).filter((x) => x !== '');
  };
  for (const id of [...get('ID'), ...get('ID_LIKE')]) {
    if (['rhel', 'fedora', 'centos', 'almalinux', 'rocky', 'ol', 'redhat'].includes(id)) return 'rhel';
    if (['debian', 'ubuntu'].includes(id)) return 'debian';
  }
  return undefined;
}

export async function detectOsFamily(root = '/'): Promise<OsFamily | undefined> {
  const fsr = new RootFs(root);
  const text = (await fsr.read('/etc/os-release')) ?? (await fsr.read('/usr/lib/os-release'));
  return text === undefined ? undefined : osFamilyOf(text);
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
}

/** A RoleContext; throws FleetError not_implemented when the OS family is neither RHEL nor Debian. */
export async function makeRoleContext(opts: ContextOptions): Promise<RoleContext> {
  const root = opts.root ?? '/';
  const osFamily = opts.osFamily ?? (await detectOsFamily(root));
  if (!osFamily) throw new FleetError('not_implemented', `configuration roles support the RHEL and Debian families; ${path.join(root, 'etc/os-release')} names neither`);
  return { root, settings: opts.settings, runner: opts.runner ?? systemRunner, osFamily, log: opts.log ?? (() => {}) };
}

function orderIndex(name: string): number {
  const i = ROLE_ORDER.indexOf(name as RoleName);
  return i < 0 ? ROLE_ORDER.length : i;
}

/**
 * Applies (or, with dryRun, checks) the roles one after the other in the
 * fixed order (repos, hosts, chrony, users, nfs, slurm, infiniband, gpu), going on
 * after a failure. Never throws: a role that throws is a 'failed' result.
 */
export async function runRoles(roles: Role[], ctx: RoleContext, opts: { dryRun?: boolean } = {}): Promise<RoleResult[]> {
  const ordered = roles.map((r, i) => ({ r, i })).sort((a, b) => orderIndex(a.r.name) - orderIndex(b.r.name) || a.i - b.i);
  const results: RoleResult[] = [];
  for (const { r } of ordered) {
    const t0 = Date.now();
    try {
      let res: RoleResult;
      if (opts.dryRun) {
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

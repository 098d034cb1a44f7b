import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, parseConfig, type ConfigIssue } from '../../../server/config/index.js';

type Obj = Record<string, any>;

/** A controller (odin-like ctl01) and two compute nodes, each profile with the slurm role. */
function base(): Obj {
  const tree = { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' };
  return {
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' } },
    profiles: {
      head: { os: tree, roles: { slurm: { role: 'controller' } } },
      compute: { os: tree, roles: { slurm: { role: 'compute', cluster_name: 'fleet', partition: { name: 'batch', default: true } } } },
    },
    nodes: {
      ctl01: { profile: 'head', ip: '10.10.1.1', mac: '08:00:27:00:01:01' },
      'valkyrie[01-02]': { profile: 'compute', ip: '10.10.3.[1-2]', mac: ['08:00:27:00:03:01', '08:00:27:00:03:02'] },
    },
  };
}

function issues(o: Obj): ConfigIssue[] {
  try {
    parseConfig(stringify(o));
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    return configIssuesOf(e);
  }
  throw new Error('expected config.invalid, but the config was accepted');
}

function oneIssue(o: Obj): ConfigIssue {
  const list = issues(o);
  expect(list, JSON.stringify(list, null, 2)).toHaveLength(1);
  return list[0]!;
}

describe('roles.slurm', () => {
  it('parses the role with its defaults', () => {
    const spec = parseConfig(stringify(base()));
    const by = new Map(spec.profiles.map((p) => [p.name, p]));
    expect(by.get('head')!.roles.slurm).toEqual({ role: 'controller', clusterName: 'fleet', partition: 'batch', partitionDefault: true });
    expect(by.get('compute')!.roles.slurm).toEqual({ role: 'compute', clusterName: 'fleet', partition: 'batch', partitionDefault: true });
  });

  it('takes a partition written as a plain name, and default: false', () => {
    const o = base();
    o.profiles.compute.roles.slurm.partition = 'short';
    o.profiles.head.roles.slurm = { role: 'both', partition: { name: 'long', default: false } };
    const spec = parseConfig(stringify(o));
    const by = new Map(spec.profiles.map((p) => [p.name, p]));
    expect(by.get('compute')!.roles.slurm).toMatchObject({ partition: 'short', partitionDefault: true });
    expect(by.get('head')!.roles.slurm).toMatchObject({ role: 'both', partition: 'long', partitionDefault: false });
  });

  it('refuses a missing or unknown role', () => {
    const o = base();
    o.profiles.compute.roles.slurm = { cluster_name: 'fleet' };
    expect(oneIssue(o).message).toMatch(/role/);
    const o2 = base();
    o2.profiles.compute.roles.slurm.role = 'worker';
    const i = oneIssue(o2);
    expect(i.path).toBe('profiles.compute.roles.slurm.role');
    expect(i.message).toBe('slurm role worker is not one of controller, compute, both');
  });

  it('refuses `slurm: true` (the role must be said)', () => {
    const o = base();
    o.profiles.compute.roles.slurm = true;
    expect(oneIssue(o).message).toMatch(/role needs settings: role/);
  });

  it('refuses bad names and unknown keys', () => {
    const o = base();
    o.profiles.compute.roles.slurm.cluster_name = 'My Cluster';
    o.profiles.compute.roles.slurm.partition = { name: 'a b' };
    o.profiles.head.roles.slurm.colour = 'blue';
    const list = issues(o);
    expect(list.map((i) => i.path).sort()).toEqual(['profiles.compute.roles.slurm.cluster_name', 'profiles.compute.roles.slurm.partition.name', 'profiles.head.roles.slurm.colour']);
  });

  it('needs exactly one controller node: none', () => {
    const o = base();
    delete o.nodes.ctl01;
    const i = oneIssue(o);
    expect(i.path).toBe('profiles.head.roles.slurm');
    expect(i.message).toMatch(/exactly one controller node: no node uses profile head/);
  });

  it('needs exactly one controller node: no controller profile at all', () => {
    const o = base();
    delete o.profiles.head;
    delete o.nodes.ctl01;
    expect(oneIssue(o).message).toMatch(/no profile has slurm role controller or both/);
  });

  it('needs exactly one controller node: two', () => {
    const o = base();
    o.nodes['ctl02'] = { profile: 'head', ip: '10.10.1.2', mac: '08:00:27:00:01:02' };
    const i = oneIssue(o);
    expect(i.message).toMatch(/exactly one controller node, and 2 nodes use a profile with slurm role controller or both: ctl01 \(profile head\), ctl02 \(profile head\)/);
    const o2 = base();
    o2.profiles.compute.roles.slurm.role = 'both';
    expect(oneIssue(o2).message).toMatch(/3 nodes/);
  });

  it('one cluster name and one default partition', () => {
    const o = base();
    o.profiles.head.roles.slurm.cluster_name = 'other';
    expect(oneIssue(o).message).toBe('slurm cluster_name fleet differs from other of profile head: one cluster has one name');
    const o2 = base();
    o2.profiles.gpu = { os: o2.profiles.compute.os, roles: { slurm: { role: 'compute', partition: 'gpu' } } };
    o2.nodes.gpu01 = { profile: 'gpu', ip: '10.10.4.1', mac: '08:00:27:00:04:01' };
    expect(oneIssue(o2).message).toMatch(/at most one partition may be/);
    o2.profiles.gpu.roles.slurm.partition = { name: 'gpu', default: false };
    expect(() => parseConfig(stringify(o2))).not.toThrow();
  });

  it('a cluster without slurm needs no controller', () => {
    const o = base();
    delete o.profiles.head.roles;
    delete o.profiles.compute.roles;
    expect(() => parseConfig(stringify(o))).not.toThrow();
  });
});

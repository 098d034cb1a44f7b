import { describe, expect, it } from 'vitest';
import { expectGolden } from '../../helpers/golden.js';
import { MEMORY_RESERVE, deriveSlurmConf, nodeResources, redactSlurmSecrets, renderSlurmConf, type ReportedResources } from '../../../server/slurm/index.js';

const GiB = 1024 ** 3;
const res = (threads: number, memGiB: number, unknown?: ReportedResources['unknown']): ReportedResources => ({
  cpus: { threads },
  memory: { totalBytes: memGiB * GiB },
  ...(unknown ? { unknown } : {}),
});

describe('nodeResources', () => {
  it('CPUs are the threads; RealMemory is MiB less 2 %, at least 256 MiB, at most 4 GiB', () => {
    expect(nodeResources(res(8, 16))).toEqual({ ok: true, cpus: 8, realMemoryMiB: 16384 - 328 });
    expect(nodeResources(res(2, 2))).toEqual({ ok: true, cpus: 2, realMemoryMiB: 2048 - 256 });
    expect(nodeResources(res(256, 1024))).toEqual({ ok: true, cpus: 256, realMemoryMiB: 1024 * 1024 - 4096 });
    // MemTotal is never a round number: rounded down to MiB first.
    expect(nodeResources({ cpus: { threads: 4 }, memory: { totalBytes: 8_148_045_824 } })).toEqual({ ok: true, cpus: 4, realMemoryMiB: 7770 - 256 });
    expect(MEMORY_RESERVE).toEqual({ fraction: 0.02, minMiB: 256, maxMiB: 4096 });
  });

  it('a missing, partial or empty report gives no line, with the reason', () => {
    expect(nodeResources(null)).toEqual({ ok: false, reason: 'no inventory reported yet' });
    expect(nodeResources(res(8, 16, [{ section: 'memory', reason: 'mem: timed out after 10000 ms' }]))).toEqual({
      ok: false,
      reason: 'its last inventory is partial: memory unknown (mem: timed out after 10000 ms)',
    });
    expect(nodeResources(res(8, 16, [{ section: 'gpus', reason: 'nvidia-smi failed' }])).ok).toBe(true);
    expect(nodeResources(res(0, 16))).toEqual({ ok: false, reason: 'its last inventory reports no CPUs' });
    expect(nodeResources(res(4, 0))).toEqual({ ok: false, reason: 'its last inventory reports no memory' });
    expect(nodeResources({ cpus: { threads: 1 }, memory: { totalBytes: 200 * 1024 * 1024 } })).toEqual({
      ok: false,
      reason: 'its last inventory reports 200 MiB of memory, not more than the 256 MiB reserve',
    });
  });
});

describe('renderSlurmConf', () => {
  it('matches the golden file: controller, complete nodes, nodes left out, two partitions', () => {
    const conf = renderSlurmConf({
      clusterName: 'fleet',
      controller: { name: 'ctl01', address: '10.10.1.1' },
      computes: [
        { name: 'valkyrie01', address: '10.10.3.1', partition: 'batch', partitionDefault: true, inventory: res(8, 16) },
        { name: 'valkyrie02', address: '10.10.3.2', partition: 'batch', partitionDefault: true, inventory: res(16, 64) },
        { name: 'valkyrie03', address: '10.10.3.3', partition: 'batch', partitionDefault: true, inventory: null },
        { name: 'valkyrie04', address: '10.10.3.4', partition: 'batch', partitionDefault: true, inventory: res(8, 16, [{ section: 'cpus', reason: 'cpu: probe failed\nsecond line' }]) },
        { name: 'gpu01', partition: 'gpu', partitionDefault: false, inventory: res(64, 512) },
        { name: 'empty01', partition: 'empty', partitionDefault: false, inventory: null },
      ],
    });
    expectGolden('slurm.conf', conf);
    expect(conf).not.toMatch(/CPUs=0|RealMemory=0/);
  });

  it('a cluster with no compute node yet', () => {
    const conf = renderSlurmConf({ clusterName: 'lab', controller: { name: 'ctl01' }, computes: [] });
    expect(conf).toContain('SlurmctldHost=ctl01\n');
    expect(conf).toContain('# none: no node has a profile with slurm role compute or both\n');
    expect(conf).not.toContain('PartitionName=');
  });
});

describe('deriveSlurmConf', () => {
  const profiles = [
    { name: 'head', roles: { slurm: { role: 'controller' as const, clusterName: 'fleet', partition: 'batch', partitionDefault: true } } },
    { name: 'compute', roles: { slurm: { role: 'compute' as const, clusterName: 'fleet', partition: 'batch', partitionDefault: true } } },
    { name: 'plain', roles: {} },
  ];
  const nodes = [
    { name: 'ctl01', profile: 'head', ip: '10.10.1.1' },
    { name: 'login01', profile: 'plain', ip: '10.10.2.1' },
    { name: 'valkyrie01', profile: 'compute', ip: '10.10.3.1' },
    { name: 'valkyrie02', profile: 'compute', ip: null },
  ];

  it('reads the stored (wire JSON) reports; nodes of other profiles are not listed', () => {
    const inv = new Map<string, unknown>([['valkyrie01', { cpu: { threads: 4 }, memory: { totalBytes: String(8 * GiB) } }]]);
    const d = deriveSlurmConf(profiles, nodes, inv);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.controller).toBe('ctl01');
    expect(d.conf).toContain('SlurmctldHost=ctl01(10.10.1.1)\n');
    expect(d.conf).toContain('NodeName=valkyrie01 NodeAddr=10.10.3.1 CPUs=4 RealMemory=7936 State=UNKNOWN\n');
    expect(d.conf).toContain('# valkyrie02 left out: no inventory reported yet\n');
    expect(d.conf).toContain('PartitionName=batch Nodes=valkyrie01 Default=YES MaxTime=INFINITE State=UP\n');
    expect(d.conf).not.toContain('login01');
    expect(d.conf).not.toMatch(/NodeName=ctl01/);
  });

  it('a both node is controller and compute', () => {
    const p = [{ name: 'solo', roles: { slurm: { role: 'both' as const, clusterName: 'solo', partition: 'all', partitionDefault: true } } }];
    const d = deriveSlurmConf(p, [{ name: 'n1', profile: 'solo', ip: '10.0.0.5' }], new Map([['n1', { cpu: { threads: 2 }, memory: { totalBytes: String(4 * GiB) } }]]));
    expect(d.ok && d.conf).toContain('SlurmctldHost=n1(10.0.0.5)');
    expect(d.ok && d.conf).toContain('NodeName=n1 NodeAddr=10.0.0.5 CPUs=2 RealMemory=3840 State=UNKNOWN');
  });

  it('not exactly one controller node: no conf, and why', () => {
    expect(deriveSlurmConf(profiles, nodes.filter((n) => n.name !== 'ctl01'), new Map())).toEqual({ ok: false, reason: 'no node has a profile with slurm role controller or both' });
    const two = [...nodes, { name: 'ctl02', profile: 'head', ip: null }];
    expect(deriveSlurmConf(profiles, two, new Map())).toEqual({ ok: false, reason: '2 nodes have a profile with slurm role controller or both (ctl01, ctl02): exactly one may' });
    expect(deriveSlurmConf([{ name: 'plain', roles: {} }], nodes, new Map())).toEqual({ ok: false, reason: 'no profile has the slurm role' });
  });
});

describe('redactSlurmSecrets', () => {
  it('replaces every mungeKeyB64, in objects and in JSON text', () => {
    const facts = { domain: 'd', hosts: [], slurm: { conf: 'ClusterName=x\n', mungeKeyB64: 'c2VjcmV0' } };
    expect(redactSlurmSecrets(facts)).toEqual({ domain: 'd', hosts: [], slurm: { conf: 'ClusterName=x\n', mungeKeyB64: '<redacted>' } });
    expect(facts.slurm.mungeKeyB64).toBe('c2VjcmV0'); // a copy
    const text = redactSlurmSecrets({ clusterJson: JSON.stringify(facts), rolesJson: '{}' });
    expect(JSON.stringify(text)).not.toContain('c2VjcmV0');
    expect(JSON.parse(text.clusterJson).slurm.mungeKeyB64).toBe('<redacted>');
    expect(redactSlurmSecrets('{"mungeKeyB64":"c2VjcmV0", broken')).toBe('{"mungeKeyB64":"<redacted>", broken');
    expect(redactSlurmSecrets('plain text')).toBe('plain text');
  });
});

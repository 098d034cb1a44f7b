/**
 * The server side of the agent contract, pure parts: the config version,
 * the boot assessment, command-line redaction and the one error mapping
 * (server toGrpcError → agent fromGrpcError round trip).
 */
import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { parseClusterFacts } from '../../../agent/cache.js';
import { fromGrpcError, isTransient } from '../../../agent/client.js';
import type { ReportBootRequest } from '../../../proto/gen/fleet/v1/agent.js';
import { CATALOGUE, FleetError, type ErrorCode } from '../../../common/errors.js';
import { assessBoot, clusterFactsOf, nodeConfig, redactCmdline } from '../../../server/agents/index.js';
import { toGrpcError, ERROR_CODE_TRAILER } from '../../../server/grpc/index.js';

describe('nodeConfig', () => {
  const roles = { chrony: { servers: ['a'], makestep: '1 3' }, repos: { repos: [], remove: [] }, custom: { x: 1 } };
  it('orders roles for applying and versions the canonical JSON', () => {
    const c = nodeConfig({ name: 'p', roles: roles as never });
    expect(c.roles).toEqual(['repos', 'chrony', 'custom']);
    expect(JSON.parse(c.rolesJson)).toEqual(roles);
    expect(c.version).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Key order does not matter; content and nothing else does (not even the profile name).
    const reordered = nodeConfig({ name: 'q', roles: { custom: { x: 1 }, repos: { remove: [], repos: [] }, chrony: { makestep: '1 3', servers: ['a'] } } as never });
    expect(reordered.version).toBe(c.version);
    expect(nodeConfig({ name: 'p', roles: { ...roles, chrony: { servers: ['b'], makestep: '1 3' } } as never }).version).not.toBe(c.version);
    expect(nodeConfig({ name: 'p', roles: {} }).roles).toEqual([]);
  });

  it('carries the repository key in the cluster facts only when there is one (versions without it unchanged)', () => {
    const cluster = { domain: 'cluster.local', managementAddress: '10.10.0.1', managementName: 'odin' };
    const nodes = [{ name: 'n1', ip: '10.10.3.1' }];
    const without = clusterFactsOf(cluster, nodes);
    expect(without).not.toHaveProperty('repoKey');
    expect(clusterFactsOf(cluster, nodes, Buffer.alloc(0))).toEqual(without);
    const key = Buffer.from([0x98, 0x33, 0x04, 0xff]);
    const withKey = clusterFactsOf(cluster, nodes, key);
    expect(withKey.repoKey).toBe('mDME/w==');
    expect(JSON.parse(nodeConfig({ name: 'p', roles: roles as never }, withKey).clusterJson).repoKey).toBe('mDME/w==');
    expect(nodeConfig({ name: 'p', roles: roles as never }, withKey).version).not.toBe(nodeConfig({ name: 'p', roles: roles as never }, without).version);
    // what the agent reads back
    expect(parseClusterFacts(nodeConfig({ name: 'p', roles: roles as never }, withKey).clusterJson).repoKey).toBe('mDME/w==');
    expect(parseClusterFacts(nodeConfig({ name: 'p', roles: roles as never }, without).clusterJson)).not.toHaveProperty('repoKey');
    expect(() => parseClusterFacts({ ...withKey, repoKey: 'not base64!' })).toThrow(/repoKey is not base64/);
  });
});

const base: ReportBootRequest = {
  bootId: 'b',
  uptimeMs: 1,
  kernelCmdline: '',
  rootOnLocalDisk: true,
  rootSource: '/dev/sda2',
  rootFstype: 'xfs',
  agentVersion: '',
  kernel: '',
};

describe('assessBoot', () => {
  const entries = [
    { id: '0001', label: 'UEFI PXEv4 (MAC:525400000101)', active: true },
    { id: '0002', label: 'AlmaLinux', active: true },
    { id: '0003', label: 'UEFI HTTPv6', active: true },
  ];
  it('names the firmware path and flags a pending BootNext', () => {
    const disk = assessBoot({ ...base, efi: { bootCurrent: '0002', bootOrder: ['0002', '0001'], bootNext: '', entries } });
    expect(disk).toMatchObject({ firmwareVia: 'disk', networkFirst: false, bootNextPending: null, firmwareEntry: { id: '0002', label: 'AlmaLinux' } });
    const net = assessBoot({ ...base, efi: { bootCurrent: '0001', bootOrder: ['0001', '0002'], bootNext: '0001', entries } });
    expect(net).toMatchObject({ firmwareVia: 'network', networkFirst: true, bootNextPending: '0001' });
    expect(net.notes.join(' ')).toMatch(/BootNext 0001 is pending/);
    expect(assessBoot({ ...base, efi: { bootCurrent: '0003', bootOrder: [], bootNext: '', entries } }).firmwareVia).toBe('network');
    expect(assessBoot({ ...base, efi: { bootCurrent: '0009', bootOrder: [], bootNext: '', entries } }).firmwareVia).toBe('unknown');
    expect(assessBoot(base)).toMatchObject({ firmwareVia: 'legacy', firmwareEntry: null });
    const diskless = assessBoot({ ...base, rootOnLocalDisk: false, rootSource: '10.0.0.1:/root', rootFstype: 'nfs4' });
    expect(diskless.notes[0]).toMatch(/not on a local disk/);
  });
});

describe('redactCmdline', () => {
  it('keeps the keys and drops secret-looking values', () => {
    expect(redactCmdline('root=/dev/sda2 inst.ks=http://x/ks?token=abc&node=n1 ro fleet.token=xyz rootpw=pw passwd=p2 key=k console=ttyS0')).toBe(
      'root=/dev/sda2 inst.ks=http://x/ks?token=<redacted>&node=n1 ro fleet.token=<redacted> rootpw=<redacted> passwd=<redacted> key=<redacted> console=ttyS0',
    );
  });
});

describe('error mapping', () => {
  it('every catalogue code crosses the wire with its gRPC status and comes back as itself', () => {
    for (const code of Object.keys(CATALOGUE) as ErrorCode[]) {
      const wire = toGrpcError(new FleetError(code, `m-${code}`));
      expect(wire.code, code).toBe(CATALOGUE[code].grpc);
      expect(wire.metadata?.get(ERROR_CODE_TRAILER)).toEqual([code]);
      const back = fromGrpcError(wire);
      expect(back.code).toBe(code);
      expect(back.message).toBe(code === 'internal' ? 'internal error' : `m-${code}`);
    }
  });
  it('hides the message of unexpected errors', () => {
    const wire = toGrpcError(new Error('SQLITE_CORRUPT at /var/lib/fleet/fleet.db'));
    expect(wire.code).toBe(status.INTERNAL);
    expect(wire.details).toBe('internal error');
  });
  it('maps bare statuses (no trailer) and tells transient from final', () => {
    const bare = (code: number) => fromGrpcError(Object.assign(new Error('x'), { code, details: 'x', metadata: new Metadata() }));
    expect(bare(status.UNAVAILABLE).code).toBe('unavailable');
    expect(bare(status.DEADLINE_EXCEEDED).code).toBe('unavailable');
    expect(bare(status.UNAUTHENTICATED).code).toBe('auth.invalid');
    expect(isTransient(bare(status.UNAVAILABLE))).toBe(true);
    expect(isTransient(new FleetError('rate_limited', 'x'))).toBe(true);
    expect(isTransient(new FleetError('token.used', 'x'))).toBe(false);
    expect(isTransient(new FleetError('auth.invalid', 'x'))).toBe(false);
  });
});

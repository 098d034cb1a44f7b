import { describe, expect, it } from 'vitest';
import type { NetworkInterfaceInfo } from 'node:os';
import { dhcpRefusal } from '../../../server/netboot/service.js';
import type { ClusterSpec } from '../../../server/model.js';

const spec = (dhcp: NonNullable<ClusterSpec['netboot']>['dhcp']): ClusterSpec => ({
  cluster: { name: 'c', domain: 'cluster.local', timezone: 'UTC', managementAddress: '10.10.0.1' },
  networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } },
  credentials: [],
  profiles: [],
  nodes: [],
  netboot: { dhcp },
});
const v4 = (address: string): NetworkInterfaceInfo => ({ address, family: 'IPv4', netmask: '255.255.0.0', mac: '00:00:00:00:00:00', internal: false, cidr: `${address}/16` });

describe('dhcpRefusal: DHCP only on the cluster NIC', () => {
  const ifs = { enp0s3: [v4('192.168.1.20')], enp0s8: [v4('10.10.0.1')], eth9: [v4('10.10.5.5')] };
  it.each([
    ['authoritative on the NIC carrying the management address', { enabled: true, mode: 'authoritative' as const, interface: 'enp0s8' }, null],
    ['authoritative on the uplink', { enabled: true, mode: 'authoritative' as const, interface: 'enp0s3' }, /does not carry the management address 10\.10\.0\.1/],
    ['an interface that does not exist', { enabled: true, mode: 'authoritative' as const, interface: 'ens1' }, /ens1 does not exist/],
    ['no interface named', { enabled: true, mode: 'authoritative' as const }, /no interface named/],
    ['proxy on a NIC inside the subnet', { enabled: true, mode: 'proxy' as const, interface: 'eth9' }, null],
    ['proxy on the uplink', { enabled: true, mode: 'proxy' as const, interface: 'enp0s3' }, /no address in 10\.10\.0\.0\/16/],
  ])('%s', (_t, dhcp, expected) => {
    const r = dhcpRefusal(spec(dhcp), ifs);
    if (expected === null) expect(r).toBeNull();
    else expect(r).toMatch(expected);
  });
});

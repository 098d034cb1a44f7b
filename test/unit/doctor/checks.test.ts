/** The doctor's pure checks: each finding from a facts object, ok/warn/fail with its fix. */
import { describe, expect, it } from 'vitest';
import {
  blockingFindings,
  bmcGroups,
  checkAgentBundle,
  checkBmcRoute,
  checkBootEndpoint,
  checkBootenv,
  checkClock,
  checkDhcpInterface,
  checkDisk,
  checkDnsmasq,
  checkImage,
  checkIpxe,
  checkNfsServer,
  checkOsTree,
  doctorExit,
  formatFinding,
  GiB,
  profileDependencies,
  type BootEndpointFacts,
  type DhcpFacts,
  type Finding,
} from '../../../server/doctor/checks.js';

const boot = (over: Partial<BootEndpointFacts> = {}): BootEndpointFacts => ({
  listenHost: '10.10.0.1',
  listenPort: 8080,
  implicit: true,
  advertisedUrl: 'http://10.10.0.1:8080',
  managementAddress: '10.10.0.1',
  provisioningSubnet: '10.10.0.0/16',
  localAddresses: ['127.0.0.1', '10.10.0.1'],
  ...over,
});

describe('boot endpoints', () => {
  it('ok when they listen on the management address this host holds, and nodes are told it', () => {
    const f = checkBootEndpoint(boot());
    expect(f).toMatchObject({ id: 'boot-endpoint', status: 'ok', fix: '' });
    expect(f.message).toContain('nodes are told http://10.10.0.1:8080');
  });

  it('fails on loopback: nodes are told an address no node can reach', () => {
    const f = checkBootEndpoint(boot({ listenHost: '127.0.0.1', implicit: false, advertisedUrl: 'http://127.0.0.1:8080' }));
    expect(f.status).toBe('fail');
    expect(f.message).toContain('loopback');
    expect(f.fix).toContain('netboot.http.listen');
  });

  it('fails when the (default) management address is not on this host: the boot endpoints are not served', () => {
    const f = checkBootEndpoint(boot({ localAddresses: ['127.0.0.1', '192.0.2.2'] }));
    expect(f.status).toBe('fail');
    expect(f.message).toContain('not served');
    expect(f.fix).toContain('ip addr add 10.10.0.1');
  });

  it('fails when an explicit listen address is not on this host, and when a wildcard leaves the management address absent', () => {
    expect(checkBootEndpoint(boot({ listenHost: '10.10.0.9', implicit: false, advertisedUrl: 'http://10.10.0.9:8080' })).status).toBe('fail');
    const wild = checkBootEndpoint(boot({ listenHost: '0.0.0.0', implicit: false, localAddresses: ['192.0.2.2'] }));
    expect(wild.status).toBe('fail');
    expect(checkBootEndpoint(boot({ listenHost: '0.0.0.0', implicit: false })).status).toBe('ok');
  });

  it('warns when nodes are told an address outside the provisioning subnet, and when the addresses are unknown', () => {
    const out = checkBootEndpoint(boot({ listenHost: '192.0.2.2', implicit: false, advertisedUrl: 'http://192.0.2.2:8080', localAddresses: ['192.0.2.2'] }));
    expect(out.status).toBe('warn');
    const unknown = checkBootEndpoint(boot({ localAddresses: null }));
    expect(unknown.status).toBe('warn');
    expect(unknown.message).toMatch(/^unknown: /);
  });
});

const dhcp = (over: Partial<DhcpFacts> = {}): DhcpFacts => ({
  enabled: true,
  mode: 'authoritative',
  interface: 'enp0s3',
  managementAddress: '10.10.0.1',
  provisioningSubnet: '10.10.0.0/16',
  ...over,
});

describe('DHCP: dnsmasq, iPXE, the interface', () => {
  it('dnsmasq: fail when missing with DHCP on; ok when found or not needed', () => {
    expect(checkDnsmasq({ dhcp: dhcp(), path: null })).toMatchObject({ status: 'fail', fix: expect.stringContaining('dnsmasq-base') });
    expect(checkDnsmasq({ dhcp: dhcp(), path: '/usr/sbin/dnsmasq' }).status).toBe('ok');
    expect(checkDnsmasq({ dhcp: dhcp({ enabled: false }), path: null }).status).toBe('ok');
  });

  it('iPXE: fail with none, warn naming the missing ones, ok with all', () => {
    const ipxe = (found: Record<string, boolean>) => ({ sourceDir: '/usr/lib/ipxe', tftpDir: '/d/tftp', found });
    expect(checkIpxe({ dhcp: dhcp(), ipxe: ipxe({ 'undionly.kpxe': false, 'ipxe.efi': false }) }).status).toBe('fail');
    const some = checkIpxe({ dhcp: dhcp(), ipxe: ipxe({ 'undionly.kpxe': false, 'ipxe.efi': true }) });
    expect(some.status).toBe('warn');
    expect(some.message).toContain('undionly.kpxe');
    expect(some.message).not.toContain('ipxe.efi');
    expect(checkIpxe({ dhcp: dhcp(), ipxe: ipxe({ 'undionly.kpxe': true, 'ipxe.efi': true }) }).status).toBe('ok');
  });

  it('interface: missing, down, without the management address fail; no carrier warns; unknown warns', () => {
    const nic = (over: object) => [{ name: 'enp0s3', up: true, carrier: true, addresses: ['10.10.0.1', 'fe80::1'], ...over }];
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: [{ name: 'eth0', up: true, carrier: true, addresses: [] }] })).toMatchObject({ status: 'fail', message: expect.stringContaining('does not exist') });
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: nic({ up: false }) })).toMatchObject({ status: 'fail', fix: expect.stringContaining('ip link set enp0s3 up') });
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: nic({ addresses: ['10.10.0.5'] }) })).toMatchObject({ status: 'fail', message: expect.stringContaining('management address 10.10.0.1') });
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: nic({ carrier: false }) }).status).toBe('warn');
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: nic({ up: null, carrier: null }) }).status).toBe('warn');
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: null }).message).toMatch(/^unknown: /);
    expect(checkDhcpInterface({ dhcp: dhcp(), interfaces: nic({}) }).status).toBe('ok');
    expect(checkDhcpInterface({ dhcp: dhcp({ mode: 'proxy' }), interfaces: nic({ addresses: ['10.10.0.5'] }) }).status).toBe('ok');
    expect(checkDhcpInterface({ dhcp: dhcp({ enabled: false }), interfaces: null }).status).toBe('ok');
    expect(checkDhcpInterface({ dhcp: dhcp({ interface: undefined }), interfaces: nic({}) }).status).toBe('fail');
  });
});

describe('what the profiles need', () => {
  it('OS tree: none is a fail; a tree under fleet\'s /repo lacking the installer fails; one elsewhere is unknown (warn)', () => {
    expect(checkOsTree({ profile: 'p', tree: '', local: null }).status).toBe('fail');
    const lacking = checkOsTree({ profile: 'p', tree: 'http://10.10.0.1:8080/repo/alma', local: { dir: '/d/www/repo/alma', kernel: true, initrd: false } });
    expect(lacking).toMatchObject({ id: 'os-tree:p', status: 'fail' });
    expect(lacking.message).toContain('images/pxeboot/initrd.img');
    expect(lacking.message).not.toContain('vmlinuz');
    expect(checkOsTree({ profile: 'p', tree: 'http://10.10.0.1:8080/repo/alma', local: { dir: '/d', kernel: true, initrd: true } }).status).toBe('ok');
    const elsewhere = checkOsTree({ profile: 'p', tree: 'http://10.10.0.1/repositories/os', local: null });
    expect(elsewhere.status).toBe('warn');
    expect(elsewhere.message).toMatch(/^unknown: /);
  });

  it('image: fail when the store lacks it, ok with its digest, warn when the store cannot be read', () => {
    expect(checkImage({ profile: 'p', image: 'debian12', digest: null })).toMatchObject({ id: 'image:p', status: 'fail', fix: expect.stringContaining('fleet image build debian12') });
    expect(checkImage({ profile: 'p', image: 'debian12', digest: `sha256:${'a'.repeat(64)}` }).status).toBe('ok');
    expect(checkImage({ profile: 'p', image: 'debian12', digest: null, unknown: 'EACCES' }).status).toBe('warn');
  });

  it('boot environment: needed only by image profiles', () => {
    expect(checkBootenv({ imageProfiles: [], current: null }).status).toBe('ok');
    expect(checkBootenv({ imageProfiles: ['disk'], current: null })).toMatchObject({ status: 'fail', fix: expect.stringContaining('fleet bootenv build') });
    expect(checkBootenv({ imageProfiles: ['disk'], current: '/d/bootenv/k' }).status).toBe('ok');
  });

  it('agent bundle: fail for kickstart profiles, warn when only images (they carry the agent)', () => {
    const files = { 'fleet-agent': false, 'fleet-agent.service': true };
    expect(checkAgentBundle({ dir: '/d/www/agent', files, kickstartProfiles: ['compute'] })).toMatchObject({ status: 'fail', fix: 'agent/package/build.sh --out /d/www/agent' });
    expect(checkAgentBundle({ dir: '/d/www/agent', files, kickstartProfiles: [] }).status).toBe('warn');
    expect(checkAgentBundle({ dir: '/d/www/agent', files: { 'fleet-agent': true }, kickstartProfiles: ['compute'] }).status).toBe('ok');
    // Built from another agent's sources (fleet-agent.source differs): a warning, with the way out.
    const stale = checkAgentBundle({ dir: '/d/www/agent', files: { 'fleet-agent': true }, kickstartProfiles: ['compute'], stale: true });
    expect(stale).toMatchObject({ status: 'warn', fix: expect.stringContaining('fleet image build') });
    expect(stale.message).toMatch(/built from other agent sources .*kickstart installs of compute would get that agent/);
  });
});

describe('host: clock, disk, BMC routes', () => {
  it('clock: yes ok, no warn, unknown warn (never ok)', () => {
    expect(checkClock({ synchronized: 'yes' }).status).toBe('ok');
    expect(checkClock({ synchronized: 'no' }).status).toBe('warn');
    expect(checkClock({ synchronized: null, unknown: 'timedatectl is not installed' })).toMatchObject({ status: 'warn', message: 'unknown: timedatectl is not installed' });
  });

  it('disk: fail under 1 GiB, warn under 5 GiB, unknown warns', () => {
    const d = (freeBytes: number | null) => checkDisk({ dataDir: '/d', measured: '/d', freeBytes }).status;
    expect(d(0.5 * GiB)).toBe('fail');
    expect(d(1 * GiB)).toBe('warn');
    expect(d(4.9 * GiB)).toBe('warn');
    expect(d(5 * GiB)).toBe('ok');
    expect(d(null)).toBe('warn');
  });

  it('BMC addresses grouped by the declared BMC subnet, else by /24: one lookup each', () => {
    expect(bmcGroups(['10.10.101.1', '10.10.103.1', '10.10.103.2', '192.168.5.9', '192.168.5.10'], '10.10.100.0/22')).toEqual([
      { group: '10.10.100.0/22', probe: '10.10.101.1', nodes: 3 },
      { group: '192.168.5.0/24', probe: '192.168.5.9', nodes: 2 },
    ]);
    expect(bmcGroups([], undefined)).toEqual([]);
  });

  it('BMC route: a route is ok, none fails, no lookup is unknown', () => {
    const g = { group: '10.10.100.0/22', probe: '10.10.101.1', nodes: 6 };
    expect(checkBmcRoute({ ...g, route: { dev: 'eth1' } }).status).toBe('ok');
    expect(checkBmcRoute({ ...g, route: { unreachable: 'Network is unreachable' } })).toMatchObject({ id: 'bmc-route:10.10.100.0/22', status: 'fail' });
    expect(checkBmcRoute({ ...g, route: null, unknown: 'no ip' }).status).toBe('warn');
  });
});

describe('which failures block a reinstall', () => {
  const f = (id: string, status: Finding['status']): Finding => ({ id, status, message: id, fix: 'x' });
  const findings = [f('boot-endpoint', 'ok'), f('image:disk', 'fail'), f('bootenv', 'fail'), f('os-tree:compute', 'ok'), f('agent-bundle', 'fail'), f('clock', 'warn'), f('disk', 'fail')];
  const kick = { name: 'compute', os: { install: 'kickstart' as const } };
  const img = { name: 'disk', os: { install: 'image' as const } };

  it('a profile is blocked by the failures of its own chain only', () => {
    expect(blockingFindings(findings, [kick]).map((x) => x.id)).toEqual(['agent-bundle']);
    expect(blockingFindings(findings, [img]).map((x) => x.id)).toEqual(['image:disk', 'bootenv']);
    expect(blockingFindings(findings, [kick, img]).map((x) => x.id)).toEqual(['image:disk', 'bootenv', 'agent-bundle']);
    expect(blockingFindings([f('boot-endpoint', 'fail')], [kick]).map((x) => x.id)).toEqual(['boot-endpoint']);
  });

  it('exit code: 1 with any fail, 0 with warnings alone', () => {
    expect(doctorExit([f('a', 'ok'), f('b', 'warn')])).toBe(0);
    expect(doctorExit([f('a', 'ok'), f('b', 'warn'), f('c', 'fail')])).toBe(1);
  });

  it('formats one line with the fix', () => {
    expect(formatFinding(f('bootenv', 'fail'))).toBe('fail  bootenv: bootenv — fix: x');
    expect(formatFinding({ id: 'disk', status: 'ok', message: 'fine', fix: '' })).toBe('ok    disk: fine');
  });
});

describe('nfs-server (diskless profiles)', () => {
  it('is needed only by diskless profiles, and fails with the package to install when ganesha is missing', () => {
    expect(checkNfsServer({ disklessProfiles: [], missing: 'ganesha.nfsd is not installed' })).toMatchObject({ id: 'nfs-server', status: 'ok' });
    expect(checkNfsServer({ disklessProfiles: ['netroot'], missing: null })).toMatchObject({ status: 'ok', message: expect.stringMatching(/netroot/) });
    expect(checkNfsServer({ disklessProfiles: ['a', 'b'], missing: 'ganesha.nfsd is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)' })).toMatchObject({
      status: 'fail',
      message: expect.stringMatching(/profiles a, b cannot boot diskless/),
      fix: 'apt-get install nfs-ganesha nfs-ganesha-vfs',
    });
    expect(profileDependencies({ name: 'netroot', os: { install: 'diskless' } })).toContain('nfs-server');
    expect(profileDependencies({ name: 'ram', os: { install: 'stateless' } })).not.toContain('nfs-server');
  });
});

/**
 * dnsmasq config rendering: golden files for seed 000's cluster in both modes
 * (UPDATE_GOLDEN=1 rewrites them), value validation (DESIGN §4), and real
 * dnsmasq accepting every generated config (`dnsmasq --test`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { findExecutable } from '../../../common/executable.js';
import type { ClusterSpec, NodeSpec } from '../../../server/model.js';
import {
  type DnsmasqConfigInput,
  dnsmasqPaths,
  dnsmasqSettingsFromCluster,
  renderDnsmasqConfig,
  reservationsOf,
} from '../../../server/netboot/dnsmasq/index.js';
import { expectGolden } from '../../helpers/golden.js';

function node(name: string, ip: string, macs: string[], profile = 'compute'): NodeSpec {
  return { name, profile, ip, macs, pet: false };
}

/** Seed 000's cluster (examples/seed-cluster.yaml), built by hand so that this test does not depend on the config parser. */
const SEED: ClusterSpec = {
  cluster: { name: 'valhalla', domain: 'cluster.local', timezone: 'Europe/Brussels', managementAddress: '10.10.0.1', managementName: 'odin' },
  networks: {
    provisioning: {
      subnet: '10.10.0.0/16',
      unknownRange: { start: '10.10.254.1', end: '10.10.254.254' },
      dns: ['10.10.0.1'],
      ntp: ['10.10.0.1'],
      interface: 'enp0s3',
    },
    bmc: { subnet: '10.10.100.0/22' },
  },
  netboot: { dhcp: { enabled: true, mode: 'authoritative' } },
  credentials: [],
  profiles: [],
  nodes: [
    node('thor', '10.10.1.1', ['08:00:27:18:68:bc'], 'storage'),
    node('heimdall', '10.10.2.1', ['08:00:27:18:58:bc'], 'login'),
    node('valkyrie01', '10.10.3.1', ['08:00:27:18:67:bc']),
    node('valkyrie02', '10.10.3.2', ['08:00:27:18:69:bc']),
    node('valkyrie03', '10.10.3.3', ['08:00:27:18:6a:bc'], 'compute_gpu'),
    node('valkyrie04', '10.10.3.4', ['08:00:27:18:6b:bc', '08:00:27:18:6b:bd'], 'compute_gpu'),
  ],
};

const PATHS = dnsmasqPaths('/var/lib/fleet');

function seedInput(mode: 'authoritative' | 'proxy', extra: Partial<DnsmasqConfigInput> = {}): DnsmasqConfigInput {
  const spec: ClusterSpec = { ...SEED, netboot: { dhcp: { enabled: true, mode } } };
  return {
    ...dnsmasqSettingsFromCluster(spec),
    paths: { ...PATHS },
    user: 'dnsmasq',
    hosts: reservationsOf(spec.nodes),
    ...extra,
  };
}

function hostsListing(hosts: Map<string, string>): string {
  return [...hosts].map(([f, t]) => `${f}: ${t}`).join('');
}

function invalid(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

describe('renderDnsmasqConfig: seed 000 golden files', () => {
  it('authoritative mode', () => {
    const out = renderDnsmasqConfig(seedInput('authoritative'));
    expectGolden('dnsmasq-authoritative.conf', out.conf);
    expectGolden('dnsmasq-authoritative-hosts.conf', hostsListing(out.hosts));
    expect(out.dnsHosts.size).toBe(0);
  });

  it('proxy mode', () => {
    const out = renderDnsmasqConfig(seedInput('proxy'));
    expectGolden('dnsmasq-proxy.conf', out.conf);
    expect(out.hosts.size).toBe(0);
    expect(out.conf).toContain('dhcp-range=10.10.0.0,proxy,255.255.0.0');
    expect(out.conf).not.toMatch(/dhcp-authoritative|dhcp-hostsdir|dhcp-boot/);
  });

  it('reservations: one file per MAC, the IP on the primary MAC only', () => {
    const { hosts } = renderDnsmasqConfig(seedInput('authoritative'));
    expect(hosts.get('08-00-27-18-68-bc')).toBe('08:00:27:18:68:bc,10.10.1.1,thor\n');
    expect(hosts.get('08-00-27-18-6b-bc')).toBe('08:00:27:18:6b:bc,10.10.3.4,valkyrie04\n');
    expect(hosts.get('08-00-27-18-6b-bd')).toBe('08:00:27:18:6b:bd,valkyrie04\n');
    expect(hosts.size).toBe(7);
  });

  it('boot files by architecture and user class, next-server, options', () => {
    const { conf } = renderDnsmasqConfig(seedInput('authoritative'));
    const lines = conf.split('\n');
    for (const l of [
      'interface=enp0s3',
      'except-interface=lo',
      'port=0',
      'dhcp-authoritative',
      'dhcp-range=10.10.254.1,10.10.254.254,255.255.0.0,600',
      'dhcp-match=set:ipxe,175',
      'dhcp-userclass=set:ipxe,iPXE',
      'dhcp-match=set:bios,option:client-arch,0',
      'dhcp-match=set:efi64,option:client-arch,7',
      'dhcp-match=set:efi64,option:client-arch,9',
      'dhcp-boot=tag:ipxe,http://10.10.0.1:8080/boot.ipxe,,10.10.0.1',
      'dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,,10.10.0.1',
      'dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,10.10.0.1',
      'dhcp-option=option:dns-server,10.10.0.1',
      'dhcp-option=option:ntp-server,10.10.0.1',
      'dhcp-option=option:domain-name,cluster.local',
      'enable-tftp',
      'tftp-secure',
      'dhcp-script=/var/lib/fleet/dnsmasq/dhcp-hook',
      'script-on-renewal',
    ]) {
      expect(lines, l).toContain(l);
    }
    expect(conf).not.toContain('option:router'); // seed 000 sets no gateway
    expect(conf).not.toContain('tag:arm64,'); // no arm64 binary
  });

  it('options: snponly.efi, arm64, gateway, lease time, no-ping, DNS for node names', () => {
    const { conf, dnsHosts } = renderDnsmasqConfig(
      seedInput('authoritative', {
        efiBinary: 'snponly.efi',
        arm64Binary: 'snponly-arm64.efi',
        gateway: '10.10.0.254',
        leaseTime: 3600,
        pingCheck: false,
        dnsServer: {},
        routerAdvertisements: true,
      }),
    );
    expect(conf).toContain('\nenable-ra\ndhcp-range=::,constructor:enp0s3,ra-only\n');
    expect(conf).toContain('dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,10.10.0.1');
    expect(conf).toContain('dhcp-boot=tag:!ipxe,tag:arm64,snponly-arm64.efi,,10.10.0.1');
    expect(conf).toContain('dhcp-option=option:router,10.10.0.254');
    expect(conf).toContain('dhcp-range=10.10.254.1,10.10.254.254,255.255.0.0,3600');
    expect(conf).toContain('\nno-ping\n');
    expect(conf).toContain('\nport=53\n');
    expect(conf).toContain('local=/cluster.local/');
    expect(conf).not.toContain('port=0');
    expect(dnsHosts.get('thor')).toBe('10.10.1.1 thor.cluster.local thor\n');
  });

  it('router advertisements follow netboot.dhcp.router_advertisements (off by default)', () => {
    const on = dnsmasqSettingsFromCluster({ ...SEED, netboot: { dhcp: { enabled: true, mode: 'authoritative', routerAdvertisements: true } } });
    expect(on.routerAdvertisements).toBe(true);
    const conf = renderDnsmasqConfig({ ...on, paths: { ...PATHS }, user: 'dnsmasq', hosts: [] }).conf;
    expect(conf).toContain('\nenable-ra\n');
    expect(conf).toContain(`dhcp-range=::,constructor:${on.interface},ra-only`);
    const off = dnsmasqSettingsFromCluster({ ...SEED, netboot: { dhcp: { enabled: true, mode: 'authoritative' } } });
    expect(off.routerAdvertisements).toBeUndefined();
    expect(renderDnsmasqConfig({ ...off, paths: { ...PATHS }, user: 'dnsmasq', hosts: [] }).conf).not.toContain('enable-ra');
  });

  it('boot script URL follows netboot.http.listen', () => {
    const s = dnsmasqSettingsFromCluster({ ...SEED, netboot: { dhcp: { enabled: true, mode: 'authoritative' }, http: { listen: '0.0.0.0:8081' } } });
    expect(s.bootScriptUrl).toBe('http://10.10.0.1:8081/boot.ipxe');
    expect(dnsmasqSettingsFromCluster(SEED, { serverUrl: 'http://10.10.0.1/' }).bootScriptUrl).toBe('http://10.10.0.1/boot.ipxe');
  });
});

describe('renderDnsmasqConfig: every value is validated, never escaped', () => {
  it('a bad interface name', () => {
    const e = invalid(() => renderDnsmasqConfig(seedInput('authoritative', { interface: 'eth0\nport=53' })));
    expect(e.message).toContain('interface');
    invalid(() => renderDnsmasqConfig(seedInput('authoritative', { interface: 'a-very-long-interface-name' })));
  });

  it('a missing interface in the cluster file', () => {
    const { interface: _i, ...prov } = SEED.networks.provisioning;
    const e = invalid(() => dnsmasqSettingsFromCluster({ ...SEED, networks: { provisioning: prov } }));
    expect(e.message).toContain('netboot.dhcp.interface');
  });

  it('bad MACs, IPs and names in reservations; all problems are listed', () => {
    const e = invalid(() =>
      renderDnsmasqConfig(
        seedInput('authoritative', {
          hosts: [
            { name: 'n1', ip: '10.10.1.1', macs: ['08:00:27:18:68:zz'] },
            { name: 'n2', ip: '10.20.1.1', macs: ['08:00:27:18:68:01'] },
            { name: 'n3', ip: '10.10.254.7', macs: ['08:00:27:18:68:02'] },
            { name: 'N4', ip: '10.10.1.4', macs: ['08:00:27:18:68:03'] },
            { name: 'n5', ip: '10.10.1.5', macs: ['08:00:27:18:68:01'] },
            { name: 'n6', ip: '10.10.1.1', macs: ['01:00:27:18:68:04'] },
            { name: 'n7', ip: '10.10.1.7\nport=53', macs: ['08:00:27:18:68:05'] },
          ],
        }),
      ),
    );
    const problems = (e.details as { problems: string[] }).problems;
    expect(problems.join('\n')).toMatch(/08:00:27:18:68:zz.*not a unicast MAC/);
    expect(problems.join('\n')).toMatch(/10\.20\.1\.1 is outside/);
    expect(problems.join('\n')).toMatch(/10\.10\.254\.7 is inside the unknown range/);
    expect(problems.join('\n')).toMatch(/N4.*lower-case/);
    expect(problems.join('\n')).toMatch(/08:00:27:18:68:01 is already node n2's/);
    expect(problems.join('\n')).toMatch(/ip 10\.10\.1\.1 is already node n1's/);
    expect(problems.join('\n')).toMatch(/01:00:27:18:68:04.*not a unicast MAC/);
    expect(problems.join('\n')).toMatch(/n7 ip .* is not an IPv4 address/);
  });

  it('bad settings: domain, URL, range, addresses, binaries, paths, user, lease time', () => {
    const cases: Partial<DnsmasqConfigInput>[] = [
      { domain: 'cluster.local\nport=53' },
      { bootScriptUrl: 'http://10.10.0.1:8080/boot.ipxe,evil' },
      { bootScriptUrl: 'http://10.10.0.1/boot.ipxe?x=1' },
      { bootScriptUrl: `http://10.10.0.1/${'a'.repeat(130)}` },
      { unknownRange: { start: '10.10.254.254', end: '10.10.254.1' } },
      { unknownRange: { start: '10.10.254.1', end: '10.11.0.1' } },
      { serverAddress: '192.168.1.1' },
      { gateway: '10.10.0.0' },
      { dns: ['10.10.0.1', 'dns.example'] },
      { ntp: ['256.1.1.1'] },
      { efiBinary: '../etc/passwd' },
      { arm64Binary: 'a b' },
      { leaseTime: 30 },
      { subnet: '10.10.0.1/16' },
      { user: 'root;x' },
      { paths: { ...PATHS, tftpRoot: '/srv/tftp,/etc' } },
      { paths: { ...PATHS, hostsDir: 'relative/hosts' } },
      { paths: { ...PATHS, leaseFile: '/var/lib/../../etc/shadow' } },
      { mode: 'other' as 'proxy' },
    ];
    for (const c of cases) invalid(() => renderDnsmasqConfig(seedInput('authoritative', c)));
  });
});

const DNSMASQ = findExecutable('dnsmasq');

describe.skipIf(!DNSMASQ)('dnsmasq --test accepts every generated config', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fleet-dnsmasq-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function check(name: string, input: DnsmasqConfigInput): void {
    const paths = dnsmasqPaths(path.join(dir, name));
    for (const d of [paths.stateDir, paths.hostsDir, paths.dnsHostsDir, paths.tftpRoot]) mkdirSync(d, { recursive: true });
    const out = renderDnsmasqConfig({ ...input, paths: { ...paths, hookScript: input.paths.hookScript === null ? null : paths.hookScript } });
    writeFileSync(paths.confFile, out.conf);
    for (const [f, t] of out.hosts) writeFileSync(path.join(paths.hostsDir, f), t);
    // dnsmasq prints "syntax check OK." on stderr and exits 0; execFileSync throws on any other exit.
    execFileSync(DNSMASQ!, ['--test', `--conf-file=${paths.confFile}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (input.paths.hookScript === null) expect(out.conf).not.toContain('dhcp-script');
  }

  it('authoritative', () => check('auth', seedInput('authoritative')));
  it('proxy', () => check('proxy', seedInput('proxy')));
  it('with every option', () =>
    check('all', seedInput('authoritative', { efiBinary: 'snponly.efi', arm64Binary: 'snponly-arm64.efi', gateway: '10.10.0.254', pingCheck: false, logDhcp: true, dnsServer: { port: 5353 }, routerAdvertisements: true })));
  it('proxy with arm64 and no hook', () => check('proxy2', { ...seedInput('proxy', { arm64Binary: 'ipxe-arm64.efi' }), paths: { ...PATHS, hookScript: null } }));
});

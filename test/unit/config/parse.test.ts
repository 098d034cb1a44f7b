import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, formatConfigIssues, parseConfig, type ConfigIssue } from '../../../server/config/index.js';
import { installKernelArgs } from '../../../server/netboot/decide.js';
import { renderIpxe } from '../../../server/netboot/render/ipxe.js';
import { loadTemplate } from '../../../server/netboot/render/templates.js';
import { kickstartUrl, treeInitrdUrl, treeKernelUrl } from '../../../server/netboot/render/urls.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (rel: string) => readFileSync(root + rel, 'utf8');

type Obj = Record<string, any>;

/** A small valid config as an object; tests change one thing and look at the errors. */
function base(): Obj {
  return {
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' } },
    credentials: { 'bmc-admin': { username: 'ADMIN', password_env: 'FLEET_BMC_PASSWORD' } },
    profiles: { compute: { os: { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' } } },
    nodes: {
      'valkyrie[01-02]': {
        profile: 'compute',
        ip: '10.10.3.[1-2]',
        mac: ['08:00:27:00:03:01', '08:00:27:00:03:02'],
        bmc: { address: '10.10.103.[1-2]', credentials: 'bmc-admin' },
      },
    },
  };
}

function yamlOf(o: Obj | string): string {
  return typeof o === 'string' ? o : stringify(o);
}

/** Parses and returns the issues; fails the test when the config is accepted or something else is thrown. */
function issues(o: Obj | string): ConfigIssue[] {
  try {
    parseConfig(yamlOf(o));
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    return configIssuesOf(e);
  }
  throw new Error('expected config.invalid, but the config was accepted');
}

/** The one issue of a config with exactly one mistake. */
function oneIssue(o: Obj | string): ConfigIssue {
  const list = issues(o);
  expect(list, JSON.stringify(list, null, 2)).toHaveLength(1);
  return list[0]!;
}

function lineOf(text: string, marker: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`marker ${marker} not found`);
  return i + 1;
}

describe('examples/seed-cluster.yaml', () => {
  const spec = parseConfig(read('examples/seed-cluster.yaml'), { source: 'seed-cluster.yaml' });

  it('yields the seed cluster', () => {
    expect(spec.cluster).toEqual({ name: 'valhalla', domain: 'cluster.local', timezone: 'Europe/Brussels', managementAddress: '10.10.0.1', managementName: 'odin' });
    expect(spec.networks.provisioning).toEqual({
      subnet: '10.10.0.0/16',
      unknownRange: { start: '10.10.254.1', end: '10.10.254.254' },
      dns: ['10.10.0.1'],
      ntp: ['10.10.0.1'],
      interface: 'enp0s3',
    });
    expect(spec.credentials).toEqual([{ name: 'bmc-admin', username: 'ADMIN', passwordFile: 'secrets/bmc-admin.password' }]);
    expect(spec.netboot).toEqual({ dhcp: { enabled: true, mode: 'authoritative' } });
  });

  it('expands the nodes with their IPs, MACs and BMCs in order', () => {
    const rows = spec.nodes.map((n) => [n.name, n.profile, n.ip, n.macs.join(','), n.bmc?.address, n.bmc?.port, n.bmc?.protocol, n.bmc?.credentials, n.pet]);
    expect(rows).toEqual([
      ['thor', 'storage', '10.10.1.1', '08:00:27:18:68:bc', '10.10.101.1', 623, 'ipmi', 'bmc-admin', true],
      ['heimdall', 'login', '10.10.2.1', '08:00:27:18:58:bc', '10.10.102.1', 623, 'ipmi', 'bmc-admin', true],
      ['valkyrie01', 'compute', '10.10.3.1', '08:00:27:18:67:bc', '10.10.103.1', 623, 'ipmi', 'bmc-admin', false],
      ['valkyrie02', 'compute', '10.10.3.2', '08:00:27:18:69:bc', '10.10.103.2', 623, 'ipmi', 'bmc-admin', false],
      ['valkyrie03', 'compute_gpu', '10.10.3.3', '08:00:27:18:6a:bc', '10.10.103.3', 623, 'ipmi', 'bmc-admin', false],
      ['valkyrie04', 'compute_gpu', '10.10.3.4', '08:00:27:18:6b:bc', '10.10.103.4', 623, 'ipmi', 'bmc-admin', false],
    ]);
  });

  it('has the profiles and roles of the seed', () => {
    expect(spec.profiles.map((p) => p.name)).toEqual(['storage', 'login', 'compute', 'compute_gpu']);
    const gpu = spec.profiles.find((p) => p.name === 'compute_gpu')!;
    expect(gpu.os).toEqual({ install: 'kickstart', tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' });
    expect(gpu.kernelArgs).toEqual(['nomodeset', 'modprobe.blacklist=nouveau', 'nouveau.modeset=0', 'rd.driver.blacklist=nouveau']);
    expect(gpu.packages).toEqual(['@core']);
    expect(gpu.rootPasswordHash).toMatch(/^\$6\$7zvrwimYcypA8JWc\$/);
    expect(gpu.sshKeys).toEqual(['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl root@odin.cluster.local']);
    expect(gpu.roles.gpu).toEqual({ vendor: 'nvidia', packages: ['kernel-devel', 'kernel-headers', '@nvidia-driver:latest-dkms'], blacklistNouveau: true });
    expect(gpu.roles.repos?.repos.map((r) => [r.name, r.baseurl, r.gpgcheck, r.enabled])).toEqual([
      ['BaseOS', 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS', false, true],
      ['AppStream', 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/AppStream', false, true],
      ['Extra', 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/extra', false, true],
    ]);
    expect(gpu.roles.chrony).toEqual({ servers: ['10.10.0.1'], makestep: '1.0 3' });
    expect(gpu.roles.hosts).toEqual({ enabled: true });
    expect(gpu.roles.nfs?.mounts).toEqual([
      { source: 'thor:/home', target: '/home', options: 'rw,rsize=32768,wsize=32768,intr,nfsvers=4,bg' },
      { source: 'thor:/software', target: '/software', options: 'ro,intr,nfsvers=4,bg' },
    ]);
    expect(gpu.roles.users).toEqual({
      groups: [{ name: 'myuser', gid: 2001 }],
      users: [{ name: 'myuser', uid: 2001, gid: 2001, group: 'myuser', shell: '/bin/bash', home: '/home/myuser', sshKeys: [] }],
    });
    const storage = spec.profiles.find((p) => p.name === 'storage')!;
    expect(storage.roles.nfs).toBeUndefined();
    expect(storage.roles.nfsServer).toEqual({
      exports: [
        { path: '/home', clients: '10.10.0.0/16', options: 'rw,sync,no_root_squash' },
        { path: '/software', clients: '10.10.0.0/16', options: 'ro,sync' },
      ],
    });
    expect(spec.profiles.find((p) => p.name === 'login')!.roles.nfsServer).toBeUndefined();
    expect(storage.roles.gpu).toBeUndefined();
    expect(storage.kernelArgs).toEqual([]);
  });

  it('rejects the seed as written: thor and valkyrie02 share MAC 08:00:27:18:68:BC', () => {
    const text = read('examples/seed-cluster.yaml').replace('- 08:00:27:18:69:bc', '- 08:00:27:18:68:BC');
    const i = oneIssue(text);
    expect(i.path).toBe('nodes.valkyrie[01-02].mac[1]');
    expect(i.message).toBe('MAC 08:00:27:18:68:bc of valkyrie02 is already used by thor (nodes.thor.mac)');
    expect(i.line).toBe(lineOf(text, '- 08:00:27:18:68:BC'));
  });
});

describe('a file with five mistakes', () => {
  const text = read('test/fixtures/config/five-mistakes.yaml');

  it('reports exactly those five, each with path and line, in file order', () => {
    let err: unknown;
    try {
      parseConfig(text, { source: 'five-mistakes.yaml' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).message).toBe('five-mistakes.yaml has 5 errors');
    const got = configIssuesOf(err).map((i) => ({ path: i.path, line: i.line, message: i.message }));
    expect(got).toEqual([
      { path: 'profiles.compute.packges', line: lineOf(text, 'mistake 1'), message: "unknown key 'packges' (did you mean 'packages'?)" },
      { path: 'nodes.thor.profile', line: lineOf(text, 'mistake 2'), message: 'unknown profile storage; defined profiles: compute' },
      { path: 'nodes.heimdall.ip', line: lineOf(text, 'mistake 3'), message: '10.20.2.1 is outside 10.10.0.0/16' },
      { path: 'nodes.valkyrie[01-02].mac[1]', line: lineOf(text, 'mistake 4'), message: 'MAC 08:00:27:18:68:bc of valkyrie02 is already used by thor (nodes.thor.mac)' },
      { path: 'nodes.valkyrie[01-02].bmc.address', line: lineOf(text, 'mistake 5'), message: 'nodeset/range length mismatch: 2 nodes, 3 values' },
    ]);
  });

  it('formats them compiler-style', () => {
    let out = '';
    try {
      parseConfig(text);
    } catch (e) {
      out = formatConfigIssues('fleet.yaml', configIssuesOf(e));
    }
    const lines = out.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[2]).toBe(`fleet.yaml:${lineOf(text, 'mistake 3')}:9 nodes.heimdall.ip: 10.20.2.1 is outside 10.10.0.0/16`);
  });
});

describe('parseConfig', () => {
  it('accepts the base config and the minimal fixture', () => {
    expect(parseConfig(yamlOf(base())).nodes.map((n) => n.name)).toEqual(['valkyrie01', 'valkyrie02']);
    const min = parseConfig(read('test/fixtures/config/minimal.yaml'));
    expect(min.nodes).toEqual([{ name: 'valkyrie01', profile: 'compute', ip: '10.10.3.1', macs: [], pet: false }]);
    expect(min.credentials).toEqual([]);
    // dns and ntp default to the management address
    expect(min.networks.provisioning.dns).toEqual(['10.10.0.1']);
    expect(min.networks.provisioning.ntp).toEqual(['10.10.0.1']);
  });

  it('reports YAML syntax errors with their line', () => {
    const text = 'cluster:\n  name: lab\n  domain: [cluster.local\nnodes: {}\n';
    const list = issues(text);
    expect(list.length).toBeGreaterThan(0);
    expect(list[0]!.message).toMatch(/^YAML syntax error: /);
    expect(list[0]!.line).toBeGreaterThanOrEqual(3);
  });

  it('reports duplicate YAML keys', () => {
    const i = issues('cluster: {}\ncluster: {}\n')[0]!;
    expect(i.message).toMatch(/YAML syntax error: .*unique/);
    expect(i.line).toBe(2);
  });

  it('reports an empty file and a non-mapping document', () => {
    expect(oneIssue('').message).toBe('fleet.yaml is empty');
    expect(oneIssue('- a\n- b\n').message).toBe('expected a mapping, got a list');
  });

  it('reports unknown keys everywhere, with the closest known key', () => {
    const o = base();
    o.networks.provisioning.unknownRange = o.networks.provisioning.unknown_range;
    delete o.networks.provisioning.unknown_range;
    o.nodes['valkyrie[01-02]'].bmc.adress = o.nodes['valkyrie[01-02]'].bmc.address;
    delete o.nodes['valkyrie[01-02]'].bmc.address;
    o.nodez = {};
    const list = issues(o);
    const msgs = list.map((i) => `${i.path}: ${i.message}`);
    // a misspelt required key is one mistake, reported once
    expect(msgs).toEqual([
      "networks.provisioning.unknownRange: unknown key 'unknownRange' (did you mean 'unknown_range'?)",
      "nodes.valkyrie[01-02].bmc.adress: unknown key 'adress' (did you mean 'address'?)",
      "nodez: unknown key 'nodez' (did you mean 'nodes'?)",
    ]);
  });

  it('reports a missing required key next to an unrelated unknown key', () => {
    const o = base();
    delete o.cluster.domain;
    o.cluster.flavour = 'x';
    expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "cluster.domain: 'domain' is required",
      "cluster.flavour: unknown key 'flavour'; expected one of: name, domain, timezone, management_address, management_name",
    ]);
  });

  it('lists the known keys when nothing is close', () => {
    const o = base();
    o.cluster.flavour = 'x';
    expect(oneIssue(o).message).toBe("unknown key 'flavour'; expected one of: name, domain, timezone, management_address, management_name");
  });

  it('reports wrong types', () => {
    const o = base();
    o.nodes['valkyrie[01-02]'].pet = 'yes';
    o.cluster.name = 123;
    o.profiles.compute.packages = 'vim';
    const msgs = issues(o).map((i) => `${i.path}: ${i.message}`);
    expect(msgs).toEqual([
      'cluster.name: expected a string, got a number (quote it to make it a string)',
      'profiles.compute.packages: expected a list, got a string',
      'nodes.valkyrie[01-02].pet: expected true or false, got a string',
    ]);
  });

  it('reports missing required fields', () => {
    const o = base();
    delete o.cluster.domain;
    delete o.profiles.compute.os;
    delete o.nodes['valkyrie[01-02]'].profile;
    delete o.networks;
    const msgs = issues(o).map((i) => `${i.path}: ${i.message}`);
    expect(msgs.sort()).toEqual([
      "cluster.domain: 'domain' is required",
      "networks: 'networks' is required",
      "nodes.valkyrie[01-02].profile: 'profile' is required",
      "profiles.compute.os: 'os' is required",
    ]);
  });

  it('treats an empty value of a required key as missing', () => {
    const i = oneIssue(yamlOf(base()).replace('timezone: Europe/Brussels', 'timezone:'));
    expect(i).toMatchObject({ path: 'cluster.timezone', message: "'timezone' is required", line: 4 });
  });

  describe('networks', () => {
    it('rejects a bad CIDR', () => {
      const o = base();
      o.networks.provisioning.subnet = '10.10.0.0/33';
      expect(oneIssue(o)).toMatchObject({ path: 'networks.provisioning.subnet', message: '10.10.0.0/33 is not a valid IPv4 CIDR (expected e.g. 10.10.0.0/16)' });
      o.networks.provisioning.subnet = '10.10.0.1/16';
      expect(oneIssue(o).message).toBe('10.10.0.1/16 has host bits set; did you mean 10.10.0.0/16?');
    });

    it('rejects a bad IP', () => {
      const o = base();
      o.cluster.management_address = '10.10.0.256';
      expect(oneIssue(o)).toMatchObject({ path: 'cluster.management_address', message: '10.10.0.256 is not a valid IPv4 address' });
      o.cluster.management_address = '10.10.0.01';
      expect(oneIssue(o).message).toBe('10.10.0.01 is not a valid IPv4 address');
    });

    it('rejects an unknown range outside the subnet or reversed', () => {
      const o = base();
      o.networks.provisioning.unknown_range = '10.20.254.1-10.20.254.254';
      expect(oneIssue(o)).toMatchObject({ path: 'networks.provisioning.unknown_range', message: 'unknown range 10.20.254.1-10.20.254.254 is outside 10.10.0.0/16' });
      o.networks.provisioning.unknown_range = '10.10.254.254-10.10.254.1';
      expect(oneIssue(o).message).toBe('range 10.10.254.254-10.10.254.1 is reversed: start is after end');
      o.networks.provisioning.unknown_range = { start: '10.10.254.1', end: '10.10.254.9' };
      expect(parseConfig(yamlOf(o)).networks.provisioning.unknownRange).toEqual({ start: '10.10.254.1', end: '10.10.254.9' });
      o.networks.provisioning.unknown_range = '10.10.254.1';
      expect(oneIssue(o).message).toMatch(/is not a range; expected START-END/);
    });

    it('rejects the management address and gateway outside the subnet', () => {
      const o = base();
      o.cluster.management_address = '192.168.1.1';
      o.networks.provisioning.gateway = '192.168.1.254';
      expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
        'cluster.management_address: 192.168.1.1 is outside 10.10.0.0/16',
        'networks.provisioning.gateway: 192.168.1.254 is outside 10.10.0.0/16',
      ]);
    });

    it('checks BMC addresses against the BMC network when one is declared', () => {
      const o = base();
      o.networks.bmc = { subnet: '10.10.103.0/24' };
      expect(() => parseConfig(yamlOf(o))).not.toThrow();
      o.networks.bmc = { subnet: '10.10.104.0/24' };
      expect(issues(o).map((i) => i.message)).toEqual(['10.10.103.1 is outside the BMC network 10.10.104.0/24', '10.10.103.2 is outside the BMC network 10.10.104.0/24']);
    });
  });

  describe('node addresses', () => {
    it('rejects an IP outside the provisioning subnet', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].ip = '10.20.3.[1-2]';
      const list = issues(o);
      expect(list.map((i) => i.message)).toEqual(['10.20.3.1 is outside 10.10.0.0/16', '10.20.3.2 is outside 10.10.0.0/16']);
      expect(list[0]!.path).toBe('nodes.valkyrie[01-02].ip');
    });

    it('rejects a node IP inside the unknown range, and the network/broadcast address', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].ip = ['10.10.254.7', '10.10.255.255'];
      expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
        'nodes.valkyrie[01-02].ip[0]: 10.10.254.7 is inside the unknown range 10.10.254.1-10.10.254.254, where undiscovered machines get leases',
        'nodes.valkyrie[01-02].ip[1]: 10.10.255.255 is the broadcast address of 10.10.0.0/16',
      ]);
    });

    it('rejects overlapping node IPs, including the management address and BMC addresses', () => {
      const o = base();
      o.nodes.thor = { profile: 'compute', ip: '10.10.3.2' };
      o.nodes.heimdall = { profile: 'compute', ip: '10.10.0.1' };
      o.nodes.loki = { profile: 'compute', ip: '10.10.103.1' };
      expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
        'nodes.thor.ip: 10.10.3.2 of thor is already used by valkyrie02 (nodes.valkyrie[01-02].ip)',
        'nodes.heimdall.ip: 10.10.0.1 of heimdall is already used by the management node (cluster.management_address)',
        'nodes.loki.ip: 10.10.103.1 of loki is already used by the BMC of valkyrie01 (nodes.valkyrie[01-02].bmc.address)',
      ]);
    });

    it('rejects a single IP, MAC or BMC address on a multi-node key (they would collide)', () => {
      for (const [field, value] of [
        ['ip', '10.10.3.1'],
        ['mac', '08:00:27:00:03:01'],
      ] as const) {
        const o = base();
        o.nodes['valkyrie[01-02]'][field] = value;
        const i = oneIssue(o);
        expect(i.path).toBe(`nodes.valkyrie[01-02].${field}`);
        expect(i.message).toMatch(new RegExp(`^a single ${field} cannot be shared by 2 nodes; give a range such as`));
      }
      // One BMC address on the same port would be two nodes on one BMC: refused on address:port.
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.address = '10.10.103.1';
      const i = oneIssue(o);
      expect(i.path).toBe('nodes.valkyrie[01-02].bmc.address');
      expect(i.message).toMatch(/^BMC 10\.10\.103\.1:623 of valkyrie02 is already the BMC of valkyrie01/);
    });

    it('accepts BMCs sharing one address on distinct ports (simulators)', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc = { address: '10.10.103.1', port: '[9001-9002]', protocol: 'ipmi', credentials: 'bmc-admin' };
      const spec = parseConfig(stringify(o));
      expect(spec.nodes.filter((n) => n.bmc).map((n) => `${n.name} ${n.bmc!.address}:${n.bmc!.port}`)).toEqual([
        'valkyrie01 10.10.103.1:9001',
        'valkyrie02 10.10.103.1:9002',
      ]);
    });
  });

  describe('Redfish bmc settings: system, auth, power_wait (issue 9)', () => {
    const chassis = (over: Obj = {}): Obj => {
      const o = base();
      o.nodes = {
        'blade[1-4]': {
          profile: 'compute',
          bmc: { address: '10.10.103.50', protocol: 'redfish', credentials: 'bmc-admin', system: 'Blade[1-4]', ...over },
        },
      };
      return o;
    };

    it('lets four nodes share one Redfish BMC, each naming its system (unique as address:port:system)', () => {
      const spec = parseConfig(stringify(chassis({ auth: 'basic', power_wait: 45 })));
      expect(spec.nodes.map((n) => n.bmc)).toEqual(
        [1, 2, 3, 4].map((i) => ({ address: '10.10.103.50', port: 443, protocol: 'redfish', credentials: 'bmc-admin', system: `Blade${i}`, auth: 'basic', powerWait: 45 })),
      );
    });

    it('leaves defaults out: no system, auth or power_wait when not written', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.protocol = 'redfish';
      expect(parseConfig(stringify(o)).nodes[0]!.bmc).toEqual({ address: '10.10.103.1', port: 443, protocol: 'redfish', credentials: 'bmc-admin' });
    });

    it('refuses two nodes on one BMC without distinct systems', () => {
      // one system for both
      const same = chassis({ system: ['Blade1', 'Blade1', 'Blade2', 'Blade3'] });
      const i1 = oneIssue(same);
      expect(i1.path).toBe('nodes.blade[1-4].bmc.system[1]');
      expect(i1.message).toMatch(/^BMC 10\.10\.103\.50:443 system Blade1 of blade2 is already the system of blade1/);
      // a single system for four nodes
      expect(oneIssue(chassis({ system: 'Blade1' })).message).toMatch(/^a single BMC system cannot be shared by 4 nodes/);
      // one node names a system, another on the same BMC does not
      const o = chassis();
      o.nodes['blade[1-4]'].bmc.system = 'Blade[1-4]';
      o.nodes.spare = { profile: 'compute', bmc: { address: '10.10.103.50', protocol: 'redfish', credentials: 'bmc-admin' } };
      const i2 = oneIssue(o);
      expect(i2.path).toBe('nodes.spare.bmc.address');
      expect(i2.message).toMatch(/^BMC 10\.10\.103\.50:443 of spare is already the BMC of blade1 .*name each node's system \(bmc\.system\)/);
    });

    it('refuses Redfish settings on an IPMI BMC, unknown auth modes, bad waits and bad system Ids', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.system = 'System[1-2]';
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].bmc.system', message: "bmc.system is a Redfish setting; this BMC's protocol is ipmi" });
      expect(oneIssue(chassis({ auth: 'digest' }))).toMatchObject({ path: 'nodes.blade[1-4].bmc.auth', message: 'unknown Redfish auth digest; expected one of auto, session, basic' });
      expect(oneIssue(chassis({ power_wait: 601 })).message).toBe('power_wait 601 must be 0-600 seconds');
      expect(oneIssue(chassis({ power_wait: '30s' })).path).toBe('nodes.blade[1-4].bmc.power_wait');
      expect(oneIssue(chassis({ system: ['Blade1', 'Blade2', 'Blade3', '../x'] })).message).toMatch(/^\.\.\/x is not a Redfish system Id/);
    });
  });

  describe('lockstep ranges', () => {
    it('steps every range with the expanded node names', () => {
      const o = base();
      o.nodes = {
        'valkyrie[01-16]': {
          profile: 'compute',
          ip: '10.10.3.[1-16]',
          mac: '08:00:27:00:03:[01-16]',
          bmc: { address: '10.10.103.[101-116]', port: '[9001-9016]', protocol: 'ipmi', credentials: 'bmc-admin' },
        },
      };
      const nodes = parseConfig(yamlOf(o)).nodes;
      expect(nodes).toHaveLength(16);
      expect(nodes[0]).toEqual({
        name: 'valkyrie01',
        profile: 'compute',
        ip: '10.10.3.1',
        macs: ['08:00:27:00:03:01'],
        bmc: { address: '10.10.103.101', port: 9001, protocol: 'ipmi', credentials: 'bmc-admin' },
        pet: false,
      });
      expect(nodes[15]).toMatchObject({ name: 'valkyrie16', ip: '10.10.3.16', macs: ['08:00:27:00:03:16'], bmc: { address: '10.10.103.116', port: 9016 } });
    });

    it('reports a length mismatch', () => {
      const o = base();
      o.nodes = { 'valkyrie[01-16]': { profile: 'compute', ip: '10.10.3.[1-8]' } };
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-16].ip', message: 'nodeset/range length mismatch: 16 nodes, 8 values' });
      o.nodes = { 'valkyrie[01-02]': { profile: 'compute', mac: ['08:00:27:00:03:01'] } };
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].mac', message: 'nodeset/range length mismatch: 2 nodes, 1 value' });
      o.nodes = { thor: { profile: 'compute', ip: '10.10.1.[1-2]' } };
      expect(oneIssue(o).message).toBe('nodeset/range length mismatch: 1 node, 2 values');
    });

    it('shares a single non-unique value (port) between the nodes', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.port = 6230;
      expect(parseConfig(yamlOf(o)).nodes.map((n) => n.bmc?.port)).toEqual([6230, 6230]);
    });

    it('gives several NICs per node with macs', () => {
      const o = base();
      delete o.nodes['valkyrie[01-02]'].mac;
      o.nodes['valkyrie[01-02]'].macs = ['08:00:27:00:03:[01-02]', ['08:00:27:00:04:01', '08:00:27:00:04:02']];
      o.nodes.thor = { profile: 'compute', macs: ['08:00:27:00:01:01', '08:00:27:00:01:02'] };
      expect(parseConfig(yamlOf(o)).nodes.map((n) => [n.name, n.macs])).toEqual([
        ['valkyrie01', ['08:00:27:00:03:01', '08:00:27:00:04:01']],
        ['valkyrie02', ['08:00:27:00:03:02', '08:00:27:00:04:02']],
        ['thor', ['08:00:27:00:01:01', '08:00:27:00:01:02']],
      ]);
      o.nodes.thor.mac = '08:00:27:00:01:09';
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.thor.macs', message: "use either 'mac' or 'macs', not both" });
    });

    it('reports a bad range in a value', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].ip = '10.10.3.[1-';
      expect(oneIssue(o).message).toMatch(/^bad range "?10\.10\.3\.\[1-"?: /);
    });
  });

  describe('BMC', () => {
    it('defaults the port by protocol: 623 for ipmi/ipmitool, 443 for redfish', () => {
      const ports: Record<string, number | undefined> = {};
      for (const protocol of ['ipmi', 'ipmitool', 'redfish', undefined]) {
        const o = base();
        if (protocol) o.nodes['valkyrie[01-02]'].bmc.protocol = protocol;
        const n = parseConfig(yamlOf(o)).nodes[0]!;
        ports[protocol ?? 'default'] = n.bmc?.port;
        if (!protocol) expect(n.bmc?.protocol).toBe('ipmi');
      }
      expect(ports).toEqual({ ipmi: 623, ipmitool: 623, redfish: 443, default: 623 });
    });

    it('rejects a bad protocol', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.protocol = 'impi';
      expect(oneIssue(o)).toMatchObject({
        path: 'nodes.valkyrie[01-02].bmc.protocol',
        message: "unknown BMC protocol impi (did you mean 'ipmi'?); expected one of ipmi, redfish, ipmitool",
      });
    });

    it('rejects bad ports', () => {
      for (const [port, msg] of [
        [0, 'port 0 must be an integer between 1 and 65535'],
        [70000, 'port 70000 must be an integer between 1 and 65535'],
        ['abc', 'port abc is not a number'],
        ['[65535-65536]', 'port 65536 must be an integer between 1 and 65535'],
      ] as const) {
        const o = base();
        o.nodes['valkyrie[01-02]'].bmc.port = port;
        expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].bmc.port', message: msg });
      }
    });

    it('rejects unknown credentials', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].bmc.credentials = 'bmc-admn';
      expect(oneIssue(o)).toMatchObject({
        path: 'nodes.valkyrie[01-02].bmc.credentials',
        message: "unknown credentials bmc-admn (did you mean 'bmc-admin'?); defined credentials: bmc-admin",
      });
    });
  });

  describe('nodes', () => {
    it('rejects an unknown profile', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].profile = 'gpu';
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].profile', message: 'unknown profile gpu; defined profiles: compute' });
    });

    it('rejects the same node declared by two keys', () => {
      const o = base();
      o.nodes['valkyrie[02-03]'] = { profile: 'compute', ip: '10.10.3.[12-13]' };
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[02-03]', message: 'node valkyrie02 is already declared by nodes.valkyrie[01-02]' });
    });

    it('rejects a bad nodeset key', () => {
      const o = base();
      o.nodes['valkyrie[01-'] = { profile: 'compute' };
      const i = oneIssue(o);
      expect(i.path).toBe('nodes.valkyrie[01-');
      expect(i.message).toMatch(/^bad nodeset key "?valkyrie\[01-"?: /);
    });

    it('rejects x;reboot as a node name with a clear message', () => {
      const o = base();
      o.nodes['x;reboot'] = { profile: 'compute' };
      const i = oneIssue(o);
      expect(i.path).toBe('nodes["x;reboot"]');
      expect(i.message).toBe(`"x;reboot" is not a valid node name: use an RFC 1123 host label (letters, digits and '-', not starting or ending with '-', no dots)`);
    });

    it('rejects node names that are not lower-case RFC 1123 labels', () => {
      for (const [key, msg] of [
        ['Thor', 'node name Thor must be lower case'],
        ['-thor', '-thor is not a valid node name: use an RFC 1123 host label'],
        ['thor.cluster', 'thor.cluster is not a valid node name: use an RFC 1123 host label'],
        ['n[1-2]-', 'n1- is not a valid node name: use an RFC 1123 host label'],
        ['a'.repeat(64), `node name ${'a'.repeat(64)} is longer than 63 characters`],
      ] as const) {
        const o = base();
        o.nodes[key] = { profile: 'compute' };
        const i = oneIssue(o);
        expect(i.message.startsWith(msg), i.message).toBe(true);
      }
    });

    it('rejects a bad MAC', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].mac = ['08:00:27:00:03:01', '08:00:27:00:03'];
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].mac[1]', message: '08:00:27:00:03 is not a valid MAC address (expected six hex pairs like 08:00:27:18:68:bc, unicast)' });
      o.nodes['valkyrie[01-02]'].mac = ['08:00:27:00:03:01', 'ff:ff:ff:ff:ff:ff'];
      expect(oneIssue(o).message).toMatch(/^ff:ff:ff:ff:ff:ff is not a valid MAC address/);
    });

    it('rejects duplicate MACs, also within one node', () => {
      const o = base();
      o.nodes['valkyrie[01-02]'].mac = ['08:00:27:00:03:01', '08-00-27-00-03-01'];
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.valkyrie[01-02].mac[1]', message: 'MAC 08:00:27:00:03:01 of valkyrie02 is already used by valkyrie01 (nodes.valkyrie[01-02].mac[0])' });
      o.nodes['valkyrie[01-02]'].mac = ['08:00:27:00:03:01', '08:00:27:00:03:02'];
      o.nodes.thor = { profile: 'compute', macs: ['08:00:27:00:01:01', '08:00:27:00:01:01'] };
      expect(oneIssue(o).message).toBe('MAC 08:00:27:00:01:01 is listed twice for thor');
    });

    it('rejects a node, profile or credential set with an empty value', () => {
      const o = base();
      o.nodes.thor = null;
      o.profiles.storage = null;
      o.credentials.other = null;
      expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
        'credentials.other: expected a mapping, got nothing',
        'profiles.storage: expected a mapping, got nothing',
        "nodes.thor: expected a mapping, got nothing (a node needs at least 'profile')",
      ]);
    });

    it('rejects the management node name as a node', () => {
      const o = base();
      o.cluster.management_name = 'odin';
      o.nodes.odin = { profile: 'compute' };
      expect(oneIssue(o)).toMatchObject({ path: 'nodes.odin', message: 'node odin has the name of the management node (cluster.management_name)' });
    });
  });

  describe('cluster', () => {
    it('rejects an invalid timezone format and an unknown timezone', () => {
      const o = base();
      o.cluster.timezone = 'Europe Brussels';
      expect(oneIssue(o)).toMatchObject({ path: 'cluster.timezone', message: '"Europe Brussels" is not a timezone name (expected an IANA name such as Europe/Brussels or UTC)' });
      o.cluster.timezone = 'Europe/Brusels';
      expect(oneIssue(o).message).toBe('unknown timezone Europe/Brusels (expected an IANA name such as Europe/Brussels)');
      o.cluster.timezone = 'UTC';
      expect(parseConfig(yamlOf(o)).cluster.timezone).toBe('UTC');
    });

    it('rejects a bad domain', () => {
      const o = base();
      o.cluster.domain = 'cluster..local';
      expect(oneIssue(o).message).toBe('cluster..local is not a valid DNS domain');
    });
  });

  describe('credentials', () => {
    const secret = 'Sup3r-Secret-Value!';

    it('rejects an inline password without echoing it', () => {
      const o = base();
      o.credentials['bmc-admin'].password = secret;
      let err: unknown;
      try {
        parseConfig(yamlOf(o));
      } catch (e) {
        err = e;
      }
      const list = configIssuesOf(err);
      expect(list).toEqual([
        expect.objectContaining({
          path: 'credentials.bmc-admin.password',
          message: 'inline passwords are not allowed: secrets must come from a file (password_file) or an environment variable (password_env)',
        }),
      ]);
      expect(JSON.stringify((err as FleetError).toJSON())).not.toContain(secret);
      expect(formatConfigIssues('fleet.yaml', list)).not.toContain(secret);
      expect(String(err)).not.toContain(secret);
    });

    it('never echoes a secret from a YAML syntax error either', () => {
      // yaml's pretty errors would quote this line, secret included
      const text = yamlOf(base()).replace('password_env: FLEET_BMC_PASSWORD', `password: ${secret} : x`);
      let err: unknown;
      try {
        parseConfig(text);
      } catch (e) {
        err = e;
      }
      const list = configIssuesOf(err);
      expect(list[0]).toMatchObject({ line: lineOf(text, 'password:'), message: 'YAML syntax error: Nested mappings are not allowed in compact mappings' });
      expect(JSON.stringify((err as FleetError).toJSON())).not.toContain(secret);
    });

    it("refuses the 'rotated.' prefix, which fleet bmc rotate writes per node", () => {
      const o = base();
      o.credentials['rotated.valkyrie01'] = { username: 'x', password_env: 'X' };
      expect(issues(o).map((i) => i.message)).toContain("credential set names starting with 'rotated.' are fleet's own (fleet bmc rotate writes them): choose another name");
    });

    it('needs exactly one of password_file and password_env', () => {
      const o = base();
      o.credentials['bmc-admin'].password_file = 'secrets/x';
      expect(oneIssue(o)).toMatchObject({ path: 'credentials.bmc-admin', message: 'set exactly one of password_file or password_env, not both' });
      delete o.credentials['bmc-admin'].password_file;
      delete o.credentials['bmc-admin'].password_env;
      expect(issues(o).map((i) => i.message)).toEqual(['set one of password_file or password_env']);
    });

    it('rejects a bad environment variable name', () => {
      const o = base();
      o.credentials['bmc-admin'].password_env = 'BMC PASSWORD';
      expect(oneIssue(o).message).toBe('"BMC PASSWORD" is not a valid environment variable name');
    });
  });

  describe('strict values (they end up in iPXE scripts and kickstarts)', () => {
    const profileIssue = (patch: Obj): ConfigIssue => {
      const o = base();
      Object.assign(o.profiles.compute, patch);
      return oneIssue(o);
    };

    it('rejects a kernel argument containing a newline', () => {
      const i = profileIssue({ kernel_args: ['nomodeset', 'quiet\nreboot'] });
      expect(i).toMatchObject({ path: 'profiles.compute.kernel_args[1]', message: 'kernel argument "quiet\\nreboot" contains a newline; each argument must be a single token' });
      const j = profileIssue({ kernel_args: 'nomodeset\ninst.ks=http://evil/ks' });
      expect(j.message).toMatch(/contains a newline/);
    });

    it('rejects kernel arguments with quotes, ; $ and backticks, and splits a string on spaces', () => {
      expect(profileIssue({ kernel_args: ['a;reboot'] }).message).toBe('kernel argument "a;reboot" contains a shell metacharacter (;); each argument must be a single token');
      expect(profileIssue({ kernel_args: ['x=${next-server}'] }).message).toMatch(/shell metacharacter \(\$\)/);
      expect(profileIssue({ kernel_args: ['x=`id`'] }).message).toMatch(/quote or backtick/);
      expect(profileIssue({ kernel_args: ['a b'] }).message).toMatch(/contains whitespace/);
      const o = base();
      o.profiles.compute.kernel_args = 'nomodeset  modprobe.blacklist=nouveau';
      expect(parseConfig(yamlOf(o)).profiles[0]!.kernelArgs).toEqual(['nomodeset', 'modprobe.blacklist=nouveau']);
    });

    it('rejects bad package names and accepts groups and module streams', () => {
      expect(profileIssue({ packages: ['@core', 'vim;reboot'] })).toMatchObject({ path: 'profiles.compute.packages[1]' });
      expect(profileIssue({ packages: ['-x'] }).message).toMatch(/is not a valid package name/);
      const o = base();
      o.profiles.compute.packages = ['@core', '@^minimal-environment', 'gcc-c++', 'python3.11', '@nodejs:20'];
      expect(parseConfig(yamlOf(o)).profiles[0]!.packages).toHaveLength(5);
    });

    it('rejects bad URLs', () => {
      expect(profileIssue({ os: { tree: 'ftp://10.10.0.1/os' } }).message).toBe('URL ftp://10.10.0.1/os must start with http:// or https://');
      expect(profileIssue({ os: { tree: 'http://10.10.0.1/os" || shell' } }).message).toMatch(/contains whitespace|quote/);
      expect(profileIssue({ os: { tree: 'http://10.10.0.1/${x}' } }).message).toMatch(/metacharacter|forbidden/);
      expect(profileIssue({ os: { tree: 'http://10.10.0.1/os', install: 'autoyast' } }).message).toBe("install method autoyast is not supported; 'kickstart', 'image', 'stateless' and 'diskless' are");
    });

    it('takes install: image with an image name (docs/images.md), and says what each method needs', () => {
      const o = base();
      o.profiles.compute.os = { install: 'image', image: 'debian12' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'image', tree: '', image: 'debian12' });
      expect(profileIssue({ os: { install: 'image' } })).toMatchObject({ path: 'profiles.compute.os.image', message: "'image' is required" });
      expect(profileIssue({ os: { install: 'image', image: '../etc' } })).toMatchObject({ path: 'profiles.compute.os.image', message: expect.stringMatching(/image name/) });
      expect(profileIssue({ os: { install: 'image', image: 'x', tree: 'http://10.10.0.1/os' } })).toMatchObject({
        path: 'profiles.compute.os.tree',
        message: expect.stringMatching(/'tree' is for install: kickstart/),
      });
      expect(profileIssue({ os: { tree: 'http://10.10.0.1/os', image: 'x' } })).toMatchObject({ path: 'profiles.compute.os.image', message: "'image' needs install: image, stateless or diskless" });
      expect(profileIssue({ os: { install: 'kickstart' } })).toMatchObject({ path: 'profiles.compute.os.tree', message: "'tree' is required" });
    });

    it('takes install: stateless with an image name and an optional root (docs/stateless.md)', () => {
      const o = base();
      o.profiles.compute.os = { install: 'stateless', image: 'debian12' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'stateless', tree: '', image: 'debian12' });
      o.profiles.compute.os = { install: 'stateless', image: 'debian12', root: 'tmpfs' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'stateless', tree: '', image: 'debian12', root: 'tmpfs' });
      expect(profileIssue({ os: { install: 'stateless' } })).toMatchObject({ path: 'profiles.compute.os.image', message: "'image' is required" });
      expect(profileIssue({ os: { install: 'stateless', image: 'x', tree: 'http://10.10.0.1/os' } })).toMatchObject({
        path: 'profiles.compute.os.tree',
        message: expect.stringMatching(/'tree' is for install: kickstart; install: stateless takes 'image'/),
      });
      expect(profileIssue({ os: { install: 'stateless', image: 'x', root: 'nfs' } })).toMatchObject({ path: 'profiles.compute.os.root', message: expect.stringMatching(/^root nfs must be overlay/) });
      expect(profileIssue({ os: { install: 'image', image: 'x', root: 'tmpfs' } })).toMatchObject({ path: 'profiles.compute.os.root', message: "'root' is for install: stateless (overlay or tmpfs)" });
    });

    it('takes install: diskless with an image name, the NFS server and an optional scratch disk (docs/diskless.md)', () => {
      const o = base();
      o.profiles.compute.os = { install: 'diskless', image: 'debian12' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'diskless', tree: '', image: 'debian12', nfs: { server: 'management' } });
      o.profiles.compute.os = { install: 'diskless', image: 'debian12', nfs: { server: 'management' }, scratch: '/dev/disk/by-path/pci-0000:00:05.0' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'diskless', tree: '', image: 'debian12', nfs: { server: 'management' }, scratch: '/dev/disk/by-path/pci-0000:00:05.0' });
      o.profiles.compute.os = { install: 'diskless', image: 'debian12', scratch: 'none' };
      expect(parseConfig(yamlOf(o)).profiles[0]!.os).toEqual({ install: 'diskless', tree: '', image: 'debian12', nfs: { server: 'management' } });
      expect(profileIssue({ os: { install: 'diskless' } })).toMatchObject({ path: 'profiles.compute.os.image', message: "'image' is required" });
      expect(profileIssue({ os: { install: 'diskless', image: 'x', nfs: { server: 'thor' } } })).toMatchObject({
        path: 'profiles.compute.os.nfs.server',
        message: expect.stringMatching(/only 'management' .* is implemented/),
      });
      expect(profileIssue({ os: { install: 'diskless', image: 'x', nfs: { host: 'thor' } } })).toMatchObject({ path: 'profiles.compute.os.nfs.host' });
      for (const bad of ['sda', '/dev/../etc/shadow', '/tmp/disk.img', '/dev/sdb; mkfs']) {
        expect(profileIssue({ os: { install: 'diskless', image: 'x', scratch: bad } }), bad).toMatchObject({ path: 'profiles.compute.os.scratch', message: expect.stringMatching(/must be a local disk's path under \/dev/) });
      }
      expect(profileIssue({ os: { install: 'stateless', image: 'x', scratch: '/dev/sdb' } })).toMatchObject({ path: 'profiles.compute.os.scratch', message: "'scratch' is for install: diskless" });
      expect(profileIssue({ os: { install: 'image', image: 'x', nfs: { server: 'management' } } })).toMatchObject({ path: 'profiles.compute.os.nfs', message: "'nfs' is for install: diskless" });
      expect(profileIssue({ os: { install: 'diskless', image: 'x', root: 'tmpfs' } })).toMatchObject({ path: 'profiles.compute.os.root' });
    });

    it('reports every error of an image profile with its line', () => {
      const text = [
        'cluster: { name: c }',
        'network: { cidr: 10.10.0.0/24 }',
        'profiles:',
        '  a:',
        '    os: { install: image }',
        '  b:',
        '    os:',
        '      install: image',
        '      image: "bad name"',
        '',
      ].join('\n');
      let issues: ConfigIssue[] = [];
      try {
        parseConfig(text);
      } catch (e) {
        issues = configIssuesOf(e as FleetError);
      }
      expect(issues.filter((i) => i.path.startsWith('profiles.')).map((i) => `${i.line} ${i.path}`)).toEqual(['5 profiles.a.os.image', '9 profiles.b.os.image']);
    });

    it('rejects bad ssh keys and root password hashes', () => {
      expect(profileIssue({ ssh_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl\nroot@odin'] }).message).toBe('ssh key must be on one line');
      expect(profileIssue({ ssh_keys: ['AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl'] }).message).toMatch(/ssh key must look like|type/);
      expect(profileIssue({ ssh_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl $(reboot)'] }).message).toMatch(/comment .* has forbidden characters/);
      expect(profileIssue({ root_password_hash: 'root' }).message).toMatch(/^root password hash must be a crypt\(3\) string/);
      expect(profileIssue({ root_password_hash: '$1$abc$def' }).message).toMatch(/MD5/);
      const o = base();
      o.profiles.compute.root_password_hash = '$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7';
      expect(parseConfig(yamlOf(o)).profiles[0]!.rootPasswordHash).toMatch(/^\$y\$/);
    });

    it('rejects a bad repo name', () => {
      const i = profileIssue({ roles: { repos: { repos: [{ name: 'Base OS', baseurl: 'http://10.10.0.1/os/BaseOS' }] } } });
      expect(i).toMatchObject({ path: 'profiles.compute.roles.repos.repos[0].name', message: '"Base OS" is not a valid repository name (letters, digits and _.-)' });
    });

    it('reads a Debian repository\'s suite, components and key (absent: a flat repository, as before)', () => {
      const o = base();
      o.profiles.compute.roles = {
        repos: {
          repos: [
            { name: 'flat', baseurl: 'http://10.10.0.1/flat', gpgcheck: false },
            { name: 'fleet', baseurl: 'http://10.10.0.1:8080/repo/debian', suite: 'bookworm', key: 'fleet' },
            { name: 'site', baseurl: 'http://10.10.0.1/site', suite: 'bookworm-updates', components: ['main', 'non-free-firmware'], gpgcheck: false },
          ],
        },
      };
      expect(parseConfig(yamlOf(o)).profiles[0]!.roles.repos!.repos).toEqual([
        { name: 'flat', baseurl: 'http://10.10.0.1/flat', gpgcheck: false, enabled: true },
        { name: 'fleet', baseurl: 'http://10.10.0.1:8080/repo/debian', gpgcheck: true, enabled: true, suite: 'bookworm', components: ['main'], key: 'fleet' },
        { name: 'site', baseurl: 'http://10.10.0.1/site', gpgcheck: false, enabled: true, suite: 'bookworm-updates', components: ['main', 'non-free-firmware'] },
      ]);
    });

    it('rejects bad repository suites, components and keys', () => {
      const repo = (r: Obj) => profileIssue({ roles: { repos: { repos: [{ name: 'r', baseurl: 'http://10.10.0.1/r', ...r }] } } });
      expect(repo({ suite: 'bookworm main' })).toMatchObject({ path: 'profiles.compute.roles.repos.repos[0].suite', message: expect.stringMatching(/"bookworm main" is not a valid apt suite/) });
      expect(repo({ suite: 'bookworm]\ndeb http://evil/ x' }).message).toMatch(/is not a valid apt suite/);
      expect(repo({ suite: 'bookworm', components: ['main', '../x'] })).toMatchObject({ path: 'profiles.compute.roles.repos.repos[0].components[1]', message: expect.stringMatching(/is not a valid apt component/) });
      expect(repo({ components: ['main'] })).toMatchObject({ path: 'profiles.compute.roles.repos.repos[0].components', message: 'components need a suite (a flat repository has none)' });
      expect(repo({ suite: 'bookworm', components: [] }).message).toBe('components must name at least one component');
      expect(repo({ key: 'debian' })).toMatchObject({ path: 'profiles.compute.roles.repos.repos[0].key', message: expect.stringMatching(/^key "?debian"? is not known: the only key is fleet/) });
      expect(repo({ key: 'fleet', gpgcheck: false }).message).toMatch(/^key fleet with gpgcheck: false/);
      expect(repo({ keyring: 'x' }).message).toMatch(/keyring/);
    });

    it('rejects bad users, ids, paths and NFS sources', () => {
      const users = (u: Obj) => profileIssue({ roles: { users: { groups: [{ name: 'myuser', gid: 2001 }], users: [{ name: 'myuser', uid: 2001, group: 'myuser', ...u }] } } });
      expect(users({ name: 'MyUser' }).message).toMatch(/^MyUser is not a valid user name \(POSIX/);
      expect(users({ uid: 0 })).toMatchObject({ path: 'profiles.compute.roles.users.users[0].uid', message: 'uid 0 must be an integer between 1 and 2147483647' });
      expect(users({ uid: 2 ** 31 }).message).toBe('uid 2147483648 must be an integer between 1 and 2147483647');
      expect(users({ home: 'home/myuser' }).message).toBe('home/myuser must be an absolute path');
      expect(users({ group: 'staff' }).message).toBe('unknown group staff; declare it under groups');
      expect(users({ gid: 2002 }).message).toBe('gid 2002 does not match group myuser (gid 2001)');
      const nfs = (m: Obj) => profileIssue({ roles: { nfs: { mounts: [{ source: 'thor:/home', target: '/home', ...m }] } } });
      expect(nfs({ target: 'home' }).message).toBe('home must be an absolute path');
      expect(nfs({ source: 'thor/home' }).message).toBe('NFS source thor/home must look like host:/path');
      expect(nfs({ options: 'rw, bg' }).message).toMatch(/is not a valid mount option list/);
    });

    it('takes nfs_server exports with the default options', () => {
      const o = base();
      o.profiles.compute.roles = {
        nfs_server: {
          exports: [
            { path: '/home', clients: '10.10.0.0/16', options: 'rw,sync,no_root_squash' },
            { path: '/software', clients: '10.10.0.0/16', options: 'ro,sync' },
            { path: '/scratch', clients: '*.cluster.local' },
            { path: '/scratch', clients: 'heimdall' },
            { path: '/pub', clients: '*' },
            { path: '/pub', clients: '10.10.2.1', options: 'ro,sec=krb5:krb5i,fsid=1' },
          ],
        },
      };
      expect(parseConfig(yamlOf(o)).profiles[0]!.roles).toEqual({
        nfsServer: {
          exports: [
            { path: '/home', clients: '10.10.0.0/16', options: 'rw,sync,no_root_squash' },
            { path: '/software', clients: '10.10.0.0/16', options: 'ro,sync' },
            { path: '/scratch', clients: '*.cluster.local', options: 'rw,sync,no_subtree_check' },
            { path: '/scratch', clients: 'heimdall', options: 'rw,sync,no_subtree_check' },
            { path: '/pub', clients: '*', options: 'rw,sync,no_subtree_check' },
            { path: '/pub', clients: '10.10.2.1', options: 'ro,sec=krb5:krb5i,fsid=1' },
          ],
        },
      });
      o.profiles.compute.roles = { nfs_server: true };
      expect(parseConfig(yamlOf(o)).profiles[0]!.roles).toEqual({ nfsServer: { exports: [] } });
      o.profiles.compute.roles = { nfs_server: false };
      expect(parseConfig(yamlOf(o)).profiles[0]!.roles).toEqual({});
    });

    it('rejects bad nfs_server exports with their place', () => {
      const exp = (e: Obj) => profileIssue({ roles: { nfs_server: { exports: [{ path: '/home', clients: '10.10.0.0/16', ...e }] } } });
      expect(exp({ path: 'home' })).toMatchObject({ path: 'profiles.compute.roles.nfs_server.exports[0].path', message: 'home must be an absolute path' });
      expect(exp({ path: '/home/../etc' }).message).toBe("path /home/../etc must not contain '..'");
      expect(exp({ path: '/my home' }).message).toBe('path "/my home" has forbidden characters');
      expect(exp({ clients: '10.10.0.0/255.255.0.0' })).toMatchObject({
        path: 'profiles.compute.roles.nfs_server.exports[0].clients',
        message: 'NFS clients: 10.10.0.0/255.255.0.0 is not a valid IPv4 CIDR (expected e.g. 10.10.0.0/16)',
      });
      expect(exp({ clients: '10.10.1.0/16' }).message).toBe('NFS clients: 10.10.1.0/16 has host bits set; did you mean 10.10.0.0/16?');
      expect(exp({ clients: 'heimdall(rw)' }).message).toMatch(/^NFS clients "heimdall\(rw\)" must be a host name, an IPv4 address, a CIDR/);
      expect(exp({ clients: '@trusted' }).message).toMatch(/^NFS clients @trusted must be/);
      expect(exp({ options: 'rw, sync' })).toMatchObject({
        path: 'profiles.compute.roles.nfs_server.exports[0].options',
        message: 'export options "rw, sync" must be a comma-separated list without spaces or parentheses, e.g. rw,sync,no_subtree_check',
      });
      expect(exp({ options: '' }).message).toMatch(/must be a comma-separated list/);
      expect(exp({ options: 'rw,,sync' }).message).toBe('export options rw,,sync have an empty entry');
      expect(exp({ options: 'rw,ro' }).message).toBe('export options rw,ro say both rw and ro');
      expect(exp({ path: undefined }).message).toBe("'path' is required");
      expect(exp({ clients: undefined }).message).toBe("'clients' is required");
      expect(exp({ option: 'rw' }).path).toBe('profiles.compute.roles.nfs_server.exports[0].option');
      expect(profileIssue({ roles: { nfs_server: { export: [] } } }).path).toBe('profiles.compute.roles.nfs_server.export');
      expect(profileIssue({ roles: { nfs_server: { exports: { path: '/home' } } } }).path).toBe('profiles.compute.roles.nfs_server.exports');
    });

    it('rejects the same export twice, at its line', () => {
      const text = stringify({
        ...base(),
        profiles: {
          storage: {
            os: { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' },
            roles: {
              nfs_server: {
                exports: [
                  { path: '/home', clients: '10.10.0.0/16' },
                  { path: '/home', clients: '10.20.0.0/16' },
                  { path: '/home', clients: '10.10.0.0/16', options: 'ro' },
                ],
              },
            },
          },
        },
        nodes: {},
      });
      const i = oneIssue(text);
      expect(i).toMatchObject({
        path: 'profiles.storage.roles.nfs_server.exports[2]',
        message: '/home is already exported to 10.10.0.0/16 by profiles.storage.roles.nfs_server.exports[0]',
        // the third item's first line
        line: text.split('\n').flatMap((l, n) => (l.includes('- path: /home') ? [n + 1] : []))[2],
      });
    });

    it('fills role defaults', () => {
      const o = base();
      o.profiles.compute.roles = { hosts: true, infiniband: null, chrony: {}, gpu: {}, users: { users: [{ name: 'bob', uid: 3000, gid: 3000 }] } };
      const roles = parseConfig(yamlOf(o)).profiles[0]!.roles;
      expect(roles).toEqual({
        hosts: { enabled: true },
        chrony: { servers: ['10.10.0.1'], makestep: '1.0 3' },
        users: { groups: [], users: [{ name: 'bob', uid: 3000, gid: 3000, shell: '/bin/bash', home: '/home/bob', sshKeys: [] }] },
        gpu: { vendor: 'nvidia', packages: [], blacklistNouveau: true },
        infiniband: { packages: ['@infiniband'] },
      });
    });
  });

  it('collects every error at once', () => {
    const o = base();
    o.cluster.timezone = 'nowhere land';
    o.networks.provisioning.subnet = '10.10.0.0/99';
    o.profiles.compute.kernel_args = ['a;b'];
    o.nodes['valkyrie[01-02]'].bmc.protocol = 'snmp';
    o.nodes['valkyrie[01-02]'].profile = 'nope';
    let err: unknown;
    try {
      parseConfig(yamlOf(o));
    } catch (e) {
      err = e;
    }
    expect((err as FleetError).message).toBe('fleet.yaml has 5 errors');
    expect(configIssuesOf(err).every((i) => i.line !== undefined && i.column !== undefined && i.path !== '')).toBe(true);
  });

  it('supports aliases, << merges and x- extension keys', () => {
    const text = `
x-os: &os
  os: { tree: http://10.10.0.1/os }
  packages: ["@core"]
cluster: { name: lab, domain: cluster.local, timezone: UTC, management_address: 10.10.0.1 }
networks: { provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254 } }
profiles:
  a:
    <<: *os
    packages: [vim]
  b: *os
nodes:
  n1: { profile: a }
`;
    const spec = parseConfig(text);
    expect(spec.profiles.map((p) => [p.name, p.os.tree, p.packages])).toEqual([
      ['a', 'http://10.10.0.1/os', ['vim']],
      ['b', 'http://10.10.0.1/os', ['@core']],
    ]);
    expect(oneIssue(text.replace('x-os', 'y-os')).message).toMatch(/^unknown key 'y-os'/);
  });

  it('parses netboot and server loosely and rejects bad listen addresses', () => {
    const o = base();
    o.netboot = { dhcp: { mode: 'proxy', interface: 'enp0s3' }, tftp_root: '/var/lib/fleet/tftp', http: { listen: '10.10.0.1:8080' } };
    o.server = { listen: '0.0.0.0:8443', data_dir: '/var/lib/fleet' };
    const spec = parseConfig(yamlOf(o));
    expect(spec.netboot).toEqual({ dhcp: { enabled: true, mode: 'proxy', interface: 'enp0s3' }, tftpRoot: '/var/lib/fleet/tftp', http: { listen: '10.10.0.1:8080' } });
    expect(spec.server).toEqual({ listen: '0.0.0.0:8443', dataDir: '/var/lib/fleet' });
    o.server.listen = '0.0.0.0:99999';
    o.netboot.dhcp.mode = 'relay';
    expect(issues(o).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "netboot.dhcp.mode: DHCP mode relay must be 'authoritative' or 'proxy'",
      'server.listen: port 99999 is outside 1-65535',
    ]);
  });

  it('netboot.dhcp.router_advertisements: a boolean, absent by default', () => {
    const o = base();
    o.netboot = { dhcp: { interface: 'br0', router_advertisements: true } };
    expect(parseConfig(yamlOf(o)).netboot).toEqual({ dhcp: { enabled: true, mode: 'authoritative', interface: 'br0', routerAdvertisements: true } });
    o.netboot.dhcp.router_advertisements = false;
    expect(parseConfig(yamlOf(o)).netboot?.dhcp?.routerAdvertisements).toBe(false);
    o.netboot.dhcp.router_advertisements = 'yes';
    expect(issues(o).map((i) => i.path)).toEqual(['netboot.dhcp.router_advertisements']);
  });

  it('rejects an unsupported version', () => {
    const o = base();
    o.version = 2;
    expect(oneIssue(o)).toMatchObject({ path: 'version', message: 'unsupported version 2; this fleet reads version 1' });
  });
});

describe('kernel command line length (checked at apply, as the boot script renders it)', () => {
  const SERVER = 'http://255.255.255.255:65535'; // the longest a node can be told
  const TOKEN = 'A'.repeat(43); // 32 random bytes in base64url, as the store mints them
  const withFiller = (n: number): Obj => {
    const o = base();
    o.profiles.compute.kernel_args = ['console=ttyS0', `x=${'a'.repeat(n)}`];
    o.nodes = { 'valkyrie[01-02]': o.nodes['valkyrie[01-02]'], 'valkyrie-long-name-07': { profile: 'compute', mac: '08:00:27:00:03:07' } };
    return o;
  };
  /** What the server would put in the iPXE script for the node, rendered for real: its kernel line, minus "kernel URL ". */
  const rendered = async (profile: { os: { tree: string }; kernelArgs: string[] }): Promise<{ line?: string; error?: string }> => {
    const ks = `${kickstartUrl(SERVER, 'valkyrie-long-name-07')}?token=${TOKEN}`;
    const kernelUrl = treeKernelUrl(profile.os.tree);
    const template = await loadTemplate('ipxe', 'install.ipxe');
    try {
      const script = renderIpxe(
        {
          kind: 'install',
          method: 'kickstart',
          node: 'valkyrie-long-name-07',
          profile: 'compute',
          kernelUrl,
          initrdUrl: treeInitrdUrl(profile.os.tree),
          kickstartUrl: ks,
          kernelArgs: installKernelArgs(profile.os.tree, ks, '08:00:27:00:03:07', profile.kernelArgs),
        },
        template,
        { server: SERVER },
      );
      const line = script.split('\n').find((l) => l.startsWith('kernel '))!;
      return { line: line.slice('kernel '.length, -' || goto failed'.length) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };

  it('accepts exactly 2047 bytes and refuses 2048, naming the node and the profile; the boot script agrees at the boundary', async () => {
    // The command line the kernel gets on UEFI: the image name, then the arguments.
    const probe = await rendered(parseConfig(yamlOf(withFiller(100))).profiles[0]!);
    const words = probe.line!.split(' ');
    const cmdline = (line: string) => `${line.split(' ')[0]!.split('/').pop()} ${line.split(' ').slice(1).join(' ')}`;
    const fits = 100 + (2047 - cmdline(probe.line!).length);
    expect(words.length).toBeGreaterThan(5);

    const ok = parseConfig(yamlOf(withFiller(fits))).profiles[0]!;
    expect(ok.kernelArgs[1]).toHaveLength(fits + 2);
    const atLimit = await rendered(ok);
    expect(atLimit.error).toBeUndefined();
    expect(cmdline(atLimit.line!)).toHaveLength(2047);

    const over = withFiller(fits + 1);
    const issue = oneIssue(over);
    expect(issue).toMatchObject({
      path: 'profiles.compute.kernel_args',
      message:
        'the installer kernel command line of node valkyrie-long-name-07 (profile compute) would be up to 2048 bytes, more than the 2047 the kernel accepts: shorten kernel_args or the OS tree URL',
    });
    expect(issue.line).toBe(lineOf(yamlOf(over), 'kernel_args') + 1);
    // and the renderer, fed the same node and one more byte, refuses it too
    const refused = await rendered({ os: ok.os, kernelArgs: [ok.kernelArgs[0]!, `${ok.kernelArgs[1]!}a`] });
    expect(refused.error).toMatch(/kernel command line is 2048 bytes, more than the 2047 the kernel accepts/);
  });
});

describe('hostile YAML', () => {
  const head = `cluster: { name: lab, domain: cluster.local, timezone: UTC, management_address: 10.10.0.1 }
networks: { provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254 } }
profiles: { compute: { os: { tree: http://10.10.0.1/os } } }
`;
  /** Parses and returns the issues and the time taken. */
  const timed = (text: string): { list: ConfigIssue[]; ms: number } => {
    const t0 = Date.now();
    const list = issues(text);
    return { list, ms: Date.now() - t0 };
  };
  // Generous time bounds: without the bounds these take minutes (yaml's Alias.resolve walks the
  // whole document per alias) or run out of memory, on any machine; with them, well under a second.

  it('refuses 20,000 aliases with one clear issue, quickly', () => {
    const text = `x-a: &a { profile: compute }\n${head}nodes:\n  n1:\n    <<: [${Array(20_000).fill('*a').join(', ')}]\n`;
    const { list, ms } = timed(text);
    expect(list).toHaveLength(1);
    expect(list[0]!.message).toMatch(/^too many alias references \(more than 10000\): refusing the document/);
    expect(list[0]!.path).toBe('nodes.n1');
    expect(ms).toBeLessThan(10_000);
  });

  it('refuses merge keys that multiply one big mapping (a billion laughs of <<), quickly', () => {
    // 20,000 keys, merged 90 x 90 times: 162 million entries to walk with 8,190 aliases (under the alias bound).
    const keys = Array.from({ length: 20_000 }, (_, i) => `k${i}: 1`).join(', ');
    const level1 = `x-m1: &m1 { <<: [${Array(90).fill('*m0').join(', ')}] }`;
    const text = `x-m0: &m0 { ${keys} }\n${level1}\n${head}nodes:\n  n1:\n    profile: compute\n    <<: [${Array(90).fill('*m1').join(', ')}]\n`;
    const { list, ms } = timed(text);
    expect(list).toHaveLength(1);
    expect(list[0]!.message).toMatch(/^aliases and merge keys expand this document past \d+ entries/);
    expect(ms).toBeLessThan(10_000);
  });

  it('still reports repeated keys (found in one pass, not by the quadratic check of yaml)', () => {
    const text = `${head}nodes:\n  n1: { profile: compute }\n  n2: { profile: compute }\n  n1: { profile: compute }\n`;
    expect(oneIssue(text)).toMatchObject({ line: 7, column: 3, message: 'YAML syntax error: Map keys must be unique' });
    // a flow mapping and a key repeated with another spelling of the same string
    expect(oneIssue(`${head}nodes: { n1: { profile: compute, profile: compute } }\n`).message).toBe('YAML syntax error: Map keys must be unique');
    expect(oneIssue(`${head}nodes:\n  n1: { profile: compute }\n  "n1": { profile: compute }\n`).line).toBe(6);
    // 1 and "1" are different keys, as in yaml
    expect(parseConfig(`${head}nodes:\n  n1: { profile: compute }\nx-k: { 1: a, "1": b }\n`).nodes).toHaveLength(1);
  });

  it('refuses a file that declares more than 100,000 nodes', () => {
    const text = `${head}nodes:\n  a[1-60000]: { profile: compute }\n  b[1-60000]: { profile: compute }\n`;
    expect(oneIssue(text)).toMatchObject({ path: 'nodes.b[1-60000]', message: 'more than 100000 nodes are declared up to here, the most one fleet.yaml may declare' });
  });

  it('refuses a document larger than 16 MiB before parsing it', () => {
    const text = `${head}# ${'x'.repeat(16 * 1024 * 1024)}\n`;
    expect(oneIssue(text).message).toBe('fleet.yaml is larger than 16777216 bytes');
  });
});

describe('lifecycle section', () => {
  const minimal = readFileSync(fileURLToPath(new URL('../../fixtures/config/minimal.yaml', import.meta.url)), 'utf8');

  it('overlays timeouts and retries on the defaults', () => {
    const spec = parseConfig(minimal + '\nlifecycle:\n  timeouts: {installing: 90m, power-cycling: 10m}\n  retries: {power-cycle: 1}\n');
    expect(spec.lifecycle?.timeouts['installing']).toBe(5400);
    expect(spec.lifecycle?.timeouts['power-cycling']).toBe(600);
    expect(spec.lifecycle?.retries['power-cycle']).toBe(1);
    expect(parseConfig(minimal).lifecycle).toBeUndefined();
  });

  it('reports bad entries with their path and the line of the section', () => {
    try {
      parseConfig(minimal + '\nlifecycle:\n  timeouts: {installing: forever, ready: 5m}\n  retrys: 3\n', { source: 'fleet.yaml' });
      expect.unreachable();
    } catch (e) {
      const issues = configIssuesOf(e);
      expect(issues.map((i) => i.path).sort()).toEqual(['lifecycle.retrys', 'lifecycle.timeouts.installing', 'lifecycle.timeouts.ready']);
      expect(issues.every((i) => typeof i.line === 'number' && i.line > 15)).toBe(true);
    }
  });
});

describe("profiles' expect: (hardware a node must report)", () => {
  it('a count is exact, a string compares; the parsed rules are on the profile', () => {
    const o = base();
    o.profiles.compute.expect = { gpus: 8, memory_gib: '>= 512', cpus: '> 63' };
    const spec = parseConfig(yamlOf(o));
    expect(spec.profiles[0]!.expect).toEqual({ gpus: { op: '==', value: 8 }, memory_gib: { op: '>=', value: 512 }, cpus: { op: '>', value: 63 } });
    expect(parseConfig(yamlOf(base())).profiles[0]!.expect).toBeUndefined();
  });

  it('an unknown field, a bad comparison, a negative count and a list each get one issue at their place', () => {
    const text = (e: unknown) => {
      const o = base();
      o.profiles.compute.expect = e;
      return yamlOf(o);
    };
    const unknownField = oneIssue(text({ gpu: 8 }));
    expect(unknownField.path).toBe('profiles.compute.expect.gpu');
    expect(unknownField.message).toMatch(/gpus/); // suggests the closest known field
    const badOp = oneIssue(text({ memory_gib: '=> 512' }));
    expect(badOp.path).toBe('profiles.compute.expect.memory_gib');
    expect(badOp.message).toMatch(/^memory_gib: "=> 512" is not a comparison/);
    expect(oneIssue(text({ disks: -1 })).message).toBe('disks: -1 is not a count (a number of 0 or more)');
    expect(oneIssue(text({ nics: [2] })).message).toMatch(/^nics: expected a number or a comparison/);
    expect(oneIssue(text('nope')).path).toBe('profiles.compute.expect');
  });
});

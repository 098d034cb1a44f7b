/**
 * fleet.yaml `discovery:`: what a valid section becomes, and every mistake
 * reported with its path (discovery.rules[1].names) and line, nothing else
 * cascading. serials_file texts come in parseConfig's `files`; the loader
 * reads them next to fleet.yaml.
 */
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, loadConfigFile, parseConfig, type ConfigIssue } from '../../../server/config/index.js';
import { serialsFilesNamed } from '../../../server/config/discovery.js';
import { DEFAULT_LLDP_WAIT_SECONDS, lldpWaitOf } from '../../../server/discovery/types.js';

type Obj = Record<string, any>;

function base(discovery: Obj | null): Obj {
  return {
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1', management_name: 'odin' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' }, bmc: { subnet: '10.10.100.0/22' } },
    credentials: { 'bmc-admin': { username: 'ADMIN', password_env: 'FLEET_BMC_PASSWORD' } },
    profiles: { compute: { os: { tree: 'http://10.10.0.1/os' } }, compute_gpu: { os: { tree: 'http://10.10.0.1/os' } } },
    nodes: { thor: { profile: 'compute', ip: '10.10.1.1' } },
    ...(discovery ? { discovery } : {}),
  };
}

const gpuRule = (): Obj => ({
  name: 'gpu-po4711',
  match: { serials_file: 'po-4711.txt', manufacturer: 'Supermicro*' },
  names: 'valkyrie[03-06]',
  profile: 'compute_gpu',
  ip: '10.10.3.[3-6]',
  bmc: { address: '10.10.103.3-10.10.103.6', credentials: 'bmc-admin' },
  on_accept: 'install',
});

const FILES = { 'po-4711.txt': '# PO 4711\nSN-A\nSN-B\nSN-C\n' };

function issues(o: Obj | string, files: Record<string, string> | undefined = FILES): ConfigIssue[] {
  try {
    parseConfig(typeof o === 'string' ? o : stringify(o), files ? { files } : {});
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    return configIssuesOf(e);
  }
  throw new Error('expected config.invalid, but the config was accepted');
}

function oneIssue(o: Obj, files?: Record<string, string>): ConfigIssue {
  const list = issues(o, files);
  expect(list, JSON.stringify(list, null, 2)).toHaveLength(1);
  return list[0]!;
}

describe('discovery: in fleet.yaml', () => {
  it('inspect and after_inspect: absent means inspect and wait', () => {
    expect(parseConfig(stringify(base({ policy: 'auto' }))).discovery).toEqual({ policy: 'auto', rules: [] });
    expect(parseConfig(stringify(base({ inspect: false, after_inspect: 'poweroff' }))).discovery).toEqual({ policy: 'manual', inspect: false, afterInspect: 'poweroff', rules: [] });
  });

  it('lldp_wait: seconds to listen for LLDP; absent, a rule on LLDP makes it 35 and none makes it 0', () => {
    expect(parseConfig(stringify(base({ lldp_wait: 0 }))).discovery).toEqual({ policy: 'manual', lldpWaitSeconds: 0, rules: [] });
    expect(lldpWaitOf(parseConfig(stringify(base({ lldp_wait: 12 }))).discovery)).toBe(12);
    expect(lldpWaitOf(parseConfig(stringify(base({}))).discovery)).toBe(0);
    const onLldp = (extra: Obj) => base({ ...extra, rules: [{ name: 'r12', match: { lldp: { port: 'Ethernet1/*' } }, names: 'n[1-2]', profile: 'compute' }] });
    expect(lldpWaitOf(parseConfig(stringify(onLldp({}))).discovery)).toBe(DEFAULT_LLDP_WAIT_SECONDS);
    expect(DEFAULT_LLDP_WAIT_SECONDS).toBe(35);
    expect(lldpWaitOf(parseConfig(stringify(onLldp({ lldp_wait: 0 }))).discovery)).toBe(0);
    expect(lldpWaitOf(undefined)).toBe(0);
  });

  it('is optional', () => {
    expect(parseConfig(stringify(base(null))).discovery).toBeUndefined();
  });

  it('becomes a DiscoverySpec: names, IPs and BMC addresses expanded in lockstep, serials from the file in order', () => {
    const spec = parseConfig(
      stringify(base({ policy: 'auto', rules: [gpuRule(), { name: 'rest', match: { mac_prefix: ['0C-C4-7A', 'b8:59'], nics: '>= 2', disks: 1, bmc_subnet: '10.10.254.0/24', lldp: { switch: 'sw-*' } }, names: 'spare[1-2]', profile: 'compute' }] })),
      { files: FILES },
    );
    expect(spec.discovery).toEqual({
      policy: 'auto',
      rules: [
        {
          name: 'gpu-po4711',
          match: { serials: ['SN-A', 'SN-B', 'SN-C'], serialsFile: 'po-4711.txt', manufacturer: 'Supermicro*' },
          names: ['valkyrie03', 'valkyrie04', 'valkyrie05', 'valkyrie06'],
          namesText: 'valkyrie[03-06]',
          profile: 'compute_gpu',
          ips: ['10.10.3.3', '10.10.3.4', '10.10.3.5', '10.10.3.6'],
          bmc: { addresses: ['10.10.103.3', '10.10.103.4', '10.10.103.5', '10.10.103.6'], port: 623, protocol: 'ipmi', credentials: 'bmc-admin' },
          onAccept: 'install',
        },
        {
          name: 'rest',
          match: { macPrefixes: ['0c:c4:7a', 'b8:59'], nics: { op: '>=', value: 2 }, disks: { op: '==', value: 1 }, bmcSubnet: '10.10.254.0/24', lldp: { switch: 'sw-*' } },
          names: ['spare1', 'spare2'],
          namesText: 'spare[1-2]',
          profile: 'compute',
          onAccept: 'inventory-only',
        },
      ],
    });
  });

  it('defaults: policy manual, no rules; a serial list; redfish port 443', () => {
    expect(parseConfig(stringify(base({}))).discovery).toEqual({ policy: 'manual', rules: [] });
    const spec = parseConfig(stringify(base({ rules: [{ name: 'r', match: { serial: ['S1', 'S2'] }, names: 'n[1-2]', profile: 'compute', bmc: { address: ['10.10.103.1', '10.10.103.2'], protocol: 'redfish', credentials: 'bmc-admin' } }] })));
    expect(spec.discovery!.rules[0]!.match).toEqual({ serials: ['S1', 'S2'] });
    expect(spec.discovery!.rules[0]!.bmc).toEqual({ addresses: ['10.10.103.1', '10.10.103.2'], port: 443, protocol: 'redfish', credentials: 'bmc-admin' });
    const setup = parseConfig(stringify(base({ rules: [{ name: 'r', match: { serial: ['S1'] }, names: 'n1', profile: 'compute', bmc: { address: '10.10.103.1', credentials: 'bmc-admin', setup: true, password_length: 16 } }] })));
    expect(setup.discovery!.rules[0]!.bmc).toEqual({ addresses: ['10.10.103.1'], port: 623, protocol: 'ipmi', credentials: 'bmc-admin', setup: { passwordLength: 16 } });
  });

  const rule1 = (patch: Obj): Obj => base({ rules: [{ name: 'a', names: 'a[1-2]', profile: 'compute' }, { ...gpuRule(), ...patch }] });
  const CASES: [string, Obj, string, string | RegExp][] = [
    ['a bad names nodeset', rule1({ names: 'valkyrie[03-' }), 'discovery.rules[1].names', /^bad nodeset valkyrie\[03-: .*missing bracket/],
    ['names that are not node names', rule1({ names: 'Valkyrie[1-4]' }), 'discovery.rules[1].names', /Valkyrie1/],
    ['the management node among the names', rule1({ names: 'odin,valkyrie[03-05]', ip: '10.10.3.[3-6]' }), 'discovery.rules[1].names', "odin is the management node's name (cluster.management_name)"],
    ['an unknown profile', rule1({ profile: 'compute_gpus' }), 'discovery.rules[1].profile', "unknown profile compute_gpus (did you mean 'compute_gpu'?); defined profiles: compute, compute_gpu"],
    ['fewer IPs than names', rule1({ ip: '10.10.3.[3-5]' }), 'discovery.rules[1].ip', 'nodeset/range length mismatch: names give 4 nodes, ip gives 3 addresses (they go in lockstep)'],
    ['an IP outside the subnet', rule1({ ip: '10.20.3.[3-6]' }), 'discovery.rules[1].ip', '10.20.3.3 is outside 10.10.0.0/16 (and 3 more)'],
    ['an IP in the unknown range', rule1({ ip: '10.10.254.[3-6]' }), 'discovery.rules[1].ip', /^10\.10\.254\.3 is inside the unknown range/],
    ['the management address', rule1({ ip: '10.10.0.[1-4]' }), 'discovery.rules[1].ip', '10.10.0.1 is the management address'],
    ['an IP that is not one', rule1({ ip: '10.10.3.300-10.10.3.303' }), 'discovery.rules[1].ip', '10.10.3.300 is not a valid IPv4 address'],
    ['a BMC outside the BMC network', rule1({ bmc: { address: '10.10.3.[3-6]', credentials: 'bmc-admin' } }), 'discovery.rules[1].bmc.address', '10.10.3.3 is outside the BMC network 10.10.100.0/22'],
    ['unknown BMC credentials', rule1({ bmc: { address: '10.10.103.[3-6]', credentials: 'bmc-admn' } }), 'discovery.rules[1].bmc.credentials', "unknown credentials bmc-admn (did you mean 'bmc-admin'?); defined credentials: bmc-admin"],
    ['an unknown BMC protocol', rule1({ bmc: { address: '10.10.103.[3-6]', credentials: 'bmc-admin', protocol: 'redfsh' } }), 'discovery.rules[1].bmc.protocol', /did you mean 'redfish'/],
    ['bmc.setup over Redfish', rule1({ bmc: { address: '10.10.103.[3-6]', credentials: 'bmc-admin', protocol: 'redfish', setup: true } }), 'discovery.rules[1].bmc.setup', 'setup configures the BMC in band over IPMI (KCS): not with protocol redfish'],
    ['a password_length without setup', rule1({ bmc: { address: '10.10.103.[3-6]', credentials: 'bmc-admin', password_length: 16 } }), 'discovery.rules[1].bmc.password_length', 'password_length goes with setup: true'],
    ['a password_length IPMI has not', rule1({ bmc: { address: '10.10.103.[3-6]', credentials: 'bmc-admin', setup: true, password_length: 18 } }), 'discovery.rules[1].bmc.password_length', /^password_length 18: 16 or 20/],
    ['a bad on_accept', rule1({ on_accept: 'reinstall' }), 'discovery.rules[1].on_accept', 'on_accept reinstall must be one of install, inventory-only'],
    ['a rule name used twice', rule1({ name: 'a' }), 'discovery.rules[1].name', 'rule a is already defined at discovery.rules[0]'],
    ['serial and serials_file', rule1({ match: { serial: ['S1'], serials_file: 'po-4711.txt' } }), 'discovery.rules[1].match.serials_file', "use either 'serial' (a list) or 'serials_file', not both"],
    ['a serial written as a number', rule1({ match: { serial: [1234, 'S2'] } }), 'discovery.rules[1].match.serial[0]', 'expected a string, got a number (quote it to make it a string)'],
    ['a serial listed twice', rule1({ match: { serial: ['S1', 's1'] } }), 'discovery.rules[1].match.serial[1]', 'serial s1 is already listed at discovery.rules[1].match.serial[0]'],
    ['more serials than names', rule1({ match: { serial: ['S1', 'S2', 'S3', 'S4', 'S5'] } }), 'discovery.rules[1].names', '5 serials and 4 names: each serial needs its own name (the serial at position 5 would get none)'],
    ['a bad MAC prefix', rule1({ match: { mac_prefix: '0c:c4:7' } }), 'discovery.rules[1].match.mac_prefix', '0c:c4:7 is not a MAC prefix: one to six hex octets, e.g. 0c:c4:7a'],
    ['a misspelt match key', rule1({ match: { manufacterer: 'Dell*' } }), 'discovery.rules[1].match.manufacterer', "unknown key 'manufacterer' (did you mean 'manufacturer'?)"],
    ['a bad BMC subnet', rule1({ match: { bmc_subnet: '10.10.254.1/24' } }), 'discovery.rules[1].match.bmc_subnet', '10.10.254.1/24 has host bits set; did you mean 10.10.254.0/24?'],
    ['a bad NIC count', rule1({ match: { nics: 'two' } }), 'discovery.rules[1].match.nics', /^nics: "two" is not a comparison/],
    ['an empty lldp', rule1({ match: { lldp: {} } }), 'discovery.rules[1].match.lldp', 'lldp needs switch, port or both'],
    ['a bad policy', base({ policy: 'automatic' }), 'discovery.policy', 'policy automatic must be one of manual, auto'],
    ['a bad after_inspect', base({ after_inspect: 'halt' }), 'discovery.after_inspect', 'after_inspect halt must be one of wait, poweroff'],
    ['an lldp_wait past 300 s', base({ lldp_wait: 301 }), 'discovery.lldp_wait', 'lldp_wait 301: seconds in 0..300 (switches send LLDP every 30 s by default)'],
    ['an lldp_wait that is not a number', base({ lldp_wait: '30s' }), 'discovery.lldp_wait', /integer/],
    ['inspect that is not a boolean', base({ inspect: 'sometimes' }), 'discovery.inspect', 'expected true or false, got a string'],
    ['a rule without names', base({ rules: [{ name: 'x', profile: 'compute' }] }), 'discovery.rules[0].names', "'names' is required"],
  ];
  it.each(CASES)('%s', (_what, config, path, message) => {
    const issue = oneIssue(config);
    expect(issue.path).toBe(path);
    if (typeof message === 'string') expect(issue.message).toBe(message);
    else expect(issue.message).toMatch(message);
    expect(issue.line).toBeGreaterThan(0);
  });

  it('a serials_file: its problems name the file and line, at the key', () => {
    const text = stringify(rule1({}));
    const list = issues(text, { 'po-4711.txt': 'SN-A\nSN-B;\nSN-A\n' });
    expect(list.map((i) => [i.path, i.message])).toEqual([
      ['discovery.rules[1].match.serials_file', 'po-4711.txt line 2: "SN-B;" is not a serial number (letters, digits, space and ._:/+-, at most 64)'],
      ['discovery.rules[1].match.serials_file', 'po-4711.txt line 3: serial SN-A is already listed at line 1'],
    ]);
    expect(list[0]!.line).toBe(text.split('\n').findIndex((l) => l.includes('serials_file')) + 1);
  });

  it('a serials_file nobody read is an error, not an empty list', () => {
    expect(oneIssue(rule1({}), {})).toMatchObject({ path: 'discovery.rules[1].match.serials_file', message: 'serials_file po-4711.txt was not read (fleet reads it relative to fleet.yaml)' });
  });

  it('more serials in the file than names', () => {
    expect(oneIssue(rule1({}), { 'po-4711.txt': 'A\nB\nC\nD\nE\n' })).toMatchObject({ path: 'discovery.rules[1].names', message: /^5 serials and 4 names/ });
  });

  it('several mistakes at once, each reported', () => {
    const list = issues(base({ policy: 'x', rules: [{ name: 'a', names: 'a[1-2]', profile: 'nope', ip: '10.10.3.1' }, { name: 'b', names: 'b[', profile: 'compute' }] }));
    expect(list.map((i) => i.path)).toEqual(['discovery.policy', 'discovery.rules[0].profile', 'discovery.rules[0].ip', 'discovery.rules[1].names']);
  });
});

describe('loading fleet.yaml with a serials_file', () => {
  it('reads the file relative to fleet.yaml and keeps its text for fleet apply to send', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fleet-disc-'));
    try {
      await writeFile(path.join(dir, 'po-4711.txt'), FILES['po-4711.txt']);
      await writeFile(path.join(dir, 'fleet.yaml'), stringify(base({ rules: [gpuRule()] })));
      const loaded = await loadConfigFile(path.join(dir, 'fleet.yaml'));
      expect(loaded.files).toEqual(FILES);
      expect(loaded.spec.discovery!.rules[0]!.match.serials).toEqual(['SN-A', 'SN-B', 'SN-C']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a serials_file that cannot be read is config.unreadable naming it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fleet-disc-'));
    try {
      await writeFile(path.join(dir, 'fleet.yaml'), stringify(base({ rules: [gpuRule()] })));
      const err = await loadConfigFile(path.join(dir, 'fleet.yaml')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FleetError);
      expect((err as FleetError).code).toBe('config.unreadable');
      expect((err as FleetError).message).toBe(`cannot read serials file ${path.join(dir, 'po-4711.txt')} (discovery serials_file po-4711.txt): no such file`);
      await writeFile(path.join(dir, 'po-4711.txt'), 'SN-A\n');
      await chmod(path.join(dir, 'po-4711.txt'), 0o000);
      if (process.getuid?.() !== 0) {
        await expect(loadConfigFile(path.join(dir, 'fleet.yaml'))).rejects.toThrow(/permission denied/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serialsFilesNamed finds the files without judging the rest', () => {
    expect(serialsFilesNamed(stringify(base({ rules: [gpuRule(), { match: { serials_file: 'b.txt' } }, { match: { serials_file: 'po-4711.txt' } }, 'junk'] })))).toEqual(['po-4711.txt', 'b.txt']);
    expect(serialsFilesNamed('discovery: [\n')).toEqual([]);
    expect(serialsFilesNamed('cluster: {}\n')).toEqual([]);
  });
});

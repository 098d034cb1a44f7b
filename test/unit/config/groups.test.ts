/**
 * fleet.yaml `groups:` and `groups_file:`: definitions kept as written,
 * every problem (bad nodeset, unknown group, cycle, bad file line, a name
 * defined twice) a config error at its place.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, parseConfig, type ConfigIssue } from '../../../server/config/index.js';
import { groupResolver, groupsFileNamed } from '../../../server/config/groups.js';
import { NodeSet } from '../../../server/nodeset/index.js';
import { loadConfigFile } from '../../../server/config/load.js';

type Obj = Record<string, any>;

function base(extra: Obj = {}): Obj {
  return {
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' } },
    profiles: { compute: { os: { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' } } },
    nodes: { 'valkyrie[01-02]': { profile: 'compute', ip: '10.10.3.[1-2]', mac: ['08:00:27:00:03:01', '08:00:27:00:03:02'] } },
    ...extra,
  };
}

function issues(text: string, files?: Record<string, string>): ConfigIssue[] {
  try {
    parseConfig(text, files ? { files } : {});
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('config.invalid');
    return configIssuesOf(e);
  }
  throw new Error('expected config.invalid, but the config was accepted');
}

const LOCAL_CFG = `# clustershell local.cfg
rack1: valkyrie[01-04]
rack2: valkyrie[05-08]   # second rack
racks: @rack[1-2]
io: @racks!valkyrie[02-07]
`;

describe('fleet.yaml groups', () => {
  it('keeps the definitions as written, the file groups with them', () => {
    const spec = parseConfig(stringify(base({ groups: { gpu: '@compute&valkyrie[05-08]', compute: '@profile:compute,@rack2' }, groups_file: 'local.cfg' })), {
      files: { 'local.cfg': LOCAL_CFG },
    });
    expect(spec.groups).toEqual({
      gpu: '@compute&valkyrie[05-08]',
      compute: '@profile:compute,@rack2',
      rack1: 'valkyrie[01-04]',
      rack2: 'valkyrie[05-08]',
      racks: '@rack[1-2]',
      io: '@racks!valkyrie[02-07]',
    });
    expect(spec.groupsFile).toBe('local.cfg');
    expect(parseConfig(stringify(base())).groups).toBeUndefined();
  });

  it('an unknown group is an error at its line, with a did-you-mean', () => {
    const text = stringify(base({ groups: { compute: 'valkyrie[01-02]', gpu: '@compte!valkyrie01' } }));
    const [i] = issues(text);
    expect(i!.path).toBe('groups.gpu');
    expect(i!.line).toBe(text.split('\n').findIndex((l) => l.includes('gpu:')) + 1);
    expect(i!.message).toContain('group gpu: unknown node group @compte (did you mean @compute?)');
    expect(issues(stringify(base({ groups: { a: '@profile:comptue' } })))[0]!.message).toContain('did you mean @profile:compute?');
  });

  it('a cycle is an error naming the path', () => {
    const list = issues(stringify(base({ groups: { a: 'n1,@b', b: '@a' } })));
    expect(list.map((i) => i.message)).toEqual(['group a: group @a refers to itself (@a -> @b -> @a)', 'group b: group @b refers to itself (@b -> @a -> @b)']);
  });

  it('bad names, bad nodesets and non-strings are errors', () => {
    expect(issues(stringify(base({ groups: { 'bad name': 'n1' } })))[0]!.message).toContain('group name "bad name"');
    expect(issues(stringify(base({ groups: { g: 'n[1-' } })))[0]!.message).toContain('group g: Parse error');
    expect(issues(stringify(base({ groups: { g: 3 } })))[0]!.message).toContain('a string');
    expect(issues(stringify(base({ groups: ['n1'] })))[0]!.path).toBe('groups');
    expect(issues(stringify(base({ group: { g: 'n1' } })))[0]!.message).toContain("did you mean 'groups'");
  });

  it('a bad groups file line is an error naming file:line', () => {
    const list = issues(stringify(base({ groups_file: 'local.cfg' })), { 'local.cfg': 'rack1: n[1-2]\nthis is not a group line\nio: @rak1\n' });
    expect(list.map((i) => i.message)).toEqual(["local.cfg:2:1: not a 'group: nodeset' line"]);
    const ref = issues(stringify(base({ groups_file: 'local.cfg' })), { 'local.cfg': 'rack1: n[1-2]\nio: @rak1\n' });
    expect(ref.map((i) => i.message)).toEqual(['local.cfg:2:5: group io: unknown node group @rak1 (did you mean @rack1?); groups: io, rack1']);
    expect(ref[0]!.path).toBe('groups_file');
  });

  it('a group in fleet.yaml and in the file is an error; an unread file is an error', () => {
    expect(issues(stringify(base({ groups: { rack1: 'n1' }, groups_file: 'local.cfg' })), { 'local.cfg': LOCAL_CFG })[0]!.message).toBe(
      'group rack1 is also defined in local.cfg:2; a group is defined once',
    );
    expect(issues(stringify(base({ groups_file: 'local.cfg' })))[0]!.message).toContain('groups_file local.cfg was not read');
  });

  it('the loader reads the groups file next to fleet.yaml, and names it when it cannot', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fleet-groups-'));
    try {
      writeFileSync(path.join(dir, 'fleet.yaml'), stringify(base({ groups_file: 'groups.d/local.cfg' })));
      await expect(loadConfigFile(path.join(dir, 'fleet.yaml'))).rejects.toThrow(/cannot read groups file .*groups\.d\/local\.cfg \(groups_file groups\.d\/local\.cfg\)/);
      expect(groupsFileNamed(stringify(base({ groups_file: 'groups.d/local.cfg' })))).toEqual(['groups.d/local.cfg']);
      const abs = path.join(dir, 'abs.cfg');
      writeFileSync(abs, LOCAL_CFG);
      writeFileSync(path.join(dir, 'fleet.yaml'), stringify(base({ groups_file: abs })));
      const loaded = await loadConfigFile(path.join(dir, 'fleet.yaml'));
      expect(loaded.spec.groups?.io).toBe('@racks!valkyrie[02-07]');
      expect(loaded.files[abs]).toBe(LOCAL_CFG);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('groups_file as clustershell reads it', () => {
  const FILE = 'rack1: n[01-04]\nrack2: n[05-08] n10\nracks: @rack[1-2]\nio: @racks!n[02-07]\nodd: @rack1^n[03-06],x1\nboth: @rack1&@racks\n';
  const hasNodeset = spawnSync('sh', ['-c', 'command -v nodeset']).status === 0;
  it.skipIf(!hasNodeset && process.env.CI !== 'true')('every group resolves as clustershell nodeset -f resolves it', () => {
    expect(hasNodeset, 'clustershell nodeset is not installed (.ci/deps.sh installs clustershell)').toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'fleet-csh-'));
    try {
      writeFileSync(path.join(dir, 'local.cfg'), FILE);
      writeFileSync(
        path.join(dir, 'groups.conf'),
        `[Main]\ndefault: local\n[local]\nmap: sed -n 's/^$GROUP:\\(.*\\)/\\1/p' ${dir}/local.cfg\nlist: sed -n 's/^\\([0-9A-Za-z_-]*\\):.*/\\1/p' ${dir}/local.cfg\n`,
      );
      const spec = parseConfig(stringify(base({ groups_file: 'local.cfg' })), { files: { 'local.cfg': FILE } });
      const resolver = groupResolver(spec.groups!, new Map());
      for (const g of Object.keys(spec.groups!)) {
        const theirs = execFileSync('nodeset', ['-f', `@${g}`], { encoding: 'utf8', env: { ...process.env, CLUSTERSHELL_CFGDIR: dir } }).trim();
        expect(NodeSet.parse(`@${g}`, { groups: resolver }).fold(), g).toBe(theirs);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

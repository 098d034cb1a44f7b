/**
 * Node groups through a real `fleet server` on loopback: fleet.yaml
 * `groups:` and a clustershell groups file (`groups_file:`, read by the CLI
 * at `fleet apply` and by the server at start), `@profile:NAME`, set
 * operators, in the commands that take a nodeset, `fleet nodeset -l/-e`,
 * and an unknown group's one-line error with its exit code.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { cmdReinstall } from '../../server/cli/commands/lifecycle.js';
import type { CliIo } from '../../server/cli/io.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';

function config(groups: Record<string, string>, groupsFile?: string): string {
  return stringify({
    cluster: { name: 'grp', domain: 'cluster.test', timezone: 'UTC', management_address: '192.0.2.1' },
    networks: { provisioning: { subnet: '192.0.2.0/24', unknown_range: '192.0.2.200-192.0.2.250' } },
    profiles: {
      compute: { os: { tree: 'http://192.0.2.1/repo/os' } },
      login: { os: { tree: 'http://192.0.2.1/repo/os' } },
    },
    nodes: {
      'n[01-08]': { profile: 'compute', ip: '192.0.2.[11-18]', mac: Array.from({ length: 8 }, (_, i) => `02:00:00:00:00:${String(11 + i)}`) },
      'login[1-2]': { profile: 'login', ip: '192.0.2.[21-22]', mac: ['02:00:00:00:01:21', '02:00:00:00:01:22'] },
    },
    groups,
    ...(groupsFile ? { groups_file: groupsFile } : {}),
  });
}

describe('node groups against a running server', () => {
  let dir: string;
  let server: RunningServer;
  const fleet = (...args: string[]): Promise<CliResult> => cliAgainst(server, dir)(...args);
  const names = async (...args: string[]): Promise<string> => {
    const r = await fleet('nodes', ...args, '--names');
    expect(r.code, r.err).toBe(0);
    return r.out.trim().split('\n').join(' ');
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-groups-'));
    await writeFile(join(dir, 'local.cfg'), '# clustershell groups.d/local.cfg\nrack1: n[01-04]\nrack2: n[05-08]\n');
    await writeFile(join(dir, 'fleet.yaml'), config({ gpu: '@rack2&n[07-10]', frontends: '@profile:login,n01' }, 'local.cfg'));
    server = await startServer({ configPath: join(dir, 'fleet.yaml'), dataDir: join(dir, 'data'), listen: '127.0.0.1:0', bootListen: '127.0.0.1:0', logLevel: 'warn', say: () => {} });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves @group, @profile:NAME and file groups with set operators in fleet nodes', async () => {
    expect(await names('@gpu')).toBe('n07 n08');
    expect(await names('@profile:compute!@rack1')).toBe('n05 n06 n07 n08');
    expect(await names('@rack1&@profile:compute,@frontends')).toBe('login1 login2 n01 n02 n03 n04');
    expect(await names('@rack[1-2]^n0[1-7]')).toBe('n08');
    expect(await names('@local:rack1!n02')).toBe('n01 n03 n04');
  });

  it('takes groups in the other nodeset arguments: status, events, inventory', async () => {
    const s = await fleet('status', '@gpu', '--json');
    expect(s.code, s.err).toBe(0);
    expect(JSON.stringify(JSON.parse(s.out))).toContain('"n07"');
    const e = await fleet('events', '@frontends');
    expect(e.code, e.err).toBe(0);
    expect(e.out).toMatch(/login1\s+node\.added/);
    expect(e.out).not.toMatch(/\bn02\b/);
  });

  it('fleet reinstall takes a group: the question names its nodes (answered no: nothing changes); an unknown group stops before any question', async () => {
    const questions: string[] = [];
    let err = '';
    const io: CliIo = { stdout: () => {}, stderr: (t) => (err += t), env: {}, isTTY: false, home: dir, cwd: dir };
    const code = await cmdReinstall({ url: server.url, tokenFile: server.tokenPath }, '@profile:compute&@rack2!n05', {}, io, {
      confirm: async (q) => {
        questions.push(q);
        return false;
      },
    });
    expect(code).toBe(1);
    expect(questions).toEqual(['Reinstall 3 nodes n[06-08]? Their disks are erased. [y/N] ']);
    expect(err).toContain('not confirmed; nothing was changed');
    const s = await fleet('status', '@rack2', '--json');
    expect(s.code, s.err).toBe(0);
    expect(s.out).not.toMatch(/reinstall/i);
    const u = await fleet('reinstall', '@rack9', '--yes');
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/^fleet: unknown node group @rack9 \(did you mean @rack1\?\)/);
  });

  it('fleet nodeset lists and expands the server groups', async () => {
    const l = await fleet('nodeset', '-l');
    expect(l.code, l.err).toBe(0);
    expect(l.out.trim().split('\n')).toEqual(['@frontends', '@gpu', '@rack1', '@rack2']);
    const ll = await fleet('nodeset', '-ll', '-s', 'profile');
    expect(ll.out.trim().split('\n')).toEqual(['@profile:compute n[01-08]', '@profile:login login[1-2]']);
    const e = await fleet('nodeset', '-e', '@gpu,@profile:login');
    expect(e.out).toBe('login1 login2 n07 n08\n');
    const f = await fleet('nodeset', '-f', 'n[01-08]', '-x', '@rack1');
    expect(f.out).toBe('n[05-08]\n');
  });

  it('an unknown group is one line with a did-you-mean, exit 2', async () => {
    for (const args of [['nodes', '@gpuu'], ['nodeset', '-e', '@gpuu'], ['status', '@gpuu']]) {
      const r = await fleet(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/^fleet: unknown node group @gpuu \(did you mean @gpu\?\)/);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });

  it('fleet apply sends the groups file; a changed file changes the groups, a bad one names file:line', async () => {
    await writeFile(join(dir, 'local.cfg'), 'rack1: n[01-02]\nrack2: n[03-08]\n');
    const a = await fleet('apply', '-f', join(dir, 'fleet.yaml'));
    expect(a.code, a.err).toBe(0);
    expect(a.out).toContain('settings: groups');
    expect(await names('@rack1')).toBe('n01 n02');
    await writeFile(join(dir, 'local.cfg'), 'rack1: n[01-02]\nrack2 n[03-08]\n');
    const bad = await fleet('apply', '-f', join(dir, 'fleet.yaml'));
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("local.cfg:2:1: not a 'group: nodeset' line");
    expect(await names('@rack1')).toBe('n01 n02');
  });
});

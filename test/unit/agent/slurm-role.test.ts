import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordingRunner } from '../../../agent/exec.js';
import { configFromResponse } from '../../../agent/cache.js';
import { main } from '../../../agent/main.js';
import { applyReport } from '../../../agent/run.js';
import { makeRoleContext, rolesFor, runRoles, slurmRole, type RoleContext } from '../../../agent/roles/index.js';
import { CGROUP_CONF, CGROUP_CONF_PATH, MUNGE_KEY_PATH, SLURM_CONF_PATH } from '../../../agent/roles/slurm.js';
import type { RolesSpec, SlurmNodeRole } from '../../../common/model.js';

const asRoot = process.getuid?.() === 0;
const KEY = crypto.randomBytes(1024);
const KEY_B64 = KEY.toString('base64');
const CONF = 'ClusterName=fleet\nSlurmctldHost=ctl01(10.10.1.1)\nNodeName=valkyrie01 NodeAddr=10.10.3.1 CPUs=8 RealMemory=16056 State=UNKNOWN\n';
const MUNGE_UID = 991;
const SLURM_UID = 64030;

const OS_RELEASE = {
  debian: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
  rhel: 'NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
};

let roots: string[] = [];
afterEach(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  roots = [];
});

interface Lab {
  root: string;
  abs(p: string): string;
  installed: Set<string>;
  enabled: Set<string>;
  active: Set<string>;
  runner: RecordingRunner;
  /** The install does not create the munge user (a broken package). */
  noMungeUser: boolean;
}

function lab(family: 'debian' | 'rhel'): Lab {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-slurm-role-'));
  roots.push(root);
  const abs = (p: string) => path.join(root, p);
  fs.mkdirSync(abs('etc'), { recursive: true });
  fs.writeFileSync(abs('etc/os-release'), OS_RELEASE[family]);
  fs.writeFileSync(abs('etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  fs.writeFileSync(abs('etc/hostname'), 'valkyrie01\n');
  const l: Lab = { root, abs, installed: new Set(), enabled: new Set(), active: new Set(), noMungeUser: false, runner: undefined as never };
  const install = (pkgs: string[]) => {
    for (const p of pkgs) {
      l.installed.add(p);
      if (p === 'munge') {
        if (!l.noMungeUser) fs.appendFileSync(abs('etc/passwd'), `munge:x:${MUNGE_UID}:${MUNGE_UID}::/nonexistent:/usr/sbin/nologin\n`);
        fs.mkdirSync(abs('etc/munge'), { recursive: true, mode: 0o700 });
        // Debian's postinst makes a key of its own and starts munged with it.
        fs.writeFileSync(abs('etc/munge/munge.key'), crypto.randomBytes(128), { mode: 0o400 });
        if (family === 'debian') l.enabled.add('munge'), l.active.add('munge');
      }
      if (p === 'slurm-client' || p === 'slurm') fs.appendFileSync(abs('etc/passwd'), `slurm:x:${SLURM_UID}:${SLURM_UID}::/nonexistent:/usr/sbin/nologin\n`);
      if (p === 'slurmd' || p === 'slurmctld') l.enabled.add(p); // enabled, but not started: no slurm.conf yet
    }
  };
  l.runner = new RecordingRunner((cmd, args) => {
    if (cmd === 'dpkg-query') {
      const names = args.slice(2);
      return { stdout: names.filter((n) => l.installed.has(n)).map((n) => `${n}\tinstall ok installed\n`).join(''), code: names.every((n) => l.installed.has(n)) ? 0 : 1 };
    }
    if (cmd === 'rpm' && args[0] === '-q') {
      const missing = args.slice(1).filter((n) => !l.installed.has(n));
      return { code: missing.length, stdout: args.slice(1).map((n) => (l.installed.has(n) ? `${n}-22.05.9-1.el9.x86_64\n` : `package ${n} is not installed\n`)).join('') };
    }
    if ((cmd === 'apt-get' || cmd === 'dnf') && args[0] === 'install') {
      install(args.slice(2));
      return {};
    }
    if (cmd === 'systemctl') {
      const svc = args[args.length - 1]!;
      switch (args[0]) {
        case 'is-enabled':
          return l.enabled.has(svc) ? { stdout: 'enabled\n' } : { code: 1, stdout: l.installed.size ? 'disabled\n' : '', stderr: l.installed.size ? '' : `Failed to get unit file state for ${svc}.service: No such file or directory\n` };
        case 'is-active':
          return l.active.has(svc) ? { stdout: 'active\n' } : { code: 3, stdout: 'inactive\n' };
        case 'enable':
          l.enabled.add(svc);
          if (args.includes('--now')) l.active.add(svc);
          return {};
        case 'start':
        case 'restart':
          l.active.add(svc);
          return {};
      }
    }
    return undefined;
  });
  return l;
}

async function ctxFor(l: Lab, role: SlurmNodeRole, slurm: { conf: string; mungeKeyB64: string } | undefined = { conf: CONF, mungeKeyB64: KEY_B64 }, log: string[] = []): Promise<RoleContext> {
  const roles: RolesSpec = { slurm: { role, clusterName: 'fleet', partition: 'batch', partitionDefault: true } };
  return makeRoleContext({
    root: l.root,
    settings: { roles, cluster: { domain: 'cluster.local', managementAddress: '10.10.0.1', hosts: [], ...(slurm ? { slurm } : {}) } },
    runner: l.runner,
    log: (x) => log.push(x),
  });
}

const QUERY = (a: string[]) => a[0] === 'dpkg-query' || (a[0] === 'rpm' && a[1] === '-q') || (a[0] === 'systemctl' && (a[1] === 'is-enabled' || a[1] === 'is-active'));
const mutating = (r: RecordingRunner) => r.argvs.filter((a) => !QUERY(a));

function mustNotLeak(what: string, text: string): void {
  expect(text.includes(KEY_B64), `${what} holds the key (base64)`).toBe(false);
  expect(text.includes(KEY_B64.slice(0, 24)), `${what} holds part of the key (base64)`).toBe(false);
  expect(text.includes(KEY.subarray(0, 16).toString('hex')), `${what} holds the key (hex)`).toBe(false);
  expect(text.includes(KEY.subarray(0, 16).toString('latin1')), `${what} holds the key (raw)`).toBe(false);
}

describe('slurm role', () => {
  it('debian compute: installs munge slurm-client slurmd, writes the key 0400 munge and slurm.conf, restarts munge, starts slurmd; then nothing', async () => {
    const l = lab('debian');
    const log: string[] = [];
    const ctx = await ctxFor(l, 'compute', undefined, log);
    const res = await slurmRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(mutating(l.runner)).toEqual([
      ['apt-get', 'install', '-y', 'munge', 'slurm-client', 'slurmd'],
      ['systemctl', 'enable', 'munge'],
      ['systemctl', 'restart', 'munge'],
      ['systemctl', 'enable', 'slurmd'],
      ['systemctl', 'restart', 'slurmd'],
    ]);
    expect(l.runner.calls.find((c) => c.cmd === 'apt-get')!.opts.env).toMatchObject({ DEBIAN_FRONTEND: 'noninteractive' });
    expect(fs.readFileSync(l.abs(MUNGE_KEY_PATH)).equals(KEY)).toBe(true);
    const st = fs.statSync(l.abs(MUNGE_KEY_PATH));
    expect(st.mode & 0o7777).toBe(0o400);
    if (asRoot) expect([st.uid, st.gid]).toEqual([MUNGE_UID, MUNGE_UID]);
    expect(fs.readFileSync(l.abs(SLURM_CONF_PATH), 'utf8')).toBe(CONF);
    expect(fs.statSync(l.abs(SLURM_CONF_PATH)).mode & 0o7777).toBe(0o644);
    // cgroup.conf beside it: slurmd 22.05 on cgroup v2 without D-Bus exits unless IgnoreSystemd.
    expect(fs.readFileSync(l.abs(CGROUP_CONF_PATH), 'utf8')).toBe(CGROUP_CONF);
    expect(CGROUP_CONF).toMatch(/^IgnoreSystemd=yes$/m);
    expect(res.changes.map((c) => c.path)).toContain(CGROUP_CONF_PATH);
    expect(fs.statSync(l.abs('var/spool/slurmd')).mode & 0o7777).toBe(0o755);
    expect(fs.existsSync(l.abs('var/spool/slurmctld'))).toBe(false);
    // The old key is not kept as a backup: it was a secret too.
    expect(fs.existsSync(l.abs('var/lib/fleet-agent/backup/etc/munge/munge.key'))).toBe(false);
    mustNotLeak('the result', JSON.stringify(res));
    mustNotLeak('the log', log.join('\n'));

    l.runner.clear();
    expect(await slurmRole.plan(ctx)).toEqual([]);
    const again = await slurmRole.apply(ctx);
    expect(again).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(l.runner)).toEqual([]);
  });

  it('not listed yet: slurmd waits for a slurm.conf that names this node, slurmctld for one that names any; the next conf starts them', async () => {
    const l = lab('debian');
    fs.writeFileSync(l.abs('etc/hostname'), 'valkyrie02\n');
    const early = 'ClusterName=fleet\nSlurmctldHost=ctl01(10.10.1.1)\n# valkyrie02 left out: no inventory reported yet\n';
    const ctx = await ctxFor(l, 'both', { conf: early, mungeKeyB64: KEY_B64 });
    const res = await slurmRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(mutating(l.runner)).toEqual([
      ['apt-get', 'install', '-y', 'munge', 'slurm-client', 'slurmctld', 'slurmd'],
      ['systemctl', 'enable', 'munge'],
      ['systemctl', 'restart', 'munge'],
    ]);
    expect(res.message).toMatch(/slurmctld not started: slurm\.conf lists no compute node yet/);
    expect(res.message).toMatch(/slurmd not started: slurm\.conf does not list valkyrie02 yet/);
    // valkyrie01 listed, not this node: slurmctld starts, slurmd still waits.
    l.runner.clear();
    ctx.settings.cluster.slurm = { conf: CONF, mungeKeyB64: KEY_B64 };
    const r2 = await slurmRole.apply(ctx);
    expect(mutating(l.runner)).toEqual([['systemctl', 'restart', 'slurmctld']]);
    expect(r2.message).toMatch(/slurmd not started: slurm\.conf does not list valkyrie02 yet/);
    l.runner.clear();
    ctx.settings.cluster.slurm = { conf: `${CONF}NodeName=valkyrie02 NodeAddr=10.10.3.2 CPUs=8 RealMemory=16056 State=UNKNOWN\n`, mungeKeyB64: KEY_B64 };
    await slurmRole.apply(ctx);
    expect(mutating(l.runner)).toEqual([
      ['systemctl', 'restart', 'slurmctld'],
      ['systemctl', 'restart', 'slurmd'],
    ]);
  });

  it('an image with both daemons: a compute node stops and disables slurmctld, a controller slurmd', async () => {
    const l = lab('debian');
    for (const p of ['munge', 'slurm-client', 'slurmctld', 'slurmd']) l.installed.add(p);
    fs.appendFileSync(l.abs('etc/passwd'), `munge:x:${MUNGE_UID}:${MUNGE_UID}::/nonexistent:/usr/sbin/nologin\nslurm:x:${SLURM_UID}:${SLURM_UID}::/nonexistent:/usr/sbin/nologin\n`);
    for (const d of ['munge', 'slurmctld', 'slurmd']) l.enabled.add(d);
    l.active.add('munge');
    const ctx = await ctxFor(l, 'compute');
    const res = await slurmRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(mutating(l.runner)).toEqual([
      ['systemctl', 'restart', 'munge'],
      ['systemctl', 'disable', '--now', 'slurmctld'],
      ['systemctl', 'restart', 'slurmd'],
    ]);
    expect(res.changes.map((c) => c.summary)).toContain('systemctl disable --now slurmctld (not this node\'s daemon: role compute)');
    // Disabled and stopped: nothing more to do.
    l.enabled.delete('slurmctld');
    l.active.delete('slurmctld');
    l.runner.clear();
    expect(await slurmRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
  });

  it('rhel controller: EPEL packages, StateSaveLocation 0700 slurm, slurmctld not slurmd', async () => {
    const l = lab('rhel');
    const ctx = await ctxFor(l, 'controller');
    const res = await slurmRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(mutating(l.runner)).toEqual([
      ['dnf', 'install', '-y', 'munge', 'slurm', 'slurm-slurmctld'],
      ['systemctl', 'enable', 'munge'],
      ['systemctl', 'restart', 'munge'],
      ['systemctl', 'enable', 'slurmctld'],
      ['systemctl', 'restart', 'slurmctld'],
    ]);
    const st = fs.statSync(l.abs('var/spool/slurmctld'));
    expect(st.mode & 0o7777).toBe(0o700);
    if (asRoot) expect([st.uid, st.gid]).toEqual([SLURM_UID, SLURM_UID]);
    expect(fs.existsSync(l.abs('var/spool/slurmd'))).toBe(false);
    l.runner.clear();
    expect(await slurmRole.apply(ctx)).toMatchObject({ status: 'ok' });
    expect(mutating(l.runner)).toEqual([]);
  });

  it('both: both daemons; installed and running, a new slurm.conf restarts slurmd and slurmctld, not munge', async () => {
    const l = lab('rhel');
    const ctx = await ctxFor(l, 'both');
    expect((await slurmRole.apply(ctx)).status).toBe('changed');
    expect(l.installed).toEqual(new Set(['munge', 'slurm', 'slurm-slurmctld', 'slurm-slurmd']));
    const next = await ctxFor(l, 'both', { conf: CONF + 'NodeName=valkyrie02 CPUs=4 RealMemory=7936 State=UNKNOWN\n', mungeKeyB64: KEY_B64 });
    l.runner.clear();
    const res = await slurmRole.apply(next);
    expect(res.status).toBe('changed');
    expect(mutating(l.runner)).toEqual([
      ['systemctl', 'restart', 'slurmctld'],
      ['systemctl', 'restart', 'slurmd'],
    ]);
    expect(res.changes[0]!.diff).toContain('+NodeName=valkyrie02');
  });

  it('a new key: shown as a secret, never as a diff, in plan, check, fleet-agent plan and the apply report', async () => {
    const l = lab('debian');
    const ctx = await ctxFor(l, 'compute');
    await slurmRole.apply(ctx);
    fs.chmodSync(l.abs(MUNGE_KEY_PATH), 0o600);
    fs.writeFileSync(l.abs(MUNGE_KEY_PATH), crypto.randomBytes(1024));
    const plan = await slurmRole.plan(ctx);
    expect(plan).toEqual([
      { path: MUNGE_KEY_PATH, action: 'update', summary: `update ${MUNGE_KEY_PATH} (secret, 1024 bytes)` },
      { action: 'run', command: ['systemctl', 'restart', 'munge'], summary: 'systemctl restart munge' },
      { action: 'run', command: ['systemctl', 'restart', 'slurmd'], summary: 'systemctl restart slurmd' },
    ]);
    mustNotLeak('plan', JSON.stringify(plan));
    mustNotLeak('check', JSON.stringify(await slurmRole.check!(ctx)));

    // fleet-agent plan, text and JSON, from a config file as the server sends it.
    const cfgFile = path.join(l.root, 'config.json');
    const answer = {
      version: 'sha256:x',
      profile: 'compute',
      roles: ['slurm'],
      schema: 'fleet.roles/v1',
      rolesJson: JSON.stringify({ slurm: { role: 'compute', clusterName: 'fleet', partition: 'batch', partitionDefault: true } }),
      clusterJson: JSON.stringify({ domain: 'cluster.local', managementAddress: '10.10.0.1', hosts: [], slurm: { conf: CONF, mungeKeyB64: KEY_B64 } }),
    };
    expect(configFromResponse(answer).settings.cluster.slurm).toEqual({ conf: CONF, mungeKeyB64: KEY_B64 });
    fs.writeFileSync(cfgFile, JSON.stringify(answer));
    for (const json of [false, true]) {
      let out = '';
      let err = '';
      const code = await main(['node', 'fleet-agent', 'plan', '--config', cfgFile, '--root', l.root, ...(json ? ['--json'] : [])], { stdout: (s) => void (out += s), stderr: (s) => void (err += s) }, { runner: l.runner });
      expect(code, err).toBe(0);
      expect(out).toContain(`(secret, 1024 bytes)`);
      mustNotLeak(`fleet-agent plan${json ? ' --json' : ''}`, out + err);
    }

    const log: string[] = [];
    const results = await runRoles(rolesFor(ctx.settings.roles), { ...ctx, log: (x) => log.push(x) });
    expect(results[0]!.status).toBe('changed');
    expect(fs.readFileSync(l.abs(MUNGE_KEY_PATH)).equals(KEY)).toBe(true);
    expect(fs.statSync(l.abs(MUNGE_KEY_PATH)).mode & 0o7777).toBe(0o400);
    mustNotLeak('the apply report', JSON.stringify(applyReport('sha256:x', results, 0, 1)));
    mustNotLeak('the results', JSON.stringify(results));
    mustNotLeak('the log', log.join('\n'));
  });

  it('only the mode of the key wrong: chmod, no restart', async () => {
    const l = lab('debian');
    const ctx = await ctxFor(l, 'compute');
    await slurmRole.apply(ctx);
    fs.chmodSync(l.abs(MUNGE_KEY_PATH), 0o644);
    l.runner.clear();
    const res = await slurmRole.apply(ctx);
    expect(res).toMatchObject({ status: 'changed', changes: [{ path: MUNGE_KEY_PATH, summary: `${MUNGE_KEY_PATH}: mode 0400, owner munge` }] });
    expect(mutating(l.runner)).toEqual([]);
    expect(fs.statSync(l.abs(MUNGE_KEY_PATH)).mode & 0o7777).toBe(0o400);
  });

  it('fails naming the munge user when the install did not create it, and restarts nothing', async () => {
    const l = lab('debian');
    l.noMungeUser = true;
    const res = await slurmRole.apply(await ctxFor(l, 'compute'));
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/user munge is not in \/etc\/passwd \(after installing munge\): cannot own \/etc\/munge\/munge.key/);
    expect(mutating(l.runner)).toEqual([['apt-get', 'install', '-y', 'munge', 'slurm-client', 'slurmd']]);
  });

  it('a failed install names its argv, exit status and stderr; nothing else is done', async () => {
    const l = lab('rhel');
    const runner = new RecordingRunner((cmd, args) => {
      if (cmd === 'rpm') return { code: args.length - 1, stdout: args.slice(1).map((n) => `package ${n} is not installed\n`).join('') };
      if (cmd === 'dnf') return { code: 1, stderr: 'Error: Unable to find a match: slurm-slurmd\n' };
      if (cmd === 'systemctl') return { code: 1, stdout: 'disabled\n' };
      return undefined;
    });
    l.runner = runner;
    const res = await slurmRole.apply(await ctxFor(l, 'compute'));
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/dnf install -y munge slurm slurm-slurmd.*exit(ed with)? (status )?1.*Unable to find a match: slurm-slurmd/s);
    expect(mutating(runner)).toEqual([['dnf', 'install', '-y', 'munge', 'slurm', 'slurm-slurmd']]);
    expect(fs.existsSync(l.abs(SLURM_CONF_PATH))).toBe(false);
  });

  it('fails clearly when the server sent no slurm facts, or a short key', async () => {
    const l = lab('debian');
    const none = await slurmRole.apply(
      await makeRoleContext({ root: l.root, settings: { roles: { slurm: { role: 'compute', clusterName: 'fleet', partition: 'batch', partitionDefault: true } }, cluster: { domain: '', managementAddress: '', hosts: [] } }, runner: l.runner }),
    );
    expect(none.status).toBe('failed');
    expect(none.message).toMatch(/the server sent no slurm.conf and munge key: the cluster needs exactly one node whose profile has slurm role controller or both/);
    const short = await slurmRole.apply(await ctxFor(l, 'compute', { conf: CONF, mungeKeyB64: Buffer.alloc(8).toString('base64') }));
    expect(short).toMatchObject({ status: 'failed', message: expect.stringMatching(/8 bytes; munged needs at least 32/) });
    expect(mutating(l.runner)).toEqual([]);
  });

  it('runs after users and nfs, before infiniband and gpu', async () => {
    const roles: RolesSpec = {
      gpu: { vendor: 'nvidia', packages: [], blacklistNouveau: true },
      slurm: { role: 'compute', clusterName: 'fleet', partition: 'batch', partitionDefault: true },
      infiniband: { packages: [] },
      nfs: { mounts: [] },
      users: { groups: [], users: [] },
    };
    expect(rolesFor(roles).map((r) => r.name)).toEqual(['users', 'nfs', 'slurm', 'infiniband', 'gpu']);
  });
});

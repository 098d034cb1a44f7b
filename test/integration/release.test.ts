/**
 * The release artefact (scripts/release.sh, docs/decisions/0012): built from
 * this tree's dist/, installed into a clean directory laid out as a site
 * would (/usr/local/lib/fleet, /usr/local/bin/fleet, the unit in
 * /etc/systemd/system), then run from there with only node on PATH: --version,
 * server --help, and a real server start and SIGTERM (better-sqlite3's native
 * module loads from the install). The unit passes `systemd-analyze verify`
 * with that directory as its root, so ExecStart's /usr/local/bin/fleet is the
 * installed launcher. Needs dist/ (npm run build), tar and systemd-analyze.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distMissing, ROOT } from '../helpers/fleet-server.js';
import { missingBinaries } from '../helpers/netns.js';

const run = promisify(execFile);
const missing = missingBinaries(['tar', 'systemd-analyze']);
const why = missing.length ? `missing ${missing.join(', ')}` : distMissing();
const suite = why ? describe.skip : describe;

suite(why ? `release artefact — SKIPPED: ${why}` : 'release artefact', () => {
  let dir: string;
  let root: string;
  let fleet: string;
  /** Only node on PATH: no npm, no compiler, nothing of this checkout. */
  const env = (): NodeJS.ProcessEnv => ({ PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: dir });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-release-'));
    const { stdout } = await run(join(ROOT, 'scripts/release.sh'), ['--out', join(dir, 'out'), '--dist', join(ROOT, 'dist')], { timeout: 120_000 });
    const tarball = stdout.trim().split('\n').at(-1)!;
    expect(tarball).toMatch(/\/fleet-\d+\.\d+\.\d+-linux-\w+-node-\d+\.tar\.gz$/);
    root = join(dir, 'root');
    const lib = join(root, 'usr/local/lib/fleet');
    await mkdir(lib, { recursive: true });
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', lib, '--strip-components=1']);
    fleet = join(root, 'usr/local/bin/fleet');
    await symlink('../lib/fleet/bin/fleet', fleet);
    await cp(join(lib, 'systemd/fleet.service'), join(root, 'etc/systemd/system/fleet.service'));
  }, 150_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds the production dependencies with the native module, and no dev tools', () => {
    const nm = join(root, 'usr/local/lib/fleet/node_modules');
    expect(existsSync(join(nm, 'better-sqlite3/build/Release/better_sqlite3.node'))).toBe(true);
    expect(existsSync(join(nm, 'fastify'))).toBe(true);
    for (const dev of ['typescript', 'vitest', 'esbuild']) expect(existsSync(join(nm, dev)), dev).toBe(false);
  });

  it('ships the man pages, readable with man -l', async () => {
    for (const page of ['fleet.1', 'fleet-agent.1']) {
      const file = join(root, 'usr/local/lib/fleet/man/man1', page);
      expect(existsSync(file), page).toBe(true);
    }
    const man = await run('man', ['-l', '-P', 'cat', join(root, 'usr/local/lib/fleet/man/man1/fleet.1')], { env: { ...process.env, MANWIDTH: '80' } });
    expect(man.stdout).toMatch(/bmc rotate/);
  });

  it('runs fleet --version, fleet server --help and fleet nodeset from the install', async () => {
    const v = await run(fleet, ['--version'], { cwd: dir, env: env() });
    expect(v.stdout.trim()).toBe('0.1.0');
    const h = await run(fleet, ['server', '--help'], { cwd: dir, env: env() });
    expect(h.stdout).toMatch(/^Usage: fleet server \[options\]/);
    expect(h.stdout).toMatch(/--config <file>/);
    const n = await run(fleet, ['nodeset', '-c', 'n[1-100]'], { cwd: dir, env: env() });
    expect(n.stdout).toBe('100\n');
  });

  it('starts a server from the install (SQLite through the shipped native module) and stops on SIGTERM with exit 0', async () => {
    const child = spawn(
      fleet,
      ['server', '--config', join(ROOT, 'examples/seed-cluster.yaml'), '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--boot-listen', '127.0.0.1:0', '--log-level', 'info'],
      { cwd: dir, env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      for (const until = Date.now() + 30_000; !/HTTP API listening on/.test(out); ) {
        if (Date.now() > until || child.exitCode !== null) throw new Error(`the installed fleet server did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(out).toMatch(/data dir: .*\(SQLite .*fleet\.db\)/);
      // The dashboard's assets ship with it (the server reads them at start and serves them).
      const api = /HTTP API listening on (?:http:\/\/)?([0-9.]+:\d+)/.exec(out)?.[1];
      expect(api, out).toBeDefined();
      const js = await fetch(`http://${api}/ui/assets/dashboard.js`);
      expect(js.status).toBe(200);
      expect(await js.text()).toContain('EventSource');
      child.kill('SIGTERM');
      expect(await exited, out).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('has a unit that passes systemd-analyze verify, ExecStart being the installed launcher', async () => {
    // verify loads the units the service depends on (sysinit.target, ...) from the root: give it the host's.
    await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    const r = await run('systemd-analyze', ['verify', `--root=${root}`, join(root, 'etc/systemd/system/fleet.service')]).then(
      (x) => ({ code: 0, stderr: x.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    // A warning (an unknown key, a bad value) exits 0 too: none may be printed.
    expect(r).toEqual({ code: 0, stderr: '' });
  });

  it('the same verify fails on a unit whose ExecStart is not installed (the check can fail)', async () => {
    const r = await run('systemd-analyze', ['verify', join(root, 'etc/systemd/system/fleet.service')]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(existsSync('/usr/local/bin/fleet') ? 'installed on this host' : r).not.toBe(0);
  });
});

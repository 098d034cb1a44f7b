/**
 * fleet's apt repository with real peers, on loopback only: .debs built
 * here by dpkg-deb, added with `addDebs` (the code of `fleet repo add`),
 * signed by gpg, served by the fleet boot face (buildBootApp on a real
 * socket), and consumed by the real apt-get with a private apt
 * configuration (server/repo/fetch.ts's, so the host's apt state is never
 * touched):
 *
 *   - signed-by= the key fetched from /repo/debian/fleet-archive-keyring.gpg:
 *     apt-get update, install --download-only (both packages, sums checked
 *     by apt), install -s (dependency resolved from the repository);
 *   - a tampered InRelease is refused (BADSIG), and so is a repository
 *     signed by another key (NO_PUBKEY / no valid signature);
 *   - an unsigned repository is refused with signed-by= and taken with
 *     [trusted=yes] (the profile's explicit "unsigned");
 *   - the /repo/debian/ tree refuses traversal (.., %2e%2e, absolute paths,
 *     a symlink to the signing key) over a real socket, and /repo/* still
 *     serves DATA/www/repo.
 *
 * Needs dpkg-deb, gpg and apt-get (Debian; .ci/deps.sh). Under CI=true a
 * missing tool fails the run instead of skipping it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';
import { buildBootApp } from '../../server/http/app.js';
import { configForNode } from '../../server/agents/config.js';
import { fetchPackages, preparePrivateApt } from '../../server/repo/fetch.js';
import { addDebs, listPackages, removePackages, repoPaths } from '../../server/repo/store.js';
import { openStore, type Store } from '../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER } from '../helpers/golden.js';

const missing = ['dpkg-deb', 'gpg', 'gpgv', 'apt-get'].filter((t) => !findExecutable(t));
const why = missing.length ? `${missing.join(', ')} missing (apt-get install dpkg gnupg gpgv apt)` : null;
if (why && process.env.CI === 'true') throw new Error(`CI=true: the apt repository test needs ${why}`);

const ACTOR = { actor: 'test' };

/** A .deb made by dpkg-deb from a temporary tree. */
function deb(dir: string, control: Record<string, string>): string {
  const root = mkdtempSync(join(dir, 'tree-'));
  mkdirSync(join(root, 'DEBIAN'));
  writeFileSync(join(root, 'DEBIAN', 'control'), Object.entries(control).map(([k, v]) => `${k}: ${v}\n`).join(''));
  mkdirSync(join(root, 'usr', 'share', 'doc', control.Package!), { recursive: true });
  writeFileSync(join(root, 'usr', 'share', 'doc', control.Package!, 'README'), `${control.Package} ${control.Version}\n`);
  const out = join(dir, `${control.Package}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, out], { stdio: 'pipe' });
  return out;
}

/** An environment for apt without proxies (loopback only) and with a private APT_CONFIG. */
function aptEnv(conf: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, APT_CONFIG: conf, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  for (const k of Object.keys(env)) if (/_proxy$/i.test(k)) delete env[k];
  return env;
}

interface Apt {
  dir: string;
  run(...args: string[]): Promise<{ code: number; out: string }>;
}

/** A private apt (lists, cache, empty dpkg status, this one sources line) in a new directory. */
async function privateApt(base: string, line: string): Promise<Apt> {
  const dir = mkdtempSync(join(base, 'apt-'));
  const conf = await preparePrivateApt(dir, [line], []);
  return {
    dir,
    // Asynchronous: the server answering apt runs in this process.
    run: async (...args) => {
      const r = await runProcess('apt-get', ['-q', ...args], { env: aptEnv(conf), timeoutMs: 120_000 });
      return { code: r.code ?? -1, out: `${r.stdout}${r.stderr}` };
    },
  };
}

function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(why !== null)(`fleet apt repository with apt-get${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  let base: string;
  let data: string;
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let repoUrl: string;
  let keyFile: string;
  const logs: string[] = [];
  const log = (l: string) => void logs.push(l);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'fleet-apt-'));
    data = join(base, 'data');
    const debs = join(base, 'debs');
    mkdirSync(debs);
    const lib = deb(debs, { Package: 'fleet-test-lib', Version: '1.0-1', Architecture: 'all', Maintainer: 'fleet <fleet@example.org>', Description: 'a library for the test' });
    const app1 = deb(debs, {
      Package: 'fleet-test-app',
      Version: '2:3.1-1',
      Architecture: 'amd64',
      Maintainer: 'fleet <fleet@example.org>',
      Depends: 'fleet-test-lib (>= 1.0)',
      Description: 'an application for the test',
    });
    // A hostile file name: where it lands is decided by its control fields only.
    const hostile = join(debs, '..;$(touch pwned);..deb');
    copyFileSync(app1, hostile);
    const r = await addDebs({ dataDir: data, suite: 'bookworm', files: [lib, hostile], log });
    expect(r.added.map((e) => e.filename)).toEqual(['pool/main/f/fleet-test-lib/fleet-test-lib_1.0-1_all.deb', 'pool/main/f/fleet-test-app/fleet-test-app_3.1-1_amd64.deb']);

    // The OS trees of DATA/www/repo are still /repo/*.
    mkdirSync(join(data, 'www', 'repo', 'alma'), { recursive: true });
    writeFileSync(join(data, 'www', 'repo', 'alma', '.treeinfo'), '[general]\n');
    writeFileSync(join(data, 'repo', 'secret-beside'), 'SECRET');
    // A link inside the served tree to the signing key's directory.
    symlinkSync(join(data, 'repo', 'key'), join(data, 'repo', 'debian', 'keylink'));

    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    app = await buildBootApp({
      store,
      serverUrl: SERVER,
      caFingerprint: CA_FP,
      enrolServer: '10.10.0.1:50051',
      dataDir: data,
      staticRoots: { repo: join(data, 'www', 'repo') },
      logLevel: 'silent',
      rateLimit: { max: 10_000, timeWindow: 60_000 },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    repoUrl = `${url}/repo/debian`;
    // What a node does with the cluster facts' key: the binary keyring, fetched here over HTTP.
    const res = await fetch(`${repoUrl}/fleet-archive-keyring.gpg`);
    expect(res.status).toBe(200);
    keyFile = join(base, 'fleet.gpg');
    writeFileSync(keyFile, Buffer.from(await res.arrayBuffer()));
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await store?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('lays the repository out as Debian does, key directory 0700 and not served', () => {
    const p = repoPaths(data);
    for (const f of ['dists/bookworm/Release', 'dists/bookworm/InRelease', 'dists/bookworm/Release.gpg', 'dists/bookworm/main/binary-amd64/Packages', 'dists/bookworm/main/binary-amd64/Packages.gz', 'fleet-archive-keyring.gpg', 'fleet-archive-keyring.asc']) {
      expect(existsSync(join(p.debian, f)), f).toBe(true);
    }
    expect(execFileSync('stat', ['-c', '%a', p.key], { encoding: 'utf8' }).trim()).toBe('700');
    expect(readdirSync(join(base, 'debs'))).not.toContain('pwned');
    const pk = readFileSync(join(p.debian, 'dists/bookworm/main/binary-amd64/Packages'), 'utf8');
    expect(pk).toContain('Package: fleet-test-app\nVersion: 2:3.1-1\nArchitecture: amd64\n');
    expect(pk).toContain('Filename: pool/main/f/fleet-test-app/fleet-test-app_3.1-1_amd64.deb\n');
  });

  it('signed path: apt-get update verifies InRelease with signed-by=, then downloads and resolves from the repository', async () => {
    const apt = await privateApt(base, `deb [signed-by=${keyFile}] ${repoUrl} bookworm main`);
    const up = await apt.run('update');
    console.log(`apt-get update (signed-by):\n${up.out}`);
    expect(up.code, up.out).toBe(0);
    expect(up.out).toMatch(new RegExp(`Get:1 ${repoUrl.replace(/[.]/g, '\\.')} bookworm InRelease`));
    expect(up.out).not.toMatch(/^[WE]:/m);
    const dl = await apt.run('install', '--download-only', '-y', 'fleet-test-app');
    console.log(`apt-get install --download-only fleet-test-app:\n${dl.out}`);
    expect(dl.code, dl.out).toBe(0);
    expect(dl.out).toMatch(/Get:\d+ \S+ bookworm\/main amd64 fleet-test-app amd64 2:3\.1-1/);
    expect(dl.out).toMatch(/Get:\d+ \S+ bookworm\/main amd64 fleet-test-lib all 1\.0-1/);
    expect(readdirSync(join(apt.dir, 'cache', 'archives')).filter((n) => n.endsWith('.deb')).sort()).toEqual(['fleet-test-app_2%3a3.1-1_amd64.deb', 'fleet-test-lib_1.0-1_all.deb']);
    const sim = await apt.run('install', '-s', 'fleet-test-app');
    console.log(`apt-get install -s fleet-test-app:\n${sim.out}`);
    expect(sim.code, sim.out).toBe(0);
    expect(sim.out).toMatch(/^Inst fleet-test-lib \(1\.0-1 fleet:bookworm \[all\]\)/m);
    expect(sim.out).toMatch(/^Inst fleet-test-app \(2:3\.1-1 fleet:bookworm \[amd64\]\)/m);
  });

  it('a new version added, an old one removed: apt sees the republished suite', async () => {
    const v2 = deb(mkdtempSync(join(base, 'v2-')), { Package: 'fleet-test-lib', Version: '1.1-1', Architecture: 'all', Maintainer: 'fleet <fleet@example.org>', Description: 'a library for the test' });
    const r = await addDebs({ dataDir: data, suite: 'bookworm', files: [v2], log });
    expect(r.replaced.map((e) => e.version)).toEqual(['1.0-1']);
    expect(existsSync(join(repoPaths(data).debian, 'pool/main/f/fleet-test-lib/fleet-test-lib_1.0-1_all.deb'))).toBe(false);
    const apt = await privateApt(base, `deb [signed-by=${keyFile}] ${repoUrl} bookworm main`);
    expect((await apt.run('update')).code).toBe(0);
    expect((await apt.run('install', '-s', 'fleet-test-app')).out).toMatch(/^Inst fleet-test-lib \(1\.1-1 /m);
    // remove, then add again (the remaining tests expect both packages)
    await removePackages({ dataDir: data, suite: 'bookworm', names: ['fleet-test-lib'], log });
    expect((await listPackages(data, 'bookworm')).map((e) => e.package)).toEqual(['fleet-test-app']);
    const again = await privateApt(base, `deb [signed-by=${keyFile}] ${repoUrl} bookworm main`);
    expect((await again.run('update')).code).toBe(0);
    const sim = await again.run('install', '-s', 'fleet-test-app');
    expect(sim.code).not.toBe(0);
    expect(sim.out).toMatch(/Depends: fleet-test-lib \(>= 1\.0\) but it is not installable/);
    await addDebs({ dataDir: data, suite: 'bookworm', files: [v2], log });
  });

  it('refuses a tampered InRelease (BADSIG) and a repository signed by another key', async () => {
    const dist = join(repoPaths(data).debian, 'dists', 'bookworm');
    const good = readFileSync(join(dist, 'InRelease'), 'utf8');
    try {
      writeFileSync(join(dist, 'InRelease'), good.replace('Label: fleet', 'Label: evil!'));
      const apt = await privateApt(base, `deb [signed-by=${keyFile}] ${repoUrl} bookworm main`);
      const up = await apt.run('update');
      console.log(`apt-get update (tampered InRelease):\n${up.out}`);
      expect(up.out).toMatch(/BADSIG|signatures were invalid/);
      expect(up.out).toMatch(/^E: The repository .* is not signed\.|^E: .*InRelease/m);
      expect((await apt.run('install', '-s', 'fleet-test-app')).code).not.toBe(0);
    } finally {
      writeFileSync(join(dist, 'InRelease'), good);
    }
    // Another key (a node that trusts someone else's key) is refused too.
    const otherHome = mkdtempSync(join(base, 'gpg-'));
    const env = { ...process.env, GNUPGHOME: otherHome };
    execFileSync('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'someone else', 'ed25519', 'sign', 'never'], { env, stdio: 'pipe' });
    const otherKey = join(base, 'other.gpg');
    execFileSync('gpg', ['--batch', '--output', otherKey, '--export'], { env, stdio: 'pipe' });
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env, stdio: 'pipe' });
    const apt = await privateApt(base, `deb [signed-by=${otherKey}] ${repoUrl} bookworm main`);
    const up = await apt.run('update');
    console.log(`apt-get update (another key):\n${up.out}`);
    expect(up.out).toMatch(/NO_PUBKEY|not signed|no valid OpenPGP/);
    expect(up.out).toMatch(/^E: /m);
  });

  it('unsigned: refused with signed-by=, taken with [trusted=yes] (a profile\'s gpgcheck: false)', async () => {
    const dist = join(repoPaths(data).debian, 'dists', 'bookworm');
    const inRelease = readFileSync(join(dist, 'InRelease'));
    const detached = readFileSync(join(dist, 'Release.gpg'));
    rmSync(join(dist, 'InRelease'));
    rmSync(join(dist, 'Release.gpg'));
    try {
      const signed = await privateApt(base, `deb [signed-by=${keyFile}] ${repoUrl} bookworm main`);
      const refused = await signed.run('update');
      console.log(`apt-get update (unsigned, signed-by):\n${refused.out}`);
      expect(refused.out).toMatch(/^E: The repository .* is not signed\./m);
      const trusted = await privateApt(base, `deb [trusted=yes] ${repoUrl} bookworm main`);
      const up = await trusted.run('update');
      console.log(`apt-get update (unsigned, trusted=yes):\n${up.out}`);
      expect(up.code, up.out).toBe(0);
      expect(up.out).not.toMatch(/^E:/m);
      const sim = await trusted.run('install', '-s', 'fleet-test-app');
      expect(sim.code, sim.out).toBe(0);
      expect(sim.out).toMatch(/^Inst fleet-test-app /m);
    } finally {
      writeFileSync(join(dist, 'InRelease'), inRelease);
      writeFileSync(join(dist, 'Release.gpg'), detached);
    }
  });

  it('fleet repo fetch: a dependency closure from "the host\'s" sources (here: this repository), signature checked, host apt untouched', async () => {
    // A stand-in /etc/apt whose sources name this repository, its key by Signed-By.
    const etc = mkdtempSync(join(base, 'etc-apt-'));
    writeFileSync(join(etc, 'sources.list'), `deb [signed-by=${keyFile}] ${repoUrl} bookworm main\n`);
    const osRelease = join(etc, 'os-release');
    writeFileSync(osRelease, 'ID=debian\nVERSION_CODENAME=bookworm\n');
    const other = join(base, 'other-data');
    const saved = Object.fromEntries(Object.keys(process.env).filter((k) => /_proxy$/i.test(k)).map((k) => [k, process.env[k]]));
    for (const k of Object.keys(saved)) delete process.env[k];
    try {
      const r = await fetchPackages({ dataDir: other, packages: ['fleet-test-app'], aptDir: etc, osRelease, log });
      expect(r.added.map((e) => `${e.package} ${e.version}`).sort()).toEqual(['fleet-test-app 2:3.1-1', 'fleet-test-lib 1.1-1']);
    } finally {
      Object.assign(process.env, saved);
    }
    expect((await listPackages(other)).map((e) => `${e.suite} ${e.package}`)).toEqual(['bookworm fleet-test-app', 'bookworm fleet-test-lib']);
    expect(readdirSync(repoPaths(other).tmp)).toEqual([]); // the private apt state is gone
    for (const hostDir of ['/var/lib/apt/lists', '/var/cache/apt/archives']) {
      if (existsSync(hostDir)) expect(readdirSync(hostDir).filter((n) => n.includes('127.0.0.1') || n.startsWith('fleet-test-')), hostDir).toEqual([]);
    }
    // A source whose key is not the repository's is refused by apt, and nothing is added.
    writeFileSync(join(etc, 'sources.list'), `deb ${repoUrl} bookworm main\n`);
    await expect(fetchPackages({ dataDir: join(base, 'third-data'), packages: ['fleet-test-app'], aptDir: etc, osRelease, log })).rejects.toThrow(/apt-get update failed[\s\S]*(NO_PUBKEY|not signed)/);
  });

  it('serves /repo/debian/ read-only: traversal, encoded dots, absolute paths and links out are 404', async () => {
    expect((await rawGet(url, '/repo/debian/dists/bookworm/InRelease')).status).toBe(200);
    expect((await rawGet(url, '/repo/alma/.treeinfo')).body).toBe('[general]\n');
    for (const p of [
      '/repo/debian/../secret-beside',
      '/repo/debian/%2e%2e/secret-beside',
      '/repo/debian/%2E%2E/key/pubring.kbx',
      '/repo/debian/..%2fkey%2fpubring.kbx',
      '/repo/debian//etc/passwd',
      '/repo/debian/%2fetc%2fpasswd',
      '/repo/debian/keylink/pubring.kbx',
      '/repo/debian/keylink/trustdb.gpg',
      '/repo/debian/dists/bookworm/../../../index.json',
      '/repo/debian/dists',
      '/repo/debian/',
      '/repo/key/pubring.kbx',
      '/repo/index.json',
    ]) {
      const r = await rawGet(url, p);
      expect(r.status, p).toBe(404);
      expect(r.body).not.toContain('SECRET');
    }
  });

  it('hands the public key to agents in the cluster facts (repoKey, base64 of the binary keyring)', async () => {
    const file = await openStore({ file: join(data, 'fleet.db') }, { secretKey: randomBytes(32) });
    try {
      await file.profiles.upsert(PROFILES.compute, ACTOR);
      await file.settings.setCluster({ cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } } }, ACTOR);
      await file.nodes.upsert({ name: 'valkyrie01', profile: PROFILES.compute.name, ip: '10.10.3.1', macs: ['52:54:00:12:34:56'], pet: false }, ACTOR);
      const cfg = await configForNode(file, 'valkyrie01');
      const facts = JSON.parse(cfg.clusterJson) as { repoKey?: string };
      expect(Buffer.from(facts.repoKey!, 'base64').equals(readFileSync(keyFile))).toBe(true);
    } finally {
      await file.close();
    }
  });
});

/**
 * Images on a real file system (root: the image's files keep their owners):
 * imports of small real tarballs and of hand-made OCI archives, hostile
 * archives refused with nothing registered, idempotence, rm, and a build
 * whose bootstrap (mmdebstrap in production) is a stand-in that fills or
 * fails the tree. The real mmdebstrap build is test/integration/image-build.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { findExecutable } from '../../../common/executable.js';
import { main } from '../../../server/cli/main.js';
import type { CliIo } from '../../../server/cli/io.js';
import { buildImage, importImage, listImages, showImage } from '../../../server/images/index.js';
import { imagePaths } from '../../../server/images/store.js';
import { openDataDir } from '../../../server/store/index.js';
import { makeTar } from './tar-helper.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CI = process.env.CI === 'true';
const missing = ['tar', 'zstd', 'mksquashfs', 'unsquashfs', 'gzip'].filter((t) => !findExecutable(t));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const why = !isRoot ? 'needs root' : missing.length ? `needs ${missing.join(', ')} (apt-get install squashfs-tools zstd)` : null;

const base = mkdtempSync(join(tmpdir(), 'fleet-images-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
let data: string;
beforeEach(() => {
  data = join(base, `data-${++n}`);
});
const log = (): void => {};

/** A small root filesystem: a dpkg database of two packages, a kernel and initramfs, a relative symlink. */
function smallTree(dir: string): string {
  const t = join(dir, 'tree');
  mkdirSync(join(t, 'etc'), { recursive: true });
  mkdirSync(join(t, 'boot'));
  mkdirSync(join(t, 'var/lib/dpkg'), { recursive: true });
  mkdirSync(join(t, 'usr/lib'), { recursive: true });
  writeFileSync(join(t, 'etc/os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
  writeFileSync(join(t, 'var/lib/dpkg/status'), 'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\nPackage: systemd\nStatus: install ok installed\nArchitecture: amd64\nVersion: 252\n');
  writeFileSync(join(t, 'boot/vmlinuz-6.1.0-9-amd64'), 'kernel');
  writeFileSync(join(t, 'boot/initrd.img-6.1.0-9-amd64'), 'initrd');
  symlinkSync('../../etc/os-release', join(t, 'usr/lib/os-release'));
  return t;
}

const sorted = (s: string) => s.split('\n').filter(Boolean).sort();
/** Paths in an image's rootfs.tar.zst and rootfs.squashfs, in one form ('etc/os-release'). */
function listings(dir: string): { tar: string[]; squashfs: string[] } {
  const tar = sorted(execFileSync('tar', ['--zstd', '-tf', join(dir, 'rootfs.tar.zst')], { encoding: 'utf8' }))
    .map((p) => p.replace(/^\.\/?/, '').replace(/\/$/, ''))
    .filter(Boolean);
  const sq = sorted(execFileSync('unsquashfs', ['-l', '-d', '', join(dir, 'rootfs.squashfs')], { encoding: 'utf8' }))
    .map((p) => p.replace(/^\//, ''))
    .filter(Boolean);
  return { tar: tar.sort(), squashfs: sq.sort() };
}

function imageDirOf(digest: string): string {
  return join(imagePaths(data).blobs, digest.slice('sha256:'.length));
}

/** Nothing registered, nothing published, no workspace left. */
function expectNothingRegistered(): void {
  const p = imagePaths(data);
  expect(existsSync(p.index) ? JSON.parse(readFileSync(p.index, 'utf8')).images : {}).toEqual({});
  expect(existsSync(p.blobs) ? readdirSync(p.blobs) : []).toEqual([]);
  expect(existsSync(p.tmp) ? readdirSync(p.tmp) : []).toEqual([]);
}

async function refused(file: string): Promise<string> {
  try {
    await importImage({ dataDir: data, name: 'bad', file, log });
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('image.unsafe');
    expectNothingRegistered();
    return (e as FleetError).message;
  }
  throw new Error(`${file} was imported`);
}

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, isTTY: false, home: base, cwd: base };
  return main(['node', 'fleet', '--data', data, ...args], io).then((code) => ({ code, out, err }));
}

if (why && CI) throw new Error(`CI=true: the image store tests ${why}`);

describe.skipIf(why !== null)(`image import${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  it('imports a rootfs tarball (plain, gzip, zstd): same content, same digest; packages, kernel, both forms of the tree', async () => {
    const dir = join(base, 'small');
    const t = smallTree(dir);
    execFileSync('tar', ['--numeric-owner', '-C', t, '-cf', join(dir, 'r.tar'), '.']);
    execFileSync('tar', ['--numeric-owner', '-C', t, '-czf', join(dir, 'r.tar.gz'), '.']);
    execFileSync('tar', ['--numeric-owner', '--zstd', '-C', t, '-cf', join(dir, 'r.tar.zst'), '.']);
    const r = await importImage({ dataDir: data, name: 'small', file: join(dir, 'r.tar.gz'), log });
    expect(r.reused).toBe(false);
    const m = r.image;
    expect(m).toMatchObject({ name: 'small', from: 'import:r.tar.gz', arch: 'amd64', packageCount: 2, kernelVersion: '6.1.0-9-amd64', agent: false });
    expect(m.packages).toEqual([{ name: 'base-files', version: '12.4' }, { name: 'systemd', version: '252' }]);
    const dir1 = imageDirOf(m.digest);
    expect(readFileSync(join(dir1, 'vmlinuz'), 'utf8')).toBe('kernel');
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir1, encoding: 'utf8' })).toMatch(/rootfs.squashfs: OK/);
    expect(`sha256:${createHash('sha256').update(readFileSync(join(dir1, 'SHA256SUMS'))).digest('hex')}`).toBe(m.digest);
    const l = listings(dir1);
    expect(l.tar).toEqual(l.squashfs);
    expect(l.tar).toEqual(expect.arrayContaining(['etc/os-release', 'usr/lib/os-release', 'var/lib/dpkg/status']));
    // the same tree in other compressions is the same content
    const z = await importImage({ dataDir: data, name: 'small-zst', file: join(dir, 'r.tar.zst'), log });
    const p = await importImage({ dataDir: data, name: 'small-plain', file: join(dir, 'r.tar'), log });
    expect(z.image.digest).toBe(m.digest);
    expect(p.image.digest).toBe(m.digest);
    expect((await listImages(data)).map((x) => x.name)).toEqual(['small', 'small-plain', 'small-zst']);
  });

  it('reuses an import of the same file, --force imports again; rm keeps content another name refers to', async () => {
    const dir = join(base, 'again');
    execFileSync('tar', ['-C', smallTree(dir), '-czf', join(dir, 'r.tgz'), '.']);
    const a = await importImage({ dataDir: data, name: 'a', file: join(dir, 'r.tgz'), log });
    const b = await importImage({ dataDir: data, name: 'b', file: join(dir, 'r.tgz'), log });
    expect(b.reused).toBe(true);
    expect(b.image.digest).toBe(a.image.digest);
    const f = await importImage({ dataDir: data, name: 'a', file: join(dir, 'r.tgz'), force: true, log });
    expect(f.reused).toBe(false);
    expect(f.image.digest).toBe(a.image.digest);
    const rm1 = await cli(['image', 'rm', 'a']);
    expect(rm1).toMatchObject({ code: 0 });
    expect(rm1.out).toMatch(/content kept/);
    expect(existsSync(imageDirOf(a.image.digest))).toBe(true);
    expect((await cli(['image', 'rm', 'b'])).code).toBe(0);
    expect(existsSync(imageDirOf(a.image.digest))).toBe(false);
    const gone = await cli(['image', 'show', 'b']);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/no image b/);
  });

  it('refuses hostile tarballs and registers nothing: absolute and climbing names, writes through a symlink, links out of the tree', async () => {
    const write = (name: string, buf: Buffer): string => {
      const f = join(base, name);
      writeFileSync(f, buf);
      return f;
    };
    expect(await refused(write('abs.tar', makeTar([{ name: 'etc', type: 'dir' }, { name: '/etc/cron.d/evil', body: 'x' }])))).toMatch(/absolute path/);
    expect(await refused(write('dotdot.tar', makeTar([{ name: 'etc/../../../tmp/evil', body: 'x' }])))).toMatch(/climbs out/);
    expect(await refused(write('through.tar', makeTar([{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'etc/cron.d/evil', body: 'x' }])))).toMatch(
      /passes through the symbolic link etc/,
    );
    expect(await refused(write('rel.tar', makeTar([{ name: 'a/b', type: 'symlink', linkname: '../../../root' }])))).toMatch(/points outside the tree/);
    expect(await refused(write('hard.tar', makeTar([{ name: 'shadow', type: 'hardlink', linkname: '/etc/shadow' }])))).toMatch(/absolute/);
    const gz = write('through.tar.gz', execFileSync('gzip', ['-c', join(base, 'through.tar')]));
    expect(await refused(gz)).toMatch(/symbolic link/);
    expect(existsSync('/etc/cron.d/evil')).toBe(false);
  });

  it('refuses a file that is not an archive and a truncated one', async () => {
    const f = join(base, 'junk.tar');
    writeFileSync(f, Buffer.alloc(4096, 7));
    await expect(importImage({ dataDir: data, name: 'junk', file: f, log })).rejects.toThrow(/not a tar archive/);
    expectNothingRegistered();
  });
});

/** An OCI image layout as `skopeo copy ... oci-archive:` writes it, made here with tar. */
function ociArchive(dir: string, layers: Buffer[], opts: { badDigest?: boolean; arch?: string } = {}): string {
  const root = join(dir, 'oci');
  mkdirSync(join(root, 'blobs/sha256'), { recursive: true });
  const blob = (b: Buffer | string): { digest: string; size: number } => {
    const buf = Buffer.from(b);
    const hex = createHash('sha256').update(buf).digest('hex');
    writeFileSync(join(root, 'blobs/sha256', hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };
  const config = blob(JSON.stringify({ architecture: opts.arch ?? 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const ls = layers.map((l, i) => {
    const d = blob(i === 0 ? execFileSync('gzip', ['-c'], { input: l }) : l);
    return { mediaType: i === 0 ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', ...d };
  });
  if (opts.badDigest) ls[0]!.digest = `sha256:${'0'.repeat(64)}`;
  const manifest = blob(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: ls }));
  writeFileSync(join(root, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { architecture: 'amd64', os: 'linux' } }] }));
  const out = join(dir, 'image.oci.tar');
  execFileSync('tar', ['-C', root, '-cf', out, 'oci-layout', 'index.json', 'blobs']);
  return out;
}

describe.skipIf(why !== null)(`OCI image archives${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  const lower = makeTar([
    { name: 'etc/', type: 'dir' },
    { name: 'etc/motd', body: 'lower motd' },
    { name: 'etc/keep', body: 'kept' },
    { name: 'var/', type: 'dir' },
    { name: 'var/cache/', type: 'dir' },
    { name: 'var/cache/old', body: 'old' },
    { name: 'lnk', type: 'symlink', linkname: '/etc' },
  ]);

  it('applies layers bottom first with their whiteouts (.wh. deletes, opaque empties)', async () => {
    const dir = join(base, 'oci1');
    mkdirSync(dir);
    const upper = makeTar([
      { name: 'etc/.wh.motd', body: '' },
      { name: 'var/cache/.wh..wh..opq', body: '' },
      { name: 'var/cache/new', body: 'new' },
      { name: '.wh.lnk', body: '' },
      { name: 'lnk/', type: 'dir' },
      { name: 'lnk/inside', body: 'a real directory now' },
    ]);
    const r = await importImage({ dataDir: data, name: 'oci', file: ociArchive(dir, [lower, upper]), log });
    expect(r.image).toMatchObject({ from: 'import:image.oci.tar', arch: 'amd64', kernelVersion: null, packageCount: 0 });
    expect(r.image.origin).toMatchObject({ kind: 'import', format: 'oci' });
    expect(r.image.artefacts.kernel).toBeNull();
    const l = listings(imageDirOf(r.image.digest));
    expect(l.tar).toEqual(['etc', 'etc/keep', 'lnk', 'lnk/inside', 'var', 'var/cache', 'var/cache/new']);
    expect(l.squashfs).toEqual(l.tar);
    expect((await cli(['image', 'show', 'oci'])).out).toMatch(/kernel: {4}absent/);
  });

  it('refuses a layer that writes through a lower layer\'s symlink, and a layer that does not match its digest', async () => {
    const dir = join(base, 'oci2');
    mkdirSync(dir);
    const evil = makeTar([{ name: 'lnk/cron.d/evil', body: 'x' }]);
    await expect(importImage({ dataDir: data, name: 'evil', file: ociArchive(dir, [lower, evil]), log })).rejects.toThrow(/passes through the symbolic link lnk/);
    expectNothingRegistered();
    rmSync(join(dir, 'oci'), { recursive: true });
    await expect(importImage({ dataDir: data, name: 'bad', file: ociArchive(dir, [lower], { badDigest: true }), log })).rejects.toThrow(/missing|does not match/);
    expectNothingRegistered();
  });

  it('reads a legacy docker save archive (manifest.json, layer paths)', async () => {
    const dir = join(base, 'docker');
    mkdirSync(join(dir, 'root/abc'), { recursive: true });
    writeFileSync(join(dir, 'root/abc/layer.tar'), lower);
    writeFileSync(join(dir, 'root/config.json'), '{"architecture":"arm64"}');
    writeFileSync(join(dir, 'root/manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['abc/layer.tar'] }]));
    execFileSync('tar', ['-C', join(dir, 'root'), '-cf', join(dir, 'd.tar'), 'manifest.json', 'config.json', 'abc']);
    const r = await importImage({ dataDir: data, name: 'docker', file: join(dir, 'd.tar'), log });
    expect(r.image.arch).toBe('arm64');
    expect(listings(imageDirOf(r.image.digest)).tar).toContain('etc/motd');
  });
});

/** Build inputs that need no network: the host's apt files stand in, the bootstrap is a function. */
function buildFixture(dir: string): { aptDir: string; osRelease: string; agentDir: string } {
  const aptDir = join(dir, 'apt');
  mkdirSync(join(aptDir, 'sources.list.d'), { recursive: true });
  writeFileSync(join(aptDir, 'sources.list.d', 'debian.sources'), 'Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n');
  writeFileSync(join(dir, 'os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
  const agentDir = join(dir, 'agent');
  mkdirSync(agentDir);
  writeFileSync(join(agentDir, 'fleet-agent'), '#!/bin/sh\necho stand-in agent\n', { mode: 0o755 });
  writeFileSync(join(agentDir, 'fleet-agent.service'), readFileSync(join(ROOT, 'agent/fleet-agent.service')));
  return { aptDir, osRelease: join(dir, 'os-release'), agentDir };
}

describe.skipIf(why !== null)(`image build (stand-in bootstrap)${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  it('bakes the agent in and enables its unit, reuses the same inputs, --force rebuilds', async () => {
    const dir = join(base, 'build1');
    const fx = buildFixture(dir);
    const argvs: string[][] = [];
    const bootstrap = async (argv: [string, string[]], tree: string): Promise<void> => {
      argvs.push([argv[0], ...argv[1]]);
      mkdirSync(tree);
      const t = smallTree(join(dir, `src-${argvs.length}`));
      execFileSync('cp', ['-a', `${t}/.`, tree]);
    };
    const lines: string[] = [];
    const r = await buildImage({ dataDir: data, name: 'lab', from: 'debian:bookworm', includes: ['chrony'], ...fx, bootstrap, log: (s) => lines.push(s) });
    expect(r.reused).toBe(false);
    expect(argvs[0]!.slice(0, 5)).toEqual(['unshare', '--mount', '--propagation', 'private', '--']);
    expect(argvs[0]).toContain('--include=chrony,linux-image-amd64,openssh-server,systemd-sysv,zstd');
    const mirror = argvs[0]!.at(-1)!;
    expect(mirror).toMatch(/\/images\/tmp\/build-[^/]+\/sources.list$/);
    expect(r.image).toMatchObject({ from: 'debian:bookworm', arch: 'amd64', agent: true, kernelVersion: '6.1.0-9-amd64' });
    expect(r.image.origin).toMatchObject({ kind: 'build', sources: ['deb http://mirror.invalid/debian bookworm main', 'deb http://mirror.invalid/debian bookworm-updates main'] });
    expect(lines.join('\n')).toMatch(/mmdebstrap bookworm amd64[\s\S]*baking in the agent[\s\S]*packing the tree[\s\S]*publishing sha256:/);
    const l = listings(imageDirOf(r.image.digest));
    expect(l.tar).toEqual(expect.arrayContaining(['usr/local/bin/fleet-agent', 'etc/systemd/system/fleet-agent.service', 'etc/systemd/system/multi-user.target.wants/fleet-agent.service']));
    expect(l.squashfs).toEqual(l.tar);
    const link = execFileSync('tar', ['--zstd', '-tvf', join(imageDirOf(r.image.digest), 'rootfs.tar.zst'), './etc/systemd/system/multi-user.target.wants/fleet-agent.service'], { encoding: 'utf8' });
    expect(link).toMatch(/^l.* -> \/etc\/systemd\/system\/fleet-agent.service/);

    const again = await buildImage({ dataDir: data, name: 'lab', from: 'debian:bookworm', includes: ['chrony'], ...fx, bootstrap, log });
    expect(again).toMatchObject({ reused: true, image: { digest: r.image.digest } });
    const other = await buildImage({ dataDir: data, name: 'lab2', from: 'debian:bookworm', includes: ['chrony'], ...fx, bootstrap, log });
    expect(other.reused).toBe(true);
    expect(argvs).toHaveLength(1);
    const forced = await buildImage({ dataDir: data, name: 'lab', from: 'debian:bookworm', includes: ['chrony'], ...fx, bootstrap, force: true, log });
    expect(forced.reused).toBe(false);
    expect(argvs).toHaveLength(2);
    const changed = await buildImage({ dataDir: data, name: 'lab3', from: 'debian:bookworm', ...fx, bootstrap, log });
    expect(changed.reused).toBe(false);
    expect((await showImage(data, 'lab2')).digest).toBe(r.image.digest);
    expect(readdirSync(imagePaths(data).tmp)).toEqual([]);
  });

  it('a failed build leaves nothing registered and no workspace; the next one cleans what a killed one left', async () => {
    const dir = join(base, 'build2');
    const fx = buildFixture(dir);
    const fail = async (_argv: [string, string[]], tree: string): Promise<void> => {
      mkdirSync(join(tree, 'etc'), { recursive: true });
      throw new FleetError('image.build_failed', 'mmdebstrap failed (exit 1: E: cannot download)');
    };
    await expect(buildImage({ dataDir: data, name: 'lab', from: 'debian:bookworm', ...fx, bootstrap: fail, log })).rejects.toThrow(/cannot download/);
    expectNothingRegistered();
    // a build killed with -9 leaves its workspace, and one killed between publish and register an unnamed image
    const p = imagePaths(data);
    mkdirSync(join(p.tmp, 'build-1-dead/tree/etc'), { recursive: true });
    mkdirSync(join(p.blobs, 'f'.repeat(64)), { recursive: true });
    const lines: string[] = [];
    const ok = async (_argv: [string, string[]], tree: string): Promise<void> => {
      execFileSync('cp', ['-a', `${smallTree(join(dir, 'src'))}/.`, tree]);
    };
    const r = await buildImage({ dataDir: data, name: 'lab', from: 'debian:bookworm', ...fx, bootstrap: ok, log: (s) => lines.push(s) });
    expect(lines[0]).toMatch(/removed what an interrupted build left: tmp\/build-1-dead, sha256\/f{64}/);
    expect(readdirSync(p.blobs)).toEqual([r.image.digest.slice(7)]);
  });

  it('refuses while another writer holds the image store, and refuses bad names and sources before any work', async () => {
    const dir = join(base, 'build3');
    const fx = buildFixture(dir);
    await expect(buildImage({ dataDir: data, name: '../x', from: 'debian:bookworm', ...fx, log })).rejects.toThrow(/image name/);
    writeFileSync(join(fx.aptDir, 'sources.list.d', 'debian.sources'), 'Types: deb\nURIs: http://x/\nSuites: nodistro\n');
    await expect(buildImage({ dataDir: data, name: 'x', from: 'debian:bookworm', ...fx, log })).rejects.toThrow(/name no bookworm entry/);
    const { lockImages } = await import('../../../server/images/store.js');
    const lock = await lockImages(imagePaths(data), 'a test');
    try {
      await expect(importImage({ dataDir: data, name: 'x', file: join(ROOT, 'package.json'), log })).rejects.toThrow(/in use by another fleet process \(a test/);
    } finally {
      lock.release();
    }
  });
});

describe.skipIf(why !== null)(`fleet image rm and profiles${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  it('refuses while a profile names the image, unless --force', async () => {
    const dir = join(base, 'rm');
    execFileSync('tar', ['-C', smallTree(dir), '-cf', join(dir, 'r.tar'), '.']);
    expect((await cli(['image', 'import', 'debian12', join(dir, 'r.tar')])).code).toBe(0);
    const dd = await openDataDir(data);
    await dd.store.profiles.upsert({ name: 'compute', os: { install: 'image', tree: '', image: 'debian12' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 'test' });
    await dd.store.close();
    const r = await cli(['image', 'rm', 'debian12']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/image debian12 is named by profile compute/);
    // while a server holds the data dir, rm says so instead of guessing
    const held = await openDataDir(data);
    try {
      const locked = await cli(['image', 'rm', 'debian12']);
      expect(locked.code).toBe(2);
      expect(locked.err).toMatch(/reads the profiles from the store, which a running fleet server holds/);
    } finally {
      await held.store.close();
    }
    const f = await cli(['image', 'rm', 'debian12', '--force']);
    expect(f.code).toBe(0);
    expect((await cli(['image', 'list'])).out).toMatch(/no images/);
    expect(lstatSync(join(data, 'images')).isDirectory()).toBe(true);
    void readlinkSync;
  });
});

/**
 * `fleet image build` for real: mmdebstrap from this machine's apt sources
 * (~6 min and ~500 MB of artefacts on 2 cores), then the same command again,
 * which must reuse the image. The data dir is cached under .tmp/image-build
 * (gitignored) and the index there is keyed by the build key, so a later
 * run in the same checkout (the same CI run) reuses the image instead of
 * building it again; changed inputs (agent, packages, sources) build anew
 * and the old image is cleaned away by that build.
 *
 * Needs root, mmdebstrap, squashfs-tools and zstd (.ci/deps.sh) and the apt
 * mirror this machine's sources name. Under CI=true a missing tool fails
 * the run instead of skipping it. The cache and the build call are shared
 * with the stateless and diskless VM tests (test/helpers/debian-image.ts).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NamedManifest } from '../../server/images/index.js';
import { fleetImage as fleet, IMAGE_DATA as DATA, IMAGE_FROM, IMAGE_NAME as NAME, imageBuildMissing } from '../helpers/debian-image.js';
import { LAB_IMAGE_INCLUDES } from '../../server/lab/os.js';

const why = imageBuildMissing();
if (why && process.env.CI === 'true') throw new Error(`CI=true: the real image build ${why}`);

const lines = (s: string) => s.split('\n').filter(Boolean);
/** Every path of the image's tar and squashfs, in one form (`etc/hostname`). */
function listings(dir: string): { tar: string[]; squashfs: string[] } {
  const tar = lines(execFileSync('tar', ['--zstd', '--quoting-style=literal', '-tf', join(dir, 'rootfs.tar.zst')], { encoding: 'utf8', maxBuffer: 256 << 20 }))
    .map((p) => p.replace(/^\.\/?/, '').replace(/\/$/, ''))
    .filter(Boolean);
  const sq = lines(execFileSync('unsquashfs', ['-l', '-d', '', join(dir, 'rootfs.squashfs')], { encoding: 'utf8', maxBuffer: 256 << 20 })).map((p) => p.replace(/^\//, ''));
  return { tar: tar.sort(), squashfs: sq.sort() };
}

describe.skipIf(why !== null)(`fleet image build (mmdebstrap, real)${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  let image: NamedManifest;
  let dir: string;

  it('builds debian:bookworm (or reuses this run\'s build), then reuses it on the second build', async () => {
    const t0 = Date.now();
    const first = await fleet('image', 'build', NAME, '--from', IMAGE_FROM, '--include', LAB_IMAGE_INCLUDES.join(','), '--json');
    expect(first.code, first.err).toBe(0);
    const r1 = JSON.parse(first.out) as { reused: boolean; image: NamedManifest };
    process.stderr.write(`image-build: first build ${r1.reused ? 'reused the cached image' : 'built'} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n${first.err}`);
    expect(first.err).toMatch(/image itest: (mmdebstrap bookworm amd64|reusing sha256:)/);
    const second = await fleet('image', 'build', NAME, '--from', IMAGE_FROM, '--include', LAB_IMAGE_INCLUDES.join(','), '--json');
    expect(second.code, second.err).toBe(0);
    const r2 = JSON.parse(second.out) as { reused: boolean; image: NamedManifest };
    expect(r2.reused).toBe(true);
    expect(r2.image.digest).toBe(r1.image.digest);
    expect(second.err).toMatch(/reusing sha256:[0-9a-f]{64}/);
    image = r2.image;
    dir = join(DATA, 'images', 'sha256', image.digest.slice('sha256:'.length));
  }, 30 * 60_000);

  it('lists 100+ packages with systemd, openssh-server and a kernel; fleet image show agrees', async () => {
    expect(image.packageCount).toBeGreaterThan(100);
    expect(image.packages).toHaveLength(image.packageCount);
    const names = new Set(image.packages.map((p) => p.name));
    for (const p of ['systemd', 'systemd-sysv', 'openssh-server', 'linux-image-amd64', 'zstd']) expect(names, p).toContain(p);
    expect(image).toMatchObject({ from: 'debian:bookworm', arch: 'amd64', agent: true });
    expect(image.kernelVersion).toMatch(/-amd64$/);
    const show = await fleet('image', 'show', NAME);
    expect(show.out).toMatch(new RegExp(`packages: +${image.packageCount}`));
    expect((await fleet('image', 'list')).out).toMatch(new RegExp(`^${NAME} +sha256:`, 'm'));
  });

  it('stores kernel, initramfs, tar and squashfs under the digest, each as its sha256 says', () => {
    expect(image.artefacts.kernel!.size).toBeGreaterThan(1 << 20);
    expect(image.artefacts.initrd!.size).toBeGreaterThan(1 << 20);
    expect(image.artefacts.rootfs.size).toBeGreaterThan(50 << 20);
    expect(execFileSync('file', ['-b', join(dir, 'vmlinuz')], { encoding: 'utf8' })).toMatch(/Linux kernel/);
    const sums = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' });
    for (const f of ['rootfs.tar.zst', 'rootfs.squashfs', 'vmlinuz', 'initrd.img']) expect(sums).toContain(`${f}: OK`);
  }, 120_000);

  it('holds the same tree in the tar and the squashfs, with the agent unit enabled and this machine\'s apt sources', () => {
    const l = listings(dir);
    expect(l.tar.length).toBeGreaterThan(5000);
    expect(l.squashfs.length).toBe(l.tar.length);
    const sample = l.tar.filter((_, i) => i % 97 === 0);
    const sq = new Set(l.squashfs);
    expect(sample.filter((p) => !sq.has(p))).toEqual([]);
    for (const p of ['usr/local/bin/fleet-agent', 'etc/systemd/system/fleet-agent.service', 'etc/systemd/system/multi-user.target.wants/fleet-agent.service', 'usr/sbin/sshd', 'usr/lib/systemd/systemd']) {
      expect(l.tar, p).toContain(p);
      expect(sq.has(p), p).toBe(true);
    }
    const link = execFileSync('tar', ['--zstd', '-tvf', join(dir, 'rootfs.tar.zst'), './etc/systemd/system/multi-user.target.wants/fleet-agent.service'], { encoding: 'utf8' });
    expect(link).toMatch(/^l.* -> \/etc\/systemd\/system\/fleet-agent\.service$/m);
    const apt = execFileSync('tar', ['--zstd', '-xOf', join(dir, 'rootfs.tar.zst'), './etc/apt/sources.list.d/0000sources.list'], { encoding: 'utf8' });
    // No per-machine secret a postinst made at build time: the image is served over HTTP to every node.
    const secrets = l.tar.filter((p) => /^etc\/ssh\/ssh_host_|^etc\/munge\/munge\.key$/.test(p));
    expect(secrets, 'SSH host keys or a munge key in the image').toEqual([]);
    expect(l.tar).toContain('usr/sbin/munged'); // the lab's packages are in it (LAB_IMAGE_INCLUDES)
    expect(execFileSync('tar', ['--zstd', '-xOf', join(dir, 'rootfs.tar.zst'), './etc/machine-id'], { encoding: 'utf8' })).toBe('');
    expect(image.origin.kind).toBe('build');
    if (image.origin.kind === 'build') for (const s of image.origin.sources) expect(apt).toContain(s);
  }, 180_000);
});

/** The pure parts of server/images: names, manifest and digest, dpkg status, apt sources, build plan, OCI documents. */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import {
  EMPTY_INDEX,
  FILES,
  formatList,
  formatManifest,
  imageDigest,
  parseIndex,
  parseManifest,
  referencedDigests,
  renderIndex,
  renderManifest,
  renderSums,
  sha256Hex,
  withEntry,
  withoutEntry,
  type ImageManifest,
} from '../../../server/images/manifest.js';
import { checkImageName, packageList, parseArch, parseFrom } from '../../../server/images/names.js';
import { blobPath, compressionOf, configArch, dockerLayers, manifestLayers, pickFromIndex } from '../../../server/images/oci.js';
import { dominantArch, parseDpkgStatus, pickKernel } from '../../../server/images/packages.js';
import { agentDigest, buildKey, importKey, isolatedArgv, mmdebstrapArgs, squashfsArgs, tarCreateArgs, tarExtractArgs } from '../../../server/images/plan.js';
import { imageSourceLines, isSourcesFile, osReleaseCodename, parseDeb822, parseOneLine, parseSources } from '../../../server/images/sources.js';
import { mountPointsUnder } from '../../../server/images/store.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return e instanceof FleetError ? e.code : 'not-a-fleet-error';
  }
  return undefined;
};

describe('naming rules', () => {
  it('accepts object-like names and refuses paths, dots first and blanks', () => {
    for (const ok of ['lab', 'debian-12', 'web_01', 'a.b']) expect(checkImageName(ok), ok).toBeUndefined();
    for (const bad of ['', '../x', 'a/b', '.hidden', 'with space', 'x'.repeat(64)]) expect(checkImageName(bad), bad).toMatch(/image name/);
  });

  it('reads --from as debian:SUITE and says why anything else is refused', () => {
    expect(parseFrom('debian:bookworm')).toEqual({ distro: 'debian', suite: 'bookworm' });
    expect(code(() => parseFrom('bookworm'))).toBe('usage.invalid');
    expect(() => parseFrom('rocky:9')).toThrow(/only debian images are built here/);
    expect(code(() => parseFrom('debian:../x'))).toBe('usage.invalid');
  });

  it('defaults the architecture to amd64 and takes the kernel of the architecture', () => {
    expect(parseArch(undefined)).toBe('amd64');
    expect(code(() => parseArch('i386'))).toBe('usage.invalid');
    expect(packageList('arm64')).toContain('linux-image-arm64');
    expect(packageList('arm64')).not.toContain('linux-image-amd64');
  });

  it('merges --include (commas, blanks, repeats) into the base set, sorted and deduplicated', () => {
    expect(packageList('amd64', ['chrony,nfs-common', 'vim  chrony', 'openssh-server'])).toEqual([
      'chrony',
      'linux-image-amd64',
      'nfs-common',
      'openssh-server',
      'systemd-sysv',
      'vim',
      'zstd',
    ]);
    expect(code(() => packageList('amd64', ['bad;rm'])))
      .toBe('usage.invalid');
    expect(code(() => packageList('amd64', ['@group']))).toBe('usage.invalid');
  });
});

const art = (file: string, body: string) => ({ file, size: body.length, sha256: sha256Hex(body) });

function manifest(over: Partial<ImageManifest> = {}): ImageManifest {
  const artefacts = { rootfs: art(FILES.rootfs, 'tar'), squashfs: art(FILES.squashfs, 'sq'), kernel: art(FILES.kernel, 'k'), initrd: null };
  return {
    schema: 1,
    digest: imageDigest([artefacts.rootfs, artefacts.squashfs, artefacts.kernel]),
    from: 'debian:bookworm',
    arch: 'amd64',
    created: '2026-01-01T00:00:00.000Z',
    buildKey: 'sha256:' + '0'.repeat(64),
    origin: { kind: 'build', suite: 'bookworm', variant: 'important', packages: ['systemd-sysv'], sources: ['deb http://m/debian bookworm main'], agentSha256: 'a'.repeat(64) },
    kernelVersion: '6.1.0-1-amd64',
    agent: true,
    packageCount: 1,
    packages: [{ name: 'systemd', version: '252' }],
    artefacts,
    ...over,
  };
}

describe('manifest and digest', () => {
  it('digests SHA256SUMS (sorted, sha256sum format), so sha256sum -c checks the artefacts', () => {
    const a = [art('vmlinuz', 'k'), art('rootfs.tar.zst', 't')];
    expect(renderSums(a)).toBe(`${sha256Hex('t')}  rootfs.tar.zst\n${sha256Hex('k')}  vmlinuz\n`);
    expect(imageDigest(a)).toBe(`sha256:${sha256Hex(renderSums(a))}`);
    expect(imageDigest([...a].reverse())).toBe(imageDigest(a));
    expect(imageDigest([art('vmlinuz', 'K'), art('rootfs.tar.zst', 't')])).not.toBe(imageDigest(a));
  });

  it('renders and reads back a manifest; one whose digest does not match its artefacts is refused', () => {
    const m = manifest();
    expect(parseManifest(renderManifest(m), 'm.json')).toEqual(m);
    const tampered = { ...m, artefacts: { ...m.artefacts, rootfs: art(FILES.rootfs, 'other') } };
    expect(() => parseManifest(renderManifest(tampered), 'm.json')).toThrow(/digest does not match/);
    expect(() => parseManifest('{', 'm.json')).toThrow(/not JSON/);
    expect(() => parseManifest('{"schema":2}', 'm.json')).toThrow(/schema/);
  });

  it('keeps names in an index: add, remove, referenced digests, absent file = empty', () => {
    const e = { digest: `sha256:${'1'.repeat(64)}`, buildKey: 'k', registered: 't' };
    const i = withEntry(withEntry(EMPTY_INDEX, 'b', e), 'a', e);
    expect(Object.keys(parseIndex(renderIndex(i), 'i').images)).toEqual(['a', 'b']);
    expect(referencedDigests(withoutEntry(i, 'a'))).toEqual(new Set([e.digest]));
    expect(referencedDigests(withoutEntry(withoutEntry(i, 'a'), 'b')).size).toBe(0);
    expect(parseIndex(null, 'i')).toEqual(EMPTY_INDEX);
    expect(() => parseIndex('{"schema":1,"images":{"x":{"digest":"md5:1"}}}', 'i')).toThrow(/not an index entry/);
  });

  it('shows a manifest and a list for people (absent kernel/initrd said so)', () => {
    const text = formatManifest({ name: 'lab', ...manifest() });
    expect(text).toMatch(/^name: {6}lab$/m);
    expect(text).toMatch(/packages: {2}1$/m);
    expect(text).toMatch(/initrd {4}absent/);
    expect(text).toMatch(/agent: {5}fleet-agent.service enabled/);
    expect(formatList([{ name: 'lab', ...manifest() }])).toMatch(/^NAME +DIGEST +FROM[^\n]*\nlab +sha256:[0-9a-f]{12} +debian:bookworm +amd64 +1 /);
    expect(formatList([])).toMatch(/no images/);
  });
});

describe('dpkg status', () => {
  const status = [
    'Package: systemd\nStatus: install ok installed\nPriority: important\nArchitecture: amd64\nVersion: 252.36-1~deb12u1\nDescription: system\n and service manager\n',
    'Package: removed-one\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n',
    'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u11\n',
    'Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2025b-0+deb12u1\n',
  ].join('\n');

  it('lists installed packages only, sorted, with versions; continuation lines ignored', () => {
    expect(parseDpkgStatus(status)).toEqual([
      { name: 'base-files', version: '12.4+deb12u11', arch: 'amd64' },
      { name: 'systemd', version: '252.36-1~deb12u1', arch: 'amd64' },
      { name: 'tzdata', version: '2025b-0+deb12u1', arch: 'all' },
    ]);
    expect(parseDpkgStatus('')).toEqual([]);
  });

  it('tells the architecture from the packages and picks the highest kernel that has an initramfs', () => {
    expect(dominantArch(parseDpkgStatus(status))).toBe('amd64');
    expect(dominantArch([])).toBeNull();
    expect(pickKernel(['config-6.1.0-9-amd64', 'vmlinuz-6.1.0-9-amd64', 'initrd.img-6.1.0-9-amd64', 'vmlinuz-6.1.0-10-amd64', 'initrd.img-6.1.0-10-amd64'])).toEqual({
      version: '6.1.0-10-amd64',
      kernel: 'vmlinuz-6.1.0-10-amd64',
      initrd: 'initrd.img-6.1.0-10-amd64',
    });
    expect(pickKernel(['vmlinuz-6.1.0-11-amd64', 'initrd.img-6.1.0-11-amd64.new'])).toBeNull();
    expect(pickKernel([])).toBeNull();
  });
});

describe('apt sources of the management node', () => {
  const deb822 = `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://off.example/debian
Suites: bookworm
`;

  it('reads deb822 and one-line files (deb only, options dropped, Enabled: no skipped)', () => {
    expect(parseDeb822(deb822).map((e) => `${e.uri} ${e.suite}`)).toEqual([
      'http://mirror.example/debian bookworm',
      'http://mirror.example/debian bookworm-updates',
      'http://mirror.example/debian-security bookworm-security',
      'https://deb.nodesource.com/node_20.x nodistro',
    ]);
    expect(parseOneLine('# x\ndeb [signed-by=/k.gpg arch=amd64] http://m/debian bookworm main non-free\ndeb-src http://m/debian bookworm main\ndeb http://m/debian bookworm\n')).toEqual([
      { uri: 'http://m/debian', suite: 'bookworm', components: ['main', 'non-free'] },
      { uri: 'http://m/debian', suite: 'bookworm', components: ['main'] },
    ]);
    expect(['debian.sources', 'x.list', 'x.list.disabled-by-farm', 'x.save', '.hidden.list'].map(isSourcesFile)).toEqual([true, true, false, false, false]);
  });

  it("keeps the host's release family, rewritten for the image's suite; third-party suites left out", () => {
    const entries = parseSources([{ name: 'debian.sources', text: deb822 }, { name: 'sources.list', text: 'deb http://mirror.example/debian bookworm main contrib\n' }]);
    expect(imageSourceLines(entries, 'bookworm', 'bookworm')).toEqual([
      'deb http://mirror.example/debian bookworm main contrib',
      'deb http://mirror.example/debian bookworm-updates main contrib',
      'deb http://mirror.example/debian-security bookworm-security main',
    ]);
    expect(imageSourceLines(entries, 'bookworm', 'trixie')[2]).toBe('deb http://mirror.example/debian-security trixie-security main');
    expect(imageSourceLines(entries, 'trixie', 'trixie')).toEqual([]);
    expect(osReleaseCodename('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')).toBe('bookworm');
    expect(osReleaseCodename('ID=x\n')).toBeNull();
  });
});

describe('build plan', () => {
  const inputs = { suite: 'bookworm', arch: 'amd64', packages: ['b', 'a'], sources: ['deb http://m/debian bookworm main'], agentSha256: 'f'.repeat(64) };

  it('keys a build by what changes its result, not by name or package order', () => {
    const k = buildKey(inputs);
    expect(k).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(buildKey({ ...inputs, packages: ['a', 'b'] })).toBe(k);
    for (const other of [{ suite: 'trixie' }, { arch: 'arm64' }, { packages: ['a'] }, { sources: [] }, { agentSha256: 'e'.repeat(64) }]) {
      expect(buildKey({ ...inputs, ...other }), JSON.stringify(other)).not.toBe(k);
    }
    expect(importKey('1'.repeat(64), 'tar')).not.toBe(importKey('1'.repeat(64), 'oci'));
    expect(agentDigest('a', 'b')).not.toBe(agentDigest('b', 'a'));
  });

  it('runs mmdebstrap as root into a directory from a mirror file, in its own mount namespace', () => {
    const args = mmdebstrapArgs({ suite: 'bookworm', arch: 'amd64', packages: ['zstd', 'openssh-server'], mirrorFile: '/w/sources.list', tree: '/w/tree' });
    expect(args).toEqual(['--mode=root', '--format=directory', '--variant=important', '--architectures=amd64', '--include=openssh-server,zstd', 'bookworm', '/w/tree', '/w/sources.list']);
    expect(isolatedArgv('/usr/bin/unshare', '/usr/bin/mmdebstrap', ['x'])).toEqual(['/usr/bin/unshare', ['--mount', '--propagation', 'private', '--', '/usr/bin/mmdebstrap', 'x']]);
  });

  it('packs with sorted names, numeric owners and xattrs; squashfs with a pinned time', () => {
    expect(tarCreateArgs('/t', '/o/r.tar.zst')).toEqual(expect.arrayContaining(['--zstd', '--sort=name', '--numeric-owner', '--xattrs', '--file=/o/r.tar.zst', '--directory=/t', '.']));
    expect(tarExtractArgs('/l.tar', '/t', { excludeWhiteouts: true })).toEqual(expect.arrayContaining(['--same-owner', '--numeric-owner', '--exclude=.wh.*']));
    expect(tarExtractArgs('/l.tar', '/t')).not.toContain('--exclude=.wh.*');
    expect(squashfsArgs('/t', '/o/s')).toEqual(['/t', '/o/s', '-noappend', '-comp', 'zstd', '-Xcompression-level', '3', '-mkfs-time', '0', '-no-progress', '-quiet']);
  });

  it('finds mount points under a directory in mountinfo (escaped blanks decoded)', () => {
    const info = [
      '22 1 0:21 / / rw - ext4 /dev/vda rw',
      '40 22 0:5 / /d/images/tmp/build-1/tree/proc rw - proc proc rw',
      '41 22 0:5 / /d/images/tmp/build\\0401/tree/dev rw - devtmpfs x rw',
      '42 22 0:5 / /d/images/tmpx rw - tmpfs x rw',
    ].join('\n');
    expect(mountPointsUnder(info, '/d/images/tmp/')).toEqual(['/d/images/tmp/build-1/tree/proc', '/d/images/tmp/build 1/tree/dev']);
    expect(mountPointsUnder(info, '/elsewhere')).toEqual([]);
  });
});

describe('OCI documents', () => {
  const d = (n: string) => `sha256:${n.repeat(64)}`;

  it('picks the one manifest of an index, or the one of the architecture; attestations ignored', () => {
    const one = JSON.stringify({ manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('a'), size: 1 }] });
    expect(pickFromIndex(one, undefined).digest).toBe(d('a'));
    const multi = JSON.stringify({
      manifests: [
        { digest: d('a'), platform: { architecture: 'amd64', os: 'linux' } },
        { digest: d('b'), platform: { architecture: 'arm64', os: 'linux' } },
        { digest: d('c'), platform: { architecture: 'unknown', os: 'unknown' } },
      ],
    });
    expect(pickFromIndex(multi, 'arm64').digest).toBe(d('b'));
    expect(() => pickFromIndex(multi, undefined)).toThrow(/lists 2 images \(amd64, arm64\); give --arch/);
    expect(() => pickFromIndex('{"manifests":[{"digest":"sha256:../../etc"}]}', undefined)).toThrow(/no sha256 digest/);
    expect(() => pickFromIndex('[]', undefined)).toThrow(/lists no manifest/);
    expect(blobPath(d('a'))).toBe(`blobs/sha256/${'a'.repeat(64)}`);
  });

  it('reads layers bottom first from an image manifest and from a legacy docker save manifest.json', () => {
    const m = manifestLayers(JSON.stringify({ config: { digest: d('c') }, layers: [{ digest: d('1'), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }, { digest: d('2') }] }), 'm');
    expect(m.layers.map((l) => l.digest)).toEqual([d('1'), d('2')]);
    expect(m.config?.digest).toBe(d('c'));
    expect(dockerLayers(JSON.stringify([{ Config: 'c.json', Layers: ['aa/layer.tar', 'bb/layer.tar'] }]))).toEqual({ config: 'c.json', layers: ['aa/layer.tar', 'bb/layer.tar'] });
    expect(() => dockerLayers(JSON.stringify([{ Layers: ['../../etc/shadow'] }]))).toThrow(/climbs out/);
    expect(() => dockerLayers(JSON.stringify([{ Layers: ['/etc/shadow'] }]))).toThrow(/absolute/);
    expect(configArch('{"architecture":"amd64"}')).toBe('amd64');
    expect(configArch('x')).toBeNull();
  });

  it('tells compression by magic bytes', () => {
    expect(compressionOf(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(compressionOf(Buffer.from('etc/'))).toBe('none');
  });
});

describe('failure messages', () => {
  it('end with the tail of stderr, long lines cut, and say why the command ended', async () => {
    const { failureTail } = await import('../../../server/images/tree.js');
    const base = { code: 1, signal: null, stdout: '', timedOut: false, aborted: false, truncated: false };
    const t = failureTail({ ...base, stderr: `a\n${'x'.repeat(1000)}\nE: failed\n` }, 2);
    expect(t).toBe(`exit 1:\n  ${'x'.repeat(240)}…\n  E: failed`);
    expect(failureTail({ ...base, code: null, aborted: true, stderr: '' })).toBe('interrupted');
    expect(failureTail({ ...base, code: null, timedOut: true, stderr: '' })).toBe('timed out');
  });
});

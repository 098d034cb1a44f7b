/**
 * The index files (server/repo/render.ts): a Packages stanza is what
 * `dpkg-scanpackages -m` writes for the same .deb (dpkg-dev, the reference),
 * and the Release names each index with its size and SHA-256.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../common/executable.js';
import { readDeb } from '../../../server/repo/deb.js';
import { releaseDate, renderPackages, renderRelease, renderStanza } from '../../../server/repo/render.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-render-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function build(name: string, control: string): string {
  const root = path.join(tmp, `tree-${name}`);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), control);
  fs.mkdirSync(path.join(root, 'usr', 'share', name), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr', 'share', name, 'data'), `${name}\n`.repeat(100));
  fs.mkdirSync(path.join(tmp, 'pool'), { recursive: true });
  const out = path.join(tmp, 'pool', `${name}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, out], { stdio: 'pipe' });
  return out;
}

/** dpkg-dev is in .ci/deps.sh: under CI a missing reference fails the run rather than skipping. */
const noReference = !findExecutable('dpkg-scanpackages') && process.env.CI !== 'true';

const h = (b: Buffer, a: string) => createHash(a).update(b).digest('hex');

describe('Packages stanzas', () => {
  it.skipIf(noReference)('are what dpkg-scanpackages -m writes for the same packages (dpkg-dev)', async () => {
    // Fields in a non-canonical order, a field dpkg does not know, a multi-line description.
    build(
      'zeta-tool',
      'Description: the last one\n more\nPackage: zeta-tool\nPriority: optional\nSection: admin\nVersion: 1.2-3\nArchitecture: amd64\nDepends: alpha-lib (>= 1.0), libc6\nMaintainer: Ops <ops@example.org>\nX-Fleet-Note: kept\nHomepage: https://example.org/\n',
    );
    build('alpha-lib', 'Package: alpha-lib\nSource: alpha (1.0-1)\nVersion: 1:1.0-1\nArchitecture: all\nMulti-Arch: foreign\nMaintainer: Ops <ops@example.org>\nPre-Depends: dpkg\nDescription: a library\n');
    const expected = execFileSync('dpkg-scanpackages', ['-m', 'pool', '/dev/null'], { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const entries = [];
    for (const n of ['zeta-tool', 'alpha-lib']) {
      const buf = fs.readFileSync(path.join(tmp, 'pool', `${n}.deb`));
      const info = await readDeb(buf);
      const stanza = renderStanza(info.fields, { filename: `pool/${n}.deb`, size: buf.length, md5: h(buf, 'md5'), sha1: h(buf, 'sha1'), sha256: h(buf, 'sha256') });
      entries.push({ ...info, stanza });
    }
    expect(renderPackages(entries) + '\n').toBe(expected);
  });

  it('replaces what a package says about its own file (Filename, Size, sums)', () => {
    const s = renderStanza(
      [
        ['Package', 'x'],
        ['Filename', '../../etc/passwd'],
        ['SHA256', 'f'.repeat(64)],
        ['Version', '1'],
      ],
      { filename: 'pool/main/x/x/x_1_all.deb', size: 10, md5: 'a'.repeat(32), sha1: 'b'.repeat(40), sha256: 'c'.repeat(64) },
    );
    expect(s).toBe(`Package: x\nVersion: 1\nFilename: pool/main/x/x/x_1_all.deb\nSize: 10\nMD5sum: ${'a'.repeat(32)}\nSHA1: ${'b'.repeat(40)}\nSHA256: ${'c'.repeat(64)}\n`);
  });
});

describe('Release', () => {
  it('names each index with its size and SHA-256, and the suite with its date', () => {
    const text = renderRelease({
      suite: 'bookworm',
      codename: 'bookworm',
      date: new Date('2026-12-07T01:02:03Z'),
      architectures: ['amd64'],
      components: ['main'],
      files: [
        { path: 'main/binary-amd64/Packages.gz', size: 321, sha256: '2'.repeat(64) },
        { path: 'main/binary-amd64/Packages', size: 1234, sha256: '1'.repeat(64) },
      ],
    });
    expect(text).toBe(
      [
        'Origin: fleet',
        'Label: fleet',
        'Suite: bookworm',
        'Codename: bookworm',
        'Date: Mon, 07 Dec 2026 01:02:03 UTC',
        'Architectures: amd64',
        'Components: main',
        'Description: packages served by the fleet server',
        'SHA256:',
        ` ${'1'.repeat(64)} 1234 main/binary-amd64/Packages`,
        ` ${'2'.repeat(64)}  321 main/binary-amd64/Packages.gz`,
        '',
      ].join('\n'),
    );
    expect(releaseDate(new Date(0))).toBe('Thu, 01 Jan 1970 00:00:00 UTC');
  });
});

/**
 * Reading .deb files (server/repo/deb.ts): ar members, control.tar in each
 * compression dpkg-deb writes, the control paragraph, and what is refused.
 * Packages are made with dpkg-deb (Debian's own tool, in dpkg) so the
 * parser is checked against the real format.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { controlText, debInfo, parseAr, parseControl, poolPath, readDeb } from '../../../server/repo/deb.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-deb-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CONTROL = 'Package: hello-fleet\nVersion: 1:2.0-1\nArchitecture: amd64\nMaintainer: fleet <fleet@example.org>\nDepends: libc6 (>= 2.36)\nDescription: a test\n second line\n .\n last\n';

/** A .deb built by dpkg-deb with control.tar compressed as `z` (gzip, xz, zstd, none). */
function dpkgDeb(z: string, control = CONTROL): Buffer {
  const root = fs.mkdtempSync(path.join(tmp, 'tree-'));
  fs.mkdirSync(path.join(root, 'DEBIAN'));
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), control);
  fs.mkdirSync(path.join(root, 'usr', 'share', 'doc', 'hello-fleet'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr', 'share', 'doc', 'hello-fleet', 'README'), 'hi\n');
  const out = path.join(tmp, `${path.basename(root)}.deb`);
  execFileSync('dpkg-deb', [`-Z${z}`, '--root-owner-group', '--build', root, out], { stdio: 'pipe' });
  return fs.readFileSync(out);
}

/** An ar archive of the given members (System V, as dpkg-deb writes). */
function ar(members: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [Buffer.from('!<arch>\n')];
  for (const [name, data] of members) {
    const h = `${name.padEnd(16)}${'0'.padEnd(12)}${'0'.padEnd(6)}${'0'.padEnd(6)}${'100644'.padEnd(8)}${String(data.length).padEnd(10)}\`\n`;
    parts.push(Buffer.from(h, 'latin1'), data);
    if (data.length % 2) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

async function refusal(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('not refused');
}

describe('.deb reading', () => {
  for (const z of ['gzip', 'xz', 'zstd', 'none']) {
    it(`reads the control fields of a dpkg-deb package (control.tar ${z})`, async () => {
      const info = await readDeb(dpkgDeb(z), 'h.deb');
      expect(info).toMatchObject({ package: 'hello-fleet', version: '1:2.0-1', architecture: 'amd64', source: 'hello-fleet' });
      expect(info.fields.map(([k]) => k)).toEqual(['Package', 'Version', 'Architecture', 'Maintainer', 'Depends', 'Description']);
      expect(info.fields.find(([k]) => k === 'Description')![1]).toBe('a test\n second line\n .\n last');
    });
  }

  it('lists ar members and refuses what is not an ar archive', () => {
    expect(parseAr(ar([['debian-binary', Buffer.from('2.0\n')], ['x', Buffer.from('abc')]])).map((m) => [m.name, m.size])).toEqual([
      ['debian-binary', 4],
      ['x', 3],
    ]);
    expect(() => parseAr(Buffer.from('PK\x03\x04 a zip'))).toThrow(/not a Debian package: no ar archive header/);
    const cut = ar([['debian-binary', Buffer.from('2.0\n')]]).subarray(0, 70);
    expect(() => parseAr(cut)).toThrow(/truncated/);
  });

  it('refuses archives that are not packages, with the reason', async () => {
    const ctl = gzipSync(Buffer.alloc(1024));
    expect((await refusal(controlText(Buffer.from('#!/bin/sh\necho not a deb\n'), 'x.deb'))).message).toBe('x.deb is not a Debian package: no ar archive header (!<arch>)');
    expect((await refusal(controlText(ar([['control.tar.gz', ctl]]), 'x.deb'))).message).toMatch(/first ar member is not debian-binary/);
    expect((await refusal(controlText(ar([['debian-binary', Buffer.from('3.0\n')]]), 'x.deb'))).message).toMatch(/unsupported format "?3.0"?/);
    expect((await refusal(controlText(ar([['debian-binary', Buffer.from('2.0\n')], ['data.tar.gz', ctl]]), 'x.deb'))).message).toMatch(/no control.tar member/);
    expect((await refusal(controlText(ar([['debian-binary', Buffer.from('2.0\n')], ['control.tar.gz', Buffer.from('not gzip')], ['data.tar', Buffer.alloc(0)]]), 'x.deb'))).message).toMatch(/control.tar.gz does not decompress/);
    // a control.tar without ./control
    const emptyTar = gzipSync(Buffer.alloc(1024));
    expect((await refusal(controlText(ar([['debian-binary', Buffer.from('2.0\n')], ['control.tar.gz', emptyTar], ['data.tar', Buffer.alloc(0)]]), 'x.deb'))).message).toMatch(/has no control file/);
  });

  it('refuses control fields that could steer a file name: bad Package, Version, Architecture', async () => {
    const bad = async (patch: string) => (await refusal(readDeb(dpkgDebRaw(CONTROL.replace(/^Package: .*$/m, patch)), 'x.deb'))).message;
    expect(await bad('Package: ../../etc')).toMatch(/Package "?\.\.\/\.\.\/etc"? is not valid/);
    expect(() => debInfo(parseControl('Package: ok\nVersion: 1.0/../../x\nArchitecture: all\n'))).toThrow(/Version .* is not valid/);
    expect(() => debInfo(parseControl('Package: ok\nVersion: 1.0\nArchitecture: ../amd64\n'))).toThrow(/Architecture .* is not valid/);
    expect(() => debInfo(parseControl('Version: 1.0\nArchitecture: all\n'))).toThrow(/no Package field/);
    expect(() => parseControl('Package: a\n\nPackage: b\n')).toThrow(/more than one paragraph/);
    expect(() => parseControl('Package: a\nPackage: b\n')).toThrow(/appears twice/);
    expect(() => parseControl(' continuation\n')).toThrow(/starts with a continuation/);
  });

  it('places a package in the pool by its fields, never by its file name', () => {
    expect(poolPath({ package: 'hello', version: '2.10-3', architecture: 'amd64', source: 'hello' })).toBe('pool/main/h/hello/hello_2.10-3_amd64.deb');
    expect(poolPath({ package: 'libc6', version: '2.36-9', architecture: 'amd64', source: 'glibc' })).toBe('pool/main/g/glibc/libc6_2.36-9_amd64.deb');
    expect(poolPath({ package: 'libssl3', version: '1:3.0.15-1', architecture: 'amd64', source: 'openssl' })).toBe('pool/main/o/openssl/libssl3_3.0.15-1_amd64.deb');
    expect(poolPath({ package: 'libfoo1', version: '1', architecture: 'all', source: 'libfoo' })).toBe('pool/main/libf/libfoo/libfoo1_1_all.deb');
    expect(debInfo(parseControl('Package: libc6\nSource: glibc (2.36-9)\nVersion: 2.36-9\nArchitecture: amd64\n')).source).toBe('glibc');
  });
});

/** A .deb whose control is written as is (dpkg-deb would refuse a bad Package): built by hand. */
function dpkgDebRaw(control: string): Buffer {
  const root = fs.mkdtempSync(path.join(tmp, 'raw-'));
  fs.writeFileSync(path.join(root, 'control'), control);
  const tarFile = path.join(root, 'control.tar.gz');
  execFileSync('tar', ['-czf', tarFile, '-C', root, './control']);
  return ar([
    ['debian-binary', Buffer.from('2.0\n')],
    ['control.tar.gz', fs.readFileSync(tarFile)],
    ['data.tar.gz', gzipSync(Buffer.alloc(1024))],
  ]);
}

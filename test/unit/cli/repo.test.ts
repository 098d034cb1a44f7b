/**
 * `fleet repo` through the CLI's main(): add (a package; a file that is not
 * one, refused with nothing written), list, key, remove, and the usage
 * errors. Needs dpkg-deb and gpg (.ci/deps.sh).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../common/executable.js';
import { main } from '../../../server/cli/main.js';
import { captureIo } from './recording-server.js';

const missing = ['dpkg-deb', 'gpg'].filter((t) => !findExecutable(t));
if (missing.length && process.env.CI === 'true') throw new Error(`CI=true: ${missing.join(', ')} missing`);

const dir = mkdtempSync(path.join(tmpdir(), 'fleet-cli-repo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
  const c = captureIo();
  c.io.cwd = dir;
  return main(['node', 'fleet', '--data', 'data', 'repo', ...args], c.io).then((code) => ({ code, out: c.out(), err: c.err() }));
}

describe.skipIf(missing.length > 0)('fleet repo', () => {
  it('adds a package, lists it, prints the key, removes it; refuses a file that is not a package', async () => {
    const root = path.join(dir, 'tree');
    mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
    writeFileSync(path.join(root, 'DEBIAN', 'control'), 'Package: site-tools\nVersion: 1.2-1\nArchitecture: all\nMaintainer: ops <ops@example.org>\nDescription: tools\n');
    execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, path.join(dir, 'site-tools.deb')], { stdio: 'pipe' });
    writeFileSync(path.join(dir, 'fake.deb'), '#!/bin/sh\necho hi\n');

    const bad = await run('add', '--suite', 'bookworm', 'site-tools.deb', 'fake.deb');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^fleet: \S*fake\.deb"? is not a Debian package: no ar archive header \(!<arch>\)\n$/);
    expect(existsSync(path.join(dir, 'data', 'repo', 'index.json'))).toBe(false);

    const add = await run('add', '--suite', 'bookworm', 'site-tools.deb');
    expect(add.code, add.err).toBe(0);
    expect(add.out).toBe('added site-tools 1.2-1 all to bookworm\n');
    expect(add.err).toMatch(/making the repository signing key/);

    const list = await run('list');
    expect(list.out).toBe('SUITE     PACKAGE     VERSION  ARCH  SIZE\n' + `bookworm  site-tools  1.2-1    all   ${/all\s+(\d+)/.exec(list.out)![1]}\n`);
    const json = JSON.parse((await run('list', '--json')).out) as { filename: string }[];
    expect(json.map((e) => e.filename)).toEqual(['pool/main/s/site-tools/site-tools_1.2-1_all.deb']);

    expect((await run('key')).out).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);

    expect((await run('remove', '--suite', 'bookworm', 'nope')).err).toMatch(/suite bookworm holds no package "?nope"?/);
    const rm = await run('rm', '--suite', 'bookworm', 'site-tools');
    expect(rm.out).toBe('removed site-tools 1.2-1 all from bookworm\n');
    expect(existsSync(path.join(dir, 'data', 'repo', 'debian', 'pool', 'main', 's', 'site-tools'))).toBe(false);
    expect((await run('list')).out).toMatch(/holds no package/);
  });

  it('refuses a bad suite and a bad package name before doing anything', async () => {
    expect((await run('add', '--suite', '../x', 'a.deb')).err).toMatch(/suite "?\.\.\/x"? is not a Debian suite name/);
    expect((await run('fetch', '--suite', 'bookworm', 'Bad;Name')).err).toMatch(/is not a Debian package name/);
  });
});

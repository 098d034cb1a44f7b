/**
 * The repository key and signatures (server/repo/sign.ts) with the real
 * gpg: a key made once in a private home (0700) — also under a data dir
 * path too long for gpg-agent's sockets —, InRelease and Release.gpg that
 * gpgv (what apt runs) verifies with the exported binary keyring, and no
 * gpg-agent left running.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../common/executable.js';
import { ensureKey, signRelease } from '../../../server/repo/sign.js';

const missing = ['gpg', 'gpgv', 'gpgconf'].filter((t) => !findExecutable(t));
if (missing.length && process.env.CI === 'true') throw new Error(`CI=true: ${missing.join(', ')} missing (apt-get install gnupg gpgv)`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-sign-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(missing.length > 0)('repository signing (gpg)', () => {
  it('makes the key once, signs Release, gpgv verifies, no agent is left; a long home path works', async () => {
    const deep = path.join(tmp, 'd'.repeat(60), 'e'.repeat(40), 'repo');
    fs.mkdirSync(path.join(deep, 'debian'), { recursive: true });
    const p = { home: path.join(deep, 'key'), keyringGpg: path.join(deep, 'debian', 'k.gpg'), keyringAsc: path.join(deep, 'debian', 'k.asc') };
    const logs: string[] = [];
    const fpr = await ensureKey(p, (l) => logs.push(l));
    expect(fpr).toMatch(/^[0-9A-F]{40}$/);
    expect(fs.statSync(p.home).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(p.keyringAsc, 'utf8')).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(fs.readFileSync(p.keyringGpg)[0]! & 0x80).toBe(0x80); // a binary OpenPGP packet
    // once: the second call makes nothing
    expect(await ensureKey(p, (l) => logs.push(l))).toBe(fpr);
    expect(logs.filter((l) => l.startsWith('making'))).toHaveLength(1);

    const dist = path.join(deep, 'debian', 'dists', 'x');
    fs.mkdirSync(dist, { recursive: true });
    fs.writeFileSync(path.join(dist, 'Release'), 'Origin: fleet\nSuite: x\n');
    await signRelease(p.home, fpr, path.join(dist, 'Release'), dist);
    const gpgv = (...args: string[]) => spawnSync('gpgv', ['--keyring', p.keyringGpg, ...args], { encoding: 'utf8' });
    expect(gpgv(path.join(dist, 'InRelease')).status).toBe(0);
    expect(gpgv(path.join(dist, 'Release.gpg'), path.join(dist, 'Release')).status).toBe(0);
    fs.writeFileSync(path.join(dist, 'Release'), 'Origin: evil\nSuite: x\n');
    expect(gpgv(path.join(dist, 'Release.gpg'), path.join(dist, 'Release')).status).not.toBe(0);

    const agents = spawnSync('pgrep', ['-af', 'gpg-agent'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(deep) || l.includes('fleet-gpg-'));
    expect(agents).toEqual([]);
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('fleet-gpg-')).filter((n) => fs.existsSync(path.join(os.tmpdir(), n, 'h')) && fs.realpathSync(path.join(os.tmpdir(), n, 'h')) === fs.realpathSync(p.home))).toEqual([]);
  });
});

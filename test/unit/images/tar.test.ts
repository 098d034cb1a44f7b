/** Reading tar archives without trusting them: headers, member paths, the tree guard, whiteouts. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { TreeGuard, climbs, memberPath, parsePax, tarEntries, whiteoutOf } from '../../../server/images/tar.js';
import { makeTar, reader } from './tar-helper.js';

const entries = (buf: Buffer) => [...tarEntries(reader(buf), buf.length)];
const unsafe = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof FleetError && e.code === 'image.unsafe') return e.message;
    throw e;
  }
  throw new Error('not refused');
};

const dir = mkdtempSync(join(tmpdir(), 'fleet-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tar headers', () => {
  it('reads what GNU tar writes: long names (pax), symlinks, hard links, directories, sizes and offsets', () => {
    const t = join(dir, 'gnu');
    const long = 'd'.repeat(120);
    mkdirSync(join(t, 'etc', long), { recursive: true });
    writeFileSync(join(t, 'etc', long, 'f.txt'), 'hello');
    symlinkSync('../etc', join(t, 'link'));
    execFileSync('ln', [join(t, 'etc', long, 'f.txt'), join(t, 'hard')]);
    const tar = join(dir, 'gnu.tar');
    execFileSync('tar', ['--format=posix', '--sort=name', '-C', t, '-cf', tar, '.']);
    const buf = readFileSync(tar);
    const es = entries(buf);
    const byName = new Map(es.map((e) => [e.name, e]));
    expect(byName.get(`./etc/${long}/f.txt`)?.type).toBe('file');
    const f = byName.get(`./etc/${long}/f.txt`)!;
    expect(buf.subarray(f.offset, f.offset + f.size).toString()).toBe('hello');
    expect(byName.get('./link')).toMatchObject({ type: 'symlink', linkname: '../etc' });
    expect(byName.get('./hard')).toMatchObject({ type: 'hardlink', linkname: `./etc/${long}/f.txt` });
    expect(byName.get('./')?.type).toBe('dir');
    execFileSync('tar', ['--format=gnu', '-C', t, '-cf', join(dir, 'gnu2.tar'), '.']);
    expect(entries(readFileSync(join(dir, 'gnu2.tar'))).some((e) => e.name === `./etc/${long}/f.txt`)).toBe(true);
  });

  it('refuses what is not a tar archive, a truncated member and member types it does not extract', () => {
    expect(() => entries(Buffer.alloc(512, 1))).toThrow(/not a tar archive/);
    const t = makeTar([{ name: 'a', body: 'x'.repeat(2000) }]);
    expect(() => entries(t.subarray(0, 1024))).toThrow(/truncated/);
    const sparse = makeTar([{ name: 'a', body: 'x' }]);
    sparse[156] = 'S'.charCodeAt(0);
    let sum = 0;
    sparse.fill(0x20, 148, 156);
    for (let i = 0; i < 512; i++) sum += sparse[i]!;
    sparse.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    expect(() => entries(sparse)).toThrow(/does not extract/);
    expect(entries(Buffer.alloc(1024))).toEqual([]);
  });

  it('parses pax records', () => {
    expect(parsePax(Buffer.from('16 path=a/b/cde\n13 size=1234\n'))).toEqual(new Map([['path', 'a/b/cde'], ['size', '1234']]));
    expect(() => parsePax(Buffer.from('99 path=x\n'))).toThrow(/bad pax record/);
  });
});

describe('member paths and the tree guard', () => {
  it('normalises ./ and // and refuses absolute, climbing and NUL names', () => {
    expect(memberPath('./etc//passwd')).toBe('etc/passwd');
    expect(memberPath('./')).toBe('');
    expect(unsafe(() => memberPath('/etc/passwd'))).toMatch(/absolute path/);
    expect(unsafe(() => memberPath('etc/../../x'))).toMatch(/climbs out/);
    expect(unsafe(() => memberPath('..'))).toMatch(/climbs out/);
    expect(unsafe(() => memberPath('a\0b'))).toMatch(/NUL/);
  });

  it('refuses a member that passes through a symlink made before it (in this archive or a lower layer)', () => {
    const g = new TreeGuard();
    g.add({ name: 'etc', type: 'dir', linkname: '' });
    g.add({ name: 'link', type: 'symlink', linkname: '/etc' });
    expect(unsafe(() => g.add({ name: 'link/passwd', type: 'file', linkname: '' }))).toMatch(/passes through the symbolic link link/);
    g.add({ name: 'rel', type: 'symlink', linkname: 'etc' });
    expect(unsafe(() => g.add({ name: './rel/x/y', type: 'dir', linkname: '' }))).toMatch(/symbolic link rel/);
    expect(unsafe(() => g.add({ name: 'h', type: 'hardlink', linkname: 'link/shadow' }))).toMatch(/symbolic link link/);
    // a hard link to a symbolic link is one too
    g.add({ name: 'alias', type: 'hardlink', linkname: './link' });
    expect(unsafe(() => g.add({ name: 'alias/cron.d/x', type: 'file', linkname: '' }))).toMatch(/symbolic link alias/);
    // replaced by a directory, the path is fine again
    g.add({ name: 'link', type: 'dir', linkname: '' });
    expect(g.add({ name: 'link/passwd', type: 'file', linkname: '' })).toBe('link/passwd');
  });

  it('refuses relative symlinks that climb above the root; absolute ones are paths inside the image', () => {
    const g = new TreeGuard();
    expect(unsafe(() => g.add({ name: 'a/b', type: 'symlink', linkname: '../../etc/shadow' }))).toMatch(/points outside the tree/);
    expect(unsafe(() => g.add({ name: 'x', type: 'symlink', linkname: '..' }))).toMatch(/outside/);
    expect(g.add({ name: 'usr/lib/os-release', type: 'symlink', linkname: '../../etc/os-release' })).toBe('usr/lib/os-release');
    expect(g.add({ name: 'etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' })).toBe('etc/localtime');
    expect(unsafe(() => g.add({ name: 'h', type: 'hardlink', linkname: '/etc/shadow' }))).toMatch(/absolute/);
    expect(unsafe(() => g.add({ name: 'h', type: 'hardlink', linkname: '../x' }))).toMatch(/climbs/);
    expect(unsafe(() => g.add({ name: '.', type: 'file', linkname: '' }))).toMatch(/replaces the root/);
    expect(climbs('a/b', '../../x')).toBe(false);
    expect(climbs('a/b', '../../../x')).toBe(true);
    expect(climbs('.', 'x/../..')).toBe(true);
  });

  it('reads whiteouts: .wh.NAME deletes, .wh..wh..opq empties; the guard forgets what they hide', () => {
    expect(whiteoutOf('etc/.wh.motd')).toEqual({ kind: 'delete', path: 'etc/motd' });
    expect(whiteoutOf('.wh.tmp')).toEqual({ kind: 'delete', path: 'tmp' });
    expect(whiteoutOf('var/cache/.wh..wh..opq')).toEqual({ kind: 'opaque', dir: 'var/cache' });
    expect(whiteoutOf('etc/motd')).toBeNull();
    const g = new TreeGuard();
    g.add({ name: 'l', type: 'symlink', linkname: '/etc' });
    g.whiteout({ kind: 'delete', path: 'l' });
    expect(g.typeOf('l')).toBeUndefined();
    g.add({ name: 'l/x', type: 'file', linkname: '' });
    g.add({ name: 'v/c/s', type: 'symlink', linkname: '/' });
    g.whiteout({ kind: 'opaque', dir: 'v/c' });
    expect(g.add({ name: 'v/c/s/ok', type: 'file', linkname: '' })).toBe('v/c/s/ok');
  });
});

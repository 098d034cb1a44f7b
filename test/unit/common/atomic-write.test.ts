/** common/atomic-write.ts: the one atomic file write. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { atomicTempName, writeFileAtomic } from '../../../common/atomic-write.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-atomic-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('writes the content with the exact mode, whatever the umask, and leaves no temporary file', async () => {
    const file = path.join(dir, 'a.conf');
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(file, 'one\n', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('one\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    await writeFileAtomic(file, Buffer.from([0, 1, 2]), { mode: 0o600, sync: false });
    expect([...fs.readFileSync(file)]).toEqual([0, 1, 2]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['a.conf']);
  });

  it('replaces the target by rename: a reader holding the old file keeps the old content', async () => {
    const file = path.join(dir, 'b');
    await writeFileAtomic(file, 'old', { mode: 0o644 });
    const before = fs.statSync(file).ino;
    const fd = fs.openSync(file, 'r');
    try {
      await writeFileAtomic(file, 'new', { mode: 0o644 });
      expect(fs.readFileSync(fd, 'utf8')).toBe('old');
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
    expect(fs.statSync(file).ino).not.toBe(before);
  });

  it('replaces a link at the target instead of writing through it', async () => {
    const outside = path.join(dir, 'outside');
    fs.writeFileSync(outside, 'keep');
    const link = path.join(dir, 'link');
    fs.symlinkSync(outside, link);
    await writeFileAtomic(link, 'mine', { mode: 0o644 });
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep');
    expect(fs.lstatSync(link).isFile()).toBe(true);
  });

  it('fails without touching the target or leaving a temporary file when the rename cannot happen', async () => {
    const target = path.join(dir, 'sub');
    fs.mkdirSync(path.join(target, 'x'), { recursive: true }); // a non-empty directory cannot be replaced by a file
    await expect(writeFileAtomic(target, 'data', { mode: 0o644 })).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(fs.readdirSync(dir)).toEqual(['sub']);
    await expect(writeFileAtomic(path.join(dir, 'missing', 'f'), 'data', { mode: 0o644 })).rejects.toThrow(/ENOENT/);
  });

  it('names its temporary file as a dot file in the same directory (dnsmasq skips dot files)', () => {
    const t = atomicTempName('/etc/fleet/hosts.d/n1');
    expect(path.dirname(t)).toBe('/etc/fleet/hosts.d');
    expect(path.basename(t)).toMatch(new RegExp(`^\\.n1\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`));
    expect(atomicTempName('/x/n1')).not.toBe(atomicTempName('/x/n1'));
  });
});

describe('writeFileAtomicSync', () => {
  it('writes with its mode, replaces the old content, and leaves no temporary file, also when it fails', async () => {
    const { writeFileAtomicSync } = await import('../../../common/atomic-write.js');
    const { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'fleet-aws-'));
    try {
      const f = join(dir, 'owner.json');
      writeFileSync(f, 'old');
      writeFileAtomicSync(f, 'new\n', { mode: 0o600 });
      expect(readFileSync(f, 'utf8')).toBe('new\n');
      expect(statSync(f).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir)).toEqual(['owner.json']);
      expect(() => writeFileAtomicSync(join(dir, 'missing', 'x'), 'y', { mode: 0o600 })).toThrow(/ENOENT/);
      expect(readdirSync(dir)).toEqual(['owner.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The data directory with real processes and a real file system:
 * - a second `fleet server` (the built binary) on a data dir in use exits 2
 *   naming the holder and changes nothing there; a holder killed with -9
 *   leaves no lock behind;
 * - on a full tmpfs, writes fail with store.disk_full (not "cannot
 *   rollback - no transaction is active"); on a read-only one, opening the
 *   data dir fails with store.read_only. Mounting needs root: without it the
 *   suite skips, and fails under CI=true.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../common/errors.js';
import { startServer } from '../../server/serve.js';
import { LOCK_FILE, lockDataDir, LOCK_OWNER_FILE, openDataDir } from '../../server/store/index.js';
import { distMissing, FLEET_BIN, ROOT } from '../helpers/fleet-server.js';

const CI = process.env.CI === 'true';
const noDist = distMissing();

/**
 * name → size, mtime and content digest of every file under d (and the
 * directories' mtimes). The lock file itself is only stat'ed: closing any
 * descriptor of it would drop this process's POSIX lock on it.
 */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = { '.': String(fs.statSync(d).mtimeMs) };
  for (const name of fs.readdirSync(d, { recursive: true }) as string[]) {
    const f = join(d, name);
    const st = fs.statSync(f);
    const digest = name.startsWith(LOCK_FILE) && !name.endsWith('.json') ? '' : crypto.createHash('sha256').update(st.isFile() ? fs.readFileSync(f) : '').digest('hex');
    out[name] = st.isFile() ? `${st.size}:${st.mtimeMs}:${digest}` : `dir:${st.mtimeMs}`;
  }
  return out;
}

/** Children still running, killed after the suite whatever happened. */
const children = new Set<ReturnType<typeof spawn>>();

/** Runs `fleet server` as a child; resolves on exit, or once `ready` matches (then the caller kills it). */
function fleetServer(config: string, data: string, ready?: RegExp): Promise<{ code: number | null; out: string; pid: number; child: ReturnType<typeof spawn> }> {
  const child = spawn(process.execPath, [FLEET_BIN, 'server', '--config', config, '--data', data, '--listen', '127.0.0.1:0', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fleet server neither exited nor became ready in 60 s:\n${out}`));
    }, 60_000);
    if (ready) {
      child.stdout!.on('data', () => ready.test(out) && (clearTimeout(timer), resolve({ code: null, out, pid: child.pid!, child })));
      child.stderr!.on('data', () => ready.test(out) && (clearTimeout(timer), resolve({ code: null, out, pid: child.pid!, child })));
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, pid: child.pid!, child });
    });
  });
}

describe('one fleet server per data directory (two processes)', () => {
  let dir: string;
  let config: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-datadir-'));
    const yaml = (await readFile(join(ROOT, 'examples/seed-cluster.yaml'), 'utf8')).replace(
      'password_file: secrets/bmc-admin.password',
      `password_file: ${join(ROOT, 'examples/secrets/bmc-admin.password')}`,
    );
    config = join(dir, 'fleet.yaml');
    await writeFile(config, yaml);
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(noDist && !CI)(`a second server exits 2 naming the holder and leaves the data dir as it was${noDist ? ` — SKIPPED: ${noDist}` : ''}`, async () => {
    expect(noDist, 'the built binary is needed').toBeNull();
    const data = join(dir, 'a');
    // A data dir a server has used, then a running server holding it.
    const running = await startServer({ configPath: config, dataDir: data, listen: '127.0.0.1:0', logLevel: 'warn' });
    try {
      const refused = await fleetServer(config, data);
      expect(refused.code, refused.out).toBe(2);
      expect(refused.out).toMatch(new RegExp(`^fleet: data directory ${data} is in use by another fleet process \\(fleet server, pid ${process.pid} on .*started `, 'm'));
      expect(refused.out).not.toContain('listening');
    } finally {
      await running.close();
    }

    // Byte for byte: a holder that writes nothing (the lock alone), and the second server against it.
    const lock = lockDataDir(data, 'fleet server');
    try {
      const before = snapshot(data);
      const refused = await fleetServer(config, data);
      expect(refused.code, refused.out).toBe(2);
      expect(snapshot(data)).toEqual(before);
    } finally {
      lock.release();
    }
  }, 120_000);

  it.skipIf(noDist && !CI)('a server killed with -9 leaves no lock behind', async () => {
    expect(noDist, 'the built binary is needed').toBeNull();
    const data = join(dir, 'b');
    const first = await fleetServer(config, data, /HTTP API listening/);
    expect(first.code, first.out).toBeNull();
    expect(JSON.parse(fs.readFileSync(join(data, LOCK_OWNER_FILE), 'utf8'))).toMatchObject({ pid: first.pid });
    const gone = new Promise((r) => first.child.once('exit', r));
    process.kill(first.pid, 'SIGKILL');
    await gone;
    // Its name is still there; its lock is not.
    expect(fs.existsSync(join(data, LOCK_OWNER_FILE))).toBe(true);
    const next = await startServer({ configPath: config, dataDir: data, listen: '127.0.0.1:0', logLevel: 'warn' });
    try {
      expect(JSON.parse(fs.readFileSync(join(data, LOCK_OWNER_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
      expect((await next.store.nodes.list()).length).toBeGreaterThan(0);
    } finally {
      await next.close();
    }
  }, 120_000);
});

const isRoot = process.getuid?.() === 0;
const why = isRoot ? null : 'mounting a tmpfs needs root';

describe.skipIf(why !== null && !CI)(`storage errors on a real file system${why ? ` — SKIPPED: ${why}` : ''}`, () => {
  let mnt: string;
  let mounted = false;

  beforeAll(async () => {
    expect(why).toBeNull();
    mnt = await mkdtemp(join(tmpdir(), 'fleet-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt]);
    mounted = true;
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  const errOf = async (p: Promise<unknown>): Promise<FleetError> => {
    const e = await p.then(
      () => new Error('expected a failure'),
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  };

  it('a full disk is store.disk_full, with nothing half-written; read-only is store.read_only', async () => {
    const data = join(mnt, 'data');
    const { store } = await openDataDir(data);
    let closed = false;
    try {
      await store.events.append({ kind: 'test.before', actor: 'test' });
      const last = await store.events.lastId();
      // Fill the file system.
      const filler = fs.openSync(join(mnt, 'filler'), 'w');
      try {
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (let i = 0; i < 1024; i++) fs.writeSync(filler, chunk);
        throw new Error('the tmpfs did not fill up');
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        fs.closeSync(filler);
      }
      const big = 'y'.repeat(256 * 1024);
      const e = await errOf(store.transaction(async (tx) => {
        for (let i = 0; i < 8; i++) await tx.events.append({ kind: 'test.big', actor: 'test', details: { big, i } });
      }));
      expect(e.code).toBe('store.disk_full');
      expect(e.message).toContain('the disk holding the data directory is full');
      expect(e.message).not.toContain('cannot rollback');
      expect(await store.events.lastId()).toBe(last);
      // A new data dir on the full disk says so too.
      const e2 = await errOf(openDataDir(join(mnt, 'other')));
      expect(e2.code).toBe('store.disk_full');

      fs.rmSync(join(mnt, 'filler'));
      await store.events.append({ kind: 'test.after', actor: 'test' });
      await store.close();
      closed = true;

      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      try {
        const e3 = await errOf(openDataDir(data));
        expect(e3.code).toBe('store.read_only');
        expect(e3.message).toMatch(/the data directory is read-only \((SQLITE_READONLY|EROFS)/);
      } finally {
        execFileSync('mount', ['-o', 'remount,rw', mnt]);
      }
    } finally {
      if (!closed) await store.close();
    }
  });
});

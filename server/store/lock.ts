/**
 * One server per data directory: an exclusive lock taken before anything in
 * the directory is read or written, held for the life of the store.
 *
 * Node has no flock(); the lock is SQLite's own, on a database used for
 * nothing else (DATA/server.lock): `locking_mode=EXCLUSIVE` and a
 * `BEGIN EXCLUSIVE` that is never committed. SQLite implements it with POSIX
 * advisory record locks (fcntl), which the kernel drops when the holding
 * process ends in any way, kill -9 and a crash included: there is no stale
 * lock to clean up and no pid to trust. A second opener gets SQLITE_BUSY at
 * once (no waiting) and leaves the directory as it found it. Two stores of
 * one process exclude each other too (SQLite tracks its own locks per file).
 *
 * The lock file is never deleted: deleting a lock file lets a late opener
 * lock the deleted inode while a third locks a new one. Who holds the lock is
 * written beside it (DATA/server.lock.json: pid, host, start time), only to
 * name the holder in the refusal; it is removed before the lock is released.
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { writeFileAtomicSync } from '../../common/atomic-write.js';
import { FleetError } from '../../common/errors.js';
import { mapStorageError } from './sqlite.js';

export const LOCK_FILE = 'server.lock';
export const LOCK_OWNER_FILE = 'server.lock.json';

export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  /** What holds it, e.g. "fleet server". */
  what: string;
}

export interface DataDirLock {
  readonly file: string;
  release(): void;
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return null;
    return { pid: o.pid, host: o.host, startedAt: String(o.startedAt ?? '?'), what: String(o.what ?? 'a fleet process') };
  } catch {
    return null;
  }
}

/** "pid 123 on mgmt1, a fleet server started at ..." or why the holder is unknown. Pure apart from the read. */
export function describeOwner(owner: LockOwner | null): string {
  if (!owner) return 'holder unknown: it has not written its name yet';
  return `${owner.what}, pid ${owner.pid} on ${owner.host}, started ${owner.startedAt}`;
}

/**
 * Takes the data directory's lock, or throws FleetError('store.locked')
 * naming the holder. The directory must exist. `name` picks another lock
 * file in `dir` (its holder beside it as NAME.json): the image store's lock
 * is DATA/images/images.lock, so images are built while a server runs.
 */
export function lockDataDir(dir: string, what = 'fleet server', name = LOCK_FILE): DataDirLock {
  const file = path.join(dir, name);
  const ownerFile = path.join(dir, name === LOCK_FILE ? LOCK_OWNER_FILE : `${name}.json`);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (e) {
    throw mapStorageError(e, `cannot open the data directory lock ${file}`);
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if (isBusy(e)) {
      const owner = readOwner(ownerFile);
      throw new FleetError(
        'store.locked',
        `data directory ${dir} is in use by another fleet process (${describeOwner(owner)}); stop it first, or give this one another data directory`,
        { dataDir: dir, lock: file, ...(owner ? { owner } : {}) },
        { cause: e },
      );
    }
    throw mapStorageError(e, `cannot lock the data directory ${dir}`);
  }
  const owner: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), what };
  try {
    writeFileAtomicSync(ownerFile, JSON.stringify(owner) + '\n', { mode: 0o600 });
  } catch (e) {
    db.close();
    throw mapStorageError(e, `cannot write ${ownerFile}`);
  }
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      // The name goes first: once the lock is released another process may write its own.
      if (readOwner(ownerFile)?.pid === process.pid) fs.rmSync(ownerFile, { force: true });
      db.close();
    },
  };
}

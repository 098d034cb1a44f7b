/**
 * The one atomic file write: the data goes to a temporary file in the target's
 * directory (a dot file, created exclusively, never through a link), gets its
 * mode (and owner), is fsynced, and is renamed over the target. Readers see
 * the old file or the new one, never a part; a failure leaves the target as
 * it was and no temporary file behind.
 *
 * The temporary name starts with a dot so that directory watchers that skip
 * dot files (dnsmasq's --dhcp-hostsdir inotify) never read a half-written file.
 */
import { randomBytes } from 'node:crypto';
import fsSync, { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of the new file (set explicitly: the umask does not apply). */
  mode: number;
  /** Owner of the new file, set before it is renamed into place (needs the right to chown). */
  owner?: { uid: number; gid: number };
  /** fsync before the rename, so the new content survives a crash. Default true. */
  sync?: boolean;
}

/** Temporary name next to `file` (exported for tests). */
export function atomicTempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions): Promise<void> {
  const tmp = atomicTempName(file);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, opts.mode);
    await fh.writeFile(data);
    if (opts.owner) await fh.chown(opts.owner.uid, opts.owner.gid);
    await fh.chmod(opts.mode);
    if (opts.sync !== false) await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => {});
    await fs.unlink(tmp).catch(() => {});
    throw e;
  }
}

/** The same write, synchronous: for the few callers that cannot await (the data-dir lock at start). */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, opts: AtomicWriteOptions): void {
  const tmp = atomicTempName(file);
  let fd: number | undefined;
  try {
    fd = fsSync.openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, opts.mode);
    fsSync.writeFileSync(fd, data);
    if (opts.owner) fsSync.fchownSync(fd, opts.owner.uid, opts.owner.gid);
    fsSync.fchmodSync(fd, opts.mode);
    if (opts.sync !== false) fsSync.fsyncSync(fd);
    fsSync.closeSync(fd);
    fd = undefined;
    fsSync.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fsSync.closeSync(fd);
    fsSync.rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Storage failures (full disk, read-only data directory) as catalogue
 * errors, for SQLite result codes and Node's errno codes alike. No
 * dependencies: the PKI files and the lock use it as well as the engine.
 */
import { FleetError } from '../../common/errors.js';

/** SQLite result codes and errno codes that mean the disk is full or the quota is spent. */
const FULL_CODES = new Set(['SQLITE_FULL', 'ENOSPC', 'EDQUOT']);
/** ... and those that mean the data directory cannot be written. */
const READ_ONLY_PREFIXES = ['SQLITE_READONLY', 'EROFS'];

/**
 * The one place where storage failures get their clear errors: a full disk
 * (SQLITE_FULL, ENOSPC, EDQUOT) is FleetError('store.disk_full') and a
 * read-only file system or database (SQLITE_READONLY*, EROFS) is
 * FleetError('store.read_only'), whichever layer saw them first (SQLite,
 * or Node's fs for the key, lock and certificate files). `what` says what
 * was being done; null when the error is neither (the caller maps it).
 */
export function storageFailure(e: unknown, what?: string): FleetError | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  const doing = what ? `${what}: ` : '';
  if (FULL_CODES.has(code)) {
    return new FleetError('store.disk_full', `${doing}the disk holding the data directory is full (${code}); free space, then retry — nothing was written`, { code }, { cause: e });
  }
  if (READ_ONLY_PREFIXES.some((p) => code.startsWith(p))) {
    return new FleetError('store.read_only', `${doing}the data directory is read-only (${code}); remount it read-write or fix its permissions`, { code }, { cause: e });
  }
  return null;
}

/** storageFailure, else a FleetError('config.unreadable') with the original message (for opening files). */
export function mapStorageError(e: unknown, what: string): FleetError {
  if (e instanceof FleetError) return e;
  return storageFailure(e, what) ?? new FleetError('config.unreadable', `${what}: ${(e as Error).message}`, undefined, { cause: e });
}


/**
 * The API bearer token file: created at first start in the data dir (mode
 * 0600); it becomes user admin's token (server/auth/users.ts, which checks
 * every API token now). `checkBearer` compares against one expected token in
 * constant time (tests use it as a stand-in). The token is never logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';

export const API_TOKEN_FILE = 'api.token';

export interface ApiTokenResult {
  token: string;
  path: string;
  created: boolean;
}

/** Reads DATA/api.token, creating it (0600, exclusive) when absent. Refuses a file others can read. */
export async function loadOrCreateApiToken(dataDir: string): Promise<ApiTokenResult> {
  const path = join(dataDir, API_TOKEN_FILE);
  const token = randomBytes(32).toString('base64url');
  try {
    const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await fh.writeFile(token + '\n');
    } finally {
      await fh.close();
    }
    return { token, path, created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new FleetError(
      'config.unreadable',
      `${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  const existing = (await readFile(path, 'utf8')).trim();
  if (existing.length < 16) throw new FleetError('config.unreadable', `${path} does not hold a valid API token`);
  return { token: existing, path, created: false };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * Checks an Authorization header value. Throws auth.missing / auth.invalid;
 * the messages never echo what was presented.
 */
export function checkBearer(header: string | undefined, expected: string): void {
  if (header === undefined || header === '') {
    throw new FleetError('auth.missing', 'missing Authorization: Bearer token (see the api.token file in the server data dir)');
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m || !tokenMatches(m[1]!, expected)) {
    throw new FleetError('auth.invalid', 'invalid API token');
  }
}

/** A short, non-secret name for a token (first 8 hex digits of its SHA-256), recorded as the API caller's credential. */
export function tokenId(token: string): string {
  return digest(token).toString('hex').slice(0, 8);
}

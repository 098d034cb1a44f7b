/**
 * API users' tokens (issue 17 item 1): a token is 32 random bytes
 * (base64url, like DATA/api.token), shown once when issued; the store keeps
 * its SHA-256 and a short id (the hash's first 8 hex digits) to find it by.
 * A presented token is hashed, the rows with its id are read, and each
 * stored hash is compared with timingSafeEqual: the comparison takes the
 * same time wherever the hashes differ, and what is compared is a hash, so
 * the time says nothing about the token.
 *
 * The first start's DATA/api.token becomes the token of user `admin` (role
 * admin) when there is no user yet (`bootstrapAdmin`).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FleetError } from '../../common/errors.js';
import type { TokenCandidate, TokenDigest, WriteContext } from '../store/index.js';
import { isRole, roleAllows, type Role } from './roles.js';

/** The user the first start's api.token belongs to. */
export const BOOTSTRAP_ADMIN = 'admin';

/** Who presented a valid token. */
export interface Principal {
  user: string;
  role: Role;
  /** The token's short id (first 8 hex digits of its SHA-256): not secret. */
  tokenId: string;
  /** The token's SHA-256, hex (to record its use). */
  hash: string;
}

/** What the auth check reads: the stored tokens with a given id. */
export interface TokenSource {
  candidates(id: string): Promise<TokenCandidate[]>;
}

/** A new token: 32 random bytes, base64url. Shown once; only its digest is stored. */
export function newUserToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the store keeps of a token: its SHA-256 (hex) and id. */
export function digestToken(token: string, expiresAt?: string | null): TokenDigest {
  const hash = createHash('sha256').update(token, 'utf8').digest('hex');
  return { hash, id: hash.slice(0, 8), ...(expiresAt ? { expiresAt } : {}) };
}

/** The token in an Authorization header; auth.missing when there is none. Never echoes what was presented. */
export function bearerOf(header: string | undefined): string {
  if (header === undefined || header === '') {
    throw new FleetError('auth.missing', 'missing Authorization: Bearer token (see the api.token file in the server data dir, or fleet user token)');
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new FleetError('auth.invalid', 'invalid API token');
  return m[1]!;
}

/**
 * The user a presented token belongs to. auth.invalid (401) for an unknown
 * token, a token whose user was removed (its tokens went with it), a
 * disabled user or an expired token.
 */
export async function authenticate(source: TokenSource, header: string | undefined, now: Date): Promise<Principal> {
  return principalOfDigest(source, digestToken(bearerOf(header)), now);
}

/**
 * The user a token's digest belongs to, checked as `authenticate` checks a
 * presented token (the dashboard's sessions keep the digest, never the
 * token, and re-check it on every request).
 */
export async function principalOfDigest(source: TokenSource, presented: Pick<TokenDigest, 'hash' | 'id'>, now: Date): Promise<Principal> {
  const mine = Buffer.from(presented.hash, 'hex');
  let match: TokenCandidate | undefined;
  // Every candidate is compared (there is usually one), the same way whichever matches.
  for (const c of await source.candidates(presented.id)) {
    const stored = Buffer.from(c.hash, 'hex');
    if (stored.length === mine.length && timingSafeEqual(stored, mine)) match = c;
  }
  if (!match) throw new FleetError('auth.invalid', 'invalid API token');
  if (match.disabled) throw new FleetError('auth.invalid', `API token ${presented.id}: user ${match.user} is disabled`);
  if (match.expiresAt !== null && Date.parse(match.expiresAt) <= now.getTime()) {
    throw new FleetError('auth.invalid', `API token ${presented.id} of user ${match.user} expired at ${match.expiresAt}; issue a new one with: fleet user token ${match.user}`);
  }
  if (!isRole(match.role)) throw new FleetError('auth.invalid', `API token ${presented.id}: user ${match.user} has an unknown role ${JSON.stringify(match.role)}`);
  return { user: match.user, role: match.role, tokenId: presented.id, hash: presented.hash };
}

/** auth.forbidden (403) unless the principal's role includes `need`; `what` names the matched route (never the raw URL). */
export function authorize(p: Pick<Principal, 'user' | 'role'>, need: Role, what: string): void {
  if (!roleAllows(p.role, need)) {
    throw new FleetError('auth.forbidden', `user ${p.user} (role ${p.role}) may not ${what}: it needs role ${need}`, { role: p.role, required: need });
  }
}

/**
 * When there is no user yet, makes `token` (DATA/api.token) the token of
 * user admin (role admin). Returns whether it did. Once a user exists this
 * does nothing, so a revoked api.token stays revoked across restarts.
 */
export async function bootstrapAdmin(
  users: { bootstrap(name: string, token: TokenDigest): Promise<boolean> },
  token: string,
): Promise<boolean> {
  return users.bootstrap(BOOTSTRAP_ADMIN, digestToken(token));
}

/**
 * What serve does with DATA/api.token at each start: with no user yet it
 * becomes admin's token ('bootstrapped'); a file created this start (it was
 * deleted: the recovery path for a lost admin token) is added to user admin
 * ('reissued'), or, with no user admin left, works for nobody ('unowned').
 * Otherwise nothing changes ('kept'): a revoked api.token stays revoked.
 */
export async function adoptApiToken(
  users: {
    bootstrap(name: string, token: TokenDigest): Promise<boolean>;
    addToken(name: string, token: TokenDigest, opts: { revokeOthers?: boolean }, wc: WriteContext): Promise<number>;
    candidates(id: string): Promise<TokenCandidate[]>;
    get(name: string): Promise<{ name: string } | undefined>;
  },
  token: string,
  created: boolean,
): Promise<'bootstrapped' | 'reissued' | 'kept' | 'unowned'> {
  if (await bootstrapAdmin(users, token)) return 'bootstrapped';
  if (!created) return 'kept';
  const d = digestToken(token);
  if ((await users.candidates(d.id)).some((c) => c.hash === d.hash)) return 'kept';
  if (!(await users.get(BOOTSTRAP_ADMIN))) return 'unowned';
  await users.addToken(BOOTSTRAP_ADMIN, d, {}, { actor: 'system', cause: 'api.token recreated' });
  return 'reissued';
}

/** Parses --expires: a duration (`90d`, `12h`, `30m`) or an ISO date; returns the ISO expiry. */
export function parseExpiry(s: string, now: Date): string {
  const d = /^(\d{1,6})([mhdw])$/.exec(s.trim());
  if (d) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[d[2] as 'm' | 'h' | 'd' | 'w'];
    const n = Number(d[1]);
    if (n <= 0) throw new FleetError('request.invalid', `expiry ${JSON.stringify(s)} must be in the future`);
    return new Date(now.getTime() + n * unit).toISOString();
  }
  const t = Date.parse(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s.trim()) || Number.isNaN(t)) {
    throw new FleetError('request.invalid', `expiry ${JSON.stringify(s.slice(0, 40))} is neither a duration (30m, 12h, 90d, 4w) nor an ISO date`);
  }
  if (t <= now.getTime()) throw new FleetError('request.invalid', `expiry ${s} is in the past`);
  return new Date(t).toISOString();
}

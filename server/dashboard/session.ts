/**
 * Dashboard sessions (issue 17 item 1/2, docs/decisions/0018): a user logs
 * in with their API token once; the server answers with a random session id
 * in an httpOnly, SameSite=Strict cookie (Secure on a TLS listener) and
 * keeps the session in memory: the user, the token's id and SHA-256 (never
 * the token), a CSRF token, and its expiry. A restart logs everybody out.
 *
 * The map is keyed by the SHA-256 of the session id, so a lookup's timing
 * says nothing about ids that exist. Every request re-checks the token
 * behind the session (server/auth/users.ts principalOfDigest), so a removed,
 * disabled or expired user, or a revoked token, ends its sessions at once,
 * and a role change applies on the next click.
 *
 * Pure but for the random ids: the clock is given.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'fleet_session';
/** Header the dashboard's script sends the CSRF token in (forms send the field `_csrf`). */
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

export interface Session {
  user: string;
  /** The token that logged in: its short id and SHA-256 (hex), re-checked on every request. */
  tokenId: string;
  tokenHash: string;
  /** Synchronizer token: every state-changing request carries it. */
  csrf: string;
  createdAt: number;
  /** Absolute end (ms). */
  expiresAt: number;
  /** Ends earlier when unused this long (ms since lastUsed). */
  lastUsed: number;
}

export interface SessionStoreOptions {
  /** Longest life of a session. Default 12 h. */
  ttlMs?: number;
  /** A session unused this long ends. Default 2 h. */
  idleMs?: number;
  /** At most this many live sessions; the oldest goes first. Default 10,000. */
  max?: number;
  clock?: () => number;
}

const keyOf = (id: string): string => createHash('sha256').update(id, 'utf8').digest('hex');

/** A session id or CSRF token: 32 random bytes, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Session ids as issued: 43 base64url characters; anything else is not looked up. */
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly ttlMs: number;
  private readonly idleMs: number;
  private readonly max: number;
  private readonly clock: () => number;

  constructor(opts: SessionStoreOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 12 * 3_600_000;
    this.idleMs = opts.idleMs ?? 2 * 3_600_000;
    this.max = opts.max ?? 10_000;
    this.clock = opts.clock ?? Date.now;
  }

  /** A new session for a user whose token was just checked; returns its id (the cookie's value). */
  create(user: string, token: { tokenId: string; hash: string }): { id: string; session: Session } {
    const now = this.clock();
    this.sweep(now);
    while (this.sessions.size >= this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const id = newSecret();
    const session: Session = { user, tokenId: token.tokenId, tokenHash: token.hash, csrf: newSecret(), createdAt: now, expiresAt: now + this.ttlMs, lastUsed: now };
    this.sessions.set(keyOf(id), session);
    return { id, session };
  }

  /** The live session of an id (its last use moved to now), or undefined: unknown, malformed, expired or idle too long (then forgotten). */
  get(id: string | undefined): Session | undefined {
    if (id === undefined || !ID_PATTERN.test(id)) return undefined;
    const key = keyOf(id);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    const now = this.clock();
    if (now >= s.expiresAt || now - s.lastUsed >= this.idleMs) {
      this.sessions.delete(key);
      return undefined;
    }
    s.lastUsed = now;
    return s;
  }

  /** Ends a session (logout, or its token no longer valid). */
  delete(id: string | undefined): void {
    if (id !== undefined && ID_PATTERN.test(id)) this.sessions.delete(keyOf(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(now: number): void {
    for (const [k, s] of this.sessions) if (now >= s.expiresAt || now - s.lastUsed >= this.idleMs) this.sessions.delete(k);
  }
}

/** The cookies of a Cookie header (first value of a name wins; malformed pairs are skipped). */
export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of [header ?? []].flat()) {
    for (const part of h.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      const name = part.slice(0, eq).trim();
      let value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
      if (!out.has(name)) out.set(name, value);
    }
  }
  return out;
}

/** The Set-Cookie of a session: httpOnly, SameSite=Strict, path /ui, Secure on TLS. */
export function sessionCookie(id: string, opts: { secure: boolean; maxAgeSeconds: number }): string {
  return `${SESSION_COOKIE}=${id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(opts.maxAgeSeconds))}${opts.secure ? '; Secure' : ''}`;
}

/** The Set-Cookie that removes the session cookie. */
export function clearedSessionCookie(opts: { secure: boolean }): string {
  return `${SESSION_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0${opts.secure ? '; Secure' : ''}`;
}

/** Whether a presented CSRF token is the session's: compared in constant time (over digests, so lengths never leak either). */
export function csrfMatches(expected: string, presented: unknown): boolean {
  if (typeof presented !== 'string' || presented === '') return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(presented, 'utf8').digest();
  return timingSafeEqual(a, b);
}

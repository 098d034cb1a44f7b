/**
 * The token rules as pure functions (DESIGN §4, issue 9): whether a presented
 * token is accepted, and whether a fetch that needs a node's token is served
 * the outstanding one again or a new one. The repository (tokens.ts) reads
 * the rows and writes what these decide.
 */
import { FleetError } from '../../../common/errors.js';

/** What the rules need of a token row. */
export interface TokenFacts {
  node: string;
  purpose: string;
  expiresAt: string;
  usedAt: string | null;
  revokedAt: string | null;
  revokedReason: string | null;
}

/**
 * Why a presented token is refused, or null when it is accepted. Checked in
 * this order: unknown or another purpose (auth.invalid: nothing is revealed
 * about tokens of another kind), another node's (token.wrong_node), used
 * (token.used), revoked (token.revoked, with when and why), expired
 * (token.expired). Times are ISO strings; `now` is compared as text.
 */
export function tokenRefusal(row: TokenFacts | undefined, want: { purpose: string; node?: string; now: string }): FleetError | null {
  if (!row || row.purpose !== want.purpose) return new FleetError('auth.invalid', 'unknown token');
  if (want.node !== undefined && row.node !== want.node) {
    return new FleetError('token.wrong_node', `the token does not belong to ${want.node}`, { node: want.node });
  }
  if (row.usedAt !== null) return new FleetError('token.used', `the token of ${row.node} was already used`, { node: row.node });
  if (row.revokedAt !== null) {
    const why = row.revokedReason ? ` (${row.revokedReason})` : '';
    return new FleetError('token.revoked', `the token of ${row.node} was revoked at ${row.revokedAt}${why}`, { node: row.node, reason: row.revokedReason });
  }
  if (row.expiresAt <= want.now) return new FleetError('token.expired', `the token of ${row.node} expired at ${row.expiresAt}`, { node: row.node });
  return null;
}

/** The node's outstanding token of a purpose (unused, unrevoked), as a fetch sees it. */
export interface OutstandingToken {
  expiresAt: string;
  createdAt: string;
  /** Whether its plaintext is kept (sealed) and opens with this server's key. */
  plaintextKnown: boolean;
}

export type FetchPlan = { action: 'reuse' } | { action: 'issue'; revoke?: string };

/**
 * What a fetch that hands out a node's token (the install script, the
 * kickstart) does: serve the outstanding token again, or issue a new one
 * (revoking the outstanding one with the given reason). A token is served
 * again while at least half of its life is left, so a repeated fetch never
 * gets a token about to expire; it cannot be served again when its
 * plaintext is not kept (a token of an older server, or sealed with another
 * key). Either way the node has one outstanding token of the purpose.
 */
export function planFetchToken(current: OutstandingToken | undefined, now: string, ttlMs: number): FetchPlan {
  if (!current) return { action: 'issue' };
  if (current.expiresAt <= now) return { action: 'issue', revoke: 'expired' };
  if (!current.plaintextKnown) return { action: 'issue', revoke: 'superseded: its plaintext is not kept by this server' };
  const left = Date.parse(current.expiresAt) - Date.parse(now);
  if (!(left >= ttlMs / 2)) return { action: 'issue', revoke: 'renewed: less than half of its life was left' };
  return { action: 'reuse' };
}

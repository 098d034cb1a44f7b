import crypto from 'node:crypto';
import { FleetError } from '../../errors.js';
import { appendEvent, type StoreContext } from '../context.js';
import { hashToken } from '../crypto.js';
import type { IssuedToken, WriteContext } from '../types.js';

export const DEFAULT_TOKEN_PURPOSE = 'enrol';

/**
 * One-time, expiring tokens bound to a node (DESIGN §4: the enrolment token
 * carried by a rendered kickstart). Only the SHA-256 of a token is stored.
 */
export class TokenRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Issues a token for a node; the plaintext is returned once. Writes token.issued (without the token). */
  async issue(node: string, opts: WriteContext & { ttlMs: number; purpose?: string }): Promise<IssuedToken> {
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) throw new FleetError('request.invalid', 'token ttl must be positive');
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    const token = crypto.randomBytes(32).toString('base64url');
    return this.ctx.write(async (trx) => {
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const now = this.ctx.now();
      const expiresAt = new Date(now.getTime() + opts.ttlMs).toISOString();
      await trx
        .insertInto('tokens')
        .values({ hash: hashToken(token), node, purpose, created_at: now.toISOString(), expires_at: expiresAt, used_at: null })
        .execute();
      await appendEvent(trx, now.toISOString(), { node, kind: 'token.issued', actor: opts.actor, cause: opts.cause ?? null, details: { purpose, expiresAt } });
      return { token, node, purpose, expiresAt };
    });
  }

  /**
   * Checks a token without using it up (install tokens authorise retried
   * kickstart fetches and callbacks). Same errors as consume; writes nothing.
   */
  async verify(token: string, opts: { node?: string; purpose?: string } = {}): Promise<{ node: string; purpose: string; expiresAt: string }> {
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    const row = await this.ctx.q.selectFrom('tokens').selectAll().where('hash', '=', hashToken(token)).executeTakeFirst();
    if (!row || row.purpose !== purpose) throw new FleetError('auth.invalid', 'unknown token');
    if (opts.node !== undefined && row.node !== opts.node) {
      throw new FleetError('token.wrong_node', `the token does not belong to ${opts.node}`, { node: opts.node });
    }
    if (row.used_at !== null) throw new FleetError('token.used', `the token of ${row.node} was already used`, { node: row.node });
    if (row.expires_at <= this.ctx.nowIso()) throw new FleetError('token.expired', `the token of ${row.node} expired at ${row.expires_at}`, { node: row.node });
    return { node: row.node, purpose: row.purpose, expiresAt: row.expires_at };
  }

  /**
   * Uses a token up, atomically. Errors: auth.invalid (unknown, or another
   * purpose), token.wrong_node (node given and not the token's), token.used,
   * token.expired. Writes token.used.
   */
  async consume(token: string, opts: { node?: string; purpose?: string; actor?: string } = {}): Promise<{ node: string; purpose: string }> {
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    const hash = hashToken(token);
    return this.ctx.write(async (trx) => {
      const row = await trx.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      if (!row || row.purpose !== purpose) throw new FleetError('auth.invalid', 'unknown token');
      if (opts.node !== undefined && row.node !== opts.node) {
        throw new FleetError('token.wrong_node', `the token does not belong to ${opts.node}`, { node: opts.node });
      }
      if (row.used_at !== null) throw new FleetError('token.used', `the token of ${row.node} was already used`, { node: row.node });
      const now = this.ctx.nowIso();
      if (row.expires_at <= now) throw new FleetError('token.expired', `the token of ${row.node} expired at ${row.expires_at}`, { node: row.node });
      const res = await trx.updateTable('tokens').set({ used_at: now }).where('hash', '=', hash).where('used_at', 'is', null).executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw new FleetError('token.used', `the token of ${row.node} was already used`, { node: row.node });
      await appendEvent(trx, now, { node: row.node, kind: 'token.used', actor: opts.actor ?? `node:${row.node}`, details: { purpose } });
      return { node: row.node, purpose };
    });
  }

  /** Deletes tokens that expired or were used before `before` (default now). Returns how many. */
  async purge(before?: Date): Promise<number> {
    const when = (before ?? this.ctx.now()).toISOString();
    return this.ctx.write(async (trx) => {
      const res = await trx
        .deleteFrom('tokens')
        .where((eb) => eb.or([eb('expires_at', '<=', when), eb('used_at', '<=', when)]))
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }
}

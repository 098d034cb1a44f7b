import crypto from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import { appendEvent, type StoreContext } from '../context.js';
import { hashToken } from '../crypto.js';
import { prepared } from '../prepared.js';
import type { DB, TokensTable } from '../schema.js';
import type { IssuedToken, WriteContext } from '../types.js';
import { planFetchToken, tokenRefusal, type TokenFacts } from './token-policy.js';
import { EVENT } from '../../../common/events.js';

export const DEFAULT_TOKEN_PURPOSE = 'enrol';

type TokenRow = Selectable<TokensTable>;

function facts(row: TokenRow): TokenFacts {
  return {
    node: row.node,
    purpose: row.purpose,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    revokedAt: row.revoked_at,
    revokedReason: row.revoked_reason,
  };
}

/** The name a token's sealed plaintext is bound to (AES-GCM additional data): a box cannot move to another row. */
function sealName(hash: string): string {
  return `token/${hash}`;
}

export interface TokenUse {
  node: string;
  purpose: string;
  expiresAt: string;
  /** Where the token was used from before this use (null: first use). */
  previousIp: string | null;
}

/**
 * Expiring tokens bound to a node (DESIGN §4): the install token (kickstart
 * fetch and install callbacks) and the one-time enrolment token (gRPC
 * Enroll). A node has at most one outstanding (unused, unrevoked) token per
 * purpose: `issue` revokes the earlier one, `current` serves it again, and a
 * partial unique index keeps it so. Rows hold the SHA-256 of the token and
 * its plaintext sealed with the data dir's key, so the outstanding token can
 * be served again after a restart.
 */
export class TokenRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** revokeAll's read, on every transition that starts or ends a run: compiled once (prepared.ts). */
  private readonly outstandingPurposes = prepared<{ node: string }, { hash: string; purpose: string }>((db, p) =>
    db.selectFrom('tokens').select(['hash', 'purpose']).where('node', '=', p('node')).where('used_at', 'is', null).where('revoked_at', 'is', null),
  );

  /**
   * Issues a token for a node; any outstanding token of the same purpose is
   * revoked ('superseded'). Writes token.issued (without the token).
   */
  async issue(node: string, opts: WriteContext & { ttlMs: number; purpose?: string; ip?: string; revokeReason?: string }): Promise<IssuedToken> {
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) throw new FleetError('request.invalid', 'token ttl must be positive');
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    return this.ctx.write(async (trx) => {
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      return this.mint(trx, node, purpose, opts.ttlMs, { ...opts, revokeReason: opts.revokeReason ?? 'superseded' });
    });
  }

  /**
   * The token a fetch hands out (install script: install token; kickstart:
   * enrolment token): the node's outstanding token of the purpose when it
   * may be served again (planFetchToken), else a new one. `reused` says
   * which; a reuse writes nothing.
   */
  async current(node: string, opts: WriteContext & { ttlMs: number; purpose?: string; ip?: string }): Promise<IssuedToken & { reused: boolean }> {
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) throw new FleetError('request.invalid', 'token ttl must be positive');
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    return this.ctx.write(async (trx) => {
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const row = await this.outstanding(trx, node, purpose);
      let plaintext: string | undefined;
      if (row?.sealed && row.key_id) {
        try {
          plaintext = this.ctx.keys.open(sealName(row.hash), row.key_id, row.sealed);
        } catch {
          plaintext = undefined; // sealed with another key: issue a new one
        }
        if (plaintext !== undefined && hashToken(plaintext) !== row.hash) plaintext = undefined;
      }
      const plan = planFetchToken(
        row ? { expiresAt: row.expires_at, createdAt: row.created_at, plaintextKnown: plaintext !== undefined } : undefined,
        this.ctx.nowIso(),
        opts.ttlMs,
      );
      if (plan.action === 'reuse' && row && plaintext !== undefined) {
        return { token: plaintext, node, purpose, expiresAt: row.expires_at, reused: true };
      }
      const issued = await this.mint(trx, node, purpose, opts.ttlMs, { ...opts, revokeReason: plan.action === 'issue' ? (plan.revoke ?? 'superseded') : 'superseded' });
      return { ...issued, reused: false };
    });
  }

  /**
   * Checks a token without using it up (install tokens authorise retried
   * kickstart fetches and callbacks). Same errors as consume. With `ip`, the
   * use is recorded on the token (its last address and time) and the
   * address of the previous use is returned.
   */
  async verify(token: string, opts: { node?: string; purpose?: string; ip?: string } = {}): Promise<TokenUse> {
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    const hash = hashToken(token);
    const check = async (q: Kysely<DB>): Promise<TokenUse> => {
      const row = await q.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      const refused = tokenRefusal(row ? facts(row) : undefined, { purpose, ...(opts.node !== undefined ? { node: opts.node } : {}), now: this.ctx.nowIso() });
      if (refused || !row) throw refused ?? new FleetError('auth.invalid', 'unknown token');
      return { node: row.node, purpose: row.purpose, expiresAt: row.expires_at, previousIp: row.last_ip };
    };
    if (opts.ip === undefined) return check(this.ctx.q);
    const ip = opts.ip;
    return this.ctx.write(async (trx) => {
      const use = await check(trx);
      await trx.updateTable('tokens').set({ last_ip: ip, last_used_at: this.ctx.nowIso() }).where('hash', '=', hash).execute();
      return use;
    });
  }

  /**
   * Uses a token up, atomically. Errors: auth.invalid (unknown, or another
   * purpose), token.wrong_node (node given and not the token's), token.used,
   * token.revoked, token.expired. Writes token.used (with the address).
   */
  async consume(token: string, opts: { node?: string; purpose?: string; actor?: string; ip?: string } = {}): Promise<TokenUse> {
    const purpose = opts.purpose ?? DEFAULT_TOKEN_PURPOSE;
    const hash = hashToken(token);
    return this.ctx.write(async (trx) => {
      const row = await trx.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      const now = this.ctx.nowIso();
      const refused = tokenRefusal(row ? facts(row) : undefined, { purpose, ...(opts.node !== undefined ? { node: opts.node } : {}), now });
      if (refused || !row) throw refused ?? new FleetError('auth.invalid', 'unknown token');
      const res = await trx
        .updateTable('tokens')
        .set({ used_at: now, last_used_at: now, last_ip: opts.ip ?? row.last_ip, sealed: null, key_id: null })
        .where('hash', '=', hash)
        .where('used_at', 'is', null)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw new FleetError('token.used', `the token of ${row.node} was already used`, { node: row.node });
      await appendEvent(trx, now, {
        node: row.node,
        kind: EVENT.tokenUsed,
        actor: opts.actor ?? `node:${row.node}`,
        details: { purpose, ...(opts.ip !== undefined ? { ip: opts.ip } : {}), ...(row.last_ip !== null && row.last_ip !== opts.ip ? { previousIp: row.last_ip } : {}) },
      });
      return { node: row.node, purpose: row.purpose, expiresAt: row.expires_at, previousIp: row.last_ip };
    });
  }

  /**
   * Revokes every outstanding token of the node, of every purpose (the
   * install is over, cancelled, or starts again). Writes one token.revoked
   * event with the purposes and the reason when it revoked any. Returns how
   * many.
   */
  async revokeAll(node: string, opts: WriteContext & { reason: string }): Promise<number> {
    return this.ctx.write(async (trx) => {
      const rows = await this.outstandingPurposes.rows(trx, { node });
      if (rows.length === 0) return 0;
      const now = this.ctx.nowIso();
      await trx
        .updateTable('tokens')
        .set({ revoked_at: now, revoked_reason: opts.reason, sealed: null, key_id: null })
        .where('node', '=', node)
        .where('used_at', 'is', null)
        .where('revoked_at', 'is', null)
        .execute();
      const purposes = [...new Set(rows.map((r) => r.purpose))].sort();
      await appendEvent(trx, now, { node, kind: EVENT.tokenRevoked, actor: opts.actor, cause: opts.cause ?? null, details: { reason: opts.reason, purposes, count: rows.length } });
      return rows.length;
    });
  }

  /** The node's outstanding tokens (unused, unrevoked; expired ones included), without plaintext. For inspection and tests. */
  async outstandingOf(node: string): Promise<{ purpose: string; createdAt: string; expiresAt: string; lastIp: string | null }[]> {
    const rows = await this.ctx.q
      .selectFrom('tokens')
      .select(['purpose', 'created_at', 'expires_at', 'last_ip'])
      .where('node', '=', node)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .orderBy('purpose')
      .execute();
    return rows.map((r) => ({ purpose: r.purpose, createdAt: r.created_at, expiresAt: r.expires_at, lastIp: r.last_ip }));
  }

  /** Deletes tokens that expired, were used or were revoked before `before` (default now). Returns how many. */
  async purge(before?: Date): Promise<number> {
    const when = (before ?? this.ctx.now()).toISOString();
    return this.ctx.write(async (trx) => {
      const res = await trx
        .deleteFrom('tokens')
        .where((eb) => eb.or([eb('expires_at', '<=', when), eb('used_at', '<=', when), eb('revoked_at', '<=', when)]))
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }

  private async outstanding(trx: Kysely<DB>, node: string, purpose: string): Promise<TokenRow | undefined> {
    return trx
      .selectFrom('tokens')
      .selectAll()
      .where('node', '=', node)
      .where('purpose', '=', purpose)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
  }

  /** Revokes the outstanding token of (node, purpose) and inserts a new one, sealed; writes token.issued. Inside the caller's transaction. */
  private async mint(
    trx: Kysely<DB>,
    node: string,
    purpose: string,
    ttlMs: number,
    opts: WriteContext & { ip?: string; revokeReason: string },
  ): Promise<IssuedToken> {
    const token = crypto.randomBytes(32).toString('base64url');
    const hash = hashToken(token);
    const now = this.ctx.now();
    const nowIso = now.toISOString();
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
    const old = await trx
      .updateTable('tokens')
      .set({ revoked_at: nowIso, revoked_reason: opts.revokeReason, sealed: null, key_id: null })
      .where('node', '=', node)
      .where('purpose', '=', purpose)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    const replaced = Number(old.numUpdatedRows);
    await trx
      .insertInto('tokens')
      .values({
        hash,
        node,
        purpose,
        created_at: nowIso,
        expires_at: expiresAt,
        used_at: null,
        sealed: this.ctx.keys.seal(sealName(hash), token),
        key_id: this.ctx.keys.keyId,
        revoked_at: null,
        revoked_reason: null,
        last_ip: null,
        last_used_at: null,
      })
      .execute();
    await appendEvent(trx, nowIso, {
      node,
      kind: EVENT.tokenIssued,
      actor: opts.actor,
      cause: opts.cause ?? null,
      details: { purpose, expiresAt, ...(opts.ip !== undefined ? { ip: opts.ip } : {}), ...(replaced > 0 ? { revoked: opts.revokeReason } : {}) },
    });
    return { token, node, purpose, expiresAt };
  }
}

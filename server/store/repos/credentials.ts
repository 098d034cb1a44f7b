import { FleetError } from '../../../common/errors.js';
import { appendEvent, naturalCompare, type StoreContext } from '../context.js';
import type { CredentialInfo, RevealedCredential, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

export interface CredentialUpsertResult {
  action: 'added' | 'changed' | 'unchanged';
  usernameChanged: boolean;
  secretChanged: boolean;
}

/**
 * BMC credential sets. The secret is sealed with AES-256-GCM under a key
 * derived from DATA/secret.key; list() and get() never return it, and no
 * event or error message contains it. revealSecret() is for BMC code only.
 */
export class CredentialRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Keyed digest (HMAC-SHA256) of a secret under this store's key: compare secrets without storing or printing them. */
  digest(secret: string): string {
    return this.ctx.keys.digest(secret);
  }

  async list(): Promise<CredentialInfo[]> {
    const rows = await this.ctx.q.selectFrom('credentials').select(['name', 'username', 'created_at', 'updated_at']).execute();
    return rows
      .map((r) => ({ name: r.name, username: r.username, createdAt: r.created_at, updatedAt: r.updated_at }))
      .sort((a, b) => naturalCompare(a.name, b.name));
  }

  async get(name: string): Promise<CredentialInfo | null> {
    const r = await this.ctx.q
      .selectFrom('credentials')
      .select(['name', 'username', 'created_at', 'updated_at'])
      .where('name', '=', name)
      .executeTakeFirst();
    return r ? { name: r.name, username: r.username, createdAt: r.created_at, updatedAt: r.updated_at } : null;
  }

  /** name -> {username, secretDigest} for every stored credential (what `fleet apply` compares). */
  async digests(): Promise<Map<string, { username: string; secretDigest: string }>> {
    const rows = await this.ctx.q.selectFrom('credentials').select(['name', 'username', 'secret_digest']).execute();
    return new Map(rows.map((r) => [r.name, { username: r.username, secretDigest: r.secret_digest }]));
  }

  /** Adds or updates a credential set; writes credential.added / credential.changed (without the secret), nothing when unchanged. */
  async upsert(name: string, username: string, secret: string, wc: WriteContext = { actor: 'system' }): Promise<CredentialUpsertResult> {
    if (typeof name !== 'string' || name === '') throw new FleetError('request.invalid', 'credential name is empty');
    if (typeof username !== 'string') throw new FleetError('request.invalid', `credential ${name}: username is not a string`);
    if (typeof secret !== 'string') throw new FleetError('request.invalid', `credential ${name}: secret is not a string`);
    const keys = this.ctx.keys;
    const digest = keys.digest(secret);
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const row = await trx
        .selectFrom('credentials')
        .select(['username', 'secret_digest', 'key_id'])
        .where('name', '=', name)
        .executeTakeFirst();
      if (!row) {
        await trx
          .insertInto('credentials')
          .values({
            name,
            username,
            key_id: keys.keyId,
            secret_box: keys.seal(name, secret),
            secret_digest: digest,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await appendEvent(trx, now, { kind: EVENT.credentialAdded, actor: wc.actor, cause: wc.cause ?? null, details: { credential: name, username } });
        return { action: 'added', usernameChanged: false, secretChanged: false };
      }
      const usernameChanged = row.username !== username;
      // A digest made under another key differs even for the same secret: re-sealing then heals the row.
      const secretChanged = row.secret_digest !== digest || row.key_id !== keys.keyId;
      if (!usernameChanged && !secretChanged) return { action: 'unchanged', usernameChanged, secretChanged };
      await trx
        .updateTable('credentials')
        .set({
          username,
          ...(secretChanged ? { key_id: keys.keyId, secret_box: keys.seal(name, secret), secret_digest: digest } : {}),
          updated_at: now,
        })
        .where('name', '=', name)
        .execute();
      await appendEvent(trx, now, {
        kind: EVENT.credentialChanged,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: {
          credential: name,
          ...(usernameChanged ? { username: { from: row.username, to: username } } : {}),
          secretChanged,
        },
      });
      return { action: 'changed', usernameChanged, secretChanged };
    });
  }

  /** Removes a credential set; FleetError('conflict') while a BMC uses it, 'not_found' when absent. */
  async remove(name: string, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const users = await trx.selectFrom('bmc_endpoints').select('node').where('credentials', '=', name).limit(5).execute();
      if (users.length > 0) {
        throw new FleetError('conflict', `credential ${name} is still used by the BMC of ${users.map((u) => u.node).join(', ')}${users.length === 5 ? ', ...' : ''}`, {
          credential: name,
        });
      }
      const res = await trx.deleteFrom('credentials').where('name', '=', name).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw new FleetError('not_found', `no credential named ${name}`, { credential: name });
      await appendEvent(trx, this.ctx.nowIso(), { kind: EVENT.credentialRemoved, actor: wc.actor, cause: wc.cause ?? null, details: { credential: name } });
    });
  }

  /**
   * The plaintext secret, for BMC code only (never log or return it). Fails
   * with a clear FleetError when the row was sealed with another key or was
   * tampered with.
   */
  async revealSecret(name: string): Promise<RevealedCredential> {
    const row = await this.ctx.q
      .selectFrom('credentials')
      .select(['username', 'key_id', 'secret_box'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw new FleetError('not_found', `no credential named ${name}`, { credential: name });
    const secret = this.ctx.keys.open(name, row.key_id, Buffer.from(row.secret_box));
    return { name, username: row.username, secret };
  }
}

import type { Kysely } from 'kysely';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { isRole } from '../../auth/roles.js';
import { appendEvent, type StoreContext } from '../context.js';
import type { DB } from '../schema.js';
import type { WriteContext } from '../types.js';

/** A user name: lower-case letters, digits, '.', '_', '-'; starts with a letter or digit; at most 64. */
export const USER_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface UserTokenInfo {
  /** First 8 hex digits of the token's SHA-256 (not secret). */
  id: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
}

export interface UserRecord {
  name: string;
  role: string;
  disabled: boolean;
  createdAt: string;
  tokens: UserTokenInfo[];
}

/** A stored token as the auth check needs it: its hash to compare, and its user. */
export interface TokenCandidate {
  hash: string;
  user: string;
  role: string;
  disabled: boolean;
  expiresAt: string | null;
}

/** What a new token is stored as: the SHA-256 (hex) and its short id; never the token. */
export interface TokenDigest {
  hash: string;
  id: string;
  expiresAt?: string | null;
}

function checkName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw new FleetError('request.invalid', `user name ${JSON.stringify(name.slice(0, 80))} is not valid (a-z, 0-9, '.', '_', '-'; at most 64; starts with a letter or digit)`);
  }
}

/**
 * API users and their tokens (migration 011). Tokens arrive here hashed
 * (server/auth/users.ts); nothing in this repository sees or returns one.
 * The last enabled admin can be neither removed nor disabled.
 */
export class UserRepository {
  constructor(private readonly ctx: StoreContext) {}

  async count(): Promise<number> {
    const r = await this.ctx.q.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async list(): Promise<UserRecord[]> {
    const users = await this.ctx.q.selectFrom('users').selectAll().orderBy('name').execute();
    const tokens = await this.ctx.q.selectFrom('user_tokens').select(['user', 'id', 'created_at', 'last_used_at', 'expires_at']).orderBy('created_at').orderBy('id').execute();
    return users.map((u) => ({
      name: u.name,
      role: u.role,
      disabled: u.disabled === 1,
      createdAt: u.created_at,
      tokens: tokens.filter((t) => t.user === u.name).map((t) => ({ id: t.id, createdAt: t.created_at, lastUsedAt: t.last_used_at, expiresAt: t.expires_at })),
    }));
  }

  async get(name: string): Promise<UserRecord | undefined> {
    return (await this.list()).find((u) => u.name === name);
  }

  /** Adds a user with its first token; conflict when the name is taken. */
  async add(name: string, role: string, token: TokenDigest, wc: WriteContext): Promise<void> {
    checkName(name);
    if (!isRole(role)) throw new FleetError('request.invalid', `role ${JSON.stringify(role.slice(0, 40))} is not one of read-only, operator, admin`);
    await this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const exists = await trx.selectFrom('users').select('name').where('name', '=', name).executeTakeFirst();
      if (exists) throw new FleetError('conflict', `user ${name} exists; issue it a new token with: fleet user token ${name}`);
      await trx.insertInto('users').values({ name, role, disabled: 0, created_at: now, updated_at: now }).execute();
      await this.insertToken(trx, name, token, now);
      await appendEvent(trx, now, { kind: EVENT.userAdded, actor: wc.actor, cause: wc.cause ?? null, details: { user: name, role, token: token.id } });
    });
  }

  /**
   * The first admin: when there is no user at all, `name` (role admin) is
   * created with this token. Returns whether it was. No event: it happens
   * once, at the first start, before anyone could act (the server says it
   * on its output), and event logs start empty as they always did.
   */
  async bootstrap(name: string, token: TokenDigest): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const any = await trx.selectFrom('users').select('name').limit(1).executeTakeFirst();
      if (any) return false;
      const now = this.ctx.nowIso();
      await trx.insertInto('users').values({ name, role: 'admin', disabled: 0, created_at: now, updated_at: now }).execute();
      await this.insertToken(trx, name, token, now);
      return true;
    });
  }

  /**
   * A new token for an existing user; with revokeOthers its other tokens are
   * deleted in the same transaction. Returns how many were revoked.
   */
  async addToken(name: string, token: TokenDigest, opts: { revokeOthers?: boolean }, wc: WriteContext): Promise<number> {
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      await this.mustExist(trx, name);
      let revoked = 0;
      if (opts.revokeOthers) {
        const r = await trx.deleteFrom('user_tokens').where('user', '=', name).executeTakeFirst();
        revoked = Number(r.numDeletedRows);
      }
      await this.insertToken(trx, name, token, now);
      await this.touchUser(trx, name, now);
      await appendEvent(trx, now, { kind: EVENT.userTokenIssued, actor: wc.actor, cause: wc.cause ?? null, details: { user: name, token: token.id, revoked } });
      return revoked;
    });
  }

  /** Removes a user and its tokens; refuses the last enabled admin. */
  async remove(name: string, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const u = await this.mustExist(trx, name);
      await this.keepAnAdmin(trx, u, 'remove');
      await trx.deleteFrom('user_tokens').where('user', '=', name).execute();
      await trx.deleteFrom('users').where('name', '=', name).execute();
      await appendEvent(trx, now, { kind: EVENT.userRemoved, actor: wc.actor, cause: wc.cause ?? null, details: { user: name, role: u.role } });
    });
  }

  /** Disables (its tokens stop working, kept) or enables a user; refuses disabling the last enabled admin. Returns whether it changed. */
  async setDisabled(name: string, disabled: boolean, wc: WriteContext): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const u = await this.mustExist(trx, name);
      if ((u.disabled === 1) === disabled) return false;
      if (disabled) await this.keepAnAdmin(trx, u, 'disable');
      await trx.updateTable('users').set({ disabled: disabled ? 1 : 0, updated_at: now }).where('name', '=', name).execute();
      await appendEvent(trx, now, { kind: disabled ? EVENT.userDisabled : EVENT.userEnabled, actor: wc.actor, cause: wc.cause ?? null, details: { user: name } });
      return true;
    });
  }

  /** The stored tokens whose short id is `id` (usually one), with their users: the caller compares hashes. */
  async candidates(id: string): Promise<TokenCandidate[]> {
    const rows = await this.ctx.q
      .selectFrom('user_tokens')
      .innerJoin('users', 'users.name', 'user_tokens.user')
      .select(['user_tokens.hash', 'user_tokens.user', 'user_tokens.expires_at', 'users.role', 'users.disabled'])
      .where('user_tokens.id', '=', id)
      .execute();
    return rows.map((r) => ({ hash: r.hash, user: r.user, role: r.role, disabled: r.disabled === 1, expiresAt: r.expires_at }));
  }

  /** Records a use of the token (no event: uses are not audit records). */
  async touch(hash: string, at: string): Promise<void> {
    await this.ctx.write(async (trx) => {
      await trx.updateTable('user_tokens').set({ last_used_at: at }).where('hash', '=', hash).execute();
    });
  }

  private async insertToken(trx: Kysely<DB>, user: string, token: TokenDigest, now: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(token.hash) || token.id !== token.hash.slice(0, 8)) throw new FleetError('internal', 'a user token must be stored as its SHA-256 and id');
    await trx.insertInto('user_tokens').values({ hash: token.hash, id: token.id, user, created_at: now, last_used_at: null, expires_at: token.expiresAt ?? null }).execute();
  }

  private async touchUser(trx: Kysely<DB>, name: string, now: string): Promise<void> {
    await trx.updateTable('users').set({ updated_at: now }).where('name', '=', name).execute();
  }

  private async mustExist(trx: Kysely<DB>, name: string): Promise<{ name: string; role: string; disabled: number }> {
    const u = await trx.selectFrom('users').select(['name', 'role', 'disabled']).where('name', '=', name).executeTakeFirst();
    if (!u) throw new FleetError('not_found', `no user ${JSON.stringify(name.slice(0, 80))}`);
    return u;
  }

  private async keepAnAdmin(trx: Kysely<DB>, u: { name: string; role: string; disabled: number }, what: string): Promise<void> {
    if (u.role !== 'admin' || u.disabled === 1) return;
    const others = await trx.selectFrom('users').select('name').where('role', '=', 'admin').where('disabled', '=', 0).where('name', '!=', u.name).limit(1).executeTakeFirst();
    if (!others) throw new FleetError('conflict', `${u.name} is the last enabled admin; add another admin (fleet user add NAME --role admin) before you ${what} it`);
  }
}

import { FleetError } from '../../../common/errors.js';
import { type StoreContext } from '../context.js';
import type { LockRecord } from '../types.js';

/**
 * Per-node conductor locks with leases (DESIGN §6). A lock is a row; its
 * owner renews the lease while working; a lock whose lease expired may be
 * taken by another owner (the takeover of a dead server's nodes). Lock
 * traffic writes no events: it is coordination, not a change of the node.
 */
export class LockRepository {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Takes the node's lock for `ttlMs`, or renews it when `owner` holds it
   * already. Returns false while another owner holds an unexpired lease.
   */
  async acquire(node: string, owner: string, ttlMs: number): Promise<boolean> {
    checkArgs(owner, ttlMs);
    return this.ctx.write(async (trx) => {
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const now = this.ctx.now();
      const nowIso = now.toISOString();
      const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
      const row = await trx.selectFrom('locks').selectAll().where('node', '=', node).executeTakeFirst();
      if (!row) {
        await trx.insertInto('locks').values({ node, owner, acquired_at: nowIso, expires_at: expiresAt }).execute();
        return true;
      }
      if (row.owner !== owner && row.expires_at > nowIso) return false;
      // Compare-and-set on the row as read, so the same code is safe under PostgreSQL's READ COMMITTED.
      const res = await trx
        .updateTable('locks')
        .set({ owner, acquired_at: row.owner === owner ? row.acquired_at : nowIso, expires_at: expiresAt })
        .where('node', '=', node)
        .where('owner', '=', row.owner)
        .where('expires_at', '=', row.expires_at)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    });
  }

  /** Extends the lease of a lock `owner` holds. Returns false when it does not hold it (any more). */
  async renew(node: string, owner: string, ttlMs: number): Promise<boolean> {
    checkArgs(owner, ttlMs);
    return this.ctx.write(async (trx) => {
      const expiresAt = new Date(this.ctx.now().getTime() + ttlMs).toISOString();
      const res = await trx.updateTable('locks').set({ expires_at: expiresAt }).where('node', '=', node).where('owner', '=', owner).executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    });
  }

  /** Releases the lock if `owner` holds it. Returns whether it did. */
  async release(node: string, owner: string): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const res = await trx.deleteFrom('locks').where('node', '=', node).where('owner', '=', owner).executeTakeFirst();
      return Number(res.numDeletedRows) === 1;
    });
  }

  /** Releases every lock of an owner (clean shutdown). Returns how many. */
  async releaseAll(owner: string): Promise<number> {
    return this.ctx.write(async (trx) => {
      const res = await trx.deleteFrom('locks').where('owner', '=', owner).executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }

  async get(node: string): Promise<LockRecord | null> {
    const r = await this.ctx.q.selectFrom('locks').selectAll().where('node', '=', node).executeTakeFirst();
    return r ? { node: r.node, owner: r.owner, acquiredAt: r.acquired_at, expiresAt: r.expires_at } : null;
  }

  /** Locks, optionally of one owner or only those whose lease expired at `expiredAt`. */
  async list(opts: { owner?: string; expiredAt?: Date } = {}): Promise<LockRecord[]> {
    let s = this.ctx.q.selectFrom('locks').selectAll();
    if (opts.owner !== undefined) s = s.where('owner', '=', opts.owner);
    if (opts.expiredAt !== undefined) s = s.where('expires_at', '<=', opts.expiredAt.toISOString());
    const rows = await s.orderBy('node').execute();
    return rows.map((r) => ({ node: r.node, owner: r.owner, acquiredAt: r.acquired_at, expiresAt: r.expires_at }));
  }
}

function checkArgs(owner: string, ttlMs: number): void {
  if (!owner) throw new FleetError('request.invalid', 'lock owner is empty');
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new FleetError('request.invalid', 'lock ttl must be positive');
}

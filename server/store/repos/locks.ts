import { FleetError } from '../../../common/errors.js';
import { type StoreContext } from '../context.js';
import { prepared } from '../prepared.js';
import type { LockRecord } from '../types.js';

/**
 * Per-node conductor locks with leases (DESIGN §6). A lock is a row; its
 * owner renews the lease while working; a lock whose lease expired may be
 * taken by another owner (the takeover of a dead server's nodes). Lock
 * traffic writes no events: it is coordination, not a change of the node.
 */
export class LockRepository {
  constructor(private readonly ctx: StoreContext) {}

  // Taken and released around every BMC step: compiled once (prepared.ts).
  /** The node (null when it does not exist) and its lock row, in one read. */
  private readonly nodeAndLock = prepared<{ node: string }, { name: string; owner: string | null; acquired_at: string | null; expires_at: string | null }>(
    (db, p) =>
      db
        .selectFrom('nodes')
        .leftJoin('locks', 'locks.node', 'nodes.name')
        .select(['nodes.name', 'locks.owner', 'locks.acquired_at', 'locks.expires_at'])
        .where('nodes.name', '=', p('node')),
  );
  private readonly insertLock = prepared<{ node: string; owner: string; acquired_at: string; expires_at: string }, unknown>((db, p) =>
    db.insertInto('locks').values({ node: p('node'), owner: p('owner'), acquired_at: p('acquired_at'), expires_at: p('expires_at') }),
  );
  private readonly takeLock = prepared<{ node: string; owner: string; acquired_at: string; expires_at: string; was_owner: string; was_expires_at: string }, unknown>(
    (db, p) =>
      db
        .updateTable('locks')
        .set({ owner: p('owner'), acquired_at: p('acquired_at'), expires_at: p('expires_at') })
        .where('node', '=', p('node'))
        .where('owner', '=', p('was_owner'))
        .where('expires_at', '=', p('was_expires_at')),
  );
  private readonly renewLock = prepared<{ node: string; owner: string; expires_at: string }, unknown>((db, p) =>
    db.updateTable('locks').set({ expires_at: p('expires_at') }).where('node', '=', p('node')).where('owner', '=', p('owner')),
  );
  private readonly deleteLock = prepared<{ node: string; owner: string }, unknown>((db, p) =>
    db.deleteFrom('locks').where('node', '=', p('node')).where('owner', '=', p('owner')),
  );

  /**
   * Takes the node's lock for `ttlMs`, or renews it when `owner` holds it
   * already. Returns false while another owner holds an unexpired lease.
   */
  async acquire(node: string, owner: string, ttlMs: number): Promise<boolean> {
    checkArgs(owner, ttlMs);
    return this.ctx.write(async (trx) => {
      const row = await this.nodeAndLock.first(trx, { node });
      if (!row) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const now = this.ctx.now();
      const nowIso = now.toISOString();
      const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
      if (row.owner === null || row.acquired_at === null || row.expires_at === null) {
        await this.insertLock.execute(trx, { node, owner, acquired_at: nowIso, expires_at: expiresAt });
        return true;
      }
      if (row.owner !== owner && row.expires_at > nowIso) return false;
      // Compare-and-set on the row as read, so the same code is safe under PostgreSQL's READ COMMITTED.
      const n = await this.takeLock.affected(trx, {
        node,
        owner,
        acquired_at: row.owner === owner ? row.acquired_at : nowIso,
        expires_at: expiresAt,
        was_owner: row.owner,
        was_expires_at: row.expires_at,
      });
      return n === 1;
    });
  }

  /** Extends the lease of a lock `owner` holds. Returns false when it does not hold it (any more). */
  async renew(node: string, owner: string, ttlMs: number): Promise<boolean> {
    checkArgs(owner, ttlMs);
    return this.ctx.write(async (trx) => {
      const expiresAt = new Date(this.ctx.now().getTime() + ttlMs).toISOString();
      return (await this.renewLock.affected(trx, { node, owner, expires_at: expiresAt })) === 1;
    });
  }

  /** Releases the lock if `owner` holds it. Returns whether it did. */
  async release(node: string, owner: string): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      return (await this.deleteLock.affected(trx, { node, owner })) === 1;
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

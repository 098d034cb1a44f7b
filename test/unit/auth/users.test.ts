/**
 * API users' tokens (server/auth/users.ts, server/store/repos/users.ts)
 * against a real store: only the SHA-256 is stored; a token finds its user;
 * a wrong, removed, disabled or expired one is refused (401); the last
 * enabled admin stays; the first start's api.token becomes admin's once.
 * The comparison is constant-time by construction (timingSafeEqual over
 * SHA-256 digests), which no timed test could show; here: the candidate rows
 * come by the short id and the full hash decides.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { adoptApiToken, authenticate, authorize, bootstrapAdmin, digestToken, newUserToken, parseExpiry } from '../../../server/auth/users.js';
import { openStore, type Store } from '../../../server/store/index.js';

const NOW = new Date('2026-12-07T12:00:00.000Z');
const bearer = (t: string) => `Bearer ${t}`;

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FleetError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'accepted';
}

describe('user tokens', () => {
  let store: Store;
  beforeEach(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32), clock: () => NOW });
  });
  afterEach(async () => store.close());

  it('a token is 32 random bytes; the store keeps its SHA-256 and the first 8 hex digits as id', async () => {
    const t = newUserToken();
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    expect(newUserToken()).not.toBe(t);
    const d = digestToken(t);
    expect(d.hash).toBe(createHash('sha256').update(t).digest('hex'));
    expect(d.id).toBe(d.hash.slice(0, 8));
    await store.users.add('alice', 'operator', d, { actor: 'test' });
    const dump = JSON.stringify([await store.users.list(), (await store.events.list({ limit: 100 })).events]);
    expect(dump).not.toContain(t);
    expect(dump).not.toContain(d.hash);
    expect(dump).toContain(d.id);
  });

  it('finds the user of a token; refuses a missing, malformed or wrong one', async () => {
    const t = newUserToken();
    await store.users.add('alice', 'operator', digestToken(t), { actor: 'test' });
    expect(await authenticate(store.users, bearer(t), NOW)).toEqual({ user: 'alice', role: 'operator', tokenId: digestToken(t).id, hash: digestToken(t).hash });
    expect(await refusal(authenticate(store.users, undefined, NOW))).toMatch(/^auth\.missing:/);
    expect(await refusal(authenticate(store.users, '', NOW))).toMatch(/^auth\.missing:/);
    expect(await refusal(authenticate(store.users, `Basic ${t}`, NOW))).toBe('auth.invalid: invalid API token');
    expect(await refusal(authenticate(store.users, bearer(newUserToken()), NOW))).toBe('auth.invalid: invalid API token');
    expect(await refusal(authenticate(store.users, bearer(t.slice(0, -1)), NOW))).toBe('auth.invalid: invalid API token');
  });

  it('a short id shared by two tokens: the full hash decides', async () => {
    const t = newUserToken();
    const d = digestToken(t);
    const twin = { hash: d.id + 'f'.repeat(56), user: 'mallory', role: 'admin', disabled: false, expiresAt: null };
    const mine = { hash: d.hash, user: 'alice', role: 'read-only', disabled: false, expiresAt: null };
    for (const rows of [[twin, mine], [mine, twin]]) {
      expect((await authenticate({ candidates: async () => rows }, bearer(t), NOW)).user).toBe('alice');
    }
    expect(await refusal(authenticate({ candidates: async () => [twin] }, bearer(t), NOW))).toBe('auth.invalid: invalid API token');
  });

  it('refuses the token of a removed user, a disabled user, and an expired token', async () => {
    const [a, b, c, admin] = [newUserToken(), newUserToken(), newUserToken(), newUserToken()];
    await store.users.add('root', 'admin', digestToken(admin), { actor: 'test' });
    await store.users.add('gone', 'operator', digestToken(a), { actor: 'test' });
    await store.users.add('off', 'read-only', digestToken(b), { actor: 'test' });
    await store.users.add('old', 'read-only', digestToken(c, '2026-12-07T11:59:59.000Z'), { actor: 'test' });
    await store.users.remove('gone', { actor: 'test' });
    expect(await refusal(authenticate(store.users, bearer(a), NOW))).toBe('auth.invalid: invalid API token');
    expect(await store.users.setDisabled('off', true, { actor: 'test' })).toBe(true);
    expect(await refusal(authenticate(store.users, bearer(b), NOW))).toBe(`auth.invalid: API token ${digestToken(b).id}: user off is disabled`);
    await store.users.setDisabled('off', false, { actor: 'test' });
    expect((await authenticate(store.users, bearer(b), NOW)).user).toBe('off');
    expect(await refusal(authenticate(store.users, bearer(c), NOW))).toMatch(/^auth\.invalid: API token \w{8} of user old expired at 2026-12-07T11:59:59\.000Z/);
    expect((await authenticate(store.users, bearer(c), new Date('2026-12-07T11:00:00Z'))).user).toBe('old');
  });

  it('a new token, with --revoke-others: the old ones stop working', async () => {
    const [t1, t2, t3] = [newUserToken(), newUserToken(), newUserToken()];
    await store.users.add('ci', 'operator', digestToken(t1), { actor: 'test' });
    expect(await store.users.addToken('ci', digestToken(t2), {}, { actor: 'test' })).toBe(0);
    expect((await authenticate(store.users, bearer(t1), NOW)).user).toBe('ci');
    expect(await store.users.addToken('ci', digestToken(t3), { revokeOthers: true }, { actor: 'test' })).toBe(2);
    for (const t of [t1, t2]) expect(await refusal(authenticate(store.users, bearer(t), NOW))).toBe('auth.invalid: invalid API token');
    expect((await authenticate(store.users, bearer(t3), NOW)).user).toBe('ci');
    expect((await store.users.get('ci'))!.tokens.map((t) => t.id)).toEqual([digestToken(t3).id]);
    expect(await refusal(store.users.addToken('nobody', digestToken(newUserToken()), {}, { actor: 'test' }))).toBe('not_found: no user "nobody"');
  });

  it('refuses bad names, bad roles and a taken name, changing nothing', async () => {
    await store.users.add('alice', 'admin', digestToken(newUserToken()), { actor: 'test' });
    expect(await refusal(store.users.add('Alice Smith', 'admin', digestToken(newUserToken()), { actor: 'test' }))).toMatch(/^request\.invalid: user name "Alice Smith" is not valid/);
    expect(await refusal(store.users.add('bob', 'root', digestToken(newUserToken()), { actor: 'test' }))).toMatch(/^request\.invalid: role "root"/);
    expect(await refusal(store.users.add('alice', 'read-only', digestToken(newUserToken()), { actor: 'test' }))).toMatch(/^conflict: user alice exists/);
    expect((await store.users.list()).map((u) => [u.name, u.role, u.tokens.length])).toEqual([['alice', 'admin', 1]]);
  });

  it('keeps the last enabled admin: neither removed nor disabled; with another admin it may go', async () => {
    await store.users.add('admin', 'admin', digestToken(newUserToken()), { actor: 'test' });
    await store.users.add('ro', 'read-only', digestToken(newUserToken()), { actor: 'test' });
    expect(await refusal(store.users.remove('admin', { actor: 'test' }))).toMatch(/^conflict: admin is the last enabled admin/);
    expect(await refusal(store.users.setDisabled('admin', true, { actor: 'test' }))).toMatch(/^conflict: admin is the last enabled admin/);
    await store.users.add('second', 'admin', digestToken(newUserToken()), { actor: 'test' });
    await store.users.setDisabled('second', true, { actor: 'test' });
    // A disabled admin does not count.
    expect(await refusal(store.users.remove('admin', { actor: 'test' }))).toMatch(/^conflict: admin is the last enabled admin/);
    await store.users.setDisabled('second', false, { actor: 'test' });
    await store.users.remove('admin', { actor: 'test' });
    await store.users.remove('ro', { actor: 'test' });
    expect((await store.users.list()).map((u) => u.name)).toEqual(['second']);
    const kinds = (await store.events.list({ limit: 100 })).events.map((e) => `${e.kind} ${(e.details as { user: string }).user}`);
    expect(kinds).toEqual(expect.arrayContaining([`${EVENT.userRemoved} admin`, `${EVENT.userDisabled} second`, `${EVENT.userEnabled} second`]));
  });

  it('the first start: api.token becomes admin\'s once; a recreated api.token is added to admin; a revoked one stays revoked', async () => {
    const first = newUserToken();
    expect(await adoptApiToken(store.users, first, true)).toBe('bootstrapped');
    expect(await authenticate(store.users, bearer(first), NOW)).toMatchObject({ user: 'admin', role: 'admin' });
    expect(await adoptApiToken(store.users, first, false)).toBe('kept');
    expect(await bootstrapAdmin(store.users, newUserToken())).toBe(false);
    // Revoked (fleet user token admin --revoke-others): a restart does not bring it back.
    await store.users.addToken('admin', digestToken(newUserToken()), { revokeOthers: true }, { actor: 'test' });
    expect(await adoptApiToken(store.users, first, false)).toBe('kept');
    expect(await refusal(authenticate(store.users, bearer(first), NOW))).toBe('auth.invalid: invalid API token');
    // The file deleted and recreated at a start (lost admin token): the new one is admin's.
    const again = newUserToken();
    expect(await adoptApiToken(store.users, again, true)).toBe('reissued');
    expect((await authenticate(store.users, bearer(again), NOW)).user).toBe('admin');
    const added = (await store.events.list({ kinds: [EVENT.userAdded] })).events;
    // The first start writes no event (event logs start empty); the recreated file's token is an audit record.
    expect(added).toEqual([]);
    const issued = (await store.events.list({ kinds: [EVENT.userTokenIssued] })).events.map((e) => [e.actor, e.cause, e.details]);
    expect(issued.at(-1)).toEqual(['system', 'api.token recreated', { user: 'admin', token: digestToken(again).id, revoked: 0 }]);
  });

  it('a recreated api.token with no user admin left works for nobody', async () => {
    await store.users.add('root', 'admin', digestToken(newUserToken()), { actor: 'test' });
    const t = newUserToken();
    expect(await adoptApiToken(store.users, t, true)).toBe('unowned');
    expect(await refusal(authenticate(store.users, bearer(t), NOW))).toBe('auth.invalid: invalid API token');
  });

  it('authorize: 403 below the route\'s role', () => {
    expect(() => authorize({ user: 'u', role: 'operator' }, 'operator', 'POST /api/v1/power')).not.toThrow();
    const e = (() => {
      try {
        authorize({ user: 'u', role: 'operator' }, 'admin', 'POST /api/v1/apply');
      } catch (err) {
        return err as FleetError;
      }
    })();
    expect(e?.code).toBe('auth.forbidden');
    expect(e?.http).toBe(403);
  });

  it('parses expiries: durations and ISO dates in the future; anything else is refused', () => {
    expect(parseExpiry('90d', NOW)).toBe('2027-03-07T12:00:00.000Z');
    expect(parseExpiry('30m', NOW)).toBe('2026-12-07T12:30:00.000Z');
    expect(parseExpiry('2027-01-01', NOW)).toBe('2027-01-01T00:00:00.000Z');
    for (const bad of ['0d', '2020-01-01', 'soon', '5y', '']) expect(() => parseExpiry(bad, NOW)).toThrow(FleetError);
  });
});

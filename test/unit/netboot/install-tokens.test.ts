/**
 * Install tokens (issue 9): the pure rules (which token is accepted, when a
 * fetch is served the outstanding token again, when an agent may enrol,
 * which lifecycle events revoke) and the token repository on a real SQLite
 * file: one outstanding token per node and purpose, sealed plaintext served
 * again, revocation, the address of each use, and migration 005 on a data
 * dir of an older server.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { ADOPTION_STATES, ENROLMENT_STATES, enrolmentRefusal } from '../../../server/agents/enroll-policy.js';
import { TOKEN_REVOKING_EVENTS } from '../../../server/lifecycle/conductor.js';
import { FACT as SIGNAL } from '../../../server/lifecycle/facts.js';
import { ALL_EVENTS, ALL_STATES, S } from '../../../server/lifecycle/states.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';
import type { ProfileSpec } from '../../../server/model.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { planFetchToken, tokenRefusal, type TokenFacts } from '../../../server/store/repos/token-policy.js';

const T0 = Date.parse('2026-01-10T08:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

describe('tokenRefusal (pure)', () => {
  const row: TokenFacts = { node: 'n1', purpose: 'install', expiresAt: iso(T0 + HOUR), usedAt: null, revokedAt: null, revokedReason: null };
  const now = iso(T0);
  const cases: [string, TokenFacts | undefined, { purpose: string; node?: string }, string | null, RegExp?][] = [
    ['a live token of the node', row, { purpose: 'install', node: 'n1' }, null],
    ['a live token, node not asked', row, { purpose: 'install' }, null],
    ['no such token', undefined, { purpose: 'install', node: 'n1' }, 'auth.invalid', /unknown token/],
    ['a token of another purpose looks unknown', row, { purpose: 'enrol', node: 'n1' }, 'auth.invalid', /unknown token/],
    ["another node's token", row, { purpose: 'install', node: 'n2' }, 'token.wrong_node', /does not belong to n2/],
    ['a used token (replay)', { ...row, usedAt: iso(T0 - 1) }, { purpose: 'install', node: 'n1' }, 'token.used', /already used/],
    ['a revoked token', { ...row, revokedAt: iso(T0 - 1), revokedReason: 'cancel' }, { purpose: 'install', node: 'n1' }, 'token.revoked', /revoked at .* \(cancel\)/],
    ['an expired token', { ...row, expiresAt: now }, { purpose: 'install', node: 'n1' }, 'token.expired', /expired at/],
    ["another node's revoked token says wrong node first", { ...row, revokedAt: iso(T0) }, { purpose: 'install', node: 'n2' }, 'token.wrong_node'],
  ];
  it.each(cases)('%s', (_what, r, want, code, message) => {
    const e = tokenRefusal(r, { ...want, now });
    if (code === null) expect(e).toBeNull();
    else {
      expect(e).toBeInstanceOf(FleetError);
      expect(e!.code).toBe(code);
      if (message) expect(e!.message).toMatch(message);
    }
  });
});

describe('planFetchToken (pure)', () => {
  const ttl = 2 * HOUR;
  const now = iso(T0);
  it('no outstanding token: issue one', () => {
    expect(planFetchToken(undefined, now, ttl)).toEqual({ action: 'issue' });
  });
  it('a live token with its plaintext and most of its life left is served again', () => {
    expect(planFetchToken({ createdAt: iso(T0 - 60_000), expiresAt: iso(T0 + ttl - 60_000), plaintextKnown: true }, now, ttl)).toEqual({ action: 'reuse' });
    expect(planFetchToken({ createdAt: iso(T0 - HOUR), expiresAt: iso(T0 + HOUR), plaintextKnown: true }, now, ttl)).toEqual({ action: 'reuse' });
  });
  it('less than half its life left: renewed (the old one revoked)', () => {
    expect(planFetchToken({ createdAt: iso(T0 - HOUR - 1), expiresAt: iso(T0 + HOUR - 1), plaintextKnown: true }, now, ttl)).toEqual({
      action: 'issue',
      revoke: expect.stringMatching(/^renewed/),
    });
  });
  it('expired, or plaintext not kept: a new one, the old one revoked with the reason', () => {
    expect(planFetchToken({ createdAt: iso(T0 - ttl), expiresAt: now, plaintextKnown: true }, now, ttl)).toEqual({ action: 'issue', revoke: 'expired' });
    expect(planFetchToken({ createdAt: iso(T0), expiresAt: iso(T0 + ttl), plaintextKnown: false }, now, ttl)).toEqual({
      action: 'issue',
      revoke: expect.stringMatching(/plaintext is not kept/),
    });
  });
});

describe('enrolmentRefusal (pure)', () => {
  it('allows exactly power-cycling, netbooting and installing, armed, and adopting (fleet adopt; never armed)', () => {
    const allowed = ALL_STATES.filter((state) => enrolmentRefusal({ name: 'n1', state, armed: true }) === null);
    expect(allowed).toEqual(['power-cycling', 'netbooting', 'installing', 'adopting']);
    expect([...ENROLMENT_STATES, ...ADOPTION_STATES]).toEqual(allowed);
    expect(ALL_STATES.filter((state) => enrolmentRefusal({ name: 'n1', state, armed: false }) === null)).toEqual(['adopting']);
  });
  it.each(ALL_STATES.filter((s) => !ENROLMENT_STATES.includes(s) && !ADOPTION_STATES.includes(s)))('%s is refused with enroll.not_installing, naming the state', (state) => {
    const e = enrolmentRefusal({ name: 'n1', state, armed: true });
    expect(e?.code).toBe('enroll.not_installing');
    expect(e?.message).toContain(`node n1 is ${state}, not installing`);
    expect(e?.details).toEqual({ node: 'n1', state });
  });
  it('a stateless node enrols at every boot: any state, armed or not (its token came with the stateless plan)', () => {
    for (const armed of [true, false]) expect(ALL_STATES.filter((state) => enrolmentRefusal({ name: 'n1', state, armed }, { stateless: true }) !== null)).toEqual([]);
    expect(enrolmentRefusal({ name: 'n1', state: 'ready', armed: false }, { stateless: false })?.code).toBe('enroll.not_installing');
  });
  it('an install state without the armed flag is refused', () => {
    const e = enrolmentRefusal({ name: 'n1', state: 'installing', armed: false });
    expect(e?.code).toBe('enroll.not_installing');
    expect(e?.message).toMatch(/not armed/);
  });
  it('an unknown state (written by another version) is refused', () => {
    expect(enrolmentRefusal({ name: 'n1', state: 'provisioning', armed: true })?.code).toBe('enroll.not_installing');
  });
});

describe('lifecycle events that revoke tokens', () => {
  it('are reinstall, cancel, fail and finish; the others keep the run going', () => {
    expect(ALL_EVENTS.filter((e) => TOKEN_REVOKING_EVENTS.has(e)).sort()).toEqual(['cancel', 'fail', 'finish', 'reinstall']);
  });
});

// ---------------------------------------------------------------- the repository

const profile: ProfileSpec = { name: 'compute', os: { install: 'kickstart', tree: 'http://10.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };

describe('TokenRepository', () => {
  let dir: string;
  let nowMs: number;
  const key = crypto.randomBytes(32);
  const stores: Store[] = [];
  const clock = () => new Date(nowMs);
  const file = () => path.join(dir, 'fleet.db');

  async function open(secretKey = key): Promise<Store> {
    const s = await openStore({ file: file() }, { secretKey, clock });
    stores.push(s);
    return s;
  }
  async function seeded(): Promise<Store> {
    const s = await open();
    await s.profiles.upsert(profile, { actor: 'test' });
    for (const name of ['n1', 'n2']) await s.nodes.upsert({ name, profile: 'compute', macs: [], pet: false }, { actor: 'test' });
    return s;
  }
  async function expectCode(p: Promise<unknown>, code: string): Promise<FleetError> {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e, `expected ${code}`).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe(code);
    return e as FleetError;
  }
  const rows = (where = '') => {
    const db = new Database(file(), { readonly: true });
    try {
      return db.prepare(`select * from tokens ${where} order by rowid`).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-tokens-'));
    nowMs = T0;
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('current() serves the outstanding token again, across a restart, and never holds two', async () => {
    let s = await seeded();
    const a = await s.tokens.current('n1', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot', ip: '10.0.0.5' });
    expect(a.reused).toBe(false);
    nowMs += 10 * 60_000;
    const b = await s.tokens.current('n1', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot', ip: '10.0.0.5' });
    expect(b).toMatchObject({ token: a.token, reused: true, expiresAt: a.expiresAt });
    // The plaintext is sealed, never in clear; it survives a restart of the server.
    expect(JSON.stringify(rows())).not.toContain(a.token);
    await s.close();
    s = await open();
    expect((await s.tokens.current('n1', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot' })).token).toBe(a.token);
    expect(await s.tokens.outstandingOf('n1')).toHaveLength(1);
    expect((await s.events.list({ kinds: ['token.issued'], limit: 100 })).events).toHaveLength(1);
    // Other purposes and other nodes have their own.
    const e = await s.tokens.current('n1', { ttlMs: 2 * HOUR, actor: 'netboot' });
    const other = await s.tokens.current('n2', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot' });
    expect(new Set([a.token, e.token, other.token]).size).toBe(3);
    expect((await s.tokens.outstandingOf('n1')).map((t) => t.purpose)).toEqual(['enrol', 'install']);
  });

  it('a token sealed with another key (secret.key replaced) is revoked and replaced, not served', async () => {
    let s = await seeded();
    const a = await s.tokens.current('n1', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot' });
    await s.close();
    s = await open(crypto.randomBytes(32));
    const b = await s.tokens.current('n1', { ttlMs: 2 * HOUR, purpose: 'install', actor: 'netboot' });
    expect(b.reused).toBe(false);
    expect(b.token).not.toBe(a.token);
    const e = await expectCode(s.tokens.verify(a.token, { node: 'n1', purpose: 'install' }), 'token.revoked');
    expect(e.message).toMatch(/plaintext is not kept/);
    expect(await s.tokens.outstandingOf('n1')).toHaveLength(1);
  });

  it('issue() supersedes the outstanding token; the database refuses a second outstanding one', async () => {
    const s = await seeded();
    const a = await s.tokens.issue('n1', { ttlMs: HOUR, actor: 'test' });
    const b = await s.tokens.issue('n1', { ttlMs: HOUR, actor: 'test' });
    await expectCode(s.tokens.consume(a.token, { node: 'n1' }), 'token.revoked');
    expect(await s.tokens.consume(b.token, { node: 'n1' })).toMatchObject({ node: 'n1' });
    // The invariant is the schema's too: a raw second outstanding row is refused.
    await s.tokens.issue('n1', { ttlMs: HOUR, actor: 'test' });
    const db = new Database(file());
    try {
      expect(() =>
        db
          .prepare("insert into tokens (hash, node, purpose, created_at, expires_at) values ('x', 'n1', 'enrol', ?, ?)")
          .run(iso(nowMs), iso(nowMs + HOUR)),
      ).toThrow(/UNIQUE/);
    } finally {
      db.close();
    }
  });

  it('revokeAll() revokes every outstanding token of the node (all purposes), once, with the reason; used ones stay used', async () => {
    const s = await seeded();
    const install = await s.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    const enrol = await s.tokens.current('n1', { ttlMs: HOUR, actor: 'netboot' });
    const keep = await s.tokens.current('n2', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    await s.tokens.consume(enrol.token, { node: 'n1' });
    expect(await s.tokens.revokeAll('n1', { actor: 'conductor', reason: 'cancel' })).toBe(1);
    expect(await s.tokens.revokeAll('n1', { actor: 'conductor', reason: 'cancel' })).toBe(0);
    const e = await expectCode(s.tokens.verify(install.token, { node: 'n1', purpose: 'install' }), 'token.revoked');
    expect(e.message).toMatch(/\(cancel\)$/);
    await expectCode(s.tokens.consume(enrol.token, { node: 'n1' }), 'token.used');
    await s.tokens.verify(keep.token, { node: 'n2', purpose: 'install' });
    const ev = (await s.events.list({ kinds: ['token.revoked'], limit: 100 })).events;
    expect(ev.map((x) => [x.node, x.details])).toEqual([['n1', { reason: 'cancel', purposes: ['install'], count: 1 }]]);
    // Revoked rows carry no sealed plaintext; a fetch afterwards gets a new token.
    expect(rows("where revoked_at is not null").every((r) => r.sealed === null)).toBe(true);
    const next = await s.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    expect(next.reused).toBe(false);
    expect(next.token).not.toBe(install.token);
  });

  it('each use records its address: verify keeps the last one, consume writes it (and a change) in token.used', async () => {
    const s = await seeded();
    const t = await s.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    const before = await s.events.lastId();
    expect((await s.tokens.verify(t.token, { node: 'n1', purpose: 'install' })).previousIp).toBeNull();
    expect(await s.events.lastId()).toBe(before); // without an address, verify writes nothing
    expect((await s.tokens.verify(t.token, { node: 'n1', purpose: 'install', ip: '10.0.0.5' })).previousIp).toBeNull();
    expect((await s.tokens.verify(t.token, { node: 'n1', purpose: 'install', ip: '10.0.0.5' })).previousIp).toBe('10.0.0.5');
    expect(rows()[0]).toMatchObject({ last_ip: '10.0.0.5', last_used_at: iso(nowMs) });
    expect((await s.tokens.consume(t.token, { node: 'n1', purpose: 'install', actor: 'netboot', ip: '10.0.0.99' })).previousIp).toBe('10.0.0.5');
    const [used] = (await s.events.list({ kinds: ['token.used'], limit: 10 })).events;
    expect(used!.details).toEqual({ purpose: 'install', ip: '10.0.0.99', previousIp: '10.0.0.5' });
  });

  it('purge() deletes used, revoked and expired tokens, keeps outstanding ones', async () => {
    const s = await seeded();
    const a = await s.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    await s.tokens.current('n1', { ttlMs: HOUR, actor: 'netboot' });
    await s.tokens.issue('n2', { ttlMs: HOUR, actor: 'netboot' });
    await s.tokens.issue('n2', { ttlMs: HOUR, actor: 'netboot' }); // revokes the first of n2
    await s.tokens.consume(a.token, { node: 'n1', purpose: 'install' });
    nowMs += 1;
    expect(await s.tokens.purge()).toBe(2);
    expect(rows()).toHaveLength(2);
  });

  it('migration 005 keeps the newest outstanding token per node and purpose of an older data dir', async () => {
    let s = await seeded();
    await s.close();
    // Back to the schema of an older server: no 005 (nor the later ones: Kysely runs them in order), several outstanding tokens per node.
    const db = new Database(file());
    try {
      // Later migrations' records go too: Kysely runs them in order (node_flags is created again; secrets ifNotExists).
      db.exec("drop index tokens_one_outstanding; drop table node_flags; delete from kysely_migration where name >= '005'");
      for (const c of ['sealed', 'key_id', 'revoked_at', 'revoked_reason', 'last_ip', 'last_used_at']) db.exec(`alter table tokens drop column ${c}`);
      const ins = db.prepare('insert into tokens (hash, node, purpose, created_at, expires_at, used_at) values (?, ?, ?, ?, ?, ?)');
      const hash = (t: string) => crypto.createHash('sha256').update(t).digest('hex');
      ins.run(hash('old-install-1'), 'n1', 'install', iso(T0 - 3000), iso(T0 + HOUR), null);
      ins.run(hash('old-install-2'), 'n1', 'install', iso(T0 - 2000), iso(T0 + HOUR), null);
      ins.run(hash('old-enrol-used'), 'n1', 'enrol', iso(T0 - 2000), iso(T0 + HOUR), iso(T0 - 1000));
      ins.run(hash('old-enrol'), 'n1', 'enrol', iso(T0 - 1000), iso(T0 + HOUR), null);
    } finally {
      db.close();
    }
    s = await open();
    expect(await s.appliedMigrations()).toContain('005_install_tokens');
    await expectCode(s.tokens.verify('old-install-1', { node: 'n1', purpose: 'install' }), 'token.revoked');
    expect(await s.tokens.verify('old-install-2', { node: 'n1', purpose: 'install' })).toMatchObject({ node: 'n1' });
    expect(await s.tokens.verify('old-enrol', { node: 'n1' })).toMatchObject({ node: 'n1' });
    await expectCode(s.tokens.verify('old-enrol-used', { node: 'n1' }), 'token.used');
    // Its plaintext is not kept: a fetch replaces it instead of serving it.
    const t = await s.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    expect(t.reused).toBe(false);
    await expectCode(s.tokens.verify('old-install-2', { node: 'n1', purpose: 'install' }), 'token.revoked');
  });
});

// ---------------------------------------------------------------- the conductor revokes

describe('conductor: cancel, fail and a new reinstall revoke the node\'s tokens', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** n1 installing (reinstall → power cycle → script → kickstart) with its install and enrolment tokens outstanding. */
  async function installing(x: Harness): Promise<{ install: string; enrol: string }> {
    const [r] = await x.c.reinstall(['n1'], { actor: 'tester' });
    expect(r?.ok, r?.error?.message).toBe(true);
    await x.c.tick();
    await x.c.idle();
    const install = (await x.store.tokens.current('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' })).token;
    await x.fact('n1', SIGNAL.scriptFetched, { decision: 'install', mac: '52:54:00:00:00:01' });
    const enrol = (await x.store.tokens.current('n1', { ttlMs: HOUR, actor: 'netboot' })).token;
    await x.fact('n1', SIGNAL.kickstartFetched, {});
    await x.fact('n1', SIGNAL.installStarted, {}); // keeps the run going: revokes nothing
    await x.c.idle();
    expect((await x.store.nodes.require('n1')).state).toBe(S.installing);
    expect((await x.store.tokens.outstandingOf('n1')).map((t) => t.purpose)).toEqual(['enrol', 'install']);
    return { install, enrol };
  }

  async function revokedWith(x: Harness, token: string, purpose: string | undefined, reason: string): Promise<void> {
    const e = await x.store.tokens.verify(token, { node: 'n1', ...(purpose ? { purpose } : {}) }).then(
      () => undefined,
      (err: unknown) => err as FleetError,
    );
    expect(e?.code).toBe('token.revoked');
    expect(e?.message).toContain(`(${reason})`);
  }

  it('cancel during the install', async () => {
    h = await harness();
    const t = await installing(h);
    const [r] = await h.c.cancel(['n1'], { actor: 'tester' });
    expect(r?.ok).toBe(true);
    expect(await h.store.tokens.outstandingOf('n1')).toEqual([]);
    await revokedWith(h, t.install, 'install', 'cancel');
    await revokedWith(h, t.enrol, undefined, 'cancel');
    const [ev] = (await h.store.events.list({ node: 'n1', kinds: ['token.revoked'], limit: 10 })).events;
    expect(ev).toMatchObject({ actor: 'tester', cause: 'cancel', details: { reason: 'cancel', purposes: ['enrol', 'install'], count: 2 } });
  });

  it('install-failed (fail)', async () => {
    h = await harness();
    const t = await installing(h);
    await h.fact('n1', SIGNAL.installFailed, { message: 'disk full' });
    await h.c.idle();
    expect((await h.store.nodes.require('n1')).state).toBe(S.failed);
    await revokedWith(h, t.install, 'install', 'fail');
    await revokedWith(h, t.enrol, undefined, 'fail');
  });

  it('a new reinstall of a resting node that still holds a token', async () => {
    h = await harness();
    await h.put('n1', S.ready);
    const old = await h.store.tokens.issue('n1', { ttlMs: HOUR, purpose: 'install', actor: 'netboot' });
    const [r] = await h.c.reinstall(['n1'], { actor: 'tester' });
    expect(r?.ok).toBe(true);
    await revokedWith(h, old.token, 'install', 'reinstall');
    expect(await h.store.tokens.outstandingOf('n1')).toEqual([]);
  });

  it('install-finished: the conductor leaves no token either (the boot route revoked them already)', async () => {
    h = await harness();
    const t = await installing(h);
    await h.fact('n1', SIGNAL.installFinished, {});
    await h.c.idle();
    expect((await h.store.nodes.require('n1')).state).not.toBe(S.installing);
    await revokedWith(h, t.enrol, undefined, 'finish');
  });
});

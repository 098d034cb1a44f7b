import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES, postgresCluster, type EngineName, type RawDb } from './engines.js';

const SECRET = 'Tr0ub4dor&3-very-secret-9f8e7d';
const USERNAME = 'bmc-operator-x';

const stores: Store[] = [];
const keyA = crypto.randomBytes(32);
const keyB = crypto.randomBytes(32);

/** Every file under dir (the PostgreSQL cluster's database directory, its WAL). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/**
 * Every byte the engine keeps for this database: SQLite's main file, WAL and shared memory;
 * PostgreSQL's files of the database (after a CHECKPOINT wrote its pages out) and the cluster's WAL.
 */
async function dbBytes(engine: EngineName, file: string, raw: () => Promise<RawDb>): Promise<Buffer> {
  if (engine === 'sqlite') {
    return Buffer.concat(['', '-wal', '-shm'].map((suffix) => (fs.existsSync(file + suffix) ? fs.readFileSync(file + suffix) : Buffer.alloc(0))));
  }
  const r = await raw();
  await r.exec('CHECKPOINT');
  const [{ oid }] = (await r.all<{ oid: number }>('select oid from pg_database where datname = current_database()')) as [{ oid: number }];
  const data = path.join(postgresCluster().dir, 'data');
  const files = [...filesUnder(path.join(data, 'base', String(oid))), ...filesUnder(path.join(data, 'pg_wal'))];
  return Buffer.concat(files.map((f) => fs.readFileSync(f)));
}

async function caught(p: Promise<unknown>): Promise<FleetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FleetError);
  return e as FleetError;
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

describe.each(ENGINES)('credentials at rest on %s', (engine) => {
  const h = engineHarness(engine);
  let file = '';
  beforeEach(() => {
    file = path.join(h.dir, 'fleet.db');
  });

  async function open(key = keyA): Promise<Store> {
    const s = await openStore(await h.location(), { secretKey: key });
    stores.push(s);
    return s;
  }

  it('never writes the plaintext secret to the database files', async () => {
    const s = await open();
    await s.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 'test' });
    await s.credentials.upsert('ipmi-admin', USERNAME, SECRET + '-v2', { actor: 'test' });
    // While open (the WAL holds the pages) and after close (checkpointed into the main file).
    for (const phase of ['open', 'closed']) {
      if (phase === 'closed') await s.close();
      const bytes = await dbBytes(engine, file, () => h.raw());
      // Positive control: the scan does see what is stored in clear.
      expect(bytes.includes(Buffer.from(USERNAME, 'utf8')), phase).toBe(true);
      expect(bytes.includes(Buffer.from(SECRET, 'utf8')), phase).toBe(false);
      expect(bytes.includes(Buffer.from(SECRET, 'utf16le')), phase).toBe(false);
      expect(bytes.includes(Buffer.from('very-secret', 'utf8')), phase).toBe(false);
    }
  });

  it('list, get and events never carry the secret; revealSecret does', async () => {
    const s = await open();
    expect((await s.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 't' })).action).toBe('added');
    expect((await s.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 't' })).action).toBe('unchanged');
    const changed = await s.credentials.upsert('ipmi-admin', 'root', SECRET + '2', { actor: 't' });
    expect(changed).toEqual({ action: 'changed', usernameChanged: true, secretChanged: true });
    const list = await s.credentials.list();
    expect(list).toHaveLength(1);
    expect(Object.keys(list[0]!).sort()).toEqual(['createdAt', 'name', 'updatedAt', 'username']);
    expect(JSON.stringify(list)).not.toContain(SECRET);
    expect(JSON.stringify(await s.credentials.get('ipmi-admin'))).not.toContain(SECRET);
    const { events } = await s.events.list({ kinds: ['credential.added', 'credential.changed'] });
    expect(events.map((e) => e.kind)).toEqual(['credential.added', 'credential.changed']);
    expect(events[1]!.details).toEqual({ credential: 'ipmi-admin', username: { from: USERNAME, to: 'root' }, secretChanged: true });
    expect(JSON.stringify(events)).not.toContain(SECRET);
    expect(await s.credentials.revealSecret('ipmi-admin')).toEqual({ name: 'ipmi-admin', username: 'root', secret: SECRET + '2' });
    const notFound = await caught(s.credentials.revealSecret('nope'));
    expect(notFound.code).toBe('not_found');
  });

  it('the digest is keyed: same secret, other key, other digest; never the plaintext', async () => {
    const a = await open(keyA);
    const b = await openStore(await h.fresh('b'), { secretKey: keyB });
    stores.push(b);
    expect(a.credentials.digest(SECRET)).toBe(a.credentials.digest(SECRET));
    expect(a.credentials.digest(SECRET)).not.toBe(b.credentials.digest(SECRET));
    expect(a.credentials.digest(SECRET)).not.toBe(crypto.createHash('sha256').update(SECRET).digest('hex'));
    expect(a.credentials.digest(SECRET)).not.toContain(SECRET);
  });

  it('opening with another key fails with a clear error, and re-applying heals', async () => {
    const a = await open(keyA);
    await a.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 't' });
    await a.close();
    const b = await open(keyB);
    const e = await caught(b.credentials.revealSecret('ipmi-admin'));
    expect(e.code).toBe('internal');
    expect(e.message).toMatch(/encrypted with another secret key/);
    expect(e.message).not.toContain(SECRET);
    // Upserting the same secret under the new key counts as a change (re-seal).
    expect((await b.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 't' })).secretChanged).toBe(true);
    expect((await b.credentials.revealSecret('ipmi-admin')).secret).toBe(SECRET);
  });

  it('a tampered or swapped ciphertext fails authentication', async () => {
    const s = await open();
    await s.credentials.upsert('one', 'u1', 'secret-one', { actor: 't' });
    await s.credentials.upsert('two', 'u2', 'secret-two', { actor: 't' });
    const raw = await h.raw();
    // Swap the boxes: each is bound to its credential name.
    const rows = await raw.all<{ name: string; secret_box: Buffer }>('select name, secret_box from credentials order by name');
    await raw.all('update credentials set secret_box = ? where name = ?', [rows[1]!.secret_box, 'one']);
    await raw.all('update credentials set secret_box = ? where name = ?', [rows[0]!.secret_box, 'two']);
    expect((await caught(s.credentials.revealSecret('one'))).message).toMatch(/authentication failed/);
    const box = Buffer.from((await raw.all<{ secret_box: Buffer }>("select secret_box from credentials where name = 'two'"))[0]!.secret_box);
    box[box.length - 1]! ^= 0x01;
    await raw.all("update credentials set secret_box = ? where name = 'two'", [box]);
    expect((await caught(s.credentials.revealSecret('two'))).message).toMatch(/authentication failed/);
  });
});

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { openStore, type Store } from '../../../server/store/index.js';

const SECRET = 'Tr0ub4dor&3-very-secret-9f8e7d';
const USERNAME = 'bmc-operator-x';

let dir: string;
let file: string;
const stores: Store[] = [];
const keyA = crypto.randomBytes(32);
const keyB = crypto.randomBytes(32);

async function open(key = keyA): Promise<Store> {
  const s = await openStore({ file }, { secretKey: key });
  stores.push(s);
  return s;
}

/** Every byte SQLite keeps for this database: main file, WAL and shared memory. */
function dbBytes(): Buffer {
  return Buffer.concat(
    ['', '-wal', '-shm'].map((suffix) => (fs.existsSync(file + suffix) ? fs.readFileSync(file + suffix) : Buffer.alloc(0))),
  );
}

async function caught(p: Promise<unknown>): Promise<FleetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FleetError);
  return e as FleetError;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-secrets-'));
  file = path.join(dir, 'fleet.db');
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('credentials at rest', () => {
  it('never writes the plaintext secret to the database files', async () => {
    const s = await open();
    await s.credentials.upsert('ipmi-admin', USERNAME, SECRET, { actor: 'test' });
    await s.credentials.upsert('ipmi-admin', USERNAME, SECRET + '-v2', { actor: 'test' });
    // While open (the WAL holds the pages) and after close (checkpointed into the main file).
    for (const phase of ['open', 'closed']) {
      if (phase === 'closed') await s.close();
      const bytes = dbBytes();
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
    const b = await openStore({ memory: true }, { secretKey: keyB });
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
    const raw = new Database(file);
    try {
      // Swap the boxes: each is bound to its credential name.
      const rows = raw.prepare('select name, secret_box from credentials order by name').all() as { name: string; secret_box: Buffer }[];
      const upd = raw.prepare('update credentials set secret_box = ? where name = ?');
      upd.run(rows[1]!.secret_box, 'one');
      upd.run(rows[0]!.secret_box, 'two');
    } finally {
      raw.close();
    }
    expect((await caught(s.credentials.revealSecret('one'))).message).toMatch(/authentication failed/);
    const raw2 = new Database(file);
    try {
      const box = Buffer.from((raw2.prepare("select secret_box from credentials where name = 'two'").get() as { secret_box: Buffer }).secret_box);
      box[box.length - 1]! ^= 0x01;
      raw2.prepare("update credentials set secret_box = ? where name = 'two'").run(box);
    } finally {
      raw2.close();
    }
    expect((await caught(s.credentials.revealSecret('two'))).message).toMatch(/authentication failed/);
  });
});

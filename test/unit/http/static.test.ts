/**
 * Static trees (server/http/static.ts): files inside the root only, byte
 * ranges, HEAD, and every traversal attempt refused with the same 404,
 * both through inject and over a real socket (inject normalises `..`);
 * conditional requests (ETag, If-None-Match, If-Modified-Since, If-Range)
 * and the file cache (a file replaced or rewritten while held is served
 * anew; the budget holds) over real HTTP on loopback.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsc, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../../server/http/errors.js';
import { evaluateConditions, FileCache, parseRange, registerStaticTree, safeRelativePath } from '../../../server/http/static.js';

const SECRET = 'TOP-SECRET-CONTENT-outside-the-root';

describe('static trees', () => {
  let base: string;
  let root: string;
  let app: FastifyInstance;
  let url: string;
  const body = randomBytes(100_000);
  const mtime = new Date('2026-02-03T04:05:06.000Z');

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'fleet-static-'));
    root = join(base, 'root');
    mkdirSync(join(root, 'BaseOS', 'repodata'), { recursive: true });
    writeFileSync(join(root, 'BaseOS', 'pkg-1.0.rpm'), body);
    utimesSync(join(root, 'BaseOS', 'pkg-1.0.rpm'), mtime, mtime);
    writeFileSync(join(root, 'BaseOS', 'repodata', 'repomd.xml'), '<repomd/>');
    writeFileSync(join(root, '.treeinfo'), '[general]\n');
    writeFileSync(join(root, 'empty'), '');
    writeFileSync(join(base, 'secret'), SECRET);
    mkdirSync(join(base, 'outside'));
    writeFileSync(join(base, 'outside', 'passwd'), SECRET);
    symlinkSync(join(base, 'secret'), join(root, 'escape'));
    symlinkSync(join(base, 'outside'), join(root, 'dirlink'));
    symlinkSync(join(root, 'BaseOS', 'repodata', 'repomd.xml'), join(root, 'inside-link.xml'));

    app = fastify();
    installErrorHandling(app);
    registerStaticTree(app, { prefix: '/repo', root });
    registerStaticTree(app, { prefix: '/images', root: undefined, missingMessage: 'no images tree is configured' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('serves a whole file with length, type, Last-Modified and Accept-Ranges', async () => {
    const res = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm' });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(body)).toBe(true);
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(res.headers['content-type']).toBe('application/x-rpm');
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.headers['last-modified']).toBe(mtime.toUTCString());
    const xml = await app.inject({ url: '/repo/BaseOS/repodata/repomd.xml?x=1' });
    expect(xml.statusCode).toBe(200);
    expect(xml.body).toBe('<repomd/>');
    expect((await app.inject({ url: '/repo/.treeinfo' })).body).toBe('[general]\n');
    const empty = await app.inject({ url: '/repo/empty' });
    expect(empty.statusCode).toBe(200);
    expect(empty.headers['content-length']).toBe('0');
  });

  it('follows a symlink that stays inside the root', async () => {
    const res = await app.inject({ url: '/repo/inside-link.xml' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('<repomd/>');
  });

  it('answers a single range with 206 and Content-Range; an open range and a suffix range too', async () => {
    const r = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range: 'bytes=10-19' } });
    expect(r.statusCode).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 10-19/${body.length}`);
    expect(r.headers['content-length']).toBe('10');
    expect(r.rawPayload.equals(body.subarray(10, 20))).toBe(true);

    const open = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range: 'bytes=99990-' } });
    expect(open.statusCode).toBe(206);
    expect(open.headers['content-range']).toBe(`bytes 99990-99999/${body.length}`);
    expect(open.rawPayload.equals(body.subarray(99_990))).toBe(true);

    const suffix = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range: 'bytes=-5' } });
    expect(suffix.statusCode).toBe(206);
    expect(suffix.headers['content-range']).toBe(`bytes 99995-99999/${body.length}`);
    expect(suffix.rawPayload.equals(body.subarray(body.length - 5))).toBe(true);

    const past = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range: 'bytes=99999-200000' } });
    expect(past.statusCode).toBe(206);
    expect(past.rawPayload.equals(body.subarray(99_999))).toBe(true);
  });

  it('answers 416 with Content-Range bytes */size for an unsatisfiable range', async () => {
    for (const range of [`bytes=${body.length}-`, 'bytes=200000-200010', 'bytes=-0']) {
      const res = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range } });
      expect(res.statusCode, range).toBe(416);
      expect(res.headers['content-range']).toBe(`bytes */${body.length}`);
      expect(res.rawPayload.includes(body.subarray(0, 32))).toBe(false);
    }
  });

  it('ignores a malformed or multi-range header and sends the whole file', async () => {
    for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-2', 'bytes=x-y']) {
      const res = await app.inject({ url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range } });
      expect(res.statusCode, range).toBe(200);
      expect(res.rawPayload.length).toBe(body.length);
    }
  });

  it('HEAD answers the headers without a body', async () => {
    const res = await app.inject({ method: 'HEAD', url: '/repo/BaseOS/pkg-1.0.rpm' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.rawPayload.length).toBe(0);
    const ranged = await app.inject({ method: 'HEAD', url: '/repo/BaseOS/pkg-1.0.rpm', headers: { range: 'bytes=0-9' } });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.headers['content-length']).toBe('10');
    expect(ranged.rawPayload.length).toBe(0);
  });

  const ATTEMPTS = [
    '/repo/../secret',
    '/repo/%2e%2e/secret',
    '/repo/%2E%2E/secret',
    '/repo/..%2fsecret',
    '/repo/..%2Fsecret',
    '/repo/%2fetc%2fpasswd',
    '/repo//etc/passwd',
    '/repo/BaseOS/../../secret',
    '/repo/..%5csecret',
    '/repo/a%00b',
    '/repo/escape',
    '/repo/dirlink/passwd',
    '/repo/BaseOS',
    '/repo/BaseOS/',
    '/repo/',
    '/repo/nosuchfile',
  ];

  it('refuses traversal, absolute paths, encoded separators, symlinks out of the root and directories with 404 (inject)', async () => {
    for (const u of ATTEMPTS) {
      const res = await app.inject({ url: u });
      expect(res.statusCode, u).toBe(404);
      expect(res.body, u).not.toContain(SECRET);
      expect(res.body, u).not.toContain(base);
    }
  });

  it('refuses the same attempts sent raw over a socket (no client-side normalisation)', async () => {
    const raw = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = request(`${url}/`, { path, method: 'GET' }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (b += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        });
        req.on('error', reject);
        req.end();
      });
    for (const p of [...ATTEMPTS, '/repo/./BaseOS/pkg-1.0.rpm', '/repo/..\\secret', '/repo/BaseOS/..', '/repo/BaseOS/%2e%2e/%2e%2e/secret']) {
      const res = await raw(p);
      expect(res.status, p).toBe(404);
      expect(res.body, p).not.toContain(SECRET);
    }
    // and the control: the same socket path to a real file works
    expect((await raw('/repo/BaseOS/repodata/repomd.xml')).status).toBe(200);
  });

  it('refuses a FIFO planted in the tree at once, and keeps serving files meanwhile', async () => {
    const fifo = join(root, 'BaseOS', 'planted.rpm');
    execFileSync('mkfifo', [fifo]);
    try {
      // More requests than libuv has thread-pool threads (4): with a blocking
      // open(2) each would wait for a writer and every file read would stall.
      const within = <T>(ms: number, p: Promise<T>): Promise<T> =>
        Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms))]);
      const t0 = Date.now();
      const answers = await within(5000, Promise.all(Array.from({ length: 8 }, () => app.inject({ url: '/repo/BaseOS/planted.rpm' }))));
      for (const a of answers) expect(a.statusCode).toBe(404);
      const other = await within(5000, app.inject({ url: '/repo/BaseOS/repodata/repomd.xml' }));
      expect(other.statusCode).toBe(200);
      expect(other.body).toBe('<repomd/>');
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      // Release any reader a blocking open would have left waiting, so a failure here does not hang the run.
      try {
        closeSync(openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK));
      } catch {
        // ENXIO: no reader is waiting, as it should be
      }
      rmSync(fifo);
    }
  });

  it('a tree with no root configured is a 404 with its message', async () => {
    const res = await app.inject({ url: '/images/pxeboot/vmlinuz' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe('no images tree is configured');
  });

  it('parseRange and safeRelativePath', () => {
    expect(parseRange(undefined, 10)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-0', 10)).toEqual({ kind: 'range', start: 0, end: 0 });
    expect(parseRange('bytes=-20', 10)).toEqual({ kind: 'range', start: 0, end: 9 });
    expect(parseRange('bytes=3-', 10)).toEqual({ kind: 'range', start: 3, end: 9 });
    expect(parseRange('bytes=10-', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(safeRelativePath('a/b%20c.rpm')).toEqual(['a', 'b c.rpm']);
    for (const bad of ['', '..', 'a/../b', '%2e%2e', 'a%2fb', '/etc', 'a//b', 'a\\b', '%zz', 'a%00', 'a/./b', 'a%0ab']) {
      expect(safeRelativePath(bad), bad).toBeUndefined();
    }
  });
});

/** One GET (or HEAD) over a real socket: status, headers and the body's bytes. */
function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('static trees: conditional requests and the file cache, over HTTP', () => {
  let base: string;
  let root: string;
  let app: FastifyInstance;
  let url: string;
  // 1 MiB budget, files up to 256 KiB held; larger ones are streamed.
  const cache = new FileCache(1024 * 1024, 256 * 1024);
  const mtime = new Date('2026-02-03T04:05:06.000Z');
  const small = randomBytes(200_000);
  const big = randomBytes(700_000);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'fleet-static-cond-'));
    root = join(base, 'root');
    mkdirSync(root);
    writeFileSync(join(root, 'initrd.img'), small);
    utimesSync(join(root, 'initrd.img'), mtime, mtime);
    writeFileSync(join(root, 'rootfs.tar'), big);
    for (let i = 0; i < 8; i++) writeFileSync(join(root, `pkg-${i}.rpm`), randomBytes(200_000));
    writeFileSync(join(base, 'secret'), SECRET);
    symlinkSync(join(base, 'secret'), join(root, 'escape'));
    app = fastify();
    installErrorHandling(app);
    registerStaticTree(app, { prefix: '/images', root, cache });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/images`;
  });
  afterAll(async () => {
    await app.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('answers with a strong ETag and Last-Modified, the same on every request for the same file', async () => {
    const a = await get(`${url}/initrd.img`);
    const b = await get(`${url}/initrd.img`);
    expect(a.status).toBe(200);
    expect(a.body.equals(small)).toBe(true);
    expect(b.body.equals(small)).toBe(true);
    expect(a.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
    expect(b.headers.etag).toBe(a.headers.etag);
    expect(a.headers['last-modified']).toBe(mtime.toUTCString());
  });

  it('If-None-Match: 304 without a body for a listed tag (weak or strong) or *, 200 otherwise', async () => {
    const etag = String((await get(`${url}/initrd.img`)).headers.etag);
    for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) {
      const r = await get(`${url}/initrd.img`, { 'if-none-match': inm });
      expect(r.status, inm).toBe(304);
      expect(r.body.length, inm).toBe(0);
      expect(r.headers.etag, inm).toBe(etag);
    }
    const head = await get(`${url}/initrd.img`, { 'if-none-match': etag }, 'HEAD');
    expect(head.status).toBe(304);
    for (const inm of ['"nope"', 'W/"nope"', 'garbage', etag.slice(0, -2) + '"']) {
      const r = await get(`${url}/initrd.img`, { 'if-none-match': inm });
      expect(r.status, inm).toBe(200);
      expect(r.body.equals(small), inm).toBe(true);
    }
  });

  it('If-Modified-Since: 304 when the file is not newer, 200 when it is or the date is invalid', async () => {
    for (const ims of [mtime.toUTCString(), new Date(mtime.getTime() + 3600_000).toUTCString()]) {
      const r = await get(`${url}/initrd.img`, { 'if-modified-since': ims });
      expect(r.status, ims).toBe(304);
      expect(r.body.length).toBe(0);
    }
    for (const ims of [new Date(mtime.getTime() - 1000).toUTCString(), 'not a date']) {
      const r = await get(`${url}/initrd.img`, { 'if-modified-since': ims });
      expect(r.status, ims).toBe(200);
      expect(r.body.equals(small)).toBe(true);
    }
  });

  it('If-None-Match wins over If-Modified-Since, both ways', async () => {
    const etag = String((await get(`${url}/initrd.img`)).headers.etag);
    const future = new Date(mtime.getTime() + 3600_000).toUTCString();
    const past = new Date(mtime.getTime() - 3600_000).toUTCString();
    expect((await get(`${url}/initrd.img`, { 'if-none-match': '"other"', 'if-modified-since': future })).status).toBe(200);
    expect((await get(`${url}/initrd.img`, { 'if-none-match': etag, 'if-modified-since': past })).status).toBe(304);
  });

  it('If-Range keeps the Range only for the current ETag or exact Last-Modified; else the whole file', async () => {
    const etag = String((await get(`${url}/initrd.img`)).headers.etag);
    for (const ifRange of [etag, mtime.toUTCString()]) {
      const r = await get(`${url}/initrd.img`, { range: 'bytes=100-199', 'if-range': ifRange });
      expect(r.status, ifRange).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes 100-199/${small.length}`);
      expect(r.body.equals(small.subarray(100, 200))).toBe(true);
    }
    for (const ifRange of ['"old"', `W/${etag}`, new Date(mtime.getTime() - 1000).toUTCString(), new Date(mtime.getTime() + 1000).toUTCString()]) {
      const r = await get(`${url}/initrd.img`, { range: 'bytes=100-199', 'if-range': ifRange });
      expect(r.status, ifRange).toBe(200);
      expect(r.headers['content-range']).toBeUndefined();
      expect(r.body.equals(small), ifRange).toBe(true);
    }
    // An unsatisfiable range under a stale If-Range is not a 416: the client gets the file.
    const stale = await get(`${url}/initrd.img`, { range: `bytes=${small.length + 10}-`, 'if-range': '"old"' });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(small.length);
  });

  it('ranges and whole files come out right from memory and streamed (larger than the per-file limit)', async () => {
    for (const [name, bytes] of [
      ['initrd.img', small],
      ['rootfs.tar', big],
    ] as const) {
      const whole = await get(`${url}/${name}`);
      expect(whole.status).toBe(200);
      expect(whole.headers['content-length']).toBe(String(bytes.length));
      expect(whole.body.equals(bytes), name).toBe(true);
      const part = await get(`${url}/${name}`, { range: 'bytes=150000-150099' });
      expect(part.status).toBe(206);
      expect(part.body.equals(bytes.subarray(150_000, 150_100)), name).toBe(true);
      const tail = await get(`${url}/${name}`, { range: 'bytes=-7' });
      expect(tail.body.equals(bytes.subarray(bytes.length - 7)), name).toBe(true);
    }
  });

  it('a file replaced by rename while held is served with its new bytes and a new ETag', async () => {
    const file = join(root, 'vmlinuz');
    const v1 = randomBytes(50_000);
    writeFileSync(file, v1);
    const first = await get(`${url}/vmlinuz`);
    expect(first.body.equals(v1)).toBe(true);
    expect((await get(`${url}/vmlinuz`)).body.equals(v1)).toBe(true); // held now
    const v2 = randomBytes(50_000);
    writeFileSync(`${file}.new`, v2);
    utimesSync(`${file}.new`, statSync(file).mtime, statSync(file).mtime); // same size, same mtime: only the inode differs
    renameSync(`${file}.new`, file);
    const second = await get(`${url}/vmlinuz`);
    expect(second.body.equals(v2)).toBe(true);
    expect(second.headers.etag).not.toBe(first.headers.etag);
    expect((await get(`${url}/vmlinuz`, { 'if-none-match': String(first.headers.etag) })).status).toBe(200);
  });

  it('a file rewritten in place while held (same inode, same size) is served with its new bytes', async () => {
    const file = join(root, 'inplace.img');
    const v1 = randomBytes(60_000);
    writeFileSync(file, v1);
    utimesSync(file, mtime, mtime);
    expect((await get(`${url}/inplace.img`)).body.equals(v1)).toBe(true);
    expect((await get(`${url}/inplace.img`)).body.equals(v1)).toBe(true);
    const ino = statSync(file).ino;
    const v2 = randomBytes(60_000);
    const fd = openSync(file, 'r+');
    writeSync(fd, v2, 0, v2.length, 0);
    closeSync(fd);
    // A different mtime, set explicitly: a rewrite within one timestamp tick would not show (see the module comment).
    utimesSync(file, new Date(mtime.getTime() + 5000), new Date(mtime.getTime() + 5000));
    expect(statSync(file).ino).toBe(ino);
    expect((await get(`${url}/inplace.img`)).body.equals(v2)).toBe(true);
    // and a size change alone
    writeFileSync(file, v2.subarray(0, 1000), { flag: 'r+' });
    const v3 = Buffer.concat([v2, randomBytes(10)]);
    writeFileSync(file, v3);
    expect((await get(`${url}/inplace.img`)).body.equals(v3)).toBe(true);
  });

  it('concurrent first requests for one file all get its bytes; the cache stays within its budget', async () => {
    const answers = await Promise.all(Array.from({ length: 16 }, () => get(`${url}/pkg-0.rpm`)));
    const sums = new Set(answers.map((a) => a.body.toString('base64')));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(sums.size).toBe(1);
    expect(answers[0]!.body.length).toBe(200_000);
    for (let i = 0; i < 8; i++) {
      const r = await get(`${url}/pkg-${i}.rpm`);
      expect(r.status).toBe(200);
      expect(cache.size).toBeLessThanOrEqual(cache.maxBytes);
    }
    // Evicted files come back from disk, right.
    const again = await get(`${url}/pkg-0.rpm`);
    expect(again.body.toString('base64')).toBe([...sums][0]);
  });

  it('the cache changes nothing of the guarantees: a symlink out of the root is still a 404', async () => {
    const r = await get(`${url}/escape`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).not.toContain(SECRET);
    // a file made a symlink out of the root after it was held
    const file = join(root, 'was-a-file');
    writeFileSync(file, 'inside');
    expect((await get(`${url}/was-a-file`)).body.toString()).toBe('inside');
    rmSync(file);
    symlinkSync(join(base, 'secret'), file);
    const after = await get(`${url}/was-a-file`);
    expect(after.status).toBe(404);
    expect(after.body.toString()).not.toContain(SECRET);
  });
});

describe('evaluateConditions', () => {
  const etag = '"a-b-c"';
  const lm = Date.parse('2026-02-03T04:05:06.789Z'); // shown as ...:06 GMT
  const shown = new Date(Math.floor(lm / 1000) * 1000).toUTCString();
  it('compares If-Modified-Since against the whole second shown in Last-Modified', () => {
    expect(evaluateConditions({ 'if-modified-since': shown }, etag, lm).notModified).toBe(true);
    expect(evaluateConditions({ 'if-range': shown }, etag, lm).rangeAllowed).toBe(true);
  });
  it('no precondition: modified, range allowed', () => {
    expect(evaluateConditions({}, etag, lm)).toEqual({ notModified: false, rangeAllowed: true });
  });
});

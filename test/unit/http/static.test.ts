/**
 * Static trees (server/http/static.ts): files inside the root only, byte
 * ranges, HEAD, and every traversal attempt refused with the same 404,
 * both through inject and over a real socket (inject normalises `..`).
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsc, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../../server/http/errors.js';
import { parseRange, registerStaticTree, safeRelativePath } from '../../../server/http/static.js';

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

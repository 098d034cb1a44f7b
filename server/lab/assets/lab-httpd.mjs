#!/usr/bin/env node
// fleet lab: a stand-in boot server for running the lab without fleet (docs/lab.md).
//
//   node lab-httpd.mjs --listen 10.77.0.1:8080 --root DIR [--map /url/prefix=/dir ...]
//                      [--break /url/path=BYTES ...]
//
// GET/HEAD: files under --root (URL path = file path; the query string is
// ignored), or under a --map'ed directory; one `Range: bytes=N-[M]` is
// answered 206. POST (any path): answered 200 "ok". --break: the first GET of
// that path sends BYTES bytes of the body, then the connection is cut (a
// server that died mid-transfer). Every request is one JSON line on stdout:
//   {"t": ms since epoch, "method", "path", "query", "remote", "status", "bytes", "range"?, "cut"?, "body"?}
// (body: the first 4 KiB of a POST body). Run it inside the lab namespace.
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import { join, normalize, sep } from 'node:path';

const args = process.argv.slice(2);
let listen = '127.0.0.1:8080';
let root = process.cwd();
const maps = [];
const breaks = new Map();
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--listen') listen = args[++i];
  else if (a === '--root') root = args[++i];
  else if (a === '--map') {
    const [prefix, dir] = args[++i].split('=');
    maps.push({ prefix: prefix.replace(/\/+$/, ''), dir });
  } else if (a === '--break') {
    const v = args[++i];
    breaks.set(v.slice(0, v.lastIndexOf('=')), Number(v.slice(v.lastIndexOf('=') + 1)));
  } else {
    console.error(`lab-httpd: unknown argument ${a}`);
    process.exit(2);
  }
}
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];

function resolveFile(path) {
  let base = root;
  let rel = path;
  for (const m of maps) {
    if (path === m.prefix || path.startsWith(`${m.prefix}/`)) {
      base = m.dir;
      rel = path.slice(m.prefix.length);
      break;
    }
  }
  const p = normalize(join(base, decodeURIComponent(rel)));
  if (p !== base && !p.startsWith(base.endsWith(sep) ? base : base + sep)) return undefined;
  try {
    const st = statSync(p);
    return st.isFile() ? { p, size: st.size } : undefined;
  } catch {
    return undefined;
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const rec = { t: Date.now(), method: req.method, path: url.pathname, query: url.search, remote: req.socket.remoteAddress, status: 0, bytes: 0 };
  const done = () => process.stdout.write(`${JSON.stringify(rec)}\n`);
  if (req.method === 'POST') {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n <= 4096) chunks.push(c);
    });
    req.on('end', () => {
      rec.body = Buffer.concat(chunks).toString('utf8');
      rec.bytes = n;
      rec.status = 200;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      done();
    });
    return;
  }
  const f = req.method === 'GET' || req.method === 'HEAD' ? resolveFile(url.pathname) : undefined;
  if (!f) {
    rec.status = 404;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
    done();
    return;
  }
  let start = 0;
  let end = f.size - 1;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), f.size - 1) : f.size - 1;
    rec.range = `${start}-${end}`;
    if (start >= f.size || start > end) {
      rec.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${f.size}` });
      res.end();
      done();
      return;
    }
  }
  const len = Math.max(0, end - start + 1);
  rec.status = m ? 206 : 200;
  rec.bytes = len;
  res.writeHead(rec.status, { 'content-type': 'application/octet-stream', 'content-length': len, 'accept-ranges': 'bytes', ...(m ? { 'content-range': `bytes ${start}-${end}/${f.size}` } : {}) });
  if (req.method === 'HEAD') {
    res.end();
    done();
    return;
  }
  const cut = breaks.get(url.pathname);
  if (cut !== undefined && req.method === 'GET') {
    breaks.delete(url.pathname);
    rec.cut = Math.min(cut, len);
    createReadStream(f.p, { start, end: start + rec.cut - 1 }).on('data', (c) => res.write(c)).on('end', () => {
      // Let the bytes leave, then cut the connection without ending the response.
      setTimeout(() => {
        req.socket.destroy();
        done();
      }, 200);
    });
    return;
  }
  createReadStream(f.p, { start, end }).pipe(res).on('finish', done);
});
server.listen(port, host, () => process.stdout.write(`${JSON.stringify({ listening: `${host}:${server.address().port}` })}\n`));
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));

/**
 * A small static file handler for the trees fleet serves over HTTP (OS
 * repositories, images, the agent bundle). Written here rather than taken
 * from @fastify/static because DESIGN §4 wants every file resolved inside
 * its root, symlinks leaving the root included, and that plugin follows them.
 *
 * For a request path under a prefix (e.g. /repo/BaseOS/repodata/repomd.xml):
 *   1. the raw (still percent-encoded) rest of the path is refused when it
 *      encodes a dot, a slash, a backslash or NUL (%2e, %2f, %5c, %00): no
 *      legitimate tree file name needs them, and they are how traversal is
 *      smuggled past routers and proxies;
 *   2. it is decoded; refused when it is empty, absolute, holds NUL, a
 *      backslash, an empty segment, or a `.` / `..` segment;
 *   3. joined to the realpath of the root and resolved with realpath; the
 *      result must lie strictly inside the root's realpath (a symlink that
 *      stays inside is fine, one that leaves is refused);
 *   4. opened with O_NOFOLLOW | O_NONBLOCK and fstat'ed through the open
 *      descriptor: only a regular file is served (directories are never
 *      listed). O_NONBLOCK matters: a plain open(2) of a FIFO planted in the
 *      tree waits for a writer and holds a libuv thread-pool thread while it
 *      does, and four such requests freeze every file read of the server. A
 *      non-blocking open returns at once and the fstat refuses it. It does
 *      not change reads of a regular file.
 * Every refusal is the same 404, so a client learns nothing about what lies
 * outside the root. Answers carry Content-Length, Last-Modified, a strong
 * ETag (inode, size, mtime in ns), Accept-Ranges and single byte ranges
 * (206 / 416); HEAD answers the same headers without a body. Conditional
 * requests (RFC 9110 §13.2.2): If-None-Match (weak comparison, `*`) answers
 * 304 and, when present, If-Modified-Since is not looked at; otherwise
 * If-Modified-Since answers 304 when the file is not newer. If-Range (an
 * ETag, compared strongly, or the exact Last-Modified date) keeps a Range
 * only while the file is the one the client has; else the whole file, 200.
 *
 * Bytes (docs/decisions/0013-boot-http.md): a file up to FileCache's
 * per-file limit is answered from memory. Node has no sendfile, so a
 * streamed answer costs a read copy and a write copy per byte and a JS turn
 * per chunk; answering from a held Buffer leaves the write. Every request
 * still goes through steps 1-4 above (realpath, open, fstat on the open
 * descriptor); the held bytes are used only while that fstat shows the same
 * file (device, inode, size, mtime and ctime, in ns), so a file replaced by
 * rename or rewritten in place is read again before it is served. Larger
 * files are streamed from the open descriptor in 64 KiB reads.
 */
import { constants as fsConstants, type BigIntStats } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from '../../common/errors.js';

/** Content types by extension; everything else is application/octet-stream. */
const CONTENT_TYPES: Record<string, string> = {
  '.rpm': 'application/x-rpm',
  '.xml': 'application/xml',
  '.gz': 'application/gzip',
  '.bz2': 'application/x-bzip2',
  '.xz': 'application/x-xz',
  '.zst': 'application/zstd',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.asc': 'text/plain; charset=utf-8',
  '.ks': 'text/plain; charset=utf-8',
  '.ipxe': 'text/plain; charset=utf-8',
  '.iso': 'application/octet-stream',
  '.img': 'application/octet-stream',
  '.efi': 'application/octet-stream',
  '.sqlite': 'application/octet-stream',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The byte range a request asks for, resolved against a file size. */
export type RangeRequest = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Parses a Range header for a file of `size` bytes. Only one `bytes=` range is
 * honoured (`a-b`, `a-`, `-n`); a header that is absent, malformed, in
 * another unit, or lists several ranges is ignored (the whole file is sent),
 * as RFC 9110 §14.2 allows.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return { kind: 'none' };
  const [, a, b] = m;
  if (a === '' && b === '') return { kind: 'none' };
  if (a === '') {
    // suffix: the last n bytes
    const n = Number(b);
    if (!Number.isSafeInteger(n)) return { kind: 'none' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Number(b);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return { kind: 'none' };
  if (b !== '' && end < start) return { kind: 'none' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end: Math.min(end, size - 1) };
}

/** Raw path fragments that are refused before decoding: encoded dot, slash, backslash, NUL. */
const ENCODED_FORBIDDEN = /%(?:2e|2f|5c|00)/i;

/**
 * Turns the raw (percent-encoded) part of a URL after the prefix into safe
 * relative path segments, or undefined when it must be refused.
 */
export function safeRelativePath(raw: string): string[] | undefined {
  if (raw === '' || ENCODED_FORBIDDEN.test(raw)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  if (decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') return undefined;
    if (/[\x00-\x1f\x7f]/.test(s)) return undefined;
  }
  return segments;
}

export interface StaticTreeOptions {
  /** URL prefix without a trailing '/', e.g. '/repo'. */
  prefix: string;
  /** Directory served; undefined: every request is a 404 with `missingMessage`. */
  root: string | undefined;
  /** Message of the 404 when no root is configured. */
  missingMessage?: string;
  /** Where file bytes are held (default sharedFileCache). */
  cache?: FileCache;
}

function notFound(path: string): FleetError {
  return new FleetError('not_found', `no file ${path}`);
}

/** The part of the request URL after `prefix/`, still percent-encoded, without the query. */
function rawRest(req: FastifyRequest, prefix: string): string | undefined {
  const raw = req.raw.url ?? req.url;
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  if (!path.startsWith(`${prefix}/`)) return undefined;
  return path.slice(prefix.length + 1);
}

/** How tree files are opened (see the module comment, step 4). */
export const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/** An open regular file inside a root: its handle (the caller closes it), fstat and real path. */
interface OpenFile {
  fh: FileHandle;
  st: BigIntStats;
  path: string;
}

/**
 * Resolves `segments` inside `root` and opens it; undefined when it is not a
 * regular file inside the root. The caller closes the handle.
 */
async function openInside(root: string, segments: string[]): Promise<OpenFile | undefined> {
  let rootReal: string;
  try {
    rootReal = await realpath(root);
  } catch {
    return undefined;
  }
  let real: string;
  try {
    real = await realpath(join(rootReal, ...segments));
  } catch {
    return undefined;
  }
  const inside = rootReal.endsWith(sep) ? rootReal : rootReal + sep;
  if (!real.startsWith(inside)) return undefined;
  let fh: FileHandle;
  try {
    fh = await open(real, OPEN_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) {
      await fh.close();
      return undefined;
    }
    return { fh, st, path: real };
  } catch {
    await fh.close().catch(() => {});
    return undefined;
  }
}

/** What identifies one version of a file: a change of any part means other bytes. */
function versionOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The strong ETag of a file version (as nginx's, plus the inode: a file renamed over another differs). */
export function etagOf(st: BigIntStats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

/** The entity-tags listed in an If-None-Match value (`*` kept as is). A malformed one matches nothing. */
export function listedEtags(header: string): string[] {
  return header.split(',').map((t) => t.trim()).filter((t) => t !== '');
}

const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);

/** The outcome of a request's preconditions on GET / HEAD (RFC 9110 §13.2.2). */
export function evaluateConditions(
  headers: { 'if-none-match'?: string; 'if-modified-since'?: string; 'if-range'?: string },
  etag: string,
  lastModifiedMs: number,
): { notModified: boolean; rangeAllowed: boolean } {
  // HTTP dates have one-second resolution: compare against the whole second shown in Last-Modified.
  const shownMs = Math.floor(lastModifiedMs / 1000) * 1000;
  let notModified = false;
  const inm = headers['if-none-match'];
  if (inm !== undefined) {
    notModified = listedEtags(inm).some((t) => t === '*' || opaque(t) === opaque(etag)); // weak comparison
  } else if (headers['if-modified-since'] !== undefined) {
    const since = Date.parse(headers['if-modified-since']);
    notModified = Number.isFinite(since) && shownMs <= since;
  }
  let rangeAllowed = true;
  const ifRange = headers['if-range'];
  if (ifRange !== undefined) {
    const v = ifRange.trim();
    if (v.startsWith('"') || v.startsWith('W/')) rangeAllowed = v === etag; // strong comparison: a weak tag never matches
    else rangeAllowed = Date.parse(v) === shownMs; // a date: exactly the Last-Modified shown
  }
  return { notModified, rangeAllowed };
}

/** Files of up to `maxFileBytes` held in memory, least recently used dropped past `maxBytes`. */
export class FileCache {
  private readonly entries = new Map<string, { version: string; bytes: Buffer }>();
  private readonly loading = new Map<string, Promise<Buffer | undefined>>();
  private held = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxFileBytes: number,
  ) {}

  /** Bytes held now (tests and the benchmark look). */
  get size(): number {
    return this.held;
  }

  /**
   * The bytes of the open file `f`, from memory while its fstat shows the
   * version held, else read from `f.fh` (concurrent requests for one
   * version share one read); undefined when the file is too large to hold
   * or changed while it was read (the caller streams it instead).
   */
  async bytes(f: OpenFile): Promise<Buffer | undefined> {
    const size = Number(f.st.size);
    if (size > this.maxFileBytes || size > this.maxBytes) return undefined;
    const version = versionOf(f.st);
    const hit = this.entries.get(f.path);
    if (hit?.version === version) {
      // Most recently used: to the end of the Map's order.
      this.entries.delete(f.path);
      this.entries.set(f.path, hit);
      return hit.bytes;
    }
    const key = `${f.path}\0${version}`;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(f, size, version).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async load(f: OpenFile, size: number, version: string): Promise<Buffer | undefined> {
    const buf = Buffer.allocUnsafeSlow(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await f.fh.read(buf, off, size - off, off);
      if (bytesRead === 0) return undefined; // truncated meanwhile
      off += bytesRead;
    }
    // Written to while it was read: do not keep a mixture.
    if (versionOf(await f.fh.stat({ bigint: true })) !== version) return undefined;
    this.drop(f.path);
    this.entries.set(f.path, { version, bytes: buf });
    this.held += size;
    for (const [path] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.drop(path);
    }
    return buf;
  }

  private drop(path: string): void {
    const e = this.entries.get(path);
    if (!e) return;
    this.entries.delete(path);
    this.held -= e.bytes.length;
  }
}

/**
 * The server-wide cache of the static trees: 256 MiB, files up to 128 MiB
 * (a boot environment's kernel and initrd, repository packages; image
 * root filesystems are streamed). A dropped Buffer lives on until the
 * answers still writing it end.
 */
export const sharedFileCache = new FileCache(256 * 2 ** 20, 128 * 2 ** 20);

/**
 * Read size of a streamed (too large to hold) file: Node's default. 256 KiB
 * cost more CPU per GB in bench boot-http (2.7 s against 1.9 s with 200
 * clients; likely because 200 in-flight 256 KiB chunks no longer fit the
 * CPU caches).
 */
export const STREAM_CHUNK = 64 * 1024;

/** One header's value as a string (a repeated header: undefined, i.e. ignored). */
function headerOf(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** Serves one request from a tree (see the module comment). */
export async function serveFile(req: FastifyRequest, reply: FastifyReply, opts: StaticTreeOptions): Promise<FastifyReply> {
  const shown = (req.url.split('?')[0] ?? '').slice(0, 200);
  if (opts.root === undefined) throw new FleetError('not_found', opts.missingMessage ?? `nothing is served under ${opts.prefix}/`);
  const rest = rawRest(req, opts.prefix);
  const segments = rest === undefined ? undefined : safeRelativePath(rest);
  if (!segments) throw notFound(shown);
  const file = await openInside(opts.root, segments);
  if (!file) throw notFound(shown);

  const { fh, st } = file;
  const size = Number(st.size);
  let handed = false;
  try {
    const etag = etagOf(st);
    const mtimeMs = Number(st.mtimeNs / 1_000_000n);
    reply.header('accept-ranges', 'bytes');
    reply.header('last-modified', new Date(mtimeMs).toUTCString());
    reply.header('etag', etag);
    const cond = evaluateConditions(
      { 'if-none-match': headerOf(req, 'if-none-match'), 'if-modified-since': headerOf(req, 'if-modified-since'), 'if-range': headerOf(req, 'if-range') },
      etag,
      mtimeMs,
    );
    if (cond.notModified) return reply.code(304).send();
    reply.type(contentTypeOf(file.path));
    const range = cond.rangeAllowed ? parseRange(headerOf(req, 'range'), size) : ({ kind: 'none' } as const);
    if (range.kind === 'unsatisfiable') {
      // 416 is not a catalogue status: answered here, with the catalogue's body shape.
      reply.removeHeader('last-modified');
      reply.removeHeader('etag');
      const body = new FleetError('request.invalid', `range not satisfiable: ${shown} has ${size} bytes`, { size }).toJSON();
      return reply.code(416).header('content-range', `bytes */${size}`).type('application/json; charset=utf-8').send(body);
    }
    let start = 0;
    let end = size - 1;
    if (range.kind === 'range') {
      start = range.start;
      end = range.end;
      reply.code(206);
      reply.header('content-range', `bytes ${start}-${end}/${size}`);
    }
    const length = size === 0 ? 0 : end - start + 1;
    reply.header('content-length', String(length));
    if (req.method === 'HEAD' || length === 0) return reply.send();
    const held = await (opts.cache ?? sharedFileCache).bytes(file);
    if (held) return reply.send(held.subarray(start, end + 1));
    const stream = fh.createReadStream({ start, end, autoClose: true, highWaterMark: STREAM_CHUNK });
    handed = true;
    return reply.send(stream);
  } finally {
    if (!handed) await fh.close().catch(() => {});
  }
}

/** Registers GET and HEAD `prefix/*` on `scope`, served from `opts.root`. */
export function registerStaticTree(scope: FastifyInstance, opts: StaticTreeOptions): void {
  scope.route({
    method: ['GET', 'HEAD'],
    url: `${opts.prefix}/*`,
    exposeHeadRoute: false,
    schema: { hide: true },
    handler: (req, reply) => serveFile(req, reply, opts),
  });
}

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
 * outside the root. Files are streamed (never buffered), with Content-Length,
 * Last-Modified, Accept-Ranges and single byte ranges (206 / 416); HEAD
 * answers the same headers without a body.
 */
import { constants as fsConstants } from 'node:fs';
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

/**
 * Resolves `segments` inside `root` and opens it; undefined when it is not a
 * regular file inside the root. The caller closes the handle.
 */
async function openInside(root: string, segments: string[]): Promise<{ fh: FileHandle; size: number; mtime: Date; path: string } | undefined> {
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
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return undefined;
    }
    return { fh, size: st.size, mtime: st.mtime, path: real };
  } catch {
    await fh.close().catch(() => {});
    return undefined;
  }
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

  const { fh, size, mtime } = file;
  let handed = false;
  try {
    reply.header('accept-ranges', 'bytes');
    reply.header('last-modified', mtime.toUTCString());
    reply.type(contentTypeOf(file.path));
    const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, size);
    if (range.kind === 'unsatisfiable') {
      // 416 is not a catalogue status: answered here, with the catalogue's body shape.
      reply.removeHeader('last-modified');
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
    const stream = fh.createReadStream({ start, end, autoClose: true });
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

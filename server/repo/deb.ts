/**
 * Reading a Debian binary package without trusting it: the `ar` archive
 * (`!<arch>\n`, then 60-byte member headers), its `debian-binary` (2.x),
 * its `control.tar[.gz|.xz|.zst]`, and the `control` file inside it as
 * ordered fields. Everything is checked before use; what is not a .deb is
 * FleetError('request.invalid') with a reason. The parsing is pure; only
 * the xz and zstd decompressions run a tool (gzip is zlib's).
 *
 * The fields decide the file's place in the pool (`poolPath`), so a file
 * name given by a user never reaches the file system: `../../etc/x.deb`
 * and `evil;rm -rf.deb` land where their Package/Version/Architecture say,
 * and those are checked against Debian's own syntax first.
 */
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { show } from '../../common/patterns.js';
import { tarEntries } from '../images/tar.js';

export interface ArMember {
  name: string;
  offset: number;
  size: number;
}

const AR_MAGIC = '!<arch>\n';
/** Largest control.tar accepted (compressed or not): real ones are a few KiB. */
export const MAX_CONTROL_BYTES = 16 * 1024 * 1024;

function bad(file: string, why: string): FleetError {
  return new FleetError('request.invalid', `${file} is not a Debian package: ${why}`, { file });
}

/** The members of an ar archive (System V / GNU names, '/' suffix stripped). */
export function parseAr(buf: Buffer, file = 'the file'): ArMember[] {
  if (buf.length < 8 || buf.subarray(0, 8).toString('latin1') !== AR_MAGIC) throw bad(file, 'no ar archive header (!<arch>)');
  const out: ArMember[] = [];
  let off = 8;
  while (off < buf.length) {
    if (off + 60 > buf.length) throw bad(file, `truncated ar member header at byte ${off}`);
    const h = buf.subarray(off, off + 60);
    if (h[58] !== 0x60 || h[59] !== 0x0a) throw bad(file, `bad ar member header at byte ${off}`);
    const name = h.subarray(0, 16).toString('latin1').trimEnd().replace(/\/$/, '');
    const sizeText = h.subarray(48, 58).toString('latin1').trim();
    if (!/^\d+$/.test(sizeText)) throw bad(file, `bad ar member size at byte ${off}`);
    const size = Number(sizeText);
    const start = off + 60;
    if (start + size > buf.length) throw bad(file, `ar member ${show(name)} is truncated`);
    out.push({ name, offset: start, size });
    off = start + size + (size % 2); // members are 2-byte aligned
  }
  return out;
}

export type Decompress = (kind: 'xz' | 'zst', data: Buffer) => Promise<Buffer>;

/** xz / zstd through the tools (Debian's own: xz-utils, zstd), stdin to stdout, bounded in size and time. */
export const toolDecompress: Decompress = (kind, data) => {
  const tool = kind === 'xz' ? 'xz' : 'zstd';
  const exe = findExecutable(tool);
  if (!exe) return Promise.reject(new FleetError('unavailable', `${tool} is missing to read a control.tar.${kind}: apt-get install ${kind === 'xz' ? 'xz-utils' : 'zstd'}`));
  return new Promise<Buffer>((resolve, reject) => {
    // Binary stdout, which common/spawn.ts (text) does not carry: a plain child, killed on excess or timeout.
    const child = spawn(exe, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = '';
    let failed: string | undefined;
    const timer = setTimeout(() => {
      failed = 'timed out';
      child.kill('SIGKILL');
    }, 60_000);
    child.stdout.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_CONTROL_BYTES) {
        failed = `more than ${MAX_CONTROL_BYTES} bytes`;
        child.kill('SIGKILL');
      } else chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString('utf8')).slice(-300);
    });
    child.stdin.on('error', () => {}); // the tool may stop reading early: its exit status says why
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (failed || code !== 0) reject(new Error(`${tool} -dc: ${failed ?? (err.trim() || `exit ${code}`)}`));
      else resolve(Buffer.concat(chunks));
    });
    child.stdin.end(data);
  });
};

/** The text of `./control` inside the package's control.tar.*. */
export async function controlText(buf: Buffer, file = 'the file', decompress: Decompress = toolDecompress): Promise<string> {
  const members = parseAr(buf, file);
  const first = members[0];
  if (!first || first.name !== 'debian-binary') throw bad(file, 'the first ar member is not debian-binary');
  const version = buf.subarray(first.offset, first.offset + first.size).toString('latin1');
  if (!/^2\.\d+\n/.test(version)) throw bad(file, `unsupported format ${show(version.trim())} (2.x expected)`);
  const ctl = members.find((m) => /^control\.tar(\.(gz|xz|zst))?$/.test(m.name));
  if (!ctl) throw bad(file, 'no control.tar member');
  if (!members.some((m) => /^data\.tar(\.(gz|xz|zst|bz2|lzma))?$/.test(m.name))) throw bad(file, 'no data.tar member');
  if (ctl.size > MAX_CONTROL_BYTES) throw bad(file, `${ctl.name} is ${ctl.size} bytes (at most ${MAX_CONTROL_BYTES})`);
  const raw = buf.subarray(ctl.offset, ctl.offset + ctl.size);
  let tar: Buffer;
  try {
    if (ctl.name.endsWith('.gz')) tar = gunzipSync(raw, { maxOutputLength: MAX_CONTROL_BYTES });
    else if (ctl.name.endsWith('.xz')) tar = await decompress('xz', raw);
    else if (ctl.name.endsWith('.zst')) tar = await decompress('zst', raw);
    else tar = raw;
  } catch (e) {
    if (e instanceof FleetError && e.code === 'unavailable') throw e;
    throw bad(file, `${ctl.name} does not decompress (${(e as Error).message})`);
  }
  let found: { offset: number; size: number } | undefined;
  try {
    for (const ent of tarEntries((o, l) => tar.subarray(o, o + l), tar.length)) {
      const n = ent.name.replace(/^\.\//, '');
      if (n === 'control' && ent.type === 'file') found = { offset: ent.offset, size: ent.size };
    }
  } catch (e) {
    throw bad(file, `${ctl.name}: ${(e as Error).message}`);
  }
  if (!found) throw bad(file, `${ctl.name} has no control file`);
  return tar.subarray(found.offset, found.offset + found.size).toString('utf8');
}

/** A control paragraph as ordered [field, value] pairs (continuation lines kept, with their newlines). */
export type ControlFields = [string, string][];

export function parseControl(text: string, file = 'the file'): ControlFields {
  const out: ControlFields = [];
  const lines = text.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  for (const line of lines) {
    if (line === '') throw bad(file, 'the control file holds more than one paragraph');
    if (/^[ \t]/.test(line)) {
      const last = out[out.length - 1];
      if (!last) throw bad(file, 'the control file starts with a continuation line');
      last[1] += `\n${line}`;
      continue;
    }
    const m = /^([!-9;-~][!-9;-~]*):[ \t]*(.*)$/.exec(line);
    if (!m) throw bad(file, `bad control line ${show(line.slice(0, 80))}`);
    if (out.some(([k]) => k.toLowerCase() === m[1]!.toLowerCase())) throw bad(file, `field ${m[1]} appears twice`);
    out.push([m[1]!, m[2]!.trimEnd()]);
  }
  return out;
}

export function field(fields: ControlFields, name: string): string | undefined {
  const k = name.toLowerCase();
  return fields.find(([n]) => n.toLowerCase() === k)?.[1];
}

/** Debian policy §5.6.1, §5.6.12, §5.6.8. */
export const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
export const PACKAGE_VERSION = /^(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$/;
export const PACKAGE_ARCH = /^[a-z0-9][a-z0-9-]*$/;

export interface DebInfo {
  package: string;
  version: string;
  architecture: string;
  /** Source package name (for the pool directory): Source's first word, else Package. */
  source: string;
  fields: ControlFields;
}

/** The checked identity of a package from its control fields. */
export function debInfo(fields: ControlFields, file = 'the file'): DebInfo {
  const need = (name: string, re: RegExp): string => {
    const v = field(fields, name);
    if (v === undefined || v === '') throw bad(file, `no ${name} field`);
    if (!re.test(v)) throw bad(file, `${name} ${show(v.slice(0, 80))} is not valid`);
    return v;
  };
  const pkg = need('Package', PACKAGE_NAME);
  const version = need('Version', PACKAGE_VERSION);
  const architecture = need('Architecture', PACKAGE_ARCH);
  const src = (field(fields, 'Source') ?? '').split(/\s+/)[0] || pkg;
  const source = PACKAGE_NAME.test(src) ? src : pkg;
  return { package: pkg, version, architecture, source, fields };
}

/** Reads and checks a package: its control fields and identity. */
export async function readDeb(buf: Buffer, file = 'the file', decompress: Decompress = toolDecompress): Promise<DebInfo> {
  return debInfo(parseControl(await controlText(buf, file, decompress), file), file);
}

/**
 * Where a package lives in the pool, as Debian lays it out:
 * pool/COMPONENT/<l or libX>/<source>/<package>_<version without epoch>_<arch>.deb.
 */
export function poolPath(d: Pick<DebInfo, 'package' | 'version' | 'architecture' | 'source'>, component = 'main'): string {
  const prefix = d.source.startsWith('lib') && d.source.length > 3 ? d.source.slice(0, 4) : d.source.slice(0, 1);
  const version = d.version.replace(/^[0-9]+:/, '');
  return `pool/${component}/${prefix}/${d.source}/${d.package}_${version}_${d.architecture}.deb`;
}

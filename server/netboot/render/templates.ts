/**
 * Template loader: the only I/O of the netboot renderers.
 *
 * Templates live at the repository (package) root, in ipxe/ and kickstart/,
 * and are read from disk at render time so that an operator's edit takes
 * effect without a rebuild. The code runs both from server/ (vitest, tsx) and
 * from dist/server/ (built), so the root is found by walking up from this
 * module's directory to the first directory that holds both ipxe/ and
 * kickstart/.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../../../common/errors.js';

export type TemplateKind = 'ipxe' | 'kickstart';

const TEMPLATE_FILE: Record<TemplateKind, RegExp> = {
  ipxe: /^[a-z0-9][a-z0-9_-]*\.ipxe$/,
  kickstart: /^[a-z0-9][a-z0-9_-]*\.ks$/,
};

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** True when `dir` holds both template folders. */
export function isTemplateRoot(dir: string): boolean {
  return isDir(join(dir, 'ipxe')) && isDir(join(dir, 'kickstart'));
}

/**
 * Finds the directory holding ipxe/ and kickstart/ by walking up from
 * `start` (default: this module's directory). Throws when there is none.
 */
export function findTemplateRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(start);
  for (;;) {
    if (isTemplateRoot(dir)) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new FleetError('internal', `no ipxe/ and kickstart/ template folders found above ${start}`);
}

let cachedRoot: string | undefined;

/** Template root of this installation (memoised). */
export function defaultTemplateRoot(): string {
  cachedRoot ??= findTemplateRoot();
  return cachedRoot;
}

/** Absolute path of a template file; the name is a bare file name (no '/', no '..'). */
export function templatePath(kind: TemplateKind, name: string, root: string = defaultTemplateRoot()): string {
  if (!TEMPLATE_FILE[kind].test(name)) {
    throw new FleetError('internal', `${JSON.stringify(name)} is not a valid ${kind} template name`);
  }
  return join(root, kind, name);
}

/** Templates read, by path, with the size and mtime they were read at (every boot script renders one). */
const templateCache = new Map<string, { size: number; mtimeMs: number; text: string }>();

/**
 * Reads one template as UTF-8 text. Kept after the first read and read again
 * when its size or mtime changes (an edited template is used at once): a
 * render costs one stat, not an open, read and close.
 */
export async function loadTemplate(kind: TemplateKind, name: string, opts: { root?: string } = {}): Promise<string> {
  const path = templatePath(kind, name, opts.root);
  try {
    const st = await stat(path);
    const hit = templateCache.get(path);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.text;
    const text = await readFile(path, 'utf8');
    templateCache.set(path, { size: st.size, mtimeMs: st.mtimeMs, text });
    return text;
  } catch (e) {
    const why = existsSync(path) ? (e as Error).message : 'no such file';
    throw new FleetError('internal', `cannot read template ${kind}/${name} (${path}): ${why}`, { template: `${kind}/${name}` }, { cause: e });
  }
}

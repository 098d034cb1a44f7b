/**
 * The I/O half of config: reading fleet.yaml and the secrets it references.
 * Parsing stays pure in parse.ts (DESIGN.md §1).
 *
 * Errors name files and variables, never their content.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FleetError } from '../../common/errors.js';
import type { ClusterSpec, CredentialSpec, StoreSpec } from '../model.js';
import { MAX_CONFIG_BYTES, parseConfig } from './parse.js';
import { serialsFilesNamed } from './discovery.js';
import { groupsFileNamed } from './groups.js';
import { MAX_SERIALS_FILE_BYTES } from '../discovery/serials.js';

export { MAX_CONFIG_BYTES };
/** A password file larger than this is certainly not a password. */
export const MAX_SECRET_BYTES = 4096;

export interface LoadedConfig {
  spec: ClusterSpec;
  /** The file's text, as read (for diffs and for formatConfigIssues). */
  text: string;
  /** The path as given. */
  path: string;
  /** Directory of the file: relative password_file paths are resolved against it. */
  baseDir: string;
  /** The texts of the files fleet.yaml names (discovery serials_file), by the path as written; `fleet apply` sends them with the YAML. */
  files: Record<string, string>;
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return code ?? 'read failed';
  }
}

/**
 * Reads and parses fleet.yaml.
 * @throws FleetError('config.unreadable') naming the path; FleetError('config.invalid') from parseConfig.
 */
export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
    if (st.size > MAX_CONFIG_BYTES) {
      throw new FleetError('config.unreadable', `cannot read config file ${file}: larger than ${MAX_CONFIG_BYTES} bytes`, { path: file });
    }
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw new FleetError('config.unreadable', `cannot read config file ${file}: ${reason(e)}`, { path: file }, { cause: e });
  }
  const baseDir = path.dirname(path.resolve(file));
  const files = await readNamedFiles(serialsFilesNamed(text), baseDir, 'serials file', 'discovery serials_file');
  Object.assign(files, await readNamedFiles(groupsFileNamed(text), baseDir, 'groups file', 'groups_file'));
  const spec = parseConfig(text, { source: file, files });
  return { spec, text, path: file, baseDir, files };
}

/**
 * Reads the files fleet.yaml names (serials files, the groups file), relative to its directory.
 * @throws FleetError('config.unreadable') naming the file and why.
 */
async function readNamedFiles(names: readonly string[], baseDir: string, what: string, key: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of names) {
    const p = path.resolve(baseDir, name);
    try {
      const st = await stat(p);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: st.isDirectory() ? 'EISDIR' : 'not a regular file' });
      if (st.size > MAX_SERIALS_FILE_BYTES) {
        throw new FleetError('config.unreadable', `cannot read ${what} ${p}: larger than ${MAX_SERIALS_FILE_BYTES} bytes`, { path: p });
      }
      files[name] = await readFile(p, 'utf8');
    } catch (e) {
      if (e instanceof FleetError) throw e;
      throw new FleetError('config.unreadable', `cannot read ${what} ${p} (${key} ${name}): ${reason(e)}`, { path: p }, { cause: e });
    }
  }
  return files;
}

export interface ResolvedSecret {
  secret: string;
  /** Non-fatal findings, e.g. a world-readable password file. Never contain the secret. */
  warnings: string[];
}

/**
 * Reads the password of a credential set: `password_file` (relative to
 * `baseDir`, the directory of fleet.yaml; one trailing newline stripped) or
 * `password_env`.
 * @throws FleetError('config.unreadable') naming the file or variable, never its content.
 */
export async function resolveSecretDetailed(
  cred: CredentialSpec,
  env: NodeJS.ProcessEnv = process.env,
  baseDir: string = process.cwd(),
  /** What the password is of, in messages; default `credentials NAME`. */
  what = `credentials ${cred.name}`,
): Promise<ResolvedSecret> {
  const warnings: string[] = [];
  if (cred.passwordEnv !== undefined) {
    const v = env[cred.passwordEnv];
    if (v === undefined) throw new FleetError('config.unreadable', `environment variable ${cred.passwordEnv} (password of ${what}) is not set`, { credentials: cred.name, env: cred.passwordEnv });
    if (v === '') throw new FleetError('config.unreadable', `environment variable ${cred.passwordEnv} (password of ${what}) is empty`, { credentials: cred.name, env: cred.passwordEnv });
    return { secret: v, warnings };
  }
  if (cred.passwordFile === undefined) {
    throw new FleetError('config.unreadable', `${what} has neither password_file nor password_env`, { credentials: cred.name });
  }
  const file = path.resolve(baseDir, cred.passwordFile);
  const fail = (why: string, cause?: unknown): FleetError =>
    new FleetError('config.unreadable', `cannot read password file ${file} of ${what}: ${why}`, { credentials: cred.name, path: file }, cause === undefined ? undefined : { cause });
  let buf: Buffer;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw fail('not a regular file');
    if (st.size > MAX_SECRET_BYTES) throw fail(`larger than ${MAX_SECRET_BYTES} bytes`);
    if ((st.mode & 0o004) !== 0) {
      warnings.push(`password file ${file} of ${what} is readable by everyone (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 it`);
    }
    buf = await readFile(file);
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw fail(reason(e), e);
  }
  let secret = buf.toString('utf8');
  if (secret.endsWith('\r\n')) secret = secret.slice(0, -2);
  else if (secret.endsWith('\n')) secret = secret.slice(0, -1);
  if (secret === '') throw fail('the file is empty');
  if (/[\r\n]/.test(secret)) throw fail('the file has more than one line');
  return { secret, warnings };
}

/**
 * Like resolveSecretDetailed, returning the secret only; warnings are pushed
 * onto `warnings` when given.
 */
export async function resolveSecret(
  cred: CredentialSpec,
  env: NodeJS.ProcessEnv = process.env,
  baseDir: string = process.cwd(),
  warnings?: string[],
): Promise<string> {
  const r = await resolveSecretDetailed(cred, env, baseDir);
  warnings?.push(...r.warnings);
  return r.secret;
}

/**
 * The PostgreSQL store's password (fleet.yaml store.password_file or
 * store.password_env), read as BMC passwords are; undefined when neither
 * is set (the server may not ask for one, or PGPASSWORD / ~/.pgpass has it).
 * @throws FleetError('config.unreadable') naming the file or variable, never its content.
 */
export async function resolveStorePassword(
  store: StoreSpec,
  env: NodeJS.ProcessEnv = process.env,
  baseDir: string = process.cwd(),
): Promise<ResolvedSecret | undefined> {
  if (store.passwordFile === undefined && store.passwordEnv === undefined) return undefined;
  const source = { name: 'store', username: '', ...(store.passwordFile !== undefined ? { passwordFile: store.passwordFile } : {}), ...(store.passwordEnv !== undefined ? { passwordEnv: store.passwordEnv } : {}) };
  return resolveSecretDetailed(source, env, baseDir, 'the store (store.url)');
}

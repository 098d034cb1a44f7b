/**
 * Where the CLI finds the server and its token. Order: flags, environment
 * (FLEET_URL, FLEET_TOKEN, FLEET_TOKEN_FILE), ~/.config/fleet/config.yaml
 * (url, token or token_file), then the local server's data dir token file
 * (localDataDir: FLEET_DATA, ./fleet-data or the service's /var/lib/fleet)
 * so that an admin on the management node needs no setup.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { API_TOKEN_FILE } from '../auth/api-token.js';
import { FleetError } from '../../common/errors.js';
import type { CliIo } from './io.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_DATA_DIR = 'fleet-data';
/** The data dir of fleet's systemd service (server/fleet.service: StateDirectory=fleet). */
export const SERVICE_DATA_DIR = '/var/lib/fleet';

/**
 * The data dir of the fleet server on this host, for the commands that read
 * or write it here (token, CA, images, boot environment, repository, doctor):
 * --data, FLEET_DATA, `configured` (fleet.yaml server.data_dir, where the
 * command reads fleet.yaml), else ./fleet-data when it exists (a first try),
 * else the service's /var/lib/fleet when it exists, else ./fleet-data.
 */
export function localDataDir(flagData: string | undefined, io: Pick<CliIo, 'cwd' | 'env'>, configured?: string, serviceDir = SERVICE_DATA_DIR): string {
  const named = flagData ?? io.env.FLEET_DATA ?? configured;
  if (named !== undefined) return resolve(io.cwd, named);
  const firstTry = resolve(io.cwd, DEFAULT_DATA_DIR);
  if (!existsSync(firstTry) && existsSync(serviceDir)) return serviceDir;
  return firstTry;
}

export interface GlobalFlags {
  url?: string;
  token?: string;
  tokenFile?: string;
  data?: string;
  caFile?: string;
}

export interface ClientSettings {
  url: string;
  token?: string;
  /** Where the token came from, for error messages (never the token itself). */
  tokenSource?: string;
  /** Who runs the command, recorded by the server in events (X-Fleet-Actor) beside the credential. */
  actor?: string;
  /** CA certificate (PEM) that an https:// server's certificate must chain to (default: the system's CAs). */
  ca?: string;
}

interface UserConfig {
  url?: string;
  token?: string;
  token_file?: string;
  ca_file?: string;
}

const USER_KEYS = ['url', 'token', 'token_file', 'ca_file'] as const;

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new FleetError('config.unreadable', `cannot read ${path}: ${code ?? String(e)}`);
  }
}

async function readUserConfig(io: CliIo): Promise<UserConfig> {
  const path = join(io.env.XDG_CONFIG_HOME ?? join(io.home, '.config'), 'fleet', 'config.yaml');
  const text = await readIfExists(path);
  if (text === undefined) return {};
  // yaml is loaded only when there is a file to read: it is not needed otherwise and costs start-up time.
  const { parse: parseYaml } = await import('yaml');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new FleetError('config.invalid', `${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new FleetError('config.invalid', `${path}: expected a mapping`);
  const out: UserConfig = {};
  for (const [k, v] of Object.entries(doc)) {
    if (!(USER_KEYS as readonly string[]).includes(k)) {
      throw new FleetError('config.invalid', `${path}: unknown key '${k}' (known: ${USER_KEYS.join(', ')})`);
    }
    if (typeof v !== 'string') throw new FleetError('config.invalid', `${path}: '${k}' must be a string`);
    out[k as (typeof USER_KEYS)[number]] = v;
  }
  if (out.token_file !== undefined && !isAbsolute(out.token_file)) out.token_file = join(io.home, out.token_file);
  if (out.ca_file !== undefined && !isAbsolute(out.ca_file)) out.ca_file = join(io.home, out.ca_file);
  return out;
}

async function tokenFromFile(path: string): Promise<string> {
  const text = await readIfExists(path);
  if (text === undefined) throw new FleetError('config.unreadable', `token file ${path} does not exist`);
  return text.trim();
}

export async function resolveClientSettings(flags: GlobalFlags, io: CliIo): Promise<ClientSettings> {
  const user = await readUserConfig(io);
  const s = await resolveUrlAndToken(flags, io, user);
  const ca = await resolveCa(flags, io, user, s.url);
  const actor = io.env.SUDO_USER ?? io.env.USER ?? io.env.LOGNAME;
  return { ...s, ...(actor ? { actor } : {}), ...(ca ? { ca } : {}) };
}

/**
 * The CA an https:// server must chain to: --ca-file, FLEET_CA_FILE, ca_file in
 * ~/.config/fleet/config.yaml, else the local server's fleet CA (DATA/pki/ca.crt)
 * when there is one; none: the system's CAs.
 */
async function resolveCa(flags: GlobalFlags, io: CliIo, user: UserConfig, url: string): Promise<string | undefined> {
  if (!url.startsWith('https://')) return undefined;
  const named = flags.caFile ? resolve(io.cwd, flags.caFile) : (io.env.FLEET_CA_FILE ?? user.ca_file);
  if (named !== undefined) {
    const pem = await readIfExists(named);
    if (pem === undefined) throw new FleetError('config.unreadable', `CA file ${named} does not exist`);
    return pem;
  }
  return readIfExists(join(localDataDir(flags.data, io), 'pki', 'ca.crt'));
}

async function resolveUrlAndToken(flags: GlobalFlags, io: CliIo, user: UserConfig): Promise<ClientSettings> {
  const url = (flags.url ?? io.env.FLEET_URL ?? user.url ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FleetError('usage.invalid', `bad server URL '${url}' (expected http://HOST:PORT)`);

  if (flags.token) return { url, token: flags.token, tokenSource: '--token' };
  if (flags.tokenFile) return { url, token: await tokenFromFile(resolve(io.cwd, flags.tokenFile)), tokenSource: flags.tokenFile };
  if (io.env.FLEET_TOKEN) return { url, token: io.env.FLEET_TOKEN, tokenSource: 'FLEET_TOKEN' };
  if (io.env.FLEET_TOKEN_FILE) return { url, token: await tokenFromFile(io.env.FLEET_TOKEN_FILE), tokenSource: 'FLEET_TOKEN_FILE' };
  if (user.token) return { url, token: user.token, tokenSource: '~/.config/fleet/config.yaml' };
  if (user.token_file) return { url, token: await tokenFromFile(user.token_file), tokenSource: user.token_file };
  const dataDir = localDataDir(flags.data, io);
  const local = await readIfExists(join(dataDir, API_TOKEN_FILE));
  if (local !== undefined) return { url, token: local.trim(), tokenSource: join(dataDir, API_TOKEN_FILE) };
  return { url };
}

/** The CLI's REST client: one function, errors turned back into FleetErrors from the server's catalogue body. */
import type { Agent, RequestInit as UndiciRequestInit } from 'undici';
import { CATALOGUE, FleetError, type ErrorCode } from '../../common/errors.js';
import type { ClientSettings } from './settings.js';

const agents = new Map<string, Agent>();

/**
 * fetch() towards the fleet server: with a CA (https:// to a server whose
 * certificate the fleet CA issued) through an undici Agent that trusts it,
 * else Node's fetch with the system's CAs. undici is loaded only then: most
 * calls need no CA, and loading it costs start-up time.
 */
export async function serverFetch(settings: Pick<ClientSettings, 'ca'>, url: string, init: RequestInit): Promise<Response> {
  if (!settings.ca) return fetch(url, init);
  const undici = await import('undici');
  let agent = agents.get(settings.ca);
  if (!agent) {
    agent = new undici.Agent({ connect: { ca: settings.ca } });
    agents.set(settings.ca, agent);
  }
  return (await undici.fetch(url, { ...(init as UndiciRequestInit), dispatcher: agent })) as unknown as Response;
}

export async function apiRequest<T>(
  settings: ClientSettings,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  timeoutMs = 120_000,
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (settings.token) headers.authorization = `Bearer ${settings.token}`;
  if (settings.actor) headers['x-fleet-actor'] = settings.actor;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await serverFetch(settings, settings.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    throw new FleetError('unavailable', `cannot reach the fleet server at ${settings.url} (${cause}); is 'fleet server' running?`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new FleetError('unavailable', `${settings.url}${path} answered HTTP ${res.status} with non-JSON content`);
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    const code = err?.code && err.code in CATALOGUE ? (err.code as ErrorCode) : 'internal';
    let message = err?.message ?? `HTTP ${res.status}`;
    if (code === 'auth.missing' && !settings.token) {
      message += '; set FLEET_TOKEN, pass --token-file, or run on the server host next to its data dir';
    }
    throw new FleetError(code, message, err?.details);
  }
  return parsed as T;
}

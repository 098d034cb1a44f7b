/**
 * The CLI's REST client: requests to the fleet server over node:http or
 * node:https, errors turned back into FleetErrors from the server's catalogue
 * body. Not fetch(): Node's fetch compiles its HTTP parser (WebAssembly) on
 * first use, which cost a short command like `fleet nodes` 200-400 ms of
 * start-up on a busy machine (bench/results/cli.md); node:http's parser is native.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CATALOGUE, FleetError, type ErrorCode } from '../../common/errors.js';
import type { ClientSettings } from './settings.js';

export interface ServerRequest {
  method?: 'GET' | 'POST' | 'DELETE';
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/**
 * One request to the fleet server; resolves once the response headers arrive,
 * to the response (its body is a stream of Buffers, an AsyncIterable). With a
 * CA (https:// to a server whose certificate the fleet CA issued) only that CA
 * is trusted, else the system's CAs. A connection failure rejects with the
 * socket's error (code ECONNREFUSED, ...); an abort with the signal's reason.
 */
export function serverRequest(settings: Pick<ClientSettings, 'ca'>, url: string, req: ServerRequest): Promise<IncomingMessage> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = send(
      u,
      {
        method: req.method ?? 'GET',
        headers: req.body === undefined ? req.headers : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
        signal: req.signal,
        ...(settings.ca ? { ca: settings.ca } : {}),
      },
      resolve,
    );
    r.on('error', (e) => reject(req.signal.aborted ? req.signal.reason : e));
    r.end(req.body);
  });
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
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
  const signal = AbortSignal.timeout(timeoutMs);
  let status: number;
  let text: string;
  try {
    const res = await serverRequest(settings, settings.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    status = res.statusCode ?? 0;
    text = await readText(res);
  } catch (e) {
    const cause = signal.aborted ? (signal.reason as Error).name : ((e as { code?: string }).code ?? (e as Error).name);
    throw new FleetError('unavailable', `cannot reach the fleet server at ${settings.url} (${cause}); is 'fleet server' running?`);
  }
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new FleetError('unavailable', `${settings.url}${path} answered HTTP ${status} with non-JSON content`);
  }
  if (status < 200 || status > 299) {
    const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    const code = err?.code && err.code in CATALOGUE ? (err.code as ErrorCode) : 'internal';
    let message = err?.message ?? `HTTP ${status}`;
    if (code === 'auth.missing' && !settings.token) {
      message += '; set FLEET_TOKEN, pass --token-file, or run on the server host next to its data dir';
    }
    throw new FleetError(code, message, err?.details);
  }
  return parsed as T;
}

/**
 * The CLI's client of the server's event stream (GET /api/v1/events/stream,
 * server-sent events): `fleet watch` and `fleet events -f` read it.
 */
import type { ApiEvent } from '../../common/api/schemas.js';
import { FleetError } from '../../common/errors.js';
import { serverRequest } from './client.js';
import type { ClientSettings } from './settings.js';

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Splits a server-sent events byte stream into messages (blocks ended by a
 * blank line; `:` comments and blocks without data skipped, data lines joined).
 */
export async function* sseEvents(body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    for (;;) {
      const end = buf.indexOf('\n\n');
      if (end === -1) break;
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const msg: SseMessage = { data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i === -1 ? line : line.slice(0, i);
        const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'id') msg.id = value;
        else if (field === 'event') msg.event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0) continue;
      msg.data = data.join('\n');
      yield msg;
    }
  }
}

/**
 * Opens the event stream after event id `after` (optionally of a nodeset):
 * resolves once the server accepted it, to its events, which end when the
 * server ends the stream or `signal` aborts. A refusal is a FleetError:
 * auth.invalid for 401, unavailable otherwise.
 */
export async function openEventStream(
  settings: ClientSettings,
  query: { after: number; nodeset?: string },
  signal: AbortSignal,
): Promise<AsyncGenerator<ApiEvent>> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (settings.token) headers.authorization = `Bearer ${settings.token}`;
  if (settings.actor) headers['x-fleet-actor'] = settings.actor;
  const params = new URLSearchParams();
  if (query.nodeset !== undefined) params.set('nodeset', query.nodeset);
  params.set('after', String(query.after));
  const res = await serverRequest(settings, `${settings.url}/api/v1/events/stream?${params.toString()}`, { headers, signal });
  if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) {
    let text = '';
    try {
      for await (const c of res) text += (c as Buffer).toString('utf8');
    } catch {
      /* the message is enough */
    }
    let message = `HTTP ${res.statusCode}`;
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new FleetError(res.statusCode === 401 ? 'auth.invalid' : 'unavailable', `event stream: ${message}`);
  }
  const body = res as AsyncIterable<Uint8Array>;
  return (async function* events(): AsyncGenerator<ApiEvent> {
    for await (const msg of sseEvents(body)) {
      if (msg.event === 'error') continue;
      yield JSON.parse(msg.data) as ApiEvent;
    }
  })();
}

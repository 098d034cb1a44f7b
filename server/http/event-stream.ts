/**
 * The server-sent event stream of the event log, shared by the API
 * (`GET /api/v1/events/stream`, server/http/routes/lifecycle.ts) and the
 * dashboard (`GET /ui/events`, server/http/dashboard.ts): one loop, two
 * ways in (a bearer token, a session cookie).
 *
 * It polls the events table by id cursor (so it also works with several
 * servers sharing one database): `id:` is the event id (reconnect with
 * Last-Event-ID or `after`), `event:` its kind, `data:` the ApiEvent JSON.
 * Without a cursor it starts with the events written after the request. It
 * ends after maxEvents events or maxSeconds (at most 1 h), when the client
 * goes away, or when the server closes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_STREAM_SECONDS } from '../../common/api/schemas.js';
import { MAX_EVENT_LIMIT, type EventRecord, type Store } from '../store/index.js';
import { toApiEvent } from './routes/api.js';

export interface EventStreamSettings {
  /** How often the events table is polled. Default 500 ms. */
  pollMs?: number;
  /** Comment line sent when nothing happened for this long. Default 15 s. */
  heartbeatMs?: number;
  /** Longest life of one stream (clients reconnect). Default and maximum 3600 s. */
  maxSeconds?: number;
}

export interface EventStreamRequest {
  /** Only these nodes' events (expanded nodeset); absent: all. */
  names?: string[];
  kinds?: string[];
  /** Start after this event id; absent: the Last-Event-ID header, else now. */
  after?: number;
  maxEvents?: number;
  maxSeconds?: number;
}

/** The event store's node filter takes at most this many names; larger nodesets are filtered here. */
const STORE_NODE_FILTER_MAX = 10_000;

/**
 * A stream function bound to `scope`: its preClose ends every open stream
 * at once (before the server waits for its connections).
 */
export function eventStreamer(
  scope: FastifyInstance,
  store: Store,
  settings: EventStreamSettings = {},
): (req: FastifyRequest, reply: FastifyReply, what: EventStreamRequest) => Promise<void> {
  let closing = false;
  const wakers = new Set<() => void>();
  scope.addHook('preClose', async () => {
    closing = true;
    for (const w of wakers) w();
  });

  return async (req, reply, what) => {
    const names = what.names;
    const nameSet = names && names.length > STORE_NODE_FILTER_MAX ? new Set(names) : undefined;
    const kinds = what.kinds;
    const lastEventId = req.headers['last-event-id'];
    const fromHeader = typeof lastEventId === 'string' && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : undefined;
    let cursor = what.after ?? fromHeader ?? (await store.events.lastId());
    const maxEvents = what.maxEvents ?? Number.MAX_SAFE_INTEGER;
    const maxMs = Math.min(what.maxSeconds ?? MAX_STREAM_SECONDS, settings.maxSeconds ?? MAX_STREAM_SECONDS, MAX_STREAM_SECONDS) * 1000;
    const pollMs = settings.pollMs ?? 500;
    const heartbeatMs = settings.heartbeatMs ?? 15_000;

    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.write(`retry: 2000\n: fleet events after ${cursor}\n\n`);
    let gone = false;
    let wake: (() => void) | undefined;
    const onGone = (): void => {
      gone = true;
      wake?.();
    };
    const onClosing = (): void => wake?.();
    wakers.add(onClosing);
    // The response's close: the client went away (the request's close only says its body was read).
    raw.on('close', onGone);
    const started = Date.now();
    let lastWrite = started;
    let sent = 0;
    const send = (e: EventRecord): void => {
      raw.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(toApiEvent(e))}\n\n`);
      sent++;
      lastWrite = Date.now();
    };
    try {
      // Bounded: maxSeconds, maxEvents, the client, the server's close.
      while (!gone && !closing && sent < maxEvents && Date.now() - started < maxMs) {
        for (let pages = 0; pages < 20 && sent < maxEvents && !gone; pages++) {
          const page = await store.events.list({
            ...(names && !nameSet ? { nodes: names } : {}),
            ...(kinds?.length ? { kinds } : {}),
            afterId: cursor,
            limit: MAX_EVENT_LIMIT,
          });
          for (const e of page.events) {
            cursor = e.id;
            if (nameSet && (e.node === null || !nameSet.has(e.node))) continue;
            send(e);
            if (sent >= maxEvents) break;
          }
          if (page.nextCursor === null) break;
        }
        if (sent >= maxEvents || gone) break;
        if (Date.now() - lastWrite >= heartbeatMs) {
          raw.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        const left = maxMs - (Date.now() - started);
        if (left <= 0) break;
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(pollMs, left));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = undefined;
      }
    } catch (err) {
      req.log.error({ err }, 'event stream failed');
      if (!gone) raw.write(`event: error\ndata: ${JSON.stringify({ message: 'the event stream failed; reconnect' })}\n\n`);
    } finally {
      wakers.delete(onClosing);
      raw.off('close', onGone);
      if (!raw.writableEnded) raw.end();
    }
  };
}

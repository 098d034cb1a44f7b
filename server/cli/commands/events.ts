/**
 * `fleet events [NODESET] [-n N] [--since T] [-f] [--json]`: the event log
 * as `tail` shows a file. The newest N events (default 50; with --since every
 * event since then, up to 10,000), printed oldest first, with a note on
 * stderr when older ones were left out; -f then keeps printing new events
 * from the server's event stream until Ctrl-C or SIGTERM (exit 0).
 */
import type { ApiEvent, EventsResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type ClientSettings, type GlobalFlags } from '../settings.js';
import { openEventStream } from '../sse.js';
import { parseSince } from '../time.js';
import { DEFAULT_EVENT_COUNT, MAX_EVENT_COUNT } from '../counts.js';

export { DEFAULT_EVENT_COUNT, MAX_EVENT_COUNT };

/** The server's largest page (EventsQuery.limit). */
const PAGE = 1000;
/** Consecutive failed (re)connections of -f before it gives up. */
const MAX_STREAM_FAILURES = 30;

export interface EventsFlags {
  since?: string;
  /** -n / --limit */
  limit?: string;
  follow?: boolean;
  json?: boolean;
}

export interface EventsCliDeps {
  /** Ends -f (default: SIGINT or SIGTERM of this process). */
  signal?: AbortSignal;
  /** Pause between failed stream connections, ms. Default 1000. */
  retryMs?: number;
}

/** How many events to show: -n N (1-10000), else 50, or 10000 with --since. */
export function eventCount(opts: Pick<EventsFlags, 'since' | 'limit'>): number {
  if (opts.limit === undefined) return opts.since !== undefined ? MAX_EVENT_COUNT : DEFAULT_EVENT_COUNT;
  const n = /^\d+$/.test(opts.limit.trim()) ? Number(opts.limit) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_EVENT_COUNT) {
    throw new FleetError('usage.invalid', `-n/--limit: '${opts.limit}' is not a count of events from 1 to ${MAX_EVENT_COUNT}`);
  }
  return n;
}

/** The stderr note when older events were left out; undefined when everything matching was shown. */
export function moreNote(shown: number, more: boolean, since: string | undefined): string | undefined {
  if (!more) return undefined;
  const what = since !== undefined ? `events since ${since}` : 'events';
  return `(showing the newest ${shown} ${what}; older ones exist: -n N${since !== undefined ? '' : ' or --since'} for more)`;
}

export function formatEvent(e: ApiEvent): string {
  const transition = e.fromState || e.toState ? ` ${e.fromState ?? '-'} -> ${e.toState ?? '-'}` : '';
  const details = e.details && Object.keys(e.details).length ? ' ' + JSON.stringify(e.details) : '';
  return `${e.time}  ${e.node ?? '-'}  ${e.kind}${transition}  by ${e.actor}${details}`;
}

/** The newest `count` events matching the filter, oldest first, and whether older ones exist. */
async function newestEvents(settings: ClientSettings, filter: URLSearchParams, count: number): Promise<{ events: ApiEvent[]; more: boolean }> {
  const newestFirst: ApiEvent[] = [];
  let before: number | undefined;
  for (;;) {
    const params = new URLSearchParams(filter);
    params.set('order', 'desc');
    params.set('limit', String(Math.min(PAGE, count - newestFirst.length)));
    if (before !== undefined) params.set('before', String(before));
    const page = await apiRequest<EventsResponse>(settings, 'GET', `/api/v1/events?${params.toString()}`);
    newestFirst.push(...page.events);
    if (page.nextBefore === null || page.events.length === 0) return { events: newestFirst.reverse(), more: false };
    if (newestFirst.length >= count) return { events: newestFirst.reverse(), more: true };
    before = page.nextBefore;
  }
}

/** The id of the newest event of the whole log (0 when empty): where following starts when nothing matched. */
async function lastEventId(settings: ClientSettings): Promise<number> {
  const page = await apiRequest<EventsResponse>(settings, 'GET', '/api/v1/events?order=desc&limit=1');
  return page.events[0]?.id ?? 0;
}

/** SIGINT and SIGTERM end following; the returned function removes the handlers. */
function stopOnSignals(ctl: AbortController): () => void {
  const stop = (): void => ctl.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
}

/**
 * Prints the stream's events after `cursor` until `signal` aborts. The server
 * ends a stream after an hour (or when it restarts): it reconnects from the
 * last event printed, so nothing is lost or printed twice.
 */
async function follow(settings: ClientSettings, nodeset: string | undefined, cursor: number, print: (e: ApiEvent) => void, signal: AbortSignal, retryMs: number): Promise<void> {
  // Bounded: the signal, or too many failed connections in a row.
  for (let failures = 0; !signal.aborted; ) {
    try {
      const stream = await openEventStream(settings, { after: cursor, ...(nodeset !== undefined ? { nodeset } : {}) }, signal);
      failures = 0;
      for await (const e of stream) {
        if (e.id <= cursor) continue;
        cursor = e.id;
        print(e);
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof FleetError && e.code === 'auth.invalid') throw e;
      if (++failures >= MAX_STREAM_FAILURES) throw new FleetError('unavailable', `event stream: ${failures} connections failed in a row; last: ${(e as Error).message}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, retryMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          r();
        }, { once: true });
      });
    }
  }
}

export async function cmdEvents(flags: GlobalFlags, nodeset: string | undefined, opts: EventsFlags, io: CliIo, deps: EventsCliDeps = {}): Promise<number> {
  const count = eventCount(opts);
  const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
  const settings = await resolveClientSettings(flags, io);
  const filter = new URLSearchParams();
  if (nodeset !== undefined) filter.set('nodeset', nodeset);
  if (since !== undefined) filter.set('since', since);
  // Read before the events, so that an event written between the two requests is followed, not lost.
  const start = opts.follow ? await lastEventId(settings) : 0;
  const { events, more } = await newestEvents(settings, filter, count);
  // With -f, JSON is one event per line (a growing array cannot be printed).
  if (opts.json && !opts.follow) io.stdout(JSON.stringify(events, null, 2) + '\n');
  else for (const e of events) io.stdout((opts.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
  const note = moreNote(events.length, more, opts.since);
  if (note) io.stderr(note + '\n');
  if (!opts.follow) return Exit.OK;

  const ctl = new AbortController();
  const external = deps.signal;
  const onExternal = (): void => ctl.abort();
  external?.addEventListener('abort', onExternal, { once: true });
  if (external?.aborted) ctl.abort();
  const unhook = external ? () => external.removeEventListener('abort', onExternal) : stopOnSignals(ctl);
  try {
    const cursor = Math.max(start, events[events.length - 1]?.id ?? 0);
    await follow(settings, nodeset, cursor, (e) => io.stdout((opts.json ? JSON.stringify(e) : formatEvent(e)) + '\n'), ctl.signal, deps.retryMs ?? 1000);
  } finally {
    unhook();
  }
  return Exit.OK;
}

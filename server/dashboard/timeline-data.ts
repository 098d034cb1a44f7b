/**
 * What the reinstall timeline draws (dashboard/timeline.ts): the window from
 * the query, and each node's state.changed events in it, read by id pages
 * (bounded). Shared by the dashboard (/ui/timeline) and the API
 * (GET /api/v1/timeline, `fleet timeline`).
 */
import { parseDurationMs } from '../../common/duration.js';
import { FleetError, toFleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import { MAX_EVENT_LIMIT, type Store } from '../store/index.js';
import { rowOf, type TimelineEvent, type TimelineRow } from './timeline.js';

export interface TimelineQuery {
  /** Nodeset or @group; '' for every node with a transition in the window. */
  nodeset: string;
  /** 'fit' or '' (the span of the last 24 h's transitions), a duration back from now (2h), or an ISO time. */
  since: string;
  /** '' (now), a duration back from now, or an ISO time. */
  until: string;
}

export interface TimelineData {
  nodeset: string;
  since: string;
  until: string;
  rows: TimelineRow[];
  /** The window drawn (ms). */
  from: number;
  to: number;
  /** More transitions than one picture reads (200,000): the picture stops early. */
  truncated: boolean;
  /** A bad window or nodeset (no rows). */
  error?: string;
}

/** The timeline's window and rows; a bad window or nodeset is `error` (no rows), never a throw. */
export async function timelineData(store: Store, expand: (expr: string) => Promise<string[]>, q: TimelineQuery, nowDate: Date): Promise<TimelineData> {
  const str = (v: string): string => v.trim().slice(0, 4096);
  const nodeset = str(q.nodeset);
  // fit (the default): the window the transitions of the last 24 h span, so a run fills the picture.
  const sinceText = str(q.since) || 'fit';
  const fit = sinceText === 'fit';
  const untilText = str(q.until);
  const t = nowDate.getTime();
  const at = (text: string, what: string): number => {
    const back = parseDurationMs(text, { units: ['s', 'm', 'h', 'd'] });
    if (back !== undefined) return t - back;
    const abs = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
    if (Number.isNaN(abs)) throw new FleetError('request.invalid', `${what} ${JSON.stringify(text.slice(0, 40))} is neither a duration back from now (15m, 2h, 7d) nor an ISO time`);
    return abs;
  };
  const base = { nodeset, since: sinceText, until: untilText, rows: [] as TimelineRow[], truncated: false };
  let from: number;
  let to: number;
  let names: string[] | undefined;
  try {
    from = fit ? t - 86_400_000 : at(sinceText, 'since');
    to = untilText ? at(untilText, 'until') : t;
    if (to <= from) throw new FleetError('request.invalid', 'until must be after since');
    names = nodeset ? await expand(nodeset) : undefined;
  } catch (e) {
    const fe = toFleetError(e);
    if (fe.code === 'internal') throw e;
    return { ...base, from: t - 7_200_000, to: t, error: fe.message };
  }
  const nameSet = names ? new Set(names) : undefined;
  const byNode = new Map<string, TimelineEvent[]>();
  let afterId: number | undefined;
  let truncated = false;
  const untilIso = new Date(to).toISOString();
  // Bounded: at most 200 pages (200,000 transitions) per picture.
  for (let pages = 0; ; pages++) {
    if (pages >= 200) {
      truncated = true;
      break;
    }
    const page = await store.events.list({
      kinds: [EVENT.stateChanged],
      ...(names && names.length <= 10_000 ? { nodes: names } : {}),
      since: new Date(from).toISOString(),
      ...(afterId !== undefined ? { afterId } : {}),
      order: 'asc',
      limit: MAX_EVENT_LIMIT,
    });
    let past = false;
    for (const e of page.events) {
      if (e.time > untilIso) {
        past = true;
        break;
      }
      if (e.node === null || (nameSet && !nameSet.has(e.node))) continue;
      let list = byNode.get(e.node);
      if (!list) byNode.set(e.node, (list = []));
      list.push({ time: e.time, fromState: e.fromState, toState: e.toState, details: e.details });
    }
    if (past || page.nextCursor === null) break;
    afterId = page.nextCursor;
  }
  if (fit && byNode.size > 0) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const list of byNode.values()) {
      for (const e of list) {
        const et = Date.parse(e.time);
        lo = Math.min(lo, et);
        hi = Math.max(hi, et);
      }
    }
    const span = Math.max(1000, hi - lo);
    from = lo - span * 0.02;
    to = Math.min(to, hi + span * 0.05);
  }
  const order = names ?? [...byNode.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const rows = order.filter((n) => byNode.has(n)).map((n) => rowOf(n, byNode.get(n)!, from, to));
  return { nodeset, since: sinceText, until: untilText, rows, from, to, truncated };
}

/**
 * The reinstall timeline (issue 17 item 2): one row per node, its states as
 * coloured spans over time, failures marked with their step and reason.
 * Pure: state.changed events in, SVG out. Presentation attributes only (no
 * style attribute or element), so the page's Content-Security-Policy needs
 * no exception; every name and reason goes through the escaping template.
 * Sized to stay readable with 1,000 rows: thinner rows, sparser labels.
 */
import { S } from '../lifecycle/states.js';
import { html, raw, type Html } from './html.js';

export interface TimelineEvent {
  time: string;
  fromState: string | null;
  toState: string | null;
  details?: unknown;
}

export interface Span {
  state: string;
  start: number;
  end: number;
}

export interface FailureMark {
  time: number;
  step: string;
  reason: string;
}

export interface TimelineRow {
  node: string;
  spans: Span[];
  failures: FailureMark[];
}

/** Colours of the states (others grey); resting states pale, the install path in blues, failures red. */
export const STATE_COLOURS: Readonly<Record<string, string>> = {
  [S.enrolled]: '#b8c2cc',
  [S.pxeArmed]: '#9ecae1',
  [S.powerCycling]: '#6baed6',
  [S.netbooting]: '#4292c6',
  [S.installing]: '#2171b5',
  [S.installed]: '#08519c',
  [S.diskArmed]: '#6a51a3',
  [S.imageBooting]: '#54278f',
  [S.firstBoot]: '#807dba',
  [S.configuring]: '#9e9ac8',
  [S.ready]: '#41ab5d',
  [S.held]: '#fd8d3c',
  [S.failed]: '#d7301f',
  [S.adopting]: '#bcbddc',
};
const OTHER = '#999999';

/**
 * A node's spans within [since, until] (ms) from its state.changed events
 * in time order: the state before its first event from that event's
 * fromState, each later state until the next event (the last until `until`).
 */
export function rowOf(node: string, events: readonly TimelineEvent[], since: number, until: number): TimelineRow {
  const spans: Span[] = [];
  const failures: FailureMark[] = [];
  const sorted = events.filter((e) => e.toState !== null).map((e) => ({ ...e, t: Date.parse(e.time) })).filter((e) => Number.isFinite(e.t));
  sorted.sort((a, b) => a.t - b.t);
  const first = sorted[0];
  if (first && first.fromState && first.t > since) spans.push({ state: first.fromState, start: since, end: Math.min(first.t, until) });
  sorted.forEach((e, i) => {
    const start = Math.max(e.t, since);
    const end = Math.min(sorted[i + 1]?.t ?? until, until);
    if (end > start || (end === start && i === sorted.length - 1)) spans.push({ state: e.toState!, start, end: Math.max(end, start) });
    if (e.toState === S.failed && e.t >= since && e.t <= until) {
      const d = (e.details ?? {}) as { step?: unknown; reason?: unknown };
      failures.push({ time: e.t, step: typeof d.step === 'string' ? d.step : 'unknown', reason: typeof d.reason === 'string' ? d.reason : 'unknown' });
    }
  });
  return { node, spans, failures };
}

const TICKS_S = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** Tick spacing (ms) giving at most `max` ticks over `rangeMs`. */
export function tickStep(rangeMs: number, max = 10): number {
  for (const s of TICKS_S) if (rangeMs / (s * 1000) <= max) return s * 1000;
  return TICKS_S[TICKS_S.length - 1]! * 1000;
}

function tickLabel(t: number, step: number): string {
  const iso = new Date(t).toISOString();
  if (step >= 86_400_000) return iso.slice(0, 10);
  if (step >= 60_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  if (step >= 1000) return iso.slice(11, 19);
  return iso.slice(11, 23);
}

export interface TimelineOptions {
  since: number;
  until: number;
  title: string;
  /** Width of the whole picture (px). Default 1200. */
  width?: number;
}

/** The SVG of the rows (a standalone document: the XML declaration is the caller's). */
export function renderTimeline(rows: readonly TimelineRow[], o: TimelineOptions): string {
  const width = o.width ?? 1200;
  const n = rows.length;
  const rowH = n <= 60 ? 16 : n <= 250 ? 8 : 4;
  const labelEvery = rowH >= 8 ? 1 : 10;
  const left = 130;
  const right = 20;
  const top = 58;
  const plotW = width - left - right;
  const height = top + Math.max(1, n) * rowH + 30;
  const range = Math.max(1, o.until - o.since);
  const x = (t: number): number => left + ((Math.min(Math.max(t, o.since), o.until) - o.since) / range) * plotW;
  const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();
  const step = tickStep(range);
  const ticks: number[] = [];
  for (let t = Math.ceil(o.since / step) * step; t <= o.until && ticks.length < 50; t += step) ticks.push(t);
  const used = [...new Set(rows.flatMap((r) => r.spans.map((s) => s.state)))];
  const legend: Html[] = used.map(
    (s, i) => html`<rect x="${left + i * 110}" y="24" width="10" height="10" fill="${STATE_COLOURS[s] ?? OTHER}"/><text x="${left + i * 110 + 14}" y="33" font-size="11">${s}</text>`,
  );
  const body: Html[] = rows.map((r, i) => {
    const y = top + i * rowH;
    const label = i % labelEvery === 0 ? html`<text x="${left - 6}" y="${fmt(y + rowH - Math.max(1, rowH / 4))}" font-size="${Math.max(7, Math.min(12, rowH - 3))}" text-anchor="end">${r.node}</text>` : html``;
    const spans = r.spans.map(
      (s) =>
        html`<rect x="${fmt(x(s.start))}" y="${y + 1}" width="${fmt(Math.max(1, x(s.end) - x(s.start)))}" height="${Math.max(1, rowH - 2)}" fill="${STATE_COLOURS[s.state] ?? OTHER}"><title>${r.node}: ${s.state} ${new Date(s.start).toISOString()} – ${new Date(s.end).toISOString()}</title></rect>`,
    );
    const marks = r.failures.map((f) => {
      const cx = x(f.time);
      const h = Math.max(4, rowH);
      return html`<path class="failure" d="M${fmt(cx)} ${y} l${fmt(h / 2)} ${h} l${fmt(-h)} 0 z" fill="#000000" stroke="#ffffff" stroke-width="0.5"><title>${r.node} failed at ${new Date(f.time).toISOString()}: ${f.step}: ${f.reason}</title></path>`;
    });
    return html`<g class="row" data-node="${r.node}">${label}${spans}${marks}</g>`;
  });
  const axis = ticks.map(
    (t) =>
      html`<line x1="${fmt(x(t))}" y1="${top - 4}" x2="${fmt(x(t))}" y2="${top + n * rowH}" stroke="#dddddd" stroke-width="1"/><text x="${fmt(x(t))}" y="${top + n * rowH + 16}" font-size="10" text-anchor="middle">${tickLabel(t, step)}</text>`,
  );
  const failures = rows.reduce((a, r) => a + r.failures.length, 0);
  return html`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" role="img" aria-label="${o.title}">
<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>
<text x="10" y="16" font-size="13" font-weight="bold">${o.title} — ${n} node${n === 1 ? '' : 's'}, ${failures} failure${failures === 1 ? '' : 's'}, ${new Date(o.since).toISOString()} to ${new Date(o.until).toISOString()}</text>
${legend}${raw('\n')}${axis}${raw('\n')}${body}
</svg>
`.text;
}

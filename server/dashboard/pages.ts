/**
 * The dashboard's pages (docs/decisions/0018): pure functions from the
 * facts a route gathered to HTML. No inline script or style (the pages are
 * served with a Content-Security-Policy of 'self'); the one script,
 * assets/dashboard.js, only keeps rows live and shows the stream's state.
 * Actions are plain forms carrying the session's CSRF token; the server
 * answers the first post with a confirmation page naming the nodes.
 */
import { html, raw, q, type Html } from './html.js';

export interface Viewer {
  user: string;
  role: string;
  csrf: string;
  /** Whether the viewer may power, reinstall, cancel (role operator or above). */
  canAct: boolean;
  /** Whether the viewer may accept and reject discovered machines (role admin). */
  canAdmin?: boolean;
  /** The last event id before the page's facts were read: its live stream starts there, so nothing in between is lost. */
  liveAfter?: number;
}

export const ACTIONS = {
  'power-on': { label: 'Power on', verb: 'power on', warn: '' },
  'power-off': { label: 'Power off', verb: 'power off (hard)', warn: 'The nodes lose power at once.' },
  'power-cycle': { label: 'Power cycle', verb: 'power-cycle', warn: 'The nodes restart at once.' },
  reinstall: { label: 'Reinstall', verb: 'reinstall', warn: 'This erases their disks.' },
  cancel: { label: 'Cancel lifecycle', verb: 'cancel the lifecycle of', warn: 'They go back to enrolled, disarmed, booting from disk.' },
} as const;
export type ActionName = keyof typeof ACTIONS;
export function isAction(s: unknown): s is ActionName {
  return typeof s === 'string' && Object.hasOwn(ACTIONS, s);
}

/** 12s, 5m 3s, 2h 10m, 3d 4h. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A state as a badge; the class is from a closed set of characters (states are [a-z-]). */
function stateBadge(state: string): Html {
  const cls = /^[a-z-]{1,40}$/.test(state) ? state : 'other';
  return html`<span class="state st-${cls}" data-state="${state}">${state}</span>`;
}

export function layout(title: string, viewer: Viewer | null, body: Html, opts: { live?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · fleet</title>
<link rel="stylesheet" href="/ui/assets/dashboard.css">
<script src="/ui/assets/dashboard.js" defer></script>
</head>
<body${opts.live ? html` data-live="connecting" data-after="${viewer?.liveAfter ?? ''}"` : ''}>
<header class="top">
  <a class="brand" href="/ui/">fleet</a>
  ${
    viewer
      ? html`<nav><a href="/ui/">Overview</a> <a href="/ui/nodes">Nodes</a> <a href="/ui/timeline">Timeline</a> <a href="/ui/discovery">Discovery</a></nav>
  <span class="who">${viewer.user} <span class="role">(${viewer.role})</span></span>
  <form class="logout" method="post" action="/ui/logout"><input type="hidden" name="_csrf" value="${viewer.csrf}"><button type="submit">Log out</button></form>`
      : ''
  }
  ${opts.live ? html`<span class="live" id="live-status">live: connecting</span>` : ''}
</header>
<main>
${body}
</main>
</body>
</html>
`.text;
}

export function loginPage(message?: string): string {
  return layout(
    'Log in',
    null,
    html`<h1>Log in</h1>
<p>Paste your fleet API token (<code>fleet user token NAME</code>; the first admin's is <code>DATA/api.token</code>).</p>
${message ? html`<p class="error" role="alert">${message}</p>` : ''}
<form method="post" action="/ui/login" class="login">
  <label>API token <input type="password" name="token" id="token" autocomplete="off" required maxlength="512"></label>
  <button type="submit" id="login">Log in</button>
</form>`,
  );
}

export interface OverviewData {
  total: number;
  byState: [string, number][];
  byProfile: [string, number][];
  /** state → profile → count */
  matrix: { states: string[]; profiles: string[]; counts: Record<string, Record<string, number>> };
  failed: { name: string; state: string; step: string; reason: string; time: string }[];
  failedTotal: number;
  mismatches: { name: string; reason: string; since: string }[];
  loopSuspects: { name: string; time: string; reason: string }[];
  staleAgents: { name: string; lastSeen: string | null; ageSeconds: number | null }[];
  staleAfterSeconds: number;
}

const nodeLink = (name: string): Html => html`<a href="/ui/nodes/${q(name)}">${name}</a>`;

export function overviewPage(viewer: Viewer, d: OverviewData): string {
  return layout(
    'Overview',
    viewer,
    html`<h1>Overview</h1>
<section class="cards">
  <div class="card"><div class="n" id="total">${d.total}</div><div>nodes</div></div>
  ${d.byState.map(([s, n]) => html`<a class="card" href="/ui/nodes?state=${q(s)}"><div class="n" data-count-state="${s}">${n}</div><div>${stateBadge(s)}</div></a>`)}
</section>
<h2>By state and profile</h2>
<table class="grid" id="matrix">
<thead><tr><th>state \\ profile</th>${d.matrix.profiles.map((p) => html`<th>${p}</th>`)}<th>total</th></tr></thead>
<tbody>${d.matrix.states.map(
      (s) =>
        html`<tr><th>${stateBadge(s)}</th>${d.matrix.profiles.map((p) => html`<td>${d.matrix.counts[s]?.[p] ?? 0}</td>`)}<td>${Object.values(d.matrix.counts[s] ?? {}).reduce((a, b) => a + b, 0)}</td></tr>`,
    )}</tbody>
<tfoot><tr><th>total</th>${d.byProfile.map(([, n]) => html`<td>${n}</td>`)}<td>${d.total}</td></tr></tfoot>
</table>
<h2>Failed and held nodes (${d.failedTotal})</h2>
${
  d.failed.length
    ? html`<table id="failed"><thead><tr><th>node</th><th>state</th><th>step</th><th>reason</th><th>since</th></tr></thead><tbody>${d.failed.map(
        (f) => html`<tr><td>${nodeLink(f.name)}</td><td>${stateBadge(f.state)}</td><td>${f.step}</td><td class="reason">${f.reason}</td><td>${f.time}</td></tr>`,
      )}</tbody></table>${d.failedTotal > d.failed.length ? html`<p><a href="/ui/nodes?state=failed">all ${d.failedTotal} …</a></p>` : ''}`
    : html`<p class="none">none</p>`
}
<h2>BMC mismatches (${d.mismatches.length})</h2>
${
  d.mismatches.length
    ? html`<table id="mismatches"><thead><tr><th>node</th><th>reason</th><th>since</th></tr></thead><tbody>${d.mismatches.map(
        (m) => html`<tr><td>${nodeLink(m.name)}</td><td class="reason">${m.reason}</td><td>${m.since}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}
<h2>Boot-loop suspects, recent (${d.loopSuspects.length})</h2>
${
  d.loopSuspects.length
    ? html`<table id="loops"><thead><tr><th>node</th><th>when</th><th>why</th></tr></thead><tbody>${d.loopSuspects.map(
        (m) => html`<tr><td>${nodeLink(m.name)}</td><td>${m.time}</td><td class="reason">${m.reason}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}
<h2>Stale agents (${d.staleAgents.length}; not heard from for ${formatAge(d.staleAfterSeconds)})</h2>
${
  d.staleAgents.length
    ? html`<table id="stale"><thead><tr><th>node</th><th>last seen</th></tr></thead><tbody>${d.staleAgents.map(
        (a) => html`<tr><td>${nodeLink(a.name)}</td><td>${a.lastSeen ?? 'never'}${a.ageSeconds !== null ? html` (${formatAge(a.ageSeconds)} ago)` : ''}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}`,
    { live: true },
  );
}

export const SORT_KEYS = ['name', 'state', 'profile', 'since'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface NodesQueryView {
  nodeset: string;
  state: string;
  sort: SortKey;
  dir: 'asc' | 'desc';
  page: number;
  size: number;
}

export interface NodeRow {
  name: string;
  profile: string;
  /** How the profile installs: `kickstart`, or `image NAME`. */
  install: string;
  /** The image the node last fetched its install plan for: name and digest (image installs only). */
  installed: { image: string; digest: string } | null;
  state: string;
  since: string;
  inStateSeconds: number;
  lastEvent: { kind: string; time: string } | null;
  failure: { step: string; reason: string } | null;
  flags: string[];
}

export interface NodesData {
  query: NodesQueryView;
  /** Matching nodes in all pages. */
  total: number;
  rows: NodeRow[];
  states: [string, number][];
  /** Names of the nodeset not in the store (folded). */
  missingFolded: string;
  /** The filter's error (a bad nodeset), shown instead of rows. */
  error?: string;
}

function nodesHref(v: NodesQueryView, change: Partial<NodesQueryView>): string {
  const n = { ...v, ...change };
  const p = new URLSearchParams();
  if (n.nodeset) p.set('nodeset', n.nodeset);
  if (n.state) p.set('state', n.state);
  if (n.sort !== 'name') p.set('sort', n.sort);
  if (n.dir !== 'asc') p.set('dir', n.dir);
  if (n.page > 1) p.set('page', String(n.page));
  if (n.size !== 100) p.set('size', String(n.size));
  const s = p.toString();
  return `/ui/nodes${s ? `?${s}` : ''}`;
}

export function nodesPage(viewer: Viewer, d: NodesData): string {
  const v = d.query;
  const pages = Math.max(1, Math.ceil(d.total / v.size));
  const sortLink = (k: SortKey, label: string): Html => {
    const active = v.sort === k;
    const dir = active && v.dir === 'asc' ? 'desc' : 'asc';
    return html`<a href="${nodesHref(v, { sort: k, dir, page: 1 })}" class="${active ? `sorted ${v.dir}` : ''}" data-sort="${k}">${label}${active ? (v.dir === 'asc' ? ' ▲' : ' ▼') : ''}</a>`;
  };
  const first = d.total === 0 ? 0 : (v.page - 1) * v.size + 1;
  const last = Math.min(d.total, v.page * v.size);
  return layout(
    'Nodes',
    viewer,
    html`<h1>Nodes</h1>
<form method="get" action="/ui/nodes" class="filter" id="filter">
  <label>nodeset or @group <input name="nodeset" id="nodeset" value="${v.nodeset}" placeholder="n[001-100] or @rack1" maxlength="4096"></label>
  <label>state <select name="state" id="state"><option value="">any</option>${d.states.map(
    ([s, n]) => html`<option value="${s}"${v.state === s ? raw(' selected') : ''}>${s} (${n})</option>`,
  )}</select></label>
  <button type="submit">Filter</button>
</form>
${d.error ? html`<p class="error" role="alert">${d.error}</p>` : ''}
${d.missingFolded ? html`<p class="warn">not in the store: ${d.missingFolded}</p>` : ''}
<p class="count" id="count">${d.total} node${d.total === 1 ? '' : 's'}${d.total ? html`, ${first}–${last}` : ''}</p>
<table class="nodes" id="nodes" data-live-rows>
<thead><tr><th>${sortLink('name', 'node')}</th><th>${sortLink('profile', 'profile')}</th><th>install</th><th>${sortLink('state', 'state')}</th><th>${sortLink('since', 'in state')}</th><th>last event</th><th>failure / flags</th></tr></thead>
<tbody>${d.rows.map(
      (r) => html`<tr data-node="${r.name}"><td>${nodeLink(r.name)}</td><td>${r.profile}</td><td class="install">${r.install}${r.installed ? html`<br><code class="digest" title="${r.installed.image} ${r.installed.digest}">${r.installed.digest.replace(/^sha256:/, '').slice(0, 12)}</code>` : ''}</td><td class="state-cell">${stateBadge(r.state)}</td><td class="since" data-since="${r.since}" title="${r.since}">${formatAge(r.inStateSeconds)}</td><td class="last">${r.lastEvent ? html`${r.lastEvent.kind} <span class="t">${r.lastEvent.time}</span>` : ''}</td><td class="reason">${r.failure ? html`${r.failure.step}: ${r.failure.reason}` : ''}${r.flags.map((f) => html` <span class="flag">${f}</span>`)}</td></tr>`,
    )}</tbody>
</table>
<nav class="pager">${v.page > 1 ? html`<a href="${nodesHref(v, { page: v.page - 1 })}" rel="prev">← previous</a>` : ''} page ${v.page} of ${pages} ${v.page < pages ? html`<a href="${nodesHref(v, { page: v.page + 1 })}" rel="next">next →</a>` : ''}</nav>
${viewer.canAct && v.nodeset && !v.state && !d.error && d.total > 0 ? actionForms(viewer, v.nodeset, 'these nodes') : ''}`,
    { live: true },
  );
}

/** The action buttons: forms posting to /ui/actions, answered by a confirmation page. Only for roles that may act. */
function actionForms(viewer: Viewer, nodeset: string, what: string): Html {
  if (!viewer.canAct) return html``;
  return html`<section class="actions" id="actions"><h2>Actions on ${what}</h2>${Object.entries(ACTIONS).map(
    ([name, a]) => html`<form method="post" action="/ui/actions"><input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="action" value="${name}"><input type="hidden" name="nodeset" value="${nodeset}"><button type="submit" class="act act-${name}" data-action="${name}">${a.label}</button></form>`,
  )}</section>`;
}

export interface NodeData {
  name: string;
  profile: string;
  state: string;
  since: string;
  inStateSeconds: number;
  pet: boolean;
  armed: boolean;
  ip: string | null;
  macs: string[];
  lastSeen: string | null;
  deadline: string | null;
  waitingFor: string | null;
  failure: { step: string; reason: string; time: string } | null;
  flags: { flag: string; reason: string }[];
  bmc: { address: string; port: number | null; protocol: string; credentials: string; username?: string } | null;
  events: { id: number; time: string; kind: string; fromState: string | null; toState: string | null; actor: string; details: unknown }[];
  moreEvents: boolean;
  inventory: { reportedAt: string; digest: string; inventory: unknown } | null;
  /** The tail of the node's console log (operators only); null: none or not shown. */
  console: string | null;
  /** The hardware changes between the last two reports; null with fewer than two. */
  inventoryDiff: { beforeAt: string; refused: string | null; changes: string[]; notCompared: string[] } | null;
}

function details(d: unknown): Html {
  if (d === null || d === undefined) return html``;
  const text = JSON.stringify(d);
  return html`<code class="details">${text.length > 400 ? `${text.slice(0, 400)}…` : text}</code>`;
}

export function nodePage(viewer: Viewer, d: NodeData): string {
  return layout(
    d.name,
    viewer,
    html`<h1 data-node="${d.name}">${d.name} <span class="state-cell">${stateBadge(d.state)}</span></h1>
<dl class="facts">
  <dt>profile</dt><dd>${d.profile}</dd>
  <dt>in state since</dt><dd title="${d.since}">${d.since} (${formatAge(d.inStateSeconds)})</dd>
  ${d.waitingFor ? html`<dt>waiting for</dt><dd>${d.waitingFor}${d.deadline ? html` (until ${d.deadline})` : ''}</dd>` : ''}
  ${d.failure ? html`<dt>failure</dt><dd class="reason" id="failure">${d.failure.step}: ${d.failure.reason} <span class="t">${d.failure.time}</span></dd>` : ''}
  <dt>pet</dt><dd>${d.pet ? 'yes (reinstall needs force)' : 'no'}</dd>
  <dt>armed</dt><dd>${d.armed ? 'yes' : 'no'}</dd>
  <dt>IP</dt><dd>${d.ip ?? '—'}</dd>
  <dt>MACs</dt><dd>${d.macs.join(', ') || '—'}</dd>
  <dt>last seen</dt><dd>${d.lastSeen ?? 'never'}</dd>
  ${d.flags.map((f) => html`<dt>flag</dt><dd><span class="flag">${f.flag}</span> ${f.reason}</dd>`)}
</dl>
<h2>BMC</h2>
${
  d.bmc
    ? html`<dl class="facts" id="bmc"><dt>address</dt><dd>${d.bmc.address}${d.bmc.port !== null ? html`:${d.bmc.port}` : ''}</dd><dt>protocol</dt><dd>${d.bmc.protocol}</dd><dt>credentials</dt><dd>${d.bmc.credentials} (the secret is never shown)</dd></dl>`
    : html`<p class="none">no BMC: power is manual</p>`
}
${actionForms(viewer, d.name, d.name)}
<h2>Story</h2>
<ol class="timeline" id="events">${d.events.map(
      (e) => html`<li data-event="${e.id}"><span class="t">${e.time}</span> <span class="kind">${e.kind}</span>${e.toState ? html` ${e.fromState ? html`${stateBadge(e.fromState)} → ` : ''}${stateBadge(e.toState)}` : ''} <span class="actor">${e.actor}</span> ${details(e.details)}</li>`,
    )}</ol>
${d.moreEvents ? html`<p>older events: <code>fleet events ${d.name}</code></p>` : ''}
${d.console !== null ? html`<h2>Console log, last lines</h2><pre class="console" id="console-tail">${d.console}</pre><p class="t">all of it: <code>DATA/console/${d.name}.log</code>; attach with <code>fleet console ${d.name}</code></p>` : ''}
<h2>Inventory</h2>
${
  d.inventory
    ? html`<p>reported ${d.inventory.reportedAt}, digest <code>${d.inventory.digest.slice(0, 16)}</code></p>
${
  d.inventoryDiff
    ? html`<h3>Changes since the report of ${d.inventoryDiff.beforeAt}</h3>${
        d.inventoryDiff.refused
          ? html`<p class="warn">${d.inventoryDiff.refused}</p>`
          : d.inventoryDiff.changes.length
            ? html`<ul id="inventory-diff">${d.inventoryDiff.changes.map((c) => html`<li class="reason">${c}</li>`)}</ul>`
            : html`<p class="none" id="inventory-diff">no hardware change</p>`
      }${d.inventoryDiff.notCompared.length ? html`<p class="t">not compared (unknown in the new report): ${d.inventoryDiff.notCompared.join(', ')}</p>` : ''}`
    : ''
}
<pre class="inventory" id="inventory">${JSON.stringify(d.inventory.inventory, null, 2)}</pre>`
    : html`<p class="none">no inventory reported</p>`
}`,
    { live: true },
  );
}

export function confirmPage(viewer: Viewer, action: ActionName, nodeset: string, names: string[], folded: string): string {
  const a = ACTIONS[action];
  const shown = names.slice(0, 200);
  return layout(
    'Confirm',
    viewer,
    html`<h1>Confirm: ${a.label}</h1>
<p class="confirm" id="confirm-text">You are about to <strong>${a.verb}</strong> ${names.length} node${names.length === 1 ? '' : 's'}: <strong id="confirm-nodes">${folded}</strong>. ${a.warn}</p>
<ul class="names">${shown.map((n) => html`<li>${n}</li>`)}${names.length > shown.length ? html`<li>… and ${names.length - shown.length} more</li>` : ''}</ul>
<form method="post" action="/ui/actions" id="confirm-form"><input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="action" value="${action}"><input type="hidden" name="nodeset" value="${nodeset}"><input type="hidden" name="confirm" value="${folded}">${action === 'reinstall' ? html`<label class="force"><input type="checkbox" name="force" value="yes" id="force"> force: pets too, and past failed doctor checks</label> ` : ''}<button type="submit" id="confirm" class="act act-${action}">${a.label} ${names.length} node${names.length === 1 ? '' : 's'}</button> <a href="/ui/">Back</a></form>`,
  );
}

export interface ActionResultRow {
  node: string;
  ok: boolean;
  text: string;
}

export function resultPage(viewer: Viewer, action: ActionName, rows: ActionResultRow[]): string {
  const ok = rows.filter((r) => r.ok).length;
  return layout(
    'Result',
    viewer,
    html`<h1>${ACTIONS[action].label}: ${ok} of ${rows.length} done</h1>
<table id="results"><thead><tr><th>node</th><th>result</th><th></th></tr></thead><tbody>${rows.map(
      (r) => html`<tr class="${r.ok ? 'ok' : 'failed'}"><td>${nodeLink(r.node)}</td><td>${r.ok ? 'ok' : 'failed'}</td><td class="reason">${r.text}</td></tr>`,
    )}</tbody></table>`,
  );
}

export function errorPage(viewer: Viewer | null, status: number, code: string, message: string): string {
  return layout(
    'Error',
    viewer,
    html`<h1>${status}: ${code}</h1><p class="error" role="alert">${message}</p><p><a href="/ui/">Overview</a></p>`,
  );
}

export interface TimelineView {
  nodeset: string;
  /** As given: a duration back from now (2h) or an ISO time. */
  since: string;
  until: string;
  rows: number;
  /** The SVG (built by dashboard/timeline.ts, escaped there). */
  svg: string;
  error?: string;
  truncated: boolean;
}

export function timelinePage(viewer: Viewer, v: TimelineView): string {
  const p = new URLSearchParams();
  if (v.nodeset) p.set('nodeset', v.nodeset);
  p.set('since', v.since);
  if (v.until) p.set('until', v.until);
  const windows = ['fit', '15m', '1h', '6h', '24h', '7d'];
  const zoom = (since: string): string => {
    const q2 = new URLSearchParams(p);
    q2.set('since', since);
    q2.delete('until');
    return `/ui/timeline?${q2.toString()}`;
  };
  return layout(
    'Timeline',
    viewer,
    html`<h1>Reinstall timeline</h1>
<form method="get" action="/ui/timeline" class="filter" id="timeline-filter">
  <label>nodeset or @group <input name="nodeset" id="nodeset" value="${v.nodeset}" placeholder="all nodes" maxlength="4096"></label>
  <label>since <input name="since" id="since" value="${v.since}" placeholder="fit, 2h or 2026-01-01T10:00:00Z" maxlength="40"></label>
  <label>until <input name="until" id="until" value="${v.until}" placeholder="now" maxlength="40"></label>
  <button type="submit">Show</button>
</form>
<p class="zoom">window: ${windows.map((w) => html`<a href="${zoom(w)}"${v.since === w ? raw(' class="sorted"') : ''}>${w}</a> `)} · <a href="/ui/timeline.svg?${p.toString()}" download="fleet-timeline.svg" id="svg-download">SVG</a></p>
${v.error ? html`<p class="error" role="alert">${v.error}</p>` : ''}
${v.truncated ? html`<p class="warn">too many events: the picture stops early; narrow the nodeset or the window</p>` : ''}
${v.rows === 0 && !v.error ? html`<p class="none">no state change in this window</p>` : ''}
<div class="timeline-svg" id="timeline">${raw(v.svg)}</div>`,
  );
}

export interface DiscoveryView {
  policy: string;
  rules: string[];
  machines: {
    mac: string;
    ip: string | null;
    hostname: string | null;
    arch: string | null;
    firstSeen: string;
    lastSeen: string;
    /** e.g. "Dell PowerEdge R650, serial ABC, 2 × Xeon, 256 GiB, 2 disks, 4 NICs"; null: never inspected. */
    hardware: string | null;
    bmcOf: string | null;
  }[];
  planned: { mac: string; name: string; rule: string; ip: string | null; profile: string; onAccept: string; bmc: string | null; notes: string[] }[];
  unplanned: { mac: string; status: string; reason: string; rule: string | null }[];
  rejected: { mac: string; rejectedAt: string; rejectedBy: string }[];
}

export function discoveryPage(viewer: Viewer, d: DiscoveryView): string {
  return layout(
    'Discovery',
    viewer,
    html`<h1>Discovery</h1>
<p>Policy <strong>${d.policy}</strong>; rules: ${d.rules.length ? d.rules.join(', ') : html`<span class="none">none in fleet.yaml</span>`}. ${viewer.canAdmin ? 'Accept or reject each machine below (asked first), or' : 'Accept or reject (role admin) with'} <code>fleet discover --accept</code> / <code>--reject</code>.</p>
<h2>Machines no node declares (${d.machines.length})</h2>
${
  d.machines.length
    ? html`<table id="discovered"><thead><tr><th>MAC</th><th>IP</th><th>hostname</th><th>arch</th><th>hardware</th><th>first seen</th><th>last seen</th></tr></thead><tbody>${d.machines.map(
        (m) =>
          html`<tr data-mac="${m.mac}"><td><code>${m.mac}</code></td><td>${m.ip ?? '—'}</td><td>${m.hostname ?? '—'}</td><td>${m.arch ?? '—'}</td><td>${m.bmcOf ? html`BMC of <code>${m.bmcOf}</code>` : (m.hardware ?? html`<span class="none">not inspected</span>`)}</td><td>${m.firstSeen}</td><td>${m.lastSeen}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}
<h2>Naming plan: planned (${d.planned.length})</h2>
${
  d.planned.length
    ? html`<table id="planned"><thead><tr><th>MAC</th><th>name</th><th>rule</th><th>IP</th><th>BMC</th><th>profile</th><th>on accept</th><th>notes</th>${viewer.canAdmin ? html`<th></th>` : ''}</tr></thead><tbody>${d.planned.map(
        (p) =>
          html`<tr data-mac="${p.mac}"><td><code>${p.mac}</code></td><td><strong>${p.name}</strong></td><td>${p.rule}</td><td>${p.ip ?? '—'}</td><td>${p.bmc ?? '—'}</td><td>${p.profile}</td><td>${p.onAccept}</td><td class="t">${p.notes.join('; ')}</td>${viewer.canAdmin ? html`<td>${discoveryForm(viewer, 'accept', p.mac)} ${discoveryForm(viewer, 'reject', p.mac)}</td>` : ''}</tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}
<h2>Not planned (${d.unplanned.length})</h2>
${
  d.unplanned.length
    ? html`<table id="unplanned"><thead><tr><th>MAC</th><th>status</th><th>rule</th><th>why</th>${viewer.canAdmin ? html`<th></th>` : ''}</tr></thead><tbody>${d.unplanned.map(
        (u) => html`<tr data-mac="${u.mac}"><td><code>${u.mac}</code></td><td>${u.status}</td><td>${u.rule ?? '—'}</td><td class="reason">${u.reason}</td>${viewer.canAdmin ? html`<td>${discoveryForm(viewer, 'reject', u.mac)}</td>` : ''}</tr>`,
      )}</tbody></table>`
    : html`<p class="none">none</p>`
}
<h2>Rejected (${d.rejected.length})</h2>
${
  d.rejected.length
    ? html`<table id="rejected"><thead><tr><th>MAC</th><th>when</th><th>by</th></tr></thead><tbody>${d.rejected.map((r) => html`<tr><td><code>${r.mac}</code></td><td>${r.rejectedAt}</td><td>${r.rejectedBy}</td></tr>`)}</tbody></table>`
    : html`<p class="none">none</p>`
}`,
  );
}

function discoveryForm(viewer: Viewer, action: 'accept' | 'reject', mac: string): Html {
  return html`<form method="post" action="/ui/discovery" class="inline"><input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="action" value="${action}"><input type="hidden" name="mac" value="${mac}"><button type="submit" class="act act-${action}" data-discovery="${action}">${action === 'accept' ? 'Accept' : 'Reject'}</button></form>`;
}

/** The question before a discovery decision: what the machine becomes (accept) or that plans will skip it (reject). */
export function discoveryConfirmPage(
  viewer: Viewer,
  action: 'accept' | 'reject',
  mac: string,
  planned: { name: string; profile: string; onAccept: string; ip: string | null } | null,
): string {
  const what =
    action === 'accept' && planned
      ? html`accept <code>${mac}</code> as node <strong id="confirm-name">${planned.name}</strong> (profile ${planned.profile}, address ${planned.ip ?? 'none'}). ${planned.onAccept === 'install' ? html`On accept it is <strong>installed: this erases its disks</strong>.` : 'On accept its inventory is kept; nothing is installed.'}`
      : html`reject <code>${mac}</code>: plans skip it and list it as rejected (take it back with <code>fleet discover --unreject</code>).`;
  return layout(
    'Confirm',
    viewer,
    html`<h1>Confirm: ${action}</h1>
<p class="confirm" id="confirm-text">You are about to ${what}</p>
<form method="post" action="/ui/discovery" id="confirm-form"><input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="action" value="${action}"><input type="hidden" name="mac" value="${mac}"><input type="hidden" name="confirm" value="${planned?.name ?? mac}"><button type="submit" id="confirm" class="act act-${action}">${action === 'accept' ? 'Accept' : 'Reject'}</button> <a href="/ui/discovery">Back</a></form>`,
  );
}

export function messagePage(viewer: Viewer, title: string, lines: string[]): string {
  return layout(title, viewer, html`<h1>${title}</h1><ul id="message">${lines.map((l) => html`<li>${l}</li>`)}</ul><p><a href="/ui/discovery">Discovery</a> · <a href="/ui/">Overview</a></p>`);
}

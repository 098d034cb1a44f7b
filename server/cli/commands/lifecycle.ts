/**
 * `fleet reinstall`, `fleet status`, `fleet watch`, `fleet cancel`: thin
 * clients of the lifecycle API. One line per node, failures grouped last
 * with their reason, --json for scripts, exit 1 when any node failed.
 */
import { createInterface } from 'node:readline/promises';
import { parseStagger } from '../../bmc/fanout.js';
import { parseDurationMs } from '../../../common/duration.js';
import { Exit, FleetError } from '../../../common/errors.js';
import type { ApiEvent, CancelRequest, LifecycleActionResponse, NodeStatus, ReinstallRequest, StatusResponse } from '../../../common/api/schemas.js';
import { foldNames, NodeSet } from '../../nodeset/index.js';
import { apiRequest } from '../client.js';
import { foldFailures } from '../fold.js';
import { openEventStream } from '../sse.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type ClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';
import { EVENT } from '../../../common/events.js';
import { OUT_OF_SERVICE_STATES, RESTING_STATES, RUN_START_STATES, S } from '../../lifecycle/states.js';

/** What a node rests in: watch ends when every node rests. */
const RESTING: ReadonlySet<string> = new Set(RESTING_STATES);
const OUT_OF_SERVICE: ReadonlySet<string> = new Set(OUT_OF_SERVICE_STATES);

export interface LifecycleCliDeps {
  /** Asks a yes/no question; default: on the terminal (stdin and stdout must be TTYs). */
  confirm?: (question: string) => Promise<boolean>;
  /** Clock (ms) for elapsed times. */
  now?: () => number;
  /** Redraw period of the live view on a terminal. Default 500 ms. */
  redrawMs?: number;
}

/** 45s, 4m12s, 1h55m, 2d3h */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs(text, { defaultUnit: 's', units: ['s', 'm', 'h'] });
  if (ms === undefined) throw new FleetError('usage.invalid', `bad --timeout '${text}' (e.g. 90s, 45m, 2h)`);
  if (ms <= 0) throw new FleetError('usage.invalid', '--timeout must be positive');
  return ms;
}

async function ttyConfirm(io: CliIo, question: string): Promise<boolean> {
  if (!io.isTTY || !process.stdin.isTTY) {
    throw new FleetError('usage.invalid', 'reinstall erases disks and there is no terminal to ask for confirmation: pass --yes');
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

async function getStatus(settings: ClientSettings, nodeset: string | undefined): Promise<StatusResponse> {
  const q = nodeset !== undefined ? `?nodeset=${encodeURIComponent(nodeset)}` : '';
  return apiRequest<StatusResponse>(settings, 'GET', `/api/v1/nodes/status${q}`);
}

function ago(iso: string, now: number): string {
  return `${formatDuration((now - Date.parse(iso)) / 1000)} ago`;
}

// ---------------------------------------------------------------- status

/** The install column: the profile's method and the image the agent last reported (its digest's first 12 hex), e.g. "stateless lab@3f2a9c01d4e5". */
export function installOf(n: Pick<NodeStatus, 'install' | 'image'>): string {
  const method = n.install ?? '-';
  if (!n.image) return method;
  return `${method} ${n.image.name}@${n.image.digest.replace(/^sha256:/, '').slice(0, 12)}`;
}

/** The status table: one line per node, failed nodes last with step and reason, flags after. */
export function formatStatus(res: StatusResponse, now: number): string {
  const ok = res.nodes.filter((n) => !OUT_OF_SERVICE.has(n.state));
  const failed = res.nodes.filter((n) => OUT_OF_SERVICE.has(n.state));
  const row = (n: NodeStatus): string[] => [
    n.name,
    n.state,
    formatDuration(n.inStateSeconds),
    n.timeoutInSeconds === null ? '-' : n.timeoutInSeconds < 0 ? `overdue ${formatDuration(-n.timeoutInSeconds)}` : formatDuration(n.timeoutInSeconds),
    installOf(n),
    n.lastEvent ? `${n.lastEvent.kind}${n.lastEvent.toState ? ` -> ${n.lastEvent.toState}` : ''} (${ago(n.lastEvent.time, now)})` : '-',
    n.flags.join(',') || '-',
  ];
  const lines = [formatTable(['name', 'state', 'in state', 'timeout in', 'install', 'last event', 'flags'], [...ok, ...failed].map(row))];
  if (failed.length) {
    lines.push(`-- ${failed.length} of ${res.nodes.length} ${[...new Set(failed.map((n) => n.state))].sort().join(' or ')}:`);
    lines.push(...foldFailures(failed.map((n) => ({ node: n.name, reason: `${n.state === S.held ? 'held: ' : ''}${n.failure ? `${n.failure.step}: ${n.failure.reason}` : n.state}` }))));
  }
  const flagged = res.nodes.filter((n) => n.flags.length);
  if (flagged.length) {
    lines.push(`-- ${flagged.length} flagged:`);
    lines.push(...foldFailures(flagged.flatMap((n) => n.flags.map((f) => ({ node: n.name, reason: `${f}: ${n.flagReasons[f] ?? ''}` })))));
  }
  const states = Object.entries(res.summary.byState)
    .map(([s, c]) => `${c} ${s}`)
    .join(', ');
  lines.push(`${res.summary.total} node${res.summary.total === 1 ? '' : 's'}${states ? `: ${states}` : ''}`);
  return lines.join('\n');
}

export async function cmdStatus(flags: GlobalFlags, nodeset: string | undefined, opts: { json?: boolean }, io: CliIo, deps: LifecycleCliDeps = {}): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await getStatus(settings, nodeset);
  io.stdout((opts.json ? JSON.stringify(res, null, 2) : formatStatus(res, (deps.now ?? Date.now)())) + '\n');
  if (res.missing.length) io.stderr(`fleet: not in the store: ${res.missingFolded}\n`);
  return res.missing.length || res.summary.failed ? Exit.FAILED : Exit.OK;
}

// ------------------------------------------------------------------ watch

interface WatchedNode {
  name: string;
  state: string;
  /** When its run started (elapsed counts from there), else when watching started. */
  startMs: number;
  endMs: number | null;
  failure?: string;
  flag?: string;
}

export interface WatchOptions {
  /** Stop after this long (ms) even if nodes are still in progress (exit 1). */
  timeoutMs?: number;
  json?: boolean;
  /** The status to start from (reinstall --watch passes the nodes it started). */
  initial?: StatusResponse;
  /** Stream the events after this id (default: the newest event of the watched nodes). */
  after?: number;
}

/**
 * Follows nodes until every one rests (ready, failed, enrolled): on a
 * terminal one live line per node (state, elapsed) and a summary; otherwise
 * one plain line per event. Exit 1 when any node failed or the timeout hit.
 */
export async function watchNodes(settings: ClientSettings, nodeset: string, io: CliIo, opts: WatchOptions = {}, deps: LifecycleCliDeps = {}): Promise<number> {
  const now = deps.now ?? Date.now;
  const started = now();
  const status = opts.initial ?? (await getStatus(settings, nodeset));
  const nodes = new Map<string, WatchedNode>();
  let cursor = 0;
  for (const n of status.nodes) {
    const runStart = n.runStartedAt ? Date.parse(n.runStartedAt) : NaN;
    nodes.set(n.name, {
      name: n.name,
      state: n.state,
      startMs: Number.isFinite(runStart) ? runStart : started,
      endMs: RESTING.has(n.state) ? Date.parse(n.since) : null,
      ...(n.failure ? { failure: `${n.failure.step}: ${n.failure.reason}` } : {}),
      ...(n.flags.length ? { flag: n.flags.join(',') } : {}),
    });
    if (n.lastEvent && n.lastEvent.id > cursor) cursor = n.lastEvent.id;
  }
  if (opts.after !== undefined) cursor = opts.after;
  if (status.missing.length) io.stderr(`fleet: not in the store: ${status.missingFolded}\n`);
  const live = io.isTTY && !opts.json;
  let drawn = 0;
  const allResting = (): boolean => [...nodes.values()].every((n) => RESTING.has(n.state));

  const render = (final: boolean): void => {
    if (!live) return;
    const t = now();
    const size = io.termSize?.();
    const list = [...nodes.values()];
    const active = list.filter((n) => !RESTING.has(n.state));
    const rest = list.filter((n) => RESTING.has(n.state));
    // The frame must fit the screen: the cursor cannot move above its top to redraw.
    const shown = [...active, ...rest].slice(0, size ? Math.max(1, Math.min(40, size.rows - 3)) : 40);
    const rows = shown.map((n) => [n.name, n.state, formatDuration(((n.endMs ?? t) - n.startMs) / 1000), n.failure ?? n.flag ?? '']);
    const lines = formatTable(['node', 'state', 'elapsed', ''], rows).split('\n');
    if (list.length > shown.length) lines.push(`... and ${list.length - shown.length} more`);
    const summary = summaryLine(list, t - started);
    const hint = ' (watching; Ctrl-C stops watching, not the reinstall)';
    lines.push(final ? summary : size && summary.length + hint.length >= size.columns ? `${summary} (Ctrl-C: stop watching)` : summary + hint);
    // One line, one screen row: a row that wrapped would take rows the cursor-up below does not count, and
    // the top of the previous frame would stay on the screen (the full reasons are printed when the watch ends).
    const fitted = size ? lines.map((l) => fitWidth(l, size.columns)) : lines;
    io.stdout((drawn ? `\x1b[${drawn}F\x1b[J` : '') + fitted.join('\n') + '\n');
    drawn = fitted.length;
  };

  const onEvent = (e: ApiEvent): void => {
    const n = e.node ? nodes.get(e.node) : undefined;
    if (opts.json) io.stdout(JSON.stringify(e) + '\n');
    else if (!live) io.stdout(formatEventLine(e) + '\n');
    if (!n) return;
    if (e.kind === EVENT.stateChanged && e.toState) {
      n.state = e.toState;
      const d = (e.details ?? {}) as { step?: unknown; reason?: unknown };
      if ((RUN_START_STATES as readonly string[]).includes(e.toState)) {
        n.startMs = Date.parse(e.time);
        delete n.failure;
        delete n.flag;
      }
      n.endMs = RESTING.has(e.toState) ? Date.parse(e.time) : null;
      if (OUT_OF_SERVICE.has(e.toState)) n.failure = `${e.toState === S.held ? 'held: ' : ''}${String(d.step ?? 'unknown')}: ${String(d.reason ?? 'failed')}`;
    } else if (e.kind === EVENT.loopSuspect) {
      n.flag = 'boot-loop-suspect';
    }
  };

  render(false);
  const timer = live ? setInterval(() => render(false), deps.redrawMs ?? 500) : undefined;
  let timedOut = false;
  try {
    // Bounded: the nodes come to rest, the timeout, or too many failed reconnects.
    for (let failures = 0; !allResting() && failures < 30; ) {
      if (opts.timeoutMs !== undefined && now() - started >= opts.timeoutMs) {
        timedOut = true;
        break;
      }
      const ctl = new AbortController();
      const left = opts.timeoutMs !== undefined ? opts.timeoutMs - (now() - started) : undefined;
      const stop = left !== undefined ? setTimeout(() => ctl.abort(), left) : undefined;
      try {
        const stream = await openEventStream(settings, { nodeset, after: cursor }, ctl.signal);
        failures = 0;
        for await (const e of stream) {
          if (e.id > cursor) cursor = e.id;
          onEvent(e);
          if (allResting()) break;
        }
      } catch (e) {
        if (e instanceof FleetError && e.code === 'auth.invalid') throw e;
        if (ctl.signal.aborted) continue;
        failures++;
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        if (stop) clearTimeout(stop);
        ctl.abort();
      }
    }
  } finally {
    if (timer) clearInterval(timer);
  }
  render(true);
  const list = [...nodes.values()];
  const failed = list.filter((n) => OUT_OF_SERVICE.has(n.state));
  if (!live) {
    if (opts.json) io.stdout(JSON.stringify({ summary: summaryCounts(list), failed: failed.map((n) => ({ node: n.name, reason: n.failure ?? 'failed' })) }) + '\n');
    else {
      if (failed.length) io.stdout(failedLines(failed, list.length));
      io.stdout(summaryLine(list, now() - started) + '\n');
    }
  } else if (failed.length) {
    io.stdout(failedLines(failed, list.length));
  }
  if (timedOut) io.stderr(`fleet: stopped watching after the timeout; ${list.filter((n) => !RESTING.has(n.state)).length} nodes still in progress\n`);
  return failed.length || timedOut || status.missing.length ? Exit.FAILED : Exit.OK;
}

/**
 * A line cut to fit a terminal row: at most columns - 1 characters (a line
 * that fills the last column leaves some terminals wrapping), ending in '…'
 * when cut. Characters, not display cells: reasons are ASCII in practice.
 */
export function fitWidth(line: string, columns: number): string {
  const max = Math.max(1, columns - 1);
  const chars = [...line];
  return chars.length <= max ? line : `${chars.slice(0, max - 1).join('')}…`;
}

/** The end of a watch: how many failed, then the failures folded by reason. */
function failedLines(failed: WatchedNode[], total: number): string {
  const lines = [`-- ${failed.length} of ${total} failed:`, ...foldFailures(failed.map((n) => ({ node: n.name, reason: n.failure ?? 'failed' })))];
  return lines.join('\n') + '\n';
}

function summaryCounts(list: WatchedNode[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const n of list) by[n.state] = (by[n.state] ?? 0) + 1;
  return by;
}

function summaryLine(list: WatchedNode[], elapsedMs: number): string {
  const by = summaryCounts(list);
  const ready = by.ready ?? 0;
  const failed = by.failed ?? 0;
  const busy = list.filter((n) => !RESTING.has(n.state)).length;
  return `${list.length} node${list.length === 1 ? '' : 's'}: ${ready} ready, ${failed} failed, ${busy} in progress (${formatDuration(elapsedMs / 1000)})`;
}

export function formatEventLine(e: ApiEvent): string {
  const transition = e.fromState || e.toState ? ` ${e.fromState ?? '-'} -> ${e.toState ?? '-'}` : '';
  const d = (e.details ?? {}) as Record<string, unknown>;
  const why = typeof d.reason === 'string' ? ` (${d.step ? `${String(d.step)}: ` : ''}${d.reason})` : typeof d.event === 'string' ? ` (${d.event})` : '';
  return `${e.time}  ${e.node ?? '-'}  ${e.kind}${transition}${why}`;
}

export async function cmdWatch(flags: GlobalFlags, nodeset: string, opts: { timeout?: string; json?: boolean }, io: CliIo, deps: LifecycleCliDeps = {}): Promise<number> {
  const timeoutMs = parseTimeout(opts.timeout);
  const settings = await resolveClientSettings(flags, io);
  return watchNodes(settings, nodeset, io, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(opts.json ? { json: true } : {}) }, deps);
}

// -------------------------------------------------------- reinstall, cancel

function formatActions(res: LifecycleActionResponse, describeOk: (r: LifecycleActionResponse['results'][number]) => string): string {
  const ok = res.results.filter((r) => r.ok).map((r) => `${r.node}: ${describeOk(r)}`);
  const failed = res.results.filter((r) => !r.ok).map((r) => ({ node: r.node, reason: r.error?.message ?? 'failed' }));
  const lines = [...ok];
  if (failed.length) lines.push(`-- ${failed.length} of ${res.results.length} refused:`, ...foldFailures(failed));
  return lines.join('\n');
}

export interface ReinstallFlags {
  profile?: string;
  stagger?: string;
  watch?: boolean;
  yes?: boolean;
  force?: boolean;
  json?: boolean;
  timeout?: string;
}

export async function cmdReinstall(flags: GlobalFlags, nodeset: string, opts: ReinstallFlags, io: CliIo, deps: LifecycleCliDeps = {}): Promise<number> {
  if (opts.stagger) parseStagger(opts.stagger); // usage errors before anything else
  const timeoutMs = parseTimeout(opts.timeout);
  // A bad nodeset is a usage error here, not after the question; @groups are the server's to resolve (getStatus, before any question).
  if (!nodeset.includes('@')) NodeSet.parse(nodeset);
  const settings = await resolveClientSettings(flags, io);
  const status = await getStatus(settings, nodeset);
  if (status.missing.length) io.stderr(`fleet: not in the store: ${status.missingFolded}\n`);
  if (status.nodes.length === 0) throw new FleetError('usage.invalid', `no node of ${nodeset} is in the store`);
  const pets = status.nodes.filter((n) => n.pet);
  const busy = status.nodes.filter((n) => !RESTING.has(n.state));
  const targets = status.nodes.filter((n) => (!n.pet || opts.force) && RESTING.has(n.state));
  if (pets.length && !opts.force) io.stderr(`fleet: ${foldNames(pets.map((n) => n.name))} ${pets.length === 1 ? 'is a pet' : 'are pets'}: not reinstalled without --force\n`);
  for (const line of foldFailures(busy.map((n) => ({ node: n.name, reason: `${n.state}: cancel first (fleet cancel)` })))) io.stderr(`fleet: ${line}\n`);
  if (targets.length === 0) {
    io.stderr('fleet: nothing to reinstall\n');
    return Exit.FAILED;
  }
  if (!opts.yes) {
    const names = foldNames(targets.map((n) => n.name));
    const question = `Reinstall ${targets.length} node${targets.length === 1 ? '' : 's'} ${names}${opts.profile ? ` with profile ${opts.profile}` : ''}? Their disks are erased. [y/N] `;
    const ok = await (deps.confirm ?? ((q: string) => ttyConfirm(io, q)))(question);
    if (!ok) {
      io.stderr('fleet: not confirmed; nothing was changed\n');
      return Exit.FAILED;
    }
  }
  const body: ReinstallRequest = {
    nodeset: foldNames(targets.map((n) => n.name)),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.stagger ? { stagger: opts.stagger } : {}),
    ...(opts.force ? { force: true } : {}),
  };
  const res = await apiRequest<LifecycleActionResponse>(settings, 'POST', '/api/v1/nodes/reinstall', body);
  const refusedLocally = status.nodes.length - targets.length;
  if (opts.json && !opts.watch) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
  } else if (!opts.json) {
    io.stdout(
      formatActions(
        res,
        (r) => `reinstalling (${r.from ?? '?'} -> ${r.state ?? '?'}${r.notBefore ? `, starts at ${new Date(r.notBefore).toLocaleTimeString()}` : ''})${r.note ? `: ${r.note}` : ''}`,
      ) + '\n',
    );
  }
  let code: number = res.summary.failed || refusedLocally || status.missing.length ? Exit.FAILED : Exit.OK;
  const accepted = res.results.filter((r) => r.ok).map((r) => r.node);
  if (opts.watch && accepted.length) {
    // Start from what the request did, and stream every event since the status read before it.
    const byNode = new Map(res.results.filter((r) => r.ok).map((r) => [r.node, r]));
    const after = Math.max(0, ...status.nodes.map((n) => n.lastEvent?.id ?? 0));
    const startedAt = new Date((deps.now ?? Date.now)()).toISOString();
    const initial: StatusResponse = {
      ...status,
      missing: [],
      missingFolded: '',
      nodes: status.nodes
        .filter((n) => byNode.has(n.name))
        .map((n) => ({ ...n, state: byNode.get(n.name)?.state ?? n.state, runStartedAt: startedAt, failure: null, flags: [], flagReasons: {} })),
    };
    const w = await watchNodes(
      settings,
      foldNames(accepted),
      io,
      { initial, after, ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(opts.json ? { json: true } : {}) },
      deps,
    );
    if (w !== Exit.OK) code = Exit.FAILED;
  }
  return code;
}

export async function cmdCancel(flags: GlobalFlags, nodeset: string, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<LifecycleActionResponse>(settings, 'POST', '/api/v1/nodes/cancel', { nodeset } satisfies CancelRequest);
  io.stdout((opts.json ? JSON.stringify(res, null, 2) : formatActions(res, (r) => `cancelled in ${r.from ?? '?'}, now ${r.state ?? '?'} (disarmed)`)) + '\n');
  return res.summary.failed ? Exit.FAILED : Exit.OK;
}

/**
 * `fleet events`: the newest events like tail, -n, --since, -f, against the
 * real admin app (REST API and event stream) on loopback.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cmdEvents, DEFAULT_EVENT_COUNT, eventCount, MAX_EVENT_COUNT, moreNote, type EventsFlags } from '../../../server/cli/commands/events.js';
import type { CliIo } from '../../../server/cli/io.js';
import { main } from '../../../server/cli/main.js';
import { buildAdminApp } from '../../../server/http/app.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';

describe('eventCount (-n/--limit)', () => {
  it('defaults to the newest 50, or every event since --since up to the maximum', () => {
    expect(eventCount({})).toBe(DEFAULT_EVENT_COUNT);
    expect(DEFAULT_EVENT_COUNT).toBe(50);
    expect(eventCount({ since: '2h' })).toBe(MAX_EVENT_COUNT);
    expect(eventCount({ limit: '7' })).toBe(7);
    expect(eventCount({ limit: '7', since: '2h' })).toBe(7);
    expect(eventCount({ limit: String(MAX_EVENT_COUNT) })).toBe(MAX_EVENT_COUNT);
  });

  it('refuses what is not a count from 1 to the maximum, with usage.invalid', () => {
    for (const bad of ['0', '-3', 'abc', '1.5', '', ' ', '1e3', '0x10', String(MAX_EVENT_COUNT + 1)]) {
      let err: unknown;
      try {
        eventCount({ limit: bad });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(FleetError);
      expect((err as FleetError).code).toBe('usage.invalid');
      expect((err as FleetError).message).toMatch(/-n\/--limit: .* is not a count of events from 1 to 10000/);
    }
  });
});

describe('moreNote', () => {
  it('says nothing when every matching event was shown', () => {
    expect(moreNote(12, false, undefined)).toBeUndefined();
  });
  it('names the count and how to see more', () => {
    expect(moreNote(50, true, undefined)).toBe('(showing the newest 50 events; older ones exist: -n N or --since for more)');
    expect(moreNote(10, true, '2h')).toBe('(showing the newest 10 events since 2h; older ones exist: -n N for more)');
  });
});

describe('fleet events against the server', () => {
  const TOKEN = 'events-cli-token-0123456789abcdef0123';
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let home: string;
  let now: number;

  function capture(): { io: CliIo; out: () => string; err: () => string } {
    let out = '';
    let err = '';
    return { io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, isTTY: false, home, cwd: home }, out: () => out, err: () => err };
  }
  const flags = () => ({ url, token: TOKEN });
  const lines = (s: string): string[] => s.split('\n').filter(Boolean);
  /** The changed profile's name of each printed event line, in order. */
  const names = (s: string): string[] => lines(s).map((l) => /"name":"([^"]+)"/.exec(l)?.[1] ?? '?');

  async function add(count: number, node: string | null = null, prefix = 'e'): Promise<void> {
    for (let i = 1; i <= count; i++) {
      await store.events.append({ kind: EVENT.profileChanged, node, actor: 'test', details: { name: `${prefix}${i}` } });
      now += 60_000;
    }
  }

  beforeEach(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'fleet-events-cli-'));
    now = Date.parse('2030-01-01T00:00:00Z');
    store = await openStore({ memory: true }, { secretKey: randomBytes(32), clock: () => new Date(now) });
    app = await buildAdminApp({ store, apiToken: TOKEN, logLevel: 'silent' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await app.close();
    await store.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('prints the newest 50 oldest first, with a note on stderr that more exist', async () => {
    await add(120);
    const c = capture();
    expect(await cmdEvents(flags(), undefined, {}, c.io)).toBe(0);
    expect(names(c.out())).toEqual(Array.from({ length: 50 }, (_, i) => `e${71 + i}`));
    expect(c.err()).toBe('(showing the newest 50 events; older ones exist: -n N or --since for more)\n');
  });

  it('-n N shows the newest N; all of them and no note when N covers the log; across server pages', async () => {
    await add(30);
    const five = capture();
    await cmdEvents(flags(), undefined, { limit: '5' }, five.io);
    expect(names(five.out())).toEqual(['e26', 'e27', 'e28', 'e29', 'e30']);
    expect(five.err()).toMatch(/newest 5 events/);
    const all = capture();
    await cmdEvents(flags(), undefined, { limit: '30' }, all.io);
    expect(lines(all.out())).toHaveLength(30);
    expect(all.err()).toBe('');
    await add(1100, null, 'p');
    const big = capture();
    await cmdEvents(flags(), undefined, { limit: '1050' }, big.io);
    const got = names(big.out());
    expect(got).toHaveLength(1050);
    expect(got[0]).toBe('p51');
    expect(got[1049]).toBe('p1100');
    expect(big.err()).toMatch(/newest 1050 events/);
  });

  it('--since a duration: every event since then, oldest first; -n caps it to the newest', async () => {
    // One a minute, the first 9.5 minutes ago (--since counts back from the real clock).
    now = Date.now() - 9.5 * 60_000;
    await add(10);
    const c = capture();
    await cmdEvents(flags(), undefined, { since: '3m' }, c.io);
    expect(names(c.out())).toEqual(['e8', 'e9', 'e10']);
    expect(c.err()).toBe('');
    const capped = capture();
    await cmdEvents(flags(), undefined, { since: '5m', limit: '2' }, capped.io);
    expect(names(capped.out())).toEqual(['e9', 'e10']);
    expect(capped.err()).toBe('(showing the newest 2 events since 5m; older ones exist: -n N for more)\n');
  });

  it('filters by nodeset and prints JSON', async () => {
    await add(3, 'valkyrie01', 'a');
    await add(3, 'valkyrie02', 'b');
    await add(3, null, 'c');
    const c = capture();
    await cmdEvents(flags(), 'valkyrie[01-02]', { limit: '4', json: true }, c.io);
    const events = JSON.parse(c.out()) as { node: string; details: { name: string } }[];
    expect(events.map((e) => `${e.node} ${e.details.name}`)).toEqual(['valkyrie01 a3', 'valkyrie02 b1', 'valkyrie02 b2', 'valkyrie02 b3']);
  });

  it('bad -n, --limit and --since are usage errors (exit 2) before any request', async () => {
    for (const [argv, message] of [
      [['-n', '0'], /-n\/--limit: '0' is not a count/],
      [['--limit', 'many'], /-n\/--limit: 'many' is not a count/],
      [['--since', 'yesterday'], /--since: 'yesterday' is neither an ISO time nor a duration/],
    ] as const) {
      const c = capture();
      // An unreachable URL: a request would fail with another message and exit 1.
      expect(await main(['node', 'fleet', '--url', 'http://127.0.0.1:9', 'events', ...argv], c.io)).toBe(2);
      expect(c.err()).toMatch(message);
    }
  });

  it('-n and --limit are one option through the command line', async () => {
    await add(5);
    for (const opt of ['-n', '--limit']) {
      const c = capture();
      expect(await main(['node', 'fleet', '--url', url, '--token', TOKEN, 'events', opt, '2'], c.io)).toBe(0);
      expect(names(c.out())).toEqual(['e4', 'e5']);
    }
  });

  async function until(cond: () => boolean, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('timed out waiting');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('-f prints the newest, then each new event within a second, once, and ends with 0 on abort', async () => {
    await add(3);
    const c = capture();
    const ctl = new AbortController();
    const done = cmdEvents(flags(), undefined, { limit: '2', follow: true }, c.io, { signal: ctl.signal });
    await until(() => lines(c.out()).length === 2, 5000);
    expect(names(c.out())).toEqual(['e2', 'e3']);
    const t0 = Date.now();
    await add(1, null, 'new');
    await until(() => c.out().includes('new1'), 3000);
    expect(Date.now() - t0).toBeLessThan(1000 + 500); // the stream polls every 500 ms
    await add(2, 'valkyrie01', 'more');
    await until(() => c.out().includes('more2'), 3000);
    ctl.abort();
    expect(await done).toBe(0);
    expect(names(c.out())).toEqual(['e2', 'e3', 'new1', 'more1', 'more2']);
  });

  it('-f with a nodeset follows only those nodes; with nothing matching it starts from now', async () => {
    // An hour old: --since 1m matches none of them, and following must not replay them.
    now = Date.now() - 3600_000;
    await add(2, 'valkyrie01', 'old');
    now = Date.now();
    const c = capture();
    const ctl = new AbortController();
    const done = cmdEvents(flags(), 'valkyrie01', { follow: true, json: true, since: '1m' }, c.io, { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 300));
    await add(1, 'valkyrie02', 'other');
    await add(1, 'valkyrie01', 'mine');
    await until(() => c.out().includes('mine1'), 3000);
    ctl.abort();
    expect(await done).toBe(0);
    const events = lines(c.out()).map((l) => JSON.parse(l) as { node: string; details: { name: string } });
    expect(events.map((e) => `${e.node} ${e.details.name}`)).toEqual(['valkyrie01 mine1']);
  });

  it('-f ends cleanly with exit 0 on SIGTERM and on SIGINT, and removes its handlers', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const saved = process.listeners(signal);
      process.removeAllListeners(signal);
      try {
        const c = capture();
        const done = cmdEvents(flags(), undefined, { follow: true }, c.io);
        await until(() => process.listenerCount(signal) === 1, 3000);
        process.emit(signal, signal);
        expect(await done).toBe(0);
        expect(process.listenerCount(signal)).toBe(0);
      } finally {
        for (const l of saved) process.on(signal, l);
      }
    }
  });

  it('-f reconnects from the last event when the stream ends, printing nothing twice', async () => {
    await add(1);
    const c = capture();
    const ctl = new AbortController();
    const opts: EventsFlags = { follow: true };
    const done = cmdEvents(flags(), undefined, opts, c.io, { signal: ctl.signal, retryMs: 10 });
    await until(() => lines(c.out()).length === 1, 3000);
    // Closing the server ends its streams; a new server on the same store and port takes over.
    const port = (app.server.address() as AddressInfo).port;
    await app.close();
    await add(1, null, 'while-down');
    app = await buildAdminApp({ store, apiToken: TOKEN, logLevel: 'silent' });
    await app.listen({ host: '127.0.0.1', port });
    await add(1, null, 'after');
    await until(() => c.out().includes('after1'), 5000);
    ctl.abort();
    expect(await done).toBe(0);
    expect(names(c.out())).toEqual(['e1', 'while-down1', 'after1']);
  });
});

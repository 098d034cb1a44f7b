/**
 * fleet's /metrics (server/metrics): the exposition parses under the text
 * format's rules (test/helpers/prom-text.ts, itself tested here against
 * what it must refuse), and each metric moves with what it counts: state
 * changes written by the store (time in state and install duration from a
 * pinned clock), rolled-back writes not counted, BMC samples, lease events,
 * boot-face requests and bytes by tree; gauges read from the store at scrape
 * time; /metrics guarded by the API token.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gauge, Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { buildAdminApp, buildBootApp } from '../../../server/http/app.js';
import { FileCache } from '../../../server/http/static.js';
import { bodyBytes, bootTreeOf, FleetMetrics, nameLabel, stateLabel } from '../../../server/metrics/index.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';
import { parsePromText, sumOf, valueOf, type PromFamily } from '../../helpers/prom-text.js';

const TOKEN = 'metrics-token-0123456789abcdef0123456789';

describe('the strict text-format parser', () => {
  const ok = [
    '# HELP a_total A counter.\n# TYPE a_total counter\na_total{x="1"} 3\na_total{x="2"} 0\n',
    '# HELP g A gauge with \\\\ and \\n in its help.\n# TYPE g gauge\ng -1.5e3\ng{l="q\\"uote\\\\back\\nline"} NaN 1700000000000\n',
    '# HELP h H.\n# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\nh_sum 4.5\nh_count 3\n',
  ];
  it.each(ok)('accepts %j', (text) => {
    expect(() => parsePromText(text)).not.toThrow();
  });

  it('unescapes label values and HELP', () => {
    const f = parsePromText(ok[1]!);
    expect(f.get('g')!.help).toBe('A gauge with \\ and \n in its help.');
    expect(f.get('g')!.samples[1]!.labels['l']).toBe('q"uote\\back\nline');
    expect(f.get('g')!.samples[1]!.timestamp).toBe(1700000000000);
  });

  const bad: [string, string, RegExp][] = [
    ['no final newline', '# HELP a A.\n# TYPE a gauge\na 1', /newline/],
    ['CRLF', '# HELP a A.\r\n# TYPE a gauge\r\na 1\r\n', /carriage/],
    ['no HELP', '# TYPE a gauge\na 1\n', /no HELP/],
    ['no TYPE', '# HELP a A.\na 1\n', /no TYPE/],
    ['unknown type', '# HELP a A.\n# TYPE a meter\na 1\n', /unknown type/],
    ['TYPE after samples', '# HELP a A.\na 1\n# TYPE a gauge\n', /after its samples/],
    ['second TYPE', '# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n', /second TYPE/],
    ['bad metric name', '# HELP 1a A.\n# TYPE 1a gauge\n', /bad metric name/],
    ['bad value', '# HELP a A.\n# TYPE a gauge\na one\n', /not a float/],
    ['bad escape', '# HELP a A.\n# TYPE a gauge\na{x="\\t"} 1\n', /bad escape/],
    ['unterminated label', '# HELP a A.\n# TYPE a gauge\na{x="1} 1\n', /unterminated|expected/],
    ['duplicate label', '# HELP a A.\n# TYPE a gauge\na{x="1",x="2"} 1\n', /duplicate label/],
    ['duplicate series', '# HELP a A.\n# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', /duplicate series/],
    ['not contiguous', '# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na 1\nb 1\na{x="2"} 1\n', /not contiguous/],
    ['negative counter', '# HELP a_total A.\n# TYPE a_total counter\na_total -1\n', /counter value/],
    ['buckets decrease', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n', /decrease/],
    ['le not increasing', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not increasing/],
    ['no +Inf', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /no \+Inf/],
    ['+Inf ≠ count', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /≠ _count/],
    ['no _sum', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n', /_sum or _count/],
  ];
  it.each(bad)('refuses %s', (_why, text, message) => {
    expect(() => parsePromText(text)).toThrow(message);
  });

  it("parses prom-client's own escaping of hostile label values", async () => {
    const reg = new Registry();
    const g = new Gauge({ name: 'x', help: 'help with \\ and\nnewline', labelNames: ['v'], registers: [reg] });
    const hostile = 'a"b\\c\nd}{,=';
    g.set({ v: hostile }, 1);
    const h = new Histogram({ name: 'y_seconds', help: 'h', labelNames: ['v'], buckets: [0.1, 1], registers: [reg] });
    h.observe({ v: hostile }, 0.5);
    h.observe({ v: hostile }, 5);
    const f = parsePromText(await reg.metrics());
    expect(f.get('x')!.samples[0]!.labels['v']).toBe(hostile);
    expect(f.get('x')!.help).toBe('help with \\ and\nnewline');
    expect(valueOf(f, 'y_seconds_bucket', { v: hostile, le: '1' })).toBe(1);
    expect(valueOf(f, 'y_seconds_count', { v: hostile })).toBe(2);
  });
});

describe('label rules', () => {
  it('folds unknown values into other', () => {
    expect(stateLabel('ready')).toBe('ready');
    expect(stateLabel('x{y}')).toBe('other');
    expect(nameLabel('arm-pxe')).toBe('arm-pxe');
    expect(nameLabel('Arm PXE')).toBe('other');
    expect(nameLabel('a'.repeat(41))).toBe('other');
  });

  it.each([
    ['/repo/*', 'repo'],
    ['/repo/debian/*', 'repo/debian'],
    ['/images/*', 'images'],
    ['/images/sha256/*', 'images/sha256'],
    ['/bootenv/vmlinuz', 'bootenv'],
    ['/bootenv/initrd.img', 'bootenv'],
    ['/bootenv/:node/plan', 'plan'],
    ['/agent/*', 'agent'],
    ['/agent/adopt.sh', 'adopt'],
    ['/boot.ipxe', 'script'],
    ['/boot/:id.ipxe', 'script'],
    ['/kickstart/:node.ks', 'kickstart'],
    ['/api/v1/boot-events/:node/:event', 'callback'],
    ['/inspection/:mac', 'inspection'],
    ['/inspection/:mac/next', 'inspection'],
    [undefined, 'none'],
    ['/something/else', 'other'],
  ])('boot route %s is tree %s', (url, tree) => {
    expect(bootTreeOf(url)).toBe(tree);
  });

  it('counts body bytes of strings, buffers and streams, none for HEAD', () => {
    expect(bodyBytes('GET', 'héllo', undefined)).toBe(6);
    expect(bodyBytes('GET', Buffer.alloc(10), '10')).toBe(10);
    expect(bodyBytes('GET', { pipe() {} }, '1234')).toBe(1234);
    expect(bodyBytes('HEAD', undefined, '1234')).toBe(0);
    expect(bodyBytes('GET', { pipe() {} }, 'x')).toBe(0);
  });
});

describe('FleetMetrics on a store', () => {
  let h: Harness;
  let metrics: FleetMetrics;
  let stop: () => void;
  let scrape: () => Promise<Map<string, PromFamily>>;

  beforeAll(async () => {
    h = await harness({ nodes: ['n1', 'n2', 'n3'] });
    metrics = new FleetMetrics({ clock: h.clock.now, processMetrics: false });
    stop = await metrics.attach(h.store);
    scrape = async () => parsePromText(await metrics.exposition(h.store));
  });
  afterAll(async () => {
    stop?.();
    await h?.close();
  });

  it('an empty scrape already parses and has every family', async () => {
    const f = await scrape();
    for (const name of [
      'fleet_nodes',
      'fleet_nodes_overdue',
      'fleet_lifecycle_transitions_total',
      'fleet_lifecycle_failures_total',
      'fleet_lifecycle_step_failures_total',
      'fleet_lifecycle_state_duration_seconds',
      'fleet_install_duration_seconds',
      'fleet_bmc_operation_duration_seconds',
      'fleet_dhcp_lease_events_total',
      'fleet_discovery_events_total',
      'fleet_boot_http_requests_total',
      'fleet_boot_http_response_bytes_total',
      'fleet_agents_connected',
      'fleet_agent_inventory_reports_total',
      'fleet_boot_loop_suspects_total',
      'fleet_events_total',
      'fleet_store_event_rows',
      'fleet_store_database_bytes',
    ]) {
      expect(f.has(name), name).toBe(true);
    }
    expect(valueOf(f, 'fleet_nodes', { state: 'enrolled', profile: 'compute' })).toBe(3);
    expect(valueOf(f, 'fleet_nodes_overdue', { state: 'installing' })).toBe(0);
  });

  it('a reinstall path moves transitions, time in state and install duration; a failure counts its step', async () => {
    const path = ['pxe-armed', 'power-cycling', 'netbooting', 'installing', 'installed', 'disk-armed', 'first-boot', 'configuring', 'ready'];
    h.clock.advance(100); // n1 rested 100 s in enrolled
    for (const s of path) {
      await h.put('n1', s);
      h.clock.advance(60);
    }
    await h.put('n2', 'pxe-armed');
    await h.store.events.append({ node: 'n2', kind: EVENT.stepFailed, actor: 'conductor', details: { step: 'arm-pxe', attempt: 1, code: 'bmc.auth_failed', reason: 'x', willRetry: false } });
    await h.store.nodes.setState('n2', 'failed', { actor: 'conductor', details: { event: 'fail', step: 'arm-pxe', reason: 'authentication failed' } });
    await h.store.events.append({ node: 'n3', kind: EVENT.loopSuspect, actor: 'boot', details: {} });

    const f = await scrape();
    expect(valueOf(f, 'fleet_lifecycle_transitions_total', { from: 'enrolled', to: 'pxe-armed' })).toBe(2);
    expect(valueOf(f, 'fleet_lifecycle_transitions_total', { from: 'configuring', to: 'ready' })).toBe(1);
    expect(valueOf(f, 'fleet_lifecycle_failures_total', { state: 'pxe-armed', step: 'arm-pxe' })).toBe(1);
    expect(valueOf(f, 'fleet_lifecycle_step_failures_total', { step: 'arm-pxe', code: 'bmc.auth_failed' })).toBe(1);
    // n1: 100 s in enrolled (seeded at attach), then 60 s in each state of the path; n2 left enrolled 640 s after attach.
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_count', { state: 'enrolled' })).toBe(2);
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_sum', { state: 'enrolled' })).toBe(100 + 640);
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_count', { state: 'installing' })).toBe(1);
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_sum', { state: 'installing' })).toBe(60);
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_bucket', { state: 'installing', le: '30' })).toBe(0);
    expect(valueOf(f, 'fleet_lifecycle_state_duration_seconds_bucket', { state: 'installing', le: '60' })).toBe(1);
    expect(valueOf(f, 'fleet_install_duration_seconds_sum', { outcome: 'ready' })).toBe(8 * 60);
    expect(valueOf(f, 'fleet_install_duration_seconds_count', { outcome: 'failed' })).toBe(1);
    expect(valueOf(f, 'fleet_boot_loop_suspects_total')).toBe(1);
    expect(valueOf(f, 'fleet_events_total', { kind: 'state.changed' })).toBe(path.length + 2);
    expect(valueOf(f, 'fleet_nodes', { state: 'ready', profile: 'compute' })).toBe(1);
    expect(valueOf(f, 'fleet_nodes', { state: 'failed', profile: 'compute' })).toBe(1);
    expect(valueOf(f, 'fleet_nodes', { state: 'enrolled', profile: 'compute' })).toBe(1);
  });

  it('the event log rows gauge is the row count; a rolled-back write counts nothing', async () => {
    const before = await scrape();
    const kindsBefore = sumOf(before, 'fleet_events_total');
    await expect(
      h.store.transaction(async (tx) => {
        await tx.events.append({ node: 'n3', kind: EVENT.agentInventory, actor: 'test' });
        await tx.nodes.setState('n3', 'pxe-armed', { actor: 'test' });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    const after = await scrape();
    expect(sumOf(after, 'fleet_events_total')).toBe(kindsBefore);
    expect(valueOf(after, 'fleet_agent_inventory_reports_total')).toBe(0);
    const all = await h.store.events.list({ limit: 1000 });
    expect(valueOf(after, 'fleet_store_event_rows')).toBe(all.events.length);
    // Every row the store holds was observed once (they were all written after attach, except the harness's set-up).
    const observed = sumOf(after, 'fleet_events_total');
    expect(observed).toBeLessThanOrEqual(all.events.length);
    const sinceAttach = all.events.filter((e) => e.actor !== 't');
    expect(observed).toBe(sinceAttach.length);
    expect(valueOf(after, 'fleet_store_database_bytes')).toBeGreaterThan(0);
  });

  it('nodes past their deadline are overdue by state', async () => {
    await h.put('n3', 'installing', { deadlineSeconds: 30 });
    expect(valueOf(await scrape(), 'fleet_nodes_overdue', { state: 'installing' })).toBe(0);
    h.clock.advance(31);
    expect(valueOf(await scrape(), 'fleet_nodes_overdue', { state: 'installing' })).toBe(1);
  });

  it('BMC samples, lease events and connected agents', async () => {
    metrics.observeBmc({ protocol: 'ipmi', operation: 'power.cycle', outcome: 'ok', seconds: 0.2 });
    metrics.observeBmc({ protocol: 'ipmi', operation: 'bootdev.set', outcome: 'auth_failed', seconds: 1.5 });
    metrics.observeBmc({ protocol: 'nonsense', operation: 'Power Cycle!', outcome: 'ok', seconds: -1 });
    metrics.observeLease({ action: 'add', outcome: 'discovered' });
    metrics.observeLease({ action: 'old', outcome: 'skipped' });
    metrics.observeLease({ action: 'zap', outcome: 'weird' });
    metrics.setSources({ agentsConnected: () => 7 });
    const f = await scrape();
    expect(valueOf(f, 'fleet_bmc_operation_duration_seconds_count', { protocol: 'ipmi', operation: 'bootdev.set', outcome: 'auth_failed' })).toBe(1);
    expect(valueOf(f, 'fleet_bmc_operation_duration_seconds_bucket', { protocol: 'ipmi', operation: 'power.cycle', outcome: 'ok', le: '0.25' })).toBe(1);
    expect(valueOf(f, 'fleet_bmc_operation_duration_seconds_count', { protocol: 'other', operation: 'other', outcome: 'ok' })).toBe(1);
    expect(valueOf(f, 'fleet_dhcp_lease_events_total', { action: 'add', outcome: 'discovered' })).toBe(1);
    expect(valueOf(f, 'fleet_dhcp_lease_events_total', { action: 'other', outcome: 'other' })).toBe(1);
    expect(valueOf(f, 'fleet_agents_connected')).toBe(7);
  });

  describe('the boot face and the admin route', () => {
    let dir: string;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'fleet-metrics-'));
      mkdirSync(join(dir, 'repo'));
      writeFileSync(join(dir, 'repo', 'pkg.deb'), randomBytes(4096));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('counts boot requests by tree and code, and the bytes of answers', async () => {
      const boot = await buildBootApp({
        store: h.store,
        serverUrl: 'http://192.0.2.1:8080',
        staticRoots: { repo: join(dir, 'repo') },
        fileCache: new FileCache(1 << 20, 1 << 20),
        metrics,
        logLevel: 'silent',
      });
      try {
        expect((await boot.inject({ url: '/repo/pkg.deb' })).statusCode).toBe(200);
        expect((await boot.inject({ url: '/repo/pkg.deb' })).statusCode).toBe(200);
        expect((await boot.inject({ method: 'HEAD', url: '/repo/pkg.deb' })).statusCode).toBe(200);
        expect((await boot.inject({ url: '/repo/missing' })).statusCode).toBe(404);
        expect((await boot.inject({ url: '/nowhere' })).statusCode).toBe(404);
        const script = await boot.inject({ url: '/boot.ipxe' });
        expect(script.statusCode).toBe(200);
        const f = await scrape();
        expect(valueOf(f, 'fleet_boot_http_requests_total', { tree: 'repo', code: '200' })).toBe(3);
        expect(valueOf(f, 'fleet_boot_http_requests_total', { tree: 'repo', code: '404' })).toBe(1);
        expect(valueOf(f, 'fleet_boot_http_requests_total', { tree: 'none', code: '404' })).toBe(1);
        expect(valueOf(f, 'fleet_boot_http_requests_total', { tree: 'script', code: '200' })).toBe(1);
        // Two whole GETs of 4096 bytes, the 404's JSON body, none for the HEAD.
        const repoBytes = valueOf(f, 'fleet_boot_http_response_bytes_total', { tree: 'repo' })!;
        expect(repoBytes).toBeGreaterThan(2 * 4096);
        expect(repoBytes).toBeLessThan(2 * 4096 + 400);
        expect(valueOf(f, 'fleet_boot_http_response_bytes_total', { tree: 'script' })).toBe(Buffer.byteLength(script.body));
      } finally {
        await boot.close();
      }
    });

    it('/metrics is on the admin face, needs the API token, and answers the text format', async () => {
      const admin = await buildAdminApp({ store: h.store, apiToken: TOKEN, logLevel: 'silent', metrics });
      const bare = await buildAdminApp({ store: h.store, apiToken: TOKEN, logLevel: 'silent' });
      try {
        const none = await admin.inject({ url: '/metrics' });
        expect(none.statusCode).toBe(401);
        expect(none.headers['x-fleet-error']).toBe('auth.missing');
        expect((await admin.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
        const res = await admin.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
        const f = parsePromText(res.body);
        expect(valueOf(f, 'fleet_nodes', { state: 'ready', profile: 'compute' })).toBe(1);
        expect((await admin.inject({ url: '/api/v1/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(404);
        const off = await bare.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
        expect(off.statusCode).toBe(501);
        expect((await bare.inject({ url: '/metrics' })).statusCode).toBe(401);
      } finally {
        await admin.close();
        await bare.close();
      }
    });
  });
});

describe('process metrics', () => {
  it('are on by default and parse', async () => {
    const h = await harness({ nodes: [] });
    const m = new FleetMetrics();
    try {
      const f = parsePromText(await m.exposition(h.store));
      expect(f.has('process_cpu_user_seconds_total')).toBe(true);
      expect(f.has('nodejs_eventloop_lag_seconds')).toBe(true);
    } finally {
      await h.close();
    }
  });
});

/**
 * Every command that acts on a nodeset prints its per-node failures folded
 * by reason (foldFailures): power, bootdev, bmc info, reinstall, cancel,
 * status, watch, inventory.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BmcResponse, InventoryResponse, LifecycleActionResponse, NodeStatus, StatusResponse } from '../../../common/api/schemas.js';
import { cmdCancel, cmdReinstall, formatStatus, watchNodes } from '../../../server/cli/commands/lifecycle.js';
import { main } from '../../../server/cli/main.js';
import { captureIo, recordingServer, type RecordingServer } from './recording-server.js';

const pad = (i: number): string => String(i).padStart(2, '0');
const names = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `valkyrie${pad(from + i)}`);

let srv: RecordingServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

function bmcAnswer(): BmcResponse {
  const results: BmcResponse['results'] = [
    ...names(1, 5).map((node) => ({ node, ok: true, power: 'on' as const, attempts: [], durationMs: 1 })),
    ...names(6, 40).map((node) => ({ node, ok: false, error: { code: 'node.not_found', message: 'not in the store' }, attempts: [], durationMs: 0 })),
    { node: 'valkyrie41', ok: false, error: { code: 'bmc.timeout', message: 'no answer in 10 s' }, attempts: [], durationMs: 1 },
  ];
  return { results, summary: { total: results.length, ok: 5, failed: 36 } };
}

function status(name: string, over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    name,
    profile: 'compute',
    pet: false,
    state: 'ready',
    since: '2030-01-01T00:00:00.000Z',
    inStateSeconds: 10,
    armed: false,
    deadline: null,
    timeoutInSeconds: null,
    waitingFor: null,
    runStartedAt: null,
    lastEvent: null,
    failure: null,
    flags: [],
    flagReasons: {},
    ...over,
  };
}

function statusResponse(nodes: NodeStatus[]): StatusResponse {
  const byState: Record<string, number> = {};
  for (const n of nodes) byState[n.state] = (byState[n.state] ?? 0) + 1;
  return { nodes, missing: [], missingFolded: '', summary: { total: nodes.length, byState, failed: byState.failed ?? 0, flagged: nodes.filter((n) => n.flags.length).length } };
}

const failedAt = (step: string, reason: string): NodeStatus['failure'] => ({ step, reason, time: '2030-01-01T00:00:00.000Z' });

describe('failures folded by reason', () => {
  for (const [cmd, args] of [
    ['power', ['power', 'status']],
    ['bootdev', ['bootdev', 'pxe']],
    ['bmc info', ['bmc', 'info']],
  ] as const) {
    it(`fleet ${cmd}`, async () => {
      srv = await recordingServer(() => bmcAnswer());
      const c = captureIo();
      expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', ...args, 'valkyrie[01-41]'], c.io)).toBe(1);
      const out = c.out().split('\n');
      expect(out.filter((l) => l.startsWith('valkyrie0') && !l.includes('not in the store'))).toHaveLength(5);
      expect(c.out()).toContain('-- 36 of 41 failed:\nvalkyrie[06-40]: not in the store\nvalkyrie41: no answer in 10 s\n');
    });
  }

  it('fleet bmc info prints the identity, and says what could not be read (FRU notes)', async () => {
    srv = await recordingServer((): BmcResponse => ({
      results: [
        { node: 'thor', ok: true, identity: { manufacturer: 'fleet-lab', model: 'lab-vm', serial: 'LAB-THOR', uuid: '0f6b1b9c-0000-4000-8000-000000000003', macs: [] }, attempts: [], durationMs: 1 },
        { node: 'valkyrie01', ok: true, identity: { uuid: '0f6b1b9c-0000-4000-8000-000000000001', macs: [], notes: ['FRU 0: no such FRU device'] }, attempts: [], durationMs: 1 },
      ],
      summary: { total: 2, ok: 2, failed: 0 },
    }));
    const c = captureIo();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'bmc', 'info', 'thor,valkyrie01'], c.io)).toBe(0);
    expect(c.out()).toMatch(/^thor: fleet-lab, lab-vm, serial LAB-THOR, uuid 0f6b1b9c-0000-4000-8000-000000000003$/m);
    expect(c.out()).toMatch(/^valkyrie01: uuid 0f6b1b9c-0000-4000-8000-000000000001 \(not read: FRU 0: no such FRU device\)$/m);
  });

  it('fleet cancel', async () => {
    srv = await recordingServer((): LifecycleActionResponse => ({
      results: [
        { node: 'n1', ok: true, from: 'installing', state: 'enrolled' },
        ...['n2', 'n3', 'n4'].map((node) => ({ node, ok: false, error: { code: 'state.invalid_transition', message: "enrolled: 'cancel' is not allowed there" } })),
      ],
      summary: { total: 4, ok: 1, failed: 3 },
    }));
    const c = captureIo();
    expect(await cmdCancel({ url: srv.url, token: 't' }, 'n[1-4]', {}, c.io)).toBe(1);
    expect(c.out()).toBe("n1: cancelled in installing, now enrolled (disarmed)\n-- 3 of 4 refused:\nn[2-4]: enrolled: 'cancel' is not allowed there\n");
  });

  it('fleet reinstall: busy nodes by state, and the refusals of the request', async () => {
    const nodes = [status('n1'), status('n2'), status('n3', { state: 'installing' }), status('n4', { state: 'installing' }), status('n5', { state: 'booting' })];
    srv = await recordingServer((r): StatusResponse | LifecycleActionResponse =>
      r.method === 'GET'
        ? statusResponse(nodes)
        : { results: [{ node: 'n1', ok: false, error: { code: 'conflict', message: 'changed underneath' } }, { node: 'n2', ok: false, error: { code: 'conflict', message: 'changed underneath' } }], summary: { total: 2, ok: 0, failed: 2 } },
    );
    const c = captureIo();
    expect(await cmdReinstall({ url: srv.url, token: 't' }, 'n[1-5]', { yes: true }, c.io)).toBe(1);
    expect(c.err()).toBe('fleet: n[3-4]: installing: cancel first (fleet cancel)\nfleet: n5: booting: cancel first (fleet cancel)\n');
    expect(c.out()).toBe('-- 2 of 2 refused:\nn[1-2]: changed underneath\n');
  });

  it('fleet status: failures and flags', () => {
    const res = statusResponse([
      status('n1'),
      status('n2', { state: 'failed', failure: failedAt('install', 'no disk') }),
      status('n3', { state: 'failed', failure: failedAt('install', 'no disk') }),
      status('n4', { state: 'failed', failure: failedAt('power', 'bmc timeout') }),
      status('n5', { flags: ['boot-loop-suspect'], flagReasons: { 'boot-loop-suspect': 'netbooted after install' } }),
      status('n6', { flags: ['boot-loop-suspect'], flagReasons: { 'boot-loop-suspect': 'netbooted after install' } }),
    ]);
    const text = formatStatus(res, Date.parse('2030-01-01T00:01:00.000Z'));
    expect(text).toContain('\n-- 3 of 6 failed:\nn[2-3]: install: no disk\nn4: power: bmc timeout\n-- 2 flagged:\nn[5-6]: boot-loop-suspect: netbooted after install\n');
  });

  it('fleet watch: the failures at the end', async () => {
    const initial = statusResponse([
      status('n1'),
      status('n2', { state: 'failed', failure: failedAt('install', 'no disk') }),
      status('n3', { state: 'failed', failure: failedAt('install', 'no disk') }),
    ]);
    const c = captureIo();
    // Every node rests already: watch reads nothing from the server.
    expect(await watchNodes({ url: 'http://127.0.0.1:9' }, 'n[1-3]', c.io, { initial })).toBe(1);
    expect(c.out()).toContain('-- 2 of 3 failed:\nn[2-3]: install: no disk\n');
  });

  it('fleet inventory: the nodes that never reported, as one nodeset', async () => {
    srv = await recordingServer((): InventoryResponse => ({ nodes: names(1, 12).map((node) => ({ node, reportedAt: null, inventory: null })), missing: [], missingFolded: '' }));
    const c = captureIo();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'inventory', 'valkyrie[01-12]', '--format', 'csv'], c.io)).toBe(0);
    expect(c.err()).toBe('fleet: no inventory reported yet: valkyrie[01-12]\n');
  });
});

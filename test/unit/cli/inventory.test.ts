/**
 * `fleet inventory` and `fleet inventory diff` against a recorded API answer
 * holding partial reports: unknown on stdout (CSV, table, JSON with the
 * reason), the partial nodes named on stderr, the refused diff said in words.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { InventoryDiffResponse, InventoryResponse } from '../../../common/api/schemas.js';
import type { Inventory } from '../../../common/inventory/types.js';
import { inventoryFromStored } from '../../../common/inventory/proto.js';
import { main } from '../../../server/cli/main.js';
import { captureIo, recordingServer, type RecordingServer } from './recording-server.js';

let srv: RecordingServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

// A report as an agent under emulation sent it: serial known, CPU and memory probes timed out.
const partial: Inventory = inventoryFromStored({
  collectedAtMs: '1796598000000',
  system: { manufacturer: 'QEMU', model: 'Standard PC (Q35 + ICH9 2009)', serial: 'LAB-0001' },
  completeness: {
    partial: true,
    unknown: [
      { section: 'cpus', reason: 'cpu: timed out after 10000 ms' },
      { section: 'memory', reason: 'mem: timed out after 10000 ms' },
    ],
  },
});
const answer = (): InventoryResponse => ({ nodes: [{ node: 'lab-node1', reportedAt: '2026-12-06T23:00:00.000Z', inventory: partial }], missing: [], missingFolded: '' });
const fleet = (...args: string[]) => ['node', 'fleet', '--url', srv!.url, '--token', 't', ...args];

describe('fleet inventory with a partial report', () => {
  it('--format csv: unknown, not 0; the serial that is known; stderr names the partial node', async () => {
    srv = await recordingServer(answer);
    const c = captureIo();
    expect(await main(fleet('inventory', 'lab-node1', '--format', 'csv'), c.io)).toBe(0);
    const [header, row] = c.out().split('\r\n');
    const rec = Object.fromEntries(header!.split(',').map((h, i) => [h, row!.split(',')[i]]));
    expect(rec).toMatchObject({ node: 'lab-node1', serial: 'LAB-0001', cpus: 'unknown', memory: 'unknown' });
    expect(c.err()).toBe('fleet: partial inventory (a probe failed; see unknown in --format json): lab-node1 (cpus, memory unknown)\n');
  });

  it('--format json: the reason beside "unknown"', async () => {
    srv = await recordingServer(answer);
    const c = captureIo();
    expect(await main(fleet('inventory', '--format', 'json'), c.io)).toBe(0);
    const inv = (JSON.parse(c.out()) as { inventory: Record<string, unknown> }[])[0]!.inventory;
    expect(inv.cpus).toBe('unknown');
    expect(inv.memory).toEqual({ totalBytes: 'unknown', dimms: [] });
    expect(inv.unknown).toEqual([
      { section: 'cpus', reason: 'cpu: timed out after 10000 ms' },
      { section: 'memory', reason: 'mem: timed out after 10000 ms' },
    ]);
  });

  it('fleet inventory diff: a partial baseline is said, not compared', async () => {
    srv = await recordingServer(
      (): InventoryDiffResponse => ({
        node: 'lab-node1',
        before: { id: 1, reportedAt: 't1' },
        after: { id: 2, reportedAt: 't2' },
        refused: 'baseline is partial (cpus, memory unknown): no comparison',
        notCompared: [],
        changes: [],
      }),
    );
    const c = captureIo();
    expect(await main(fleet('inventory', 'diff', 'lab-node1'), c.io)).toBe(0);
    expect(c.out()).toBe('lab-node1: report 1 (t1) -> report 2 (t2)\nbaseline is partial (cpus, memory unknown): no comparison\n');
  });
});

/**
 * The inventory report's hook for reconciliation with the BMC (issue 12
 * item 4): told the node after the report is stored, and never the report's
 * failure — a hook that throws is logged, the report is answered.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Inventory } from '../../../proto/gen/fleet/v1/agent.js';
import { createReports } from '../../../server/agents/reports.js';
import { DEFAULT_AGENT_LIMITS } from '../../../server/agents/index.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { openStore, type Store } from '../../../server/store/index.js';

let store: Store;
beforeEach(async () => {
  store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 't' });
  await store.nodes.upsert({ name: 'node1', profile: 'compute', macs: [], pet: false }, { actor: 't' });
});
afterEach(async () => store.close());

describe('reportInventory → afterInventory', () => {
  it('is told the node once the report is stored', async () => {
    const told: { node: string; stored: boolean }[] = [];
    const reports = createReports({
      store,
      recorder: createRecorder({ store }),
      limits: DEFAULT_AGENT_LIMITS,
      afterInventory: (node) => void store.inventory.count(node).then((n) => told.push({ node, stored: n === 1 })),
    });
    await reports.reportInventory('node1', { inventory: Inventory.fromPartial({ collectedAtMs: 1 }) });
    await new Promise((r) => setImmediate(r));
    expect(told).toEqual([{ node: 'node1', stored: true }]);
  });

  it('a hook that throws is logged; the report is answered all the same', async () => {
    const warned: object[] = [];
    const reports = createReports({
      store,
      recorder: createRecorder({ store }),
      limits: DEFAULT_AGENT_LIMITS,
      log: { info() {}, warn: (o) => warned.push(o), error() {} },
      afterInventory: () => {
        throw new Error('queue broken');
      },
    });
    const res = await reports.reportInventory('node1', { inventory: Inventory.fromPartial({ collectedAtMs: 1 }) });
    expect(res.recordedAtMs).toBeGreaterThan(0);
    expect(warned).toEqual([{ node: 'node1', err: 'queue broken' }]);
  });
});

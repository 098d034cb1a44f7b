/**
 * GET /api/v1/inventory and /inventory/:name/diff with partial reports: the
 * API carries `unknown` and `partial`, and the diff refuses a partial
 * baseline and names what the newer report does not know.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toInventory, type Inventory, type RawInventory } from '../../../agent/inventory/index.js';
import type { InventoryDiffResponse, InventoryResponse } from '../../../common/api/schemas.js';
import { inventoryToStored } from '../../../common/inventory/proto.js';
import { buildAdminApp as buildApp } from '../../../server/http/app.js';
import { openStore, type Store } from '../../../server/store/index.js';

const TOKEN = 'test-token-0123456789abcdef0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory');
const vm: Inventory = toInventory(JSON.parse(fs.readFileSync(path.join(FIX, 'debian-vm.json'), 'utf8')) as RawInventory);
const noMemory: Inventory = { ...vm, memory: { totalBytes: 0, dimms: [] }, unknown: [{ section: 'memory', reason: 'mem: timed out after 10000 ms' }], partial: true };
const noDisks: Inventory = { ...vm, disks: [], unknown: [{ section: 'disks', reason: 'sys block: EIO; diskLayout: EIO' }], partial: true };

describe('inventory routes with partial reports', () => {
  let store: Store;
  let app: FastifyInstance;
  const record = (node: string, inv: Inventory) => store.inventory.record(node, inventoryToStored(inv) as object, { actor: 'test' });
  const diff = async (node: string) => (await app.inject({ url: `/api/v1/inventory/${node}/diff`, headers: auth })).json() as InventoryDiffResponse;

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    app = await buildApp({ store, apiToken: TOKEN, logLevel: 'warn' });
    await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 'test' });
    for (const name of ['n1', 'n2']) await store.nodes.upsert({ name, profile: 'compute', macs: [], pet: false }, { actor: 'test' });
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  it('the latest report carries its unknown sections with reasons', async () => {
    await record('n1', noMemory);
    const res = (await app.inject({ url: '/api/v1/inventory?nodeset=n1', headers: auth })).json() as InventoryResponse;
    expect(res.nodes[0]!.inventory).toMatchObject({ partial: true, unknown: [{ section: 'memory', reason: 'mem: timed out after 10000 ms' }] });
  });

  it('diff: a partial baseline is not compared, and the answer says so', async () => {
    await record('n1', { ...vm, bios: { ...vm.bios, version: 'changed' } });
    expect(await diff('n1')).toMatchObject({ refused: 'baseline is partial (memory unknown): no comparison', notCompared: [], changes: [] });
  });

  it('diff: a partial newer report is no change for what it does not know', async () => {
    await record('n2', vm);
    await record('n2', noDisks);
    const d = await diff('n2');
    expect(d.refused).toBeNull();
    expect(d.changes).toEqual([]); // its disks are unknown, not gone
    expect(d.notCompared).toEqual([{ section: 'disks', reason: 'sys block: EIO; diskLayout: EIO' }]);
    await record('n2', { ...vm, disks: [] }); // complete, no disk: against a partial baseline, still no comparison
    expect((await diff('n2')).refused).toBe('baseline is partial (disks unknown): no comparison');
  });
});

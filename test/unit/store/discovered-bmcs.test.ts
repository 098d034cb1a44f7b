/** BMCs found by scan (migration 009_discovered_bmcs, server/store/repos/discovered-bmcs.ts). */
import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { encodeChannelAuthCaps } from '../../../server/bmc/ipmi/codec.js';
import { classifyHost, classifyIpmi, classifyRedfish } from '../../../server/discovery/scan-classify.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { engineHarness, ENGINES } from './engines.js';

describe.each(ENGINES)('%s', (engine) => {
  const h = engineHarness(engine);

  let nowMs = Date.parse('2026-01-01T00:00:00.000Z');
  let store: Store;

  const FP = 'CD:'.repeat(31) + 'CD';
  const ipmiBmc = (port = 623) =>
    classifyIpmi(
      {
        pong: { ok: { tag: 1, iana: 4542, oem: 0, entities: 0x81, interactions: 0, ipmi: true } },
        caps: { ok: { completionCode: 0, data: encodeChannelAuthCaps({ channel: 1, authTypes: 0x97, status: 0x04, ipmi20: true }) } },
      },
      port,
    );
  const ipmiSilent = () => classifyIpmi({ pong: { error: { code: 'bmc.timeout', message: 'x' } }, caps: { error: { code: 'bmc.timeout', message: 'x' } } }, 623);
  const rfBmc = (uuid = '92384634-2938-2342-8820-489239905423') =>
    classifyRedfish({ kind: 'http', status: 200, contentType: 'application/json', body: JSON.stringify({ RedfishVersion: '1.15.0', UUID: uuid, Vendor: 'Contoso', Product: 'BMC 9' }), fingerprint: FP }, 443);
  const rfSilent = () => classifyRedfish({ kind: 'refused', message: 'ECONNREFUSED' }, 443);

  beforeEach(async () => {
    nowMs = Date.parse('2026-01-01T00:00:00.000Z');
    store = await openStore(await h.fresh(), { secretKey: crypto.randomBytes(32), clock: () => new Date(nowMs) });
  });
  afterEach(async () => store?.close());

  describe('discovered BMCs (migration 009)', () => {
    it('migration 009_discovered_bmcs is applied, after 008_discovery', async () => {
      const applied = await store.appliedMigrations();
      expect(applied.indexOf('009_discovered_bmcs')).toBeGreaterThan(applied.indexOf('008_discovery'));
      expect(applied.indexOf('008_discovery')).toBeGreaterThan(0);
    });

    it('records a BMC once with a bmc.discovered event; a later scan refreshes last_seen and writes no second event', async () => {
      const first = await store.discoveredBmcs.record(classifyHost('192.0.2.10', ipmiBmc(), rfBmc()), { actor: 'alice', cause: 'BMC scan of 192.0.2.0/24' });
      expect(first.firstSeen).toBe(true);
      expect(first.bmc).toMatchObject({
        address: '192.0.2.10',
        uuid: '92384634-2938-2342-8820-489239905423',
        vendor: 'Contoso',
        product: 'BMC 9',
        tlsFingerprint: FP,
        firstSeen: '2026-01-01T00:00:00.000Z',
        lastSeen: '2026-01-01T00:00:00.000Z',
        nodes: [],
      });
      expect(first.bmc.ipmi).toMatchObject({ port: 623, versions: ['1.5', '2.0'], authTypes: ['none', 'md2', 'md5', 'password'] });
      expect(first.bmc.ipmi).not.toHaveProperty('verdict');
      expect(first.bmc.redfish).toMatchObject({ port: 443, rootRead: true, redfishVersion: '1.15.0' });

      nowMs += 60_000;
      const again = await store.discoveredBmcs.record(classifyHost('192.0.2.10', ipmiBmc(), rfBmc()), { actor: 'bob' });
      expect(again.firstSeen).toBe(false);
      expect(again.bmc).toMatchObject({ firstSeen: '2026-01-01T00:00:00.000Z', lastSeen: '2026-01-01T00:01:00.000Z' });

      const events = (await store.events.list({ kinds: [EVENT.bmcDiscovered] })).events;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        node: null,
        actor: 'alice',
        cause: 'BMC scan of 192.0.2.0/24',
        details: {
          address: '192.0.2.10',
          protocols: ['ipmi/623', 'redfish/443'],
          ipmiVersions: ['1.5', '2.0'],
          uuid: '92384634-2938-2342-8820-489239905423',
          vendor: 'Contoso',
          product: 'BMC 9',
          redfishVersion: '1.15.0',
          tlsFingerprint: FP,
        },
      });
    });

    it('a scan of one protocol keeps what the other found earlier', async () => {
      await store.discoveredBmcs.record(classifyHost('192.0.2.11', ipmiBmc(), rfBmc()), { actor: 't' });
      nowMs += 1000;
      const r = await store.discoveredBmcs.record(classifyHost('192.0.2.11', ipmiBmc(1623), null), { actor: 't' });
      expect(r.bmc.ipmi?.port).toBe(1623);
      expect(r.bmc.redfish?.port).toBe(443);
      expect(r.bmc.uuid).toBe('92384634-2938-2342-8820-489239905423');
      // A silent protocol in a later scan does not erase the earlier finding either.
      const s = await store.discoveredBmcs.record(classifyHost('192.0.2.11', ipmiSilent(), rfBmc('00000000-0000-0000-0000-000000000001')), { actor: 't' });
      expect(s.bmc.ipmi?.port).toBe(1623);
      expect(s.bmc.uuid).toBe('00000000-0000-0000-0000-000000000001');
    });

    it('lists in address order (numeric), with the nodes whose BMC is at that address', async () => {
      await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://192.0.2.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 't' });
      await store.credentials.upsert('c', 'admin', 'Secret-Pw-123', { actor: 't' });
      await store.nodes.upsert({ name: 'n1', profile: 'compute', macs: [], pet: false, bmc: { address: '192.0.2.10', port: 623, protocol: 'ipmi', credentials: 'c' } }, { actor: 't' });
      for (const a of ['192.0.2.100', '192.0.2.9', '192.0.2.10']) await store.discoveredBmcs.record(classifyHost(a, ipmiBmc(), rfSilent()), { actor: 't' });
      const list = await store.discoveredBmcs.list();
      expect(list.map((b) => [b.address, b.nodes])).toEqual([
        ['192.0.2.9', []],
        ['192.0.2.10', ['n1']],
        ['192.0.2.100', []],
      ]);
      expect(list[0]!.redfish).toBeNull();
      // The node that declares the address is named on its event.
      const ev = (await store.events.list({ kinds: [EVENT.bmcDiscovered] })).events.find((e) => (e.details as { address: string }).address === '192.0.2.10');
      expect(ev?.node).toBe('n1');
      expect(await store.discoveredBmcs.remove('192.0.2.9')).toBe(true);
      expect(await store.discoveredBmcs.remove('192.0.2.9')).toBe(false);
      expect(await store.discoveredBmcs.get('192.0.2.9')).toBeNull();
    });

    it('refuses what is not a BMC or not an address', async () => {
      await expect(store.discoveredBmcs.record(classifyHost('192.0.2.12', ipmiSilent(), rfSilent()), { actor: 't' })).rejects.toBeInstanceOf(FleetError);
      await expect(store.discoveredBmcs.record(classifyHost('bmc.example', ipmiBmc(), null), { actor: 't' })).rejects.toMatchObject({ code: 'request.invalid' });
      expect(await store.discoveredBmcs.list()).toEqual([]);
    });
  });
});

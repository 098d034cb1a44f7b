/**
 * Lease events from a real dnsmasq reach the store: real dnsmasq
 * (DnsmasqSupervisor) + the dhcp-script hook + the FIFO listener + the
 * consumer + a real store, clients in a network namespace. The load part
 * runs bench/discovery.ts with 200 perfdhcp clients (the bench runs 1000).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeSpec } from '../../server/model.js';
import { benchDiscovery } from '../../bench/discovery.js';
import { type NetbootLab, skipReason, startNetbootLab, udhcpc } from '../helpers/netns.js';

const reason = skipReason(['dnsmasq', 'udhcpc', 'bash']);
const loadReason = reason ?? skipReason(['perfdhcp']);
const suite = reason ? describe.skip : describe;

const KNOWN: NodeSpec = { name: 'known1', profile: 'compute', ip: '10.77.0.11', macs: ['52:54:00:aa:00:01'], pet: false };

async function until<T>(probe: () => Promise<T | null | undefined | false>, ms: number): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) return null;
    await new Promise((r) => setTimeout(r, 10));
  }
}

suite(`discovery from real dnsmasq lease events${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let nb: NetbootLab;

  beforeAll(async () => {
    nb = await startNetbootLab({ nodes: [KNOWN] });
  });

  afterAll(async () => {
    await nb?.stop();
  });

  it('an unknown PXE client is in store.discovered within 1 s of its lease, with arch and vendor class', async () => {
    const mac = '52:54:00:bb:00:01';
    const nic = await nb.lab.addClient(mac);
    const lease = await udhcpc(nb.lab, nic, { arch: 7 });
    expect(lease).not.toBeNull();
    const t0 = Date.now();
    const m = await until(() => nb.store.discovered.get(mac), 1000);
    expect(m, 'discovered within 1 s').not.toBeNull();
    console.log(`discovered ${Date.now() - t0} ms after udhcpc returned`);
    expect(m).toMatchObject({ ip: lease!.ip, arch: 'efi64', pxe: true, vendorClass: 'PXEClient:Arch:00007:UNDI:002001', node: null });
    const events = await nb.store.events.list({ kinds: ['machine.discovered'] });
    expect(events.events.some((e) => JSON.stringify(e).includes(mac))).toBe(true);
  });

  it('iPXE asking again updates the sighting (same machine, not a second one)', async () => {
    const mac = '52:54:00:bb:00:02';
    const nic = await nb.lab.addClient(mac);
    await udhcpc(nb.lab, nic, { arch: 0 });
    expect(await until(() => nb.store.discovered.get(mac), 1000)).not.toBeNull();
    const first = (await nb.store.discovered.get(mac))!;
    await new Promise((r) => setTimeout(r, 20));
    await udhcpc(nb.lab, nic, { arch: 0, userClass: 'iPXE' });
    const later = await until(async () => {
      const m = await nb.store.discovered.get(mac);
      return m && m.lastSeen > first.lastSeen ? m : null;
    }, 1000);
    expect(later).not.toBeNull();
    expect(later!.firstSeen).toBe(first.firstSeen);
    expect((await nb.store.discovered.list()).filter((x) => x.mac === mac)).toHaveLength(1);
  });

  it('a known MAC marks its node seen and is not listed as discovered', async () => {
    expect((await nb.store.nodes.get('known1'))!.lastSeen).toBeNull();
    const lease = await udhcpc(nb.lab, await nb.lab.addClient(KNOWN.macs[0]!), { arch: 0 });
    expect(lease!.ip).toBe('10.77.0.11');
    expect(await until(async () => (await nb.store.nodes.get('known1'))!.lastSeen, 1000)).not.toBeNull();
    expect(await nb.store.discovered.get(KNOWN.macs[0]!)).toBeNull();
  });

  it('the listener saw only well-formed, authenticated lines', () => {
    expect(nb.listener.stats()).toMatchObject({ malformed: 0, unauthenticated: 0, tooLong: 0 });
    expect(nb.consumer.stats().failed).toBe(0);
  });
});

(loadReason ? describe.skip : describe)(`discovery under load: 200 perfdhcp clients${loadReason ? ` (skipped: ${loadReason})` : ''}`, () => {
  it('every lease dnsmasq hands out lands in the store, none lost', async () => {
    // Six passes: perfdhcp never retransmits, so on a loaded machine (CI once got 193 of 200 with
    // three) later passes ask again for the clients whose exchange it dropped.
    const r = await benchDiscovery({ clients: 200, rate: 300, passes: 6, timeoutMs: 60_000 });
    expect(r.leases).toBe(200);
    expect(r.discovered).toBe(200);
    expect(r.lost).toBe(0);
    expect(r.malformed).toBe(0);
    expect(r.failed).toBe(0);
  }, 90_000);
});

/**
 * `fleet inventory reconcile` through the whole server path (issue 12 item
 * 4): fleet.yaml → store → the agent's latest inventory → the BMC's identity
 * read by the real providers (ipmi_sim over UDP on loopback; the DMTF-mockup
 * Redfish double over HTTPS) → reconcile → the bmc-mismatch flag and the
 * inventory.reconciled event → `fleet nodes`. Then the automatic
 * reconciliation after a report clears the flag once the agent and the BMC
 * agree. No BMC password is in any answer or event.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT } from '../../common/events.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { createAutoReconciler } from '../../server/inventory/reconcile-run.js';
import type { RunningServer } from '../../server/serve.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { makeTestPki, RedfishDouble } from '../helpers/redfish-double.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
const suite = READY ? describe : describe.skip;

const IPMI_PASSWORD = 'fleet-Sim-Pass1';
const RF_PASSWORD = 'Redfish-Bmc-Pw-4711';
const MACHINE_UUID = '6f2b8c1e-4d3a-4b2c-9e1f-0a1b2c3d4e5f';
const FRU = (serial: string) => ({ product: { manufacturer: 'Acme Corp', name: 'Rack 9000', serial, partNumber: 'PN-9', version: 'v1', assetTag: 'A-1' } });

/** An agent report in the stored (wire JSON) form: only the fields reconciliation reads. */
const report = (uuid: string, serial: string, macs: string[] = []) => ({
  collectedAtMs: String(Date.now()),
  system: { uuid, serial },
  nics: macs.map((mac, i) => ({ name: `eth${i}`, mac })),
});

suite(READY ? 'fleet inventory reconcile against ipmi_sim and the Redfish mockup' : 'fleet inventory reconcile — SKIPPED: ipmi_sim/ipmitool not installed', () => {
  let dir: string;
  let lab: IpmiSimLab;
  let rf: RedfishDouble;
  let srv: TestServer;
  let server: RunningServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-reconcile-'));
    await mkdir(join(dir, 'pki'));
    const pki = makeTestPki(join(dir, 'pki'));
    lab = await startIpmiSims(2, { password: IPMI_PASSWORD, uuid: (i) => (i === 0 ? MACHINE_UUID : undefined), fru: (i) => FRU(i === 0 ? 'SYS-0042' : 'SYS-0099') });
    rf = await RedfishDouble.start({ username: 'root', password: RF_PASSWORD, tls: pki.server });
    const [b0, b1] = lab.bmcs;
    srv = await startTestServer(
      `
cluster: {name: rc, domain: lab.local, timezone: UTC, management_address: 10.78.0.1}
networks:
  provisioning: {subnet: 10.78.0.0/16, unknown_range: 10.78.254.1-10.78.254.254}
credentials:
  sim: {username: admin, password_env: SIM_PASSWORD}
  rf: {username: root, password_env: RF_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.78.0.1/os"}}
nodes:
  ipmi01: {profile: compute, bmc: {address: 127.0.0.1, port: ${b0!.port}, protocol: ipmi, credentials: sim}}
  ipmi02: {profile: compute, bmc: {address: 127.0.0.1, port: ${b1!.port}, protocol: ipmi, credentials: sim}}
  rack01: {profile: compute, bmc: {address: 127.0.0.1, port: ${rf.port}, protocol: redfish, credentials: rf}}
  bare01: {profile: compute}
`,
      { dir, env: { SIM_PASSWORD: IPMI_PASSWORD, RF_PASSWORD }, bmc: { timeoutMs: 5000, retries: 0 } },
    );
    server = srv.server;
  }, 60_000);

  afterAll(async () => {
    await srv?.close();
    await rf?.close();
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('one line per node: match, mismatch (flagged), unknown without inventory; exit 1 on a mismatch', async () => {
    const st = server.store;
    await st.inventory.record('ipmi01', report(MACHINE_UUID.toUpperCase(), 'SYS-0042'), { actor: 'node:ipmi01' });
    // The classic mis-cabling: ipmi02's agent runs on the machine whose BMC is ipmi01's.
    await st.inventory.record('ipmi02', report(MACHINE_UUID, 'SYS-0042'), { actor: 'node:ipmi02' });
    await st.inventory.record('rack01', report('11111111-2222-4333-8444-555555555555', 'NOT-THIS-ONE', ['52:54:00:aa:bb:cc']), { actor: 'node:rack01' });

    const r = await srv.fleet('inventory', 'reconcile', 'ipmi[01-02],rack01,bare01');
    expect(r.code, r.out + r.err).toBe(1);
    // In nodeset order, as every fleet command.
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toBe('bare01  unknown   (no inventory yet)');
    expect(lines[1]).toBe(`ipmi01  match     uuid=${MACHINE_UUID} serial=SYS-0042`);
    expect(lines[2]).toBe(`ipmi02  mismatch  uuid agent=${MACHINE_UUID} bmc=${lab.bmcs[1]!.uuid}  serial agent=SYS-0042 bmc=SYS-0099`);
    expect(lines[3]).toMatch(/^rack01  mismatch  uuid agent=11111111-2222-4333-8444-555555555555 bmc=[0-9a-f-]{36}  serial agent=NOT-THIS-ONE bmc=\S+  macs agent=52:54:00:aa:bb:cc bmc=\S+$/);
    expect(r.err).toContain('fleet: flagged bmc-mismatch (the BMC describes another machine; check its cabling and fleet.yaml): ipmi02,rack01');
    for (const secret of [IPMI_PASSWORD, RF_PASSWORD]) expect(r.out + r.err).not.toContain(secret);

    // The Redfish side read the mockup's ComputerSystem and its EthernetInterfaces.
    const json = await srv.fleet('inventory', 'reconcile', 'rack01', '--format', 'json');
    const res = JSON.parse(json.out) as { results: { bmc: { uuid: string; serial: string; macs: string[] }; checks: { field: string; bmc: string | null }[]; flag: string }[] };
    expect(res.results[0]!.bmc).toMatchObject({ uuid: String(rf.system()['UUID']).toLowerCase(), serial: rf.system()['SerialNumber'] });
    expect(res.results[0]!.bmc.macs.length).toBeGreaterThan(0);
    expect(res.results[0]!.checks.find((c) => c.field === 'macs')).toMatchObject({ result: 'mismatch', bmc: [...res.results[0]!.bmc.macs].sort().join(',') });
    expect(res.results[0]!.flag).toBe('unchanged');

    const nodes = await srv.fleet('nodes');
    expect(nodes.out).toMatch(/^ipmi02 .* bmc-mismatch\s*$/m);
    expect(nodes.out).toMatch(/^ipmi01 .* -\s*$/m);
    const show = await srv.fleet('show', 'ipmi02');
    expect(show.out).toMatch(/^flag\s+bmc-mismatch since \S+: uuid differs: agent /m);

    const events = (await st.events.list({ kinds: [EVENT.inventoryReconciled], limit: 100 })).events;
    expect(events.map((e) => e.node).sort()).toEqual(['bare01', 'ipmi01', 'ipmi02', 'rack01', 'rack01']);
    const text = JSON.stringify(events);
    for (const secret of [IPMI_PASSWORD, RF_PASSWORD]) expect(text).not.toContain(secret);
  });

  it('after an agent report, the automatic reconciliation clears the flag once agent and BMC agree', async () => {
    const st = server.store;
    const transport = await IpmiTransport.open();
    const auto = createAutoReconciler({ store: st, providers: { ipmiTransport: transport }, timeoutMs: 5000, retries: 0 });
    try {
      // ipmi02 recabled: its agent now reports the machine its BMC describes.
      await st.inventory.record('ipmi02', report(lab.bmcs[1]!.uuid, 'SYS-0099'), { actor: 'node:ipmi02' });
      auto.schedule('ipmi02');
      auto.schedule('ipmi02');
      auto.schedule('bare01'); // no BMC: skipped, no event
      await auto.idle();
      expect((await st.flags.list()).map((f) => f.node)).toEqual(['rack01']);
      const last = (await st.events.list({ node: 'ipmi02', kinds: [EVENT.inventoryReconciled], order: 'desc', limit: 5 })).events;
      // Scheduled twice while the first ran: one more run with the same report, never more — and that
      // run changes nothing, so it writes no event (one event per change of verdict, not per report).
      const fromReports = last.filter((e) => (e.details as { trigger: string }).trigger === 'report');
      expect(fromReports).toHaveLength(1);
      expect(last[0]!.details).toMatchObject({ status: 'match', trigger: 'report', flag: { change: 'cleared' } });
      expect(last[0]!.actor).toBe('node:ipmi02');
      expect((await st.events.list({ node: 'bare01', kinds: [EVENT.inventoryReconciled], limit: 10 })).events).toHaveLength(1);
    } finally {
      auto.stop();
      await transport.close();
    }
  });

  it('a node the store does not know: named, exit 1; rack01 fixed by its agent: match, cleared', async () => {
    await server.store.inventory.record('rack01', report(String(rf.system()['UUID']), String(rf.system()['SerialNumber'])), { actor: 'node:rack01' });
    const r = await srv.fleet('inventory', 'reconcile', 'rack01,ghost01');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^rack01  match     uuid=\S+ serial=\S+$/m);
    expect(r.err).toContain('fleet: bmc-mismatch cleared: rack01');
    expect(r.err).toContain('fleet: not in the store: ghost01');
    expect(await server.store.flags.list()).toEqual([]);
    const ok = await srv.fleet('inventory', 'reconcile', 'ipmi01');
    expect(ok.code, ok.err).toBe(0);
  });
});

/**
 * The whole `fleet server` with netboot enabled, run as the built binary
 * inside a network namespace (as on a management node): its supervised
 * dnsmasq answers real DHCP clients on the cluster bridge, unknown machines
 * show up in `fleet discovered`, and a node added by `fleet apply` gets its
 * reserved address without a restart. Needs root, dnsmasq, udhcpc and dist/.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distMissing, startFleetInNetns, type FleetInNetns } from '../helpers/fleet-server.js';
import { createNetnsLab, skipReason, udhcpc, type NetnsLab } from '../helpers/netns.js';
import { parsePromText, valueOf } from '../helpers/prom-text.js';

const why = skipReason(['dnsmasq', 'udhcpc', 'busybox']) ?? distMissing();
const suite = why ? describe.skip : describe;

const yaml = (extra = ''): string => `
cluster: {name: nb, domain: lab.local, timezone: UTC, management_name: odin, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/24, unknown_range: 10.77.0.200-10.77.0.250}
netboot:
  dhcp: {enabled: true, mode: authoritative, interface: br0}
  http: {listen: "10.77.0.1:8080"}
server: {listen: "127.0.0.1:8080"}
profiles:
  compute: {os: {tree: "http://10.77.0.1:8080/images/os"}}
nodes:
  valkyrie01: {profile: compute, ip: 10.77.0.11, mac: "52:54:00:77:00:01"}
${extra}`;

suite(why ? `fleet server with netboot in a namespace — SKIPPED: ${why}` : 'fleet server with netboot in a namespace', () => {
  let lab: NetnsLab;
  let fleetd: FleetInNetns;
  let dir: string;
  const fleet = (...args: string[]) => fleetd.cli(...args);

  beforeAll(async () => {
    lab = await createNetnsLab({ address: '10.77.0.1/24' });
    fleetd = await startFleetInNetns(lab, yaml(), { url: 'http://127.0.0.1:8080', readyLine: /netboot: dnsmasq serving/ });
    dir = fleetd.dir;
  }, 60_000);

  afterAll(async () => {
    await fleetd?.cleanup();
    await lab?.destroy();
  });

  it('gives a known MAC its reserved address and the BIOS ROM its boot file; iPXE gets the HTTP script', async () => {
    const nic = await lab.addClient('52:54:00:77:00:01');
    const rom = await udhcpc(lab, nic, { arch: 0 });
    expect(rom).toMatchObject({ ip: '10.77.0.11', siaddr: '10.77.0.1', bootFile: 'undionly.kpxe' });
    const ipxe = await udhcpc(lab, nic, { arch: 7, userClass: 'iPXE', ipxeOption: true });
    expect(ipxe).toMatchObject({ ip: '10.77.0.11', bootFile: 'http://10.77.0.1:8080/boot.ipxe' });
  });

  it('leases the unknown range to an unknown MAC and lists it in fleet discovered within 1 s', async () => {
    const nic = await lab.addClient('52:54:00:77:00:99');
    const lease = await udhcpc(lab, nic, { arch: 7 });
    expect(lease?.ip).toMatch(/^10\.77\.0\.(2[0-4]\d|250)$/);
    const t0 = Date.now();
    let found = false;
    while (!found && Date.now() - t0 < 1000) {
      const d = await fleet('discovered', '--json');
      found = (JSON.parse(d.out || '[]') as { mac: string; pxe: boolean }[]).some((m) => m.mac === '52:54:00:77:00:99');
      if (!found) await new Promise((r) => setTimeout(r, 100));
    }
    expect(found).toBe(true);
  });

  it('counts the lease events on /metrics (scraped with the API token, parsed strictly)', async () => {
    const token = (await readFile(join(dir, 'data/api.token'), 'utf8')).trim();
    const r = await lab.exec(lab.server, ['curl', '-sS', '-H', `Authorization: Bearer ${token}`, 'http://127.0.0.1:8080/metrics'], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    const m = parsePromText(r.stdout);
    // valkyrie01's leases (a known MAC) and the unknown one of the test before, applied by the lease consumer.
    expect(valueOf(m, 'fleet_dhcp_lease_events_total', { action: 'add', outcome: 'known' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(m, 'fleet_dhcp_lease_events_total', { action: 'add', outcome: 'discovered' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(m, 'fleet_discovery_events_total', { kind: 'machine.discovered' })).toBe(1);
  });

  it('reserves a node added by fleet apply without restarting dnsmasq', async () => {
    const pidBefore = (await readFile(join(dir, 'data/dnsmasq/dnsmasq.pid'), 'utf8')).trim();
    await writeFile(join(dir, 'fleet-v2.yaml'), yaml('  valkyrie02: {profile: compute, ip: 10.77.0.12, mac: "52:54:00:77:00:02"}'));
    const a = await fleet('apply', '-f', join(dir, 'fleet-v2.yaml'));
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/\+ valkyrie02/);
    const nic = await lab.addClient('52:54:00:77:00:02');
    let lease = null;
    for (let i = 0; i < 5 && lease?.ip !== '10.77.0.12'; i++) lease = await udhcpc(lab, nic, { arch: 0 });
    expect(lease?.ip).toBe('10.77.0.12');
    expect((await readFile(join(dir, 'data/dnsmasq/dnsmasq.pid'), 'utf8')).trim()).toBe(pidBefore);
  });

  it('stops dnsmasq when the server stops', async () => {
    const pid = Number((await readFile(join(dir, 'data/dnsmasq/dnsmasq.pid'), 'utf8')).trim());
    await fleetd.stop();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});

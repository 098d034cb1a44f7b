/**
 * /metrics through the whole server (issue 17 item 3): a real `fleet
 * server` on loopback, its BMCs ipmi_sim over UDP. A simulated reinstall —
 * `fleet reinstall` (PXE override and power cycle through IPMI), the iPXE
 * script, the kickstart and a file of the OS tree fetched from the boot
 * face, install-started and install-finished posted (then the flip to disk
 * through IPMI), `fleet cancel` (the disk asked for once more) — and a `fleet power status` refused by a
 * BMC with the wrong password. Scraped before and after with the API token
 * (the exposition parsed strictly, test/helpers/prom-text.ts), the counters
 * moved by exactly what happened.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { parsePromText, sumOf, valueOf, type PromFamily } from '../helpers/prom-text.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
if (!READY && process.env.CI === 'true') throw new Error('ipmi_sim/ipmitool are missing and CI=true: .ci/deps.sh installs them');
const suite = READY ? describe : describe.skip;

const PASSWORD = 'metrics-Sim-Pass1';
const MAC = '52:54:00:17:03:01';

suite(READY ? '/metrics during a simulated reinstall against ipmi_sim' : '/metrics reinstall — SKIPPED: ipmi_sim/ipmitool not installed', () => {
  let lab: IpmiSimLab;
  let srv: TestServer;

  beforeAll(async () => {
    lab = await startIpmiSims(2, { password: PASSWORD });
    const [b0, b1] = lab.bmcs;
    srv = await startTestServer(
      `
cluster: {name: mx, domain: lab.local, timezone: UTC, management_address: 10.79.0.1}
networks:
  provisioning: {subnet: 10.79.0.0/16, unknown_range: 10.79.254.1-10.79.254.254}
credentials:
  sim: {username: admin, password_env: SIM_PASSWORD}
  wrong: {username: admin, password_env: WRONG_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.79.0.1/repo/os"}}
nodes:
  n01: {profile: compute, mac: "${MAC}", bmc: {address: 127.0.0.1, port: ${b0!.port}, protocol: ipmi, credentials: sim}}
  n02: {profile: compute, bmc: {address: 127.0.0.1, port: ${b1!.port}, protocol: ipmi, credentials: wrong}}
`,
      {
        prefix: 'fleet-metrics-',
        env: { SIM_PASSWORD: PASSWORD, WRONG_PASSWORD: 'not-the-password' },
        bootListen: '127.0.0.1:0',
        grpcListen: '127.0.0.1:0',
        bmc: { timeoutMs: 5000, retries: 0 },
      },
    );
  }, 60_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
  });

  const scrape = async (): Promise<{ families: Map<string, PromFamily>; text: string }> => {
    const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${srv.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    return { families: parsePromText(text), text };
  };

  it('refuses a scrape without the API token, on the admin face only', async () => {
    const none = await fetch(`${srv.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('x-fleet-error')).toBe('auth.missing');
    expect((await fetch(`${srv.url}/metrics`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const boot = await fetch(`${srv.server.bootUrl}/metrics`, { headers: { authorization: `Bearer ${srv.token}` } });
    expect(boot.status).toBe(404);
  });

  it('a reinstall moves transitions, BMC operation histograms, boot HTTP bytes; an auth failure is counted', async () => {
    const { server } = srv;
    const bootUrl = server.bootUrl!;
    // A file of the OS tree, as the installer fetches hundreds.
    const pkg = randomBytes(96 * 1024);
    await mkdir(join(srv.dataDir, 'www', 'repo', 'os'), { recursive: true });
    await writeFile(join(srv.dataDir, 'www', 'repo', 'os', 'pkg.deb'), pkg);

    const before = (await scrape()).families;
    expect(valueOf(before, 'fleet_nodes', { state: 'enrolled', profile: 'compute' })).toBe(2);

    const r = await srv.fleet('reinstall', 'n01', '--yes', '--force');
    expect(r.code, r.out + r.err).toBe(0);
    await until(async () => (await server.store.nodes.require('n01')).state === 'power-cycling', 20_000);
    await server.conductor.idle();
    expect(lab.bmcs[0]!.state().boot).toBe('pxe');

    // The node netboots: its script (with the kickstart URL and its install token), the kickstart, a package.
    const script = await (await fetch(`${bootUrl}/boot/${MAC.replaceAll(':', '-')}.ipxe`)).text();
    const ks = /\/kickstart\/n01\.ks\?token=([A-Za-z0-9_-]+)/.exec(script);
    expect(ks, script).not.toBeNull();
    const token = ks![1]!;
    const kickstart = await fetch(`${bootUrl}/kickstart/n01.ks?token=${token}`);
    expect(kickstart.status).toBe(200);
    const ksBytes = (await kickstart.arrayBuffer()).byteLength;
    const got = Buffer.from(await (await fetch(`${bootUrl}/repo/os/pkg.deb`)).arrayBuffer());
    expect(got.equals(pkg)).toBe(true);
    for (const ev of ['install-started', 'install-finished']) {
      const res = await fetch(`${bootUrl}/api/v1/boot-events/n01/${ev}?token=${token}`, { method: 'POST' });
      expect(res.status, await res.text()).toBe(200);
    }
    await until(async () => (await server.store.nodes.require('n01')).state === 'disk-armed', 20_000);
    expect(lab.bmcs[0]!.state().boot).toBe('default');
    expect((await srv.fleet('cancel', 'n01')).code).toBe(0);
    // The cancel's clean-up asks the BMC for the disk once more (best effort, in the background).
    const bootdevs = async (): Promise<number> => (await server.store.events.list({ node: 'n01', kinds: ['bmc.bootdev'] })).events.length;
    await until(async () => (await bootdevs()) === 3, 20_000);
    await server.conductor.idle();

    // The wrong password: the BMC refuses the session.
    const refused = await srv.fleet('power', 'status', 'n02');
    expect(refused.code).toBe(1);
    expect(refused.out + refused.err).toContain('authentication failed');

    const after = (await scrape()).families;
    const delta = (name: string, labels: Record<string, string> = {}): number => (valueOf(after, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);
    const deltaSum = (name: string, match: Record<string, string> = {}): number => sumOf(after, name, match) - sumOf(before, name, match);

    // Each step of the path, once.
    for (const [from, to] of [
      ['enrolled', 'pxe-armed'],
      ['pxe-armed', 'power-cycling'],
      ['power-cycling', 'netbooting'],
      ['netbooting', 'installing'],
      ['installing', 'installed'],
      ['installed', 'disk-armed'],
      ['disk-armed', 'enrolled'],
    ] as const) {
      expect(delta('fleet_lifecycle_transitions_total', { from, to }), `${from} → ${to}`).toBe(1);
    }
    expect(deltaSum('fleet_lifecycle_transitions_total')).toBe(7);
    expect(delta('fleet_lifecycle_state_duration_seconds_count', { state: 'installing' })).toBe(1);
    expect(delta('fleet_lifecycle_state_duration_seconds_count', { state: 'enrolled' })).toBe(1);
    expect(delta('fleet_install_duration_seconds_count', { outcome: 'enrolled' })).toBe(1);
    expect(deltaSum('fleet_lifecycle_failures_total')).toBe(0);

    // BMC: the one-time PXE override, the flip to disk, the cancel's disk again; the power cycle (or on); all over native IPMI.
    expect(delta('fleet_bmc_operation_duration_seconds_count', { protocol: 'ipmi', operation: 'bootdev.set', outcome: 'ok' })).toBe(3);
    const power = deltaSum('fleet_bmc_operation_duration_seconds_count', { protocol: 'ipmi', operation: 'power.cycle', outcome: 'ok' }) + deltaSum('fleet_bmc_operation_duration_seconds_count', { protocol: 'ipmi', operation: 'power.on', outcome: 'ok' });
    expect(power).toBe(1);
    expect(delta('fleet_bmc_operation_duration_seconds_count', { protocol: 'ipmi', operation: 'power.status', outcome: 'auth_failed' })).toBe(1);
    expect(deltaSum('fleet_bmc_operation_duration_seconds_sum', { protocol: 'ipmi' })).toBeGreaterThan(0);

    // Boot HTTP, by tree: the script, the kickstart, the package, the two callbacks.
    expect(delta('fleet_boot_http_requests_total', { tree: 'script', code: '200' })).toBe(1);
    expect(delta('fleet_boot_http_requests_total', { tree: 'kickstart', code: '200' })).toBe(1);
    expect(delta('fleet_boot_http_requests_total', { tree: 'repo', code: '200' })).toBe(1);
    expect(delta('fleet_boot_http_requests_total', { tree: 'callback', code: '200' })).toBe(2);
    expect(delta('fleet_boot_http_response_bytes_total', { tree: 'script' })).toBe(Buffer.byteLength(script));
    expect(delta('fleet_boot_http_response_bytes_total', { tree: 'kickstart' })).toBe(ksBytes);
    expect(delta('fleet_boot_http_response_bytes_total', { tree: 'repo' })).toBe(pkg.length);

    // Events by kind, and gauges read at scrape time.
    expect(delta('fleet_events_total', { kind: 'bmc.bootdev' })).toBe(3);
    expect(delta('fleet_events_total', { kind: 'install.finished' })).toBe(1);
    expect(valueOf(after, 'fleet_nodes', { state: 'enrolled', profile: 'compute' })).toBe(2);
    expect(valueOf(after, 'fleet_agents_connected')).toBe(0);
    const rows = await server.store.events.list({ order: 'desc', limit: 1 });
    expect(valueOf(after, 'fleet_store_event_rows')).toBe(rows.events[0]!.id);
    expect(valueOf(after, 'fleet_nodes_overdue', { state: 'installing' })).toBe(0);
  }, 90_000);
});

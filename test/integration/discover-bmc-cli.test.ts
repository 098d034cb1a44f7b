/**
 * `fleet discover bmc` through the CLI against a real fleet server on
 * loopback: the server scans 127.0.0.0/29, where ipmi_sim and the Redfish
 * double (DMTF mockup, HTTPS) answer on 127.0.0.1 and nothing else does;
 * it records the BMC (bmc.discovered once, bmc.scanned per scan), lists it,
 * refuses bad input before anything is sent, and runs one scan at a time.
 * Every packet goes to 127.0.0.0/8.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiDiscoveredBmc, BmcScanResponse } from '../../common/api/schemas.js';
import { EVENT } from '../../common/events.js';
import { IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { makeTestPki, RedfishDouble, type TestPki } from '../helpers/redfish-double.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const suite = IPMI_SIM ? describe : describe.skip;
const PASSWORD = 'Scan-Sim-Pw-5810';
const MOCKUP_UUID = '92384634-2938-2342-8820-489239905423';

suite(IPMI_SIM ? 'fleet discover bmc against a running server' : 'fleet discover bmc — SKIPPED: ipmi_sim not installed (apt-get install openipmi)', () => {
  let dir: string;
  let pki: TestPki;
  let lab: IpmiSimLab;
  let redfish: RedfishDouble;
  let srv: TestServer;
  let logs = '';
  let ports: string[];

  const fleet = (...args: string[]) => srv.fleet(...args);
  const api = (method: string, path: string, body?: unknown, token: string | null = srv.token) =>
    fetch(srv.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-discover-bmc-'));
    await mkdir(join(dir, 'pki'));
    pki = makeTestPki(join(dir, 'pki'));
    lab = await startIpmiSims(1, { password: PASSWORD });
    redfish = await RedfishDouble.start({ tls: pki.server });
    ports = ['--ipmi-port', String(lab.bmcs[0]!.port), '--redfish-port', String(redfish.port)];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        logs += chunk.toString();
        cb();
      },
    });
    // rack01's BMC is the one the scan finds: the list names the node.
    srv = await startTestServer(
      `
cluster: {name: scan, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  sim: {username: admin, password_env: SIM_BMC_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/os"}}
nodes:
  rack01:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${lab.bmcs[0]!.port}, protocol: ipmi, credentials: sim}
`,
      { prefix: 'fleet-scan-', logLevel: 'info', logStream: sink, env: { SIM_BMC_PASSWORD: PASSWORD } },
    );
  }, 120_000);

  afterAll(async () => {
    await srv?.close();
    await redfish?.close();
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('scans 127.0.0.0/29: one BMC on 127.0.0.1 (IPMI and Redfish), 127.0.0.2-6 silent', async () => {
    const r = await fleet('discover', 'bmc', '--subnet', '127.0.0.0/29', ...ports, '--timeout', '500ms');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/^fleet: scanning 127\.0\.0\.0\/29 \(6 addresses\) for IPMI on UDP \d+ and Redfish on TCP \d+, 64 at a time, 500 ms per address and 2 retries: at most 2 s$/m);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^127\.0\.0\.0\/29: 6 addresses scanned \(ipmi\/\d+, redfish\/\d+\) in \d+\.\d s: 1 answered \(1 BMC, 1 new; 0 other\), 5 silent$/);
    expect(lines[1]).toMatch(/^ADDRESS\s+FOUND\s+NEW\s+IPMI\s+REDFISH$/);
    expect(lines[2]).toMatch(new RegExp(`^127\\.0\\.0\\.1\\s+BMC\\s+yes\\s+IPMI 1\\.5\\+2\\.0, auth none,md2,md5,password\\s+Redfish 1\\.15\\.0, uuid ${MOCKUP_UUID}$`));
    expect(r.out).toContain(`127.0.0.1:${redfish.port} SHA-256 ${pki.fingerprint}`);
    expect(lines.at(-1)).toBe('silent: 127.0.0.2-127.0.0.6');
  });

  it('a second scan (--json) finds the same BMC, not new; the store keeps one record and one bmc.discovered', async () => {
    const r = await fleet('discover', 'bmc', '--subnet', '127.0.0.0/29', ...ports, '--timeout', '500ms', '--json');
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(r.out) as BmcScanResponse;
    expect(res.summary).toEqual({ addresses: 6, answered: 1, silent: 5, bmcs: 1, other: 0, new: 0 });
    expect(res.hosts.map((h) => [h.address, h.verdict, h.new])).toEqual([['127.0.0.1', 'bmc', false]]);
    expect(res.silent).toEqual(['127.0.0.2-127.0.0.6']);
    expect(res).toMatchObject({ subnet: '127.0.0.0/29', concurrency: 64, timeoutMs: 500, retries: 2, boundMs: 2000, notScanned: [] });

    const store = srv.server.store;
    expect((await store.discoveredBmcs.list()).map((b) => b.address)).toEqual(['127.0.0.1']);
    const found = (await store.events.list({ kinds: [EVENT.bmcDiscovered] })).events;
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ node: 'rack01', cause: 'BMC scan of 127.0.0.0/29', details: { address: '127.0.0.1', uuid: MOCKUP_UUID, tlsFingerprint: pki.fingerprint } });
    expect(found[0]!.actor).toBe('admin@127.0.0.1 (client: tester)');
    const scans = (await store.events.list({ kinds: [EVENT.bmcScanned] })).events;
    expect(scans.map((e) => e.details)).toEqual([
      expect.objectContaining({ subnet: '127.0.0.0/29', addresses: 6, answered: 1, silent: 5, bmcs: 1, new: 1 }),
      expect.objectContaining({ subnet: '127.0.0.0/29', addresses: 6, answered: 1, silent: 5, bmcs: 1, new: 0 }),
    ]);
    // The node's own history tells it too.
    const ev = await fleet('events', 'rack01');
    expect(ev.out).toMatch(/rack01\s+bmc\.discovered/);
  });

  it('--list shows the BMCs found, with the node whose BMC is at that address', async () => {
    const t = await fleet('discover', 'bmc', '--list');
    expect(t.code, t.err).toBe(0);
    const [head, row, ...rest] = t.out.trim().split('\n');
    expect(head).toMatch(/^ADDRESS\s+IPMI\s+REDFISH\s+UUID\s+VENDOR\s+NODE\s+LAST SEEN$/);
    expect(row).toMatch(new RegExp(`^127\\.0\\.0\\.1\\s+${lab.bmcs[0]!.port} v1\\.5\\+2\\.0\\s+${redfish.port} 1\\.15\\.0\\s+${MOCKUP_UUID}\\s+-\\s+rack01\\s+\\d{4}-`));
    expect(rest).toEqual([]);
    const j = await fleet('discover', 'bmc', '--list', '--json');
    const bmcs = JSON.parse(j.out) as ApiDiscoveredBmc[];
    expect(bmcs).toHaveLength(1);
    expect(bmcs[0]).toMatchObject({ address: '127.0.0.1', uuid: MOCKUP_UUID, tlsFingerprint: pki.fingerprint, nodes: ['rack01'], ipmi: { port: lab.bmcs[0]!.port, authTypes: ['none', 'md2', 'md5', 'password'] } });
  });

  it.each([
    [['--subnet', '10.0.0.0/8'], /--subnet: 10\.0\.0\.0\/8 has 16777214 addresses: fleet scans at most 65536 \(a \/16\) unless forced \(--force\)/],
    [['--subnet', '127.0.0.0/33'], /not a valid IPv4 CIDR/],
    [['--subnet', '127.0.0.1/29'], /has host bits set; did you mean 127\.0\.0\.0\/29\?/],
    [['--subnet', '127.0.0.0/29', '--port', '623'], /--port names one port/],
    [['--subnet', '127.0.0.0/29', '--protocol', 'ipmi', '--port', '99999'], /--port "99999" is not a port/],
    [['--subnet', '127.0.0.0/29', '--timeout', 'soon'], /--timeout "soon" is not a duration/],
    [[], /needs --subnet CIDR/],
    [['--list', '--subnet', '127.0.0.0/29'], /--list .* takes no scan options/],
  ])('refuses %j with exit 2 and a reason, before any scan', async (args, why) => {
    const before = (await srv.server.store.events.list({ kinds: [EVENT.bmcScanned] })).events.length;
    const r = await fleet('discover', 'bmc', ...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(why);
    expect((await srv.server.store.events.list({ kinds: [EVENT.bmcScanned] })).events.length).toBe(before);
  });

  it('the API checks the same things itself and needs the token', async () => {
    const big = await api('POST', '/api/v1/discover/bmc', { subnet: '10.0.0.0/8' });
    expect(big.status).toBe(400);
    expect(((await big.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'request.invalid', message: expect.stringMatching(/unless forced/) });
    const port = await api('POST', '/api/v1/discover/bmc', { subnet: '127.0.0.0/29', ipmiPort: 0 });
    expect(port.status).toBe(400);
    expect(await port.text()).toMatch(/IPMI port 0 is not an integer from 1 to 65535/);
    expect((await api('POST', '/api/v1/discover/bmc', { subnet: '127.0.0.0/29' }, null)).status).toBe(401);
    expect((await api('GET', '/api/v1/discover/bmc', undefined, 'wrong-token-0123456789abcdef0123')).status).toBe(401);
  });

  it('runs one scan at a time: a second one while the first runs is refused with 409', async () => {
    const body = { subnet: '127.0.1.0/29', protocol: 'ipmi', ipmiPort: lab.bmcs[0]!.port, timeoutMs: 1500 };
    const first = api('POST', '/api/v1/discover/bmc', body);
    // Wait until the server has started the first one (its log says so).
    const started = /"subnet":"127\.0\.1\.0\/29"[^\n]*"msg":"BMC scan started"/;
    for (let i = 0; i < 200 && !started.test(logs); i++) await new Promise((r) => setTimeout(r, 25));
    expect(logs).toMatch(started);
    const second = await api('POST', '/api/v1/discover/bmc', body);
    expect(second.status).toBe(409);
    expect(await second.text()).toMatch(/a BMC scan of 127\.0\.1\.0\/29 is running .*one scan at a time/);
    const done = await first;
    expect(done.status).toBe(200);
    expect(((await done.json()) as BmcScanResponse).summary).toMatchObject({ addresses: 6, silent: 6, bmcs: 0 });
  });

  it('logs each scan, and no secret anywhere', async () => {
    expect(logs).toMatch(/"msg":"BMC scan started"/);
    expect(logs).toMatch(/"msg":"BMC scan done"/);
    expect(logs).not.toContain(PASSWORD);
    const all = await srv.server.store.events.list({ limit: 1000 });
    expect(JSON.stringify(all.events)).not.toContain(PASSWORD);
  });
});

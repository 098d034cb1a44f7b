/**
 * fleet discover against a real `fleet server` on loopback (in-process, its
 * own temp data dir): the plan, reject, accept (inventory-only and install),
 * the refusals that change nothing, fleet apply sending a serials_file, and
 * policy auto accepting a machine whose iPXE fetch is its first sighting.
 * Machines are recorded straight into the server's real store; every address
 * in this fleet.yaml is on loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiscoverAcceptResponse, DiscoverPlanResponse } from '../../common/api/schemas.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';

const yaml = (policy: 'manual' | 'auto'): string => `
cluster: {name: lab, domain: cluster.local, timezone: UTC, management_address: 127.0.0.1}
networks:
  provisioning: {subnet: 127.0.0.0/8, unknown_range: 127.0.254.1-127.0.254.254}
credentials:
  bmc-admin: {username: ADMIN, password_env: FLEET_TEST_BMC_PW}
profiles:
  compute: {os: {tree: "http://127.0.0.1:9/os"}}
nodes:
  valkyrie01: {profile: compute, ip: 127.0.3.1, bmc: none}
discovery:
  policy: ${policy}
  rules:
    - name: lab
      match: {mac_prefix: "52:54:00:aa"}
      names: valkyrie[01-04]
      profile: compute
      ip: "127.0.3.[1-4]"
      on_accept: install
    - name: spares
      match: {mac_prefix: "52:54:00:bb"}
      names: spare[1-2]
      profile: compute
      ip: 127.0.4.1-127.0.4.2
      bmc: {address: "127.0.104.[1-2]", port: 9623, credentials: bmc-admin}
    - name: po4711
      match: {mac_prefix: "0c:c4:7a", serials_file: po-4711.txt}
      names: gpu[01-03]
      profile: compute
`;

const AA1 = '52:54:00:aa:00:01';
const AA2 = '52:54:00:aa:00:02';
const BB1 = '52:54:00:bb:00:01';
const GPU = '0c:c4:7a:00:00:01';
const ODD = 'de:ad:00:00:00:01';

describe('fleet discover against a running server', () => {
  let dir: string;
  let server: RunningServer;
  const env = { FLEET_TEST_BMC_PW: 'not-a-real-password' };
  const fleet = (...args: string[]): Promise<CliResult> => cliAgainst(server, dir, env)(...args);
  const plan = async (): Promise<DiscoverPlanResponse> => {
    const r = await fleet('discover', '--plan', '--json');
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out) as DiscoverPlanResponse;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-discover-'));
    await writeFile(join(dir, 'fleet.yaml'), yaml('manual'));
    await writeFile(join(dir, 'po-4711.txt'), '# PO 4711, rack 12\nSN-A\nSN-B\nSN-C\n');
    server = await startServer({
      configPath: join(dir, 'fleet.yaml'),
      dataDir: join(dir, 'data'),
      listen: '127.0.0.1:0',
      bootListen: '127.0.0.1:0',
      logLevel: 'warn',
      env: { ...process.env, ...env },
    });
    // Seen in this order, one minute apart.
    const t0 = Date.parse('2026-03-01T10:00:00.000Z');
    const macs = [AA1, BB1, GPU, ODD, AA2];
    for (const [i, mac] of macs.entries()) await server.store.discovered.record({ mac, ip: `127.0.254.${10 + i}`, vendorClass: 'PXEClient:Arch:00007', pxe: true }, new Date(t0 + i * 60_000));
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('needs the API token', async () => {
    const res = await fetch(`${server.url}/api/v1/discover/plan`);
    expect(res.status).toBe(401);
  });

  it('--plan shows the names, IPs and BMC addresses each rule gives, and why the rest get none', async () => {
    const p = await plan();
    expect(p.policy).toBe('manual');
    expect(p.rules).toEqual(['lab', 'spares', 'po4711']);
    expect(p.planned.map((m) => [m.mac, m.name, m.ip, m.bmc ? `${m.bmc.address}:${m.bmc.port}` : null, m.onAccept])).toEqual([
      [AA1, 'valkyrie02', '127.0.3.2', null, 'install'],
      [BB1, 'spare1', '127.0.4.1', '127.0.104.1:9623', 'inventory-only'],
      [AA2, 'valkyrie03', '127.0.3.3', null, 'install'],
    ]);
    expect(p.unplanned).toEqual([
      { mac: GPU, status: 'waiting', reason: 'rule po4711: serial unknown: no inspection report yet', rule: 'po4711' },
      {
        mac: ODD,
        status: 'unmatched',
        reason: `no rule matches (lab: MAC ${ODD} does not start with 52:54:00:aa; spares: MAC ${ODD} does not start with 52:54:00:bb; po4711: MAC ${ODD} does not start with 0c:c4:7a)`,
        rule: null,
      },
    ]);
    const text = await fleet('discover');
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/^policy manual: fleet discover --accept commits the plan; rules in order: lab, spares, po4711$/m);
    expect(text.out).toMatch(/^MAC\s+NAME\s+IP\s+BMC\s+PROFILE\s+ON ACCEPT\s+RULE$/m);
    expect(text.out).toMatch(new RegExp(`^${BB1}\\s+spare1\\s+127\\.0\\.4\\.1\\s+127\\.0\\.104\\.1:9623 \\(ipmi\\)\\s+compute\\s+inventory-only\\s+spares$`, 'm'));
    expect(text.out).toContain(`-- 2 not planned:\n${GPU}: waiting: rule po4711: serial unknown: no inspection report yet\n${ODD}: unmatched: no rule matches`);
  });

  it('--reject sets a machine aside: plans list it as rejected', async () => {
    const r = await fleet('discover', '--reject', ODD.toUpperCase());
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`${ODD}: rejected; plans skip it\n`);
    const p = await plan();
    expect(p.rejected.map((x) => x.mac)).toEqual([ODD]);
    expect(p.unplanned.map((x) => x.mac)).toEqual([GPU]);
    const again = await fleet('discover', '--reject', ODD);
    expect(again.out).toMatch(/already rejected/);
    const bad = await fleet('discover', '--reject', 'not-a-mac');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/not-a-mac is not a MAC address/);
    // Taken back, then set aside again for the cases below.
    const back = await fleet('discover', '--unreject', ODD);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toBe(`${ODD}: taken back; plans consider it again\n`);
    expect((await plan()).rejected).toEqual([]);
    expect((await fleet('discover', '--unreject', ODD)).out).toBe(`${ODD}: was not rejected\n`);
    expect((await fleet('discover', '--reject', ODD)).code).toBe(0);
  });

  it('--accept of a machine that is not planned changes nothing and says why', async () => {
    const r = await fleet('discover', '--accept', GPU, BB1);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`fleet: this machine is not in the plan; nothing was accepted\nfleet: ${GPU}: waiting: rule po4711: serial unknown: no inspection report yet\n`);
    expect((await plan()).planned).toHaveLength(3);
  });

  it('--accept MAC makes an inventory-only machine its planned node, with its BMC; apply keeps it', async () => {
    const r = await fleet('discover', '--accept', BB1);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`${BB1} -> spare1: profile compute, IP 127.0.4.1, BMC 127.0.104.1:9623 (ipmi), rule spares; inventory-only (enrolled)\n`);
    const n = await fleet('nodes', 'spare1', '--json');
    const [node] = JSON.parse(n.out) as { name: string; ip: string; macs: string[]; origin: string; state: string; bmc: { address: string; port: number; credentials: string } }[];
    expect(node).toMatchObject({ ip: '127.0.4.1', macs: [BB1], origin: 'enroll', state: 'enrolled', bmc: { address: '127.0.104.1', port: 9623, credentials: 'bmc-admin' } });
    const e = await fleet('events', 'spare1', '--json');
    expect(e.out).toContain('machine.accepted');
  });

  it('--accept of machines that install asks first; without a terminal it needs --yes', async () => {
    const r = await fleet('discover', '--accept');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/there is no terminal to ask for confirmation: pass --yes/);
    expect((await plan()).planned.map((m) => m.name)).toEqual(['valkyrie02', 'valkyrie03']);
  });

  it('--accept --yes starts the reinstall as fleet reinstall does (the doctor first; --force past a failed check)', async () => {
    let r = await fleet('discover', '--accept', '--yes', '--json');
    if (r.code !== 0) {
      // This host lacks something the profile needs (dnsmasq, iPXE, the OS tree, the agent bundle): refused, nothing changed.
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^fleet: accept refused: \d+ checks? that profile compute depends on fail/);
      expect((await plan()).planned).toHaveLength(2);
      r = await fleet('discover', '--accept', '--yes', '--force', '--json');
    }
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(r.out) as DiscoverAcceptResponse;
    expect(res.accepted.map((a) => [a.mac, a.name, a.install?.ok, a.install?.from, a.install?.state])).toEqual([
      [AA1, 'valkyrie02', true, 'enrolled', 'pxe-armed'],
      [AA2, 'valkyrie03', true, 'enrolled', 'pxe-armed'],
    ]);
    // No BMC in this rule: the conductor says power is manual, as for fleet reinstall.
    expect(res.accepted[0]!.install?.note).toMatch(/power is manual/);
    const s = await fleet('status', 'valkyrie[02-03]', '--json');
    expect(s.code, s.err).toBe(0);
    // Armed, then (power is manual) waiting for the operator's power cycle and its netboot.
    const states = (JSON.parse(s.out) as { nodes: { name: string; state: string }[] }).nodes.map((n) => [n.name, n.state]);
    for (const [, state] of states) expect(['pxe-armed', 'power-cycling']).toContain(state);
    expect(states.map(([name]) => name)).toEqual(['valkyrie02', 'valkyrie03']);
    const p = await plan();
    expect(p.planned).toEqual([]);
    expect(p.unplanned.map((u) => u.mac)).toEqual([GPU]);
    expect(p.rejected.map((x) => x.mac)).toEqual([ODD]);
  });

  it('fleet apply sends the serials file; the accepted nodes survive it; policy auto accepts a machine when its iPXE fetch is seen', async () => {
    await writeFile(join(dir, 'fleet.yaml'), yaml('auto'));
    const a = await fleet('apply', '-f', join(dir, 'fleet.yaml'));
    expect(a.code, a.err).toBe(0);
    for (const name of ['valkyrie02', 'valkyrie03', 'spare1']) expect((await fleet('show', name)).code).toBe(0);
    expect((await plan()).policy).toBe('auto');

    // An unknown machine fetches its iPXE script: the boot service records it, policy auto accepts it.
    const script = await (await fetch(`${server.bootUrl}/boot/52-54-00-bb-00-02.ipxe`)).text();
    expect(script).toContain('unknown machine');
    let shown: CliResult | undefined;
    for (let i = 0; i < 50; i++) {
      shown = await fleet('show', 'spare2');
      if (shown.code === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(shown?.code, shown?.err).toBe(0);
    expect(shown?.out).toMatch(/ip\s+127\.0\.4\.2/);
    const ev = await fleet('events', 'spare2', '--json');
    expect(ev.out).toContain('discovery-auto');
  });
});

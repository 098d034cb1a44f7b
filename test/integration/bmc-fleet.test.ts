/**
 * Issue 3's acceptance, end to end: a fleet server with 20 ipmi_sim BMCs
 * declared as sim[01-20] (plus one whose password is wrong), driven by the
 * real CLI, checked independently with the real ipmitool.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPMITOOL, IPMI_SIM, startIpmiSims, type IpmiSimLab } from '../helpers/ipmisim.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
const suite = READY ? describe : describe.skip;
const PASSWORD = 'Sim-Admin-Pw-7391';
const WRONG = 'Not-The-Password-4417';

suite(READY ? 'fleet power/bootdev on 20 ipmi_sim BMCs' : 'fleet power/bootdev — SKIPPED: ipmi_sim/ipmitool not installed (.ci/deps.sh installs them)', () => {
  let lab: IpmiSimLab;
  let odd: IpmiSimLab;
  let srv: TestServer;
  let logs = '';

  const fleet = (...args: string[]) => srv.fleet(...args);

  beforeAll(async () => {
    lab = await startIpmiSims(20, { password: PASSWORD });
    // simbad's BMC has another password than the one fleet.yaml gives it.
    odd = await startIpmiSims(1, { password: WRONG });
    const yaml = `
cluster: {name: simlab, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  sim: {username: admin, password_env: SIM_BMC_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/os"}}
nodes:
  sim[01-20]:
    profile: compute
    bmc: {address: 127.0.0.1, port: [${lab.bmcs.map((b) => b.port).join(', ')}], protocol: ipmi, credentials: sim}
  simbad:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${odd.bmcs[0]!.port}, protocol: ipmi, credentials: sim}
`;
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        logs += chunk.toString();
        cb();
      },
    });
    srv = await startTestServer(yaml, {
      prefix: 'fleet-bmc-',
      logLevel: 'debug',
      logStream: sink,
      env: { SIM_BMC_PASSWORD: PASSWORD },
      bmc: { timeoutMs: 5000, retries: 1 },
    });
  }, 120_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
    await odd?.stop();
  });

  it('powers sim[01-20] on; ipmitool agrees on every BMC', async () => {
    const r = await fleet('power', 'on', 'sim[01-20]');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out.trim().split('\n')).toEqual(lab.bmcs.map((_, i) => `sim${String(i + 1).padStart(2, '0')}: on`));
    for (const b of lab.bmcs) {
      const check = await b.ipmitool(['chassis', 'power', 'status']);
      expect(check.stdout.trim()).toBe('Chassis Power is on');
    }
  });

  it('sets PXE on sim[01-10] only; ipmitool reads Force PXE there and not on sim[11-20]', async () => {
    const r = await fleet('bootdev', 'pxe', 'sim[01-10]');
    expect(r.code, r.out + r.err).toBe(0);
    for (const [i, b] of lab.bmcs.entries()) {
      const check = await b.ipmitool(['chassis', 'bootparam', 'get', '5']);
      if (i < 10) expect(check.stdout).toMatch(/Force PXE/);
      else expect(check.stdout).not.toMatch(/Force PXE/);
    }
  });

  it('fails the node with a wrong password alone, with a reason, exit 1', async () => {
    const r = await fleet('power', 'status', 'sim[01-20],simbad');
    expect(r.code).toBe(1);
    const lines = r.out.trim().split('\n');
    expect(lines.slice(0, 20).every((l) => /^sim\d\d: on$/.test(l))).toBe(true);
    expect(lines[20]).toBe('-- 1 of 21 failed:');
    expect(lines[21]).toMatch(new RegExp(`^simbad: authentication failed \\(bmc 127\\.0\\.0\\.1:${odd.bmcs[0]!.port}, ipmi\\): .*password`));
    const json = JSON.parse((await fleet('power', 'status', 'simbad', '--json')).out) as { results: { error: { code: string } }[] };
    expect(json.results[0]!.error.code).toBe('bmc.auth_failed');
  });

  it('audits every power and boot action with actor and outcome', async () => {
    const r = await fleet('events', 'sim01', '--json');
    const events = JSON.parse(r.out) as { kind: string; actor: string; details: { operation: string; outcome: string; provider: string } }[];
    const audit = events.filter((e) => e.kind.startsWith('bmc.'));
    expect(audit.map((e) => [e.kind, e.details.operation, e.details.outcome, e.details.provider])).toEqual([
      ['bmc.power', 'power on', 'ok', 'ipmi'],
      ['bmc.bootdev', 'bootdev pxe once', 'ok', 'ipmi'],
    ]);
    // The user the token belongs to (the first start's admin), and the name the client gave (USER).
    expect(audit.every((e) => /^admin@127\.0\.0\.1 \(client: tester\)$/.test(e.actor))).toBe(true);
  });

  it('never shows a BMC password in output, logs or events', async () => {
    const outputs = [
      (await fleet('power', 'status', 'sim[01-20],simbad', '--json')).out,
      (await fleet('events', '--json')).out,
      (await fleet('nodes', '--json')).out,
      (await fleet('bmc', 'info', 'sim01', '--json')).out,
      logs,
    ];
    for (const o of outputs) {
      expect(o).not.toContain(PASSWORD);
      expect(o).not.toContain(WRONG);
    }
  });
});

/**
 * `--stagger` through the whole server: its bounds are usage errors, and a
 * staggered `fleet power on` is stopped by the server's close() (the path
 * SIGTERM takes) at once: the node already powered keeps its result, the
 * nodes still waiting for their stagger slot are never sent anything and
 * say why. Real peers: three ipmi_sim BMCs, the CLI over a socket.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAgainst } from '../helpers/cli.js';
import { IPMITOOL, IPMI_SIM, startIpmiSims, type IpmiSimLab } from '../helpers/ipmisim.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
if (!READY && process.env.CI === 'true') throw new Error('ipmi_sim/ipmitool are missing and CI=true: .ci/deps.sh installs them');
const suite = READY ? describe : describe.skip;
const PASSWORD = 'Sim-Admin-Pw-5520';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// bin/fleet.js runs the compiled CLI (npm ci builds dist/ through `prepare`; locally: npm run build).
const BUILT = existsSync(join(ROOT, 'dist/server/cli/main.js'));
// Without a build it is skipped locally; under CI=true it runs (and fails) so a missing build is seen.
const itBuilt = BUILT || process.env.CI === 'true' ? it : it.skip;

suite(READY ? 'stagger bounds and abort through the server (3 ipmi_sim BMCs)' : 'stagger bounds and abort — SKIPPED: ipmi_sim/ipmitool not installed', () => {
  let dir: string;
  let lab: IpmiSimLab;
  let srv: TestServer;

  beforeAll(async () => {
    lab = await startIpmiSims(3, { password: PASSWORD });
    srv = await startTestServer(
      `
cluster: {name: simlab, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  sim: {username: admin, password_env: SIM_BMC_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/os"}}
nodes:
  sim[01-03]:
    profile: compute
    bmc: {address: 127.0.0.1, port: [${lab.bmcs.map((b) => b.port).join(', ')}], protocol: ipmi, credentials: sim}
`,
      { prefix: 'fleet-stagger-', env: { SIM_BMC_PASSWORD: PASSWORD }, bmc: { timeoutMs: 10_000, retries: 0 } },
    );
    dir = srv.dir;
  }, 120_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
  });

  it('refuses a stagger interval over one hour or N over 100,000 with a usage error', async () => {
    const fleet = srv.fleet;
    const long = await fleet('power', 'on', 'sim01', '--stagger', '1/61m');
    expect(long.code, long.err).toBe(2);
    expect(long.err).toContain("bad --stagger '1/61m': the interval must be from 0 to 1 hour");
    const many = await fleet('power', 'on', 'sim01', '--stagger', '100001/1s');
    expect(many.code, many.err).toBe(2);
    expect(many.err).toContain('N must be a whole number from 1 to 100000');
    expect(lab.bmcs[0]!.state().power).toBe('off');
  });

  it('close() (what SIGTERM calls) stops a staggered power-on at once', async () => {
    const fleet = srv.fleet;
    // One start per hour: without the abort, close() would wait two hours for this request.
    const run = fleet('power', 'on', 'sim[01-03]', '--stagger', '1/60m');
    await until(() => lab.bmcs[0]!.state().power === 'on', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const closing = srv.closeServer();
    await Promise.race([closing, new Promise((_, rej) => setTimeout(() => rej(new Error('close() did not return within 10 s')), 10_000))]);
    const closeMs = Date.now() - t0;
    const r = await run;
    console.log(`close() of a server with a staggered fan-out in progress: ${closeMs} ms`);
    expect(r.code, r.out + r.err).toBe(1);
    // The failures folded by reason into one nodeset (server/cli/fold.ts).
    expect(r.out).toBe('sim01: on\n-- 2 of 3 failed:\nsim[02-03]: not done: the server is stopping\n');
    expect(closeMs).toBeLessThan(10_000);
    // The waiting nodes were never sent a chassis command.
    for (const b of lab.bmcs.slice(1)) {
      expect(b.state().power).toBe('off');
      expect(b.calls().filter((c) => c.startsWith('set power'))).toEqual([]);
    }
  });

  itBuilt('the first SIGTERM stops a `fleet server` process in the middle of a staggered power-on (no hour-long timer left behind)', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/fleet.js'), 'server', '--config', join(dir, 'fleet.yaml'), '--data', join(dir, 'data-cli'), '--listen', '127.0.0.1:0'], {
      env: { ...process.env, SIM_BMC_PASSWORD: PASSWORD, FLEET_DATA: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Its log (JSON lines on stdout, docs/decisions/0017) and anything on stderr, together.
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (err += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await until(() => /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.test(err) || child.exitCode !== null, 60_000);
      const url = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1];
      expect(url, err).toBeDefined();
      const fleet = cliAgainst({ url: url!, tokenPath: join(dir, 'data-cli', 'api.token') }, dir, { USER: 'tester' });
      const run = fleet('power', 'on', 'sim[02-03]', '--stagger', '1/60m');
      await until(() => lab.bmcs[1]!.state().power === 'on', 20_000);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 15_000))]);
      expect(code, "still running 15 s after one SIGTERM").toBe(0);
      console.log(`fleet server exited ${Date.now() - t0} ms after SIGTERM with a staggered fan-out in progress`);
      const r = await run;
      expect(r.out).toBe('sim02: on\n-- 1 of 2 failed:\nsim03: not done: the server is stopping\n');
      expect(lab.bmcs[2]!.state().power).toBe('off');
      expect(err).toContain('SIGTERM received, stopping');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 90_000);
});

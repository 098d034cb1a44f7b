/**
 * `fleet console NODE` end to end: a fleet server whose node's BMC is a real
 * ipmi_sim, its SOL wired to a TCP socket this test owns (the node's serial
 * line). The CLI runs in-process with a pipe for a keyboard.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmdConsole } from '../../server/cli/commands/console.js';
import type { CliIo } from '../../server/cli/io.js';
import { FleetError } from '../../common/errors.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { type SerialLine, startSerialLine } from '../helpers/serial-line.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

if ((!IPMI_SIM || !IPMITOOL) && process.env.CI === 'true') throw new Error('ipmi_sim and ipmitool are required in CI (.ci/deps.sh installs them)');
const suite = IPMI_SIM && IPMITOOL ? describe : describe.skip;
const PASSWORD = 'Sim-Console-Pw-5521';

async function until(check: () => boolean, what: () => string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not in time: ${what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Attached {
  keys: PassThrough;
  out: () => string;
  err: () => string;
  done: Promise<number>;
}

suite('fleet console through the server to ipmi_sim SOL', () => {
  let lab: IpmiSimLab;
  let tool: IpmiSimLab;
  let line: SerialLine;
  let toolLine: SerialLine;
  let srv: TestServer;

  function attach(node: string, opts: { force?: boolean; actor?: string } = {}): Attached {
    let out = '';
    let err = '';
    const keys = new PassThrough();
    const stdout = new Writable({
      write(chunk: Buffer, _e, cb) {
        out += chunk.toString('latin1');
        cb();
      },
    });
    const io: CliIo = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: { USER: opts.actor ?? 'tester' }, isTTY: false, home: srv.dir, cwd: srv.dir };
    const done = cmdConsole({ url: srv.url, tokenFile: srv.tokenPath }, node, { force: opts.force }, io, { stdin: keys, stdout });
    return { keys, out: () => out, err: () => err, done };
  }

  beforeAll(async () => {
    line = await startSerialLine();
    toolLine = await startSerialLine();
    lab = await startIpmiSims(1, { password: PASSWORD, sol: () => `tcp:127.0.0.1:${line.port}` });
    tool = await startIpmiSims(1, { password: PASSWORD, sol: () => `tcp:127.0.0.1:${toolLine.port}` });
    const yaml = `
cluster: {name: sollab, domain: lab.local, timezone: UTC, management_address: 10.78.0.1}
networks:
  provisioning: {subnet: 10.78.0.0/16, unknown_range: 10.78.254.1-10.78.254.254}
credentials:
  sim: {username: admin, password_env: SIM_BMC_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.78.0.1/os"}}
nodes:
  sol01:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${lab.bmcs[0]!.port}, protocol: ipmi, credentials: sim}
  sol02:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${tool.bmcs[0]!.port}, protocol: ipmitool, credentials: sim}
  nobmc01:
    profile: compute
    bmc: none
`;
    srv = await startTestServer(yaml, { prefix: 'fleet-console-', env: { SIM_BMC_PASSWORD: PASSWORD } });
    await line.connected();
    await toolLine.connected();
  }, 120_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
    await tool?.stop();
    await line?.close();
    await toolLine?.close();
  });

  it('shows what the node prints, types what the user types, refuses a second user, detaches with ~.', async () => {
    const a = attach('sol01', { actor: 'alice' });
    await until(() => a.err().includes('via ipmi'), a.err);
    await line.write('Booting Debian GNU/Linux...\r\nlogin: ');
    await until(() => a.out().includes('login: '), a.out);
    a.keys.write('root\r');
    await line.waitFor('root\r');

    // A second user gets a clear refusal naming the holder, and exits non-zero.
    const b = attach('sol01', { actor: 'bob' });
    const e = await b.done.then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('conflict');
    expect((e as FleetError).message).toMatch(/console busy: sol01's console is held by admin@127\.0\.0\.1 \(client: alice\) since \d{4}-/);

    // The escape: ~. after Enter detaches; what comes before it is typed.
    a.keys.write('ls\r');
    a.keys.write('~.');
    expect(await a.done).toBe(0);
    await line.waitFor('ls\r');
    expect(line.received().toString()).not.toContain('~');
    expect(a.err()).toContain('[fleet console: detached]');

    // The payload was deactivated: a re-attach works at once, and ~? prints help without typing it.
    const c = attach('sol01', { actor: 'carol' });
    await until(() => c.err().includes('via ipmi'), c.err);
    c.keys.write('~?');
    await until(() => c.err().includes('~.  detach'), c.err);
    await line.write('again\r\n');
    await until(() => c.out().includes('again'), c.out);
    c.keys.write('\r~.');
    expect(await c.done).toBe(0);

    // The console log kept what the node printed and who attached.
    const log = readFileSync(join(srv.dataDir, 'console', 'sol01.log'), 'utf8');
    expect(log).toContain('Booting Debian GNU/Linux...');
    expect(log).toMatch(/admin@127\.0\.0\.1 \(client: alice\) .*attached/);
    expect(log).toContain('again');
  }, 60_000);

  it('--force takes the console over; the first user is told and exits 1', async () => {
    const a = attach('sol01', { actor: 'alice' });
    await until(() => a.err().includes('via ipmi'), a.err);
    const b = attach('sol01', { actor: 'bob', force: true });
    await until(() => b.err().includes('taken over'), b.err);
    expect(await a.done).toBe(1);
    expect(a.out()).toMatch(/\[fleet console: console taken over by admin@127\.0\.0\.1 \(client: bob\)/);
    await line.write('for-bob\r\n');
    await until(() => b.out().includes('for-bob'), b.out);
    b.keys.write('~.');
    expect(await b.done).toBe(0);
  }, 30_000);

  it('clear errors: no such node, no BMC, a plain GET without the upgrade, a wrong token', async () => {
    await expect(attach('nosuch').done).rejects.toMatchObject({ code: 'node.not_found' });
    await expect(attach('nobmc01').done).rejects.toMatchObject({ code: 'bmc.unsupported', message: expect.stringMatching(/no BMC/) });
    const res = await fetch(`${srv.url}/api/v1/nodes/sol01/console`, { headers: { authorization: `Bearer ${srv.token}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/Upgrade: fleet-console/);
    // A wrong token is refused before the upgrade.
    const bad = cmdConsole({ url: srv.url, token: 'not-the-token' }, 'sol01', {}, { stdout: () => undefined, stderr: () => undefined, env: {}, isTTY: false, home: srv.dir, cwd: srv.dir }, { stdin: new PassThrough(), stdout: new PassThrough() });
    await expect(bad).rejects.toMatchObject({ code: 'auth.invalid' });
  }, 30_000);

  it('logs the console of a node in an install phase with nobody attached; a user joins that line; the log stops when the phase is over', async () => {
    const store = srv.server.store;
    const logFile = join(srv.dataDir, 'console', 'sol01.log');
    const events = async (kind: string) => (await store.events.list({ node: 'sol01', kinds: [kind] })).events;
    await store.nodes.setState('sol01', 'installing', { actor: 'test' });
    // The watcher checks every 5 s.
    const deadline = Date.now() + 15_000;
    while ((await events('console.logging')).length === 0) {
      if (Date.now() > deadline) throw new Error('no console.logging event');
      await new Promise((r) => setTimeout(r, 200));
    }
    const ev = (await events('console.logging'))[0]!;
    expect(ev.details).toMatchObject({ file: logFile, state: 'installing', provider: 'ipmi' });
    await line.write('installer said: partitioning /dev/vda\r\n');
    await until(() => readFileSync(logFile, 'utf8').includes('installer said: partitioning'), () => readFileSync(logFile, 'utf8').slice(-200));

    // An operator attaches to the same line (the BMC allows one SOL: a second one would be refused).
    const a = attach('sol01', { actor: 'alice' });
    await until(() => a.err().includes('via ipmi'), a.err);
    await line.write('installer said: done\r\n');
    await until(() => a.out().includes('installer said: done'), a.out);
    a.keys.write('~.');
    expect(await a.done).toBe(0);
    // Still logged after the user left.
    await line.write('rebooting\r\n');
    await until(() => readFileSync(logFile, 'utf8').includes('rebooting'), () => readFileSync(logFile, 'utf8').slice(-200));
    expect((await events('console.attached')).length).toBeGreaterThan(0);
    expect((await events('console.detached')).length).toBeGreaterThan(0);

    // Phase over: the watcher lets the line go, and the BMC's SOL is free again.
    await store.nodes.setState('sol01', 'ready', { actor: 'test' });
    await until(() => readFileSync(logFile, 'utf8').includes('logging stops'), () => readFileSync(logFile, 'utf8').slice(-200), 15_000);
    const check = await lab.bmcs[0]!.ipmitool(['sol', 'info']);
    expect(check.code, check.stderr).toBe(0);
    const b = attach('sol01', { actor: 'bob' });
    await until(() => b.err().includes('via ipmi'), b.err);
    b.keys.write('~.');
    expect(await b.done).toBe(0);
  }, 60_000);

  it('falls back to ipmitool sol activate for a node whose driver is ipmitool', async () => {
    const a = attach('sol02', { actor: 'alice' });
    let failed: unknown;
    a.done.catch((e: unknown) => (failed = e));
    await until(() => a.err().includes('via ipmitool') || failed !== undefined, a.err, 20_000);
    expect(failed).toBeUndefined();
    await toolLine.write('tool-side output\r\n');
    await until(() => a.out().includes('tool-side output'), a.out, 15_000);
    a.keys.write('typed-via-ipmitool\r');
    await toolLine.waitFor('typed-via-ipmitool');
    a.keys.write('~.');
    expect(await a.done).toBe(0);
    // Deactivated (sol deactivate after ipmitool ends): a re-attach works at once.
    const again = attach('sol02', { actor: 'bob' });
    await until(() => again.err().includes('via ipmitool'), again.err, 20_000);
    again.keys.write('~.');
    expect(await again.done).toBe(0);
  }, 60_000);

  it('(last: it disables the factory account) after fleet bmc rotate the console opens with the node\'s own credential', async () => {
    const r = await srv.fleet('bmc', 'rotate', 'sol01', '--password-length', '16');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/sol01: rotated to fleet-a .* admin \(slot 2\) disabled/);
    const a = attach('sol01', { actor: 'alice' });
    await until(() => a.err().includes('via ipmi') || /refused|failed/i.test(a.err()), a.err);
    expect(a.err()).toContain('via ipmi');
    await line.write('after-rotation\r\n');
    await until(() => a.out().includes('after-rotation'), a.out);
    a.keys.write('\r~.');
    expect(await a.done).toBe(0);
  }, 30_000);
});

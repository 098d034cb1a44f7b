/**
 * End to end, zero-touch racking (issue 13 item 5): `fleet lab up --nodes 2
 * --no-storage --racked 1 --unplanned 1` racks two VMs that no node of
 * lab.yaml names, each with an SMBIOS serial, an empty disk and its own
 * ipmi_sim BMC (a factory account; reachable out of band on 127.0.1.K:623 of
 * the namespace and in band from inside the VM over KCS), and powers them on
 * once the fleet server is up, as a person would. lab.yaml's discovery is
 * policy auto with one rule, "serial LAB-RACK-01 becomes valkyrie03, profile
 * compute, BMC set up on accept, install".
 *
 * With no fleet command after `lab up`: rack01 PXE-boots into the boot
 * environment's inspect mode, reports, is accepted by the rule, sets its BMC
 * up in band (a fleet account); fleet verifies it out of band, disables the
 * factory account and reinstalls it: it ends valkyrie03 **ready**
 * (installed, configured, agent running), which the test checks from inside
 * the VM (ssh; /dev/ipmi0 is its BMC, in band). `fleet events valkyrie03` tells the story from its first
 * DHCP lease to ready, BMC set-up included, with no secret in it; ipmitool
 * with the factory password then fails on its BMC and fleet's own `power
 * status` works. rack02 stays discovered, "no rule matches" in `fleet
 * discover --plan`.
 *
 * Needs what test/e2e/reinstall.test.ts needs; skips with the reason
 * otherwise (fails under CI=true). `npm run test:e2e`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, StatusResponse } from '../../common/api/schemas.js';
import { findExecutable } from '../../common/executable.js';
import { labIpmitool } from '../../server/lab/bmc.js';
import { type Reaper, startReaper } from '../../server/lab/exec.js';
import { defaultNetns, labAdminUrl, labPassword, readLabState, type LabState } from '../../server/lab/lab.js';
import { fleetBin, labPaths, labSsh, runInLab, type LabPaths } from '../../server/lab/server.js';
import { IMAGE_DATA } from '../helpers/debian-image.js';
import { labCli, labE2eMissing, labEmergencyStop } from '../helpers/lab-e2e.js';

const SKIP = labE2eMissing();
const suite = SKIP ? describe.skip : describe;
if (SKIP) console.warn(`e2e racked.test.ts skipped: ${SKIP}`);

const NODE = 'valkyrie03';
/** Inspection, BMC set-up (the machine asks every 30 s), a Debian install under TCG and the first disk boot: ~6-8 min alone; the wait allows twice that. */
const READY_WAIT_MS = 16 * 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

suite(SKIP ? `e2e: zero-touch racking in the lab — SKIPPED: ${SKIP}` : 'e2e: zero-touch racking in the lab (policy auto, BMC set up in band, install)', () => {
  let work = '';
  let p: LabPaths;
  let lab: LabState;
  let factory = '';
  let labPw = '';
  let tUp = 0;
  let reaper: Reaper | undefined;
  const timings: string[] = [];
  const emergency = () => labEmergencyStop(p, work);

  async function fleet(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    return runInLab(p, args, { stdio: 'pipe', timeoutMs: 30_000 });
  }
  function tail(file: string, n: number): string {
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-n).join('\n') : '';
  }
  function context(): string {
    const racked = lab.nodes.filter((n) => n.role === 'racked');
    return `server log tail:\n${tail(p.serverLog, 40)}\n${racked.map((n) => `--- ${n.name} console:\n${tail(join(n.vmDir, 'console.log'), 25)}`).join('\n')}`;
  }
  const rack = (label: string) => lab.nodes.find((n) => n.name === label)!;

  beforeAll(async () => {
    process.once('exit', emergency);
    work = await mkdtemp(join(tmpdir(), 'fleet-e2e-rack-'));
    await chmod(work, 0o711); // dnsmasq drops root and traverses to the data dir
    const dir = join(work, 'lab');
    p = labPaths(dir);
    reaper = startReaper({
      pidFiles: [p.serverPid, join(p.dataDir, 'dnsmasq', 'dnsmasq.pid'), ...['valkyrie01', 'valkyrie02', 'rack01', 'rack02'].flatMap((n) => [join(dir, 'vms', n, 'qemu.pid'), join(dir, 'vms', n, 'ipmi_sim.pid')])],
      mark: work,
      netns: defaultNetns(dir),
      maxSeconds: 3600,
      ...(process.env.FLEET_LAB_KEEP ? {} : { removeDir: work }),
    });
    const t0 = Date.now();
    const up = await labCli(['up', '--nodes', '2', '--no-storage', '--racked', '1', '--unplanned', '1', '--dir', dir, '--image-cache', IMAGE_DATA], 20 * 60_000);
    expect(up.code, up.out).toBe(0);
    expect(up.out).toMatch(/racked and powered on: rack01, rack02/);
    tUp = Date.now();
    timings.push(`lab up (2 VMs off, 2 racked powered on): ${secs(tUp - t0)}`);
    lab = readLabState(dir)!;
    labPw = await labPassword(lab);
    factory = (await readFile(rack('rack01').factory!.passwordFile, 'utf8')).trim();
    expect(factory).toMatch(/^\S{16}$/);
  }, 21 * 60_000);

  afterAll(async () => {
    if (p) {
      const down = await labCli(['down', '--dir', p.dir], 60_000);
      console.log(`fleet lab down:\n${down.out}`);
      expect(down.out).not.toMatch(/processes still in the namespace/);
    }
    process.off('exit', emergency);
    reaper?.stop();
    if (work && !process.env.FLEET_LAB_KEEP) await rm(work, { recursive: true, force: true });
    console.log(`e2e (racked) timings:\n  ${timings.join('\n  ')}`);
  }, 90_000);

  it(`a racked machine whose serial a rule names ends ${NODE} ready with no command; its events tell the story; its factory password is dead`, async () => {
    // No fleet command: only reads until the node rests.
    let state = '';
    let named = 0;
    for (const end = Date.now() + READY_WAIT_MS; Date.now() < end; await sleep(5000)) {
      const r = await fleet('status', '--json');
      if (r.code !== 0) continue;
      const n = (JSON.parse(r.out) as StatusResponse).nodes.find((x) => x.name === NODE);
      if (n && !named) {
        named = Date.now();
        timings.push(`${NODE} exists (inspected, accepted by policy auto): ${secs(named - tUp)} after lab up`);
      }
      state = n?.state ?? '';
      if (['ready', 'failed'].includes(state)) break;
    }
    expect(state, `${NODE} after ${secs(READY_WAIT_MS)}; ${context()}`).toBe('ready');
    timings.push(`${NODE} ready: ${secs(Date.now() - tUp)} after lab up, with no fleet command`);

    // The story, from the first DHCP lease to ready.
    const ev = await fleet('events', NODE, '--json', '--limit', '2000');
    expect(ev.code, ev.err).toBe(0);
    const events = JSON.parse(ev.out) as ApiEvent[];
    console.log(`fleet events ${NODE}:\n${(await fleet('events', NODE, '--limit', '2000')).out}`);
    const at = (what: string, pred: (e: ApiEvent) => boolean) => {
      const i = events.findIndex(pred);
      expect(i, `${what} in ${NODE}'s events`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const story = [
      at('machine.discovered (the first DHCP lease)', (e) => e.kind === 'machine.discovered' && e.details?.mac === rack('rack01').mac),
      at('machine.inspected', (e) => e.kind === 'machine.inspected'),
      at('machine.accepted by policy auto', (e) => e.kind === 'machine.accepted' && e.details?.rule === 'rack' && e.details?.via === 'policy'),
      at('bmc.setup_planned', (e) => e.kind === 'bmc.setup_planned'),
      at('bmc.setup_reported', (e) => e.kind === 'bmc.setup_reported'),
      at('bmc.credential_rotated', (e) => e.kind === 'bmc.credential_rotated'),
      at('install.started', (e) => e.kind === 'install.started'),
      at('install.finished', (e) => e.kind === 'install.finished'),
      at('agent.boot', (e) => e.kind === 'agent.boot'),
      at('state.changed -> ready', (e) => e.kind === 'state.changed' && e.toState === 'ready'),
    ];
    expect(story, 'in this order').toEqual([...story].sort((a, b) => a - b));
    for (const secret of [factory, labPw]) expect(ev.out).not.toContain(secret);
    expect(ev.out).not.toMatch(/"password"/);

    // Out of band: the factory account is refused; fleet's own credential drives the BMC.
    const b = rack('rack01').bmc;
    const old = await labIpmitool(lab.netns, findExecutable('ipmitool')!, { address: b.address, port: b.port, username: 'admin', password: factory }, ['chassis', 'power', 'status']);
    expect(old.code, `the factory password still works: ${old.stdout}`).not.toBe(0);
    const st = await fleet('power', 'status', NODE);
    expect(st.code, st.out + st.err).toBe(0);
    expect(st.out.trim()).toBe(`${NODE}: on`);

    // From inside the machine: its name and address, systemd up, the agent running, the serial it was racked with.
    let r = { code: 255, out: '', err: '' };
    for (let i = 0; i < 6 && r.code === 255; i++) {
      r = await labSsh(p, NODE, ['hostname; ip -4 -o addr show scope global | awk \'{print $4}\'; systemctl is-active multi-user.target; systemctl is-active fleet-agent; cat /sys/class/dmi/id/product_serial; ls /dev/ipmi* 2>&1'], { stdio: 'pipe', timeoutMs: 90_000 });
      if (r.code === 255) await sleep(5000);
    }
    console.log(`${NODE}# hostname; ip; multi-user.target; fleet-agent; serial; /dev/ipmi* ->\n${r.out}${r.err}`);
    const lines = r.out.trim().split('\n');
    // …and its BMC in band: the installed kernel found the KCS interface (ipmi_si) of the BMC it was racked with.
    expect(lines.slice(0, 6), r.err).toEqual([NODE, `${rack('rack01').ip}/24`, 'active', 'active', 'LAB-RACK-01', '/dev/ipmi0']);
  }, READY_WAIT_MS + 5 * 60_000);

  it(`fleet console ${NODE} shows its kernel booting when it reboots (its BMC's SOL, wired to the VM's serial line)`, async () => {
    const state = readLabState(p.dir)!;
    // The CLI as an admin runs it, a pipe for its keyboard: attached before the reboot, it shows the whole boot.
    const con = spawn('ip', ['netns', 'exec', state.netns, process.execPath, fleetBin(), '--url', labAdminUrl(state), '--data', p.dataDir, 'console', NODE], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    con.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
    con.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => con.once('exit', (c) => r(c)));
    const until = async (what: string, pred: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !pred(); await sleep(250)) {
        if (Date.now() > end || con.exitCode !== null) throw new Error(`fleet console: no ${what} in ${secs(ms)} (exit ${con.exitCode})\nstderr: ${err}\nstdout tail: ${out.slice(-2000)}`);
      }
    };
    try {
      await until('attach message', () => err.includes(`[fleet console: ${NODE} via `), 30_000);
      const t0 = Date.now();
      // The reboot is asked from inside (ssh ends with the connection: its code does not matter).
      await labSsh(p, NODE, ['systemctl reboot'], { stdio: 'pipe', timeoutMs: 30_000 });
      await until('kernel banner', () => /Linux version \d+\.\d+\S* /.test(out), 300_000);
      timings.push(`fleet console ${NODE}: the kernel banner ${secs(Date.now() - t0)} after systemctl reboot`);
      await until('login prompt', () => new RegExp(`${NODE} login: `).test(out), 300_000);
      timings.push(`fleet console ${NODE}: the login prompt ${secs(Date.now() - t0)} after systemctl reboot`);
      console.log(`fleet console ${NODE} during the reboot (lines with Linux version / login):\n${out.split(/\r?\n/).filter((l) => /Linux version|login: /.test(l)).join('\n')}`);
      con.stdin!.write('\r~.');
      expect(await exited, err).toBe(0);
      expect(err).toContain('[fleet console: detached]');
    } finally {
      if (con.exitCode === null) con.kill('SIGKILL');
    }
    // Back: the agent reconnects and the node rests in ready.
    let state2 = '';
    for (const end = Date.now() + 300_000; Date.now() < end; await sleep(5000)) {
      const r = await fleet('status', '--json');
      state2 = r.code === 0 ? ((JSON.parse(r.out) as StatusResponse).nodes.find((x) => x.name === NODE)?.state ?? '') : '';
      if (state2 === 'ready' && (await labSsh(p, NODE, ['true'], { stdio: 'pipe', timeoutMs: 20_000 })).code === 0) break;
    }
    expect(state2).toBe('ready');
  }, 12 * 60_000);

  it('a racked machine no rule names stays discovered: "no rule matches" in fleet discover --plan', async () => {
    const mac = rack('rack02').mac;
    const d = await fleet('discovered', '--json');
    expect(d.code, d.err).toBe(0);
    const m = (JSON.parse(d.out) as { mac: string; inspection: { system: { serial: string } } | null }[]).find((x) => x.mac === mac);
    expect(m?.inspection?.system.serial, `rack02 inspected; ${context()}`).toBe('LAB-RACK-02');
    const plan = await fleet('discover', '--plan');
    console.log(`fleet discover --plan:\n${plan.out}`);
    const pj = JSON.parse((await fleet('discover', '--plan', '--json')).out) as { planned: { mac: string }[]; unplanned: { mac: string; reason: string }[] };
    expect(pj.planned.map((x) => x.mac)).not.toContain(mac);
    expect(pj.unplanned.find((x) => x.mac === mac)?.reason).toMatch(/no rule matches/);
    expect(plan.out).toMatch(/no rule matches/);
    const s = JSON.parse((await fleet('status', '--json')).out) as StatusResponse;
    expect(s.nodes.map((n) => n.name).sort()).toEqual(['valkyrie01', 'valkyrie02', NODE].sort());
  }, 120_000);
});

/**
 * The lab's plumbing end to end, without the fleet server: one lab VM
 * (server/lab) netboots through a plain dnsmasq and a stand-in HTTP server
 * (server/lab/assets/lab-httpd.mjs) inside a fresh network namespace, runs
 * the stand-in installer on fleet's own rendered boot.ipxe, install.ipxe and
 * kickstart (base.ks), and boots the installed disk.
 *
 * Driven through the VM's ipmi_sim BMC with the real ipmitool (bootdev pxe,
 * power on). The kickstart's %post downloads the lab's fleet-agent wrapper,
 * which runs node from the host over 9p; the 9p "fleet source" share holds a
 * stand-in bin/fleet-agent.js that POSTs its arguments back (and keeps
 * "enrolment" state in /var/lib/fleet-agent on the VM's disk). Asserted:
 * install-started → %post agent enroll → install-finished → disk boot
 * (fleet.lab.booted callback) → agent run reading the state written at
 * install, all from the VM's address, in one QEMU process (-boot once=n).
 *
 * Needs root and: qemu-system-x86, ipxe-qemu, openipmi, ipmitool,
 * dnsmasq-base, busybox-static, linux-image-amd64, fdisk, e2fsprogs,
 * extlinux, syslinux-common, kmod. Skips with the reason otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileSpec } from '../../server/model.js';
import { decideBoot } from '../../server/netboot/decide.js';
import { loadTemplate, renderBootChain, renderIpxe, renderKickstart } from '../../server/netboot/render/index.js';
import { labIpmitool } from '../../server/lab/bmc.js';
import { findExecutable } from '../../common/executable.js';
import { killPid, type Reaper, startReaper } from '../../server/lab/exec.js';
import { assetPath, buildLabImages, type LabImages } from '../../server/lab/images.js';
import { labDown, labKillSync, labPassword, labPrerequisites, labStatus, labUp, type LabState } from '../../server/lab/lab.js';
import { vmPid } from '../../server/lab/vm.js';

const missing = [...labPrerequisites()];
if (!findExecutable('dnsmasq')) missing.push('dnsmasq (dnsmasq-base)');
if (!findExecutable('ipmitool')) missing.push('ipmitool (ipmitool)');
const SKIP = missing.length > 0 ? `needs ${missing.join(', ')}` : '';
const suite = SKIP ? describe.skip : describe;
const title = SKIP ? `lab: stand-in installer in a VM — SKIPPED: ${SKIP}` : 'lab: stand-in installer in a VM';
if (SKIP) console.warn(`lab-installer.test.ts skipped: ${SKIP}`);

const NETNS = `fleet-test-${randomBytes(4).toString('hex')}`;
const SERVER = 'http://10.77.0.1:8080';
const NODE = 'valkyrie01';
const MAC = '52:54:00:77:00:01';
const VM_IP = '10.77.0.11';
const TOKEN = 'lab-test-token-0123456789abcdef';
/** The stand-in agent fails `enroll` for a token containing FAIL. */
const TOKEN_FAIL = 'lab-test-token-FAIL-0123456789';
const FP = 'ab'.repeat(32);
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl lab@test';
/** Image cache shared by runs (rebuilt only when its inputs change). */
const CACHE = join(tmpdir(), 'fleet-lab-images');

/** Stand-in for bin/fleet-agent.js, run by the lab's agent wrapper with the host's node over 9p. */
const STANDIN_AGENT = `// fleet lab test: stand-in agent (plain JS, no dependencies)
import fs from 'node:fs';
import os from 'node:os';
const [cmd = 'none', ...rest] = process.argv.slice(2);
const stateDir = '/var/lib/fleet-agent';
let enrolled = null;
if (cmd === 'enroll') {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(stateDir + '/state.json', JSON.stringify({ node: os.hostname(), at: Date.now() }));
}
try { enrolled = JSON.parse(fs.readFileSync(stateDir + '/state.json', 'utf8')); } catch {}
const body = JSON.stringify({ argv: [cmd, ...rest], node: process.version, hostname: os.hostname(), enrolled });
const res = await fetch('${SERVER}/lab/agent/' + cmd, { method: 'POST', body, signal: AbortSignal.timeout(10000) });
if (!res.ok) process.exit(1);
if (cmd === 'enroll' && rest.join(' ').includes('FAIL')) process.exit(3);
if (cmd === 'run') setInterval(() => {}, 1 << 30);
`;

interface Req {
  t: number;
  method: string;
  path: string;
  query: string;
  remote: string;
  status: number;
  bytes: number;
  body?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

suite(title, () => {
  let work = '';
  let lab: LabState | undefined;
  let images: LabImages;
  let password = '';
  let dnsmasq: ChildProcess | undefined;
  let httpd: ChildProcess | undefined;
  let reaper: Reaper | undefined;
  let profile: ProfileSpec;
  const reqs: Req[] = [];
  const kickstart = async (token: string) =>
    renderKickstart(await loadTemplate('kickstart', 'base.ks'), { node: { name: NODE }, profile, cluster: { domain: 'lab.local', timezone: 'UTC' }, server: SERVER, token, caFingerprint: FP });
  // If the worker exits without afterAll (killed test run): nothing of ours outlives it.
  const emergency = () => {
    for (const c of [dnsmasq, httpd]) if (c?.pid && c.exitCode === null) c.kill('SIGKILL');
    if (lab) labKillSync(lab.dir);
  };

  const ipmi = (args: string[]) => labIpmitool(NETNS, findExecutable('ipmitool')!, { address: '127.0.0.1', port: lab!.nodes[0]!.bmc.port, username: 'admin', password }, args);

  /** The first request since `since` matching `pred`; gives up early when the install failed (unless that is awaited). */
  async function waitFor(what: string, pred: (r: Req) => boolean, deadline: number, since = 0): Promise<Req> {
    while (Date.now() < deadline) {
      const r = reqs.find((x) => x.t >= since && pred(x));
      if (r) return r;
      if (what !== 'install-failed' && reqs.some((x) => x.t >= since && x.path.endsWith('/install-failed'))) break;
      await sleep(100);
    }
    const vmDir = lab?.nodes[0]?.vmDir;
    const consoleTail = vmDir && existsSync(join(vmDir, 'console.log')) ? readFileSync(join(vmDir, 'console.log'), 'utf8').split('\n').slice(-40).join('\n') : '';
    throw new Error(`no ${what} (install-failed or timeout); requests so far:\n${reqs.map((r) => `${r.method} ${r.path}`).join('\n')}\n--- console tail:\n${consoleTail}`);
  }

  beforeAll(async () => {
    process.once('exit', emergency);
    work = await mkdtemp(join(tmpdir(), 'fleet-lab-test-'));
    // A worker killed by a signal runs no hooks: this kills what we start (by PID, command line naming `work`) and the namespace.
    const vmDir = join(work, 'lab', 'vms', NODE);
    reaper = startReaper({ pidFiles: [join(work, 'pids'), join(vmDir, 'qemu.pid'), join(vmDir, 'ipmi_sim.pid')], mark: work, netns: NETNS, maxSeconds: 600, ...(process.env.FLEET_LAB_KEEP ? {} : { removeDir: work }) });
    images = await buildLabImages({ cacheDir: CACHE });

    // 9p "fleet source": a stand-in agent instead of the real one (the agent itself is tested elsewhere).
    const src = join(work, 'agent-src');
    await mkdir(join(src, 'bin'), { recursive: true });
    await writeFile(join(src, 'bin', 'fleet-agent.js'), STANDIN_AGENT);
    await writeFile(join(src, 'package.json'), '{"type":"module"}\n');

    lab = await labUp({ dir: join(work, 'lab'), nodes: 1, netns: NETNS, images, sourceDir: src });
    password = await labPassword(lab);

    // What fleet's boot endpoints would serve, rendered by fleet's own renderers.
    const www = join(work, 'www');
    await mkdir(join(www, 'boot'), { recursive: true });
    await mkdir(join(www, 'kickstart'), { recursive: true });
    await mkdir(join(www, 'agent'), { recursive: true });
    profile = {
      name: 'lab',
      os: { install: 'kickstart', tree: lab.treeUrl },
      kernelArgs: ['console=ttyS0', `fleet.lab.booted=${SERVER}/lab/booted`],
      packages: [],
      sshKeys: [SSH_KEY],
      roles: {},
    };
    const decision = decideBoot({ node: { name: NODE, state: 'pxe-armed', armed: true, profile: 'lab' }, mac: MAC, profile, server: SERVER });
    await writeFile(join(www, 'boot.ipxe'), renderBootChain(await loadTemplate('ipxe', 'boot.ipxe'), { server: SERVER }));
    await writeFile(join(www, 'boot', `${MAC.replace(/:/g, '-')}.ipxe`), renderIpxe(decision, await loadTemplate('ipxe', 'install.ipxe'), { server: SERVER }));
    await writeFile(join(www, 'kickstart', `${NODE}.ks`), await kickstart(TOKEN));
    await copyFile(images.agentWrapper, join(www, 'agent', 'fleet-agent'));
    await copyFile(images.agentUnit, join(www, 'agent', 'fleet-agent.service'));

    // A plain dnsmasq: DHCP with a reservation, iPXE (option 175) gets boot.ipxe, RAs so iPXE does not wait for IPv6.
    const conf = join(work, 'dnsmasq.conf');
    await writeFile(
      conf,
      [
        'port=0',
        'interface=br0',
        'bind-interfaces',
        'dhcp-authoritative',
        'dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h',
        `dhcp-host=${MAC},${VM_IP},${NODE}`,
        'dhcp-match=set:ipxe,175',
        `dhcp-boot=tag:ipxe,${SERVER}/boot.ipxe`,
        'enable-ra',
        'dhcp-range=::,constructor:br0,ra-only',
        `dhcp-leasefile=${join(work, 'dnsmasq.leases')}`,
        'log-dhcp',
        '',
      ].join('\n'),
    );
    const dlog = openSync(join(work, 'dnsmasq.log'), 'a');
    dnsmasq = spawn('ip', ['netns', 'exec', NETNS, findExecutable('dnsmasq')!, '--keep-in-foreground', '--log-facility=-', `--conf-file=${conf}`, '--user=root', '--group=root'], {
      stdio: ['ignore', dlog, dlog],
    });
    closeSync(dlog);
    await appendFile(join(work, 'pids'), `${dnsmasq.pid}\n`);

    httpd = spawn('ip', ['netns', 'exec', NETNS, process.execPath, assetPath('lab-httpd.mjs'), '--listen', '10.77.0.1:8080', '--root', www, '--map', `/images/lab=${images.tree}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await appendFile(join(work, 'pids'), `${httpd.pid}\n`);
    const listening = new Promise<void>((resolve, reject) => {
      const rl = createInterface({ input: httpd!.stdout! });
      rl.on('line', (line) => {
        const o = JSON.parse(line) as Req & { listening?: string };
        if (o.listening) resolve();
        else reqs.push(o);
      });
      httpd!.once('exit', (c) => reject(new Error(`lab-httpd exited with ${c}`)));
    });
    await Promise.race([listening, sleep(10_000).then(() => Promise.reject(new Error('lab-httpd did not start')))]);
    await sleep(300);
    expect(dnsmasq.exitCode, `dnsmasq exited early, see ${join(work, 'dnsmasq.log')}`).toBeNull();
  }, 180_000);

  afterAll(async () => {
    for (const c of [httpd, dnsmasq]) if (c?.pid) await killPid(c.pid, c === httpd ? 'lab-httpd' : 'dnsmasq');
    const down = lab ? await labDown({ dir: lab.dir }) : undefined;
    process.off('exit', emergency);
    reaper?.stop();
    if (work && !process.env.FLEET_LAB_KEEP) await rm(work, { recursive: true, force: true });
    // Nothing else was left running in the namespace.
    expect(down?.foreignPids ?? []).toEqual([]);
  }, 60_000);

  it('netboots, installs from fleet\'s kickstart, reboots from disk and runs the agent', async () => {
    const vmDir = lab!.nodes[0]!.vmDir;
    expect((await ipmi(['chassis', 'power', 'status'])).stdout).toMatch(/Chassis Power is off/);
    const bootdev = await ipmi(['chassis', 'bootdev', 'pxe']);
    expect(bootdev.code, bootdev.stderr).toBe(0);
    expect((await ipmi(['chassis', 'bootparam', 'get', '5'])).stdout).toMatch(/Force PXE/);

    const t0 = Date.now();
    const on = await ipmi(['chassis', 'power', 'on']);
    expect(on.code, on.stderr).toBe(0);
    const tOn = Date.now();
    expect((await ipmi(['chassis', 'power', 'status'])).stdout).toMatch(/Chassis Power is on/);
    const pid = vmPid(vmDir);
    expect(pid).toBeGreaterThan(1);
    // The one-time PXE boot device is consumed by the power on.
    expect((await labStatus({ dir: lab!.dir })).nodes[0]).toMatchObject({ power: 'on', nextBoot: 'none' });

    const deadline = t0 + 150_000;
    const ev = (method: string, path: string | RegExp) => (r: Req) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path));
    const bootScript = await waitFor('GET /boot.ipxe', ev('GET', '/boot.ipxe'), deadline);
    const initrd = await waitFor('GET initrd.img', ev('GET', '/images/lab/images/pxeboot/initrd.img'), deadline);
    const ks = await waitFor('GET kickstart', ev('GET', `/kickstart/${NODE}.ks`), deadline);
    const started = await waitFor('install-started', ev('POST', `/api/v1/boot-events/${NODE}/install-started`), deadline);
    const agentGet = await waitFor('GET /agent/fleet-agent', ev('GET', '/agent/fleet-agent'), deadline);
    const enroll = await waitFor('agent enroll', ev('POST', '/lab/agent/enroll'), deadline);
    const finished = await waitFor('install-finished', ev('POST', `/api/v1/boot-events/${NODE}/install-finished`), deadline);
    const booted = await waitFor('booted-from-disk', ev('POST', `/lab/booted/${NODE}`), deadline);
    const run = await waitFor('agent run', ev('POST', '/lab/agent/run'), deadline);

    const rel = (r: Req) => ((r.t - t0) / 1000).toFixed(1);
    console.log(
      [
        `lab timings (s after ipmitool power on; power on returned after ${((tOn - t0) / 1000).toFixed(2)} s):`,
        `  iPXE fetched boot.ipxe        ${rel(bootScript)}`,
        `  installer initrd requested    ${rel(initrd)}`,
        `  kickstart fetched             ${rel(ks)}`,
        `  install-started (%pre)        ${rel(started)}`,
        `  agent downloaded (%post)      ${rel(agentGet)}`,
        `  agent enroll via 9p node      ${rel(enroll)}`,
        `  install-finished (--nochroot) ${rel(finished)}`,
        `  booted from disk (OS init)    ${rel(booted)}   (${((booted.t - finished.t) / 1000).toFixed(1)} s after install-finished)`,
        `  agent run from disk           ${rel(run)}`,
      ].join('\n'),
    );

    // Order, and every callback from the VM itself.
    const order = [bootScript, initrd, ks, started, agentGet, enroll, finished, booted, run].map((r) => r.t);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    for (const r of [ks, started, agentGet, enroll, finished, booted, run]) expect(r.remote.replace(/^::ffff:/, '')).toBe(VM_IP);
    expect(reqs.some((r) => r.path.includes('install-failed'))).toBe(false);
    expect(started.query).toBe(`?token=${TOKEN}`);

    // %post ran fleet-agent enroll with the kickstart's arguments, on node from the host over 9p.
    const e = JSON.parse(enroll.body!) as { argv: string[]; node: string; hostname: string };
    expect(e.argv).toEqual(['enroll', '--server', SERVER, '--token', TOKEN, '--ca-fingerprint', FP]);
    expect(e.node).toBe(process.version);
    // The installed system: the agent finds the state it wrote during the install, on the disk.
    const r = JSON.parse(run.body!) as { argv: string[]; hostname: string; enrolled: { node: string } | null };
    expect(r.argv).toEqual(['run']);
    expect(r.hostname).toBe(`${NODE}.lab.local`);
    expect(r.enrolled?.node).toBe(`${NODE}.lab.local`);

    // Disk boot happened inside the same QEMU process (-boot once=n,order=c): no second netboot.
    expect(vmPid(vmDir)).toBe(pid);
    expect(reqs.filter((x) => x.path === '/boot.ipxe')).toHaveLength(1);
    const consoleLog = readFileSync(join(vmDir, 'console.log'), 'utf8');
    expect(consoleLog).toMatch(/fleet-installer: install complete/);
    expect(consoleLog).toMatch(/fleet-os: booted from disk/);

    const off = await ipmi(['chassis', 'power', 'off']);
    expect(off.code, off.stderr).toBe(0);
    expect((await ipmi(['chassis', 'power', 'status'])).stdout).toMatch(/Chassis Power is off/);
    expect(vmPid(vmDir)).toBeUndefined();
  }, 170_000);

  it('on a failing %post: runs %onerror (install-failed with the log tails), stops there and powers off', async () => {
    const vmDir = lab!.nodes[0]!.vmDir;
    // Reinstall the same node with a kickstart whose `fleet-agent enroll` fails (%post --erroronfail).
    await writeFile(join(work, 'www', 'kickstart', `${NODE}.ks`), await kickstart(TOKEN_FAIL));
    expect((await ipmi(['chassis', 'bootdev', 'pxe'])).code).toBe(0);
    const t0 = Date.now();
    expect((await ipmi(['chassis', 'power', 'on'])).code).toBe(0);
    const deadline = t0 + 90_000;
    const ev = (method: string, path: string) => (r: Req) => r.method === method && r.path === path;
    const started = await waitFor('install-started', ev('POST', `/api/v1/boot-events/${NODE}/install-started`), deadline, t0);
    const failed = await waitFor('install-failed', ev('POST', `/api/v1/boot-events/${NODE}/install-failed`), deadline, t0);
    expect(failed.remote.replace(/^::ffff:/, '')).toBe(VM_IP);
    expect(failed.query).toBe(`?token=${TOKEN_FAIL}`);
    // fleet's %onerror sends the installer's logs: anaconda.log names the failed section.
    expect(failed.body).toMatch(/== \/tmp\/anaconda.log/);
    expect(failed.body).toMatch(/%post section \d+ failed and has --erroronfail/);
    expect(failed.body).toMatch(/== \/mnt\/sysroot\/root\/fleet-post.log/);

    // Like anaconda, it stops: no install-finished; the lab then powers the VM off, which the BMC reports.
    let status = '';
    for (let i = 0; i < 60 && !/is off/.test(status); i++) {
      await sleep(250);
      status = (await ipmi(['chassis', 'power', 'status'])).stdout;
    }
    expect(status).toMatch(/Chassis Power is off/);
    const tOff = Date.now();
    expect(reqs.some((r) => r.t >= t0 && r.path.endsWith('/install-finished'))).toBe(false);
    console.log(
      `lab failure path (s after power on): install-started ${((started.t - t0) / 1000).toFixed(1)}, install-failed ${((failed.t - t0) / 1000).toFixed(1)}, power off seen ${((tOff - t0) / 1000).toFixed(1)}`,
    );
    expect(vmPid(vmDir)).toBeUndefined();
  }, 120_000);
});

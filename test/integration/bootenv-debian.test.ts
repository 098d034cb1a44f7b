/**
 * A real Debian from a disk the boot environment installed (issue 11): the
 * real image of image-build.test.ts (the same cache under .tmp/image-build,
 * built once per run, test/helpers/debian-image.ts) is served with a plan to
 * the boot environment in a VM (BIOS, 1 GiB RAM, a 3 GiB virtio disk, TCG)
 * inside a network namespace the test makes (bridge, tap, dnsmasq, the lab's
 * HTTP server), exactly as bootenv.test.ts does. After install-finished the
 * SAME disk is booted again with no network boot (-boot c, no -kernel), and
 * the test logs in as root on the serial console (serial-getty on ttyS0, the
 * console= the boot environment's grub.cfg sets) with the plan's password and
 * checks from inside: multi-user.target active, the hostname, the plan's
 * static address (systemd-networkd), fleet-agent.service enabled (not active:
 * no fleet server runs here, and the unit waits for an enrolment that never
 * happens: the plan has no agent material), /etc/fleet/image.json naming the
 * image's digest, as many installed packages as the manifest lists, the ext4
 * root by the UUID fstab names.
 * Prints the install time (plan fetch → install-finished), the disk boot time
 * (QEMU start → login prompt) and the total.
 *
 * Needs what bootenv.test.ts and image-build.test.ts need, and openssl;
 * under CI=true a missing one fails the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { bootenvPrerequisites, buildBootenv, type BootenvBuild } from '../../server/bootenv/index.js';
import { renderCmdline } from '../../server/bootenv/spec.js';
import { killPid, run, runOk, startReaper, type Reaper } from '../../server/lab/exec.js';
import { assetPath } from '../../server/lab/assets.js';
import { debianImage, type DebianImage, imageBuildMissing } from '../helpers/debian-image.js';
import { SerialConsole } from '../helpers/serial-console.js';

const missing = [...bootenvPrerequisites()];
for (const [n, p] of [['qemu-system-x86_64', 'qemu-system-x86'], ['dnsmasq', 'dnsmasq-base'], ['ip', 'iproute2'], ['openssl', 'openssl']] as const) {
  if (!findExecutable(n)) missing.push(`${n} (${p})`);
}
const imageWhy = imageBuildMissing();
if (imageWhy) missing.push(`the image build: ${imageWhy}`);
if (process.getuid?.() !== 0) missing.push('root (network namespaces)');
const SKIP = missing.length > 0 ? `needs ${missing.join(', ')}` : '';
if (SKIP && process.env.CI === 'true') throw new Error(`CI=true: bootenv-debian.test.ts ${SKIP}`);
const suite = SKIP ? describe.skip : describe;
const title = SKIP ? `bootenv: a real Debian installed and booted — SKIPPED: ${SKIP}` : 'bootenv: a real Debian installed and booted';
if (SKIP) console.warn(`bootenv-debian.test.ts skipped: ${SKIP}`);

const NETNS = `fleet-bootdeb-${randomBytes(4).toString('hex')}`;
const SERVER = 'http://10.79.0.1:8080';
const TOKEN = 'bootenv-debian-token-0123456789abcdef';
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const CACHE = resolve('.tmp', 'bootenv-data');
const VM = { node: 'valkyrie01', mac: '52:54:00:79:00:01', ip: '10.79.0.11', tap: 'tap1' } as const;

interface Req {
  t: number;
  method: string;
  path: string;
  query: string;
  status: number;
  body?: string;
}

suite(title, () => {
  let work = '';
  let be: BootenvBuild;
  let img: DebianImage;
  let dnsmasq: ChildProcess | undefined;
  let httpd: ChildProcess | undefined;
  let reaper: Reaper | undefined;
  const reqs: Req[] = [];
  const emergency = () => {
    for (const c of [dnsmasq, httpd]) if (c?.pid && c.exitCode === null) c.kill('SIGKILL');
  };

  /** QEMU in the namespace, BIOS, 1 GiB, the disk and one NIC on the bridge; the serial console on stdio. */
  function qemu(disk: string, extra: string[], timeoutS: number, name: string): { q: ChildProcess; con: SerialConsole; t0: number; exited: Promise<number | null> } {
    const log = createWriteStream(join(work, `${name}.console.log`));
    const args = [
      'netns', 'exec', NETNS, 'timeout', String(timeoutS), findExecutable('qemu-system-x86_64')!,
      '-accel', 'tcg', '-machine', 'pc', '-m', '1024', '-smp', '1', '-display', 'none', '-no-reboot',
      '-serial', 'stdio', '-monitor', 'none', ...extra,
      '-netdev', `tap,id=n0,ifname=${VM.tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${VM.mac}`,
      '-drive', `file=${disk},format=raw,if=virtio,cache=unsafe`,
      '-name', `${VM.node}-${name},debug-threads=off`, '-pidfile', join(work, `${name}.qemu.pid`),
    ];
    const t0 = Date.now();
    const q = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    void appendFile(join(work, 'pids'), `${q.pid}\n`);
    const con = new SerialConsole((s) => q.stdin!.write(s));
    let err = '';
    q.stdout!.on('data', (d: Buffer) => {
      log.write(d);
      con.feed(d);
    });
    q.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) =>
      q.once('exit', (c) => {
        log.end();
        con.close(`QEMU exited (${c})${err ? `: ${err.trim()}` : ''}`);
        r(c);
      }),
    );
    return { q, con, t0, exited };
  }

  beforeAll(async () => {
    process.once('exit', emergency);
    work = await mkdtemp(join(tmpdir(), 'fleet-bootdeb-test-'));
    reaper = startReaper({ pidFiles: [join(work, 'pids')], mark: work, netns: NETNS, maxSeconds: 1800, ...(process.env.FLEET_LAB_KEEP ? {} : { removeDir: work }) });
    const t0 = Date.now();
    img = await debianImage();
    console.log(`bootenv-debian: image ${img.image.digest.slice(0, 19)} ${img.reused ? 'reused' : 'built'} in ${((Date.now() - t0) / 1000).toFixed(0)} s (kernel ${img.image.kernelVersion}, rootfs ${(img.image.artefacts.rootfs.size / 1048576).toFixed(0)} MiB)`);
    be = await buildBootenv({ dataDir: CACHE, log: (l) => console.log(`bootenv: ${l}`) });

    const www = join(work, 'www');
    await mkdir(join(www, 'images'), { recursive: true });
    await copyFile(join(img.dir, 'rootfs.tar.zst'), join(www, 'images', 'rootfs.tar.zst'));
    const hash = (await runOk('openssl', ['passwd', '-6', '-salt', randomBytes(6).toString('hex'), PASSWORD], { timeoutMs: 10_000 })).trim();
    expect(hash).toMatch(/^\$6\$[^$]+\$[./0-9A-Za-z]+$/);
    await mkdir(join(www, 'bootenv', VM.node), { recursive: true });
    await writeFile(
      join(www, 'bootenv', VM.node, 'plan'),
      JSON.stringify({
        node: VM.node,
        hostname: `${VM.node}.cluster.local`,
        image: { name: 'itest', digest: img.image.digest, rootfs: { url: `${SERVER}/images/rootfs.tar.zst`, sha256: img.image.artefacts.rootfs.sha256, size: img.image.artefacts.rootfs.size }, kernel: null },
        storage: { disk: 'auto', fs: 'ext4', swapMiB: 0 },
        network: { mac: VM.mac, ip: VM.ip, prefix: 24, gateway: '10.79.0.1', dns: ['10.79.0.1'], domain: 'cluster.local' },
        rootPasswordHash: hash,
        sshKeys: [],
        // No fleet server here to enrol with: a plan without agent material installs no enrolment
        // (the lab e2e enrols the image's agent for real).
        agent: null,
      }),
    );

    await runOk('ip', ['netns', 'add', NETNS], { timeoutMs: 10_000 });
    const ipn = (a: string[]) => runOk('ip', ['-n', NETNS, ...a], { timeoutMs: 10_000 });
    await ipn(['link', 'set', 'lo', 'up']);
    await ipn(['link', 'add', 'br0', 'type', 'bridge']);
    await ipn(['addr', 'add', '10.79.0.1/24', 'dev', 'br0']);
    await ipn(['link', 'set', 'br0', 'up']);
    await ipn(['tuntap', 'add', VM.tap, 'mode', 'tap']);
    await ipn(['link', 'set', VM.tap, 'master', 'br0']);
    await ipn(['link', 'set', VM.tap, 'up']);
    const conf = join(work, 'dnsmasq.conf');
    await writeFile(conf, ['port=0', 'interface=br0', 'bind-interfaces', 'dhcp-authoritative', 'dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,1h', `dhcp-host=${VM.mac},${VM.ip},${VM.node}`, `dhcp-leasefile=${join(work, 'dnsmasq.leases')}`, ''].join('\n'));
    const dlog = openSync(join(work, 'dnsmasq.log'), 'a');
    dnsmasq = spawn('ip', ['netns', 'exec', NETNS, findExecutable('dnsmasq')!, '--keep-in-foreground', '--log-facility=-', `--conf-file=${conf}`, '--user=root', '--group=root'], { stdio: ['ignore', dlog, dlog] });
    closeSync(dlog);
    await appendFile(join(work, 'pids'), `${dnsmasq.pid}\n`);
    httpd = spawn('ip', ['netns', 'exec', NETNS, process.execPath, assetPath('lab-httpd.mjs'), '--listen', '10.79.0.1:8080', '--root', www], { stdio: ['ignore', 'pipe', 'inherit'] });
    await appendFile(join(work, 'pids'), `${httpd.pid}\n`);
    await new Promise<void>((res, rej) => {
      const rl = createInterface({ input: httpd!.stdout! });
      rl.on('line', (line) => {
        const o = JSON.parse(line) as Req & { listening?: string };
        if (o.listening) res();
        else reqs.push(o);
      });
      httpd!.once('exit', (c) => rej(new Error(`lab-httpd exited with ${c}`)));
    });
  }, 45 * 60_000);

  afterAll(async () => {
    for (const c of [httpd, dnsmasq]) if (c?.pid) await killPid(c.pid, c === httpd ? 'lab-httpd' : 'dnsmasq');
    await run('ip', ['netns', 'del', NETNS], { timeoutMs: 10_000 });
    reaper?.stop();
    process.off('exit', emergency);
    if (!process.env.FLEET_LAB_KEEP && work) await rm(work, { recursive: true, force: true });
  });

  it('installs the real image (BIOS, 3 GiB disk), then boots that disk: root logs in on ttyS0 and sees the plan applied', async () => {
    const disk = join(work, 'disk.raw');
    await runOk('truncate', ['-s', '3G', disk], { timeoutMs: 10_000 });

    // 1. The boot environment installs the image and reboots (QEMU exits: -no-reboot).
    const inst = qemu(disk, ['-kernel', join(be.dir, 'vmlinuz'), '-initrd', join(be.dir, 'initrd.img'), '-append', renderCmdline({ server: SERVER, node: VM.node, token: TOKEN, mac: VM.mac, job: 'install', console: ['ttyS0'] })], 1200, 'install');
    const code = await inst.exited;
    const mine = reqs.filter((r) => r.t >= inst.t0 && r.path.includes(`/${VM.node}/`));
    const failed = mine.find((r) => r.path.endsWith('/install-failed'));
    expect(failed, `install-failed: ${failed?.body}\n${inst.con.tail()}`).toBeUndefined();
    const plan = mine.find((r) => r.path.endsWith('/plan'));
    const finished = mine.find((r) => r.path.endsWith('/install-finished'));
    expect(finished, `no install-finished (QEMU exit ${code})\n${mine.map((r) => `${r.method} ${r.path}`).join('\n')}\n${inst.con.tail()}`).toBeDefined();
    expect(code, inst.con.tail()).toBe(0);
    const installS = (finished!.t - plan!.t) / 1000;

    // 2. The same disk, no network boot: SeaBIOS → GRUB (the boot environment's) → the image's kernel and initramfs → systemd.
    const boot = qemu(disk, ['-boot', 'c'], 900, 'disk');
    try {
      const con = boot.con;
      const prompt = await con.expect(/(\S+) login: $/m, 600_000, 'the login prompt on ttyS0');
      const bootS = (Date.now() - boot.t0) / 1000;
      expect(prompt[1]).toBe(VM.node);
      con.send('root');
      await con.expect(/Password: ?$/m, 30_000, 'the password prompt');
      con.send(PASSWORD);
      await con.expect(/root@\S+:~# ?$/m, 60_000, 'the root shell prompt');
      con.send("stty -echo cols 250; export TERM=dumb PS1='# '; dmesg -n 1");
      await con.expect(/^# $/m, 30_000, 'the quiet prompt');
      const sh = async (cmd: string, timeoutMs = 60_000) => {
        const r = await con.run(cmd, timeoutMs);
        console.log(`bootenv-debian: # ${cmd} → ${r.code}\n${r.out}`);
        return r;
      };

      const running = await sh('timeout 240 systemctl is-system-running --wait', 300_000);
      if (running.out !== 'running') await sh('systemctl --failed --no-legend --plain');
      expect(running.out, 'systemctl is-system-running').toMatch(/^(running|degraded)$/);
      expect((await sh('systemctl is-active multi-user.target')).out).toBe('active');
      expect((await sh('hostname')).out).toBe(VM.node);
      const addr = await sh('ip -4 -o addr show');
      expect(addr.out, 'the plan\'s static address (systemd-networkd)').toMatch(new RegExp(`inet ${VM.ip.replace(/\./g, '\\.')}/24 `));
      expect((await sh('ip -o link show | grep -i ' + VM.mac)).code).toBe(0);
      expect((await sh('ip -4 route show default')).out).toContain('via 10.79.0.1');
      expect((await sh('systemctl is-enabled fleet-agent.service')).out).toBe('enabled');
      // Not enrolled (no agent material in this plan): the unit's ConditionPathExists keeps it from starting.
      const agent = await sh('systemctl show -p ActiveState,ConditionResult fleet-agent.service');
      expect(agent.out).toContain('ActiveState=inactive');
      expect(agent.out).toContain('ConditionResult=no');
      expect((await sh('test -e /etc/fleet/agent.env')).code).not.toBe(0);
      // The root filesystem is the image's: its record, and as many packages as its manifest lists.
      const rec = JSON.parse((await sh('cat /etc/fleet/image.json')).out) as { digest: string; rootfsSha256: string };
      expect(rec).toMatchObject({ digest: img.image.digest, rootfsSha256: img.image.artefacts.rootfs.sha256 });
      const pkgs = await sh("dpkg-query -W -f '${db:Status-Status}\\n' | grep -c '^installed$'");
      expect(Number(pkgs.out)).toBe(img.image.packages.length);
      const root = await sh('findmnt -n -o SOURCE,FSTYPE,OPTIONS /');
      expect(root.out).toMatch(/^\/dev\/vda2 +ext4 +rw,/);
      const uuid = (await sh('blkid -s UUID -o value /dev/vda2')).out;
      expect((await sh('cat /etc/fstab')).out).toContain(`UUID=${uuid} / ext4`);
      expect((await sh('cat /proc/cmdline')).out).toContain(`root=UUID=${uuid}`);
      expect((await sh('cat /etc/machine-id')).out).toMatch(/^[0-9a-f]{32}$/);
      expect((await sh('systemctl is-active ssh.service systemd-networkd.service')).out).toBe('active\nactive');
      expect((await sh('uname -r')).out).toBe(img.image.kernelVersion);

      const totalS = (Date.now() - inst.t0) / 1000;
      console.log(
        `bootenv-debian timings (TCG, 1 vCPU): install ${installS.toFixed(1)} s (plan fetch → install-finished, ${(img.image.artefacts.rootfs.size / 1048576).toFixed(0)} MiB rootfs.tar.zst), ` +
          `disk boot ${bootS.toFixed(1)} s (QEMU start → login prompt), total ${totalS.toFixed(1)} s (install QEMU start → checks done); ` +
          `disk used ${((statSync(disk).blocks * 512) / 1048576).toFixed(0)} MiB of the sparse 3 GiB raw file`,
      );
      con.send('poweroff');
      await Promise.race([boot.exited, new Promise((r) => setTimeout(r, 120_000))]);
    } finally {
      const pidFile = join(work, 'disk.qemu.pid');
      if (boot.q.exitCode === null && existsSync(pidFile)) {
        const pid = Number(readFileSync(join(work, 'disk.qemu.pid'), 'utf8').trim());
        await killPid(pid, work);
        await boot.exited;
      }
    }
  }, 40 * 60_000);
});

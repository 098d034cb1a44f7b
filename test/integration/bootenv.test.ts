/**
 * The fleet boot environment in a VM (server/bootenv, docs/bootenv.md): the
 * real build (cached under .tmp/bootenv-data, reused while its key holds),
 * booted by QEMU (TCG) with -kernel/-initrd/-append inside a network
 * namespace the test makes (bridge, one tap per VM, dnsmasq for DHCP, the
 * lab's stand-in HTTP server serving plans and a small rootfs.tar.zst the
 * test builds and recording the callbacks). Cases:
 *   (a) BIOS (its image download is cut once and must be resumed with a Range request), a 1 GiB virtio disk: install-started, install-progress,
 *       install-finished; then the disk is read from the host (GPT layout,
 *       GRUB in the MBR, the image's files, /etc/hostname, grub.cfg, fstab,
 *       agent.env, authorized_keys);
 *   (b) no disk: install-failed "no disk found";
 *   (c) a plan whose sha256 does not match: install-failed "image digest mismatch";
 *   (d) UEFI (OVMF): an ESP with GRUB's removable-media loader, fstab mounts it.
 * Needs root, qemu-system-x86, ovmf, dnsmasq-base, iproute2, e2fsprogs (debugfs)
 * and the boot environment's build prerequisites; skips with the reason
 * otherwise (and under CI=true a skip fails the run).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { bootenvPrerequisites, buildBootenv, type BootenvBuild } from '../../server/bootenv/index.js';
import { renderCmdline } from '../../server/bootenv/spec.js';
import { killPid, type Reaper, run, runOk, startReaper } from '../../server/lab/exec.js';
import { assetPath } from '../../server/lab/assets.js';

const missing = [...bootenvPrerequisites()];
for (const [n, p] of [['qemu-system-x86_64', 'qemu-system-x86'], ['dnsmasq', 'dnsmasq-base'], ['ip', 'iproute2'], ['debugfs', 'e2fsprogs'], ['sfdisk', 'fdisk']] as const) {
  if (!findExecutable(n)) missing.push(`${n} (${p})`);
}
if (process.getuid?.() !== 0) missing.push('root (network namespaces)');
if (!existsSync('/usr/share/OVMF/OVMF_CODE_4M.fd')) missing.push('OVMF (ovmf)');
const SKIP = missing.length > 0 ? `needs ${missing.join(', ')}` : '';
const suite = SKIP ? describe.skip : describe;
const title = SKIP ? `bootenv: install in a VM — SKIPPED: ${SKIP}` : 'bootenv: install in a VM';
if (SKIP) console.warn(`bootenv.test.ts skipped: ${SKIP}`);

const NETNS = `fleet-bootenv-${randomBytes(4).toString('hex')}`;
const SERVER = 'http://10.78.0.1:8080';
const TOKEN = 'bootenv-test-token-0123456789abcdef';
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl bootenv@test';
const CACHE = resolve('.tmp', 'bootenv-data');
const VMS = {
  a: { node: 'valkyrie01', mac: '52:54:00:78:00:01', ip: '10.78.0.11', tap: 'tap1' },
  b: { node: 'valkyrie02', mac: '52:54:00:78:00:02', ip: '10.78.0.12', tap: 'tap2' },
  c: { node: 'valkyrie03', mac: '52:54:00:78:00:03', ip: '10.78.0.13', tap: 'tap3' },
  d: { node: 'valkyrie04', mac: '52:54:00:78:00:04', ip: '10.78.0.14', tap: 'tap4' },
} as const;
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
type Vm = (typeof VMS)[keyof typeof VMS];

/** The first image download ((a)'s) is cut after this many bytes: the boot environment must resume it. */
const BREAK_AT = 100_000;

interface Req {
  t: number;
  method: string;
  path: string;
  query: string;
  remote: string;
  status: number;
  range?: string;
  cut?: number;
  body?: string;
}

suite(title, () => {
  let work = '';
  let be: BootenvBuild;
  let kver = '';
  let rootfsSha = '';
  let rootfsSize = 0;
  let dnsmasq: ChildProcess | undefined;
  let httpd: ChildProcess | undefined;
  let reaper: Reaper | undefined;
  const reqs: Req[] = [];
  const emergency = () => {
    for (const c of [dnsmasq, httpd]) if (c?.pid && c.exitCode === null) c.kill('SIGKILL');
  };

  function plan(vm: Vm, sha = rootfsSha): string {
    return JSON.stringify({
      node: vm.node,
      hostname: `${vm.node}.cluster.local`,
      image: { name: 'tiny', digest: `sha256:${rootfsSha}`, rootfs: { url: `${SERVER}/images/rootfs.tar.zst`, sha256: sha, size: rootfsSize }, kernel: null },
      storage: { disk: 'auto', fs: 'ext4', swapMiB: 0 },
      network: { mac: vm.mac, ip: vm.ip, prefix: 24, gateway: '10.78.0.1', dns: ['10.78.0.1'], domain: 'cluster.local' },
      rootPasswordHash: '$6$salt$hash',
      sshKeys: [SSH_KEY],
      agent: { enrolToken: 'enrol-token-xyz', caFingerprint: `sha256:${'ab'.repeat(32)}`, server: '10.78.0.1:9443' },
    });
  }

  /** Boots one VM to its end (power off or reboot with -no-reboot); resolves with the QEMU start time and exit. */
  async function boot(vm: Vm, disk: string | null, timeoutS = 300, uefi = false): Promise<{ t0: number; code: number | null; console: string }> {
    const dir = join(work, vm.node);
    await mkdir(dir, { recursive: true });
    const firmware: string[] = [];
    if (uefi) {
      await copyFile(OVMF_VARS, join(dir, 'vars.fd'));
      firmware.push('-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${join(dir, 'vars.fd')}`);
    }
    const consoleLog = join(dir, 'console.log');
    const args = [
      'netns', 'exec', NETNS, 'timeout', String(timeoutS), findExecutable('qemu-system-x86_64')!,
      '-accel', 'tcg', '-machine', 'pc', '-m', '768', '-smp', '1', '-display', 'none', '-no-reboot',
      '-serial', `file:${consoleLog}`, '-monitor', 'none', ...firmware,
      '-kernel', join(be.dir, 'vmlinuz'), '-initrd', join(be.dir, 'initrd.img'),
      '-append', renderCmdline({ server: SERVER, node: vm.node, token: TOKEN, mac: vm.mac, job: 'install', console: ['ttyS0'] }),
      '-netdev', `tap,id=n0,ifname=${vm.tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${vm.mac}`,
      ...(disk ? ['-drive', `file=${disk},format=raw,if=virtio,cache=unsafe`] : []),
      '-name', `${vm.node},debug-threads=off`, '-pidfile', join(dir, 'qemu.pid'),
    ];
    const t0 = Date.now();
    const q = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    await appendFile(join(work, 'pids'), `${q.pid}\n`);
    let err = '';
    q.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => q.once('exit', (c) => r(c)));
    const consoleText = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '';
    if (code !== 0) console.warn(`qemu ${vm.node} exit ${code}: ${err}`);
    return { t0, code, console: consoleText };
  }

  const of = (vm: Vm, since: number) => reqs.filter((r) => r.t >= since && r.path.includes(`/${vm.node}/`));
  const tail = (s: string) => s.split('\n').slice(-40).join('\n');

  beforeAll(async () => {
    process.once('exit', emergency);
    work = await mkdtemp(join(tmpdir(), 'fleet-bootenv-test-'));
    reaper = startReaper({ pidFiles: [join(work, 'pids')], mark: work, netns: NETNS, maxSeconds: 900, ...(process.env.FLEET_LAB_KEEP ? {} : { removeDir: work }) });
    be = await buildBootenv({ dataDir: CACHE, log: (l) => console.log(`bootenv: ${l}`) });
    kver = be.manifest.kernelVersion;

    // A tiny "image": busybox, a kernel and an initrd under /boot, /etc/shadow.
    const root = join(work, 'rootfs');
    for (const d of ['bin', 'boot', 'etc', 'root', 'dev', 'proc', 'sys', 'tmp']) await mkdir(join(root, d), { recursive: true });
    await copyFile(findExecutable('busybox')!, join(root, 'bin', 'busybox'));
    await copyFile(`/boot/vmlinuz-${kver}`, join(root, 'boot', `vmlinuz-${kver}`));
    await writeFile(join(root, 'boot', `initrd.img-${kver}`), randomBytes(256 * 1024));
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await writeFile(join(root, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\n');
    await chmod(join(root, 'etc', 'shadow'), 0o640);
    await writeFile(join(root, 'etc', 'image-marker'), 'tiny image\n');
    const www = join(work, 'www');
    await mkdir(join(www, 'images'), { recursive: true });
    const tarZst = join(www, 'images', 'rootfs.tar.zst');
    await runOk('sh', ['-c', `tar -C "${root}" --numeric-owner -cf - . | zstd -q -3 -o "${tarZst}"`], { timeoutMs: 60_000 });
    const buf = readFileSync(tarZst);
    rootfsSha = createHash('sha256').update(buf).digest('hex');
    rootfsSize = buf.length;
    for (const vm of Object.values(VMS)) {
      await mkdir(join(www, 'bootenv', vm.node), { recursive: true });
      await writeFile(join(www, 'bootenv', vm.node, 'plan'), plan(vm, vm === VMS.c ? 'f'.repeat(64) : rootfsSha));
    }

    // The network: a bridge and one tap per VM in a fresh namespace.
    await runOk('ip', ['netns', 'add', NETNS], { timeoutMs: 10_000 });
    const ipn = (a: string[]) => runOk('ip', ['-n', NETNS, ...a], { timeoutMs: 10_000 });
    await ipn(['link', 'set', 'lo', 'up']);
    await ipn(['link', 'add', 'br0', 'type', 'bridge']);
    await ipn(['addr', 'add', '10.78.0.1/24', 'dev', 'br0']);
    await ipn(['link', 'set', 'br0', 'up']);
    for (const vm of Object.values(VMS)) {
      await ipn(['tuntap', 'add', vm.tap, 'mode', 'tap']);
      await ipn(['link', 'set', vm.tap, 'master', 'br0']);
      await ipn(['link', 'set', vm.tap, 'up']);
    }
    const conf = join(work, 'dnsmasq.conf');
    await writeFile(
      conf,
      ['port=0', 'interface=br0', 'bind-interfaces', 'dhcp-authoritative', 'dhcp-range=10.78.0.100,10.78.0.150,255.255.255.0,1h', ...Object.values(VMS).map((v) => `dhcp-host=${v.mac},${v.ip},${v.node}`), `dhcp-leasefile=${join(work, 'dnsmasq.leases')}`, ''].join('\n'),
    );
    const dlog = openSync(join(work, 'dnsmasq.log'), 'a');
    dnsmasq = spawn('ip', ['netns', 'exec', NETNS, findExecutable('dnsmasq')!, '--keep-in-foreground', '--log-facility=-', `--conf-file=${conf}`, '--user=root', '--group=root'], { stdio: ['ignore', dlog, dlog] });
    closeSync(dlog);
    await appendFile(join(work, 'pids'), `${dnsmasq.pid}\n`);
    httpd = spawn('ip', ['netns', 'exec', NETNS, process.execPath, assetPath('lab-httpd.mjs'), '--listen', '10.78.0.1:8080', '--root', www, '--break', `/images/rootfs.tar.zst=${BREAK_AT}`], { stdio: ['ignore', 'pipe', 'inherit'] });
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
  }, 600_000);

  afterAll(async () => {
    for (const c of [httpd, dnsmasq]) if (c?.pid) await killPid(c.pid, c === httpd ? 'lab-httpd' : 'dnsmasq');
    await run('ip', ['netns', 'del', NETNS], { timeoutMs: 10_000 });
    reaper?.stop();
    process.off('exit', emergency);
    if (!process.env.FLEET_LAB_KEEP && work) await rm(work, { recursive: true, force: true });
  });

  it('(a) BIOS, 1 GiB virtio disk: partitions, writes the image and its identity, installs GRUB, reports finished', async () => {
    const disk = join(work, 'a.raw');
    await runOk('truncate', ['-s', '1G', disk], { timeoutMs: 10_000 });
    const since = Date.now();
    const r = await boot(VMS.a, disk);
    const mine = of(VMS.a, since);
    const paths = mine.map((x) => `${x.method} ${x.path.replace(/^.*\//, '')} ${x.body ?? ''}`.slice(0, 200));
    const failed = mine.find((x) => x.path.endsWith('/install-failed'));
    expect(failed, `install-failed: ${failed?.body}\n${tail(r.console)}`).toBeUndefined();
    expect(mine[0]?.path, tail(r.console)).toBe(`/bootenv/${VMS.a.node}/plan`);
    expect(mine[0]?.query).toContain(`token=${TOKEN}`);
    const started = mine.find((x) => x.path.endsWith('/install-started'));
    const finished = mine.find((x) => x.path.endsWith('/install-finished'));
    expect(started, paths.join('\n')).toBeDefined();
    expect(finished, `${paths.join('\n')}\n${tail(r.console)}`).toBeDefined();
    expect(started!.query).toContain(`token=${TOKEN}`);
    const progress = mine.filter((x) => x.path.endsWith('/install-progress')).map((x) => JSON.parse(x.body ?? '{}') as { phase: string; percent: number });
    expect(progress.map((p) => p.phase)).toEqual(expect.arrayContaining(['partition', 'write', 'identity', 'agent', 'bootloader']));
    expect(progress.some((p) => p.phase === 'write' && p.percent === 100)).toBe(true);
    // The download was cut once (a server that died mid-transfer) and resumed where it broke.
    const gets = reqs.filter((x) => x.t >= since && x.method === 'GET' && x.path === '/images/rootfs.tar.zst');
    expect(rootfsSize).toBeGreaterThan(BREAK_AT);
    expect(gets.map((g) => [g.status, g.range, g.cut])).toEqual([
      [206, `0-${rootfsSize - 1}`, BREAK_AT],
      [206, `${BREAK_AT}-${rootfsSize - 1}`, undefined],
    ]);
    expect(r.console).toContain(`image download broke at ${BREAK_AT} of ${rootfsSize} bytes`);
    console.log(
      `bootenv timings (TCG): first request (plan) ${((mine[0]!.t - r.t0) / 1000).toFixed(1)} s, install-started ${((started!.t - r.t0) / 1000).toFixed(1)} s, install-finished ${((finished!.t - r.t0) / 1000).toFixed(1)} s after QEMU start; initrd.img ${(be.manifest.files['initrd.img'].size / 1048576).toFixed(1)} MiB`,
    );

    // The disk, from the host.
    const dump = await runOk('sfdisk', ['-J', disk], { timeoutMs: 10_000 });
    const pt = (JSON.parse(dump) as { partitiontable: { label: string; sectorsize?: number; partitions: { start: number; size: number; type: string; name?: string }[] } }).partitiontable;
    expect(pt.label).toBe('gpt');
    expect(pt.partitions.map((p) => p.type)).toEqual(['21686148-6449-6E6F-744E-656564454649', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);
    const mbr = readFileSync(disk).subarray(0, 512);
    expect(mbr.includes(Buffer.from('GRUB')), 'GRUB boot code in the MBR').toBe(true);
    const rootPart = pt.partitions[1]!;
    const rootImg = join(work, 'a-root.img');
    await runOk('dd', [`if=${disk}`, `of=${rootImg}`, 'bs=512', `skip=${rootPart.start}`, `count=${rootPart.size}`, 'conv=sparse', 'status=none'], { timeoutMs: 120_000 });
    const cat = async (p: string) => (await runOk('debugfs', ['-R', `cat ${p}`, rootImg], { timeoutMs: 30_000 })).toString();
    expect((await cat('/etc/hostname')).trim()).toBe(VMS.a.node);
    expect(await cat('/etc/image-marker')).toBe('tiny image\n');
    expect(await cat('/etc/hosts')).toContain(`${VMS.a.ip} ${VMS.a.node}.cluster.local ${VMS.a.node}`);
    expect(await cat('/etc/shadow')).toMatch(/^root:\$6\$salt\$hash:/);
    expect(await cat('/root/.ssh/authorized_keys')).toBe(`${SSH_KEY}\n`);
    // The tiny image has no /usr/local/bin/fleet-agent: the material is written, no enrolment runs,
    // and the one-time token is not left on the disk.
    expect(await cat('/etc/fleet/agent.env')).toBe(`FLEET_SERVER=10.78.0.1:9443\nFLEET_CA_FINGERPRINT=sha256:${'ab'.repeat(32)}\n`);
    const fleetDir = (await runOk('debugfs', ['-R', 'ls -l /etc/fleet', rootImg], { timeoutMs: 30_000 })).toString();
    expect(fleetDir).toContain('agent.env');
    expect(fleetDir).not.toContain('enroll-token');
    expect(JSON.parse(await cat('/etc/fleet/image.json'))).toEqual({ name: 'tiny', digest: `sha256:${rootfsSha}`, rootfsSha256: rootfsSha, node: VMS.a.node });
    expect(await runOk('debugfs', ['-R', 'stat /etc/fleet/agent.env', rootImg], { timeoutMs: 30_000 })).toMatch(/Mode:\s+0600/);
    expect((await cat('/etc/machine-id')).trim()).toMatch(/^[0-9a-f]{32}$/);
    const net = await cat('/etc/systemd/network/10-fleet-provisioning.network');
    expect(net).toContain(`MACAddress=${VMS.a.mac}`);
    expect(net).toContain(`Address=${VMS.a.ip}/24`);
    const fstab = await cat('/etc/fstab');
    const uuid = /^UUID=(\S+) \/ ext4/m.exec(fstab)?.[1];
    expect(uuid, fstab).toBeTruthy();
    const cfg = await cat('/boot/grub/grub.cfg');
    expect(cfg).toContain(`linux /boot/vmlinuz-${kver} root=UUID=${uuid}`);
    expect(cfg).toContain(`initrd /boot/initrd.img-${kver}`);
    const grubDir = await runOk('debugfs', ['-R', 'ls -l /boot/grub/i386-pc', rootImg], { timeoutMs: 30_000 });
    expect(grubDir).toContain('core.img');
    expect(grubDir).toContain('normal.mod');
  }, 400_000);

  it('(b) no disk: install-failed "no disk found", then halts; (c) wrong sha256: install-failed "image digest mismatch"', async () => {
    const disk = join(work, 'c.raw');
    await runOk('truncate', ['-s', '1G', disk], { timeoutMs: 10_000 });
    const since = Date.now();
    const [rb, rc] = await Promise.all([boot(VMS.b, null), boot(VMS.c, disk)]);
    const failB = of(VMS.b, since).filter((x) => x.path.endsWith('/install-failed'));
    expect(failB, tail(rb.console)).toHaveLength(1);
    const bodyB = JSON.parse(failB[0]!.body!) as { message: string; log: string };
    expect(bodyB.message).toBe('no disk found');
    expect(bodyB.log).toContain('FAILED: no disk found');
    expect(of(VMS.b, since).some((x) => x.path.endsWith('/install-finished'))).toBe(false);
    const failC = of(VMS.c, since).filter((x) => x.path.endsWith('/install-failed'));
    expect(failC, tail(rc.console)).toHaveLength(1);
    const bodyC = JSON.parse(failC[0]!.body!) as { message: string };
    expect(bodyC.message).toBe(`image digest mismatch (expected ${'f'.repeat(64)}, got ${rootfsSha})`);
    expect(of(VMS.c, since).some((x) => x.path.endsWith('/install-finished'))).toBe(false);
    // Both powered off by themselves (QEMU exited 0, not killed by the timeout).
    expect([rb.code, rc.code]).toEqual([0, 0]);
  }, 400_000);

  it('(d) UEFI (OVMF), 1 GiB virtio disk: an ESP with GRUB as the removable-media loader, then the root', async () => {
    const disk = join(work, 'd.raw');
    await runOk('truncate', ['-s', '1G', disk], { timeoutMs: 10_000 });
    const since = Date.now();
    const r = await boot(VMS.d, disk, 300, true);
    const mine = of(VMS.d, since);
    const failed = mine.find((x) => x.path.endsWith('/install-failed'));
    expect(failed, `install-failed: ${failed?.body}\n${tail(r.console)}`).toBeUndefined();
    const finished = mine.find((x) => x.path.endsWith('/install-finished'));
    expect(finished, tail(r.console)).toBeDefined();
    console.log(`bootenv timings (TCG, OVMF): first request ${((mine[0]!.t - r.t0) / 1000).toFixed(1)} s, install-finished ${((finished!.t - r.t0) / 1000).toFixed(1)} s after QEMU start`);
    const pt = (JSON.parse(await runOk('sfdisk', ['-J', disk], { timeoutMs: 10_000 })) as { partitiontable: { label: string; partitions: { start: number; size: number; type: string }[] } }).partitiontable;
    expect(pt.label).toBe('gpt');
    expect(pt.partitions.map((p) => p.type)).toEqual(['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);
    expect(pt.partitions[0]!.size * 512).toBe(256 * 1048576);
    // The ESP is FAT: its directory entries hold the 8.3 names EFI/BOOT/BOOTX64.EFI.
    const esp = join(work, 'd-esp.img');
    await runOk('dd', [`if=${disk}`, `of=${esp}`, 'bs=512', `skip=${pt.partitions[0]!.start}`, `count=${pt.partitions[0]!.size}`, 'conv=sparse', 'status=none'], { timeoutMs: 120_000 });
    const espBytes = readFileSync(esp);
    expect(espBytes.includes(Buffer.from('BOOTX64 EFI')), 'EFI/BOOT/BOOTX64.EFI on the ESP').toBe(true);
    const rootImg = join(work, 'd-root.img');
    await runOk('dd', [`if=${disk}`, `of=${rootImg}`, 'bs=512', `skip=${pt.partitions[1]!.start}`, `count=${pt.partitions[1]!.size}`, 'conv=sparse', 'status=none'], { timeoutMs: 120_000 });
    const fstab = await runOk('debugfs', ['-R', 'cat /etc/fstab', rootImg], { timeoutMs: 30_000 });
    expect(fstab).toMatch(/^UUID=\S+ \/boot\/efi vfat umask=0077 0 1$/m);
    expect(await runOk('debugfs', ['-R', 'ls -l /boot/grub/x86_64-efi', rootImg], { timeoutMs: 30_000 })).toContain('normal.mod');
    expect((await runOk('debugfs', ['-R', 'cat /etc/hostname', rootImg], { timeoutMs: 30_000 })).trim()).toBe(VMS.d.node);
  }, 400_000);
});

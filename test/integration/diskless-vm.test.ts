/**
 * A diskless boot of the real Debian image (issue 14 item 2, seed 004's NFS
 * root): QEMU boots the IMAGE's kernel with the fleet boot environment's
 * initrd plus the image's module layer (with the NFSv4 client) and
 * fleet.job=diskless, inside a network namespace this test makes (bridge,
 * tap, dnsmasq, the lab's HTTP server serving the plan), with fleet's NFS
 * server (server/diskless: the image tree unpacked once, the node's /var
 * made from the image's, nfs-ganesha exporting both to the node's address
 * alone) on the namespace's bridge. Stage 1 takes the node's address, mounts
 * the image's tree read-only under a RAM overlay, the node's /var read-write
 * and its blank scratch disk on /tmp (formatted: seed 004's "mount /dev/sda
 * /tmp, else mkfs") and switches to the image's systemd. From inside the VM:
 * / is an overlay over NFS and read-only beneath, /var is NFS, /tmp is the
 * scratch disk; a file written under /var is on the server's disk; the node
 * rides through a restart of the NFS server (hard mounts, state reclaimed,
 * numeric owners: no idmapper upcall to deadlock on the NFS root). A scratch
 * disk that holds a file system fleet did not make stops the boot in stage 1
 * and is left as it was. Reboots (/var kept, / fresh, the scratch disk not
 * formatted again) are proved through fleet server in the lab e2e (d).
 *
 * Needs what stateless-vm.test.ts needs and nfs-ganesha (nfs-ganesha,
 * nfs-ganesha-vfs); under CI=true a missing one fails the run.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { bootenvPrerequisites, buildBootenv, type BootenvBuild } from '../../server/bootenv/index.js';
import { renderCmdline } from '../../server/bootenv/spec.js';
import { GaneshaSupervisor, ganeshaMissing } from '../../server/diskless/ganesha.js';
import { disklessExports, imagePseudo, type NfsExport, nodeDir, nodeVarPseudo } from '../../server/diskless/spec.js';
import { ensureImageTree, ensureNodeVar } from '../../server/diskless/tree.js';
import { runOk, startReaper, type Reaper } from '../../server/lab/exec.js';
import { buildStatelessLayer, type StatelessLayerBuild } from '../../server/stateless/layer.js';
import { debianImage, type DebianImage, imageBuildMissing } from '../helpers/debian-image.js';
import { netrootQemu, type NetrootNet, type NetrootVm, type Req, startNetrootNet, stopNetrootQemu } from '../helpers/netroot-vm.js';

const missing = [...bootenvPrerequisites()];
for (const [n, p] of [['qemu-system-x86_64', 'qemu-system-x86'], ['dnsmasq', 'dnsmasq-base'], ['ip', 'iproute2'], ['openssl', 'openssl'], ['unsquashfs', 'squashfs-tools'], ['mkfs.ext4', 'e2fsprogs']] as const) {
  if (!findExecutable(n)) missing.push(`${n} (${p})`);
}
const ganeshaWhy = ganeshaMissing();
if (ganeshaWhy) missing.push(ganeshaWhy);
const imageWhy = imageBuildMissing();
if (imageWhy) missing.push(`the image build: ${imageWhy}`);
if (process.getuid?.() !== 0) missing.push('root (network namespaces)');
const SKIP = missing.length > 0 ? `needs ${missing.join(', ')}` : '';
if (SKIP && process.env.CI === 'true') throw new Error(`CI=true: diskless-vm.test.ts ${SKIP}`);
const suite = SKIP ? describe.skip : describe;
const title = SKIP ? `diskless: the image's root over NFS — SKIPPED: ${SKIP}` : "diskless: the image's root over NFS";
if (SKIP) console.warn(`diskless-vm.test.ts skipped: ${SKIP}`);

const NETNS = `fleet-diskless-${randomBytes(4).toString('hex')}`;
const HOST = '10.82.0.1';
const SERVER = `http://${HOST}:8080`;
const TOKEN = 'diskless-test-token-0123456789abcdef';
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const CACHE = resolve('.tmp', 'bootenv-data');
const LAYERS = resolve('.tmp', 'stateless-data');
const VM = { node: 'valkyrie06', mac: '52:54:00:82:00:06', ip: '10.82.0.16', tap: 'tap6' } as const;
/** A node whose scratch disk already holds a file system fleet did not make. */
const BUSY = { node: 'valkyrie07', mac: '52:54:00:82:00:07', ip: '10.82.0.17', tap: 'tap6' } as const;


suite(title, () => {
  let work = '';
  let data = '';
  let be: BootenvBuild;
  let img: DebianImage;
  let layer: StatelessLayerBuild;
  let stage1 = '';
  let net: NetrootNet | undefined;
  let nfs: GaneshaSupervisor | undefined;
  let reaper: Reaper | undefined;
  let unpackS = 0;
  let exports: NfsExport[] = [];
  let reqs: Req[] = [];
  const emergency = () => {
    net?.kill();
    if (nfs?.pid) process.kill(nfs.pid, 'SIGKILL');
  };

  /** QEMU in the namespace: the image's kernel, stage 1's initrds, 1 GiB, one scratch disk, one NIC on the bridge; no reboot. */
  const qemu = (vm: { node: string; mac: string }, disk: string, timeoutS: number, name: string): NetrootVm =>
    netrootQemu({
      work, netns: NETNS, tap: VM.tap, node: vm.node, mac: vm.mac, name, timeoutS, memMiB: 1024,
      kernel: join(img.dir, 'vmlinuz'), initrd: stage1,
      append: renderCmdline({ server: SERVER, node: vm.node, token: TOKEN, mac: vm.mac, job: 'diskless', console: ['ttyS0'] }),
      extra: ['-no-reboot', '-drive', `file=${disk},if=virtio,format=raw`],
    });

  beforeAll(async () => {
    process.once('exit', emergency);
    work = await mkdtemp(join(tmpdir(), 'fleet-diskless-test-'));
    data = join(work, 'data');
    reaper = startReaper({ pidFiles: [join(work, 'pids')], mark: work, netns: NETNS, maxSeconds: 1800, ...(process.env.FLEET_LAB_KEEP ? {} : { removeDir: work }) });
    img = await debianImage();
    be = await buildBootenv({ dataDir: CACHE, log: (l) => console.log(`bootenv: ${l}`) });
    layer = await buildStatelessLayer({ dataDir: LAYERS, imageDigest: img.image.digest, squashfs: join(img.dir, 'rootfs.squashfs'), kernelVersion: img.image.kernelVersion!, log: (l) => console.log(`layer: ${l}`) });
    expect(layer.layer.modules).toEqual(expect.arrayContaining(['kernel/fs/nfs/nfsv4.ko', 'kernel/fs/nfs/nfs.ko', 'kernel/net/sunrpc/sunrpc.ko']));
    stage1 = join(work, 'stage1.img');
    await writeFile(stage1, Buffer.concat([await readFile(join(be.dir, 'initrd.img')), await readFile(layer.path)]));

    // What fleet server does for a diskless profile (server/diskless/service.ts): the tree, the node's /var, the exports.
    const t0 = Date.now();
    const tree = await ensureImageTree({ dataDir: data, image: 'itest', digest: img.image.digest, squashfs: join(img.dir, 'rootfs.squashfs'), log: (l) => console.log(l) });
    unpackS = tree.seconds;
    for (const vm of [VM, BUSY]) expect((await ensureNodeVar({ dataDir: data, node: vm.node, digest: img.image.digest })).created).toBe(true);
    console.log(`diskless: image tree and two /var directories ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const hash = (await runOk('openssl', ['passwd', '-6', '-salt', randomBytes(6).toString('hex'), PASSWORD], { timeoutMs: 10_000 })).trim();
    const www = join(work, 'www');
    const plan = (vm: { node: string; mac: string; ip: string }) => ({
      node: vm.node,
      hostname: `${vm.node}.cluster.local`,
      image: { name: 'itest', digest: img.image.digest, squashfs: { url: `${SERVER}/unused`, sha256: img.image.artefacts.squashfs.sha256, size: img.image.artefacts.squashfs.size } },
      install: 'diskless',
      root: 'overlay',
      nfs: { server: HOST, vers: '4.1', root: imagePseudo(img.image.digest), var: nodeVarPseudo(vm.node) },
      scratch: '/dev/vda',
      network: { mac: vm.mac, ip: vm.ip, prefix: 24, gateway: HOST, dns: [HOST], domain: 'cluster.local' },
      rootPasswordHash: hash,
      sshKeys: [],
      agent: null,
    });
    for (const vm of [VM, BUSY]) {
      await mkdir(join(www, 'stateless', vm.node), { recursive: true });
      await writeFile(join(www, 'stateless', vm.node, 'plan'), JSON.stringify(plan(vm)));
    }

    net = await startNetrootNet({ work, netns: NETNS, host: HOST, tap: VM.tap, dhcpRange: ['10.82.0.100', '10.82.0.150'], www });
    reqs = net.reqs;
    // fleet's NFS server in the namespace (its binary run through `ip netns exec`, as the lab's fleet server runs inside it).
    const wrapper = join(work, 'ganesha-in-netns');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${NETNS} ${findExecutable('ganesha.nfsd')} "$@"\n`, { mode: 0o755 });
    nfs = new GaneshaSupervisor({ dataDir: data, bind: HOST, binary: wrapper, log: (l, m) => console.log(`${l}: ${m}`) });
    const ex = disklessExports(data, [VM, BUSY].map((v) => ({ name: v.node, ip: v.ip, digest: img.image.digest })));
    expect(ex.unserved).toEqual([]);
    exports = ex.exports;
    const t1 = Date.now();
    expect(await nfs.apply(ex.exports)).toEqual({ started: true, reloaded: false });
    console.log(`diskless: ganesha up in ${((Date.now() - t1) / 1000).toFixed(1)} s with ${ex.exports.length} exports`);
    await appendFile(join(work, 'pids'), `${nfs.pid}\n`);
  }, 45 * 60_000);

  afterAll(async () => {
    await nfs?.stop();
    await net?.stop();
    reaper?.stop();
    process.off('exit', emergency);
    if (!process.env.FLEET_LAB_KEEP && work) await rm(work, { recursive: true, force: true });
  });

  it('a scratch disk holding a file system fleet did not make stops the boot in stage 1, and is left as it was', async () => {
    const disk = join(work, 'busy.img');
    await runOk('truncate', ['-s', '64M', disk], { timeoutMs: 10_000 });
    await runOk(findExecutable('mkfs.ext4')!, ['-q', '-F', '-L', 'users-data', disk], { timeoutMs: 30_000 });
    const before = await runOk(findExecutable('blkid')!, ['-o', 'export', disk], { timeoutMs: 10_000 });
    const vm = qemu(BUSY, disk, 600, 'busy');
    try {
      const code = await vm.exited;
      const mine = reqs.filter((r) => r.t >= vm.t0 && r.path.includes(`/${BUSY.node}/`));
      const failed = mine.find((r) => r.path.endsWith('/install-failed'));
      expect(failed, `no install-failed (QEMU exit ${code})\n${mine.map((r) => `${r.method} ${r.path}`).join('\n')}\n${vm.con.tail()}`).toBeDefined();
      const body = JSON.parse(failed!.body!) as { message: string };
      expect(body.message).toMatch(/^scratch disk \/dev\/vda holds something fleet did not make \(.*LABEL=users-data.*\): not formatted/);
      expect(mine.find((r) => r.path.endsWith('/install-finished'))).toBeUndefined();
      expect(await runOk(findExecutable('blkid')!, ['-o', 'export', disk], { timeoutMs: 10_000 }), 'the disk as it was').toBe(before);
      console.log(`diskless: the busy scratch disk was refused in stage 1 ${((failed!.t - vm.t0) / 1000).toFixed(1)} s after QEMU started`);
    } finally {
      await stopNetrootQemu(vm, work);
    }
  }, 15 * 60_000);

  it('boots with / over NFS under a RAM overlay, its own /var over NFS and its blank scratch disk on /tmp; what it writes under /var is on the server; it rides through a restart of the NFS server', async () => {
    const disk = join(work, 'scratch.img');
    await runOk('truncate', ['-s', '64M', disk], { timeoutMs: 10_000 });
    const name = 'good';
    const vm = qemu(VM, disk, 1500, name);
    try {
      const login = async (what: string) => {
        const con = vm.con;
        const prompt = await con.expect(/(\S+) login: $/m, 600_000, `the login prompt on ttyS0 (${what})`);
        expect(prompt[1]).toBe(VM.node);
        con.send('root');
        await con.expect(/Password: ?$/m, 30_000, 'the password prompt');
        con.send(PASSWORD);
        await con.expect(/root@\S+:~# ?$/m, 60_000, 'the root shell prompt');
        con.send("stty -echo cols 250; export TERM=dumb PS1='# '; dmesg -n 1");
        await con.expect(/^# $/m, 30_000, 'the quiet prompt');
      };
      const sh = async (cmd: string, timeoutMs = 60_000) => {
        const r = await vm.con.run(cmd, timeoutMs);
        console.log(`diskless: # ${cmd} → ${r.code}\n${r.out}`);
        return r;
      };
      await login('first boot');
      const bootS = (Date.now() - vm.t0) / 1000;
      const mine = reqs.filter((r) => r.t >= vm.t0 && r.path.includes(`/${VM.node}/`));
      const planReq = mine.find((r) => r.path.endsWith('/plan'));
      const finished = mine.find((r) => r.path.endsWith('/install-finished'));
      expect(finished, mine.map((r) => `${r.method} ${r.path}`).join('\n')).toBeDefined();
      const running = await sh('timeout 240 systemctl is-system-running --wait', 300_000);
      if (running.out !== 'running') {
        await sh('systemctl --failed --no-legend --plain');
        await sh('journalctl -b -u systemd-networkd -u systemd-udevd --no-pager | tail -n 25');
      }
      // networkd configured the provisioning NIC (the root's link): wait-online returned (the image has no D-Bus for networkctl).
      expect((await sh('systemctl is-active systemd-networkd-wait-online.service')).out).toBe('active');
      expect(running.out, 'systemctl is-system-running').toMatch(/^(running|degraded)$/);
      expect((await sh('findmnt -n -o FSTYPE /')).out).toBe('overlay');
      expect((await sh('findmnt -n -o FSTYPE,SOURCE /run/fleet/ro')).out).toBe(`nfs4   ${HOST}:${imagePseudo(img.image.digest)}`);
      expect((await sh('findmnt -n -o FSTYPE,SOURCE /var')).out).toBe(`nfs4   ${HOST}:${nodeVarPseudo(VM.node)}`);
      expect((await sh('findmnt -n -o FSTYPE,SOURCE,LABEL /tmp')).out).toMatch(/^ext4\s+\/dev\/vda\s+fleet-scratch$/);
      expect((await sh('touch /run/fleet/ro/x 2>&1; echo $?')).out, 'the image tree is read-only').toMatch(/Read-only file system\n1$/);
      expect((await sh('hostname')).out).toBe(VM.node);
      expect((await sh('ip -4 -o addr show | grep -c "10\\.82\\.0\\.1[0-4][0-9]/" || true')).out, 'no stage-1 lease left').toBe('0');
      expect((await sh('ip -4 -o addr show')).out).toMatch(new RegExp(`inet ${VM.ip.replace(/\./g, '\\.')}/24 `));
      expect(JSON.parse((await sh('cat /etc/fleet/image.json')).out)).toMatchObject({ digest: img.image.digest, node: VM.node, install: 'diskless' });
      expect((await sh('systemctl is-active ssh.service systemd-networkd.service systemd-journald.service')).out).toBe('active\nactive\nactive');
      const word = randomBytes(6).toString('hex');
      expect((await sh(`echo var-${word} > /var/fleet-marker && echo tmp-${word} > /tmp/fleet-marker && echo root-${word} > /root/fleet-marker && sync`)).code).toBe(0);
      // From the server's side: the node's /var is a directory on fleet's disk.
      expect(await readFile(join(nodeDir(data, VM.node), 'var', 'fleet-marker'), 'utf8'), 'the file the node wrote under /var, read on the server').toBe(`var-${word}\n`);

      // fleet server restarts (an upgrade, a crash): its ganesha goes and comes back. The node, whose root is
      // on NFS, waits on its hard mounts and carries on; owners are numeric, so no idmapper upcall deadlocks.
      const t1 = Date.now();
      await nfs!.stop();
      expect(await nfs!.apply(exports)).toEqual({ started: true, reloaded: false });
      await appendFile(join(work, 'pids'), `${nfs!.pid}\n`);
      const through = await sh('ls /usr/share/doc | wc -l && echo after-restart > /var/fleet-after && cat /var/fleet-after && ls -ln /etc/shadow', 180_000);
      const stallS = (Date.now() - t1) / 1000;
      expect(through.out).toMatch(/^\d+\nafter-restart\n-rw-r----- 1 0 42 /);
      expect(await readFile(join(nodeDir(data, VM.node), 'var', 'fleet-after'), 'utf8')).toBe('after-restart\n');
      expect((await sh("dmesg | grep -c 'blocked for more than' || true")).out, 'no task hung on NFS').toBe('0');
      const stage1S = (finished!.t - planReq!.t) / 1000;
      console.log(
        `diskless timings (TCG, 1 vCPU, 1 GiB): image unpacked for NFS ${unpackS.toFixed(1)} s (once per image); stage 1 ${stage1S.toFixed(1)} s (plan fetch → install-finished: NFS root and /var mounted, scratch formatted, identity), ` +
          `first boot ${bootS.toFixed(1)} s (QEMU start → login prompt); NFS server restart with the node running: ${stallS.toFixed(1)} s until the node read its root and wrote its /var again`,
      );
      vm.con.send('poweroff');
      await Promise.race([vm.exited, new Promise((r) => setTimeout(r, 120_000))]);
    } finally {
      await stopNetrootQemu(vm, work);
    }
  }, 40 * 60_000);
});

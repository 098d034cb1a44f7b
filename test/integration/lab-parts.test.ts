/**
 * The lab's parts, each on its own (server/lab): the generated lab.yaml, the
 * qcow2 and cpio writers, the vm.env quoting (BIOS and UEFI), and an
 * ipmi_sim BMC driving its chassis hook with a stand-in QEMU, for a BIOS and
 * a UEFI VM (no VM: the real ones boot in test/e2e/reinstall.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { type ChildProcess, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../server/config/parse.js';
import { planDiscovery } from '../../server/discovery/plan.js';
import { labIpmitool, startBmc, stopBmc } from '../../server/lab/bmc.js';
import { CpioArchive } from '../../server/bootenv/cpio.js';
import { findExecutable } from '../../common/executable.js';
import { killPid, type Reaper, readPidFile, run, runOk, startReaper } from '../../server/lab/exec.js';
import { assetPath } from '../../server/lab/assets.js';
import { LAB_REPO_PACKAGES, LAB_REPO_SUITE, LAB_STORAGE_NODE, labNodeAddresses, type LabNode, rackedLabel, renderLabConfig } from '../../server/lab/lab.js';
import { emptyQcow2, qemuArgs, renderVmEnv, type VmSpec } from '../../server/lab/vm.js';

function labNodes(n: number, storage = true): LabNode[] {
  return Array.from({ length: storage ? n + 1 : n }, (_, k) => {
    const i = k + 1;
    const thor = i > n;
    const a = labNodeAddresses(i, thor ? LAB_STORAGE_NODE : undefined);
    return { ...a, index: i, role: thor ? 'storage' : 'compute', tap: `tap0${i}`, vmDir: `/x/${a.name}`, serial: 's', uuid: 'u', firmware: i % 2 ? 'bios' : 'uefi', bmc: { address: '127.0.0.1', port: 9000 + i, pid: 0 } };
  });
}

describe('lab.yaml', () => {
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFsYWJrZXlmb3J0ZXN0aW5nb25seTAwMDAwMDAwMDA fleet-lab';
  it.each([1, 2, 12])('is a valid fleet.yaml of seed 000 in small for %i compute node(s) and thor', (n) => {
    const text = renderLabConfig({ server: 'http://10.77.0.1:8080', imageName: 'lab', gateway: '10.77.0.1', nodes: labNodes(n) }, key);
    const spec = parseConfig(text, { source: 'lab.yaml' });
    expect(spec.nodes.map((x) => x.name).sort()).toEqual(labNodes(n).map((x) => x.name).sort());
    const last = spec.nodes.find((x) => x.name === `valkyrie${String(n).padStart(2, '0')}`);
    expect(last).toMatchObject({
      profile: 'compute',
      ip: `10.77.0.${10 + n}`,
      macs: [`52:54:00:77:00:${String(n).padStart(2, '0')}`],
      bmc: { address: '127.0.0.1', port: 9000 + n, protocol: 'ipmi', credentials: 'lab' },
    });
    expect(spec.nodes.find((x) => x.name === 'thor')).toMatchObject({
      profile: 'storage',
      ip: `10.77.0.${11 + n}`,
      macs: [`52:54:00:77:00:${String(n + 1).padStart(2, '0')}`],
      bmc: { address: '127.0.0.1', port: 9001 + n, protocol: 'ipmi', credentials: 'lab' },
    });
    const compute = spec.profiles.find((p) => p.name === 'compute')!;
    const storage = spec.profiles.find((p) => p.name === 'storage')!;
    expect(compute).toMatchObject({ os: { install: 'image', image: 'lab' }, kernelArgs: ['console=ttyS0'], sshKeys: [key] });
    // The seed's roles: fleet's repository only (signed), hosts, chrony to the management node, myuser 2001.
    for (const p of [compute, storage]) {
      expect(p.roles.repos).toMatchObject({ remove: ['*.list', '*.sources'], repos: [{ name: 'fleet', baseurl: 'http://10.77.0.1:8080/repo/debian', suite: LAB_REPO_SUITE, key: 'fleet' }] });
      expect(p.roles.chrony?.servers).toEqual(['10.77.0.1']);
      expect(p.roles.hosts).toEqual({ enabled: true });
      expect(p.roles.users?.users).toMatchObject([{ name: 'myuser', uid: 2001, gid: 2001 }]);
    }
    expect(compute.roles.nfs?.mounts).toMatchObject([
      { source: 'thor:/home', target: '/home' },
      { source: 'thor:/software', target: '/software' },
    ]);
    expect(compute.roles.nfs?.mounts[1]!.options).toMatch(/^ro,/);
    expect(compute.roles.slurm).toMatchObject({ role: 'compute' });
    expect(storage.roles.nfsServer?.exports).toMatchObject([
      { path: '/home', clients: '10.77.0.0/24', options: 'rw,sync,no_root_squash' },
      { path: '/software', clients: '10.77.0.0/24', options: 'ro,sync' },
    ]);
    expect(storage.roles.slurm).toMatchObject({ role: 'controller' });
    expect(spec.netboot?.dhcp).toMatchObject({ enabled: true, mode: 'authoritative', interface: 'br0' });
    expect(spec.credentials[0]).toMatchObject({ name: 'lab', username: 'admin' });
  });

  it('without the storage node: compute nodes without NFS and Slurm (no controller to talk to)', () => {
    const spec = parseConfig(renderLabConfig({ server: 'http://10.77.0.1:8080', imageName: 'lab', gateway: '10.77.0.1', nodes: labNodes(2, false) }, key), { source: 'lab.yaml' });
    expect(spec.nodes.map((x) => x.name)).toEqual(['valkyrie01', 'valkyrie02']);
    expect(spec.profiles.map((p) => p.name)).toEqual(['compute']);
    expect(spec.profiles[0]!.roles.nfs).toBeUndefined();
    expect(spec.profiles[0]!.roles.slurm).toBeUndefined();
    expect(spec.profiles[0]!.roles.repos?.repos[0]?.key).toBe('fleet');
  });

  it('with racked machines: policy auto, one rule naming the planned ones by serial (BMC set up on accept, install); the unplanned one matches no rule', () => {
    const racked = (k: number, planned?: string): LabNode => ({
      name: `rack0${k}`,
      index: 3 + k,
      role: 'racked',
      ...(planned ? { planned } : {}),
      mac: `52:54:00:77:01:0${k}`,
      ip: planned ? `10.77.0.${13 + k}` : '',
      tap: `tap0${3 + k}`,
      vmDir: `/x/rack0${k}`,
      serial: `LAB-RACK-0${k}`,
      uuid: 'u',
      firmware: 'bios',
      bmc: { address: `127.0.1.${k}`, port: 623, pid: 0 },
      factory: { username: 'admin', passwordFile: '/x/secrets/factory.password' },
    });
    // The plan of a racked VM's identity: its NIC and its BMC share the last octet.
    expect(rackedLabel(3)).toEqual({ label: 'rack03', serial: 'LAB-RACK-03', mac: '52:54:00:77:01:03', bmcMac: '52:54:00:77:bb:03' });
    const nodes = [...labNodes(2), racked(1, 'valkyrie03'), racked(2)];
    const spec = parseConfig(renderLabConfig({ server: 'http://10.77.0.1:8080', imageName: 'lab', gateway: '10.77.0.1', nodes }, key), { source: 'lab.yaml' });
    // The racked machines are no nodes: fleet learns them by discovery.
    expect(spec.nodes.map((x) => x.name).sort()).toEqual(['thor', 'valkyrie01', 'valkyrie02']);
    expect(spec.credentials.map((c) => c.name)).toEqual(['lab', 'factory']);
    expect(spec.discovery?.policy).toBe('auto');
    expect(spec.discovery?.rules).toMatchObject([
      { name: 'rack', names: ['valkyrie03'], profile: 'compute', ips: ['10.77.0.14'], bmc: { addresses: ['127.0.1.1'], port: 623, credentials: 'factory', setup: { passwordLength: 16 } }, onAccept: 'install' },
    ]);
    // The plan the server makes once both have reported: rack01 is valkyrie03, rack02 matches no rule.
    const facts = (k: number) => ({ facts: { mac: `52:54:00:77:01:0${k}`, inspectedAt: '2026-12-07T10:00:00Z', serial: `LAB-RACK-0${k}`, bmc: { ip: '0.0.0.0' } }, firstSeen: `2026-12-07T10:00:0${k}Z` });
    const taken = { names: new Set(spec.nodes.map((x) => x.name)), ips: new Map(spec.nodes.map((x) => [x.ip!, `node ${x.name}`])), bmcs: new Map(spec.nodes.map((x) => [`${x.bmc!.address}:${x.bmc!.port}`, `node ${x.name}`])) };
    const plan = planDiscovery(spec.discovery!.rules, [facts(1), facts(2)], taken);
    expect(plan.planned.map((x) => [x.mac, x.name, x.ip, x.bmc?.address])).toEqual([['52:54:00:77:01:01', 'valkyrie03', '10.77.0.14', '127.0.1.1']]);
    expect(plan.unplanned).toMatchObject([{ mac: '52:54:00:77:01:02', reason: expect.stringMatching(/no rule matches/) }]);
  });

  it('fleet repo fetch gets what the roles install and a package for the e2e', () => {
    expect([...LAB_REPO_PACKAGES].sort()).toEqual(['chrony', 'hello', 'munge', 'nfs-common', 'nfs-kernel-server', 'slurm-client', 'slurmctld', 'slurmd']);
  });
});

describe('disk and initramfs writers', () => {
  it('writes an empty qcow2 v2 image with consistent tables', () => {
    const b = emptyQcow2(256 * 1024 * 1024);
    expect(b.length).toBe(4 * 65536);
    expect(b.subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
    expect(b.readUInt32BE(4)).toBe(2);
    expect(b.readUInt32BE(20)).toBe(16);
    expect(b.readBigUInt64BE(24)).toBe(256n * 1024n * 1024n);
    expect(b.readUInt32BE(36)).toBe(1); // one L1 entry maps 512 MiB
    expect(b.readBigUInt64BE(40)).toBe(3n * 65536n);
    expect(b.readBigUInt64BE(48)).toBe(65536n);
    expect(b.readBigUInt64BE(65536)).toBe(2n * 65536n);
    expect([0, 1, 2, 3, 4].map((c) => b.readUInt16BE(2 * 65536 + 2 * c))).toEqual([1, 1, 1, 1, 0]);
    expect(() => emptyQcow2(1000)).toThrow();
  });

  it.skipIf(!findExecutable('cpio'))('builds a newc archive that cpio reads back (dirs first, modes, links, devices)', async () => {
    const a = new CpioArchive();
    a.charDevice('dev/console', 5, 1);
    a.file('usr/bin/tool', '#!/bin/sh\necho hi\n', 0o755);
    a.symlink('bin/sh', 'busybox');
    a.dir('tmp', 0o1777);
    a.file('etc/odd', Buffer.from([0, 1, 2]));
    const dir = await mkdtemp(join(tmpdir(), 'fleet-lab-cpio-'));
    try {
      writeFileSync(join(dir, 'a.cpio'), a.toBuffer());
      const r = await runOk('cpio', ['-itv', '-F', join(dir, 'a.cpio')]);
      const lines = r.trim().split('\n');
      const names = lines.map((l) => l.replace(/^.* 1970 /, ''));
      expect(names).toEqual(['dev', 'dev/console', 'usr', 'usr/bin', 'usr/bin/tool', 'bin', 'bin/sh -> busybox', 'tmp', 'etc', 'etc/odd']);
      expect(lines[1]).toMatch(/^crw-------/);
      expect(lines[4]).toMatch(/^-rwxr-xr-x/);
      expect(lines[7]).toMatch(/^drwxrwxrwt/);
      expect(() => a.file('../x', '')).toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('quotes QEMU arguments so that bash gets them back verbatim', async () => {
    const vm: VmSpec = {
      name: 'valkyrie01',
      dir: "/tmp/it's/valkyrie01",
      mac: '52:54:00:77:00:01',
      tap: 'tap01',
      serial: 'LAB-VALKYRIE01',
      uuid: '00000000-0000-4000-8000-000000000001',
      firmware: 'uefi',
      qemu: "/usr/bin/qemu $HOME",
    };
    const dir = await mkdtemp(join(tmpdir(), 'fleet-lab-env-'));
    try {
      writeFileSync(join(dir, 'vm.env'), renderVmEnv(vm));
      const out = await runOk('bash', ['-c', 'set -u; . "$1"; printf "%s\\n" "$FIRMWARE" "$NIC_DEVICE" "$DISK_DEVICE" "$QEMU" "${QEMU_ARGS[@]}"', 'x', join(dir, 'vm.env')]);
      expect(out.trimEnd().split('\n')).toEqual(['uefi', 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01', 'virtio-blk-pci,drive=d0', vm.qemu, ...qemuArgs(vm)]);
      expect(qemuArgs(vm)).toEqual(expect.arrayContaining(['-accel', 'tcg,tb-size=64', '-machine', 'pc', '-m', '1024']));
      expect(qemuArgs(vm)).toEqual(expect.arrayContaining(['-drive', 'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd', '-drive', `if=pflash,format=raw,file=${vm.dir}/OVMF_VARS.fd`]));
      expect(qemuArgs({ ...vm, firmware: 'bios' }).join(' ')).not.toMatch(/pflash/);
      // The boot device is the hook's to add: no -boot, no bootindex here.
      expect(qemuArgs(vm).join(' ')).not.toMatch(/-boot|bootindex/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- BMC + chassis hook, stand-in QEMU
const IPMI_SIM = findExecutable('ipmi_sim');
const IPMITOOL = findExecutable('ipmitool');
const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const BMC_READY = IPMI_SIM !== null && IPMITOOL !== null && ROOT && findExecutable('ip') !== null;

/** Does what the hook needs from QEMU -daemonize: a long-lived process naming VMDIR, its PID in -pidfile. */
const FAKE_QEMU = `#!/bin/bash
pf="" boot=""
while [ $# -gt 0 ]; do
  case "$1" in
    -pidfile) pf="$2"; shift ;;
    -boot) boot="$2"; shift ;;
    -device) case "$2" in *bootindex=*) boot="\${boot:+$boot }\${2%%,*}:\${2##*bootindex=}" ;; esac; shift ;;
  esac
  shift
done
d="$(dirname "$pf")"
echo "$boot" >> "$d/boots"
( exec -a "fake-qemu $d/" sleep 120 ) < /dev/null > /dev/null 2>&1 &
echo $! > "$pf"
`;

describe.skipIf(!BMC_READY)(`lab BMC: ipmi_sim + chassis hook (stand-in QEMU, in a namespace)${BMC_READY ? '' : ' — SKIPPED: needs root, ip, ipmi_sim and ipmitool'}`, () => {
  const netns = `fleet-test-${randomBytes(4).toString('hex')}`;
  let dir = '';
  let vmDir = '';
  let reaper: Reaper | undefined;
  const machine = { uuid: '6f2b1c3a-9d4e-4f50-8a61-0b7c2d3e4f51', serial: 'LAB-VALKYRIE01', manufacturer: 'fleet-lab', product: 'lab-vm' };
  const b = { name: 'valkyrie01', address: '127.0.0.1', port: 9001, username: 'admin', password: 'lab-Test-Pw1', hook: '', vmDir: '', machine };
  const ipmi = (args: string[]) => labIpmitool(netns, IPMITOOL!, b, args);
  const boots = () => (existsSync(join(vmDir, 'boots')) ? readFileSync(join(vmDir, 'boots'), 'utf8').trim().split('\n') : []);
  const fakePid = () => readPidFile(join(vmDir, 'qemu.pid'));
  const vmEnv = (firmware: string) =>
    `FIRMWARE=${firmware}\nNIC_DEVICE='virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01'\nDISK_DEVICE='virtio-blk-pci,drive=d0'\nQEMU='${join(dir, 'fake-qemu')}'\nQEMU_ARGS=(-name x)\n`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-lab-bmc-'));
    vmDir = join(dir, 'vms', 'valkyrie01');
    await mkdir(vmDir, { recursive: true });
    reaper = startReaper({ pidFiles: [join(vmDir, 'ipmi_sim.pid'), join(vmDir, 'qemu.pid')], mark: dir, netns, maxSeconds: 300, removeDir: dir });
    const fake = join(dir, 'fake-qemu');
    writeFileSync(fake, FAKE_QEMU);
    chmodSync(fake, 0o755);
    writeFileSync(join(vmDir, 'vm.env'), vmEnv('bios'));
    writeFileSync(join(vmDir, 'chassis.state'), 'default\n');
    Object.assign(b, { hook: assetPath('chassis-control.sh'), vmDir });
    await runOk('ip', ['netns', 'add', netns]);
    await runOk('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await startBmc(netns, IPMI_SIM!, b, IPMITOOL);
  });
  afterAll(async () => {
    if (vmDir) {
      await stopBmc(vmDir);
      await killPid(fakePid(), `${vmDir}/`);
    }
    await run('ip', ['netns', 'del', netns]);
    reaper?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers with the VM's identity: the system GUID is its SMBIOS UUID, FRU 0 its serial (fleet inventory reconcile matches)", async () => {
    const g = await ipmi(['mc', 'guid', 'smbios']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout.toLowerCase()).toContain(machine.uuid);
    const f = await ipmi(['fru', 'print', '0']);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toMatch(/Product Serial\s*:\s*LAB-VALKYRIE01/);
    expect(f.stdout).toMatch(/Product Manufacturer\s*:\s*fleet-lab/);
  });

  // The hook answers quickly (~0.1 s here when idle); the bound only catches a hang: a timed test
  // failed under load at 1.5 s. How fast BMC calls go is the bmc benchmark's business.
  it('maps power and boot device onto the VM process, each call answered (no hang)', async () => {
    const timed = async (args: string[]) => {
      const t = Date.now();
      const r = await ipmi(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(Date.now() - t).toBeLessThan(10_000);
      return r.stdout;
    };
    expect(await timed(['chassis', 'power', 'status'])).toMatch(/is off/);
    await timed(['chassis', 'bootdev', 'pxe']);
    expect(await timed(['chassis', 'bootparam', 'get', '5'])).toMatch(/Force PXE/);
    await timed(['chassis', 'power', 'on']);
    expect(await timed(['chassis', 'power', 'status'])).toMatch(/is on/);
    expect(boots()).toEqual(['once=n,order=c']);
    // One-time: consumed by the power on.
    expect(readFileSync(join(vmDir, 'chassis.state'), 'utf8').trim()).toBe('none');
    const first = fakePid();

    await timed(['chassis', 'power', 'off']);
    expect(await timed(['chassis', 'power', 'status'])).toMatch(/is off/);
    expect(first !== undefined && existsSync(`/proc/${first}`) && readFileSync(`/proc/${first}/cmdline`, 'utf8').includes(vmDir)).toBe(false);

    await timed(['chassis', 'power', 'on']);
    expect(boots()).toEqual(['once=n,order=c', 'order=c']);
    const second = fakePid();
    await timed(['chassis', 'power', 'reset']);
    expect(await timed(['chassis', 'power', 'status'])).toMatch(/is on/);
    expect(fakePid()).not.toBe(second);
    await timed(['chassis', 'bootdev', 'pxe']);
    // ipmi_sim turns a cycle into 'set power 0' now and 'set power 1' about a second later.
    await timed(['chassis', 'power', 'cycle']);
    let status = '';
    for (let i = 0; i < 30 && !/is on/.test(status); i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = await timed(['chassis', 'power', 'status']);
    }
    expect(status).toMatch(/is on/);
    expect(boots().at(-1)).toBe('once=n,order=c');
    await timed(['chassis', 'power', 'soft']);
    expect(await timed(['chassis', 'power', 'status'])).toMatch(/is off/);

    // ipmitool never had to resend (a resend would show as a duplicated hook call).
    const sets = readFileSync(join(vmDir, 'chassis.log'), 'utf8').split('\n').filter((l) => / set /.test(l)).map((l) => l.replace(/^\S+ /, ''));
    expect(sets).toEqual(['set boot pxe', 'set power 1', 'set power 0', 'set power 1', 'set reset 1', 'set boot pxe', 'set power 0', 'set power 1', 'set shutdown 1']);
  }, 60_000);

  it('on a UEFI VM, puts the NIC or the disk first by bootindex (OVMF ignores -boot)', async () => {
    writeFileSync(join(vmDir, 'vm.env'), vmEnv('uefi'));
    const n = boots().length;
    expect((await ipmi(['chassis', 'bootdev', 'pxe'])).code).toBe(0);
    expect((await ipmi(['chassis', 'power', 'on'])).code).toBe(0);
    expect(readFileSync(join(vmDir, 'chassis.state'), 'utf8').trim()).toBe('none');
    expect((await ipmi(['chassis', 'power', 'off'])).code).toBe(0);
    expect((await ipmi(['chassis', 'bootdev', 'disk'])).code).toBe(0);
    expect((await ipmi(['chassis', 'power', 'on'])).code).toBe(0);
    expect(boots().slice(n)).toEqual(['virtio-net-pci:1 virtio-blk-pci:2', 'virtio-net-pci:2 virtio-blk-pci:1']);
    expect((await ipmi(['chassis', 'power', 'off'])).code).toBe(0);
  }, 60_000);
});

/**
 * One lab VM: a QEMU process (TCG, `-machine pc`, 256 MiB, virtio NIC on a tap
 * of the lab bridge, virtio disk, SMBIOS identity, two read-only 9p shares),
 * described by VMDIR/vm.env. The VM is never started from here directly: its
 * BMC's chassis_control hook (assets/chassis-control.sh) starts and stops it,
 * and vmPower() calls that same hook, so there is one implementation of
 * "power on with this boot device". Recipe and flags: shared/LAB-NOTES.md.
 *
 *   VMDIR/disk.qcow2      256 MiB, empty (written here: no qemu-img needed)
 *   VMDIR/vm.env          QEMU=… and QEMU_ARGS=(…) for the hook (bash)
 *   VMDIR/chassis.state   next-boot device (none|pxe|default|…)
 *   VMDIR/qemu.pid        while powered on
 *   VMDIR/console.log     the serial console (appended across power cycles)
 *   VMDIR/qemu.log        QEMU's own messages; chassis.log: every hook call
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { pidMatches, readPidFile, run } from './exec.js';
import { RUNTIME_TAG, SOURCE_TAG } from './images.js';

export interface VmSpec {
  /** Node name, e.g. valkyrie01. */
  name: string;
  /** Its directory (absolute, no blanks). */
  dir: string;
  mac: string;
  /** Tap device on the lab bridge (inside the lab namespace). */
  tap: string;
  /** SMBIOS type 1 serial and UUID. */
  serial: string;
  uuid: string;
  memoryMiB?: number;
  diskMiB?: number;
  /** 9p share `fleetrt`: node + libraries (LabImages.runtime). */
  runtimeDir?: string;
  /** 9p share `fleetsrc`: the fleet source tree (repo root with bin/fleet-agent.js and dist/). */
  sourceDir?: string;
  qemu: string;
}

export type VmPower = 'on' | 'off';

/** A stable UUID for a name (so a VM keeps its identity across `lab up`s). */
export function uuidFor(name: string, salt = 'fleet-lab'): string {
  const h = createHash('sha256').update(`${salt}:${name}`).digest('hex');
  // RFC 4122 version 4 layout (variant bits set), from the hash.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** QEMU arguments without -boot (the hook adds it from the next-boot device). */
export function qemuArgs(vm: VmSpec): string[] {
  const args = [
    '-name', `${vm.name},process=qemu-${vm.name}`,
    '-nodefaults',
    '-no-user-config',
    '-accel', 'tcg,tb-size=64',
    '-machine', 'pc',
    '-m', String(vm.memoryMiB ?? 256),
    '-smp', '1',
    '-rtc', 'base=utc',
    '-display', 'none',
    '-vga', 'none',
    '-monitor', 'none',
    '-chardev', `file,id=con0,path=${join(vm.dir, 'console.log')},append=on`,
    '-serial', 'chardev:con0',
    '-netdev', `tap,id=n0,ifname=${vm.tap},script=no,downscript=no`,
    // The NIC ROM stays QEMU's default (efi-virtio.rom, which is iPXE): LAB-NOTES.
    '-device', `virtio-net-pci,netdev=n0,mac=${vm.mac}`,
    '-drive', `file=${join(vm.dir, 'disk.qcow2')},format=qcow2,if=virtio,cache=unsafe`,
    '-smbios', `type=1,manufacturer=fleet-lab,product=lab-vm,serial=${vm.serial},uuid=${vm.uuid}`,
  ];
  if (vm.runtimeDir) {
    args.push('-virtfs', `local,path=${vm.runtimeDir},mount_tag=${RUNTIME_TAG},security_model=none,readonly=on,multidevs=remap`);
  }
  if (vm.sourceDir) {
    args.push('-virtfs', `local,path=${vm.sourceDir},mount_tag=${SOURCE_TAG},security_model=none,readonly=on,multidevs=remap`);
  }
  return args;
}

/** Single-quotes a word for bash. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The VMDIR/vm.env the chassis hook sources. */
export function renderVmEnv(vm: VmSpec): string {
  return [
    `# fleet lab VM ${vm.name}: sourced by chassis-control.sh (server/lab/vm.ts writes it)`,
    `NAME=${shQuote(vm.name)}`,
    `QEMU=${shQuote(vm.qemu)}`,
    `QEMU_ARGS=(`,
    ...qemuArgs(vm).map((a) => `  ${shQuote(a)}`),
    ')',
    '',
  ].join('\n');
}

/**
 * An empty qcow2 (version 2, 64 KiB clusters): header, one refcount table
 * cluster, one refcount block, one L1 table; every other cluster is allocated
 * on write. Same result as `qemu-img create -f qcow2`, which is not in the
 * lab's package list (qemu-utils).
 */
export function emptyQcow2(sizeBytes: number): Buffer {
  const CLUSTER = 65536;
  if (!Number.isInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) throw new Error('qcow2: size must be a positive multiple of 512');
  const l2Span = (CLUSTER / 8) * CLUSTER; // bytes one L2 table maps
  const l1Size = Math.ceil(sizeBytes / l2Span);
  if (l1Size * 8 > CLUSTER) throw new Error('qcow2: image too large for one L1 cluster');
  const buf = Buffer.alloc(4 * CLUSTER);
  buf.write('QFI\xfb', 0, 'latin1');
  buf.writeUInt32BE(2, 4); // version
  buf.writeBigUInt64BE(0n, 8); // backing file offset
  buf.writeUInt32BE(0, 16); // backing file size
  buf.writeUInt32BE(16, 20); // cluster bits
  buf.writeBigUInt64BE(BigInt(sizeBytes), 24);
  buf.writeUInt32BE(0, 32); // no encryption
  buf.writeUInt32BE(l1Size, 36);
  buf.writeBigUInt64BE(BigInt(3 * CLUSTER), 40); // L1 table
  buf.writeBigUInt64BE(BigInt(CLUSTER), 48); // refcount table
  buf.writeUInt32BE(1, 56); // refcount table clusters
  buf.writeUInt32BE(0, 60); // snapshots
  buf.writeBigUInt64BE(0n, 64);
  buf.writeBigUInt64BE(BigInt(2 * CLUSTER), CLUSTER); // refcount table[0] -> refcount block
  for (let c = 0; c < 4; c++) buf.writeUInt16BE(1, 2 * CLUSTER + 2 * c); // clusters 0-3 in use
  return buf;
}

/** Writes VMDIR/disk.qcow2 (replacing it) and VMDIR/vm.env. */
export async function prepareVm(vm: VmSpec, o: { keepDisk?: boolean } = {}): Promise<void> {
  if (/\s/.test(vm.dir)) throw new FleetError('usage.invalid', `lab VM directory ${vm.dir} contains blanks (ipmi_sim splits its hook's command line on them)`);
  const disk = join(vm.dir, 'disk.qcow2');
  if (!(o.keepDisk && existsSync(disk))) {
    const fh = await open(disk, 'w');
    try {
      await fh.write(emptyQcow2((vm.diskMiB ?? 256) * 1024 * 1024));
    } finally {
      await fh.close();
    }
  }
  await writeFile(join(vm.dir, 'vm.env'), renderVmEnv(vm));
  if (!existsSync(join(vm.dir, 'chassis.state'))) await writeFile(join(vm.dir, 'chassis.state'), 'default\n');
}

/** PID of the VM's QEMU when it runs. */
export function vmPid(vmDir: string): number | undefined {
  const pid = readPidFile(join(vmDir, 'qemu.pid'));
  return pid !== undefined && pidMatches(pid, `${vmDir}/`) ? pid : undefined;
}

export function vmPowerState(vmDir: string): VmPower {
  return vmPid(vmDir) !== undefined ? 'on' : 'off';
}

/** The next-boot device as the BMC holds it. */
export function vmNextBoot(vmDir: string): string {
  try {
    return readFileSync(join(vmDir, 'chassis.state'), 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

/**
 * Runs the VM's chassis hook directly (inside the lab namespace), as ipmi_sim
 * would: e.g. ['set', 'boot', 'pxe'] or ['set', 'power', '1'].
 */
export async function vmHook(hook: string, netns: string, vmDir: string, args: string[]): Promise<string> {
  const r = await run('ip', ['netns', 'exec', netns, '/bin/bash', hook, vmDir, ...args], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new FleetError('internal', `chassis hook ${args.join(' ')} for ${vmDir} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

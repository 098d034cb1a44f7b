/**
 * One lab VM: a QEMU process (TCG, `-machine pc`, 1 GiB, virtio NIC on a tap
 * of the lab bridge, a 4 GiB virtio disk, SMBIOS identity, legacy BIOS or
 * UEFI firmware), described by VMDIR/vm.env. The VM is never started from
 * here directly: its BMC's chassis_control hook (assets/chassis-control.sh)
 * starts and stops it, and vmHook() calls that same hook, so there is one
 * implementation of "power on with this boot device". Recipe and flags:
 * shared/LAB-NOTES.md.
 *
 *   VMDIR/disk.qcow2      empty at first (written here: no qemu-img needed)
 *   VMDIR/OVMF_VARS.fd    the UEFI variable store of a UEFI VM (a copy of OVMF's template)
 *   VMDIR/vm.env          FIRMWARE, QEMU, QEMU_ARGS=(…), NIC_DEVICE, DISK_DEVICE for the hook (bash)
 *   VMDIR/chassis.state   next-boot device (none|pxe|default|…)
 *   VMDIR/qemu.pid        while powered on
 *   VMDIR/console.log     the serial console (appended across power cycles)
 *   VMDIR/qemu.log        QEMU's own messages; chassis.log: every hook call
 *
 * The boot device: on BIOS the hook passes `-boot once=n,order=c` (SeaBIOS
 * boots the network once, then the disk, as IPMI's one-time PXE does); OVMF
 * ignores -boot and follows the devices' bootindex, so on UEFI the hook puts
 * the NIC or the disk first for the life of that QEMU process: a UEFI VM
 * told to PXE boots the network first at every warm reboot until its BMC
 * power-cycles it with the disk first, the "network first" boot order many
 * sites keep (fleet answers such a boot with localboot).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { pidMatches, readPidFile, run } from './exec.js';

export type Firmware = 'bios' | 'uefi';

/** OVMF as Debian's `ovmf` package installs it (4 MiB flash layout). */
export const OVMF = { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' } as const;

export const DEFAULT_VM_MEMORY_MIB = 1024;
export const DEFAULT_VM_DISK_MIB = 4096;

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
  firmware: Firmware;
  memoryMiB?: number;
  /** Disk size (default DEFAULT_VM_DISK_MIB); 0: no disk at all (a machine whose install must fail "no disk found"). */
  diskMiB?: number;
  qemu: string;
  /**
   * TCP port on 127.0.0.1 (in the lab namespace) where QEMU serves the serial
   * line, for the BMC's SOL to connect to (`fleet console`); console.log is
   * still written (the chardev's logfile). Absent: the serial line goes to console.log only.
   */
  serialPort?: number;
  /**
   * TCP port on 127.0.0.1 of its BMC's system interface (ipmi_sim `serial 15 … codec VM`): the VM
   * gets a KCS interface wired to it (QEMU ipmi-bmc-extern), so software inside the VM reaches its
   * own BMC in band, as on a real server. Absent: no in-band BMC.
   */
  inBandBmcPort?: number;
}

export type VmPower = 'on' | 'off';

/** A stable UUID for a name (so a VM keeps its identity across `lab up`s). */
/** SMBIOS type 1 of every lab VM (and FRU 0 of its BMC): what the agent and the BMC report. */
export const LAB_MANUFACTURER = 'fleet-lab';
export const LAB_PRODUCT = 'lab-vm';

export function uuidFor(name: string, salt = 'fleet-lab'): string {
  const h = createHash('sha256').update(`${salt}:${name}`).digest('hex');
  // RFC 4122 version 4 layout (variant bits set), from the hash.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The NIC and the disk as -device values, without bootindex (the hook adds it on UEFI); disk '' when the VM has none. */
export function vmDevices(vm: VmSpec): { nic: string; disk: string } {
  // The NIC ROM stays QEMU's default (efi-virtio.rom, which is iPXE for BIOS and UEFI): LAB-NOTES.
  return { nic: `virtio-net-pci,netdev=n0,mac=${vm.mac}`, disk: vm.diskMiB === 0 ? '' : 'virtio-blk-pci,drive=d0' };
}

/**
 * The serial line: a file, or (serialPort) a TCP server the VM's ipmi_sim SOL connects to, logged
 * to the same file. server=on,wait=off: QEMU starts without waiting for the BMC; output while no
 * BMC is connected still reaches console.log.
 */
export function serialChardev(vm: Pick<VmSpec, 'dir' | 'serialPort'>): string {
  const log = join(vm.dir, 'console.log');
  if (vm.serialPort === undefined) return `file,id=con0,path=${log},append=on`;
  if (!Number.isInteger(vm.serialPort) || vm.serialPort < 1 || vm.serialPort > 65535) throw new FleetError('usage.invalid', `lab VM serial port ${vm.serialPort} is not a TCP port`);
  return `socket,id=con0,host=127.0.0.1,port=${vm.serialPort},server=on,wait=off,logfile=${log},logappend=on`;
}

/**
 * The in-band BMC (shared/LAB-NOTES.md, measured): a KCS interface whose BMC is the ipmi_sim on
 * 127.0.0.1:PORT. reconnect=10: QEMU starts while its BMC restarts and keeps trying, as the
 * chardev of a real board's BMC would come back.
 */
export function inBandBmcArgs(vm: Pick<VmSpec, 'inBandBmcPort'>): string[] {
  if (vm.inBandBmcPort === undefined) return [];
  if (!Number.isInteger(vm.inBandBmcPort) || vm.inBandBmcPort < 1 || vm.inBandBmcPort > 65535) throw new FleetError('usage.invalid', `lab VM in-band BMC port ${vm.inBandBmcPort} is not a TCP port`);
  return [
    '-chardev', `socket,id=ipmi0,host=127.0.0.1,port=${vm.inBandBmcPort},reconnect=10`,
    '-device', 'ipmi-bmc-extern,chardev=ipmi0,id=bmc0',
    '-device', 'isa-ipmi-kcs,bmc=bmc0',
  ];
}

/** QEMU arguments without the boot device (the hook adds -boot, or the devices with their bootindex). */
export function qemuArgs(vm: VmSpec): string[] {
  const args = [
    '-name', `${vm.name},process=qemu-${vm.name}`,
    '-nodefaults',
    '-no-user-config',
    '-accel', 'tcg,tb-size=64',
    '-machine', 'pc',
    '-m', String(vm.memoryMiB ?? DEFAULT_VM_MEMORY_MIB),
    '-smp', '1',
    '-rtc', 'base=utc',
    '-display', 'none',
    '-vga', 'none',
    '-monitor', 'none',
    '-chardev', serialChardev(vm),
    '-serial', 'chardev:con0',
    '-netdev', `tap,id=n0,ifname=${vm.tap},script=no,downscript=no`,
    ...(vm.diskMiB === 0 ? [] : ['-drive', `file=${join(vm.dir, 'disk.qcow2')},format=qcow2,if=none,id=d0,cache=unsafe`]),
    '-smbios', `type=1,manufacturer=${LAB_MANUFACTURER},product=${LAB_PRODUCT},serial=${vm.serial},uuid=${vm.uuid}`,
    ...inBandBmcArgs(vm),
  ];
  if (vm.firmware === 'uefi') {
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${OVMF.code}`, '-drive', `if=pflash,format=raw,file=${join(vm.dir, 'OVMF_VARS.fd')}`);
    // The NIC's network boot is its iPXE ROM. OVMF's own PXE clients would add boot options
    // of their own after it, which a localboot `exit 1` then walks through (TFTP and DHCP
    // timeouts, ~95 s) before the disk: a site disables the firmware's extra network boot
    // options the same way, in its setup.
    for (const knob of ['IPv4PXESupport', 'IPv6PXESupport', 'IPv4Support', 'IPv6Support']) args.push('-fw_cfg', `name=opt/org.tianocore/${knob},string=n`);
  }
  return args;
}

/** Single-quotes a word for bash. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The VMDIR/vm.env the chassis hook sources. */
export function renderVmEnv(vm: VmSpec): string {
  const dev = vmDevices(vm);
  return [
    `# fleet lab VM ${vm.name}: sourced by chassis-control.sh (server/lab/vm.ts writes it)`,
    `NAME=${shQuote(vm.name)}`,
    `FIRMWARE=${vm.firmware}`,
    `NIC_DEVICE=${shQuote(dev.nic)}`,
    `DISK_DEVICE=${shQuote(dev.disk)}`,
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

/** Writes VMDIR/disk.qcow2 (replacing it), a UEFI VM's fresh variable store and VMDIR/vm.env. */
export async function prepareVm(vm: VmSpec, o: { keepDisk?: boolean } = {}): Promise<void> {
  if (/\s/.test(vm.dir)) throw new FleetError('usage.invalid', `lab VM directory ${vm.dir} contains blanks (ipmi_sim splits its hook's command line on them)`);
  const disk = join(vm.dir, 'disk.qcow2');
  if (vm.diskMiB !== 0 && !(o.keepDisk && existsSync(disk))) {
    const fh = await open(disk, 'w');
    try {
      await fh.write(emptyQcow2((vm.diskMiB ?? DEFAULT_VM_DISK_MIB) * 1024 * 1024));
    } finally {
      await fh.close();
    }
  }
  if (vm.firmware === 'uefi' && !(o.keepDisk && existsSync(join(vm.dir, 'OVMF_VARS.fd')))) {
    if (!existsSync(OVMF.vars)) throw new FleetError('unavailable', `a UEFI lab VM needs ${OVMF.vars} (apt-get install ovmf)`);
    await copyFile(OVMF.vars, join(vm.dir, 'OVMF_VARS.fd'));
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

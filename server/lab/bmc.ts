/**
 * One lab BMC: an OpenIPMI `ipmi_sim` on 127.0.0.1:PORT of the lab namespace's
 * loopback (the fleet server runs inside that namespace too), whose
 * chassis_control program (assets/chassis-control.sh) drives the VM's QEMU.
 * Recipe: shared/LAB-NOTES.md "ipmi_sim". ipmitool needs `-C 3` against it.
 *
 *   VMDIR/bmc/lan.conf, bmc.emu   configuration (lan.conf holds the password: 0600)
 *   VMDIR/bmc/                    ipmi_sim's persistent state (-s)
 *   VMDIR/ipmi_sim.pid, .log      the process
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { encodeSystemGuid } from '../bmc/ipmi/commands.js';
import { encodeFru } from '../bmc/ipmi/fru.js';
import { killPid, pidMatches, readPidFile, run, sleep } from './exec.js';

export interface BmcSpec {
  name: string;
  /** The VM's directory (the hook's argument). */
  vmDir: string;
  address: string;
  port: number;
  username: string;
  password: string;
  /** Absolute path of the chassis hook (no blanks). */
  hook: string;
  /**
   * The VM's SMBIOS identity (what its agent reports): the BMC's system GUID
   * is the VM's UUID and its FRU 0 carries the serial, as on a real machine,
   * so that `fleet inventory reconcile` matches. Absent: a GUID of its own, no FRU.
   */
  machine?: { uuid: string; serial: string; manufacturer: string; product: string };
  /** The VM's serial line (QEMU's TCP server on 127.0.0.1): ipmi_sim's SOL connects to it, so `fleet console` shows the VM. */
  solPort?: number;
  /** The system interface for the VM's KCS (QEMU ipmi-bmc-extern connects to 127.0.0.1:PORT): the BMC is reachable in band from inside the VM. */
  inBandPort?: number;
}

/** The TCP port of a lab VM's serial line: its BMC's UDP port + 1000 (both on the lab namespace's loopback). */
export const LAB_SERIAL_PORT_OFFSET = 1000;
export function labSerialPort(bmcPort: number): number {
  const p = bmcPort + LAB_SERIAL_PORT_OFFSET;
  if (p > 65535) throw new FleetError('usage.invalid', `lab BMC port ${bmcPort} leaves no room for the serial port (+${LAB_SERIAL_PORT_OFFSET})`);
  return p;
}

function quote(s: string): string {
  if (/["\n\\]/.test(s)) throw new FleetError('usage.invalid', `ipmi_sim config: unsupported character in ${JSON.stringify(s)}`);
  return `"${s}"`;
}

/** A stable 32-hex-digit GUID per BMC name. */
export function guidFor(name: string): string {
  return createHash('sha256').update(`fleet-lab-bmc:${name}`).digest('hex').slice(0, 32);
}

export function renderLanConf(b: BmcSpec): string {
  if (/\s/.test(b.hook) || /\s/.test(b.vmDir)) throw new FleetError('usage.invalid', 'ipmi_sim splits chassis_control on blanks: lab paths must not contain any');
  return [
    `name ${quote(b.name)}`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${b.address} ${b.port}`,
    '    priv_limit admin',
    '    allowed_auths_callback none md2 md5 straight',
    '    allowed_auths_user none md2 md5 straight',
    '    allowed_auths_operator none md2 md5 straight',
    '    allowed_auths_admin none md2 md5 straight',
    `    guid ${b.machine ? encodeSystemGuid(b.machine.uuid).toString('hex') : guidFor(b.name)}`,
    '  endlan',
    // ipmi_sim keeps reconnecting while the VM is off (QEMU not listening).
    ...(b.solPort !== undefined ? [`  sol ${quote(`tcp:127.0.0.1:${b.solPort}`)} 115200`] : []),
    // In band: the VM's KCS (QEMU ipmi-bmc-extern) connects here; power and boot device stay with the hook.
    ...(b.inBandPort !== undefined ? [`  serial 15 127.0.0.1 ${b.inBandPort} codec VM`] : []),
    `  chassis_control ${quote(`/bin/bash ${b.hook} ${b.vmDir}`)}`,
    `user 2 true ${quote(b.username)} ${quote(b.password)} admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
}

/** ipmi_sim's emulator commands: one BMC, its SEL, and FRU 0 when given (its bytes; test/helpers/ipmisim.ts uses it too). */
export function renderBmcEmu(fruImage?: Buffer): string {
  return [
    'mc_setbmc 0x20',
    'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr',
    'sel_enable 0x20 1000 0x0a',
    ...(fruImage ? [`mc_add_fru_data 0x20 0 ${fruImage.length} data ${[...fruImage].map((x) => `0x${x.toString(16)}`).join(' ')}`] : []),
    'mc_enable 0x20',
    '',
  ].join('\n');
}

/** FRU 0 of a lab BMC: the VM's maker, product and serial in the board and product areas. */
function machineFru(m: NonNullable<BmcSpec['machine']>): Buffer {
  return encodeFru({ board: { manufacturer: m.manufacturer, product: m.product, serial: m.serial }, product: { manufacturer: m.manufacturer, name: m.product, serial: m.serial } });
}

/** Runs ipmitool against a lab BMC from inside the namespace (lanplus, -C 3, password via IPMI_PASSWORD). */
export function labIpmitool(netns: string | undefined, ipmitool: string, b: Pick<BmcSpec, 'address' | 'port' | 'username' | 'password'>, args: string[], timeoutMs = 15_000) {
  const argv = ['-I', 'lanplus', '-C', '3', '-H', b.address, '-p', String(b.port), '-U', b.username, '-E', ...args];
  return run(netns ? 'ip' : ipmitool, netns ? ['netns', 'exec', netns, ipmitool, ...argv] : argv, {
    env: { ...process.env, IPMI_PASSWORD: b.password },
    timeoutMs,
  });
}

/**
 * Starts ipmi_sim for `b` inside `netns`, detached (it outlives this process:
 * `fleet lab up` returns, `fleet lab down` stops it by PID). Waits until it
 * answers ipmitool (when `ipmitool` is given) or at least stays up.
 */
export async function startBmc(netns: string | undefined, ipmiSim: string, b: BmcSpec, ipmitool?: string | null): Promise<number> {
  const dir = join(b.vmDir, 'bmc');
  await mkdir(dir, { recursive: true });
  const lan = join(dir, 'lan.conf');
  await writeFile(lan, renderLanConf(b), { mode: 0o600 });
  await chmod(lan, 0o600);
  await writeFile(join(dir, 'bmc.emu'), renderBmcEmu(b.machine ? machineFru(b.machine) : undefined));
  const logFd = openSync(join(b.vmDir, 'ipmi_sim.log'), 'a');
  const simArgs = ['-n', '-c', lan, '-f', join(dir, 'bmc.emu'), '-s', dir];
  const child = spawn(netns ? 'ip' : ipmiSim, netns ? ['netns', 'exec', netns, ipmiSim, ...simArgs] : simArgs, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new FleetError('internal', `ipmi_sim for ${b.name} did not start`);
  await writeFile(join(b.vmDir, 'ipmi_sim.pid'), `${pid}\n`);
  // `ip netns exec` execs ipmi_sim in place: the PID is ipmi_sim's.
  for (let i = 0; i < 40; i++) {
    if (child.exitCode !== null) break;
    if (ipmitool) {
      const r = await labIpmitool(netns, ipmitool, b, ['-R', '1', '-N', '1', 'chassis', 'power', 'status'], 5000);
      if (r.code === 0) return pid;
    } else if (i >= 4 && pidMatches(pid, lan)) {
      return pid;
    }
    await sleep(100);
  }
  await stopBmc(b.vmDir);
  throw new FleetError('unavailable', `ipmi_sim for ${b.name} on ${b.address}:${b.port} did not come up (see ${join(b.vmDir, 'ipmi_sim.log')})`);
}

export function bmcPid(vmDir: string): number | undefined {
  const pid = readPidFile(join(vmDir, 'ipmi_sim.pid'));
  return pid !== undefined && pidMatches(pid, join(vmDir, 'bmc', 'lan.conf')) ? pid : undefined;
}

export async function stopBmc(vmDir: string): Promise<void> {
  await killPid(readPidFile(join(vmDir, 'ipmi_sim.pid')), join(vmDir, 'bmc', 'lan.conf'));
}

/**
 * Test harness: N OpenIPMI `ipmi_sim` BMCs on 127.0.0.1 UDP ports.
 *
 *   const lab = await startIpmiSims(5);               // or startIpmiSims(5, { fru: (i) => ({...}) })
 *   try {
 *     lab.bmcs[0].target                               // BmcTarget for a driver
 *     lab.bmcs[0].state()                              // { power: 'on'|'off', boot: 'pxe'|'default'|…, resets, softs }
 *     await lab.bmcs[0].ipmitool(['chassis', 'power', 'status'])  // independent check with the real ipmitool
 *   } finally {
 *     await lab.stop();                                // kills every ipmi_sim by PID, removes the temp dir
 *   }
 *
 * Each BMC has its own state dir under one temp dir, a unique GUID, and a
 * chassis_control hook (ipmisim-chassis.sh) that keeps power state and boot
 * device in a small state file. Recipe: shared/LAB-NOTES.md "ipmi_sim".
 * ipmi_sim rejects cipher suite 17; ipmitool must be given -C 3 (LAB-NOTES).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../../common/executable.js';
import type { BmcTarget } from '../../server/bmc/types.js';
import { type Fru, encodeFru } from '../../server/bmc/ipmi/fru.js';
import { encodeSystemGuid } from '../../server/bmc/ipmi/commands.js';
import { renderBmcEmu } from '../../server/lab/bmc.js';

const CHASSIS_SCRIPT = fileURLToPath(new URL('./ipmisim-chassis.sh', import.meta.url));

export { findExecutable };

export const IPMI_SIM = findExecutable('ipmi_sim');
export const IPMITOOL = findExecutable('ipmitool');

export interface SimChassisState {
  power: 'on' | 'off';
  /** As ipmi_sim names it: none | pxe | default (disk) | cdrom | bios. */
  boot: string;
  /** Hard resets received. */
  resets: number;
  /** Soft (ACPI) shutdowns received. */
  softs: number;
}

export interface SimBmc {
  index: number;
  name: string;
  address: string;
  port: number;
  username: string;
  password: string;
  /** 32 hex digits as configured in lan.conf. */
  guid: string;
  /** The system UUID a client reports for `guid` (SMBIOS byte order, as `ipmitool mc guid smbios` prints it and dmidecode shows it). */
  uuid: string;
  fru?: Fru;
  stateDir: string;
  stateFile: string;
  pid: number;
  target: BmcTarget;
  /** Reads the chassis state file. */
  state(): SimChassisState;
  /** Overwrites the chassis state (e.g. start powered on). */
  setState(s: Partial<SimChassisState>): void;
  /** Makes every `set` of the chassis hook sleep `seconds` first (a slow BMC); 0 removes the delay. */
  setHookDelay(seconds: number): void;
  /** Every hook call ipmi_sim made, e.g. "set power 1", "get boot". */
  calls(): string[];
  /** Runs the real ipmitool against this BMC (lanplus, -C 3, password via IPMI_PASSWORD). */
  ipmitool(args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  alive(): boolean;
}

export interface IpmiSimLab {
  dir: string;
  bmcs: SimBmc[];
  /** Stops every ipmi_sim by PID (SIGTERM, then SIGKILL) and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  username?: string;
  /** Default password for every BMC. */
  password?: string;
  /** FRU 0 contents per BMC; none by default (ipmi_sim then answers "invalid data field"). */
  fru?: (index: number) => Fru | undefined;
  /** Raw FRU 0 image per BMC (e.g. a malformed one); takes precedence over `fru`. */
  fruImage?: (index: number) => Buffer | undefined;
  /** The machine's SMBIOS UUID per BMC: its GUID is configured as these bytes in the SMBIOS order; random by default. */
  uuid?: (index: number) => string | undefined;
  /** Initial chassis state per BMC. */
  initial?: (index: number) => Partial<SimChassisState>;
  readyTimeoutMs?: number;
  /** SOL device per BMC, as lan.conf's `sol` takes it (e.g. "tcp:127.0.0.1:PORT": ipmi_sim connects there); none by default. */
  sol?: (index: number) => string | undefined;
}

const live = new Map<number, ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // If a test forgets stop(): no ipmi_sim outlives a normal exit (the watchdog covers kills).
  process.once('exit', () => {
    for (const pid of live.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const port of reserved) unlockPort(port);
  });
}

/**
 * A detached shell that SIGKILLs every PID listed in `pidFile` once this Node
 * process is gone (a test worker killed by a signal runs no exit handler).
 */
function startWatchdog(pidFile: string): ChildProcess {
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; [ -f "$1" ] && xargs kill -9 < "$1" 2>/dev/null; exit 0`;
  const w = spawn('/bin/sh', ['-c', script, 'ipmisim-watchdog', pidFile], { detached: true, stdio: 'ignore' });
  w.unref();
  return w;
}

/** Ports held by ipmi_sim processes of this test process. */
const reserved = new Set<number>();
/**
 * Cross-process port reservations: one file per port, created exclusively,
 * holding the owner's PID. ipmi_sim binds with SO_REUSEADDR, so a second
 * ipmi_sim on the same port (another test file picking the same random port)
 * would silently steal the first one's traffic; the lock makes that impossible.
 */
const LOCK_DIR = join(tmpdir(), 'fleet-ipmisim-ports');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockPort(port: number): boolean {
  mkdirSync(LOCK_DIR, { recursive: true });
  const file = join(LOCK_DIR, String(port));
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (owner && pidAlive(owner)) return false;
      rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  return false;
}

function unlockPort(port: number): void {
  const file = join(LOCK_DIR, String(port));
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
  } catch {
    // already gone
  }
}

/** A UDP port outside Linux's ephemeral range (so client sockets never take it), free and locked for us. */
async function freeUdpPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = randomInt(20000, 32000);
    if (reserved.has(port) || !lockPort(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) {
      reserved.add(port);
      return port;
    }
    unlockPort(port);
  }
  throw new Error('ipmisim: no free UDP port found');
}

function releasePort(port: number): void {
  reserved.delete(port);
  unlockPort(port);
}

/** Socket inodes bound to local UDP `port` (Linux /proc), or null where /proc is not there. */
function udpInodes(port: number): Set<string> | null {
  if (!existsSync('/proc/net/udp')) return null;
  const inodes = new Set<string>();
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(portHex) && cols[9]) inodes.add(cols[9]);
    }
  }
  return inodes;
}

/**
 * Whether process `pid` is the ONLY holder of local UDP `port`. A second ipmi_sim
 * on a port (SO_REUSEADDR) takes its traffic, and the readiness probe cannot tell
 * which one answered: this can.
 */
export function ownsUdpPortAlone(pid: number, port: number): boolean {
  const inodes = udpInodes(port);
  if (inodes === null) return true;
  if (inodes.size !== 1) return false;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) return true;
    }
  } catch {
    return false;
  }
  return false;
}

/** Get Channel Authentication Capabilities, IPMI v1.5 framing, hand-assembled (independent of server code). */
const PROBE = Buffer.from([0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]);

async function waitReady(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  try {
    return await new Promise<boolean>((resolve) => {
      const end = Date.now() + timeoutMs;
      const timer = setInterval(() => {
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > end) {
          clearInterval(timer);
          resolve(false);
          return;
        }
        s.send(PROBE, port, '127.0.0.1');
      }, 50);
      s.on('message', (_m, rinfo) => {
        if (rinfo.port === port) {
          clearInterval(timer);
          resolve(true);
        }
      });
      s.send(PROBE, port, '127.0.0.1');
    });
  } finally {
    s.close();
  }
}

function uuidFromGuid(guid: string): string {
  const b = Buffer.from(guid, 'hex');
  const hex = Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8)]).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function quote(s: string): string {
  if (/["\n\\]/.test(s)) throw new Error(`ipmisim: unsupported character in ${JSON.stringify(s)}`);
  return `"${s}"`;
}

function writeState(file: string, s: SimChassisState): void {
  writeFileSync(file, `power=${s.power === 'on' ? 1 : 0}\nboot=${s.boot}\nresets=${s.resets}\nsofts=${s.softs}\n`);
}

function readState(file: string): SimChassisState {
  const st: SimChassisState = { power: 'off', boot: 'default', resets: 0, softs: 0 };
  if (!existsSync(file)) return st;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [k, v] = line.split('=');
    if (k === 'power') st.power = v === '1' ? 'on' : 'off';
    else if (k === 'boot' && v) st.boot = v;
    else if (k === 'resets') st.resets = Number(v);
    else if (k === 'softs') st.softs = Number(v);
  }
  return st;
}

async function stopChild(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 2000);
    await exited;
    clearTimeout(t);
  }
  live.delete(pid);
}

async function startOne(dir: string, hook: string, pidFile: string, index: number, o: StartOptions): Promise<SimBmc> {
  if (!IPMI_SIM) throw new Error('ipmi_sim is not installed (apt-get install openipmi)');
  const name = `bmc${index}`;
  const stateDir = join(dir, name);
  const stateFile = join(stateDir, 'chassis.state');
  const username = o.username ?? 'admin';
  const password = o.password ?? 'fleet-Sim-Pass1';
  const machineUuid = o.uuid?.(index);
  const guid = machineUuid ? encodeSystemGuid(machineUuid).toString('hex') : randomBytes(16).toString('hex');
  const fru = o.fru?.(index);
  const fruImage = o.fruImage?.(index) ?? (fru ? encodeFru(fru) : undefined);
  await rm(stateDir, { recursive: true, force: true });
  await mkdir(stateDir, { recursive: true });
  writeState(stateFile, { power: 'off', boot: 'default', resets: 0, softs: 0, ...o.initial?.(index) });
  const emu = renderBmcEmu(fruImage);
  await writeFile(join(stateDir, 'bmc.emu'), emu);

  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeUdpPort();
    const lan = [
      `name ${quote(name)}`,
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr 127.0.0.1 ${port}`,
      '    priv_limit admin',
      '    allowed_auths_callback none md2 md5 straight',
      '    allowed_auths_user none md2 md5 straight',
      '    allowed_auths_operator none md2 md5 straight',
      '    allowed_auths_admin none md2 md5 straight',
      `    guid ${guid}`,
      '  endlan',
      ...(o.sol?.(index) ? [`  sol ${quote(o.sol(index)!)} 115200`] : []),
      `  chassis_control ${quote(`/bin/sh ${hook} ${stateFile}`)}`,
      `user 2 true ${quote(username)} ${quote(password)} admin 10 none md2 md5 straight`,
      '',
    ].join('\n');
    await writeFile(join(stateDir, 'lan.conf'), lan);
    const logFd = openSync(join(stateDir, 'ipmi_sim.log'), 'a');
    const child = spawn(IPMI_SIM, ['-n', '-c', join(stateDir, 'lan.conf'), '-f', join(stateDir, 'bmc.emu'), '-s', stateDir], {
      stdio: ['ignore', logFd, logFd],
    });
    closeSync(logFd);
    if (child.pid === undefined) throw new Error('ipmisim: ipmi_sim did not start');
    live.set(child.pid, child);
    child.once('exit', () => live.delete(child.pid!));
    installExitHook();
    appendFileSync(pidFile, `${child.pid}\n`);
    if (!(await waitReady(port, child, o.readyTimeoutMs ?? 5000)) || !ownsUdpPortAlone(child.pid, port)) {
      await stopChild(child);
      releasePort(port);
      continue;
    }
    const pid = child.pid;
    const target: BmcTarget = { address: '127.0.0.1', port, username, password };
    const bmc: SimBmc = {
      index,
      name,
      address: '127.0.0.1',
      port,
      username,
      password,
      guid,
      uuid: uuidFromGuid(guid),
      stateDir,
      stateFile,
      pid,
      target,
      state: () => readState(stateFile),
      setState: (s) => writeState(stateFile, { ...readState(stateFile), ...s }),
      setHookDelay: (seconds) => {
        if (seconds > 0) writeFileSync(`${stateFile}.setdelay`, `${seconds}\n`);
        else rmSync(`${stateFile}.setdelay`, { force: true });
      },
      calls: () => (existsSync(`${stateFile}.log`) ? readFileSync(`${stateFile}.log`, 'utf8').split('\n').filter(Boolean) : []),
      ipmitool: (args, timeoutMs = 15_000) => runIpmitool(port, username, password, args, timeoutMs),
      alive: () => child.exitCode === null && child.signalCode === null,
    };
    if (fru) bmc.fru = fru;
    children.set(bmc, child);
    return bmc;
  }
  throw new Error(`ipmisim: ${name} did not come up (see ${join(stateDir, 'ipmi_sim.log')})`);
}

const children = new WeakMap<SimBmc, ChildProcess>();

function runIpmitool(port: number, user: string, password: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      IPMITOOL ?? 'ipmitool',
      ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(port), '-U', user, '-E', ...args],
      { env: { ...process.env, IPMI_PASSWORD: password }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Starts `count` ipmi_sim BMCs in parallel. On any failure, the ones started are stopped before the error propagates. */
export async function startIpmiSims(count: number, o: StartOptions = {}): Promise<IpmiSimLab> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-ipmisim-'));
  // ipmi_sim splits the chassis_control command line on blanks: keep every path in it blank-free.
  if (/\s/.test(dir)) throw new Error(`ipmisim: temp dir ${dir} contains blanks`);
  const hook = join(dir, 'chassis.sh');
  await copyFile(CHASSIS_SCRIPT, hook);
  const pidFile = join(dir, 'pids');
  writeFileSync(pidFile, '');
  const watchdog = startWatchdog(pidFile);
  const started: SimBmc[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(started.map((b) => stopChild(children.get(b)!)));
    for (const b of started) releasePort(b.port);
    if (watchdog.pid !== undefined) {
      try {
        process.kill(-watchdog.pid, 'SIGKILL'); // the shell and its `sleep`
      } catch {
        // gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => startOne(dir, hook, pidFile, i, o)));
    for (const r of results) if (r.status === 'fulfilled') started.push(r.value);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, bmcs: started.sort((a, b) => a.index - b.index), stop };
}

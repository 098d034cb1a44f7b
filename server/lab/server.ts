/**
 * The lab's fleet server: where its files are (LabPaths), starting it
 * detached inside the lab's namespace and waiting until its dnsmasq serves,
 * stopping it by PID (command line checked), and running the fleet CLI in
 * the namespace against it. Used by `fleet lab` (server/cli/commands/lab.ts)
 * and by the e2e test.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { killPid, pidMatches, readPidFile, sleep } from './exec.js';
import { fleetSourceRoot, labAdminUrl, readLabState, type LabState } from './lab.js';

export { DEFAULT_LAB_DIR } from './defaults.js';
/** The server log line that says DHCP/TFTP is up: the lab is usable from then on. */
export const LAB_READY_LINE = /netboot: dnsmasq serving/;

export interface LabPaths {
  dir: string;
  dataDir: string;
  www: string;
  serverLog: string;
  serverPid: string;
}

export function labPaths(dir: string): LabPaths {
  const d = resolve(dir);
  return { dir: d, dataDir: join(d, 'data'), www: join(d, 'data', 'www'), serverLog: join(d, 'server.log'), serverPid: join(d, 'server.pid') };
}

export function fleetBin(): string {
  return join(fleetSourceRoot(), 'bin', 'fleet.js');
}

/** PID of the lab's fleet server when it runs (command line checked), else undefined. */
export function labServerPid(p: LabPaths): number | undefined {
  const pid = readPidFile(p.serverPid);
  return pid !== undefined && pidMatches(pid, join(p.dir, 'lab.yaml')) ? pid : undefined;
}

function tail(file: string, lines = 25): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

/** What a fresh lab server keeps of DIR/data: the image store, the boot environment, DATA/www (the agent bundle) and fleet's repository (packages and key). */
export const LAB_DATA_KEPT = ['images', 'bootenv', 'www', 'repo'] as const;

/**
 * Empties the lab server's data dir except LAB_DATA_KEPT: fresh VMs (empty
 * disks) get a fresh server (no store, CA or enrolments of an earlier lab)
 * without rebuilding the image and the boot environment.
 */
export async function resetLabData(p: LabPaths): Promise<string[]> {
  await mkdir(p.dataDir, { recursive: true });
  const removed: string[] = [];
  for (const e of await readdir(p.dataDir)) {
    if ((LAB_DATA_KEPT as readonly string[]).includes(e)) continue;
    await rm(join(p.dataDir, e), { recursive: true, force: true });
    removed.push(e);
  }
  return removed;
}

/** Starts `fleet server` in the lab's namespace, detached; resolves with its PID once dnsmasq serves. */
export async function startLabServer(state: LabState, p: LabPaths, o: { timeoutMs?: number; logLevel?: string; appendLog?: boolean } = {}): Promise<number> {
  const running = labServerPid(p);
  if (running !== undefined) throw new FleetError('conflict', `the lab's fleet server already runs (pid ${running})`);
  const offset = o.appendLog && existsSync(p.serverLog) ? readFileSync(p.serverLog).length : 0;
  if (!o.appendLog) await writeFile(p.serverLog, '');
  const fd = openSync(p.serverLog, 'a');
  let pid: number | undefined;
  let ended: string | undefined;
  try {
    // `ip netns exec` execs the command: the PID is node's. setsid (detached) so it outlives this CLI.
    const child = spawn(
      'ip',
      ['netns', 'exec', state.netns, process.execPath, fleetBin(), 'server', '--config', state.configFile, '--data', p.dataDir, '--log-level', o.logLevel ?? 'info'],
      // Without npm's variables: under `npx fleet lab up` the server would take itself for a child of npm exec
      // and stop with this CLI (cmdServer's parent watch).
      { detached: true, stdio: ['ignore', fd, fd], cwd: p.dir, env: withoutNpmExec(process.env) },
    );
    pid = child.pid;
    // While this process lives it still learns how the server ended, for the error below.
    child.once('exit', (code, signal) => (ended = signal ? `killed by ${signal}` : `exit code ${code}`));
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new FleetError('internal', 'could not start the fleet server');
  await writeFile(p.serverPid, `${pid}\n`);
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  for (;;) {
    const log = existsSync(p.serverLog) ? readFileSync(p.serverLog).subarray(offset).toString('utf8') : '';
    if (LAB_READY_LINE.test(log)) return pid;
    // The child's own exit event, not /proc: between fork and exec /proc/PID/cmdline is still this
    // process's, and reading it then took a starting server for a dead one (and left it running).
    const alive = ended === undefined;
    if (!alive || Date.now() > deadline) {
      await killPid(pid, 'server', 5000);
      const how = alive ? 'did not start DHCP in time' : `exited (${ended ?? 'how unknown'})`;
      throw new FleetError('unavailable', `the lab's fleet server ${how}; ${p.serverLog}:\n${tail(p.serverLog)}`);
    }
    await sleep(200);
  }
}

/** Stops the lab's fleet server (SIGTERM, then SIGKILL) and a dnsmasq it may have left behind. */
export async function stopLabServer(p: LabPaths): Promise<{ server: boolean; dnsmasq: boolean }> {
  const pid = labServerPid(p);
  const server = pid !== undefined ? await killPid(pid, join(p.dir, 'lab.yaml'), 15_000) : false;
  // A server killed with SIGKILL leaves its dnsmasq: its PID file and command line name the data dir.
  const dpidFile = join(p.dataDir, 'dnsmasq', 'dnsmasq.pid');
  const dnsmasq = await killPid(readPidFile(dpidFile), p.dataDir, 5000);
  await rm(p.serverPid, { force: true });
  return { server, dnsmasq };
}

/** Runs `fleet ARGS` inside the lab's namespace against its server; resolves to its exit code. */
export async function runInLab(p: LabPaths, args: string[], o: { stdio?: 'inherit' | 'pipe'; timeoutMs?: number } = {}): Promise<{ code: number; out: string; err: string }> {
  const state = readLabState(p.dir);
  if (!state) throw new FleetError('not_found', `no lab in ${p.dir} (fleet lab up creates one)`);
  const argv = ['netns', 'exec', state.netns, process.execPath, fleetBin(), '--url', labAdminUrl(state), '--data', p.dataDir, ...args];
  return runIp(argv, o);
}

/** ssh options for the lab's VMs: their host keys are new at every install, so none is remembered. */
export const LAB_SSH_OPTIONS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];

/**
 * `ssh root@NODE-IP ARGS` from inside the lab's namespace with the lab's key
 * (the profile's ssh_keys hold its public half). Resolves to the exit code
 * (255: ssh itself failed) and, with stdio 'pipe', the output.
 */
export async function labSsh(p: LabPaths, node: string, args: string[], o: { stdio?: 'inherit' | 'pipe'; timeoutMs?: number } = {}): Promise<{ code: number; out: string; err: string }> {
  const state = readLabState(p.dir);
  if (!state) throw new FleetError('not_found', `no lab in ${p.dir} (fleet lab up creates one)`);
  // A racked VM answers to the node it became as well as to its lab label.
  const n = state.nodes.find((x) => x.name === node) ?? state.nodes.find((x) => x.planned === node);
  if (!n) throw new FleetError('not_found', `no VM ${JSON.stringify(node)} in the lab (${state.nodes.map((x) => x.name).join(', ')})`);
  const argv = ['netns', 'exec', state.netns, 'ssh', '-i', state.sshKey, ...LAB_SSH_OPTIONS, `root@${n.ip}`, ...args];
  return runIp(argv, o);
}

/** `ip ARGV` (a command inside a namespace), its output collected with stdio 'pipe'; bounded by timeoutMs when given. */
function runIp(argv: string[], o: { stdio?: 'inherit' | 'pipe'; timeoutMs?: number }): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('ip', argv, { stdio: o.stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let out = '';
    let err = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolveRun({ code: code ?? (signal ? 128 : 1), out, err });
    });
  });
}

/** The environment without `npm_command`: a detached server is nobody's npm exec child. */
export function withoutNpmExec(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { npm_command: _npmCommand, ...rest } = env;
  return rest;
}

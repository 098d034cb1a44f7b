/**
 * DnsmasqSupervisor: fleet's dnsmasq as a child process.
 *
 * start():  writes DATA/dnsmasq/{dnsmasq.conf, hosts/, dhcp-hook}, prepares
 *           the TFTP root, stops a dnsmasq left over by a previous run of
 *           this data dir (pid file + command line check), has dnsmasq check
 *           the config (`--test`), spawns `[prefix...] dnsmasq -k
 *           --conf-file=...` and waits for its "started" log line. A config
 *           or start-up failure is a FleetError with dnsmasq's own words.
 * running:  when dnsmasq dies it is restarted with exponential backoff
 *           (initialDelayMs doubling up to maxDelayMs); the delay resets
 *           once a run lasted stableMs.
 * updateHosts(nodes): rewrites only the reservation files that changed
 *           (atomic rename; dnsmasq picks them up through inotify, no
 *           restart, no signal). dnsmasq keeps a record whose file was
 *           removed or changed until SIGHUP, so only then one SIGHUP is
 *           sent (reloadOnChange; see docs/decisions/0005-dnsmasq.md).
 * stop():   SIGTERM, then SIGKILL after stopTimeoutMs.
 * Events:   'spawn' (pid), 'ready' (pid; start() only), 'exit' (DnsmasqExit,
 *           restart delay in ms or null when not restarting), 'restart'
 *           ({restarts, pid}).
 *
 * Privileges: started as root, dnsmasq drops to `user` (default: `dnsmasq`
 * when that user exists, else `nobody`). The hook still runs as root
 * (dnsmasq's helper keeps root). The hosts directory and the TFTP root must
 * be reachable by that user (checked before start).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../../../common/atomic-write.js';
import { exponentialDelay } from '../../../common/backoff.js';
import { FleetError } from '../../../common/errors.js';
import { writeHookScript } from '../hook/script.js';
import {
  type DnsmasqConfigInput,
  type DnsmasqFilePaths,
  type DnsmasqSettings,
  type HostReservation,
  renderDnsHostFiles,
  renderDnsmasqConfig,
  renderHostFiles,
  reservationLines,
} from './config.js';
import { type NetbootLogger, silentLogger } from './logger.js';
import { findExecutable } from '../../../common/executable.js';
import { lookupUser, type SystemUser, unreachableReason } from './system.js';
import { prepareTftpRoot, type TftpRootReport } from './tftp.js';

const execFileP = promisify(execFile);

/** Every file of fleet's dnsmasq. */
export interface DnsmasqPaths extends DnsmasqFilePaths {
  /** DATA/dnsmasq */
  stateDir: string;
  confFile: string;
  hookScript: string;
  /** The discovery FIFO (DiscoveryListener). */
  eventsFifo: string;
}

/** The default layout: DATA/dnsmasq/{dnsmasq.conf,hosts/,dns/,dnsmasq.leases,dnsmasq.log,dnsmasq.pid,dhcp-hook,events.fifo}, DATA/tftp. */
export function dnsmasqPaths(dataDir: string, opts: { tftpRoot?: string } = {}): DnsmasqPaths {
  const data = path.resolve(dataDir);
  const state = path.join(data, 'dnsmasq');
  return {
    stateDir: state,
    confFile: path.join(state, 'dnsmasq.conf'),
    hostsDir: path.join(state, 'hosts'),
    dnsHostsDir: path.join(state, 'dns'),
    leaseFile: path.join(state, 'dnsmasq.leases'),
    logFile: path.join(state, 'dnsmasq.log'),
    pidFile: path.join(state, 'dnsmasq.pid'),
    hookScript: path.join(state, 'dhcp-hook'),
    eventsFifo: path.join(state, 'events.fifo'),
    tftpRoot: path.resolve(data, opts.tftpRoot ?? 'tftp'),
  };
}

export type SupervisorState = 'stopped' | 'starting' | 'running' | 'backoff' | 'stopping' | 'failed';

export interface DnsmasqExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: string;
  /** How long that run lasted. */
  ranMs: number;
  /** dnsmasq's last log lines of that run. */
  logTail: string[];
}

export interface DnsmasqStatus {
  state: SupervisorState;
  running: boolean;
  pid: number | null;
  /** Restarts after unexpected exits since start(). */
  restarts: number;
  /** Exits in a row that came before stableMs; drives the backoff. */
  consecutiveFailures: number;
  /** Delay before the next restart while in backoff. */
  nextRestartInMs: number | null;
  startedAt: string | null;
  lastExit: DnsmasqExit | null;
  confFile: string;
  user: string | null;
  tftp: TftpRootReport | null;
}

export interface HostsUpdate {
  added: string[];
  changed: string[];
  removed: string[];
  /** A SIGHUP was sent (a file was removed or changed). */
  reloaded: boolean;
}

export interface DnsmasqSupervisorOptions {
  paths: DnsmasqPaths;
  settings: DnsmasqSettings;
  /** Known nodes at start; later changes go through updateHosts(). */
  hosts: HostReservation[];
  /** DiscoveryListener.hookEnv(); null/absent: no dhcp-script, no lease events. */
  hookEnv?: Record<string, string> | null;
  /** dnsmasq executable (name or path). Default 'dnsmasq' (PATH, then /usr/sbin). */
  binary?: string;
  /** Put before the command, e.g. ['ip', 'netns', 'exec', NS] (must exec, not fork, to keep the PID). */
  commandPrefix?: string[];
  /** User dnsmasq drops to when started as root. Default 'dnsmasq' if it exists, else 'nobody'. Ignored when not root. */
  user?: string;
  /** iPXE binaries source; default /usr/lib/ipxe. prepare: false leaves the TFTP root alone. */
  tftp?: { sourceDir?: string; prepare?: boolean };
  restart?: { initialDelayMs?: number; maxDelayMs?: number; stableMs?: number };
  /** How long start() waits for dnsmasq's "started" line. Default 10 s. */
  startTimeoutMs?: number;
  /** SIGTERM → SIGKILL delay. Default 5 s. */
  stopTimeoutMs?: number;
  /** The log file is rotated (copy to .1 + truncate) past this size. Default 16 MiB. */
  maxLogBytes?: number;
  /** SIGHUP dnsmasq when a reservation file is removed or changed. Default true. */
  reloadOnChange?: boolean;
  logger?: NetbootLogger;
}

const STARTED = /dnsmasq\[\d+\]: started, version/;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DnsmasqSupervisor extends EventEmitter {
  private readonly paths: DnsmasqPaths;
  private readonly log: NetbootLogger;
  private child: ChildProcess | null = null;
  private childStartedAt = 0;
  private state: SupervisorState = 'stopped';
  private restarts = 0;
  private consecutiveFailures = 0;
  private nextDelay: number | null = null;
  private startedAt: string | null = null;
  private lastExit: DnsmasqExit | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  private exitWaiters: (() => void)[] = [];
  private hosts: HostReservation[];
  private currentHosts = new Map<string, string>();
  private currentDnsHosts = new Map<string, string>();
  private hostsChain: Promise<unknown> = Promise.resolve();
  private tftpReport: TftpRootReport | null = null;
  private user: SystemUser | null = null;
  private binary: string | null = null;
  private logOffset = 0;
  private readonly outputTail: string[] = [];

  constructor(private readonly opts: DnsmasqSupervisorOptions) {
    super();
    this.paths = opts.paths;
    this.hosts = opts.hosts;
    this.log = opts.logger ?? silentLogger;
  }

  status(): DnsmasqStatus {
    return {
      state: this.state,
      running: this.child !== null && this.child.exitCode === null && this.child.signalCode === null,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      consecutiveFailures: this.consecutiveFailures,
      nextRestartInMs: this.state === 'backoff' ? this.nextDelay : null,
      startedAt: this.startedAt,
      lastExit: this.lastExit,
      confFile: this.paths.confFile,
      user: this.user?.name ?? null,
      tftp: this.tftpReport,
    };
  }

  /** The rendered input (paths, user, hosts filled in); exposed for tests and `fleet` diagnostics. */
  configInput(arm64Binary: string | null = this.tftpReport?.arm64 ?? null): DnsmasqConfigInput {
    const input: DnsmasqConfigInput = {
      ...this.opts.settings,
      paths: {
        hostsDir: this.paths.hostsDir,
        dnsHostsDir: this.paths.dnsHostsDir,
        tftpRoot: this.paths.tftpRoot,
        leaseFile: this.paths.leaseFile,
        logFile: this.paths.logFile,
        pidFile: this.paths.pidFile,
        hookScript: this.opts.hookEnv ? this.paths.hookScript : null,
      },
      user: this.user?.name ?? null,
      hosts: this.hosts,
    };
    if (this.opts.settings.arm64Binary === undefined) input.arm64Binary = arm64Binary;
    return input;
  }

  async start(): Promise<DnsmasqStatus> {
    if (this.state !== 'stopped' && this.state !== 'failed') return this.status();
    this.state = 'starting';
    this.restarts = 0;
    this.consecutiveFailures = 0;
    try {
      this.binary = findExecutable(this.opts.binary ?? 'dnsmasq');
      if (!this.binary) {
        throw new FleetError('unavailable', `dnsmasq not found (${this.opts.binary ?? 'dnsmasq'}): install the Debian package dnsmasq-base`);
      }
      this.user = this.resolveUser();
      await this.writeFiles();
      await this.killStale();
      await this.rotateLog();
      await this.testConfig();
      await this.spawnAndWait();
      this.state = 'running';
      this.startedAt = new Date().toISOString();
      this.logTimer = setInterval(() => void this.rotateLog().catch(() => {}), 60_000);
      this.logTimer.unref();
      return this.status();
    } catch (e) {
      this.state = 'failed';
      await this.killChild();
      throw e;
    }
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.logTimer) clearInterval(this.logTimer);
    this.logTimer = null;
    await this.hostsChain.catch(() => {});
    await this.killChild();
    this.state = 'stopped';
  }

  /**
   * Brings the reservation files in line with `hosts`: writes new and changed
   * files, removes the others. Values are validated first; a bad one throws
   * and nothing is written. Calls are serialised.
   */
  updateHosts(hosts: HostReservation[]): Promise<HostsUpdate> {
    const run = this.hostsChain.catch(() => {}).then(() => this.applyHosts(hosts));
    this.hostsChain = run;
    return run;
  }

  // ------------------------------------------------------------------ files

  private resolveUser(): SystemUser | null {
    if (process.getuid?.() !== 0) return null;
    const name = this.opts.user ?? (lookupUser('dnsmasq') ? 'dnsmasq' : 'nobody');
    const u = lookupUser(name);
    if (!u) throw new FleetError('config.invalid', `dnsmasq user ${name} does not exist on this host`);
    return u;
  }

  private desiredHostFiles(hosts: HostReservation[]): { hosts: Map<string, string>; dns: Map<string, string> } {
    const s = this.opts.settings;
    const lines = reservationLines(hosts, { subnet: s.subnet, unknownRange: s.unknownRange });
    return {
      hosts: s.mode === 'authoritative' ? renderHostFiles(lines) : new Map(),
      dns: s.dnsServer && s.domain ? renderDnsHostFiles(lines, s.domain) : new Map(),
    };
  }

  private async writeFiles(): Promise<void> {
    const p = this.paths;
    const dropsPrivileges = this.user !== null && this.user.uid !== 0;
    await fs.mkdir(p.stateDir, { recursive: true, mode: 0o700 });
    // The dnsmasq user must traverse the state dir to re-read hosts/ (inotify) after dropping root; it cannot list it.
    const hostsInside = [p.hostsDir, p.dnsHostsDir].some((d) => path.resolve(d).startsWith(path.resolve(p.stateDir) + path.sep));
    await fs.chmod(p.stateDir, dropsPrivileges && hostsInside ? 0o711 : 0o700);
    await fs.mkdir(p.hostsDir, { recursive: true, mode: 0o755 });
    await fs.chmod(p.hostsDir, 0o755);
    if (this.opts.settings.dnsServer) {
      await fs.mkdir(p.dnsHostsDir, { recursive: true, mode: 0o755 });
      await fs.chmod(p.dnsHostsDir, 0o755);
    }
    if (this.opts.tftp?.prepare !== false) {
      this.tftpReport = await prepareTftpRoot({
        dir: p.tftpRoot,
        ...(this.opts.tftp?.sourceDir ? { sourceDir: this.opts.tftp.sourceDir } : {}),
        owner: dropsPrivileges ? { uid: this.user!.uid, gid: this.user!.gid } : null,
      });
      for (const w of this.tftpReport.warnings) this.log.warn({ tftpRoot: p.tftpRoot }, w);
    }
    if (dropsPrivileges) {
      const dirs = [p.hostsDir, p.tftpRoot, ...(this.opts.settings.dnsServer ? [p.dnsHostsDir] : [])];
      for (const d of dirs) {
        const why = await unreachableReason(d, this.user!);
        if (why) {
          throw new FleetError(
            'config.invalid',
            `dnsmasq runs as user ${this.user!.name} after start-up and cannot reach ${d}: ${why}. ` +
              'Let it traverse that directory (chmod o+x; files keep their own modes) or move the TFTP root / data directory',
            { dir: d, user: this.user!.name },
          );
        }
      }
    }
    if (this.opts.hookEnv) await writeHookScript(p.hookScript);

    const rendered = renderDnsmasqConfig(this.configInput());
    await writeFileAtomic(p.confFile, rendered.conf, { mode: 0o644 });
    this.currentHosts = await this.syncDir(p.hostsDir, rendered.hosts, null);
    this.currentDnsHosts = this.opts.settings.dnsServer ? await this.syncDir(p.dnsHostsDir, rendered.dnsHosts, null) : new Map();
  }

  /** Makes `dir` hold exactly `want` (dotfiles aside); `known`: what is there (null: read the directory). */
  private async syncDir(
    dir: string,
    want: Map<string, string>,
    known: Map<string, string> | null,
  ): Promise<Map<string, string>> {
    const have = new Map<string, string>();
    if (known) for (const [k, v] of known) have.set(k, v);
    else {
      for (const name of await fs.readdir(dir)) {
        if (name.startsWith('.')) {
          await fs.rm(path.join(dir, name), { force: true });
          continue;
        }
        have.set(name, await fs.readFile(path.join(dir, name), 'utf8').catch(() => ''));
      }
    }
    for (const [name, text] of want) if (have.get(name) !== text) await writeFileAtomic(path.join(dir, name), text, { mode: 0o644 });
    for (const name of have.keys()) if (!want.has(name)) await fs.rm(path.join(dir, name), { force: true });
    return new Map(want);
  }

  private async applyHosts(hosts: HostReservation[]): Promise<HostsUpdate> {
    const want = this.desiredHostFiles(hosts); // validates; throws before anything is written
    const result: HostsUpdate = { added: [], changed: [], removed: [], reloaded: false };
    const diff = (have: Map<string, string>, next: Map<string, string>) => {
      for (const [k, v] of next) {
        if (!have.has(k)) result.added.push(k);
        else if (have.get(k) !== v) result.changed.push(k);
      }
      for (const k of have.keys()) if (!next.has(k)) result.removed.push(k);
    };
    diff(this.currentHosts, want.hosts);
    diff(this.currentDnsHosts, want.dns);
    this.hosts = hosts;
    if (this.state === 'stopped' || this.state === 'failed') return result;
    this.currentHosts = await this.syncDir(this.paths.hostsDir, want.hosts, this.currentHosts);
    if (this.opts.settings.dnsServer) this.currentDnsHosts = await this.syncDir(this.paths.dnsHostsDir, want.dns, this.currentDnsHosts);
    if ((result.removed.length > 0 || result.changed.length > 0) && this.opts.reloadOnChange !== false) {
      const pid = this.child?.pid;
      if (pid !== undefined && this.child!.exitCode === null && this.child!.signalCode === null) {
        this.child!.kill('SIGHUP');
        result.reloaded = true;
      }
    }
    if (result.added.length + result.changed.length + result.removed.length > 0) {
      this.log.info(
        { added: result.added.length, changed: result.changed.length, removed: result.removed.length, reloaded: result.reloaded },
        'dnsmasq: reservations updated',
      );
    }
    return result;
  }

  // ------------------------------------------------------------------ process

  private command(extra: string[]): [string, string[]] {
    const argv = [...(this.opts.commandPrefix ?? []), this.binary!, ...extra];
    return [argv[0]!, argv.slice(1)];
  }

  private async testConfig(): Promise<void> {
    try {
      await execFileP(this.binary!, ['--test', `--conf-file=${this.paths.confFile}`], { timeout: 10_000 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      const words = (err.stderr ?? '').trim() || err.message;
      throw new FleetError('config.invalid', `dnsmasq refuses the generated configuration ${this.paths.confFile}: ${words}`, undefined, { cause: e });
    }
  }

  /** Stops a dnsmasq a previous run of this data dir left behind (the server died without stopping it). */
  private async killStale(): Promise<void> {
    const text = await fs.readFile(this.paths.pidFile, 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return;
    }
    if (!cmdline.split('\0').includes(`--conf-file=${this.paths.confFile}`)) return;
    this.log.warn({ pid }, 'dnsmasq: stopping the instance a previous run left behind');
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    for (let i = 0; i < 40 && alive(pid); i++) await sleep(50);
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      for (let i = 0; i < 40 && alive(pid); i++) await sleep(50);
    }
  }

  private async rotateLog(): Promise<void> {
    const max = this.opts.maxLogBytes ?? 16 * 1024 * 1024;
    const st = await fs.stat(this.paths.logFile).catch(() => null);
    if (!st || st.size <= max) return;
    // dnsmasq appends (O_APPEND), so copy + truncate keeps its descriptor valid.
    await fs.copyFile(this.paths.logFile, `${this.paths.logFile}.1`);
    await fs.truncate(this.paths.logFile, 0);
    this.logOffset = 0;
  }

  private async logSize(): Promise<number> {
    return (await fs.stat(this.paths.logFile).catch(() => null))?.size ?? 0;
  }

  /** dnsmasq's log since the current run began, last `n` lines. */
  private async logTail(n = 20): Promise<string[]> {
    let text = '';
    try {
      const fh = await fs.open(this.paths.logFile, 'r');
      try {
        const size = (await fh.stat()).size;
        const from = Math.max(this.logOffset, size - 64 * 1024);
        const buf = Buffer.alloc(Math.max(0, size - from));
        await fh.read(buf, 0, buf.length, from);
        text = buf.toString('utf8');
      } finally {
        await fh.close();
      }
    } catch {
      // no log
    }
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    return [...lines, ...this.outputTail].slice(-n);
  }

  private spawnChild(): ChildProcess {
    const [cmd, args] = this.command(['-k', `--conf-file=${this.paths.confFile}`]);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      LC_ALL: 'C',
      ...(this.opts.hookEnv ?? {}),
    };
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.outputTail.length = 0;
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.outputTail.push(line);
        if (this.outputTail.length > 20) this.outputTail.shift();
        this.log.warn({ pid: child.pid, line }, 'dnsmasq output');
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', (e) => this.log.error({ err: e.message }, 'dnsmasq: spawn failed'));
    child.on('exit', (code, signal) => void this.onExit(child, code, signal));
    this.child = child;
    this.childStartedAt = Date.now();
    this.emit('spawn', child.pid);
    return child;
  }

  private async spawnAndWait(): Promise<void> {
    this.logOffset = await this.logSize();
    const child = this.spawnChild();
    const timeout = this.opts.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const tail = await this.logTail();
        throw new FleetError('unavailable', `dnsmasq exited during start-up (${child.exitCode ?? child.signalCode}): ${tail.slice(-3).join(' | ')}`, {
          logTail: tail,
        });
      }
      const tail = await this.logTail(200);
      if (tail.some((l) => STARTED.test(l))) break;
      if (Date.now() > deadline) {
        throw new FleetError('unavailable', `dnsmasq did not report "started" within ${timeout} ms`, { logTail: tail.slice(-20) });
      }
      await sleep(25);
    }
    this.log.info({ pid: child.pid, conf: this.paths.confFile }, 'dnsmasq: started');
    this.emit('ready', child.pid);
  }

  private async onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (child !== this.child) return;
    const ranMs = Date.now() - this.childStartedAt;
    const info: DnsmasqExit = { code, signal, at: new Date().toISOString(), ranMs, logTail: [] };
    this.lastExit = info;
    this.child = null;
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
    info.logTail = await this.logTail();
    if (this.state !== 'running' && this.state !== 'backoff') {
      this.emit('exit', info, null);
      return;
    }
    const r = this.opts.restart ?? {};
    const initial = r.initialDelayMs ?? 500;
    const max = r.maxDelayMs ?? 30_000;
    if (ranMs >= (r.stableMs ?? 30_000)) this.consecutiveFailures = 0;
    const delay = exponentialDelay(this.consecutiveFailures, { initialMs: initial, maxMs: max });
    this.consecutiveFailures++;
    this.nextDelay = delay;
    this.state = 'backoff';
    this.log.error({ code, signal, ranMs, restartInMs: delay, logTail: info.logTail.slice(-5) }, 'dnsmasq exited; restarting');
    this.emit('exit', info, delay);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state !== 'backoff') return;
      this.restarts++;
      this.state = 'running';
      this.logOffset = 0;
      void this.logSize().then((size) => {
        if (this.state !== 'running' || this.child) return;
        this.logOffset = size;
        const child = this.spawnChild();
        this.emit('restart', { restarts: this.restarts, pid: child.pid });
      });
    }, delay);
  }

  private async killChild(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = null;
      return;
    }
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    child.kill('SIGTERM');
    const timeout = this.opts.stopTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeout);
    });
    const how = await Promise.race([exited.then(() => 'exited' as const), timedOut]);
    clearTimeout(timer);
    if (how === 'timeout') {
      this.log.warn({ pid: child.pid }, 'dnsmasq: no exit after SIGTERM; sending SIGKILL');
      child.kill('SIGKILL');
      await exited;
    }
  }
}

/**
 * fleet's NFS server for diskless roots: nfs-ganesha (Debian's
 * nfs-ganesha + nfs-ganesha-vfs, a user-space NFSv4 server: the machines
 * fleet runs on need no kernel nfsd) as a child process, the way dnsmasq is
 * supervised (docs/decisions/0020-nfs-ganesha.md).
 *
 * apply(exports): writes DATA/diskless/ganesha/ganesha.conf; starts ganesha
 *           when it is not running (stopping one a previous run of this data
 *           dir left behind: pid file + command line check) and waits for
 *           "NFS SERVER INITIALIZED" in its log; when it runs and the
 *           configuration changed, one SIGHUP (ganesha re-reads its exports:
 *           added, changed and removed ones, no restart, no grace period).
 *           A start-up failure is a FleetError with ganesha's own words.
 * running:  when ganesha dies it is restarted with exponential backoff;
 *           NFSv4 clients (hard mounts) wait and reclaim their state in the
 *           grace period (spec.ts), so a diskless node rides through it.
 * stop():   SIGTERM, then SIGKILL after 10 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { exponentialDelay } from '../../common/backoff.js';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { disklessRoot, type NfsExport, renderGaneshaConf } from './spec.js';

export interface GaneshaPaths {
  dir: string;
  conf: string;
  pid: string;
  log: string;
  recovery: string;
}

export function ganeshaPaths(dataDir: string): GaneshaPaths {
  const dir = path.join(disklessRoot(dataDir), 'ganesha');
  return { dir, conf: path.join(dir, 'ganesha.conf'), pid: path.join(dir, 'ganesha.pid'), log: path.join(dir, 'ganesha.log'), recovery: path.join(dir, 'recovery') };
}

/** Where Debian's nfs-ganesha-vfs puts the VFS back end ganesha loads. */
const FSAL_VFS = ['/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so', '/usr/lib/aarch64-linux-gnu/ganesha/libfsalvfs.so', '/usr/lib/ganesha/libfsalvfs.so', '/usr/lib64/ganesha/libfsalvfs.so'];

/** Why fleet cannot run its NFS server here, or null (the doctor and the supervisor say it the same way). */
export function ganeshaMissing(binary?: string): string | null {
  if (!findExecutable(binary ?? 'ganesha.nfsd')) return 'ganesha.nfsd is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)';
  if (!binary && !FSAL_VFS.some((f) => existsSync(f))) return "nfs-ganesha's VFS back end is not installed (apt-get install nfs-ganesha-vfs)";
  return null;
}

export interface GaneshaOptions {
  dataDir: string;
  /** The management address (IPv4) ganesha listens on. */
  bind: string;
  port?: number;
  binary?: string;
  log?: (level: 'info' | 'warn', msg: string) => void;
  /** Start-up wait. Default 30 s. */
  startTimeoutMs?: number;
}

export class GaneshaSupervisor {
  readonly paths: GaneshaPaths;
  private child: ChildProcess | null = null;
  private conf = '';
  private stopping = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;

  constructor(private readonly o: GaneshaOptions) {
    this.paths = ganeshaPaths(o.dataDir);
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Serves exactly `exports` (see the module comment). */
  async apply(exports: readonly NfsExport[]): Promise<{ started: boolean; reloaded: boolean }> {
    const conf = renderGaneshaConf({ bind: this.o.bind, ...(this.o.port ? { port: this.o.port } : {}), recoveryDir: this.paths.recovery, exports });
    this.stopping = false;
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      if (conf === this.conf) return { started: false, reloaded: false };
      await writeFileAtomic(this.paths.conf, conf, { mode: 0o600 });
      this.conf = conf;
      this.child.kill('SIGHUP');
      this.o.log?.('info', `nfs: ganesha (pid ${this.child.pid}) re-reads its exports (${exports.length})`);
      return { started: false, reloaded: true };
    }
    await fs.mkdir(this.paths.recovery, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.paths.conf, conf, { mode: 0o600 });
    this.conf = conf;
    await this.start();
    return { started: true, reloaded: false };
  }

  private async stopLeftover(): Promise<void> {
    let pid = 0;
    try {
      pid = Number(readFileSync(this.paths.pid, 'utf8').trim());
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 1) return;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return;
    }
    if (!cmdline.split('\0').includes(this.paths.conf)) return;
    this.o.log?.('warn', `nfs: stopping ganesha pid ${pid} left by a previous run of this data dir`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
    if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  }

  private async start(): Promise<void> {
    const why = ganeshaMissing(this.o.binary);
    if (why) throw new FleetError('unavailable', `cannot serve diskless roots: ${why}`);
    await this.stopLeftover();
    const logStart = existsSync(this.paths.log) ? (await fs.stat(this.paths.log)).size : 0;
    const exe = findExecutable(this.o.binary ?? 'ganesha.nfsd')!;
    const child = spawn(exe, ['-F', '-L', this.paths.log, '-f', this.paths.conf, '-p', this.paths.pid, '-N', 'NIV_EVENT'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    child.once('exit', (code, signal) => this.exited(child, code, signal));
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 30_000);
    const logSince = async (): Promise<string> => {
      try {
        const fh = await fs.open(this.paths.log, 'r');
        try {
          const size = (await fh.stat()).size;
          const buf = Buffer.alloc(Math.max(0, size - logStart));
          await fh.read(buf, 0, buf.length, logStart);
          return buf.toString('utf8');
        } finally {
          await fh.close();
        }
      } catch {
        return '';
      }
    };
    for (;;) {
      const text = await logSince();
      if (text.includes('NFS SERVER INITIALIZED')) break;
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const words = text.split('\n').filter((l) => / :(CRIT|FATAL|MAJ) :/.test(l) && !/DBUS|krb5|keytab|gssd|RADOS/i.test(l)).map((l) => l.replace(/^.*?\] /, '')).slice(-4);
        if (child.exitCode === null) child.kill('SIGKILL');
        this.child = null;
        throw new FleetError('unavailable', `fleet's NFS server (ganesha) did not start${child.exitCode !== null ? ` (exit ${child.exitCode})` : ' in time'}: ${[...words, stderr.trim()].filter((s) => s).join(' | ') || `see ${this.paths.log}`}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.o.log?.('info', `nfs: ganesha (pid ${child.pid}) serves NFSv4 on ${this.o.bind}:${this.o.port ?? 2049}; log ${this.paths.log}`);
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.stopping) return;
    if (Date.now() - this.startedAt > 60_000) this.failures = 0;
    this.scheduleRestart(`ganesha exited (${signal ?? `code ${code}`})`);
  }

  private scheduleRestart(why: string): void {
    const delay = exponentialDelay(this.failures++, { initialMs: 500, maxMs: 30_000 });
    this.o.log?.('warn', `nfs: ${why}; restarting in ${delay} ms (diskless nodes wait and reclaim their state)`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.start().catch((e: Error) => {
        if (!this.stopping && !this.child) this.scheduleRestart(e.message);
      });
    }, delay);
    this.restartTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
}

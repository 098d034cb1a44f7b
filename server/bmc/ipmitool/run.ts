/**
 * Runs one ipmitool process: argv only (no shell), the password only in the
 * IPMI_PASSWORD environment variable, a hard timeout that SIGKILLs the whole
 * process group (a wrapper script's children included) and settles at once
 * instead of waiting for pipes a stray grandchild may hold open.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { FleetError } from '../../../common/errors.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** For error messages: "chassis power status on 10.0.0.5:623". */
  what: string;
  /** Cap on captured output per stream. */
  maxOutput?: number;
}

/** Live children, so a driver can kill them on close(). */
export class ProcessGroup {
  private readonly live = new Set<ChildProcess>();

  run(file: string, args: string[], o: RunOptions): Promise<RunResult> {
    return new Promise<RunResult>((resolve, reject) => {
      const max = o.maxOutput ?? 1 << 20;
      let stdout = '';
      let stderr = '';
      let settled = false;
      let child: ChildProcess;
      try {
        child = spawn(file, args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      } catch (e) {
        reject(new FleetError('bmc.unsupported', `ipmitool cannot be started (${file}): ${e instanceof Error ? e.message : String(e)}`));
        return;
      }
      this.live.add(child);
      const done = (err: FleetError | null, result?: RunResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.live.delete(child);
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (err) reject(err);
        else resolve(result!);
      };
      const timer = setTimeout(() => {
        killGroup(child);
        done(new FleetError('bmc.timeout', `ipmitool ${o.what}: no result within ${o.timeoutMs} ms (killed)`));
      }, o.timeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        if (stdout.length < max) stdout += d;
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < max) stderr += d;
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        const code = e.code === 'ENOENT' || e.code === 'EACCES' ? 'bmc.unsupported' : 'internal';
        done(new FleetError(code, `ipmitool cannot be started (${file}): ${e.code ?? e.message}`));
      });
      // Settle on 'close' (all output read); but a grandchild holding the pipes
      // open must not delay the result: after 'exit', wait at most 250 ms.
      child.on('close', (code, signal) => done(null, { code, signal, stdout, stderr }));
      child.on('exit', (code, signal) => {
        setTimeout(() => done(null, { code, signal, stdout, stderr }), 250).unref();
      });
    });
  }

  /** SIGKILLs every live child (and its process group). */
  killAll(): void {
    for (const c of this.live) killGroup(c);
    this.live.clear();
  }

  get size(): number {
    return this.live.size;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

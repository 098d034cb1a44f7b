/**
 * Runs one ipmitool process through common/spawn.ts: argv only (no shell),
 * the password only in the IPMI_PASSWORD environment variable (never in argv
 * nor in any message here), a hard timeout that SIGKILLs the whole process
 * group (a wrapper script's children included) and settles at once instead
 * of waiting for pipes a stray grandchild may hold open.
 */
import { FleetError } from '../../../common/errors.js';
import { runProcess } from '../../../common/spawn.js';

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
  /** Cap on captured output per stream (bytes). */
  maxOutput?: number;
}

/** After the process exits, how long its pipes may stay open (a grandchild holding them). */
const SETTLE_AFTER_EXIT_MS = 250;

/** Live children, so a driver can kill them on close(). */
export class ProcessGroup {
  private readonly live = new Set<AbortController>();

  async run(file: string, args: string[], o: RunOptions): Promise<RunResult> {
    const stop = new AbortController();
    this.live.add(stop);
    let r;
    try {
      r = await runProcess(file, args, {
        env: o.env,
        timeoutMs: o.timeoutMs,
        maxOutputBytes: o.maxOutput ?? 1 << 20,
        signal: stop.signal,
        settleAfterKillMs: 0,
        settleAfterExitMs: SETTLE_AFTER_EXIT_MS,
      });
    } finally {
      this.live.delete(stop);
    }
    if (r.error) {
      const e = r.error;
      const code = e.code === 'ENOENT' || e.code === 'EACCES' ? 'bmc.unsupported' : 'internal';
      throw new FleetError(code, `ipmitool cannot be started (${file}): ${e.code ?? e.message}`);
    }
    if (r.timedOut) throw new FleetError('bmc.timeout', `ipmitool ${o.what}: no result within ${o.timeoutMs} ms (killed)`);
    // killAll(): the group was SIGKILLed and the result settled without waiting for the exit.
    const signal = r.aborted ? (r.signal ?? 'SIGKILL') : r.signal;
    return { code: r.code, signal, stdout: r.stdout, stderr: r.stderr };
  }

  /** SIGKILLs every live child (and its process group). */
  killAll(): void {
    for (const c of this.live) c.abort();
    this.live.clear();
  }

  get size(): number {
    return this.live.size;
  }
}

/**
 * The one process runner: the agent's commands, the lab's helpers and the
 * ipmitool driver all start processes through `runProcess`.
 *
 * - an argv (program + arguments) given to `spawn`, never a shell string;
 * - the child leads its own process group (`detached`), so a stop reaches
 *   what it forked too (a wrapper script's children, dnf's helpers);
 * - a hard timeout and an optional AbortSignal, either of which stops the
 *   group: SIGKILL at once, or SIGTERM first and SIGKILL `killGraceMs` later;
 * - stdin is /dev/null, or a pipe carrying `input` and then closed;
 * - stdout and stderr captured apart, each capped at `maxOutputBytes`
 *   (what passes the cap is dropped and `truncated` is set);
 * - bounded waits for the pipes: a grandchild that left the group (or one
 *   still running after its parent exited) may hold them open, and must not
 *   hold the result longer than the caller allows.
 *
 * It never rejects and never logs: a program that cannot be started is a
 * result with `error`. Nothing of `env` (where callers put secrets, e.g.
 * IPMI_PASSWORD) is ever copied into the result. Callers map the result to
 * their own codes and errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** Default wait for the pipes to close once the group has been killed. */
export const DEFAULT_SETTLE_AFTER_KILL_MS = 1000;

export interface SpawnOptions {
  /** Hard limit from the start; when it passes the process group is stopped and `timedOut` set. */
  timeoutMs: number;
  /** The child's whole environment (not merged over anything); default process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Cap per stream (stdout, stderr) in bytes; default 1 MiB. */
  maxOutputBytes?: number;
  /** Stops the process group when aborted and sets `aborted`; an already aborted signal starts nothing. */
  signal?: AbortSignal;
  /** Stopping sends SIGTERM to the group and SIGKILL this many ms later; 0 (default): SIGKILL at once. */
  killGraceMs?: number;
  /** Once the group is stopped, settle when the pipes close or after this many ms (0: at once). Default 1000. */
  settleAfterKillMs?: number;
  /** Once the process has exited, settle when the pipes close or after this many ms. Default: wait (the timeout still applies). */
  settleAfterExitMs?: number;
}

export interface SpawnResult {
  /** Exit status; null when a signal ended the process, when it had not exited when the result settled, or when it never started. */
  code: number | null;
  /** The signal that ended the process, if one did (and was seen before the result settled). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The timeout passed and the group was stopped. */
  timedOut: boolean;
  /** The AbortSignal fired (before or during the run) and the group was stopped (or nothing was started). */
  aborted: boolean;
  /** stdout or stderr passed maxOutputBytes and was cut. */
  truncated: boolean;
  /** Why the program could not be started (e.g. ENOENT, EACCES); code and signal are then null. */
  error?: NodeJS.ErrnoException;
}

/** Runs one command; see the module comment. Never rejects. */
export function runProcess(file: string, args: readonly string[], opts: SpawnOptions): Promise<SpawnResult> {
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const empty = { code: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, truncated: false };
  if (opts.signal?.aborted) return Promise.resolve({ ...empty, aborted: true });
  return new Promise<SpawnResult>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true, // own process group, so the group can be killed
        shell: false,
        windowsHide: true,
      });
    } catch (e) {
      resolve({ ...empty, error: e as NodeJS.ErrnoException });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let truncated = false;
    let timedOut = false;
    let aborted = false;
    let stopping = false;
    let settled = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let settleTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const take = (chunks: Buffer[], len: number, b: Buffer): number => {
      if (len >= max) {
        if (b.length > 0) truncated = true;
        return len;
      }
      const room = max - len;
      if (b.length > room) {
        truncated = true;
        b = b.subarray(0, room);
      }
      chunks.push(b);
      return len + b.length;
    };
    child.stdout!.on('data', (b: Buffer) => (outLen = take(out, outLen, b)));
    child.stderr!.on('data', (b: Buffer) => (errLen = take(err, errLen, b)));

    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(settleTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({
        code: spawnError ? null : exitCode,
        signal: spawnError ? null : exitSignal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        aborted,
        truncated,
        ...(spawnError ? { error: spawnError } : {}),
      });
    };
    /** Settles when the pipes close, or after `ms` at most (0: now). */
    const settleWithin = (ms: number): void => {
      if (settled) return;
      if (ms <= 0) return finish();
      clearTimeout(settleTimer);
      settleTimer = setTimeout(finish, ms);
      settleTimer.unref();
    };

    const stop = (why: 'timeout' | 'abort'): void => {
      if (settled || stopping) return;
      stopping = true;
      if (why === 'timeout') timedOut = true;
      else aborted = true;
      const grace = opts.killGraceMs ?? 0;
      if (grace > 0) {
        signalGroup(child, 'SIGTERM');
        // Not cleared when the result settles: what ignores SIGTERM is still killed.
        killTimer = setTimeout(() => {
          signalGroup(child, 'SIGKILL');
          settleWithin(opts.settleAfterKillMs ?? DEFAULT_SETTLE_AFTER_KILL_MS);
        }, grace);
        killTimer.unref();
      } else {
        signalGroup(child, 'SIGKILL');
        settleWithin(opts.settleAfterKillMs ?? DEFAULT_SETTLE_AFTER_KILL_MS);
      }
    };
    const timer = setTimeout(() => stop('timeout'), Math.max(0, opts.timeoutMs));
    const onAbort = (): void => stop('abort');
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.on('error', (e: NodeJS.ErrnoException) => {
      // 'error' without a pid: the program never started, and 'close' may not follow.
      spawnError ??= e;
      if (child.pid === undefined) finish();
    });
    child.on('exit', (c, s) => {
      exitCode = c;
      exitSignal = s;
      if (opts.settleAfterExitMs !== undefined && !stopping) settleWithin(opts.settleAfterExitMs);
    });
    child.on('close', (c, s) => {
      if (exitCode === null && exitSignal === null) {
        exitCode = c;
        exitSignal = s;
      }
      finish();
    });

    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        /* EPIPE: the command did not read all its input; its exit status tells the rest */
      });
      child.stdin.end(opts.input);
    }
  });
}

/** Signals the child's process group; the child alone when the group is gone. */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

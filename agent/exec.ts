/**
 * Running external commands from the agent.
 *
 * Every command is an argv (program + arguments) given to `spawn` — never a
 * shell string — so no value from the server can be interpreted by a shell.
 * The child gets its own process group; on timeout (or abort) the whole group
 * is killed, so helpers that fork (dnf, nvidia-smi) do not outlive the limit.
 * Captured output is capped so a chatty command cannot exhaust memory.
 *
 * Code that runs commands takes a `Runner`, so tests can substitute a
 * `RecordingRunner` that records the exact argv and answers from a script.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

export interface RunOptions {
  /** Hard limit; the process group is killed when it passes. */
  timeoutMs: number;
  /** Extra environment, merged over the agent's own. */
  env?: Record<string, string>;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  cwd?: string;
  /** Per stream (stdout, stderr); default 1 MiB. */
  maxOutputBytes?: number;
  /** Kills the process group when aborted (reported like a timeout). */
  signal?: AbortSignal;
}

export interface RunResult {
  /**
   * Exit status. A process killed by a signal reads 128 + signal number (as a
   * shell would); a program that could not be started reads 127 (not found)
   * or 126 (not executable), with `error` saying why.
   */
  code: number;
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** True when stdout or stderr was cut at maxOutputBytes. */
  truncated: boolean;
  /** Why the program could not be started (e.g. "spawn nvidia-smi ENOENT"). */
  error?: string;
}

export interface Runner {
  run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult>;
}

/** Grace between noticing the timeout and giving up on the pipes closing. */
const CLOSE_GRACE_MS = 1000;

/** Runs one command: spawn (no shell), own process group, timeout, capped output. Never rejects. */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  return new Promise<RunResult>((resolve) => {
    let child;
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true, // own process group, so the group can be killed
        shell: false,
        windowsHide: true,
      });
    } catch (e) {
      resolve({ code: 127, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false, error: (e as Error).message });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let truncated = false;
    let timedOut = false;
    let settled = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;

    const take = (chunks: Buffer[], len: number, b: Buffer): number => {
      if (len >= max) {
        truncated = true;
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

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    };
    let graceTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (settled || timedOut) return;
      timedOut = true;
      killGroup();
      // A grandchild that left the group may keep the pipes open: do not wait for it forever.
      graceTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, CLOSE_GRACE_MS);
      graceTimer.unref();
    };
    const timer = setTimeout(stop, Math.max(0, opts.timeoutMs));
    const onAbort = (): void => stop();
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(stop);
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }

    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      let code: number;
      let error: string | undefined;
      if (spawnError) {
        code = spawnError.code === 'EACCES' ? 126 : 127;
        error = spawnError.message;
      } else if (exitCode !== null) code = exitCode;
      else if (exitSignal) code = 128 + (osConstants.signals[exitSignal] ?? 0);
      else code = timedOut ? 128 + osConstants.signals.SIGKILL : 1;
      resolve({
        code,
        signal: exitSignal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        truncated,
        ...(error !== undefined ? { error } : {}),
      });
    };

    child.on('error', (e: NodeJS.ErrnoException) => {
      // 'error' without a pid: the program never started; 'close' may not follow.
      spawnError ??= e;
      if (child.pid === undefined) finish();
    });
    child.on('exit', (c, s) => {
      exitCode = c;
      exitSignal = s;
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

/** The real runner. */
export const systemRunner: Runner = { run };

/** Formats an argv for logs and messages (display only; never executed). */
export function formatArgv(cmd: string, args: string[]): string {
  return [cmd, ...args].map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** A short reason for a failed command, for role messages. */
export function describeFailure(cmd: string, args: string[], r: RunResult): string {
  const what = formatArgv(cmd, args);
  if (r.error) return `${what}: ${r.error}`;
  if (r.timedOut) return `${what}: timed out`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ');
  return `${what}: exit ${r.code}${tail ? `: ${tail.slice(0, 400)}` : ''}`;
}

export interface RecordedCall {
  cmd: string;
  args: string[];
  opts: RunOptions;
}

export type ScriptedAnswer = Partial<RunResult> | undefined;

/**
 * A Runner for tests: records every call (exact argv) and answers from a
 * function (default: exit 0, empty output). With `passThrough`, calls the
 * answer function does not handle run for real (for harmless commands like
 * `true`).
 */
export class RecordingRunner implements Runner {
  readonly calls: RecordedCall[] = [];

  constructor(
    private readonly answer: (cmd: string, args: string[]) => ScriptedAnswer = () => undefined,
    private readonly passThrough = false,
  ) {}

  /** The recorded calls as argv arrays. */
  get argvs(): string[][] {
    return this.calls.map((c) => [c.cmd, ...c.args]);
  }

  clear(): void {
    this.calls.length = 0;
  }

  async run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
    this.calls.push({ cmd, args: [...args], opts });
    const a = this.answer(cmd, args);
    if (a === undefined && this.passThrough) return run(cmd, args, opts);
    return { code: 0, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false, ...a };
  }
}

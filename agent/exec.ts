/**
 * Running external commands from the agent.
 *
 * Every command runs through common/spawn.ts: an argv (program + arguments),
 * never a shell string, so no value from the server can be interpreted by a
 * shell. The child gets its own process group; on timeout (or abort) the
 * whole group is killed, so helpers that fork (dnf, nvidia-smi) do not
 * outlive the limit. Captured output is capped so a chatty command cannot
 * exhaust memory. This module maps the result to shell-like exit codes.
 *
 * Code that runs commands takes a `Runner`, so tests can substitute a
 * `RecordingRunner` that records the exact argv and answers from a script.
 */
import { constants as osConstants } from 'node:os';
import { DEFAULT_MAX_OUTPUT_BYTES, runProcess } from '../common/spawn.js';

export { DEFAULT_MAX_OUTPUT_BYTES };

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

/**
 * Runs one command through common/spawn: no shell, own process group killed
 * with SIGKILL at the timeout or abort, capped output; after the kill the
 * pipes get 1 s to close. Never rejects.
 */
export async function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const r = await runProcess(cmd, args, {
    timeoutMs: opts.timeoutMs,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const stopped = r.timedOut || r.aborted;
  let code: number;
  if (r.error) code = r.error.code === 'EACCES' ? 126 : 127;
  else if (r.code !== null) code = r.code;
  else if (r.signal) code = 128 + (osConstants.signals[r.signal] ?? 0);
  else code = stopped ? 128 + osConstants.signals.SIGKILL : 1;
  return {
    code,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    timedOut: stopped,
    truncated: r.truncated,
    ...(r.error ? { error: r.error.message } : {}),
  };
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

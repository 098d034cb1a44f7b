/**
 * Small process helpers for the lab: running commands (through
 * common/spawn.ts) with a hard timeout, checking and signalling PIDs (always
 * by PID, checked against /proc/PID/cmdline so that a reused PID is never
 * killed).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';

/** Like findExecutable, but a missing program is a FleetError('unavailable') naming the Debian package. */
export function requireExecutable(name: string, pkg: string): string {
  const p = findExecutable(name);
  if (!p) throw new FleetError('unavailable', `${name} is not installed (apt-get install ${pkg})`);
  return p;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  /** The child's whole environment; default process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
}

/** Cap on captured output per stream; a command that passes it fails (127). */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Runs a command through common/spawn.ts (no shell, own process group) with a
 * hard timeout that SIGKILLs the group. Never throws. A timeout is code 124;
 * a program that cannot be started, was ended by a signal or printed more
 * than 16 MiB is code 127.
 */
export async function run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const r = await runProcess(cmd, args, {
    timeoutMs: o.timeoutMs ?? 30_000,
    env: o.env ?? process.env,
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    ...(o.input !== undefined ? { input: o.input } : {}),
    maxOutputBytes: MAX_OUTPUT_BYTES,
  });
  const code = r.timedOut ? 124 : r.error || r.truncated || r.code === null ? 127 : r.code;
  return { code, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a command and throws FleetError('internal') naming it and its stderr when it fails. */
export async function runOk(cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new FleetError('internal', `${[cmd, ...args].join(' ')} failed (exit ${r.code}): ${tail}`);
  }
  return r.stdout;
}

/** The command line of a process, '' when it is gone. */
export function procCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Whether `pid` is alive (not a zombie) and its command line contains `mark`. */
export function pidMatches(pid: number, mark: string): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  const cmd = procCmdline(pid);
  if (!cmd.includes(mark)) return false;
  try {
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Reads a PID file; undefined when missing or malformed. */
export function readPidFile(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const n = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(n) && n > 1 ? n : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stops the process `pid` if its command line still contains `mark`: SIGTERM,
 * then SIGKILL after `graceMs`. Resolves once it is gone (or after a bounded wait).
 */
export async function killPid(pid: number | undefined, mark: string, graceMs = 2000): Promise<boolean> {
  if (pid === undefined || !pidMatches(pid, mark)) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const end = Date.now() + graceMs;
  while (Date.now() < end && pidMatches(pid, mark)) await sleep(25);
  if (pidMatches(pid, mark)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    for (let i = 0; i < 40 && pidMatches(pid, mark); i++) await sleep(25);
  }
  return true;
}

export { sleep };

export interface Reaper {
  /** Stops the reaper itself (call once the owner has cleaned up). */
  stop(): void;
}

/**
 * A detached shell that waits (at most `maxSeconds`) for process `ownerPid`
 * to end, then SIGKILLs every PID listed in `pidFiles` (one per line; a file
 * may be missing) whose command line contains `mark`, deletes `netns` and
 * removes `removeDir`.
 * For tests and foreground labs: a process killed by a signal runs no exit
 * handler, and nothing it started may outlive it.
 */
export function startReaper(o: { ownerPid?: number; pidFiles: string[]; mark: string; netns?: string; maxSeconds?: number; removeDir?: string }): Reaper {
  const script = [
    'owner="$1"; mark="$2"; netns="$3"; max="$4"; rmdir="$5"; shift 5',
    'i=0',
    'while [ "$i" -lt "$max" ] && kill -0 "$owner" 2>/dev/null; do sleep 1; i=$((i + 1)); done',
    'for f in "$@"; do',
    '  [ -f "$f" ] || continue',
    '  for pid in $(cat "$f"); do',
    '    case "$pid" in ""|*[!0-9]*) continue ;; esac',
    '    tr "\\0" " " < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark" && kill -9 "$pid" 2>/dev/null',
    '  done',
    'done',
    '[ -n "$netns" ] && ip netns del "$netns" 2>/dev/null',
    'sleep 1',
    '[ -n "$rmdir" ] && rm -rf -- "$rmdir"',
    'exit 0',
  ].join('\n');
  const child = spawn('/bin/sh', ['-c', script, 'fleet-lab-reaper', String(o.ownerPid ?? process.pid), o.mark, o.netns ?? '', String(o.maxSeconds ?? 900), o.removeDir ?? '', ...o.pidFiles], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return {
    stop() {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL'); // the shell and its sleep
      } catch {
        // gone
      }
    },
  };
}

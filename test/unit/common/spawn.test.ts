/**
 * common/spawn.ts: the one process runner, with real (harmless) processes.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_OUTPUT_BYTES, runProcess } from '../../../common/spawn.js';

/** Alive and not a zombie (a container's PID 1 may not reap orphans). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runProcess', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-spawn-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs an argv without a shell and reports the exit status', async () => {
    const evil = '$HOME; echo pwned `id`';
    const r = await runProcess('printf', ['%s|%s', evil, 'two words'], { timeoutMs: 5000 });
    expect(r).toEqual({ code: 0, signal: null, stdout: `${evil}|two words`, stderr: '', timedOut: false, aborted: false, truncated: false });
    expect((await runProcess('/bin/sh', ['-c', 'echo oops >&2; exit 3'], { timeoutMs: 5000 })).code).toBe(3);
    expect((await runProcess('/bin/sh', ['-c', 'echo oops >&2; exit 3'], { timeoutMs: 5000 })).stderr).toBe('oops\n');
  });

  it('feeds input on stdin; without input stdin is /dev/null', async () => {
    const r = await runProcess('cat', [], { timeoutMs: 5000, input: 'line 1\nline 2\n' });
    expect(r.stdout).toBe('line 1\nline 2\n');
    const b = await runProcess('cat', [], { timeoutMs: 5000, input: Buffer.from([0x61, 0x62]) });
    expect(b.stdout).toBe('ab');
    const none = await runProcess('cat', [], { timeoutMs: 5000 });
    expect(none).toMatchObject({ code: 0, stdout: '', timedOut: false });
  });

  it('uses env as the whole environment, and cwd', async () => {
    const r = await runProcess('/bin/sh', ['-c', 'printf "%s|%s" "$A" "${HOME-unset}"; pwd'], { timeoutMs: 5000, env: { A: 'v 1', PATH: '/usr/bin:/bin' }, cwd: dir });
    expect(r.stdout).toBe(`v 1|unset${realpathSync(dir)}\n`);
  });

  it('a timeout kills the whole process group, a grandchild included', async () => {
    const t0 = Date.now();
    // sh forks a grandchild (sleep), prints its pid, then waits for it.
    const r = await runProcess('/bin/sh', ['-c', 'sleep 5 & echo $!; wait'], { timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(r).toMatchObject({ timedOut: true, aborted: false, code: null, signal: 'SIGKILL' });
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    await pause(100);
    expect(alive(grandchild)).toBe(false);
  });

  it('settles within settleAfterKillMs when a process outside the group holds the pipes', async () => {
    // setsid puts the sleep in another session: the group kill cannot reach it, and it holds stdout.
    const t0 = Date.now();
    const r = await runProcess('/bin/sh', ['-c', 'setsid sleep 3 & echo $!; wait'], { timeoutMs: 200, settleAfterKillMs: 300 });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r.timedOut).toBe(true);
    const escaped = Number(r.stdout.trim());
    if (escaped > 0) process.kill(escaped, 'SIGKILL');
  });

  it('settleAfterExitMs: a background grandchild holding the pipes does not hold the result', async () => {
    const t0 = Date.now();
    const r = await runProcess('/bin/sh', ['-c', 'sleep 3 & echo started'], { timeoutMs: 5000, settleAfterExitMs: 100 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r).toMatchObject({ code: 0, stdout: 'started\n', timedOut: false });
  });

  it('killGraceMs: SIGTERM first; what ignores it gets SIGKILL after the grace', async () => {
    const polite = await runProcess('sleep', ['5'], { timeoutMs: 100, killGraceMs: 2000 });
    expect(polite).toMatchObject({ timedOut: true, signal: 'SIGTERM' });
    const t0 = Date.now();
    const stubborn = await runProcess('/bin/sh', ['-c', 'trap "" TERM; sleep 5 & wait; wait'], { timeoutMs: 100, killGraceMs: 400 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(stubborn).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
  });

  it('caps each stream at maxOutputBytes and flags the cut', async () => {
    const small = await runProcess('head', ['-c', '100000', '/dev/zero'], { timeoutMs: 5000, maxOutputBytes: 1000 });
    expect(small).toMatchObject({ code: 0, truncated: true });
    expect(small.stdout.length).toBe(1000);
    const exact = await runProcess('head', ['-c', '1000', '/dev/zero'], { timeoutMs: 5000, maxOutputBytes: 1000 });
    expect(exact.truncated).toBe(false);
    const big = await runProcess('head', ['-c', String(2 * DEFAULT_MAX_OUTPUT_BYTES), '/dev/zero'], { timeoutMs: 10_000 });
    expect(big.stdout.length).toBe(DEFAULT_MAX_OUTPUT_BYTES);
    expect(big.truncated).toBe(true);
  });

  it('an AbortSignal stops the group; an aborted one starts nothing', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const r = await runProcess('/bin/sh', ['-c', 'sleep 5 & echo $!; wait'], { timeoutMs: 30_000, signal: ac.signal });
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(r).toMatchObject({ aborted: true, timedOut: false });
    await pause(100);
    expect(alive(Number(r.stdout.trim()))).toBe(false);
    const marker = join(dir, 'ran');
    const before = await runProcess('/bin/sh', ['-c', `touch ${marker}`], { timeoutMs: 5000, signal: AbortSignal.abort() });
    expect(before).toMatchObject({ aborted: true, code: null });
    expect(existsSync(marker)).toBe(false);
  });

  it('a program that cannot be started is a result with the reason, never a rejection', async () => {
    const r = await runProcess('fleet-no-such-program-xyz', [], { timeoutMs: 5000 });
    expect(r).toMatchObject({ code: null, signal: null, timedOut: false });
    expect(r.error?.code).toBe('ENOENT');
    const plain = join(dir, 'not-executable');
    await writeFile(plain, '#!/bin/sh\n', { mode: 0o644 });
    const notExec = await runProcess(plain, [], { timeoutMs: 5000 });
    expect(notExec.error?.code).toBe('EACCES');
  });

  it('nothing of env appears in the result', async () => {
    const secret = 'Spawn-Secret-9931';
    const r = await runProcess('fleet-no-such-program-xyz', ['x'], { timeoutMs: 5000, env: { IPMI_PASSWORD: secret } });
    expect(JSON.stringify({ ...r, error: r.error?.message })).not.toContain(secret);
  });
});

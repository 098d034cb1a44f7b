/**
 * agent/exec.ts: the command wrapper the roles and inventory run through.
 * These run real, harmless programs (true, false, printf, cat, sleep, head).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_OUTPUT_BYTES, RecordingRunner, describeFailure, formatArgv, run } from '../../../agent/exec.js';

/** Running (a killed process not yet reaped by its new parent is a zombie: dead). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('run', () => {
  it('reports exit codes', async () => {
    expect((await run('true', [], { timeoutMs: 5000 })).code).toBe(0);
    const r = await run('false', [], { timeoutMs: 5000 });
    expect(r).toMatchObject({ code: 1, timedOut: false, truncated: false, signal: null });
  });

  it('passes arguments as argv, never through a shell', async () => {
    const evil = '$HOME; echo pwned `id` && rm -rf /nonexistent';
    const r = await run('printf', ['%s|%s', evil, 'two words'], { timeoutMs: 5000 });
    expect(r.stdout).toBe(`${evil}|two words`);
  });

  it('captures stdout and stderr apart, feeds input, uses cwd and env', async () => {
    const cat = await run('cat', [], { timeoutMs: 5000, input: 'line 1\nline 2\n' });
    expect(cat.stdout).toBe('line 1\nline 2\n');
    const ls = await run('ls', ['/nonexistent-fleet-path'], { timeoutMs: 5000 });
    expect(ls.code).not.toBe(0);
    expect(ls.stdout).toBe('');
    expect(ls.stderr).toMatch(/nonexistent-fleet-path/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-exec-'));
    try {
      expect((await run('pwd', [], { timeoutMs: 5000, cwd: dir })).stdout.trim()).toBe(fs.realpathSync(dir));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect((await run('printenv', ['FLEET_TEST_VAR'], { timeoutMs: 5000, env: { FLEET_TEST_VAR: 'v 1' } })).stdout).toBe('v 1\n');
  });

  it('reports a program that does not exist as 127 with the reason', async () => {
    const r = await run('fleet-no-such-program-xyz', ['a'], { timeoutMs: 5000 });
    expect(r.code).toBe(127);
    expect(r.error).toMatch(/ENOENT/);
    expect(describeFailure('fleet-no-such-program-xyz', ['a'], r)).toMatch(/^fleet-no-such-program-xyz a: .*ENOENT/);
  });

  it('kills the whole process group on timeout', async () => {
    const t0 = Date.now();
    // A child that forks a grandchild and prints its pid, then waits.
    const r = await run('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300 });
    const elapsed = Date.now() - t0;
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(137);
    expect(elapsed).toBeLessThan(3000);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    await new Promise((res) => setTimeout(res, 100));
    expect(alive(grandchild)).toBe(false);
  });

  it('stops on abort like on a timeout', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await run('sleep', ['30'], { timeoutMs: 30_000, signal: ac.signal });
    expect(r.timedOut).toBe(true);
  });

  it('caps captured output (default 1 MiB per stream)', async () => {
    const small = await run('head', ['-c', '100000', '/dev/zero'], { timeoutMs: 5000, maxOutputBytes: 1000 });
    expect(small.stdout.length).toBe(1000);
    expect(small.truncated).toBe(true);
    const big = await run('head', ['-c', String(3 * 1024 * 1024), '/dev/zero'], { timeoutMs: 10_000 });
    expect(big.stdout.length).toBe(DEFAULT_MAX_OUTPUT_BYTES);
    expect(big.truncated).toBe(true);
    expect(big.code).toBe(0);
  });
});

describe('RecordingRunner', () => {
  it('records exact argv and answers from its script', async () => {
    const r = new RecordingRunner((cmd, args) => (cmd === 'rpm' ? { code: 1, stdout: `package ${args[1]} is not installed\n` } : undefined));
    const a = await r.run('rpm', ['-q', 'foo'], { timeoutMs: 1 });
    const b = await r.run('systemctl', ['restart', 'chronyd'], { timeoutMs: 1 });
    expect(a).toMatchObject({ code: 1, stdout: 'package foo is not installed\n' });
    expect(b.code).toBe(0);
    expect(r.argvs).toEqual([
      ['rpm', '-q', 'foo'],
      ['systemctl', 'restart', 'chronyd'],
    ]);
  });

  it('can pass unscripted calls through to real commands', async () => {
    const r = new RecordingRunner(() => undefined, true);
    expect((await r.run('false', [], { timeoutMs: 5000 })).code).toBe(1);
    expect(r.argvs).toEqual([['false']]);
  });
});

describe('formatArgv', () => {
  it('quotes for display', () => {
    expect(formatArgv('grubby', ['--update-kernel=ALL', '--args=nomodeset modprobe.blacklist=nouveau'])).toBe("grubby --update-kernel=ALL '--args=nomodeset modprobe.blacklist=nouveau'");
  });
});

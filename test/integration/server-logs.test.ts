/**
 * One log format (issue 16 item 2): `fleet server` as a process writes JSON
 * lines on stdout and nothing on stderr — the start-up facts, the HTTP
 * faces' logs and the stop — with request logs only at debug, one line per
 * request, secrets in URLs masked. Node's own process warnings become log
 * lines too (logProcessWarnings, in process).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logProcessWarnings, serverLogger } from '../../server/http/logging.js';
import { startupLineLevel } from '../../server/cli/commands/server.js';
import { FLEET_BIN } from '../helpers/fleet-server.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Starts `fleet server` on loopback, makes `requests` once it listens, then SIGTERMs it. */
async function serverRun(dir: string, level: string, requests: (url: string) => Promise<void>): Promise<Run> {
  const child = spawn(
    process.execPath,
    [FLEET_BIN, 'server', '--config', join(ROOT, 'examples/seed-cluster.yaml'), '--data', join(dir, `data-${level}`), '--listen', '127.0.0.1:0', '--boot-listen', '127.0.0.1:0', '--log-level', level],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  // 'close', not 'exit': the last lines may still be in the pipes when the process has exited.
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  try {
    let url: string | undefined;
    for (const until = Date.now() + 30_000; !url; await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`fleet server did not start:\n${stdout}\n${stderr}`);
      url = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    }
    await requests(url);
    child.kill('SIGTERM');
    // Awaited before the output is read: the last lines arrive until the pipes close.
    const code = await exited;
    return { stdout, stderr, code };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function jsonLines(text: string): { level: number; msg: string; [k: string]: unknown }[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as { level: number; msg: string };
      } catch {
        throw new Error(`not a JSON log line: ${l}`);
      }
    });
}

describe('fleet server logs: one format', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-logs-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('at info: every line is JSON on stdout (start-up facts, warnings at warn, the stop), nothing on stderr, no request lines', async () => {
    const r = await serverRun(dir, 'info', async (url) => {
      expect((await fetch(`${url}/api/v1/nodes`)).status).toBe(401);
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = jsonLines(r.stdout);
    const msgs = lines.map((l) => l.msg);
    expect(msgs).toEqual(expect.arrayContaining([expect.stringMatching(/^data dir: .*\(SQLite .*fleet\.db\)$/), expect.stringMatching(/^HTTP API listening on http:\/\/127\.0\.0\.1:\d+/), 'fleet: SIGTERM received, stopping']));
    // The doctor's failed checks (the example's management address is not on this host) are warnings.
    const fails = lines.filter((l) => /^doctor: fail /.test(l.msg));
    expect(fails.length).toBeGreaterThan(0);
    for (const l of fails) expect(l.level).toBe(40);
    expect(lines.find((l) => l.msg.startsWith('data dir: '))!.level).toBe(30);
    expect(msgs.filter((m) => /request/.test(m))).toEqual([]);
  }, 60_000);

  it('at debug: one line per answered request, its token masked', async () => {
    const r = await serverRun(dir, 'debug', async (url) => {
      expect((await fetch(`${url}/api/v1/nodes?token=Sekrit-Token-123`)).status).toBe(401);
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const reqs = jsonLines(r.stdout).filter((l) => l.msg === 'request completed' || l.msg === 'incoming request');
    expect(reqs).toHaveLength(1);
    expect(reqs[0]).toMatchObject({ level: 20, msg: 'request completed', req: { method: 'GET', url: '/api/v1/nodes?token=***' }, res: { statusCode: 401 } });
    expect(r.stdout).not.toContain('Sekrit-Token-123');
  }, 60_000);

  it("Node's process warnings become warn lines of the log, not plain text; restored afterwards", async () => {
    let out = '';
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        out += c.toString();
        cb();
      },
    });
    const before = process.listeners('warning').length;
    const restore = logProcessWarnings(serverLogger('info', sink));
    try {
      process.emitWarning('the old way is deprecated', { type: 'DeprecationWarning', code: 'DEP9999' });
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      restore();
    }
    expect(jsonLines(out)).toEqual([expect.objectContaining({ level: 40, msg: 'the old way is deprecated', warning: 'DeprecationWarning', code: 'DEP9999' })]);
    expect(process.listeners('warning').length).toBe(before);
  });

  it('start-up facts: warnings and failed or doubtful checks at warn, the rest at info', () => {
    expect(startupLineLevel('warning: the admin API is served without TLS')).toBe('warn');
    expect(startupLineLevel('doctor: fail  boot-endpoint: ...')).toBe('warn');
    expect(startupLineLevel('doctor: warn  clock: unknown')).toBe('warn');
    expect(startupLineLevel('doctor: 9 ok, 1 warn, 2 fail; fleet reinstall refuses ...')).toBe('warn');
    expect(startupLineLevel('doctor: 9 ok, 1 warn, 0 fail')).toBe('info');
    expect(startupLineLevel('HTTP API listening on http://127.0.0.1:8080')).toBe('info');
  });
});

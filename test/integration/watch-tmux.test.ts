/**
 * Acceptance (issue 16): `fleet watch` in a real terminal (tmux) at 80 and
 * 200 columns, with failure reasons longer than a line, leaves no stale line
 * of an earlier frame on the screen; `fleet events -f` prints a new event
 * within a second of its being written.
 *
 * A real `fleet server` in-process on loopback (the seed cluster, boot
 * endpoints on loopback too), the built CLI (`bin/fleet.js`, dist/) in tmux
 * and as a child process. State changes are written through the server's
 * store, as the conductor writes them; the CLI sees them through the API's
 * event stream like any client.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S } from '../../server/lifecycle/states.js';
import { startServer, type RunningServer } from '../../server/serve.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FLEET_BIN = join(ROOT, 'bin/fleet.js');
const EXAMPLE = join(ROOT, 'examples/seed-cluster.yaml');
const run = promisify(execFile);

const haveDist = existsSync(join(ROOT, 'dist/server/cli/main.js'));
const haveTmux = await run('tmux', ['-V']).then(
  () => true,
  () => false,
);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A failure reason well past 200 columns once the row's other cells are added. */
function longReason(i: number): string {
  return `disk /dev/nvme${i}n1 was not found by the installer after 3 tries; the controller reported ${'link down on port 7, '.repeat(8)}check cabling and the RAID controller's firmware (try ${i})`;
}

describe.runIf(haveDist && haveTmux)('fleet watch in tmux, fleet events -f (built CLI against a real server)', () => {
  let dir: string;
  let server: RunningServer;
  const sessions: string[] = [];
  let follower: ChildProcess | undefined;
  /** A tmux server of this test's own (-S, its socket in the temp dir): the user's sessions are not touched. */
  const tmux = (...args: string[]): Promise<{ stdout: string }> => run('tmux', ['-S', join(dir, 'tmux.sock'), ...args]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-watch-'));
    server = await startServer({ configPath: EXAMPLE, dataDir: join(dir, 'data'), listen: '127.0.0.1:0', bootListen: '127.0.0.1:0', logLevel: 'warn', say: () => {} });
  });
  afterAll(async () => {
    for (const s of sessions) await tmux('kill-session', '-t', s).catch(() => {});
    await tmux('kill-server').catch(() => {});
    if (follower && follower.exitCode === null && follower.pid !== undefined) follower.kill('SIGTERM');
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (): string[] => [process.execPath, FLEET_BIN, '--url', server.url, '--token-file', server.tokenPath];
  const setState = (node: string, to: string, details?: unknown): Promise<unknown> => server.store.nodes.setState(node, to as never, { actor: 'test', ...(details !== undefined ? { details } : {}) });

  async function capture(session: string): Promise<string[]> {
    const { stdout } = await tmux('capture-pane', '-p', '-t', session);
    const lines = stdout.split('\n');
    while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
    return lines;
  }

  /**
   * The pane shows one frame and nothing else: the header is the first line,
   * the summary the last, once each, and every node once; any row of an
   * earlier frame left behind breaks one of these.
   */
  function checkOneFrame(lines: string[], nodes: string[], width: number): void {
    const text = lines.join('\n');
    expect(lines[0], text).toMatch(/^NODE\s+STATE\s+ELAPSED\s*$/);
    expect(lines.filter((l) => /^NODE\s+STATE\s+ELAPSED/.test(l)), text).toHaveLength(1);
    expect(lines[lines.length - 1], text).toMatch(/^\d+ nodes: \d+ ready, \d+ failed, \d+ in progress \(\S+\) \((watching; Ctrl-C stops watching, not the reinstall|Ctrl-C: stop watching)\)$/);
    expect(lines.filter((l) => l.includes('Ctrl-C')), text).toHaveLength(1);
    for (const n of nodes) expect(lines.filter((l) => l.startsWith(`${n} `)), `${n} once:\n${text}`).toHaveLength(1);
    for (const l of lines) expect(l.length, `shorter than the row, not wrapped: ${l}`).toBeLessThan(width);
  }

  async function waitFor(session: string, what: (lines: string[]) => boolean, label: string): Promise<string[]> {
    let lines: string[] = [];
    for (let i = 0; i < 50; i++) {
      lines = await capture(session);
      if (what(lines)) return lines;
      await sleep(100);
    }
    throw new Error(`${label}: not on the screen after 5 s:\n${lines.join('\n')}`);
  }

  for (const width of [80, 200]) {
    it(`redraws at ${width} columns with failure reasons longer than a line, leaving no stale line`, async () => {
      const nodes = ['valkyrie01', 'valkyrie02', 'valkyrie03', 'valkyrie04'];
      for (const n of nodes) await setState(n, S.installing);
      const session = `fleet-watch-test-${process.pid}-${width}`;
      sessions.push(session);
      const cmd = [...cli(), 'watch', 'valkyrie[01-04]'].map((a) => `'${a}'`).join(' ');
      // The shell stays after watch ends, so the last screen can still be read.
      await tmux('new-session', '-d', '-s', session, '-x', String(width), '-y', '40', `${cmd}; sleep 120`);
      await waitFor(session, (l) => l.some((x) => x.includes('Ctrl-C')), 'first frame');
      // Fail three nodes one by one with long reasons, and restart one: each change redraws (and the 500 ms timer redraws between).
      const steps: [string, string, unknown][] = [
        ['valkyrie01', S.failed, { step: 'install', reason: longReason(1) }],
        ['valkyrie02', S.failed, { step: 'install', reason: longReason(2) }],
        ['valkyrie01', S.installing, undefined],
        ['valkyrie03', S.failed, { step: 'firstboot', reason: longReason(3) }],
      ];
      let failedCount = 0;
      for (const [node, to, details] of steps) {
        await setState(node, to, details);
        failedCount += to === S.failed ? 1 : node === 'valkyrie01' ? -1 : 0;
        const want = `${failedCount} failed`;
        const lines = await waitFor(session, (l) => l.some((x) => x.includes(want) && x.includes('Ctrl-C')), `${node} ${to}`);
        await sleep(1200); // two timer redraws over the frame just drawn
        checkOneFrame(await capture(session), nodes, width);
        expect(lines.join('\n')).toContain(`${node} `);
      }
      const last = await capture(session);
      checkOneFrame(last, nodes, width);
      // The reason is cut to the row, visibly.
      expect(last.find((l) => l.startsWith('valkyrie03 '))).toMatch(/failed .*firstboot: disk \/dev\/nvme3n1.*…$/);
      await tmux('kill-session', '-t', session);
      for (const n of nodes) await setState(n, S.ready);
    }, 60_000);
  }

  it('fleet events -f prints an event within a second of its being written', async () => {
    const child = spawn(cli()[0]!, [...cli().slice(1), 'events', '-f', '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    follower = child;
    let out = '';
    let partial = '';
    /** When each `node:state` line was first printed (ms). */
    const seen = new Map<string, number>();
    child.stdout!.on('data', (b: Buffer) => {
      const t = Date.now();
      out += b.toString();
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        const m = /valkyrie0(\d)\s+state\.changed \S+ -> (\S+)/.exec(l);
        if (m && !seen.has(`${m[1]}:${m[2]}`)) seen.set(`${m[1]}:${m[2]}`, t);
      }
    });
    const until = async (key: string, ms: number): Promise<number | undefined> => {
      for (const deadline = Date.now() + ms; Date.now() < deadline && child.exitCode === null; ) {
        if (seen.has(key)) return seen.get(key);
        await sleep(10);
      }
      return seen.get(key);
    };
    try {
      // A first event shows that the stream is open (the history is printed before it is).
      await setState('valkyrie01', S.installing);
      expect(await until(`1:${S.installing}`, 10_000), `the follower printed:\n${out}`).toBeDefined();
      seen.clear(); // only what is printed from now on counts
      for (const [i, to] of [[2, S.installing], [1, S.ready], [2, S.ready]] as const) {
        const written = Date.now();
        await setState(`valkyrie0${i}`, to);
        const printed = await until(`${i}:${to}`, 5_000);
        expect(printed, `valkyrie0${i} -> ${to} never printed:\n${out}`).toBeDefined();
        expect(printed! - written, `valkyrie0${i} -> ${to}`).toBeLessThan(1000);
        await sleep(300); // not aligned with the server's poll
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
    expect(child.exitCode).toBe(0);
  }, 30_000);
});

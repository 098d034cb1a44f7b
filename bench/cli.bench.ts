/**
 * `npm run bench -- cli`: start-up time of the fleet CLI, the whole process
 * from spawn to exit, for the three commands an admin types most:
 * `fleet nodeset -e 'n[1-100]'` (offline), `fleet nodes` and `fleet status`
 * (one REST call each to a fleet server this bench starts on loopback with a
 * temporary data dir and examples/seed-cluster.yaml). For scale, in the same
 * rounds: clustershell's `nodeset -e` (Python) and `ipmitool -V` (C), a bare
 * `node -e ''` (the floor of any Node CLI), and importing the whole server,
 * which is what every fleet call cost before commands loaded lazily.
 *
 * Target: the fleet commands start in under 300 ms (median). The binary runs
 * from dist/, built first by this bench. Each run is bounded (30 s); rounds
 * interleave the commands so that the machine's load hits each alike.
 * Correctness is asserted, timings only reported.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../server/serve.js';
import { median, percentile, writeResult } from './table.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FLEET = join(ROOT, 'bin/fleet.js');
const ROUNDS = 20;
const RUN_TIMEOUT_MS = 30_000;
const TARGET_MS = 300;

interface Case {
  label: string;
  file: string;
  args: string[];
  /** Checks the output of each run. */
  check: (stdout: string) => void;
  fleet?: boolean;
}

function runOnce(c: Case): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(c.file, c.args, { timeout: RUN_TIMEOUT_MS, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      const ms = performance.now() - t0;
      if (err) return reject(new Error(`${c.label}: ${err.message}\n${stderr}`));
      c.check(stdout);
      resolve(ms);
    });
  });
}

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  // The binary runs the built JS: build it from these sources.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  dir = await mkdtemp(join(tmpdir(), 'fleet-bench-cli-'));
  server = await startServer({
    configPath: join(ROOT, 'examples/seed-cluster.yaml'),
    dataDir: join(dir, 'data'),
    listen: '127.0.0.1:0',
    // The example's management address is not on this host: boot endpoints on loopback too.
    bootListen: '127.0.0.1:0',
    logLevel: 'warn',
    say: () => {},
  });
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('CLI start-up: fleet nodeset, nodes, status against clustershell nodeset and ipmitool', async () => {
  const remote = ['--url', server.url, '--token-file', server.tokenPath];
  const hundred = (out: string) => expect(out.trim().split(/\s+/)).toHaveLength(100);
  const cases: Case[] = [
    { label: "fleet nodeset -e 'n[1-100]'", file: process.execPath, args: [FLEET, 'nodeset', '-e', 'n[1-100]'], check: hundred, fleet: true },
    { label: 'fleet nodes', file: process.execPath, args: [FLEET, ...remote, 'nodes'], check: (o) => expect(o).toMatch(/^NAME\s+PROFILE/), fleet: true },
    { label: 'fleet status', file: process.execPath, args: [FLEET, ...remote, 'status'], check: (o) => expect(o).toMatch(/^NAME\s+STATE/), fleet: true },
    { label: "clustershell nodeset -e 'n[1-100]'", file: 'nodeset', args: ['-e', 'n[1-100]'], check: hundred },
    { label: 'ipmitool -V', file: 'ipmitool', args: ['-V'], check: (o) => expect(o).toMatch(/^ipmitool version/) },
    { label: "node -e '' (bare Node start)", file: process.execPath, args: ['-e', ''], check: () => {} },
    {
      label: 'node importing the whole server (each fleet call before lazy loading)',
      file: process.execPath,
      args: ['-e', `import(${JSON.stringify(join(ROOT, 'dist/server/serve.js'))})`],
      check: () => {},
    },
  ];
  for (const c of cases) await runOnce(c); // warm the page cache; not counted
  const times = new Map<Case, number[]>(cases.map((c) => [c, []]));
  const loadBefore = loadavg()[0]!;
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of cases) times.get(c)!.push(await runOnce(c));
  }
  const loadAfter = loadavg()[0]!;
  const nodesetMedian = median(times.get(cases[3]!)!);
  const rows = cases.map((c) => {
    const t = times.get(c)!;
    const m = median(t);
    return [c.label, m.toFixed(0), percentile(t, 95).toFixed(0), Math.min(...t).toFixed(0), (m / nodesetMedian).toFixed(2) + '×', c.fleet ? (m < TARGET_MS ? 'met' : 'NOT met') : ''];
  });
  writeResult('cli', {
    title: 'CLI start-up: spawn to exit',
    headers: ['command', `median of ${ROUNDS} (ms)`, 'p95 (ms)', 'min (ms)', 'vs clustershell nodeset', `target < ${TARGET_MS} ms`],
    rows,
    notes: [
      `fleet nodes / fleet status: one REST call each to a fleet server on loopback (examples/seed-cluster.yaml, ${server.url.replace(/:\d+$/, ':PORT')}).`,
      `Rounds interleave the commands; 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (a shared machine: the floor is the bare Node start).`,
      'The target is for the median; the last row is what each fleet call cost before commands loaded their modules lazily.',
    ],
  });
});

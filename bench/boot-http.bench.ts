/**
 * `npm run bench -- boot-http`: the boot environment's two files (an 8 MiB
 * kernel and a 64 MiB initrd, DATA/bootenv/current/) served by fleet's boot
 * face (buildBootApp, GET /bootenv/vmlinuz and /bootenv/initrd.img, request
 * logging on as `fleet server` runs it) against nginx serving the same
 * directory in the same run. nginx is started here: a temp prefix and
 * config, loopback port, `daemon off`, sendfile on, two workers; it is a
 * child of this process and is stopped by its PID at the end.
 *
 * Load: wrk, 200 keep-alive connections on 2 threads, a Lua script that
 * alternates the two paths, rounds of ROUND_S seconds interleaved (fleet,
 * nginx, fleet, nginx, ...) after one uncounted warm-up of each. MB/s is
 * wrk's bytes read over its run time (a response still in flight when the
 * run ends counts its bytes received so far, alike for both servers). The
 * files are checked byte for byte through both servers before any timing.
 * Server CPU (user + system, from /proc) and peak RSS are sampled per round.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, createWriteStream, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildBootApp } from '../server/http/app.js';
import { FileCache } from '../server/http/static.js';
import { openStore, type Store } from '../server/store/index.js';
import { findExecutable } from '../common/executable.js';
import { median, writeResult } from './table.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROUND_S = Math.min(15, Number(process.env.BENCH_ROUND_S ?? 10));
const CONNECTIONS = 200;
const THREADS = 2;
const KERNEL_BYTES = 8 * 1024 * 1024;
const INITRD_BYTES = 64 * 1024 * 1024;
const NGINX = findExecutable('nginx');
const WRK = findExecutable('wrk');
const run = promisify(execFile);
const CLK_TCK = 100;

let dir: string;
let store: Store;
let app: FastifyInstance;
let fleetUrl: string;
let streamed: FastifyInstance;
let streamedUrl: string;
let nginx: ChildProcess | undefined;
let nginxUrl: string;
const sums = new Map<string, string>();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** GET url; resolves to status and the sha256 of the body. */
function fetchSum(url: string): Promise<{ status: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const h = createHash('sha256');
      res.on('data', (c: Buffer) => h.update(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha256: h.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The PIDs of `pid`'s children (nginx's workers). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** user + system CPU seconds and RSS (bytes) of the processes `pids`. */
function usage(pids: number[]): { cpuS: number; rss: number } {
  let ticks = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      rss += m ? Number(m[1]) * 1024 : 0;
    } catch {
      // gone
    }
  }
  return { cpuS: ticks / CLK_TCK, rss };
}

interface Round {
  mbps: number;
  gb: number;
  requests: number;
  errors: number;
  cpuS: number;
  peakRss: number;
}

/** One wrk run against `base`, with the server's CPU and peak RSS over it. */
async function wrkRound(base: string, seconds: number, pids: () => number[]): Promise<Round> {
  const lua = join(dir, 'alternate.lua');
  const before = usage(pids());
  let peakRss = before.rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, usage(pids()).rss)), 250);
  let stdout: string;
  try {
    ({ stdout } = await run(WRK!, ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '60s', '-s', lua, base], { maxBuffer: 1 << 20 }));
  } finally {
    clearInterval(sampler);
  }
  const after = usage(pids());
  peakRss = Math.max(peakRss, after.rss);
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const s = JSON.parse(line.slice(6)) as { bytes: number; duration_us: number; requests: number; errors: number; status: number };
  return {
    mbps: s.bytes / 1e6 / (s.duration_us / 1e6),
    gb: s.bytes / 1e9,
    requests: s.requests,
    errors: s.errors + s.status,
    cpuS: after.cpuS - before.cpuS,
    peakRss,
  };
}

beforeAll(async () => {
  if (!NGINX || !WRK) throw new Error('the boot-http benchmark needs nginx and wrk: sudo bash .ci/deps.sh');
  dir = mkdtempSync(join(tmpdir(), 'fleet-bench-http-'));
  // nginx's workers drop to an unprivileged user when started as root: they must reach the files.
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const env = join(data, 'bootenv', 'b1');
  mkdirSync(env, { recursive: true });
  for (const [name, size] of [
    ['vmlinuz', KERNEL_BYTES],
    ['initrd.img', INITRD_BYTES],
  ] as const) {
    // In 1 MiB pieces, so the bench process does not hold the files (its RSS is fleet's figure).
    const h = createHash('sha256');
    const fd = openSync(join(env, name), 'w');
    for (let off = 0; off < size; off += 2 ** 20) {
      const piece = randomBytes(Math.min(2 ** 20, size - off));
      writeSync(fd, piece);
      h.update(piece);
    }
    closeSync(fd);
    sums.set(name, h.digest('hex'));
  }
  symlinkSync('b1', join(data, 'bootenv', 'current'));
  writeFileSync(
    join(dir, 'alternate.lua'),
    [
      'local paths = { "/bootenv/vmlinuz", "/bootenv/initrd.img" }',
      'local n = 0',
      'request = function()',
      '  n = n + 1',
      '  return wrk.format("GET", paths[(n % 2) + 1])',
      'end',
      'done = function(summary, latency, requests)',
      '  local e = summary.errors',
      '  io.write(string.format("BENCH {\\"bytes\\":%d,\\"duration_us\\":%d,\\"requests\\":%d,\\"errors\\":%d,\\"status\\":%d}\\n",',
      '    summary.bytes, summary.duration, summary.requests, e.connect + e.read + e.write + e.timeout, e.status))',
      'end',
      '',
    ].join('\n'),
  );

  // fleet: the boot face as `fleet server` builds it, request logs to a file.
  store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  app = await buildBootApp({ store, serverUrl: 'http://127.0.0.1', dataDir: data, logLevel: 'info', logStream: createWriteStream(join(dir, 'fleet.log')) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  fleetUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // The same with a cache that holds nothing: every file streamed, as one over the per-file limit is.
  streamed = await buildBootApp({ store, serverUrl: 'http://127.0.0.1', dataDir: data, logLevel: 'info', logStream: createWriteStream(join(dir, 'streamed.log')), fileCache: new FileCache(0, 0) });
  await streamed.listen({ host: '127.0.0.1', port: 0 });
  streamedUrl = `http://127.0.0.1:${(streamed.server.address() as AddressInfo).port}`;

  // nginx: same directory, foreground, its own prefix; access log on, as fleet's request log is.
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'master_process on;',
      `worker_processes ${THREADS};`,
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'logs', 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${join(prefix, 'logs', 'access.log')};`,
      `  client_body_temp_path ${join(prefix, 'body')};`,
      `  proxy_temp_path ${join(prefix, 'proxy')};`,
      `  fastcgi_temp_path ${join(prefix, 'fastcgi')};`,
      `  uwsgi_temp_path ${join(prefix, 'uwsgi')};`,
      `  scgi_temp_path ${join(prefix, 'scgi')};`,
      '  sendfile on;',
      '  tcp_nopush on;',
      '  keepalive_requests 100000;',
      '  default_type application/octet-stream;',
      `  server { listen 127.0.0.1:${port}; location /bootenv/ { alias ${join(data, 'bootenv', 'current')}/; } }`,
      '}',
      '',
    ].join('\n'),
  );
  nginx = spawn(NGINX, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxErr = '';
  nginx.stderr!.on('data', (c: Buffer) => (nginxErr += c.toString()));
  nginxUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const st = (await fetchSum(`${nginxUrl}/bootenv/vmlinuz`)).status;
      if (st === 200) break;
      nginxErr += `GET /bootenv/vmlinuz: ${st}\n`;
    } catch {
      // not listening yet
    }
    if (i > 50 || nginx.exitCode !== null) throw new Error(`nginx did not start: ${nginxErr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  if (nginx?.pid !== undefined && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx!.once('exit', r));
    process.kill(nginx.pid, 'SIGTERM');
    await exited;
  }
  await app?.close();
  await streamed?.close();
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it(`boot files to ${CONNECTIONS} keep-alive clients: fleet's boot face vs nginx on the same files`, async () => {
  const fleetPids = (): number[] => [process.pid];
  const nginxPids = (): number[] => [nginx!.pid!, ...childrenOf(nginx!.pid!)];
  // Before any file is fetched (so fleet's figure does not count the held files yet).
  const startRss = { fleet: usage(fleetPids()).rss, nginx: usage(nginxPids()).rss };
  for (const base of [fleetUrl, streamedUrl, nginxUrl]) {
    for (const [name, sum] of sums) {
      const got = await fetchSum(`${base}/bootenv/${name}`);
      expect(got.status, `${base}/bootenv/${name}`).toBe(200);
      expect(got.sha256, `${base}/bootenv/${name}`).toBe(sum);
    }
  }
  // Warm-up, not counted (JIT, page cache, connection set-up).
  await wrkRound(fleetUrl, 3, fleetPids);
  await wrkRound(streamedUrl, 3, fleetPids);
  await wrkRound(nginxUrl, 3, nginxPids);
  const fleet: Round[] = [];
  const stream: Round[] = [];
  const ngx: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    fleet.push(await wrkRound(fleetUrl, ROUND_S, fleetPids));
    ngx.push(await wrkRound(nginxUrl, ROUND_S, nginxPids));
    stream.push(await wrkRound(streamedUrl, ROUND_S, fleetPids));
  }
  for (const x of [...fleet, ...stream, ...ngx]) expect(x.errors).toBe(0);

  const f = median(fleet.map((x) => x.mbps));
  const n = median(ngx.map((x) => x.mbps));
  const ratio = f / n;
  const mb = (xs: Round[]): string => xs.map((x) => x.mbps.toFixed(0)).join(', ');
  const cpuPerGb = (xs: Round[]): string => median(xs.map((x) => x.cpuS / x.gb)).toFixed(2);
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  const rss = (xs: Round[], start: number): string => `${mib(start)} / ${mib(Math.max(...xs.map((x) => x.peakRss)))}`;
  const row = (name: string, xs: Round[], m: number, start: number): (string | number)[] => [
    name,
    m.toFixed(0),
    mb(xs),
    (m / n).toFixed(2),
    xs.reduce((a, x) => a + x.requests, 0),
    cpuPerGb(xs),
    rss(xs, start),
  ];
  writeResult('boot-http', {
    title: `Boot HTTP: an 8 MiB kernel and a 64 MiB initrd to ${CONNECTIONS} keep-alive clients`,
    headers: ['server', 'median MB/s', 'rounds (MB/s)', 'ratio to nginx', 'responses', 'server CPU s per GB', 'server RSS before / peak (MiB)'],
    rows: [
      row('fleet boot face (GET /bootenv/*, fastify, request log on; files held in memory)', fleet, f, startRss.fleet),
      row('fleet, same route, nothing held (streamed in 64 KiB reads, as a file over the 128 MiB limit is)', stream, median(stream.map((x) => x.mbps)), startRss.fleet),
      row(`nginx ${nginxVersion()} (sendfile, ${THREADS} workers, access log on)`, ngx, n, startRss.nginx),
    ],
    notes: [
      `wrk -t${THREADS} -c${CONNECTIONS} -d${ROUND_S}s, a Lua script alternating the two paths; ${ROUNDS} rounds each, interleaved (held, nginx, streamed), after one 3 s warm-up of each; 0 errors in every round.`,
      'Both fleet rows are one process (two listeners): its RSS includes the 72 MiB held for the first row in the second.',
      'MB/s = bytes wrk read / its run time. CPU = user + system of the server process(es) over the round (/proc), per GB wrk read; RSS = VmRSS before the first file is fetched and its peak sampled every 250 ms (fleet: the whole bench process, vitest and the test files included; nginx: master + workers).',
      'wrk, nginx and fleet share the machine\'s cores (loopback); the machine was shared with other work while this ran, so take the ranges, not single figures.',
      `Ratio of each round to the nginx round run right after it: ${fleet.map((x, i) => (x.mbps / ngx[i]!.mbps).toFixed(2)).join(', ')} (held); ${stream.map((x, i) => (x.mbps / ngx[i]!.mbps).toFixed(2)).join(', ')} (streamed).`,
      `Target (issue 18): fleet ≥ 0.8 × nginx. Measured: ${ratio.toFixed(2)} × (medians).`,
    ],
  });
});

/** "1.22.1" from `nginx -v` (which prints to stderr). */
function nginxVersion(): string {
  const r = spawnSync(NGINX!, ['-v'], { encoding: 'utf8' });
  return /nginx\/([\d.]+)/.exec(`${r.stderr}${r.stdout}`)?.[1] ?? '';
}

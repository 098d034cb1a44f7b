/**
 * `npm run bench -- render` (issue 18 item 5): per-node iPXE scripts and
 * kickstarts rendered by fleet's boot face, tokens included, against nginx
 * serving the same bytes as static files in the same run.
 *
 * NODES nodes of the kickstart profile, each armed in pxe-armed (as a
 * reinstall leaves them), in a SQLite store in a temp dir (WAL, as `fleet
 * server` runs it). Each node's script is fetched once first: that issues
 * its install token; the script and the kickstart (fetched with that token)
 * are then written as static files for nginx under the same paths. Every
 * later fetch from fleet is rendered anew (decision, token lookup, template,
 * the boot.script_fetched / boot.kickstart_fetched event row) and must equal
 * those bytes; the bench checks it for a sample before timing.
 *
 * Load: wrk, CONNECTIONS keep-alive connections on 2 threads, a Lua script
 * walking the nodes (script, kickstart, next node, ...), rounds of ROUND_S
 * seconds interleaved (fleet, nginx, ...) after one uncounted warm-up of
 * each. The ratio is requests/s. The boot face's per-IP rate limit (120 per
 * minute by default: one machine never needs more) is raised for the bench,
 * which sends everything from 127.0.0.1; its plugin still runs per request.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildBootApp } from '../server/http/app.js';
import { openStore, type Store } from '../server/store/index.js';
import { findExecutable } from '../common/executable.js';
import { CA_FP, CLUSTER, PROFILES } from '../test/helpers/golden.js';
import { median, writeResult } from './table.js';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROUND_S = Math.min(15, Number(process.env.BENCH_ROUND_S ?? 8));
const CONNECTIONS = 64;
const THREADS = 2;
const NGINX = findExecutable('nginx');
const WRK = findExecutable('wrk');
const run = promisify(execFile);
const ACTOR = { actor: 'bench' };
const CLK_TCK = 100;

let dir: string;
let store: Store;
let app: FastifyInstance;
let fleetUrl: string;
let nginx: ChildProcess | undefined;
let nginxUrl: string;
const paths: string[] = [];
let bytesPerPair = 0;

const macOf = (i: number): string => `52:54:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
const nameOf = (i: number): string => `r${String(i + 1).padStart(5, '0')}`;

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

function childrenOf(pid: number): number[] {
  try {
    return spawnSync('cat', [`/proc/${pid}/task/${pid}/children`], { encoding: 'utf8' }).stdout.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** user + system CPU seconds of the processes `pids` (/proc). */
function cpuOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const r = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const f = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLK_TCK;
}

interface Round {
  rps: number;
  requests: number;
  errors: number;
  cpuS: number;
}

async function wrkRound(base: string, seconds: number, pids: () => number[]): Promise<Round> {
  const before = cpuOf(pids());
  const { stdout } = await run(WRK!, ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '30s', '-s', join(dir, 'walk.lua'), base], { maxBuffer: 1 << 20 });
  const after = cpuOf(pids());
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const s = JSON.parse(line.slice(6)) as { duration_us: number; requests: number; errors: number; status: number };
  return { rps: s.requests / (s.duration_us / 1e6), requests: s.requests, errors: s.errors + s.status, cpuS: after - before };
}

beforeAll(async () => {
  if (!NGINX || !WRK) throw new Error('the render benchmark needs nginx and wrk: sudo bash .ci/deps.sh');
  dir = mkdtempSync(join(tmpdir(), 'fleet-bench-render-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  store = await openStore({ file: join(data, 'fleet.db') }, { secretKey: randomBytes(32) });
  await store.profiles.upsert(PROFILES.compute, ACTOR);
  await store.settings.setCluster({ cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } } }, ACTOR);
  for (let i = 0; i < NODES; i++) {
    const name = nameOf(i);
    await store.nodes.upsert({ name, profile: 'compute', ip: `10.10.${10 + (i >> 8)}.${(i & 0xff) + 1}`, macs: [macOf(i)], pet: false }, ACTOR);
    await store.nodes.setState(name, 'pxe-armed', ACTOR);
    await store.nodes.setArmed(name, true, ACTOR);
  }
  app = await buildBootApp({
    store,
    serverUrl: 'http://10.10.0.1:8080',
    caFingerprint: CA_FP,
    dataDir: data,
    logLevel: 'info',
    logStream: createWriteStream(join(dir, 'fleet.log')),
    rateLimit: { max: 1e9, timeWindow: 60_000 },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  fleetUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  // Each node's script (its install token issued here) and its kickstart, as nginx's files.
  const www = join(dir, 'www');
  mkdirSync(join(www, 'boot'), { recursive: true });
  mkdirSync(join(www, 'kickstart'), { recursive: true });
  for (let i = 0; i < NODES; i++) {
    const hyp = macOf(i).replace(/:/g, '-');
    const script = await (await fetch(`${fleetUrl}/boot/${hyp}.ipxe`)).text();
    const ks = /\/kickstart\/([a-z0-9]+\.ks\?token=[A-Za-z0-9_-]+)/.exec(script);
    if (!ks) throw new Error(`no kickstart URL in ${nameOf(i)}'s script:\n${script}`);
    const res = await fetch(`${fleetUrl}/kickstart/${ks[1]}`);
    const kickstart = await res.text();
    expect(res.status, kickstart).toBe(200);
    writeFileSync(join(www, 'boot', `${hyp}.ipxe`), script);
    writeFileSync(join(www, 'kickstart', ks[1]!.split('?')[0]!), kickstart);
    paths.push(`/boot/${hyp}.ipxe`, `/kickstart/${ks[1]}`);
    if (i === 0) bytesPerPair = Buffer.byteLength(script) + Buffer.byteLength(kickstart);
  }
  writeFileSync(
    join(dir, 'walk.lua'),
    [
      `local paths = { ${paths.map((p) => JSON.stringify(p)).join(', ')} }`,
      'local n = 0',
      'request = function()',
      '  n = n + 1',
      '  return wrk.format("GET", paths[(n % #paths) + 1])',
      'end',
      'done = function(summary, latency, requests)',
      '  local e = summary.errors',
      '  io.write(string.format("BENCH {\\"duration_us\\":%d,\\"requests\\":%d,\\"errors\\":%d,\\"status\\":%d}\\n",',
      '    summary.duration, summary.requests, e.connect + e.read + e.write + e.timeout, e.status))',
      'end',
      '',
    ].join('\n'),
  );

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
      '  keepalive_requests 100000;',
      '  default_type text/plain;',
      `  server { listen 127.0.0.1:${port}; root ${www}; }`,
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
      if ((await fetch(`${nginxUrl}${paths[0]}`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 50 || nginx.exitCode !== null) throw new Error(`nginx did not start: ${nginxErr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 600_000);

afterAll(async () => {
  if (nginx?.pid !== undefined && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx!.once('exit', r));
    process.kill(nginx.pid, 'SIGTERM');
    await exited;
  }
  await app?.close();
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it(`per-node iPXE scripts and kickstarts (tokens included) for ${NODES} nodes: fleet renders vs nginx serves the same bytes`, async () => {
  // The same bytes from both, for a sample of nodes: fleet renders anew each time (same live token).
  for (const p of [...paths.slice(0, 6), ...paths.slice(-4)]) {
    const [a, b] = await Promise.all([fetch(`${fleetUrl}${p}`).then((r) => r.text()), fetch(`${nginxUrl}${p}`).then((r) => r.text())]);
    expect(a, p).toBe(b);
  }
  const fleetPids = (): number[] => [process.pid];
  const nginxPids = (): number[] => [nginx!.pid!, ...childrenOf(nginx!.pid!)];
  await wrkRound(fleetUrl, 3, fleetPids);
  await wrkRound(nginxUrl, 3, nginxPids);
  const fleet: Round[] = [];
  const ngx: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    fleet.push(await wrkRound(fleetUrl, ROUND_S, fleetPids));
    ngx.push(await wrkRound(nginxUrl, ROUND_S, nginxPids));
  }
  for (const x of [...fleet, ...ngx]) expect(x.errors).toBe(0);
  const f = median(fleet.map((x) => x.rps));
  const n = median(ngx.map((x) => x.rps));
  const us = (xs: Round[]): string => median(xs.map((x) => (x.cpuS / x.requests) * 1e6)).toFixed(0);
  writeResult('render', {
    title: `Renders: per-node iPXE scripts and kickstarts of ${NODES} armed nodes, tokens included`,
    headers: ['server', 'median requests/s', 'rounds (requests/s)', 'ratio to nginx', 'responses', 'server CPU µs per response'],
    rows: [
      ['fleet boot face (GET /boot/MAC.ipxe, /kickstart/NODE.ks?token=T: decision, token check, template, event row; request log on)', f.toFixed(0), fleet.map((x) => x.rps.toFixed(0)).join(', '), (f / n).toFixed(2), fleet.reduce((a, x) => a + x.requests, 0), us(fleet)],
      [`nginx ${nginxVersion()} (the same bytes as static files, ${THREADS} workers, access log on)`, n.toFixed(0), ngx.map((x) => x.rps.toFixed(0)).join(', '), '1.00', ngx.reduce((a, x) => a + x.requests, 0), us(ngx)],
    ],
    notes: [
      `wrk -t${THREADS} -c${CONNECTIONS} -d${ROUND_S}s walking the ${NODES} nodes (script, kickstart, next node); ${ROUNDS} rounds each, interleaved, after a 3 s warm-up of each; 0 errors in every round. A script and a kickstart are ${bytesPerPair} bytes together.`,
      'fleet: one Node.js process, SQLite in WAL mode in a file (as fleet server runs it); every response rendered anew and its event written (boot.script_fetched, boot.kickstart_fetched). The per-IP rate limit is raised for the bench (everything comes from 127.0.0.1); its plugin still runs per request.',
      'wrk, nginx and fleet share the machine\'s 2 cores (loopback): take the ranges, not single figures.',
      `Target (issue 18): fleet ≥ 0.5 × nginx. Measured: ${(f / n).toFixed(2)} × (medians).`,
    ],
  });
});

function nginxVersion(): string {
  const r = spawnSync(NGINX!, ['-v'], { encoding: 'utf8' });
  return /nginx\/([\d.]+)/.exec(`${r.stderr}${r.stdout}`)?.[1] ?? '';
}

/**
 * A real PostgreSQL 15 for tests: a temporary cluster (initdb + pg_ctl from
 * Debian's postgresql-15, run as an unprivileged user: `nobody` when the
 * tests run as root, else the current user), listening on a free loopback
 * port with its unix socket in its own temporary directory, password
 * (SCRAM) logins on both. Removed afterwards: pg_ctl stop, then the
 * directory. Started once per test run by postgres-global-setup.ts; each
 * test file creates its own databases in it (engines.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export const PG_BIN = process.env.FLEET_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** What the tests need to reach the cluster (handed to each test file by vitest's provide/inject). */
export interface PostgresCluster {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The cluster's directory (data, socket, log); removed by stop(). */
  dir: string;
}

/** Either a running cluster or why there is none (the tests fail with it under CI=true). */
export type ProvidedPostgres = { ok: true; cluster: PostgresCluster } | { ok: false; why: string };

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res, rej) => srv.once('error', rej).listen(0, '127.0.0.1', res));
  const addr = srv.address();
  await new Promise<void>((res) => srv.close(() => res()));
  if (!addr || typeof addr === 'string') throw new Error('no free port');
  return addr.port;
}

/** Runs a PostgreSQL program as the cluster's user (nobody under root: initdb refuses root). */
function asOwner(args: string[]): { file: string; args: string[] } {
  if (process.getuid?.() === 0) return { file: 'runuser', args: ['-u', 'nobody', '--', ...args] };
  return { file: args[0]!, args: args.slice(1) };
}

function run(args: string[], what: string): void {
  const c = asOwner(args);
  const r = spawnSync(c.file, c.args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim().slice(-2000)}`);
}

/** Why PostgreSQL cannot be started here, or null when it can be tried. */
export function postgresMissing(): string | null {
  for (const p of ['initdb', 'pg_ctl', 'postgres']) {
    if (!fs.existsSync(path.join(PG_BIN, p))) return `${path.join(PG_BIN, p)} not found: install Debian's postgresql-15 (apt-get install postgresql-15), as .ci/deps.sh does`;
  }
  return null;
}

export async function startPostgres(): Promise<PostgresCluster> {
  const missing = postgresMissing();
  if (missing) throw new Error(missing);
  // /tmp, not $TMPDIR: the cluster's user (nobody) must reach it.
  const dir = fs.mkdtempSync(path.join('/tmp', 'fleet-pg-'));
  const data = path.join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  const user = 'fleet';
  try {
    fs.writeFileSync(path.join(dir, 'pw'), `${password}\n`, { mode: 0o600 });
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'nobody:', dir]);
    run([path.join(PG_BIN, 'initdb'), '-D', data, '-U', user, `--pwfile=${path.join(dir, 'pw')}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '-N'], 'initdb');
    fs.rmSync(path.join(dir, 'pw'));
    const port = await freePort();
    // A throwaway cluster: durability off (fsync, full pages), more connections than one run's pools use.
    const opts = `-k ${dir} -h 127.0.0.1 -p ${port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
    run([path.join(PG_BIN, 'pg_ctl'), '-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '60', 'start'], 'pg_ctl start');
    return { host: '127.0.0.1', port, user, password, dir };
  } catch (e) {
    stopPostgres({ dir });
    throw e;
  }
}

/** Stops the cluster (pg_ctl, by its data directory's postmaster.pid) and removes its directory. */
export function stopPostgres(cluster: Pick<PostgresCluster, 'dir'>): void {
  const data = path.join(cluster.dir, 'data');
  if (fs.existsSync(path.join(data, 'postmaster.pid'))) {
    const c = asOwner([path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']);
    spawnSync(c.file, c.args, { encoding: 'utf8', timeout: 60_000 });
  }
  fs.rmSync(cluster.dir, { recursive: true, force: true });
}

/** postgres://USER@127.0.0.1:PORT/DB (the password goes beside it, never in it). */
export function clusterUrl(c: PostgresCluster, database: string): string {
  return `postgres://${c.user}@${c.host}:${c.port}/${database}`;
}

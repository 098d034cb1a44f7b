/**
 * A real `fleet server` on PostgreSQL (issue 15 item 1): the built binary
 * with `--store postgres://...` (password from PGPASSWORD) and, in process,
 * fleet.yaml's `store: {url, password_file}`, each against a fresh database of
 * the run's temporary PostgreSQL 15 (test/support/postgres-global-setup.ts):
 * it starts, migrates, applies fleet.yaml, serves `fleet status`, stops
 * cleanly, and a restart finds its nodes. No DATA/fleet.db is made, and the
 * password is in no output. Boot endpoints and gRPC on loopback (the
 * example's management address is not on this host).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { startServer } from '../../server/serve.js';
import { cliAgainst } from '../helpers/cli.js';
import { distMissing, FLEET_BIN, ROOT } from '../helpers/fleet-server.js';
import { clientConfig, createDatabase, postgresCluster } from '../unit/store/engines.js';

const EXAMPLE = join(ROOT, 'examples/seed-cluster.yaml');
const run = promisify(execFile);

const provided = inject('fleetPostgres');
// Outside CI a machine without PostgreSQL (or without dist/) skips; under CI=true a skip fails the run.
const missing = !provided?.ok ? `PostgreSQL is not available: ${provided?.ok === false ? provided.why : 'no cluster provided'}` : null;

async function nodeCount(database: string): Promise<number> {
  const c = new pg.Client(clientConfig(postgresCluster(), database));
  await c.connect();
  try {
    return Number((await c.query<{ n: string }>('select count(*) as n from nodes')).rows[0]!.n);
  } finally {
    await c.end();
  }
}

describe.skipIf(missing !== null && process.env.CI !== 'true')('fleet server on PostgreSQL', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-pgsrv-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(distMissing() !== null && process.env.CI !== 'true')('fleet server --store URL (password from PGPASSWORD) starts, migrates, applies and serves fleet status; stops on SIGTERM', async () => {
    expect(distMissing()).toBeNull();
    const db = await createDatabase('srv');
    const dataDir = join(dir, 'data');
    const args = ['server', '--config', EXAMPLE, '--data', dataDir, '--listen', '127.0.0.1:0', '--boot-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--store', db.url];
    const child = spawn(process.execPath, [FLEET_BIN, ...args], { env: { ...process.env, PGPASSWORD: db.password }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 25_000;
      let url: string | undefined;
      while (!(url = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1])) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`fleet server did not start (exit ${child.exitCode}):\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(out).toContain(`data dir: ${dataDir} (PostgreSQL ${db.url})`);
      const status = await run(process.execPath, [FLEET_BIN, '--url', url, '--token-file', join(dataDir, 'api.token'), 'status'], { cwd: dir, env: { ...process.env, FLEET_URL: '', FLEET_TOKEN: '' } });
      expect(status.stdout).toMatch(/valkyrie01/);
      expect(await nodeCount(db.database)).toBeGreaterThan(0);
      expect(fs.existsSync(join(dataDir, 'fleet.db'))).toBe(false);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);
    expect(out).not.toContain(db.password);
  });

  it("fleet.yaml's store: {url, password_file} is used; a restart on the same database finds its nodes and finds no changes to apply", async () => {
    const db = await createDatabase('srv');
    // fleet.yaml with the example's secrets beside it, plus store: (the password from a file, mode 0600).
    fs.cpSync(join(ROOT, 'examples/secrets'), join(dir, 'secrets'), { recursive: true });
    fs.writeFileSync(join(dir, 'pg.password'), `${db.password}\n`, { mode: 0o600 });
    fs.writeFileSync(join(dir, 'fleet.yaml'), `${fs.readFileSync(EXAMPLE, 'utf8')}\nstore:\n  url: ${db.url}\n  password_file: pg.password\n`);
    const start = async (lines: string[]) =>
      startServer({ configPath: join(dir, 'fleet.yaml'), dataDir: join(dir, 'data'), listen: '127.0.0.1:0', bootListen: '127.0.0.1:0', grpcListen: '127.0.0.1:0', logLevel: 'warn', say: (l) => lines.push(l) });

    const first: string[] = [];
    const a = await start(first);
    let count: number;
    try {
      expect(a.store.engine).toBe('postgres');
      const r = await cliAgainst(a, dir)('status');
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/valkyrie01/);
      count = (await a.store.nodes.list()).length;
      expect(count).toBeGreaterThan(0);
    } finally {
      await a.close();
    }
    expect(first.join('\n')).toMatch(/applied: [1-9]\d* added/);

    const second: string[] = [];
    const b = await start(second);
    try {
      expect((await b.store.nodes.list()).length).toBe(count);
      expect(second.join('\n')).toContain(`no changes (${count} nodes)`);
    } finally {
      await b.close();
    }
    expect([...first, ...second].join('\n')).not.toContain(db.password);
    expect(fs.existsSync(join(dir, 'data', 'fleet.db'))).toBe(false);
  });
});

/**
 * The CLI against a real `fleet server` listening on loopback TCP: the same
 * code paths an admin uses, in-process for speed, plus the built binary for
 * exit codes and one-line errors.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../server/cli/io.js';
import { main } from '../../server/cli/main.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/seed-cluster.yaml');
const FIVE_MISTAKES = join(ROOT, 'test/fixtures/config/five-mistakes.yaml');
const run = promisify(execFile);

describe('fleet CLI against a running server', () => {
  let dir: string;
  let server: RunningServer;
  let serverLines: string[];
  let demoSecret: string;

  const fleet = (...args: string[]): Promise<CliResult> => cliAgainst(server, dir)(...args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-cli-'));
    serverLines = [];
    demoSecret = (await readFile(join(ROOT, 'examples/secrets/bmc-admin.password'), 'utf8')).trim();
    server = await startServer({
      configPath: EXAMPLE,
      dataDir: join(dir, 'data'),
      listen: '127.0.0.1:0',
      // The example's management address (10.10.0.1) is not on this host: serve the boot endpoints on loopback.
      bootListen: '127.0.0.1:0',
      logLevel: 'warn',
      say: (l) => serverLines.push(l),
    });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts with one line per fact and the token location', () => {
    expect(serverLines.join('\n')).toMatch(/API token created: .*api\.token/);
    expect(serverLines.join('\n')).toMatch(/HTTP API listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(serverLines.join('\n')).toMatch(/applied: \d+ added/);
  });

  it('lists valkyrie[01-02] as JSON with IPs and BMC addresses', async () => {
    const r = await fleet('nodes', 'valkyrie[01-02]', '--json');
    expect(r.code, r.err).toBe(0);
    const nodes = JSON.parse(r.out) as { name: string; ip: string; bmc: { address: string } }[];
    expect(nodes.map((n) => [n.name, n.ip, n.bmc.address])).toEqual([
      ['valkyrie01', '10.10.3.1', '10.10.103.1'],
      ['valkyrie02', '10.10.3.2', '10.10.103.2'],
    ]);
    expect(r.out).not.toContain(demoSecret);
  });

  it('prints a table, a node, events; exit 1 when a named node is missing', async () => {
    const t = await fleet('nodes');
    expect(t.code).toBe(0);
    expect(t.out.split('\n')[0]).toMatch(/^NAME\s+PROFILE\s+IP\s+BMC\s+STATE$/);
    expect(t.out).toMatch(/^thor\s+storage\s+10\.10\.1\.1\s+/m);
    const s = await fleet('show', 'thor');
    expect(s.out).toMatch(/pet\s+yes/);
    const e = await fleet('events', 'valkyrie01');
    expect(e.code).toBe(0);
    expect(e.out).toMatch(/valkyrie01\s+node\.added/);
    const m = await fleet('nodes', 'valkyrie[01-02],ghost1');
    expect(m.code).toBe(1);
    expect(m.err).toContain('not in the store: ghost1');
  });

  it('applies idempotently: the second apply changes nothing', async () => {
    const dry = await fleet('apply', '-f', EXAMPLE, '--dry-run');
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toContain('no changes.');
  });

  it('reports all five mistakes of a bad file with paths and lines, exit 2', async () => {
    const r = await fleet('apply', '-f', FIVE_MISTAKES);
    expect(r.code).toBe(2);
    const lines = r.err.trim().split('\n').slice(1);
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l).toMatch(/five-mistakes\.yaml:\d+:\d+ \S+/);
  });

  it('fleet server with a bad file reports all five mistakes the same way and exits 2 without starting', async () => {
    let err = '';
    const io: CliIo = { stdout: () => {}, stderr: (s) => (err += s), env: {}, isTTY: false, home: dir, cwd: dir };
    expect(await main(['node', 'fleet', 'server', '--config', FIVE_MISTAKES, '--data', join(dir, 'never')], io)).toBe(2);
    const lines = err.trim().split('\n');
    expect(lines[0]).toMatch(/^fleet: .*five-mistakes\.yaml has 5 errors$/);
    expect(lines.slice(1)).toHaveLength(5);
    for (const l of lines.slice(1)) expect(l).toMatch(/five-mistakes\.yaml:\d+:\d+ \S+/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('turns a bad token, a bad nodeset and an unreachable server into one-line errors', async () => {
    let err = '';
    const io: CliIo = { stdout: () => {}, stderr: (s) => (err += s), env: {}, isTTY: false, home: dir, cwd: dir };
    expect(await main(['node', 'fleet', '--url', server.url, '--token', 'wrong', 'nodes'], io)).toBe(2);
    expect(err).toBe('fleet: invalid API token\n');
    err = '';
    expect(await main(['node', 'fleet', '--url', server.url, '--token-file', server.tokenPath, 'nodes', 'n[1-'], io)).toBe(2);
    expect(err.split('\n')).toHaveLength(2);
    err = '';
    expect(await main(['node', 'fleet', '--url', 'http://127.0.0.1:1', '--token', 'x', 'nodes'], io)).toBe(1);
    expect(err).toMatch(/^fleet: cannot reach the fleet server at http:\/\/127\.0\.0\.1:1 .*\n$/);
  });

  it('serves the boot chain; an unknown MAC is discovered; render and export work through the CLI', async () => {
    expect(server.bootUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.bootUrl).not.toBe(server.url);
    const chain = await fetch(`${server.bootUrl}/boot.ipxe`);
    expect(chain.status).toBe(200);
    expect(await chain.text()).toMatch(/^#!ipxe\n[\s\S]*chain /);
    const unknown = await (await fetch(`${server.bootUrl}/boot/52-54-00-aa-bb-cc.ipxe`)).text();
    expect(unknown).toMatch(/^#!ipxe/);
    expect(unknown).toContain('52:54:00:aa:bb:cc');
    const d = await fleet('discovered', '--json');
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out)).toEqual(expect.arrayContaining([expect.objectContaining({ mac: '52:54:00:aa:bb:cc', pxe: true })]));
    // A known node that is not armed is told to boot its disk: the loop breaker's second layer.
    const r = await fleet('render', 'ipxe', 'valkyrie01');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^#!ipxe/);
    expect(r.out).toMatch(/\bexit\b|sanboot/);
    const k = await fleet('render', 'kickstart', 'valkyrie01');
    expect(k.code, k.err).toBe(0);
    expect(k.out).toMatch(/^text$/m);
    expect(k.out).toMatch(/network --bootproto=dhcp --hostname=valkyrie01\.cluster\.local/);
    const h = await fleet('export', 'hosts');
    expect(h.out).toMatch(/^10\.10\.0\.1\s+odin\.cluster\.local odin$/m);
    expect(h.out).toMatch(/^10\.10\.3\.1\s+valkyrie01\.cluster\.local valkyrie01$/m);
    expect(serverLines.join('\n')).toMatch(/gRPC agent service \(TLS\) listening on 127\.0\.0\.1:\d+; CA fingerprint [0-9A-F:]{95}/);
  });

  it.runIf(existsSync(join(ROOT, 'dist/server/cli/main.js')))('the built binary keeps exit codes and prints no stack trace', async () => {
    const ok = await run(process.execPath, [join(ROOT, 'bin/fleet.js'), 'nodeset', '-f', 'valkyrie01', 'valkyrie02', 'valkyrie03']);
    expect(ok.stdout).toBe('valkyrie[01-03]\n');
    const bad = (await run(process.execPath, [join(ROOT, 'bin/fleet.js'), 'nodeset', '-e', 'n[1-']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    )) as { code: number; stderr: string };
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it.runIf(existsSync(join(ROOT, 'dist/server/cli/main.js')))('the built binary: nodeset, nodes and status load no server module', async () => {
    // test/helpers/trace-loads.mjs lists every module the process loads; the command modules themselves load lazily (server/cli/load.ts).
    const loaded = async (...args: string[]): Promise<string[]> => {
      const trace = join(dir, `loads-${args[0]}.txt`);
      await run(process.execPath, ['--import', join(ROOT, 'test/helpers/trace-loads.mjs'), join(ROOT, 'bin/fleet.js'), ...args], {
        env: { ...process.env, FLEET_TRACE_LOADS: trace },
      }).catch(() => undefined); // the exit code does not matter here, what was loaded does
      return (await readFile(trace, 'utf8')).trim().split('\n');
    };
    const remote = ['--url', server.url, '--token-file', server.tokenPath];
    const heavy = /node_modules\/(fastify|@fastify|@grpc|@bufbuild|kysely|better-sqlite3|systeminformation|@peculiar|typebox|undici|yaml)\/|dist\/server\/(serve|listeners|http|grpc|store|images|bootenv|netboot|lab\/lab|repo|apply)\b/;
    for (const [args, commandModule] of [
      [['nodeset', '-e', 'n[1-100]'], 'commands/nodeset.js'],
      [[...remote, 'nodes'], 'commands/api.js'],
      [[...remote, 'status'], 'commands/lifecycle.js'],
    ] as const) {
      const urls = await loaded(...args);
      expect(urls.some((u) => u.endsWith(`dist/server/cli/${commandModule}`)), args.join(' ')).toBe(true);
      expect(urls.filter((u) => heavy.test(u)), args.join(' ')).toEqual([]);
    }
    // `fleet server --help` only defines the command; `fleet apply` loads the config code, which the trace sees.
    expect((await loaded('server', '--help')).filter((u) => heavy.test(u))).toEqual([]);
    expect((await loaded('apply', '-f', join(dir, 'missing.yaml'))).filter((u) => heavy.test(u)).length).toBeGreaterThan(0);
  });
});

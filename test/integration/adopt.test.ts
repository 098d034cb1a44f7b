/**
 * Adoption without a BMC (issue 12 item 5, seed 002), end to end on
 * loopback: a real `fleet server` (admin face, boot face, gRPC), the real
 * agent bundle (agent/package/build.sh --system-node) in DATA/www/agent,
 * `fleet adopt` through the CLI, then the printed line itself run by
 * bash against a temp directory standing in for the machine's / (FLEET_ROOT).
 * Nothing here talks to a BMC.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT } from '../../common/events.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const exec = promisify(execFile);

const yaml = `
cluster: {name: pis, domain: lab.local, timezone: UTC, management_address: 10.10.0.1}
networks:
  provisioning: {subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254}
profiles:
  compute: {os: {tree: "http://10.10.0.1/os"}}
nodes:
  rp4n1: {profile: compute, ip: 10.10.4.1, bmc: none}
  rp4n2: {profile: compute, ip: 10.10.4.2, bmc: none}
`;

/** Runs the printed line the way an admin's root shell would, with the machine's / in `root`. */
async function runLine(line: string, root: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await exec('bash', ['-c', line], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, FLEET_ROOT: root }, timeout: 120_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

describe('fleet adopt: a machine without a BMC joins with one pasted line', () => {
  let dir: string;
  let server: RunningServer;
  const logs: string[] = [];
  let fleet: (...args: string[]) => Promise<CliResult>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-adopt-'));
    await writeFile(join(dir, 'fleet.yaml'), yaml);
    const data = join(dir, 'data');
    // The agent bundle the boot face serves under /agent/ (a 1.5 MB launcher + bundle using node from PATH).
    await mkdir(join(data, 'www'), { recursive: true });
    await exec('sh', [join(ROOT, 'agent/package/build.sh'), '--system-node', '--out', join(data, 'www', 'agent')], { timeout: 120_000 });
    const logStream = new PassThrough();
    logStream.on('data', (b: Buffer) => logs.push(b.toString()));
    server = await startServer({
      configPath: join(dir, 'fleet.yaml'),
      dataDir: data,
      listen: '127.0.0.1:0',
      bootListen: '127.0.0.1:0',
      grpcListen: '127.0.0.1:0',
      // debug: the request lines (with their URLs) are written too, and must not carry the token.
      logLevel: 'debug',
      logStream,
    });
    fleet = cliAgainst(server, dir);
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses BMC commands on a bmc: none node with a clear reason, sending nothing', async () => {
    const r = await fleet('power', 'status', 'rp4n1');
    expect(r.code).toBe(1);
    expect(r.out + r.err).toContain('rp4n1 has no BMC (bmc: none in fleet.yaml): power is manual');
  });

  it('prints one line; running it on the machine enrols the agent; the node configures; a replay is refused', async () => {
    const adopted = await fleet('adopt', 'rp4n1');
    expect(adopted.code, adopted.err).toBe(0);
    const line = adopted.out.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line.length).toBeLessThan(400);
    expect(line).toContain(`${server.bootUrl}/agent/adopt.sh`);
    const token = /FLEET_ENROLL_TOKEN=([A-Za-z0-9_-]+)/.exec(line)?.[1];
    expect(token).toBeDefined();
    expect(adopted.err).toContain('rp4n1 is adopting');
    expect((await server.store.nodes.require('rp4n1')).state).toBe('adopting');

    // The script served is the one pinned in the line.
    const script = await (await fetch(`${server.bootUrl}/agent/adopt.sh`)).text();
    const { createHash } = await import('node:crypto');
    expect(line).toContain(createHash('sha256').update(script).digest('hex'));
    expect(script).not.toContain(token!);

    const root = await mkdtemp(join(dir, 'machine-'));
    const first = await runLine(line, root);
    expect(first.code, first.err).toBe(0);
    expect(first.err).toContain('enrolled');
    const state = join(root, 'var/lib/fleet-agent');
    const agentJson = JSON.parse(await readFile(join(state, 'agent.json'), 'utf8')) as { node: string };
    expect(agentJson.node).toBe('rp4n1');
    expect(existsSync(join(state, 'node.crt'))).toBe(true);
    expect((await stat(join(state, 'node.key'))).mode & 0o077).toBe(0);
    expect(await readFile(join(root, 'etc/systemd/system/fleet-agent.service'), 'utf8')).toBe(await readFile(join(ROOT, 'agent/fleet-agent.service'), 'utf8'));
    expect(existsSync(join(root, 'usr/local/bin/fleet-agent'))).toBe(true);
    expect((await server.store.agents.get('rp4n1'))?.node).toBe('rp4n1');

    // The enrolment moved the node on: it waits for its agent's first apply report.
    await server.conductor.idle();
    expect((await server.store.nodes.require('rp4n1')).state).toBe('configuring');

    // The same line again: the token was used; the server refuses it (and the credential stays).
    const replay = await runLine(line, await mkdtemp(join(dir, 'machine-')));
    expect(replay.code).not.toBe(0);
    expect(replay.err).toMatch(/already used|token/i);
    const refused = (await server.store.events.list({ node: 'rp4n1', kinds: [EVENT.agentEnrollRefused] })).events;
    expect(refused.at(-1)?.details).toMatchObject({ reason: 'token.used' });

    // The token is in the printed line only: in no event, in no log line.
    const events = (await server.store.events.list({ node: 'rp4n1', limit: 1000 })).events;
    expect(JSON.stringify(events)).not.toContain(token!);
    expect(logs.join('')).not.toContain(token!);
    const issued = events.find((e) => e.kind === EVENT.tokenIssued);
    expect(issued?.cause).toBe('adoption token issued');
  }, 180_000);

  it('the agent\'s first apply report makes the node ready', async () => {
    // rp4n1's agent from the previous test, one cycle against its stand-in root.
    const roots = (await import('node:fs')).readdirSync(dir).filter((d) => d.startsWith('machine-'));
    const root = roots.map((d) => join(dir, d)).find((d) => existsSync(join(d, 'var/lib/fleet-agent/agent.json')));
    expect(root).toBeDefined();
    // The installed system the roles configure: a Debian 12.
    await writeFile(join(root!, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n');
    const agent = join(root!, 'usr/local/bin/fleet-agent');
    const r = await exec(agent, ['run', '--once', '--state-dir', join(root!, 'var/lib/fleet-agent'), '--root', root!], {
      env: { PATH: process.env.PATH ?? '', HOME: root!, FLEET_AGENT_LIB: join(root!, 'usr/local/lib/fleet-agent') },
      timeout: 120_000,
    }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
    await server.conductor.idle();
    const node = await server.store.nodes.require('rp4n1');
    const failed = (await server.store.events.list({ node: 'rp4n1', kinds: [EVENT.agentApplyFailed] })).events;
    // The profile declares no role that needs the real machine: every role applies in the stand-in root.
    expect(failed.map((e) => e.details), r.stderr).toEqual([]);
    expect(node.state, r.stderr).toBe('ready');
    const toReady = (await server.store.events.list({ node: 'rp4n1', kinds: [EVENT.stateChanged] })).events.map((e) => `${e.fromState}->${e.toState}`);
    expect(toReady).toEqual(['enrolled->adopting', 'adopting->configuring', 'configuring->ready']);
  }, 180_000);

  it('fleet reinstall on a bmc: none node arms it, says power is manual and waits for the netboot: no BMC call', async () => {
    const r = await fleet('reinstall', 'rp4n2', '--yes', '--force');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('rp4n2: reinstalling (enrolled -> pxe-armed): power is manual (no BMC): PXE-boot rp4n2 by hand; waiting for its netboot');
    // The power-cycle step runs in the background after the request returns; idle() waits only for
    // steps the pool already holds, so on a loaded machine (CI) wait for the step itself, bounded.
    await until(async () => (await server.store.nodes.require('rp4n2')).state === 'power-cycling', 15_000).catch(() => undefined);
    await server.conductor.idle();
    const node = await server.store.nodes.require('rp4n2');
    expect(node).toMatchObject({ state: 'power-cycling', armed: true });
    const events = (await server.store.events.list({ node: 'rp4n2', limit: 1000 })).events;
    expect(events.filter((e) => e.kind.startsWith('bmc.'))).toEqual([]);
    expect(events.find((e) => e.kind === EVENT.stepDone)?.details).toMatchObject({ step: 'power-cycle', action: 'manual' });
    expect((await fleet('cancel', 'rp4n2')).code).toBe(0);
  });
});

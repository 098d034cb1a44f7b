/**
 * SIGTERM stops `fleet server` cleanly however it was started: directly (as
 * systemd runs server/fleet.service), under a shell that forwards the signal,
 * and under npx, which passes it to its `sh -c` only (the server then sees
 * its parent go): its dnsmasq gone, the store closed (SQLite's -wal file
 * checkpointed away), the data dir lock released, exit code 0 where the
 * server's own. The built binary, in a network namespace so that dnsmasq
 * serves. Needs root, dnsmasq and dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distMissing, FLEET_BIN, ROOT } from '../helpers/fleet-server.js';
import { createNetnsLab, skipReason, type NetnsLab } from '../helpers/netns.js';

const why = skipReason(['dnsmasq', 'npx']) ?? distMissing();
const suite = why ? describe.skip : describe;

const YAML = `
cluster: {name: term, domain: lab.local, timezone: UTC, management_name: odin, management_address: 10.78.0.1}
networks:
  provisioning: {subnet: 10.78.0.0/24, unknown_range: 10.78.0.200-10.78.0.250}
netboot:
  dhcp: {enabled: true, mode: authoritative, interface: br0}
  http: {listen: "10.78.0.1:8080"}
server: {listen: "127.0.0.1:8080"}
profiles:
  compute: {os: {tree: "http://10.78.0.1:8080/images/os"}}
nodes:
  valkyrie01: {profile: compute, ip: 10.78.0.11, mac: "52:54:00:78:00:01"}
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

suite(why ? `fleet server stops on SIGTERM — SKIPPED: ${why}` : 'fleet server stops on SIGTERM', () => {
  let lab: NetnsLab;
  let dir: string;

  beforeAll(async () => {
    lab = await createNetnsLab({ address: '10.78.0.1/24' });
    dir = await mkdtemp(join(tmpdir(), 'fleet-term-'));
    await chmod(dir, 0o711); // dnsmasq drops root and must traverse to the data dir
    await writeFile(join(dir, 'fleet.yaml'), YAML);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serverArgs = (data: string): string[] => ['server', '--config', join(dir, 'fleet.yaml'), '--data', data, '--log-level', 'info'];
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

  /** How each wrapper ends: the server's exit code where it passes it on; npm re-raises the SIGTERM it got. */
  const cases: [string, (data: string) => string[], { code: number | null; signal: NodeJS.Signals | null }, RegExp][] = [
    ['directly', (data) => [process.execPath, FLEET_BIN, ...serverArgs(data)], { code: 0, signal: null }, /fleet: SIGTERM received, stopping/],
    [
      'under a shell that forwards SIGTERM',
      (data) => [
        'sh',
        '-c',
        `trap 'kill -TERM "$pid"' TERM INT; ${[process.execPath, FLEET_BIN, ...serverArgs(data)].map(q).join(' ')} & pid=$!; wait "$pid"; wait "$pid"; exit $?`,
      ],
      { code: 0, signal: null },
      /fleet: SIGTERM received, stopping/,
    ],
    ['under npx', (data) => ['npx', '--yes', 'fleet', ...serverArgs(data)], { code: null, signal: 'SIGTERM' }, /fleet: its parent process \d+ \(npm exec\) is gone, stopping/],
  ];

  it.each(cases)('%s: stops, dnsmasq gone, store closed, lock released', async (name, argv, wrapperEnd, stopLine) => {
    const data = join(dir, `data-${name.replace(/\W+/g, '-')}`);
    const child = spawn('ip', ['netns', 'exec', lab.server, ...argv(data)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    let serverPid = 0;
    try {
      const deadline = Date.now() + 40_000;
      while (!/netboot: dnsmasq serving/.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`fleet server did not become ready:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      serverPid = (JSON.parse(await readFile(join(data, 'server.lock.json'), 'utf8')) as { pid: number }).pid;
      const dnsmasqPid = Number((await readFile(join(data, 'dnsmasq/dnsmasq.pid'), 'utf8')).trim());
      expect(alive(dnsmasqPid)).toBe(true);
      expect(existsSync(join(data, 'fleet.db-wal'))).toBe(true);

      child.kill('SIGTERM'); // the wrapper: ip netns exec replaced itself with it
      const end = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
      expect(end, out).toEqual(wrapperEnd);
      // The server stops on its own time after a wrapper that does not wait for it (npm): bounded.
      for (const until = Date.now() + 20_000; alive(serverPid) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
      expect(alive(serverPid), out).toBe(false);
      expect(out).toMatch(stopLine);
      expect(alive(dnsmasqPid)).toBe(false);
      expect(existsSync(join(data, 'fleet.db-wal'))).toBe(false);
      expect(existsSync(join(data, 'server.lock.json'))).toBe(false);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      if (serverPid && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
    }
  }, 60_000);
});

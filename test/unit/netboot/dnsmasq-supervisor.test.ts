/**
 * DnsmasqSupervisor against a fake dnsmasq (a bash script that logs
 * "started", writes its pid file, records SIGHUPs and can be told to fail):
 * files written, restart with backoff, stop escalation, reservation updates,
 * stale instances. The real dnsmasq runs in test/integration/dnsmasq.test.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { DnsmasqSupervisor, type DnsmasqSettings, type DnsmasqSupervisorOptions, dnsmasqPaths } from '../../../server/netboot/dnsmasq/index.js';

const SETTINGS: DnsmasqSettings = {
  mode: 'authoritative',
  interface: 'br0',
  subnet: '10.77.0.0/24',
  unknownRange: { start: '10.77.0.100', end: '10.77.0.199' },
  serverAddress: '10.77.0.1',
  bootScriptUrl: 'http://10.77.0.1:8080/boot.ipxe',
  dns: ['10.77.0.1'],
  domain: 'test.local',
};

const fakeScript = (dir: string) => `#!/bin/bash
conf=; test=
for a in "$@"; do case "$a" in --conf-file=*) conf=\${a#--conf-file=};; --test) test=1;; esac; done
if [ -n "$test" ]; then
  [ -f '${dir}/test-fails' ] && { echo "dnsmasq: bad dhcp-range at line 3 of $conf" >&2; exit 1; }
  echo "dnsmasq: syntax check OK." >&2; exit 0
fi
log=$(sed -n 's/^log-facility=//p' "$conf"); pidf=$(sed -n 's/^pid-file=//p' "$conf")
if [ -f '${dir}/start-fails' ]; then
  echo "dnsmasq[$$]: failed to create listening socket for port 67: Address already in use" >> "$log"
  echo "dnsmasq[$$]: FAILED to start up" >> "$log"; exit 2
fi
echo $$ > "$pidf"
echo "dnsmasq[$$]: started, version fake" >> "$log"
trap 'echo hup >> "${dir}/hups"' HUP
if [ -f '${dir}/ignore-term' ]; then trap '' TERM; else trap 'exit 0' TERM; fi
[ -f '${dir}/crash-after-start' ] && exit 3
for i in $(seq 1 6000); do sleep 0.05; done
`;

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await tick(10);
  }
  return cond();
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('DnsmasqSupervisor (fake dnsmasq)', () => {
  let dir: string;
  let data: string;
  let fake: string;
  let ipxe: string;
  const sups: DnsmasqSupervisor[] = [];
  const orphans: ChildProcess[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-sup-'));
    await fs.chmod(dir, 0o711); // dnsmasq drops root: it must traverse to hosts/ and tftp/
    data = path.join(dir, 'data');
    await fs.mkdir(data, { mode: 0o711 });
    fake = path.join(dir, 'fake-dnsmasq');
    await fs.writeFile(fake, fakeScript(dir), { mode: 0o755 });
    ipxe = path.join(dir, 'ipxe');
    await fs.mkdir(ipxe);
    for (const f of ['undionly.kpxe', 'ipxe.efi']) await fs.writeFile(path.join(ipxe, f), `fake ${f}\n`);
  });

  afterEach(async () => {
    for (const s of sups.splice(0)) await s.stop();
    for (const c of orphans.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  });

  function make(extra: Partial<DnsmasqSupervisorOptions> = {}): DnsmasqSupervisor {
    const s = new DnsmasqSupervisor({
      paths: dnsmasqPaths(data),
      settings: SETTINGS,
      hosts: [{ name: 'n1', ip: '10.77.0.11', macs: ['52:54:00:00:00:01'] }],
      hookEnv: { FLEET_HOOK_FIFO: path.join(data, 'dnsmasq', 'events.fifo'), FLEET_HOOK_SECRET: 'x'.repeat(32) },
      binary: fake,
      tftp: { sourceDir: ipxe },
      restart: { initialDelayMs: 20, maxDelayMs: 160, stableMs: 300 },
      stopTimeoutMs: 300,
      ...extra,
    });
    sups.push(s);
    return s;
  }

  it('start writes config, reservations, hook and TFTP root, then runs dnsmasq -k', async () => {
    const s = make();
    const st = await s.start();
    expect(st).toMatchObject({ state: 'running', running: true, restarts: 0 });
    const p = dnsmasqPaths(data);
    const conf = await fs.readFile(p.confFile, 'utf8');
    expect(conf).toContain('interface=br0');
    expect(conf).toContain(`dhcp-script=${p.hookScript}`);
    expect(conf).toContain(`tftp-root=${p.tftpRoot}`);
    expect(await fs.readFile(path.join(p.hostsDir, '52-54-00-00-00-01'), 'utf8')).toBe('52:54:00:00:00:01,10.77.0.11,n1\n');
    expect((await fs.stat(p.hookScript)).mode & 0o777).toBe(0o700);
    const efi = await fs.stat(path.join(p.tftpRoot, 'ipxe.efi'));
    expect(efi.mode & 0o777).toBe(0o444);
    expect(st.tftp).toMatchObject({ present: ['undionly.kpxe', 'ipxe.efi'], missing: ['snponly.efi'] });
    expect(st.tftp!.warnings.join('\n')).toMatch(/snponly\.efi not found .*Debian package `ipxe`/);
    if (process.getuid?.() === 0) {
      expect(conf).toMatch(/^user=(dnsmasq|nobody)$/m);
      expect(efi.uid).not.toBe(0); // owned by the dnsmasq user (tftp-secure)
    }
    const pid = st.pid!;
    expect(alive(pid)).toBe(true);
    await s.stop();
    expect(s.status().state).toBe('stopped');
    expect(alive(pid)).toBe(false);
  });

  it('restarts dnsmasq when it dies, with exponential backoff that resets after a stable run', async () => {
    const s = make();
    let lastSpawn = { pid: 0, at: 0 };
    s.on('spawn', (pid: number) => (lastSpawn = { pid, at: Date.now() }));
    const first = (await s.start()).pid!;
    const delays: number[] = [];
    s.on('exit', (_info: unknown, delay: number | null) => delays.push(delay ?? -1));
    process.kill(first, 'SIGKILL');
    expect(await until(() => s.status().restarts === 1 && s.status().running, 3000)).toBe(true);
    expect(s.status().pid).not.toBe(first);
    expect(s.status().lastExit).toMatchObject({ signal: 'SIGKILL' });

    // now every start crashes at once; no run was stable, so the delay keeps doubling up to the cap
    await fs.writeFile(path.join(dir, 'crash-after-start'), '');
    process.kill(s.status().pid!, 'SIGKILL');
    expect(await until(() => s.status().restarts >= 6, 5000)).toBe(true);
    expect(delays.slice(0, 6)).toEqual([20, 40, 80, 160, 160, 160]);
    expect(s.status().lastExit!.code).toBe(3);

    // healthy again: after a run longer than stableMs the delay starts over
    await fs.rm(path.join(dir, 'crash-after-start'));
    const stable = () => s.status().running && s.status().pid === lastSpawn.pid && Date.now() - lastSpawn.at > 400;
    expect(await until(stable, 3000)).toBe(true);
    const before = s.status().restarts;
    delays.length = 0;
    process.kill(s.status().pid!, 'SIGTERM');
    expect(await until(() => s.status().restarts === before + 1 && s.status().running, 3000)).toBe(true);
    expect(delays[0]).toBe(20);
  });

  it('a config dnsmasq refuses, or a failed start-up, is a clear error', async () => {
    await fs.writeFile(path.join(dir, 'test-fails'), '');
    const a = make();
    const e1 = await a.start().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(FleetError);
    expect((e1 as FleetError).code).toBe('config.invalid');
    expect((e1 as FleetError).message).toContain('bad dhcp-range');
    expect(a.status().state).toBe('failed');
    await fs.rm(path.join(dir, 'test-fails'));

    await fs.writeFile(path.join(dir, 'start-fails'), '');
    const e2 = await a.start().catch((e: unknown) => e);
    expect((e2 as FleetError).code).toBe('unavailable');
    expect((e2 as FleetError).message).toContain('Address already in use');
    await fs.rm(path.join(dir, 'start-fails'));
    expect((await a.start()).state).toBe('running');
  });

  it('bad values never reach the files', async () => {
    const s = make({ settings: { ...SETTINGS, interface: 'br0\nport=53' } });
    const e = await s.start().catch((x: unknown) => x);
    expect((e as FleetError).code).toBe('config.invalid');
    await expect(fs.stat(dnsmasqPaths(data).confFile)).rejects.toThrow();
  });

  it('stop sends SIGTERM, then SIGKILL when dnsmasq ignores it', async () => {
    await fs.writeFile(path.join(dir, 'ignore-term'), '');
    const s = make();
    const pid = (await s.start()).pid!;
    const t0 = Date.now();
    await s.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(alive(pid)).toBe(false);
  });

  it('updateHosts writes only what changed; additions need no signal, changes and removals one SIGHUP', async () => {
    const s = make();
    await s.start();
    const hostsDir = dnsmasqPaths(data).hostsDir;
    const mtime = async (f: string) => (await fs.stat(path.join(hostsDir, f))).mtimeMs;
    const m1 = await mtime('52-54-00-00-00-01');
    await tick(20);
    const hups = async () => (await fs.readFile(path.join(dir, 'hups'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

    const add = await s.updateHosts([
      { name: 'n1', ip: '10.77.0.11', macs: ['52:54:00:00:00:01'] },
      { name: 'n2', ip: '10.77.0.12', macs: ['52:54:00:00:00:02'] },
    ]);
    expect(add).toEqual({ added: ['52-54-00-00-00-02'], changed: [], removed: [], reloaded: false });
    expect(await mtime('52-54-00-00-00-01')).toBe(m1); // untouched
    expect(await fs.readFile(path.join(hostsDir, '52-54-00-00-00-02'), 'utf8')).toBe('52:54:00:00:00:02,10.77.0.12,n2\n');

    const change = await s.updateHosts([{ name: 'n2', ip: '10.77.0.13', macs: ['52:54:00:00:00:02'] }]);
    expect(change).toEqual({ added: [], changed: ['52-54-00-00-00-02'], removed: ['52-54-00-00-00-01'], reloaded: true });
    expect((await fs.readdir(hostsDir)).sort()).toEqual(['52-54-00-00-00-02']);
    expect(await until(async () => (await hups()) === 1, 2000)).toBe(true);

    const same = await s.updateHosts([{ name: 'n2', ip: '10.77.0.13', macs: ['52:54:00:00:00:02'] }]);
    expect(same).toEqual({ added: [], changed: [], removed: [], reloaded: false });

    await expect(s.updateHosts([{ name: 'n3', ip: '10.77.0.150', macs: ['52:54:00:00:00:03'] }])).rejects.toThrow(/inside the unknown range/);
    expect((await fs.readdir(hostsDir)).sort()).toEqual(['52-54-00-00-00-02']);
    expect(s.status().pid).toBeGreaterThan(0);
  });

  it('stops a dnsmasq that a previous run of the same data dir left behind', async () => {
    const s1 = make();
    await s1.start();
    await s1.stop();
    // an orphan: same config, not our child
    const orphan = spawn(fake, ['-k', `--conf-file=${dnsmasqPaths(data).confFile}`], { stdio: 'ignore' });
    orphans.push(orphan);
    const pidFile = dnsmasqPaths(data).pidFile;
    expect(await until(async () => (await fs.readFile(pidFile, 'utf8').catch(() => '')).trim() === String(orphan.pid), 2000)).toBe(true);
    const s2 = make();
    await s2.start();
    expect(await until(() => orphan.exitCode !== null || orphan.signalCode !== null, 3000)).toBe(true);
    expect(s2.status().pid).not.toBe(orphan.pid);
  });

  it.skipIf(process.getuid?.() !== 0)('as root: a data dir the dnsmasq user cannot traverse is refused with the fix', async () => {
    await fs.chmod(data, 0o700);
    const s = make();
    const e = await s.start().catch((x: unknown) => x);
    expect((e as FleetError).code).toBe('config.invalid');
    expect((e as FleetError).message).toMatch(/cannot reach .*mode 0700.*chmod o\+x/);
  });
});

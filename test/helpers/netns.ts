/**
 * Test harness: a private "cluster network" in two network namespaces.
 *
 *   const lab = await createNetnsLab({ address: '10.77.0.1/24' });
 *   try {
 *     lab.prefix                  // ['ip', 'netns', 'exec', lab.server]: run dnsmasq there
 *     const nic = await lab.addClient('52:54:00:12:34:56');   // a client NIC with that MAC
 *     const lease = await udhcpc(lab, nic, { arch: 7 });      // a real DHCP exchange
 *   } finally {
 *     await lab.destroy();        // deletes both namespaces (and every veth with them)
 *   }
 *
 * Server namespace `fleet-test-<random>`: bridge br0 with the given address,
 * lo up. Client namespace `fleet-test-<random>-c`: one veth end per client,
 * whose peer is a port of br0. Nothing is linked to the host's interfaces; no
 * address outside the namespaces is used. A process 'exit' hook deletes
 * namespaces that a crashed test left behind.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NodeSpec } from '../../server/model.js';
import { DnsmasqSupervisor, type DnsmasqPaths, type DnsmasqSettings, dnsmasqPaths, reservationsOf } from '../../server/netboot/dnsmasq/index.js';
import { findExecutable } from '../../common/executable.js';
import { DiscoveryConsumer, DiscoveryListener } from '../../server/netboot/discovery/index.js';
import { openStore, type Store } from '../../server/store/index.js';

export { findExecutable };

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv with a hard time limit; never rejects. */
export function run(argv: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

async function must(argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Why namespace tests cannot run here (not root, no `ip`), or null. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespace tests need root';
  if (!findExecutable('ip')) return 'iproute2 (ip) is not installed';
  return null;
}

/** The binaries of `names` that are not installed. */
export function missingBinaries(names: string[]): string[] {
  return names.filter((n) => !findExecutable(n));
}

/** Skip reason for a test file needing root, ip and these binaries; null: run it. */
export function skipReason(binaries: string[]): string | null {
  const ns = netnsUnavailable();
  if (ns) return ns;
  const missing = missingBinaries(binaries);
  return missing.length > 0 ? `missing binaries: ${missing.join(', ')}` : null;
}

const live = new Set<string>();
let exitHook = false;
function registerExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const ns of live) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
  });
}

export interface NetnsLab {
  /** Namespace of the server side (bridge br0, dnsmasq). */
  server: string;
  /** Namespace of the clients. */
  client: string;
  bridge: string;
  /** The bridge address, e.g. 10.77.0.1 */
  address: string;
  prefixLength: number;
  /** ['ip', 'netns', 'exec', server] */
  prefix: string[];
  /** Adds a client NIC with this MAC (in the client namespace, up); returns its name there. */
  addClient(mac: string, opts?: { address?: string }): Promise<string>;
  /** Runs argv inside a namespace. */
  exec(ns: string, argv: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  destroy(): Promise<void>;
}

export async function createNetnsLab(opts: { address?: string } = {}): Promise<NetnsLab> {
  const cidr = opts.address ?? '10.77.0.1/24';
  const [address, plen] = cidr.split('/') as [string, string];
  const id = randomBytes(4).toString('hex');
  const server = `fleet-test-${id}`;
  const client = `fleet-test-${id}-c`;
  registerExitHook();
  let clients = 0;
  const lab: NetnsLab = {
    server,
    client,
    bridge: 'br0',
    address,
    prefixLength: Number(plen),
    prefix: ['ip', 'netns', 'exec', server],
    async addClient(mac, o = {}) {
      const n = clients++;
      const nic = `c${n}`;
      const port = `c${n}b`;
      await must(['ip', '-n', server, 'link', 'add', port, 'type', 'veth', 'peer', 'name', nic, 'netns', client]);
      await must(['ip', '-n', server, 'link', 'set', port, 'master', 'br0', 'up']);
      await must(['ip', '-n', client, 'link', 'set', nic, 'address', mac]);
      if (o.address) await must(['ip', '-n', client, 'addr', 'add', o.address, 'dev', nic]);
      await must(['ip', '-n', client, 'link', 'set', nic, 'up']);
      return nic;
    },
    exec(ns, argv, o = {}) {
      return run(['ip', 'netns', 'exec', ns, ...argv], o);
    },
    async destroy() {
      for (const ns of [client, server]) {
        if (!live.has(ns)) continue;
        await run(['ip', 'netns', 'del', ns]);
        live.delete(ns);
      }
    },
  };
  try {
    for (const ns of [server, client]) {
      await must(['ip', 'netns', 'add', ns]);
      live.add(ns);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must(['ip', '-n', server, 'link', 'add', 'br0', 'type', 'bridge']);
    await must(['ip', '-n', server, 'addr', 'add', cidr, 'dev', 'br0']);
    await must(['ip', '-n', server, 'link', 'set', 'br0', 'up']);
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}

export interface DhcpLease {
  ip: string;
  siaddr: string;
  bootFile: string;
  hostname: string;
  domain: string;
  router: string;
}

export interface UdhcpcOptions {
  /** Client architecture (option 93): 0 BIOS, 7 / 9 x86-64 UEFI, 11 arm64. */
  arch?: number;
  /** Vendor class; default PXEClient:Arch:<arch>:UNDI:002001 when arch is given. */
  vendorClass?: string;
  /** User class (option 77), e.g. 'iPXE'. */
  userClass?: string;
  /** Send option 175 (iPXE's encapsulated options). */
  ipxeOption?: boolean;
  timeoutMs?: number;
}

/**
 * One DHCP exchange with busybox's udhcpc as a PXE-like client in the client
 * namespace; resolves with what the client got (boot file = option 67/file
 * field, siaddr = next-server), or null when it got no lease.
 */
export async function udhcpc(lab: NetnsLab, nic: string, o: UdhcpcOptions = {}): Promise<DhcpLease | null> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-udhcpc-'));
  try {
    const script = path.join(dir, 'script.sh');
    const out = path.join(dir, 'lease');
    await fs.writeFile(
      script,
      `#!/bin/sh\n[ "$1" = bound ] || exit 0\nprintf 'ip=%s\\nsiaddr=%s\\nboot_file=%s\\nhostname=%s\\ndomain=%s\\nrouter=%s\\n' "$ip" "$siaddr" "$boot_file" "$hostname" "$domain" "$router" > '${out}'\n`,
      { mode: 0o755 },
    );
    const argv = ['udhcpc', '-i', nic, '-n', '-q', '-f', '-t', '4', '-T', '1', '-A', '1', '-s', script];
    if (o.arch !== undefined) {
      const a = o.arch.toString(16).padStart(4, '0');
      argv.push('-x', `93:${a}`, '-V', o.vendorClass ?? `PXEClient:Arch:${String(o.arch).padStart(5, '0')}:UNDI:002001`);
    } else if (o.vendorClass) argv.push('-V', o.vendorClass);
    if (o.userClass) argv.push('-x', `77:${Buffer.from(o.userClass).toString('hex')}`);
    if (o.ipxeOption) argv.push('-x', '175:150101');
    await lab.exec(lab.client, argv, { timeoutMs: o.timeoutMs ?? 15_000 });
    const text = await fs.readFile(out, 'utf8').catch(() => null);
    if (text === null) return null;
    const kv = Object.fromEntries(text.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return {
      ip: kv['ip'] ?? '',
      siaddr: kv['siaddr'] ?? '',
      bootFile: kv['boot_file'] ?? '',
      hostname: kv['hostname'] ?? '',
      domain: kv['domain'] ?? '',
      router: kv['router'] ?? '',
    };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Fetches a file over TFTP with busybox from the client namespace; null when refused (with the server's message in `error`). */
export async function tftpGet(lab: NetnsLab, server: string, remote: string): Promise<{ data: Buffer | null; error: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-tftp-'));
  try {
    const local = path.join(dir, 'got');
    const r = await lab.exec(lab.client, ['busybox', 'tftp', '-g', '-r', remote, '-l', local, server], { timeoutMs: 15_000 });
    if (r.code !== 0) return { data: null, error: (r.stderr || r.stdout).trim() };
    return { data: await fs.readFile(local), error: '' };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- fleet's DHCP side in a lab


export interface NetbootLab {
  lab: NetnsLab;
  /** Temp dir (0711) holding the data dir. */
  dir: string;
  dataDir: string;
  paths: DnsmasqPaths;
  settings: DnsmasqSettings;
  store: Store;
  consumer: DiscoveryConsumer;
  listener: DiscoveryListener;
  supervisor: DnsmasqSupervisor;
  /** Stops dnsmasq, the listener and the store; deletes the namespaces and the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface NetbootLabOptions {
  /** Bridge address, default 10.77.0.1/24. */
  address?: string;
  settings?: Partial<DnsmasqSettings>;
  /** Known nodes (profile 'compute' is created). */
  nodes?: NodeSpec[];
  /** Consumer queue high-water mark. */
  highWater?: number;
}

/**
 * A real dnsmasq (DnsmasqSupervisor, in the lab's server namespace) with the
 * hook, the FIFO listener and the consumer on an in-memory store. Anything
 * started is stopped again if a later step fails.
 */
export async function startNetbootLab(o: NetbootLabOptions = {}): Promise<NetbootLab> {
  const lab = await createNetnsLab({ address: o.address ?? '10.77.0.1/24' });
  const cleanups: (() => Promise<void>)[] = [() => lab.destroy()];
  const stop = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-netboot-lab-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    await fs.chmod(dir, 0o711); // dnsmasq drops root and must traverse to hosts/ and tftp/
    const dataDir = path.join(dir, 'data');
    await fs.mkdir(dataDir, { mode: 0o711 });
    const paths = dnsmasqPaths(dataDir);
    const store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    cleanups.push(() => store.close());
    await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.77.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 'test' });
    for (const n of o.nodes ?? []) await store.nodes.upsert(n, { actor: 'test' });
    const quiet = { info() {}, warn() {}, error() {} };
    const consumer = new DiscoveryConsumer({ store, logger: quiet, ...(o.highWater ? { highWater: o.highWater } : {}) });
    const listener = new DiscoveryListener({ fifo: paths.eventsFifo, sink: consumer, logger: quiet });
    await listener.start();
    cleanups.push(() => listener.stop());
    const settings: DnsmasqSettings = {
      mode: 'authoritative',
      interface: 'br0',
      subnet: '10.77.0.0/24',
      unknownRange: { start: '10.77.0.100', end: '10.77.0.199' },
      serverAddress: lab.address,
      bootScriptUrl: `http://${lab.address}:8080/boot.ipxe`,
      gateway: lab.address,
      dns: [lab.address],
      ntp: [lab.address],
      domain: 'lab.test',
      pingCheck: false,
      ...o.settings,
    };
    const supervisor = new DnsmasqSupervisor({
      paths,
      settings,
      hosts: reservationsOf(await store.nodes.list()),
      hookEnv: listener.hookEnv(),
      commandPrefix: lab.prefix,
      restart: { initialDelayMs: 200, maxDelayMs: 2000, stableMs: 5000 },
      logger: quiet,
    });
    cleanups.push(() => supervisor.stop());
    await supervisor.start();
    return { lab, dir, dataDir, paths, settings, store, consumer, listener, supervisor, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

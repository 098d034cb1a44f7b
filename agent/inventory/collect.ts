/**
 * Gathering the raw inventory.
 *
 * Every probe (each systeminformation call, each /sys walk, nvidia-smi) runs
 * at the same time and under its own budget (PROBE_BUDGETS_MS, sized for a
 * slow or emulated machine: a systeminformation call runs dmidecode, lsblk or
 * lscpu, a /sys walk only reads files). A probe that fails or runs late is
 * recorded in `failed` (and `warnings`) with the reason, and toInventory
 * reports the sections behind it as unknown; collection itself never throws.
 * systeminformation calls cannot be cancelled: a late one is abandoned (its
 * result ignored), not killed. nvidia-smi, the slow one on GPU nodes, is a
 * child process run through the exec wrapper (so it never blocks the event
 * loop) and is killed at its limit.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as si from 'systeminformation';
import { describeFailure, systemRunner, type Runner } from '../exec.js';
import { FleetError } from '../../common/errors.js';
import { parseDurationMs } from '../../common/duration.js';
import type { RawBlockSys, RawIbPort, RawIbSys, RawInventory, RawNetSys, RawPciDevice, RawSi } from '../../common/inventory/types.js';

/** The systeminformation calls we use (injectable for tests). */
export interface SiApi {
  system(): Promise<unknown>;
  baseboard(): Promise<unknown>;
  bios(): Promise<unknown>;
  cpu(): Promise<unknown>;
  mem(): Promise<unknown>;
  memLayout(): Promise<unknown>;
  diskLayout(): Promise<unknown>;
  networkInterfaces(): Promise<unknown>;
  osInfo(): Promise<unknown>;
}

export const SI_PROBES = ['system', 'baseboard', 'bios', 'cpu', 'mem', 'memLayout', 'diskLayout', 'networkInterfaces', 'osInfo'] as const;
export const SYS_PROBES = ['sys net', 'sys block', 'sys infiniband', 'sys pci'] as const;
export const PROBE_NAMES = [...SI_PROBES, ...SYS_PROBES, 'nvidia-smi'] as const;
export type ProbeName = (typeof PROBE_NAMES)[number];

/**
 * Each probe's own time limit. Measured on a plain VM every probe answers in
 * well under a second; under emulation (QEMU without KVM, a loaded CI host)
 * dmidecode/lsblk/lscpu behind systeminformation take seconds, so the budgets
 * leave room for a machine ten times slower. They all run at once: a
 * collection takes as long as its slowest probe, not their sum.
 */
export const PROBE_BUDGETS_MS: Readonly<Record<ProbeName, number>> = {
  system: 10_000,
  baseboard: 10_000,
  bios: 10_000,
  cpu: 10_000,
  mem: 10_000,
  memLayout: 10_000,
  // lsblk, then smartctl/udev per disk
  diskLayout: 15_000,
  networkInterfaces: 10_000,
  osInfo: 10_000,
  'sys net': 5_000,
  'sys block': 5_000,
  'sys infiniband': 5_000,
  'sys pci': 5_000,
  'nvidia-smi': 20_000,
};

/** How `--probe-timeout` changes the budgets: scale them all, or give every probe the same limit. */
export type ProbeTimeout = { scale: number } | { overrideMs: number };

export const MAX_PROBE_SCALE = 100;
export const MAX_PROBE_TIMEOUT_MS = 10 * 60_000;

/**
 * `--probe-timeout`: "3x" (or "x3", "1.5x") multiplies every budget; a
 * duration ("30s", "1500ms", "2m", a bare number is seconds) is every probe's
 * limit. Anything else is a usage error naming the forms it takes.
 */
export function parseProbeTimeout(text: string): ProbeTimeout {
  const t = text.trim();
  const m = /^(?:x\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*x)$/i.exec(t);
  if (m) {
    const scale = Number(m[1] ?? m[2]);
    if (!(scale > 0) || scale > MAX_PROBE_SCALE) throw new FleetError('usage.invalid', `--probe-timeout: the multiplier ${t} must be above 0 and at most ${MAX_PROBE_SCALE}`);
    return { scale };
  }
  const ms = parseDurationMs(t, { defaultUnit: 's', units: ['ms', 's', 'm'] });
  if (ms === undefined || !(ms > 0) || ms > MAX_PROBE_TIMEOUT_MS) {
    throw new FleetError('usage.invalid', `--probe-timeout: ${JSON.stringify(text)} is not a duration up to 10m (e.g. 30s, 1500ms) nor a multiplier of the budgets (e.g. 3x)`);
  }
  return { overrideMs: Math.round(ms) };
}

/** The limit of each probe: PROBE_BUDGETS_MS, then `budgets` for single probes, then the scale or override. */
export function probeBudgets(opts: { timeout?: ProbeTimeout; budgets?: Partial<Record<ProbeName, number>> } = {}): Record<ProbeName, number> {
  const out = { ...PROBE_BUDGETS_MS, ...opts.budgets } as Record<ProbeName, number>;
  const t = opts.timeout;
  for (const n of PROBE_NAMES) {
    if (t && 'overrideMs' in t) out[n] = t.overrideMs;
    else if (t) out[n] = Math.max(1, Math.round(out[n] * t.scale));
  }
  return out;
}

/**
 * The budgets of the `retry`-th collection of one boot: retry 0 uses `base`
 * as given, each later one doubles it (a scale, or every probe's limit), up
 * to MAX_PROBE_SCALE / MAX_PROBE_TIMEOUT_MS. Pure.
 */
export function retryTimeout(base: ProbeTimeout | undefined, retry: number): ProbeTimeout | undefined {
  if (retry <= 0) return base;
  const factor = 2 ** retry;
  if (base && 'overrideMs' in base) return { overrideMs: Math.min(MAX_PROBE_TIMEOUT_MS, base.overrideMs * factor) };
  return { scale: Math.min(MAX_PROBE_SCALE, (base?.scale ?? 1) * factor) };
}

export interface CollectOptions {
  /** Where /sys is read from (tests point it at a fake tree); default '/'. */
  sysRoot?: string;
  runner?: Runner;
  /** Scales the budgets or replaces them all (`--probe-timeout`); default PROBE_BUDGETS_MS as they are. */
  timeout?: ProbeTimeout;
  /** Limits of single probes (tests), before `timeout` applies. */
  budgets?: Partial<Record<ProbeName, number>>;
  /** Default: the systeminformation package. */
  si?: SiApi;
  /** Default: os.networkInterfaces (addresses per interface). */
  addresses?: () => Record<string, string[]>;
  now?: () => Date;
}

export const NVIDIA_SMI_ARGS = [
  '--query-gpu=name,memory.total,driver_version,pci.bus_id,serial,uuid',
  '--format=csv,noheader,nounits',
];

class ProbeTimedOut extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeTimedOut(`timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs one probe; failure or timeout → fallback value, and the reason in `failed` under the probe's name. */
async function probe<T>(name: ProbeName, ms: number, failed: Map<string, string>, fallback: T, fn: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(
      Promise.resolve().then(fn),
      ms,
    );
  } catch (e) {
    failed.set(name, `${name}: ${e instanceof Error ? e.message : String(e)}`);
    return fallback;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const bool = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);
const rec = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

/** Keeps only defined values (so the raw JSON stays small and stable). */
function pick<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------- systeminformation (trimmed)

function trimSi(name: keyof RawSi, v: unknown): unknown {
  const o = rec(v);
  switch (name) {
    case 'system':
      return pick({ manufacturer: str(o.manufacturer), model: str(o.model), serial: str(o.serial), uuid: str(o.uuid), sku: str(o.sku), virtual: bool(o.virtual) });
    case 'baseboard':
      return pick({ manufacturer: str(o.manufacturer), model: str(o.model), serial: str(o.serial), version: str(o.version) });
    case 'bios':
      return pick({ vendor: str(o.vendor), version: str(o.version), releaseDate: str(o.releaseDate) });
    case 'cpu':
      return pick({ manufacturer: str(o.manufacturer), brand: str(o.brand), speed: num(o.speed), cores: num(o.cores), physicalCores: num(o.physicalCores), processors: num(o.processors) });
    case 'mem':
      return pick({ total: num(o.total) });
    case 'memLayout':
      return (Array.isArray(v) ? v : []).map((d) => {
        const m = rec(d);
        return pick({ size: num(m.size), bank: str(m.bank), type: str(m.type), clockSpeed: num(m.clockSpeed), manufacturer: str(m.manufacturer), partNum: str(m.partNum), serialNum: str(m.serialNum) });
      });
    case 'diskLayout':
      return (Array.isArray(v) ? v : []).map((d) => {
        const m = rec(d);
        return pick({ device: str(m.device), type: str(m.type), name: str(m.name), vendor: str(m.vendor), size: num(m.size), serialNum: str(m.serialNum), interfaceType: str(m.interfaceType) });
      });
    case 'networkInterfaces':
      return (Array.isArray(v) ? v : []).map((d) => {
        const m = rec(d);
        return pick({ iface: str(m.iface), mac: str(m.mac), ip4: str(m.ip4), ip4subnet: str(m.ip4subnet), ip6: str(m.ip6), ip6subnet: str(m.ip6subnet), speed: num(m.speed), operstate: str(m.operstate), internal: bool(m.internal), virtual: bool(m.virtual) });
      });
    case 'osInfo':
      return pick({ distro: str(o.distro), release: str(o.release), kernel: str(o.kernel), arch: str(o.arch), hostname: str(o.hostname), uefi: bool(o.uefi) });
  }
}

// ---------------------------------------------------------------- /sys

async function readText(p: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(p, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function readNum(p: string): Promise<number | undefined> {
  const t = await readText(p);
  if (t === undefined || t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

async function linkBase(p: string): Promise<string | undefined> {
  try {
    return path.basename(await fs.readlink(p));
  } catch {
    return undefined;
  }
}

async function realOf(p: string): Promise<string | undefined> {
  try {
    return await fs.realpath(p);
  } catch {
    return undefined;
  }
}

async function listDir(p: string): Promise<string[]> {
  try {
    return (await fs.readdir(p)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

async function readNetSys(sys: string, addrs: Record<string, string[]>): Promise<RawNetSys[]> {
  const base = path.join(sys, 'class/net');
  return Promise.all(
    (await listDir(base)).map(async (name) => {
      const d = path.join(base, name);
      const real = await realOf(d);
      return pick<RawNetSys>({
        name,
        driver: await linkBase(path.join(d, 'device/driver')),
        speed: await readNum(path.join(d, 'speed')),
        carrier: await readNum(path.join(d, 'carrier')),
        address: await readText(path.join(d, 'address')),
        operstate: await readText(path.join(d, 'operstate')),
        virtual: real !== undefined ? real.includes('/devices/virtual/') : undefined,
        addresses: addrs[name],
      });
    }),
  );
}

async function readBlockSys(sys: string): Promise<RawBlockSys[]> {
  const base = path.join(sys, 'block');
  return Promise.all(
    (await listDir(base)).map(async (name) => {
      const d = path.join(base, name);
      return pick<RawBlockSys>({
        name,
        rotational: await readNum(path.join(d, 'queue/rotational')),
        sizeSectors: await readNum(path.join(d, 'size')),
        model: (await readText(path.join(d, 'device/model'))) || undefined,
        serial: (await readText(path.join(d, 'device/serial'))) || (await readText(path.join(d, 'serial'))) || undefined,
        vendor: (await readText(path.join(d, 'device/vendor'))) || undefined,
        devicePath: await realOf(d),
      });
    }),
  );
}

async function readIbSys(sys: string): Promise<RawIbSys[]> {
  const base = path.join(sys, 'class/infiniband');
  return Promise.all(
    (await listDir(base)).map(async (name) => {
      const d = path.join(base, name);
      const portNames = (await listDir(path.join(d, 'ports'))).filter((p) => /^\d+$/.test(p));
      const ports: RawIbPort[] = await Promise.all(
        portNames.map(async (p) => {
          const pd = path.join(d, 'ports', p);
          return pick<RawIbPort>({
            port: Number(p),
            state: await readText(path.join(pd, 'state')),
            physState: await readText(path.join(pd, 'phys_state')),
            rate: await readText(path.join(pd, 'rate')),
            linkLayer: await readText(path.join(pd, 'link_layer')),
            lid: await readText(path.join(pd, 'lid')),
          });
        }),
      );
      const dev = await realOf(path.join(d, 'device'));
      return pick<RawIbSys>({
        name,
        fwVer: await readText(path.join(d, 'fw_ver')),
        nodeGuid: await readText(path.join(d, 'node_guid')),
        boardId: await readText(path.join(d, 'board_id')),
        hcaType: await readText(path.join(d, 'hca_type')),
        pciBus: dev ? path.basename(dev) : undefined,
        ports: ports.sort((a, b) => a.port - b.port),
      });
    }),
  );
}

async function readNvidiaPci(sys: string): Promise<RawPciDevice[]> {
  const base = path.join(sys, 'bus/pci/devices');
  const all = await Promise.all(
    (await listDir(base)).map(async (address) => {
      const d = path.join(base, address);
      const vendor = (await readText(path.join(d, 'vendor')))?.toLowerCase();
      const cls = (await readText(path.join(d, 'class')))?.toLowerCase();
      if (vendor !== '0x10de' || !cls?.startsWith('0x03')) return undefined;
      return pick<RawPciDevice>({
        address,
        vendor,
        device: (await readText(path.join(d, 'device')))?.toLowerCase() ?? '',
        class: cls,
        driver: await linkBase(path.join(d, 'driver')),
      });
    }),
  );
  return all.filter((x): x is RawPciDevice => x !== undefined);
}

function defaultAddresses(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    out[name] = (list ?? []).map((a) => a.cidr ?? `${a.address}`).filter((a) => a !== '');
  }
  return out;
}

/** Gathers everything toInventory needs. Never throws; see `failed` and `warnings`. */
export async function collectRaw(opts: CollectOptions = {}): Promise<RawInventory> {
  const sys = path.join(opts.sysRoot ?? '/', 'sys');
  const api: SiApi = opts.si ?? (si as unknown as SiApi);
  const runner = opts.runner ?? systemRunner;
  const budget = probeBudgets({ timeout: opts.timeout, budgets: opts.budgets });
  const warnings: string[] = [];
  const failed = new Map<string, string>();
  const now = opts.now ?? (() => new Date());
  const collectedAt = now().toISOString();

  const siJobs = SI_PROBES.map((n) =>
    probe<unknown>(n, budget[n], failed, undefined, async () => trimSi(n, await api[n]())).then((v) => [n, v] as const),
  );
  const addrs = (() => {
    try {
      return (opts.addresses ?? defaultAddresses)();
    } catch (e) {
      warnings.push(`addresses: ${(e as Error).message}`);
      return {};
    }
  })();
  const netJob = probe('sys net', budget['sys net'], failed, [] as RawNetSys[], () => readNetSys(sys, addrs));
  const blockJob = probe('sys block', budget['sys block'], failed, [] as RawBlockSys[], () => readBlockSys(sys));
  const ibJob = probe('sys infiniband', budget['sys infiniband'], failed, [] as RawIbSys[], () => readIbSys(sys));
  const pciJob = probe('sys pci', budget['sys pci'], failed, [] as RawPciDevice[], () => readNvidiaPci(sys));
  const smiTimeout = budget['nvidia-smi'];
  const smiJob = (async (): Promise<string | null> => {
    try {
      const r = await runner.run('nvidia-smi', NVIDIA_SMI_ARGS, { timeoutMs: smiTimeout, env: { LC_ALL: 'C' } });
      if (r.code === 0) return r.stdout;
      // Not installed: no GPUs from it (toInventory warns when PCI shows NVIDIA devices anyway).
      if (r.code === 127 && r.error) return null;
      failed.set('nvidia-smi', `nvidia-smi: ${describeFailure('nvidia-smi', NVIDIA_SMI_ARGS, r)}`);
      return null;
    } catch (e) {
      failed.set('nvidia-smi', `nvidia-smi: ${(e as Error).message}`);
      return null;
    }
  })();

  const [siResults, net, block, infiniband, nvidiaPci, nvidiaSmi] = await Promise.all([Promise.all(siJobs), netJob, blockJob, ibJob, pciJob, smiJob]);
  const raw: Record<string, unknown> = {};
  for (const [n, v] of siResults) if (v !== undefined) raw[n] = v;
  const failedSorted = Object.fromEntries(PROBE_NAMES.filter((n) => failed.has(n)).map((n) => [n, failed.get(n)!]));
  return {
    schema: 1,
    collectedAt,
    si: raw as RawSi,
    sys: { net, block, infiniband, nvidiaPci },
    nvidiaSmi,
    warnings: [...warnings, ...Object.values(failedSorted)].sort(),
    ...(failed.size > 0 ? { failed: failedSorted } : {}),
  };
}

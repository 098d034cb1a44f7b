/**
 * Inventory: toInventory on recorded/hand-written raw data (the fixtures in
 * test/fixtures/inventory), collectRaw against a fake /sys and injected
 * probes, collectRaw on this machine, and diffInventory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingRunner } from '../../../agent/exec.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { formatInventoryText, main } from '../../../agent/main.js';
import { assessReport, compareInventories } from '../../../common/inventory/diff.js';
import {
  NVIDIA_SMI_ARGS,
  PROBE_BUDGETS_MS,
  PROBE_NAMES,
  collectRaw,
  diffInventory,
  failedSections,
  parseProbeTimeout,
  probeBudgets,
  retryTimeout,
  normalizePciBus,
  parseNvidiaSmiCsv,
  toInventory,
  type Inventory,
  type RawInventory,
  type SiApi,
} from '../../../agent/inventory/index.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory');
const load = (name: string): RawInventory => JSON.parse(fs.readFileSync(path.join(FIX, name), 'utf8')) as RawInventory;
const GiB = 1024 ** 3;

describe('toInventory on the fixtures', () => {
  it('debian-vm.json (recorded on the development VM)', () => {
    const inv = toInventory(load('debian-vm.json'));
    expect(inv.cpus).toEqual({ manufacturer: 'AMD', model: 'EPYC', sockets: 1, cores: 2, threads: 2, speedMhz: 0 });
    expect(inv.memory).toEqual({ totalBytes: 25276514304, dimms: [] }); // the DIMM systeminformation invents without dmidecode is dropped
    expect(inv.disks).toEqual([{ name: 'vda', model: '', serial: 'overlayblk', sizeBytes: 274877906944, type: '', rotational: true, interface: 'virtio' }]);
    // lo and the ifb devices are not hardware
    expect(inv.nics).toEqual([{ name: 'eth0', mac: '02:fc:00:00:00:01', speedMbps: 0, driver: 'virtio_net', link: true, addresses: ['192.0.2.2/24', 'fd00::2/64', 'fe80::fc:ff:fe00:1/64'] }]);
    expect(inv.os).toEqual({ distro: 'Debian GNU/Linux', release: '12', kernel: '6.18.44-fc-v595', arch: 'x86_64', hostname: 'vm' });
    expect(inv.system).toEqual({ manufacturer: '', model: 'Docker Container', serial: '', uuid: '', sku: '', virtual: true });
    expect(inv.gpus).toEqual([]);
    expect(inv.infiniband).toEqual([]);
    expect(inv.warnings).toEqual([]);
    expect(inv.collectedAt).toBe('2026-11-21T06:16:13.403Z');
  });

  it('gpu-dgx.json: 8 H100 from nvidia-smi CSV, 2 sockets, 16 DIMMs', () => {
    const inv = toInventory(load('gpu-dgx.json'));
    expect(inv.gpus).toHaveLength(8);
    expect(inv.gpus[0]).toEqual({
      vendor: 'NVIDIA',
      model: 'NVIDIA H100 80GB HBM3',
      memoryMiB: 81559,
      driver: '535.129.03',
      pciBus: '0000:1b:00.0',
      serial: '1654922011231',
      uuid: 'GPU-3b8d2f4e-8c1a-6f0e-2b7d-91c4a5e6f701',
    });
    expect(inv.gpus.map((g) => g.pciBus)).toEqual(['0000:1b:00.0', '0000:43:00.0', '0000:52:00.0', '0000:61:00.0', '0000:9d:00.0', '0000:c3:00.0', '0000:d1:00.0', '0000:df:00.0']);
    expect(inv.cpus).toEqual({ manufacturer: 'Intel', model: 'Xeon® Platinum 8480C', sockets: 2, cores: 112, threads: 224, speedMhz: 2000 });
    expect(inv.memory.dimms).toHaveLength(16); // the two empty slots are not DIMMs
    expect(inv.memory.totalBytes).toBe(16 * 64 * GiB);
    expect(inv.memory.dimms[0]).toEqual({ slot: 'CPU0_DIMM_A1', sizeBytes: 64 * GiB, type: 'DDR5', speedMTs: 4800, serial: 'S0018A1C00', manufacturer: 'Samsung', partNumber: 'M321R8GA0BB0-CQKZJ' });
    expect(inv.disks.map((d) => [d.name, d.type, d.interface, d.sizeBytes, d.serial])).toEqual([
      ['nvme0n1', 'NVMe', 'NVMe', 3750748848 * 512, 'S6M1NE0T800321'],
      ['nvme1n1', 'NVMe', 'NVMe', 3750748848 * 512, 'S6M1NE0T800322'],
      ['nvme2n1', 'NVMe', 'NVMe', 7501476528 * 512, 'S64HNE0T601877'],
    ]); // loop0 and the empty virtual CD-ROM are gone
    expect(inv.nics).toEqual([
      { name: 'enp170s0f0np0', mac: '94:6d:ae:8f:10:2a', speedMbps: 100000, driver: 'mlx5_core', link: true, addresses: ['10.10.3.21/16'] },
      { name: 'enp170s0f1np1', mac: '94:6d:ae:8f:10:2b', speedMbps: 0, driver: 'mlx5_core', link: false, addresses: [] },
    ]); // docker0, veth*, lo filtered
    expect(inv.system).toEqual({ manufacturer: 'NVIDIA', model: 'DGXH100', serial: '1660223000123', uuid: '7c1e5a40-3b2d-11ee-8000-7cc2556f1a9e', sku: '', virtual: false });
    expect(inv.bios).toEqual({ vendor: 'American Megatrends International, LLC.', version: '1.1.3', date: '2023-06-14', uefi: true });
    expect(inv.os).toEqual({ distro: 'AlmaLinux', release: '9.4', kernel: '5.14.0-427.13.1.el9_4.x86_64', arch: 'x86_64', hostname: 'valkyrie03.cluster.local' });
    expect(inv.warnings).toEqual([]);
  });

  it('ib-node.json: 2 mlx5 HCAs with ports, and a GPU visible on PCI without its driver', () => {
    const inv = toInventory(load('ib-node.json'));
    expect(inv.infiniband).toEqual([
      {
        name: 'mlx5_0',
        model: 'MT_0000000223',
        fwVersion: '20.31.1014',
        nodeGuid: 'b8ce:f603:00a1:2b3c',
        pciBus: '0000:5e:00.0',
        ports: [{ port: 1, state: 'ACTIVE', rate: '200 Gb/sec (4X HDR)', linkLayer: 'InfiniBand', physState: 'LinkUp', lid: 26 }],
      },
      {
        name: 'mlx5_1',
        model: 'MT_0000000223',
        fwVersion: '20.31.1014',
        nodeGuid: 'b8ce:f603:00a1:2b3d',
        pciBus: '0000:5e:00.1',
        ports: [{ port: 1, state: 'DOWN', rate: '10 Gb/sec (4X SDR)', linkLayer: 'InfiniBand', physState: 'Disabled', lid: 0 }],
      },
    ]);
    expect(inv.gpus).toEqual([{ vendor: 'NVIDIA', model: 'NVIDIA [10de:20b5]', memoryMiB: 0, driver: 'nouveau', pciBus: '0000:af:00.0' }]);
    expect(inv.warnings).toEqual(['gpus: 1 NVIDIA PCI device but nvidia-smi reported 0 (nvidia-smi absent or failed: driver not installed or not loaded?)']);
    expect(inv.nics.map((n) => [n.name, n.mac, n.driver, n.link, n.speedMbps])).toEqual([
      ['eno1', '3c:ec:ef:1a:2b:3c', 'ixgbe', true, 10000],
      ['eno2', '3c:ec:ef:1a:2b:3d', 'ixgbe', false, 0],
      ['ib0', '00:00:10:87:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:a1:2b:3c', 'mlx5_core', true, 200000],
      ['ib1', '00:00:18:87:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:a1:2b:3d', 'mlx5_core', false, 0],
    ]);
    expect(inv.disks).toEqual([
      { name: 'sda', model: 'INTEL SSDSC2KB48', serial: 'PHYF912300AB480BGN', sizeBytes: 937703088 * 512, type: 'SSD', rotational: false, interface: 'SATA' },
      { name: 'sdb', model: 'ST4000NM0035-1V4', serial: 'ZC1B2C3D', sizeBytes: 7814037168 * 512, type: 'HDD', rotational: true, interface: 'SATA' },
    ]); // zram0 filtered; sda's serial from systeminformation, sdb's type from /sys rotational
    expect(inv.memory).toMatchObject({ totalBytes: 12 * 16 * GiB });
    expect(inv.cpus).toMatchObject({ sockets: 2, cores: 48, threads: 96 });
    expect(inv.system.sku).toBe(''); // "To Be Filled By O.E.M."
  });

  it('is pure: same input, same output, input untouched', () => {
    for (const f of ['debian-vm.json', 'gpu-dgx.json', 'ib-node.json']) {
      const raw = load(f);
      const copy = structuredClone(raw);
      expect(toInventory(raw)).toEqual(toInventory(copy));
      expect(raw).toEqual(copy);
    }
  });

  it('parses nvidia-smi CSV with [N/A] fields and normalizes PCI addresses', () => {
    expect(parseNvidiaSmiCsv('Tesla T4, 15360, 550.54.15, 00000000:3B:00.0, [N/A], GPU-aaaa\n\n')).toEqual([
      { vendor: 'NVIDIA', model: 'Tesla T4', memoryMiB: 15360, driver: '550.54.15', pciBus: '0000:3b:00.0', uuid: 'GPU-aaaa' },
    ]);
    expect(normalizePciBus('0000:AF:00.1')).toBe('0000:af:00.1');
    expect(normalizePciBus('3b:00.0')).toBe('0000:3b:00.0');
  });
});

// ------------------------------------------------------------------ collectRaw with fakes

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function fakeSys(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-sys-'));
  tmpDirs.push(root);
  const w = (p: string, c: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), c);
  };
  const dir = (p: string): void => {
    fs.mkdirSync(path.join(root, p), { recursive: true });
  };
  const link = (target: string, p: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.symlinkSync(target, path.join(root, p));
  };
  // PCI devices: a GPU with its driver, an HCA, a NIC
  for (const [addr, vendor, cls, dev, drv] of [
    ['0000:3b:00.0', '0x10de', '0x030200', '0x2330', 'nvidia'],
    ['0000:5e:00.0', '0x15b3', '0x020700', '0x101b', 'mlx5_core'],
    ['0000:18:00.0', '0x8086', '0x020000', '0x1563', 'ixgbe'],
  ] as const) {
    w(`sys/devices/pci0000:00/${addr}/vendor`, `${vendor}\n`);
    w(`sys/devices/pci0000:00/${addr}/class`, `${cls}\n`);
    w(`sys/devices/pci0000:00/${addr}/device`, `${dev}\n`);
    dir(`sys/bus/pci/drivers/${drv}`);
    link(`../../../bus/pci/drivers/${drv}`, `sys/devices/pci0000:00/${addr}/driver`);
    link(`../../../devices/pci0000:00/${addr}`, `sys/bus/pci/devices/${addr}`);
  }
  // net: eno1 (physical), ib0, lo (virtual)
  dir('sys/devices/pci0000:00/0000:18:00.0/net/eno1');
  link('../../devices/pci0000:00/0000:18:00.0/net/eno1', 'sys/class/net/eno1');
  link('../../../../bus/pci/drivers/ixgbe', 'sys/devices/pci0000:00/0000:18:00.0/net/eno1/device/driver');
  w('sys/devices/pci0000:00/0000:18:00.0/net/eno1/speed', '10000\n');
  w('sys/devices/pci0000:00/0000:18:00.0/net/eno1/carrier', '1\n');
  w('sys/devices/pci0000:00/0000:18:00.0/net/eno1/address', '3c:ec:ef:1a:2b:3c\n');
  w('sys/devices/pci0000:00/0000:18:00.0/net/eno1/operstate', 'up\n');
  dir('sys/devices/virtual/net/lo');
  link('../../devices/virtual/net/lo', 'sys/class/net/lo');
  w('sys/devices/virtual/net/lo/address', '00:00:00:00:00:00\n');
  // block: sda (spinning, SATA), loop0
  w('sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/size', '7814037168\n');
  w('sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/queue/rotational', '1\n');
  w('sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/model', 'ST4000NM0035-1V4\n');
  link('../..', 'sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/device');
  link('../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda', 'sys/block/sda');
  w('sys/devices/virtual/block/loop0/size', '0\n');
  link('../devices/virtual/block/loop0', 'sys/block/loop0');
  // infiniband
  const ib = 'sys/devices/pci0000:00/0000:5e:00.0/infiniband/mlx5_0';
  w(`${ib}/fw_ver`, '20.31.1014\n');
  w(`${ib}/node_guid`, 'b8ce:f603:00a1:2b3c\n');
  w(`${ib}/board_id`, 'MT_0000000223\n');
  w(`${ib}/hca_type`, 'MT4123\n');
  w(`${ib}/ports/1/state`, '4: ACTIVE\n');
  w(`${ib}/ports/1/phys_state`, '5: LinkUp\n');
  w(`${ib}/ports/1/rate`, '200 Gb/sec (4X HDR)\n');
  w(`${ib}/ports/1/link_layer`, 'InfiniBand\n');
  w(`${ib}/ports/1/lid`, '0x1a\n');
  link('../..', `${ib}/device`);
  link(`../../devices/pci0000:00/0000:5e:00.0/infiniband/mlx5_0`, 'sys/class/infiniband/mlx5_0');
  return root;
}

const FAST_SI: SiApi = {
  system: async () => ({ manufacturer: 'Supermicro', model: 'SYS-1', serial: 'S1', uuid: 'U1', sku: '', virtual: false }),
  baseboard: async () => ({ manufacturer: 'Supermicro', model: 'X11', serial: 'B1', version: '1.0' }),
  bios: async () => ({ vendor: 'AMI', version: '3.4', releaseDate: '2020-10-28' }),
  cpu: async () => ({ manufacturer: 'Intel', brand: 'Xeon® Gold 6248R', speed: 3, cores: 96, physicalCores: 48, processors: 2, flags: 'fpu vme' }),
  mem: async () => ({ total: 201226424320, free: 1 }),
  memLayout: async () => [{ size: 17179869184, bank: 'P1-DIMMA1', type: 'DDR4', clockSpeed: 2933, serialNum: 'X1', partNum: 'P', manufacturer: 'Micron', voltageMin: 1.2 }],
  diskLayout: async () => [],
  networkInterfaces: async () => [],
  osInfo: async () => ({ distro: 'AlmaLinux', release: '9.4', kernel: '5.14.0', arch: 'x64', hostname: 'n1', uefi: false, serial: 'machine-id-not-kept' }),
};

describe('collectRaw with a fake /sys and injected probes', () => {
  it('reads /sys (net, block, infiniband, NVIDIA PCI) and nvidia-smi through the runner', async () => {
    const sysRoot = fakeSys();
    const runner = new RecordingRunner((cmd) => (cmd === 'nvidia-smi' ? { stdout: 'NVIDIA H100 80GB HBM3, 81559, 535.129.03, 00000000:3B:00.0, 1654922011231, GPU-3b8d\n' } : undefined));
    const raw = await collectRaw({ sysRoot, runner, si: FAST_SI, addresses: () => ({ eno1: ['10.10.3.1/16'] }), now: () => new Date('2025-01-02T03:04:05Z') });
    expect(runner.argvs).toEqual([['nvidia-smi', ...NVIDIA_SMI_ARGS]]);
    expect(runner.calls[0]!.opts.timeoutMs).toBe(PROBE_BUDGETS_MS['nvidia-smi']);
    expect(raw.warnings).toEqual([]);
    expect(raw).not.toHaveProperty('failed');
    expect(raw.si.osInfo).not.toHaveProperty('serial'); // machine id not kept
    expect(raw.sys.nvidiaPci).toEqual([{ address: '0000:3b:00.0', vendor: '0x10de', device: '0x2330', class: '0x030200', driver: 'nvidia' }]);
    const inv = toInventory(raw);
    expect(inv.collectedAt).toBe('2025-01-02T03:04:05.000Z');
    expect(inv.nics).toEqual([{ name: 'eno1', mac: '3c:ec:ef:1a:2b:3c', speedMbps: 10000, driver: 'ixgbe', link: true, addresses: ['10.10.3.1/16'] }]);
    expect(inv.disks).toEqual([{ name: 'sda', model: 'ST4000NM0035-1V4', serial: '', sizeBytes: 7814037168 * 512, type: 'HDD', rotational: true, interface: 'SATA' }]);
    expect(inv.infiniband).toEqual([
      { name: 'mlx5_0', model: 'MT_0000000223', fwVersion: '20.31.1014', nodeGuid: 'b8ce:f603:00a1:2b3c', pciBus: '0000:5e:00.0', ports: [{ port: 1, state: 'ACTIVE', rate: '200 Gb/sec (4X HDR)', linkLayer: 'InfiniBand', physState: 'LinkUp', lid: 26 }] },
    ]);
    expect(inv.gpus).toEqual([{ vendor: 'NVIDIA', model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, driver: '535.129.03', pciBus: '0000:3b:00.0', serial: '1654922011231', uuid: 'GPU-3b8d' }]);
    expect(inv.memory).toMatchObject({ totalBytes: 16 * GiB });
    expect(inv.warnings).toEqual([]);
    expect(inv.unknown).toEqual([]);
    expect(inv.partial).toBe(false);
  });

  it('a probe that fails or hangs makes its section unknown with the reason, never a crash, within its time limit', async () => {
    const si: SiApi = {
      ...FAST_SI,
      cpu: async () => {
        throw new Error('dmidecode exploded');
      },
      memLayout: () => new Promise(() => {}), // never answers
    };
    const runner = new RecordingRunner((cmd) => (cmd === 'nvidia-smi' ? { code: 127, error: 'spawn nvidia-smi ENOENT' } : undefined));
    const t0 = Date.now();
    const raw = await collectRaw({ sysRoot: fakeSys(), runner, si, timeout: { overrideMs: 200 } });
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(1500);
    expect(raw.warnings).toEqual(['cpu: dmidecode exploded', 'memLayout: timed out after 200 ms']);
    expect(raw.failed).toEqual({ cpu: 'cpu: dmidecode exploded', memLayout: 'memLayout: timed out after 200 ms' });
    expect(raw.nvidiaSmi).toBeNull(); // absent nvidia-smi is not a warning by itself
    const inv = toInventory(raw);
    expect(inv.unknown).toEqual([
      { section: 'cpus', reason: 'cpu: dmidecode exploded' },
      { section: 'dimms', reason: 'memLayout: timed out after 200 ms' },
    ]);
    expect(inv.partial).toBe(true);
    // the kernel's total is still known without the DIMMs
    expect(inv.memory).toEqual({ totalBytes: 201226424320, dimms: [] });
    expect(inv.system.model).toBe('SYS-1');
    // but the NVIDIA device on PCI is: driver missing is visible
    expect(inv.gpus).toEqual([{ vendor: 'NVIDIA', model: 'NVIDIA [10de:2330]', memoryMiB: 0, driver: 'nvidia', pciBus: '0000:3b:00.0' }]);
    expect(inv.warnings).toContain('gpus: 1 NVIDIA PCI device but nvidia-smi reported 0 (nvidia-smi absent or failed: driver not installed or not loaded?)');
  });

  it('a failing nvidia-smi is a warning', async () => {
    const runner = new RecordingRunner((cmd) => (cmd === 'nvidia-smi' ? { code: 9, stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n" } : undefined));
    const raw = await collectRaw({ sysRoot: fakeSys(), runner, si: FAST_SI });
    expect(raw.nvidiaSmi).toBeNull();
    expect(raw.warnings).toHaveLength(1);
    expect(raw.warnings[0]).toMatch(/^nvidia-smi: nvidia-smi --query-gpu=.* exit 9: NVIDIA-SMI has failed/);
  });
});

// ------------------------------------------------------------------ budgets and unknown sections

describe('probe budgets', () => {
  it('parseProbeTimeout: Nx scales the budgets, a duration replaces them all, anything else is a usage error', () => {
    expect(parseProbeTimeout('3x')).toEqual({ scale: 3 });
    expect(parseProbeTimeout('x1.5')).toEqual({ scale: 1.5 });
    expect(parseProbeTimeout(' 2X ')).toEqual({ scale: 2 });
    expect(parseProbeTimeout('30s')).toEqual({ overrideMs: 30_000 });
    expect(parseProbeTimeout('1500ms')).toEqual({ overrideMs: 1500 });
    expect(parseProbeTimeout('2m')).toEqual({ overrideMs: 120_000 });
    expect(parseProbeTimeout('5')).toEqual({ overrideMs: 5000 }); // a bare number is seconds
    for (const bad of ['0x', '0', 'abc', '-1s', '101x', '11m', '3h', '']) {
      let err: unknown;
      try {
        parseProbeTimeout(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(FleetError);
      expect((err as FleetError).code, bad).toBe('usage.invalid');
      expect((err as FleetError).message, bad).toMatch(/^--probe-timeout: /);
    }
  });

  it('retryTimeout: the first collection as asked, each retry twice the time, within the limits', () => {
    expect(retryTimeout(undefined, 0)).toBeUndefined();
    expect(retryTimeout(undefined, 1)).toEqual({ scale: 2 });
    expect(retryTimeout(undefined, 4)).toEqual({ scale: 16 });
    expect(retryTimeout({ scale: 3 }, 0)).toEqual({ scale: 3 });
    expect(retryTimeout({ scale: 3 }, 2)).toEqual({ scale: 12 });
    expect(retryTimeout({ scale: 60 }, 1)).toEqual({ scale: 100 });
    expect(retryTimeout({ overrideMs: 30_000 }, 1)).toEqual({ overrideMs: 60_000 });
    expect(retryTimeout({ overrideMs: 300_000 }, 2)).toEqual({ overrideMs: 600_000 });
    expect(probeBudgets({ timeout: retryTimeout(undefined, 1) }).cpu).toBe(2 * PROBE_BUDGETS_MS.cpu);
  });

  it('probeBudgets: each probe its own budget, scaled or overridden; single budgets first', () => {
    expect(probeBudgets()).toEqual(PROBE_BUDGETS_MS);
    // sized for what each does: a /sys walk less than a systeminformation call, nvidia-smi the most
    expect(PROBE_BUDGETS_MS['sys block']).toBeLessThan(PROBE_BUDGETS_MS.mem);
    expect(PROBE_BUDGETS_MS['nvidia-smi']).toBeGreaterThan(PROBE_BUDGETS_MS.diskLayout);
    const doubled = probeBudgets({ timeout: { scale: 2 } });
    for (const n of PROBE_NAMES) expect(doubled[n], n).toBe(PROBE_BUDGETS_MS[n] * 2);
    const flat = probeBudgets({ timeout: { overrideMs: 777 } });
    for (const n of PROBE_NAMES) expect(flat[n], n).toBe(777);
    expect(probeBudgets({ budgets: { mem: 40 }, timeout: { scale: 3 } })).toMatchObject({ mem: 120, cpu: PROBE_BUDGETS_MS.cpu * 3 });
  });

  it('probes run at once, each under its own budget: a slow probe within its budget answers, a late one is unknown', async () => {
    const delay = <T>(ms: number, v: T) => new Promise<T>((r) => setTimeout(() => r(v), ms));
    const si: SiApi = { ...FAST_SI, cpu: () => delay(300, { brand: 'Slow CPU', cores: 4, physicalCores: 4, processors: 1 }), mem: () => delay(300, { total: 8 * GiB }) };
    const budgets = Object.fromEntries(PROBE_NAMES.map((n) => [n, 1000])) as Record<(typeof PROBE_NAMES)[number], number>;
    const t0 = Date.now();
    const raw = await collectRaw({ sysRoot: fakeSys(), runner: new RecordingRunner(), si, budgets: { ...budgets, mem: 100 } });
    expect(Date.now() - t0).toBeLessThan(900); // concurrent: the slowest, not the sum
    const inv = toInventory(raw);
    expect(inv.cpus.model).toBe('Slow CPU');
    expect(raw.failed).toEqual({ mem: 'mem: timed out after 100 ms' });
    // the DIMMs still give the total: memory known
    expect(inv.memory.totalBytes).toBe(16 * GiB);
    expect(inv.unknown).toEqual([]);
  });
});

describe('unknown sections', () => {
  const hang = () => new Promise<never>(() => {});

  it('an emulated machine whose systeminformation probes all time out: unknown with reasons, never zeros as data; /sys still gives disks and NICs', async () => {
    const si = Object.fromEntries(Object.keys(FAST_SI).map((k) => [k, hang])) as unknown as SiApi;
    const runner = new RecordingRunner((cmd) => (cmd === 'nvidia-smi' ? { code: 127, error: 'spawn nvidia-smi ENOENT' } : undefined));
    const raw = await collectRaw({ sysRoot: fakeSys(), runner, si, timeout: { overrideMs: 50 } });
    const inv = toInventory(raw);
    expect(inv.partial).toBe(true);
    expect(inv.unknown).toEqual([
      { section: 'system', reason: 'system: timed out after 50 ms' },
      { section: 'baseboard', reason: 'baseboard: timed out after 50 ms' },
      { section: 'bios', reason: 'bios: timed out after 50 ms' },
      { section: 'cpus', reason: 'cpu: timed out after 50 ms' },
      { section: 'memory', reason: 'mem: timed out after 50 ms; memLayout: timed out after 50 ms' },
      { section: 'dimms', reason: 'memLayout: timed out after 50 ms' },
      { section: 'os', reason: 'osInfo: timed out after 50 ms' },
    ]);
    expect(inv.disks.map((d) => d.name)).toEqual(['sda']);
    expect(inv.nics.map((n) => n.mac)).toEqual(['3c:ec:ef:1a:2b:3c']);
  });

  it('a broken /sys walk with its systeminformation fallback failing too: disks, NICs and GPUs unknown', async () => {
    const sysRoot = fakeSys();
    for (const d of ['sys/block', 'sys/class/net', 'sys/bus/pci/devices']) {
      fs.rmSync(path.join(sysRoot, d), { recursive: true });
      fs.writeFileSync(path.join(sysRoot, d), 'not a directory'); // readdir: ENOTDIR
    }
    const si: SiApi = {
      ...FAST_SI,
      diskLayout: async () => {
        throw new Error('lsblk: not found');
      },
      networkInterfaces: hang,
    };
    const runner = new RecordingRunner((cmd) => (cmd === 'nvidia-smi' ? { code: 127, error: 'spawn nvidia-smi ENOENT' } : undefined));
    const inv = toInventory(await collectRaw({ sysRoot, runner, si, timeout: { overrideMs: 1000 } }));
    expect(inv.unknown.map((u) => u.section)).toEqual(['disks', 'nics', 'gpus']);
    expect(inv.unknown[0]!.reason).toMatch(/^sys block: ENOTDIR.*; diskLayout: lsblk: not found$/);
    expect(inv.unknown[1]!.reason).toMatch(/^sys net: ENOTDIR.*; networkInterfaces: timed out after 1000 ms$/);
    expect(inv.unknown[2]!.reason).toMatch(/^sys pci: ENOTDIR/);
    expect(inv.cpus.model).toBe('Xeon® Gold 6248R');
  });

  it('failedSections: a second source keeps a section known; memory from the DIMMs or the kernel', () => {
    const raw = (failed: Record<string, string>, over: Partial<RawInventory> = {}): RawInventory => ({
      schema: 1,
      collectedAt: '',
      si: {},
      sys: { net: [], block: [], infiniband: [], nvidiaPci: [] },
      nvidiaSmi: null,
      warnings: Object.values(failed),
      failed,
      ...over,
    });
    // /sys failed, systeminformation answered: known
    expect(failedSections(raw({ 'sys block': 'sys block: EIO' }), 1)).toEqual([]);
    // /sys answered, systeminformation failed: known
    const block = [{ name: 'sda', sizeSectors: 10 }];
    expect(failedSections(raw({ diskLayout: 'diskLayout: x' }, { sys: { net: [], block, infiniband: [], nvidiaPci: [] } }), 1)).toEqual([]);
    // nvidia-smi answered though the PCI walk failed: known
    expect(failedSections(raw({ 'sys pci': 'sys pci: EIO' }, { nvidiaSmi: '' }), 1)).toEqual([]);
    // the kernel's total failed but the DIMMs gave one: memory known
    expect(failedSections(raw({ mem: 'mem: timed out after 10000 ms' }), 64 * GiB)).toEqual([]);
    expect(failedSections(raw({ mem: 'mem: timed out after 10000 ms' }), 0)).toEqual([{ section: 'memory', reason: 'mem: timed out after 10000 ms' }]);
  });

  it('a recording without `failed` that has no CPU and no memory is partial, not a machine with none', () => {
    const inv = toInventory({ schema: 1, collectedAt: '', si: {}, sys: { net: [], block: [], infiniband: [], nvidiaPci: [] }, nvidiaSmi: null, warnings: [] });
    expect(inv.unknown).toEqual([
      { section: 'cpus', reason: 'no CPU reported' },
      { section: 'memory', reason: 'no memory size reported' },
    ]);
    expect(inv.partial).toBe(true);
    for (const f of ['debian-vm.json', 'gpu-dgx.json', 'ib-node.json']) expect(toInventory(load(f)).partial, f).toBe(false);
  });
});

describe('fleet-agent inventory', () => {
  it('prints an unknown section as unknown with its reason, and says the report is partial', () => {
    const inv = toInventory(load('debian-vm.json'));
    const partial: Inventory = { ...inv, memory: { totalBytes: 0, dimms: [] }, unknown: [{ section: 'memory', reason: 'mem: timed out after 10000 ms' }], partial: true };
    const text = formatInventoryText(partial);
    expect(text).toMatch(/^memory +unknown \(mem: timed out after 10000 ms\)$/m);
    expect(text).not.toMatch(/0 GiB/);
    expect(text).toMatch(/^partial: memory unknown$/m);
    expect(formatInventoryText(inv)).toMatch(/^memory +23\.5 GiB$/m);
    expect(formatInventoryText(inv)).not.toMatch(/unknown|partial/);
  });

  it('--probe-timeout (inventory and run): a value that is neither a multiplier nor a duration is a usage error', async () => {
    let err = '';
    const io = { stdout: () => {}, stderr: (s: string) => void (err += s) };
    expect(await main(['node', 'fleet-agent', 'inventory', '--probe-timeout', 'soon'], io)).toBe(Exit.USAGE);
    expect(err).toContain('--probe-timeout: "soon" is not a duration up to 10m (e.g. 30s, 1500ms) nor a multiplier of the budgets (e.g. 3x)');
    // run takes it too, and refuses it before touching the state dir
    err = '';
    expect(await main(['node', 'fleet-agent', 'run', '--once', '--state-dir', '/nonexistent/fleet-test', '--probe-timeout', '0x'], io)).toBe(Exit.USAGE);
    expect(err).toContain('--probe-timeout: the multiplier 0x must be above 0 and at most 100');
  });
});

describe('diff against partial reports', () => {
  const dgx = (): Inventory => toInventory(load('gpu-dgx.json'));
  const unknownOf = (inv: Inventory, ...sections: Inventory['unknown']): Inventory => ({ ...inv, unknown: sections, partial: true });

  it('never compares with a partial baseline, and says so', () => {
    const before = unknownOf({ ...dgx(), memory: { totalBytes: 0, dimms: [] } }, { section: 'memory', reason: 'mem: timed out after 10000 ms' });
    const after = dgx();
    after.bios.version = '9.9'; // a real change, still not reported against a partial baseline
    expect(compareInventories(before, after)).toEqual({ refused: 'baseline is partial (memory unknown): no comparison', notCompared: [], changes: [] });
    const two = unknownOf(dgx(), { section: 'memory', reason: 'a' }, { section: 'disks', reason: 'b' });
    expect(compareInventories(two, after).refused).toBe('baseline is partial (memory, disks unknown): no comparison');
  });

  it('a partial new report is no change for the sections it does not know, and a change for the others', () => {
    const before = dgx();
    const after = unknownOf(
      { ...dgx(), memory: { totalBytes: 0, dimms: [] }, disks: [], gpus: [] },
      { section: 'memory', reason: 'mem: timed out after 10000 ms' },
      { section: 'dimms', reason: 'memLayout: timed out after 10000 ms' },
      { section: 'disks', reason: 'sys block: EIO; diskLayout: EIO' },
      { section: 'gpus', reason: 'sys pci: EIO; nvidia-smi: timed out' },
    );
    after.bios.version = '9.9';
    const cmp = compareInventories(before, after);
    expect(cmp.refused).toBeNull();
    expect(cmp.changes.map((c) => c.kind)).toEqual(['bios-version']);
    expect(cmp.notCompared.map((u) => u.section)).toEqual(['memory', 'dimms', 'disks', 'gpus']);
    // the same values with the sections known are changes
    const known = { ...after, unknown: [], partial: false };
    expect(diffInventory(before, known).map((c) => c.kind)).toEqual(expect.arrayContaining(['memory-total', 'dimm-removed', 'disk-removed', 'gpu-count']));
  });

  it('DIMMs unknown in the new report: a kernel total is not compared with a DIMM total', () => {
    const before = dgx(); // total from 16 DIMMs
    const after = unknownOf({ ...dgx(), memory: { totalBytes: 1000 * GiB, dimms: [] } }, { section: 'dimms', reason: 'memLayout: timed out after 10000 ms' });
    expect(diffInventory(before, after)).toEqual([]);
  });

  it('assessReport: what the server writes in agent.inventory', () => {
    const a = dgx();
    const b = dgx();
    b.bios.version = '9.9';
    const partial = unknownOf(dgx(), { section: 'cpus', reason: 'cpu: timed out after 10000 ms' });
    expect(assessReport(null, a)).toEqual({ partial: false, unknown: [], hardwareChanged: null, changes: [] });
    expect(assessReport(a, a)).toEqual({ partial: false, unknown: [], hardwareChanged: false, changes: [] });
    expect(assessReport(a, b)).toEqual({ partial: false, unknown: [], hardwareChanged: true, changes: ['bios-version'] });
    expect(assessReport(partial, b)).toEqual({ partial: false, unknown: [], hardwareChanged: null, changes: [], refused: 'baseline is partial (cpus unknown): no comparison' });
    expect(assessReport(a, partial)).toEqual({ partial: true, unknown: ['cpus'], hardwareChanged: false, changes: [] });
  });
});

// ------------------------------------------------------------------ this machine

describe('collectRaw on this machine', () => {
  // What this machine really has. How long it takes is measured by `npm run bench -- inventory`
  // (target < 2 s), not here: a loaded CI machine made a timed assertion (and the former flat
  // 1.5 s probe limit, which left the CPU model empty) flaky. One 15 s limit for every probe here.
  it('returns real values', async () => {
    const raw = await collectRaw({ timeout: { overrideMs: 15_000 } });
    const inv = toInventory(raw);
    expect(inv.cpus.model, JSON.stringify(raw.warnings)).not.toBe('');
    expect(inv.cpus.threads).toBe(os.cpus().length);
    expect(inv.memory.totalBytes).toBeGreaterThan(0);
    expect(inv.nics.length + inv.disks.length).toBeGreaterThan(0);
    expect(inv.os.kernel).toBe(os.release());
    expect(inv.nics.some((n) => n.name === 'lo')).toBe(false);
  });
});

// ------------------------------------------------------------------ diffInventory

describe('diffInventory', () => {
  const dgx = (): Inventory => toInventory(load('gpu-dgx.json'));

  it('finds nothing between two collections of the same hardware', () => {
    const a = dgx();
    const b = dgx();
    b.collectedAt = '2030-01-01T00:00:00.000Z';
    b.nics[0]!.link = false; // volatile: not a hardware change
    expect(diffInventory(a, b)).toEqual([]);
  });

  it('reports a DIMM and a GPU vanishing', () => {
    const a = dgx();
    const b = dgx();
    b.memory.dimms = b.memory.dimms.filter((d) => d.slot !== 'CPU1_DIMM_C1');
    b.memory.totalBytes -= 64 * GiB;
    b.gpus = b.gpus.filter((g) => g.pciBus !== '0000:61:00.0');
    expect(diffInventory(a, b)).toEqual([
      { kind: 'dimm-removed', subject: 'CPU1_DIMM_C1', before: 'S1038A1C10', message: 'DIMM CPU1_DIMM_C1 (64 GiB, serial S1038A1C10) is gone' },
      { kind: 'memory-total', subject: '', before: String(1024 * GiB), after: String(960 * GiB), message: 'memory total 1024 GiB → 960 GiB' },
      { kind: 'gpu-count', subject: '', before: '8', after: '7', message: 'GPU count 8 → 7' },
      { kind: 'gpu-removed', subject: '0000:61:00.0', before: 'NVIDIA H100 80GB HBM3', message: 'GPU 0000:61:00.0 (NVIDIA H100 80GB HBM3, serial 1654922011009) is gone' },
    ]);
  });

  it('reports a swapped GPU model, a replaced disk, a changed NIC MAC, a new BIOS, a re-flashed HCA', () => {
    const a = dgx();
    const b = dgx();
    b.gpus[2] = { ...b.gpus[2]!, model: 'NVIDIA A100-SXM4-80GB' };
    b.disks[1] = { ...b.disks[1]!, serial: 'S6M1NE0T899999' };
    b.nics[0] = { ...b.nics[0]!, mac: '94:6d:ae:8f:10:ff' };
    b.bios.version = '1.2.0';
    const ib = toInventory(load('ib-node.json'));
    const ib2 = toInventory(load('ib-node.json'));
    ib2.infiniband[1] = { ...ib2.infiniband[1]!, fwVersion: '20.39.1002' };
    expect(diffInventory(a, b).map((c) => c.kind)).toEqual(['bios-version', 'gpu-model', 'disk-replaced', 'nic-mac']);
    expect(diffInventory(a, b).find((c) => c.kind === 'disk-replaced')).toEqual({
      kind: 'disk-replaced',
      subject: 'nvme1n1',
      before: 'S6M1NE0T800322',
      after: 'S6M1NE0T899999',
      message: 'disk nvme1n1 SAMSUNG MZ1L21T9HCLS-00A07 (serial S6M1NE0T800322) replaced by nvme1n1 SAMSUNG MZ1L21T9HCLS-00A07 (serial S6M1NE0T899999)',
    });
    expect(diffInventory(ib, ib2)).toEqual([{ kind: 'infiniband-firmware', subject: 'mlx5_1', before: '20.31.1014', after: '20.39.1002', message: 'HCA mlx5_1 firmware 20.31.1014 → 20.39.1002' }]);
  });

  it('matches disks by serial, so renamed devices are not changes', () => {
    const a = dgx();
    const b = dgx();
    const [d0, d1] = [b.disks[0]!, b.disks[1]!];
    b.disks[0] = { ...d1, name: d0.name };
    b.disks[1] = { ...d0, name: d1.name };
    expect(diffInventory(a, b)).toEqual([]);
  });
});

/**
 * toInventory: the pure mapping from what the probes gathered (RawInventory)
 * to the typed Inventory. No I/O, no clock: the same raw data always gives
 * the same inventory, which is what the fixtures test.
 */
import type { Dimm, Disk, Gpu, InfinibandHca, Inventory, InventorySection, Nic, RawBlockSys, RawInventory, RawNetSys, RawPciDevice, UnknownSection } from '../../common/inventory/types.js';
import { addImplausible, mergeUnknown } from '../../common/inventory/unknown.js';

/** Interfaces that are not hardware: loopback, containers, bridges, tunnels. */
export const VIRTUAL_NIC = /^(lo|docker.*|veth.*|br-.*|virbr.*|ifb\d*|dummy\d*|tun\d*|tap.*|vnet\d*|cni\d*|flannel\..*|cali.*|kube-ipvs\d*)$/;
/** Block devices that are not disks: loop, RAM disks, zram, device mapper, nbd, optical, floppy. */
export const VIRTUAL_BLOCK = /^(loop\d*|ram\d*|zram\d*|dm-\d+|nbd\d+|sr\d+|fd\d+)$/;

/** Firmware placeholders that mean "unknown". */
const PLACEHOLDERS = new Set([
  '-',
  'none',
  'n/a',
  '[n/a]',
  'not specified',
  'not available',
  'not present',
  'unknown',
  'to be filled by o.e.m.',
  'default string',
  'system serial number',
  'system product name',
  'system manufacturer',
  'base board serial number',
  '0123456789',
  'o.e.m.',
]);

function clean(v: string | undefined | null): string {
  const t = (v ?? '').trim();
  return PLACEHOLDERS.has(t.toLowerCase()) ? '' : t;
}

function n(v: number | undefined | null): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
}

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', ppc64: 'ppc64le' };

/** 00000000:3B:00.0 (nvidia-smi) or 0000:3b:00.0 (sysfs) → 0000:3b:00.0 */
export function normalizePciBus(bus: string): string {
  const m = /^(?:([0-9a-f]+):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(bus.trim());
  if (!m) return bus.trim().toLowerCase();
  const domain = (m[1] ?? '0').slice(-4).padStart(4, '0');
  return `${domain}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

/** Parses `nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id,serial,uuid --format=csv,noheader,nounits`. */
export function parseNvidiaSmiCsv(text: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.split(',').map((x) => clean(x));
    if (f.length < 4) continue;
    const [model = '', mem = '', driver = '', bus = '', serial = '', uuid = ''] = f;
    const g: Gpu = { vendor: 'NVIDIA', model, memoryMiB: n(Number(mem)), driver, pciBus: normalizePciBus(bus) };
    if (serial) g.serial = serial;
    if (uuid) g.uuid = uuid;
    gpus.push(g);
  }
  return gpus;
}

/** "4: ACTIVE" → "ACTIVE" */
function afterColon(s: string | undefined): string {
  const t = (s ?? '').trim();
  const i = t.indexOf(':');
  return i >= 0 ? t.slice(i + 1).trim() : t;
}

function busOf(b: RawBlockSys): string {
  const p = b.devicePath ?? '';
  if (b.name.startsWith('nvme') || p.includes('/nvme')) return 'NVMe';
  if (p.includes('/usb')) return 'USB';
  if (p.includes('/virtio') || /^vd[a-z]+$/.test(b.name)) return 'virtio';
  if (p.includes('/ata')) return 'SATA';
  if (/sas|end_device/.test(p)) return 'SAS';
  if (b.name.startsWith('mmcblk')) return 'MMC';
  return '';
}

function mapDisks(raw: RawInventory): Disk[] {
  const layout = new Map((raw.si.diskLayout ?? []).map((d) => [(d.device ?? '').replace(/^\/dev\//, ''), d]));
  const disks: Disk[] = [];
  const fromSys = raw.sys.block.filter((b) => !VIRTUAL_BLOCK.test(b.name));
  for (const b of fromSys) {
    const d = layout.get(b.name);
    const sizeBytes = n(b.sizeSectors) * 512 || n(d?.size);
    if (sizeBytes === 0) continue; // empty card reader, no medium
    const rotational = b.rotational === 1;
    const iface = busOf(b) || clean(d?.interfaceType);
    const siType = clean(d?.type);
    // virtio and other virtual buses report rotational=1 whatever backs them: type unknown there.
    const type = siType === 'HD' ? 'HDD' : siType || (iface === 'NVMe' ? 'NVMe' : iface === 'virtio' ? '' : rotational ? 'HDD' : 'SSD');
    disks.push({
      name: b.name,
      model: clean(b.model) || clean(d?.name),
      serial: clean(b.serial) || clean(d?.serialNum),
      sizeBytes,
      type,
      rotational,
      interface: iface,
    });
  }
  // No /sys (not Linux, or the probe failed): systeminformation's list as it is.
  if (fromSys.length === 0) {
    for (const d of raw.si.diskLayout ?? []) {
      const name = (d.device ?? '').replace(/^\/dev\//, '');
      if (!name || VIRTUAL_BLOCK.test(name)) continue;
      const siType = clean(d.type);
      disks.push({
        name,
        model: clean(d.name),
        serial: clean(d.serialNum),
        sizeBytes: n(d.size),
        type: siType === 'HD' ? 'HDD' : siType,
        rotational: siType === 'HD',
        interface: clean(d.interfaceType),
      });
    }
  }
  return disks.sort((a, b) => a.name.localeCompare(b.name));
}

function mapNics(raw: RawInventory): Nic[] {
  const siNics = new Map((raw.si.networkInterfaces ?? []).map((x) => [x.iface ?? '', x]));
  const nics: Nic[] = [];
  const sysNics: RawNetSys[] = raw.sys.net;
  const names = sysNics.length > 0 ? sysNics.map((s) => s.name) : [...siNics.keys()].filter((x) => x !== '');
  const sysByName = new Map(sysNics.map((s) => [s.name, s]));
  for (const name of names) {
    if (VIRTUAL_NIC.test(name)) continue;
    const s = sysByName.get(name);
    const x = siNics.get(name);
    if (!s && x?.internal) continue;
    const link = s?.carrier !== undefined ? s.carrier === 1 : (s?.operstate ?? x?.operstate) === 'up';
    const speed = n(s?.speed) || n(x?.speed ?? undefined);
    const addresses =
      s?.addresses ??
      [x?.ip4 && x.ip4subnet ? `${x.ip4}/${maskBits(x.ip4subnet)}` : '', x?.ip6 && x.ip6subnet ? `${x.ip6}/${maskBits(x.ip6subnet)}` : ''].filter((a) => a !== '');
    nics.push({
      name,
      mac: (s?.address ?? x?.mac ?? '').toLowerCase(),
      speedMbps: link ? speed : 0,
      driver: s?.driver ?? '',
      link,
      addresses: [...addresses].sort(),
    });
  }
  return nics.sort((a, b) => a.name.localeCompare(b.name));
}

function maskBits(mask: string): number {
  if (mask.includes('.')) return mask.split('.').reduce((acc, o) => acc + (Number(o) >>> 0).toString(2).split('1').length - 1, 0);
  return mask
    .split(':')
    .filter((g) => g !== '')
    .reduce((acc, g) => acc + parseInt(g, 16).toString(2).split('1').length - 1, 0);
}

function mapGpus(raw: RawInventory, warnings: string[]): Gpu[] {
  const gpus = raw.nvidiaSmi !== null ? parseNvidiaSmiCsv(raw.nvidiaSmi) : [];
  const seen = new Set(gpus.map((g) => g.pciBus));
  const missing: RawPciDevice[] = raw.sys.nvidiaPci.filter((p) => !seen.has(normalizePciBus(p.address)));
  for (const p of missing) {
    gpus.push({
      vendor: 'NVIDIA',
      model: `NVIDIA [10de:${p.device.replace(/^0x/, '')}]`,
      memoryMiB: 0,
      driver: p.driver ?? '',
      pciBus: normalizePciBus(p.address),
    });
  }
  if (missing.length > 0) {
    const nv = raw.sys.nvidiaPci.length;
    warnings.push(
      `gpus: ${nv} NVIDIA PCI device${nv === 1 ? '' : 's'} but nvidia-smi reported ${nv - missing.length}` +
        (raw.nvidiaSmi === null ? ' (nvidia-smi absent or failed: driver not installed or not loaded?)' : ''),
    );
  }
  return gpus.sort((a, b) => a.pciBus.localeCompare(b.pciBus));
}

function mapInfiniband(raw: RawInventory): InfinibandHca[] {
  return raw.sys.infiniband
    .map((h) => ({
      name: h.name,
      model: clean(h.boardId) || clean(h.hcaType),
      fwVersion: clean(h.fwVer),
      nodeGuid: clean(h.nodeGuid),
      pciBus: h.pciBus ? normalizePciBus(h.pciBus) : '',
      ports: h.ports.map((p) => ({
        port: p.port,
        state: afterColon(p.state),
        rate: (p.rate ?? '').trim(),
        linkLayer: (p.linkLayer ?? '').trim(),
        physState: afterColon(p.physState),
        lid: p.lid ? n(Number.parseInt(p.lid, p.lid.startsWith('0x') ? 16 : 10)) : 0,
      })),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function mapDimms(raw: RawInventory): Dimm[] {
  return (raw.si.memLayout ?? [])
    .filter((d) => n(d.size) > 0)
    // systeminformation invents one bank-less entry from /proc/meminfo when dmidecode has nothing: not a DIMM.
    .filter((d) => clean(d.bank) !== '' || clean(d.type) !== '' || clean(d.serialNum) !== '')
    .map((d) => ({
      slot: clean(d.bank),
      sizeBytes: n(d.size),
      type: clean(d.type),
      speedMTs: n(d.clockSpeed ?? undefined),
      serial: clean(d.serialNum),
      manufacturer: clean(d.manufacturer),
      partNumber: clean(d.partNum),
    }));
}

/**
 * The sections the failed probes leave unknown. A section with two sources
 * (/sys and systeminformation) is unknown only when neither could give it:
 * disks and NICs come from /sys, else from systeminformation; GPUs from
 * nvidia-smi and the PCI walk. Memory is known from the DIMMs or the kernel's
 * total; the DIMMs only from memLayout.
 */
export function failedSections(raw: RawInventory, memoryTotal: number): UnknownSection[] {
  const f = raw.failed ?? {};
  const out: UnknownSection[] = [];
  const add = (section: InventorySection, ...probes: string[]): void => {
    const reasons = probes.map((p) => f[p]).filter((r): r is string => r !== undefined);
    if (reasons.length > 0) out.push({ section, reason: reasons.join('; ') });
  };
  if (f.system) add('system', 'system');
  if (f.baseboard) add('baseboard', 'baseboard');
  if (f.bios) add('bios', 'bios');
  if (f.cpu) add('cpus', 'cpu');
  if (f.memLayout) add('dimms', 'memLayout');
  if (memoryTotal <= 0 && (f.mem || f.memLayout)) add('memory', 'mem', 'memLayout');
  if (f.diskLayout && (f['sys block'] || raw.sys.block.length === 0)) add('disks', 'sys block', 'diskLayout');
  if (f.networkInterfaces && (f['sys net'] || raw.sys.net.length === 0)) add('nics', 'sys net', 'networkInterfaces');
  if (f['sys pci'] && raw.nvidiaSmi === null) add('gpus', 'sys pci', 'nvidia-smi');
  if (f['sys infiniband']) add('infiniband', 'sys infiniband');
  if (f.osInfo) add('os', 'osInfo');
  return out;
}

/** Maps raw probe data into the typed Inventory. Pure. */
export function toInventory(raw: RawInventory): Inventory {
  const warnings = [...raw.warnings];
  const { system = {}, baseboard = {}, bios = {}, cpu = {}, mem = {}, osInfo = {} } = raw.si;
  const dimms = mapDimms(raw);
  const dimmTotal = dimms.reduce((a, d) => a + d.sizeBytes, 0);
  const gpus = mapGpus(raw, warnings);
  // Installed memory when the DIMMs are known (stable across kernels); else what the kernel sees.
  const memoryTotal = dimmTotal > 0 ? dimmTotal : n(mem.total);
  const cpus = {
    manufacturer: clean(cpu.manufacturer),
    model: clean(cpu.brand),
    sockets: n(cpu.processors),
    cores: n(cpu.physicalCores),
    threads: n(cpu.cores),
    speedMhz: Math.round(n(cpu.speed) * 1000),
  };
  const unknown = addImplausible(mergeUnknown(failedSections(raw, memoryTotal)), { cpus, memory: { totalBytes: memoryTotal, dimms } });
  return {
    collectedAt: raw.collectedAt,
    system: {
      manufacturer: clean(system.manufacturer),
      model: clean(system.model),
      serial: clean(system.serial),
      uuid: clean(system.uuid).toLowerCase(),
      sku: clean(system.sku),
      virtual: system.virtual === true,
    },
    baseboard: {
      manufacturer: clean(baseboard.manufacturer),
      model: clean(baseboard.model),
      serial: clean(baseboard.serial),
      version: clean(baseboard.version),
    },
    bios: { vendor: clean(bios.vendor), version: clean(bios.version), date: clean(bios.releaseDate), uefi: osInfo.uefi === true },
    cpus,
    memory: { totalBytes: memoryTotal, dimms },
    disks: mapDisks(raw),
    nics: mapNics(raw),
    gpus,
    infiniband: mapInfiniband(raw),
    os: {
      distro: clean(osInfo.distro),
      release: clean(osInfo.release),
      kernel: clean(osInfo.kernel),
      arch: ARCH[osInfo.arch ?? ''] ?? clean(osInfo.arch),
      hostname: clean(osInfo.hostname),
    },
    warnings,
    unknown,
    partial: unknown.length > 0,
  };
}

/**
 * The agent's hardware inventory: one typed object per collection.
 *
 * `RawInventory` is what the probes gathered (systeminformation's answers,
 * trimmed to the fields we use, plus direct /sys reads and nvidia-smi text);
 * it is JSON, so fixtures record it. `toInventory(raw)` maps it, purely, into
 * `Inventory`. Field names follow proto/fleet/v1/agent.proto's Inventory
 * where they overlap, so the gRPC mapping is one-to-one.
 *
 * Unknown strings are '' and unknown numbers 0 (never undefined), so two
 * inventories compare field by field. A whole section whose probes failed is
 * listed in `unknown` with the reason (its fields then stay ''/0/[] and mean
 * nothing): readers show it as unknown, never as zero, and a diff skips it.
 */

/** The parts of an Inventory that can be unknown as a whole (a probe behind them failed). */
export const INVENTORY_SECTIONS = ['system', 'baseboard', 'bios', 'cpus', 'memory', 'dimms', 'disks', 'nics', 'gpus', 'infiniband', 'os'] as const;
export type InventorySection = (typeof INVENTORY_SECTIONS)[number];

export interface UnknownSection {
  section: InventorySection;
  /** Why, from the probe(s) behind it, e.g. "mem: timed out after 10000 ms". */
  reason: string;
}

export interface Inventory {
  /** ISO-8601, the agent's clock. */
  collectedAt: string;
  system: { manufacturer: string; model: string; serial: string; uuid: string; sku: string; virtual: boolean };
  baseboard: { manufacturer: string; model: string; serial: string; version: string };
  bios: { vendor: string; version: string; date: string; uefi: boolean };
  cpus: {
    manufacturer: string;
    model: string;
    sockets: number;
    /** Physical cores, all sockets. */
    cores: number;
    /** Logical CPUs, all sockets. */
    threads: number;
    speedMhz: number;
  };
  memory: { totalBytes: number; dimms: Dimm[] };
  disks: Disk[];
  nics: Nic[];
  gpus: Gpu[];
  infiniband: InfinibandHca[];
  os: { distro: string; release: string; kernel: string; arch: string; hostname: string };
  /** Probes that failed, timed out or were skipped; empty when complete. */
  warnings: string[];
  /** Sections not known in this report (in INVENTORY_SECTIONS order), each with its reason. */
  unknown: UnknownSection[];
  /** True when `unknown` is not empty: the report does not describe the whole machine. */
  partial: boolean;
}

export interface Dimm {
  /** Bank / locator, e.g. "P0 CHANNEL A DIMM 0" or "CPU1_DIMM_A1". */
  slot: string;
  sizeBytes: number;
  /** DDR4, DDR5, ... */
  type: string;
  /** Configured speed, MT/s (0 unknown). */
  speedMTs: number;
  serial: string;
  manufacturer: string;
  partNumber: string;
}

export interface Disk {
  /** Kernel name, e.g. sda, nvme0n1. */
  name: string;
  model: string;
  serial: string;
  sizeBytes: number;
  /** HDD, SSD, NVMe, or '' when unknown. */
  type: string;
  rotational: boolean;
  /** SATA, SAS, NVMe, USB, virtio, ... ('' unknown). */
  interface: string;
}

export interface Nic {
  name: string;
  /** Lower-case colon form. */
  mac: string;
  /** 0 when unknown or no link. */
  speedMbps: number;
  /** Kernel driver (from /sys/class/net/NAME/device/driver), '' when none. */
  driver: string;
  /** Carrier up. */
  link: boolean;
  /** CIDR form. */
  addresses: string[];
}

export interface Gpu {
  vendor: string;
  model: string;
  memoryMiB: number;
  /** Driver version from nvidia-smi; for a GPU seen only on PCI, the bound kernel driver or ''. */
  driver: string;
  /** 0000:3b:00.0 form (lower case, 4-digit domain). */
  pciBus: string;
  serial?: string;
  uuid?: string;
}

export interface InfinibandPort {
  port: number;
  /** ACTIVE, DOWN, INIT, ARMED, ... */
  state: string;
  /** e.g. "200 Gb/sec (4X HDR)". */
  rate: string;
  /** InfiniBand or Ethernet. */
  linkLayer: string;
  physState: string;
  lid: number;
}

export interface InfinibandHca {
  /** e.g. mlx5_0 */
  name: string;
  /** Board id / HCA type, e.g. MT_0000000223. */
  model: string;
  fwVersion: string;
  nodeGuid: string;
  pciBus: string;
  ports: InfinibandPort[];
}

export type InventoryChangeKind =
  | 'dimm-removed'
  | 'dimm-added'
  | 'dimm-replaced'
  | 'memory-total'
  | 'gpu-count'
  | 'gpu-model'
  | 'gpu-removed'
  | 'gpu-added'
  | 'disk-removed'
  | 'disk-added'
  | 'disk-replaced'
  | 'nic-mac'
  | 'nic-removed'
  | 'nic-added'
  | 'bios-version'
  | 'cpu-model'
  | 'infiniband-removed'
  | 'infiniband-added'
  | 'infiniband-firmware';

export interface InventoryChange {
  kind: InventoryChangeKind;
  /** What it is about: a slot, a disk/NIC name, a PCI bus, or '' for the whole machine. */
  subject: string;
  before?: string;
  after?: string;
  /** One line for people, e.g. "DIMM P0-A1 (32 GiB, serial 1234) is gone". */
  message: string;
}

// ------------------------------------------------------------------ raw

/** systeminformation's answers, trimmed to the fields toInventory reads. */
export interface RawSi {
  system?: { manufacturer?: string; model?: string; serial?: string; uuid?: string; sku?: string; virtual?: boolean };
  baseboard?: { manufacturer?: string; model?: string; serial?: string; version?: string };
  bios?: { vendor?: string; version?: string; releaseDate?: string };
  cpu?: {
    manufacturer?: string;
    brand?: string;
    speed?: number;
    cores?: number;
    physicalCores?: number;
    processors?: number;
  };
  mem?: { total?: number };
  memLayout?: Array<{
    size?: number;
    bank?: string;
    type?: string;
    clockSpeed?: number | null;
    manufacturer?: string;
    partNum?: string;
    serialNum?: string;
  }>;
  diskLayout?: Array<{
    device?: string;
    type?: string;
    name?: string;
    vendor?: string;
    size?: number;
    serialNum?: string;
    interfaceType?: string;
  }>;
  networkInterfaces?: Array<{
    iface?: string;
    mac?: string;
    ip4?: string;
    ip4subnet?: string;
    ip6?: string;
    ip6subnet?: string;
    speed?: number | null;
    operstate?: string;
    internal?: boolean;
    virtual?: boolean;
  }>;
  osInfo?: { distro?: string; release?: string; kernel?: string; arch?: string; hostname?: string; uefi?: boolean | null };
}

export interface RawNetSys {
  name: string;
  /** Basename of the device/driver symlink target; absent for virtual interfaces. */
  driver?: string;
  /** /sys/class/net/NAME/speed (Mb/s; -1 or absent when unknown). */
  speed?: number;
  /** 1 link, 0 no link; absent when the interface is down. */
  carrier?: number;
  address?: string;
  /** True when the interface has no device (lives under /sys/devices/virtual). */
  virtual?: boolean;
  operstate?: string;
  /** Addresses in CIDR form (from os.networkInterfaces). */
  addresses?: string[];
}

export interface RawBlockSys {
  name: string;
  /** queue/rotational: 1 spinning, 0 not. */
  rotational?: number;
  /** size in 512-byte sectors. */
  sizeSectors?: number;
  model?: string;
  serial?: string;
  vendor?: string;
  /** realpath of /sys/block/NAME: tells the bus (…/ata3/…, …/usb2/…, …/nvme/…, …/virtio2/…). */
  devicePath?: string;
}

export interface RawIbPort {
  port: number;
  /** e.g. "4: ACTIVE" as /sys prints it. */
  state?: string;
  physState?: string;
  rate?: string;
  linkLayer?: string;
  lid?: string;
}

export interface RawIbSys {
  name: string;
  fwVer?: string;
  nodeGuid?: string;
  boardId?: string;
  hcaType?: string;
  pciBus?: string;
  ports: RawIbPort[];
}

export interface RawPciDevice {
  /** 0000:3b:00.0 */
  address: string;
  /** 0x10de */
  vendor: string;
  device: string;
  /** 0x030200 */
  class: string;
  /** Bound kernel driver, if any. */
  driver?: string;
}

export interface RawInventory {
  /** Format version of this object. */
  schema: 1;
  collectedAt: string;
  si: RawSi;
  sys: {
    net: RawNetSys[];
    block: RawBlockSys[];
    infiniband: RawIbSys[];
    /** NVIDIA display/3D controllers (vendor 0x10de, class 0x03xxxx). */
    nvidiaPci: RawPciDevice[];
  };
  /**
   * stdout of `nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id,serial,uuid
   * --format=csv,noheader,nounits`; null when nvidia-smi is absent or failed.
   */
  nvidiaSmi: string | null;
  warnings: string[];
  /**
   * Probes that failed or ran out of time, by probe name (PROBE_NAMES in
   * agent/inventory/collect.ts), each with its warning line. Absent in
   * recordings made before it existed: no probe failed.
   */
  failed?: Record<string, string>;
}

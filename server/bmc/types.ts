/**
 * The BMC driver contract (DESIGN.md §2, issue 3).
 *
 * A driver talks to one BMC. Every verb is idempotent ("on" when already on
 * succeeds). Drivers return results and throw FleetError('bmc.*') on failure;
 * they never write node state: the conductor and the fan-out runner turn
 * results into events.
 */
import type { BmcProtocol, RedfishAuth } from '../model.js';

export type PowerState = 'on' | 'off';
export type BootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios' | 'none';
export type BootMode = 'uefi' | 'legacy' | 'auto';

export interface BootDeviceOptions {
  /** true: persistent; false: next boot only. */
  persistent: boolean;
  mode: BootMode;
}

export interface BootDeviceSetting {
  device: BootDevice;
  /** null where the BMC cannot tell (ipmi_sim drops the flags). */
  persistent: boolean | null;
  mode: BootMode | null;
}

export interface BmcIdentity {
  manufacturer?: string;
  model?: string;
  serial?: string;
  uuid?: string;
  bmcFirmware?: string;
  /** Host NIC MACs where the BMC exposes them (lower-case colon form). */
  macs: string[];
  /** What could not be read and why (e.g. a FRU that does not parse); absent when all was read. */
  notes?: string[];
}

/** Where and how to reach one BMC. The password is held in memory only. */
export interface BmcTarget {
  address: string;
  port: number;
  username: string;
  password: string;
  /** Redfish only: CA bundle (PEM) or pinned SHA-256 certificate fingerprint. */
  tls?: { ca?: string; fingerprint?: string };
  /** Redfish only, from the node's bmc block: its ComputerSystem Id, auth mode, power wait. */
  redfish?: { system?: string; auth?: RedfishAuth; powerWaitMs?: number };
}

/** What a driver that can read the boot override back reports after setting it. */
export interface BootSetReport {
  /** What the BMC shows after the change (Redfish names: Pxe/Hdd..., Once/Continuous/Disabled, UEFI/Legacy). */
  stored: { target?: string; enabled?: string; mode?: string };
  /** Behaviour of this BMC seen while doing it, e.g. 'onceStoredAsContinuous'. */
  quirks: string[];
  notes: string[];
}

export interface BmcDriver {
  readonly protocol: BmcProtocol;
  powerStatus(): Promise<PowerState>;
  powerOn(): Promise<void>;
  /** Hard off. */
  powerOff(): Promise<void>;
  /** Graceful (ACPI) shutdown request. */
  powerSoft(): Promise<void>;
  powerCycle(): Promise<void>;
  powerReset(): Promise<void>;
  /** Drivers that read the setting back return what the BMC stored. */
  setBootDevice(device: BootDevice, options: BootDeviceOptions): Promise<BootSetReport | void>;
  getBootDevice(): Promise<BootDeviceSetting>;
  identity(): Promise<BmcIdentity>;
  /** Releases sessions and sockets held for this BMC. Safe to call twice. */
  close(): Promise<void>;
}

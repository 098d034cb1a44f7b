/**
 * Request builders and response-data parsers for the IPMI commands fleet
 * uses. Parsers take the response data *after* the completion code and throw
 * only FleetError('bmc.protocol').
 */
import type { BootDevice } from '../types.js';
import { FleetError } from '../../../common/errors.js';
import { NetFn } from './message.js';
import { Reader, protocolError } from './reader.js';

export interface CommandSpec {
  netFn: number;
  cmd: number;
  data: Buffer;
}

export const Cmd = {
  GET_DEVICE_ID: 0x01,
  GET_SYSTEM_GUID: 0x37,
  GET_CHANNEL_AUTH_CAPS: 0x38,
  SET_SESSION_PRIVILEGE: 0x3b,
  CLOSE_SESSION: 0x3c,
  GET_CHASSIS_STATUS: 0x01,
  CHASSIS_CONTROL: 0x02,
  SET_SYSTEM_BOOT_OPTIONS: 0x08,
  GET_SYSTEM_BOOT_OPTIONS: 0x09,
  GET_FRU_INVENTORY_AREA_INFO: 0x10,
  READ_FRU_DATA: 0x11,
} as const;

export const ChassisControl = { POWER_DOWN: 0, POWER_UP: 1, POWER_CYCLE: 2, HARD_RESET: 3, DIAGNOSTIC_INTERRUPT: 4, SOFT_SHUTDOWN: 5 } as const;
export type ChassisControlCode = (typeof ChassisControl)[keyof typeof ChassisControl];

/** System boot option parameters (§28.13). */
export const BootParam = { SET_IN_PROGRESS: 0, BOOT_FLAG_VALID_CLEARING: 3, BOOT_INFO_ACK: 4, BOOT_FLAGS: 5 } as const;

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw protocolError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// --- Get Channel Authentication Capabilities (App 0x38, IPMI v2.0 §22.13)

export interface ChannelAuthCaps {
  channel: number;
  /** Byte 2: bits 5:0 the IPMI v1.5 authentication types (authTypeNames), bit 7 "IPMI v2.0 extended data follows". */
  authTypes: number;
  /** Byte 2 bit 7 and byte 4 bit 1: the channel accepts IPMI v2.0 / RMCP+ sessions. */
  ipmi20: boolean;
  /** Byte 4 bit 0, or no extended data at all (an IPMI v1.5 BMC): the channel accepts IPMI v1.5 sessions. */
  ipmi15: boolean;
  anonymousLogin: boolean;
  nullUsernames: boolean;
  nonNullUsernames: boolean;
  /** Byte 3 bit 3: user level authentication disabled. */
  userLevelAuthDisabled: boolean;
  /** Byte 3 bit 4: per-message authentication disabled. */
  perMessageAuthDisabled: boolean;
  /** Byte 3 bit 5: the BMC key K_G is set to a non-zero value (IPMI v2.0 extended data only). */
  kgSet: boolean;
  oemId: number;
}

/**
 * channel 0x0E = this channel; `extended` (default) sets bit 7, asking for
 * the IPMI v2.0 extended data. A BMC that speaks only IPMI v1.5 may refuse
 * that bit (0xCC); ask again without it.
 */
export function getChannelAuthCaps(privilege: number, channel = 0x0e, extended = true): CommandSpec {
  return { netFn: NetFn.APP, cmd: Cmd.GET_CHANNEL_AUTH_CAPS, data: Buffer.from([(extended ? 0x80 : 0) | (channel & 0x0f), privilege & 0x0f]) };
}

export function parseChannelAuthCaps(data: Uint8Array): ChannelAuthCaps {
  return guard('Get Channel Auth Caps', () => {
    const r = new Reader(data, 'Get Channel Auth Caps');
    const channel = r.u8('channel');
    const authTypes = r.u8('auth types');
    const status = r.u8('auth status');
    const ext = r.u8('extended capabilities');
    const oemId = r.remaining >= 3 ? r.u8() | (r.u8() << 8) | (r.u8() << 16) : 0;
    const extended = (authTypes & 0x80) !== 0;
    return {
      channel,
      authTypes,
      ipmi20: extended && (ext & 0x02) !== 0,
      ipmi15: !extended || (ext & 0x01) !== 0,
      anonymousLogin: (status & 0x01) !== 0,
      nullUsernames: (status & 0x02) !== 0,
      nonNullUsernames: (status & 0x04) !== 0,
      userLevelAuthDisabled: (status & 0x08) !== 0,
      perMessageAuthDisabled: (status & 0x10) !== 0,
      kgSet: extended && (status & 0x20) !== 0,
      oemId,
    };
  });
}

/** Names of the IPMI v1.5 authentication types in byte 2 of the answer (bits 0, 1, 2, 4, 5), in bit order. */
export const AUTH_TYPE_BITS: readonly (readonly [number, string])[] = [
  [0x01, 'none'],
  [0x02, 'md2'],
  [0x04, 'md5'],
  [0x10, 'password'],
  [0x20, 'oem'],
];

export function authTypeNames(authTypes: number): string[] {
  return AUTH_TYPE_BITS.filter(([bit]) => (authTypes & bit) !== 0).map(([, name]) => name);
}

/** The response data (after the completion code) a BMC sends: tests and simulated BMCs. */
export function encodeChannelAuthCaps(c: {
  channel: number;
  authTypes: number;
  ipmi20?: boolean;
  ipmi15?: boolean;
  status?: number;
  oemId?: number;
  oemAux?: number;
}): Buffer {
  const extended = (c.authTypes & 0x80) !== 0;
  const ext = extended ? (c.ipmi20 ? 0x02 : 0) | (c.ipmi15 === false ? 0 : 0x01) : 0;
  const oem = (c.oemId ?? 0) >>> 0;
  return Buffer.from([c.channel & 0xff, c.authTypes & 0xff, (c.status ?? 0) & 0xff, ext, oem & 0xff, (oem >> 8) & 0xff, (oem >> 16) & 0xff, (c.oemAux ?? 0) & 0xff]);
}

// --- session commands

export function setSessionPrivilege(privilege: number): CommandSpec {
  return { netFn: NetFn.APP, cmd: Cmd.SET_SESSION_PRIVILEGE, data: Buffer.from([privilege & 0x0f]) };
}

export function closeSession(bmcSessionId: number): CommandSpec {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(bmcSessionId >>> 0, 0);
  return { netFn: NetFn.APP, cmd: Cmd.CLOSE_SESSION, data };
}

// --- chassis

export interface ChassisStatus {
  powerOn: boolean;
  powerOverload: boolean;
  powerInterlock: boolean;
  powerFault: boolean;
  powerControlFault: boolean;
  /** 0 always off, 1 previous, 2 always on, 3 unknown. */
  restorePolicy: number;
  lastPowerEvent: number;
  miscState: number;
}

export function getChassisStatus(): CommandSpec {
  return { netFn: NetFn.CHASSIS, cmd: Cmd.GET_CHASSIS_STATUS, data: Buffer.alloc(0) };
}

export function parseChassisStatus(data: Uint8Array): ChassisStatus {
  return guard('Get Chassis Status', () => {
    const r = new Reader(data, 'Get Chassis Status');
    const p = r.u8('current power state');
    const lastPowerEvent = r.remaining > 0 ? r.u8() : 0;
    const miscState = r.remaining > 0 ? r.u8() : 0;
    return {
      powerOn: (p & 0x01) !== 0,
      powerOverload: (p & 0x02) !== 0,
      powerInterlock: (p & 0x04) !== 0,
      powerFault: (p & 0x08) !== 0,
      powerControlFault: (p & 0x10) !== 0,
      restorePolicy: (p >> 5) & 0x03,
      lastPowerEvent,
      miscState,
    };
  });
}

export function chassisControl(control: ChassisControlCode): CommandSpec {
  return { netFn: NetFn.CHASSIS, cmd: Cmd.CHASSIS_CONTROL, data: Buffer.from([control]) };
}

// --- boot options

export const BOOT_DEVICE_SELECTOR: Readonly<Record<BootDevice, number>> = {
  none: 0x00,
  pxe: 0x04,
  disk: 0x08,
  cdrom: 0x14,
  bios: 0x18,
};

export interface BootFlags {
  /** Byte 1 bit 7. */
  valid: boolean;
  /** Byte 1 bit 6: all future boots (else next boot only). */
  persistent: boolean;
  /** Byte 1 bit 5: EFI boot (else PC compatible / legacy). */
  efi: boolean;
  /** Byte 2 bits 5:2 in place (0x04 PXE, 0x08 disk, 0x14 CD/DVD, 0x18 BIOS setup, …). */
  selector: number;
  /** The fleet name of `selector`, or null for selectors fleet has no name for. */
  device: BootDevice | null;
  raw: Buffer;
}

export function encodeBootFlags(f: { valid?: boolean; persistent: boolean; efi: boolean; device: BootDevice }): Buffer {
  const b1 = (f.valid === false ? 0 : 0x80) | (f.persistent ? 0x40 : 0) | (f.efi ? 0x20 : 0);
  return Buffer.from([b1, BOOT_DEVICE_SELECTOR[f.device], 0x00, 0x00, 0x00]);
}

export function decodeBootFlags(data: Uint8Array): BootFlags {
  return guard('boot flags', () => {
    const r = new Reader(data, 'boot flags');
    const b1 = r.u8('boot flags byte 1');
    const b2 = r.u8('boot flags byte 2');
    const selector = b2 & 0x3c;
    const entry = Object.entries(BOOT_DEVICE_SELECTOR).find(([, v]) => v === selector);
    return {
      valid: (b1 & 0x80) !== 0,
      persistent: (b1 & 0x40) !== 0,
      efi: (b1 & 0x20) !== 0,
      selector,
      device: entry ? (entry[0] as BootDevice) : null,
      raw: Buffer.from(data),
    };
  });
}

export function setSystemBootOption(param: number, value: Uint8Array): CommandSpec {
  return { netFn: NetFn.CHASSIS, cmd: Cmd.SET_SYSTEM_BOOT_OPTIONS, data: Buffer.concat([Buffer.from([param & 0x7f]), value]) };
}

export function getSystemBootOption(param: number): CommandSpec {
  return { netFn: NetFn.CHASSIS, cmd: Cmd.GET_SYSTEM_BOOT_OPTIONS, data: Buffer.from([param & 0x7f, 0x00, 0x00]) };
}

export interface BootOptionResponse {
  version: number;
  param: number;
  /** Bit 7 of the parameter byte: parameter marked invalid / locked. */
  invalid: boolean;
  data: Buffer;
}

export function parseGetSystemBootOption(data: Uint8Array): BootOptionResponse {
  return guard('Get System Boot Options', () => {
    const r = new Reader(data, 'Get System Boot Options');
    const version = r.u8('parameter version');
    const p = r.u8('parameter selector');
    return { version, param: p & 0x7f, invalid: (p & 0x80) !== 0, data: r.rest() };
  });
}

// --- device identity

export interface DeviceId {
  deviceId: number;
  deviceRevision: number;
  /** "major.minor" as ipmitool prints it (minor is BCD, two digits). */
  firmware: string;
  ipmiVersion: string;
  manufacturerId: number;
  productId: number;
  providesSdrs: boolean;
  available: boolean;
}

export function getDeviceId(): CommandSpec {
  return { netFn: NetFn.APP, cmd: Cmd.GET_DEVICE_ID, data: Buffer.alloc(0) };
}

export function parseDeviceId(data: Uint8Array): DeviceId {
  return guard('Get Device ID', () => {
    const r = new Reader(data, 'Get Device ID');
    const deviceId = r.u8('device id');
    const rev = r.u8('device revision');
    const fw1 = r.u8('firmware major');
    const fw2 = r.u8('firmware minor');
    const ipmi = r.u8('IPMI version');
    r.u8('additional device support');
    const manufacturerId = (r.u8() | (r.u8() << 8) | (r.u8('manufacturer id') << 16)) & 0x0fffff;
    const productId = r.u16le('product id');
    return {
      deviceId,
      deviceRevision: rev & 0x0f,
      firmware: `${fw1 & 0x7f}.${fw2.toString(16).padStart(2, '0')}`,
      ipmiVersion: `${ipmi & 0x0f}.${ipmi >> 4}`,
      manufacturerId,
      productId,
      providesSdrs: (rev & 0x80) !== 0,
      available: (fw1 & 0x80) === 0,
    };
  });
}

export function getSystemGuid(): CommandSpec {
  return { netFn: NetFn.APP, cmd: Cmd.GET_SYSTEM_GUID, data: Buffer.alloc(0) };
}

/**
 * The system GUID as the UUID string the host's SMBIOS shows (dmidecode,
 * /sys/class/dmi/id/product_uuid), so the agent's UUID and the BMC's compare
 * equal. IPMI v2.0 §22.14 defers to the SMBIOS UUID, and BMCs send its 16
 * bytes in the SMBIOS 2.6+ order: the first three fields (4, 2, 2 bytes)
 * least significant byte first, the last eight as they are. ipmitool
 * (lib/ipmi_mc.c) calls this order "smbios" and prefers it when guessing:
 * "most implementations like AMI MegaRAC do it the SMBIOS way". Other orders
 * (all 16 bytes reversed, as §20.8 reads; RFC 4122 as is) exist, and the
 * reconciliation (server/inventory/reconcile.ts) accepts those as the same
 * UUID; this decoder picks the common one. `ipmitool mc guid smbios` prints
 * the same string.
 */
export function parseSystemGuid(data: Uint8Array): string {
  return guard('Get System GUID', () => {
    const r = new Reader(data, 'Get System GUID');
    const b = Buffer.from(r.bytes(16, 'GUID'));
    const hex = Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8, 16)]).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  });
}

/** The 16 GUID bytes a BMC sends for a system UUID (the SMBIOS order parseSystemGuid reads): tests and simulated BMCs. */
export function encodeSystemGuid(uuid: string): Buffer {
  const h = uuid.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h)) throw new FleetError('usage.invalid', `not a UUID: ${JSON.stringify(uuid)}`);
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8, 16)]);
}

// --- FRU

export function getFruInventoryAreaInfo(fruId = 0): CommandSpec {
  return { netFn: NetFn.STORAGE, cmd: Cmd.GET_FRU_INVENTORY_AREA_INFO, data: Buffer.from([fruId & 0xff]) };
}

export function parseFruInventoryAreaInfo(data: Uint8Array): { size: number; byWords: boolean } {
  return guard('Get FRU Inventory Area Info', () => {
    const r = new Reader(data, 'Get FRU Inventory Area Info');
    const size = r.u16le('area size');
    const access = r.u8('access');
    return { size, byWords: (access & 0x01) !== 0 };
  });
}

export function readFruData(fruId: number, offset: number, count: number): CommandSpec {
  return { netFn: NetFn.STORAGE, cmd: Cmd.READ_FRU_DATA, data: Buffer.from([fruId & 0xff, offset & 0xff, (offset >> 8) & 0xff, count & 0xff]) };
}

export function parseReadFruData(data: Uint8Array): Buffer {
  return guard('Read FRU Data', () => {
    const r = new Reader(data, 'Read FRU Data');
    const count = r.u8('count');
    return r.bytes(count, 'FRU data');
  });
}

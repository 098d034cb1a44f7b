/**
 * Defensive readers for Redfish JSON. Nothing here trusts the shape of what a
 * BMC sends: optional properties of the wrong type read as undefined, and
 * properties the driver cannot work without raise bmc.protocol.
 */
import { FleetError } from '../../../common/errors.js';
import { MAC_CANONICAL } from '../../../common/patterns.js';
import type { BootDevice, BootDeviceSetting, BootMode, PowerState } from '../types.js';

export type JsonObject = { [key: string]: unknown };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: unknown, key: string): string | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

export function num(o: unknown, key: string): number | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function bool(o: unknown, key: string): boolean | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  return typeof v === 'boolean' ? v : undefined;
}

export function obj(o: unknown, key: string): JsonObject | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  return isObject(v) ? v : undefined;
}

export function strArray(o: unknown, key: string): string[] | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  if (!Array.isArray(v)) return undefined;
  return v.filter((x): x is string => typeof x === 'string');
}

/** The `@odata.id` of a link object such as `{ "@odata.id": "/redfish/v1/Systems" }`. */
export function linkOf(o: unknown, key: string): string | undefined {
  return str(obj(o, key), '@odata.id');
}

/** `@odata.id`s of an array of links (`Members`, `Links.ManagedBy`). */
export function linksOf(o: unknown, key: string): string[] {
  if (!isObject(o)) return [];
  const v = o[key];
  if (!Array.isArray(v)) return [];
  const out: string[] = [];
  for (const m of v) {
    const id = str(m, '@odata.id');
    if (id !== undefined) out.push(id);
  }
  return out;
}

/**
 * Normalises a link from a BMC to a path on the same service. Absolute URLs
 * are reduced to their path; anything that is not under /redfish/ is refused
 * so that credentials are never sent to a path (or host) the BMC chose freely.
 */
export function resolveLink(link: string): string {
  let path = link.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    try {
      const u = new URL(path);
      path = u.pathname + u.search;
    } catch {
      throw new FleetError('bmc.protocol', `Redfish link is not a valid URL: ${JSON.stringify(link.slice(0, 200))}`);
    }
  }
  if (!path.startsWith('/redfish/') || path.includes('/../') || path.endsWith('/..')) {
    throw new FleetError('bmc.protocol', `Redfish link outside /redfish/: ${JSON.stringify(link.slice(0, 200))}`);
  }
  return path;
}

/** A required link: raises bmc.protocol naming what was missing. */
export function requireLink(o: unknown, key: string, what: string): string {
  const id = linkOf(o, key);
  if (id === undefined) throw new FleetError('bmc.protocol', `Redfish ${what} has no ${key} link`);
  return resolveLink(id);
}

// --- errors

/**
 * The human message of a Redfish error body:
 * `error.@Message.ExtendedInfo[].Message` joined, else `error.message`.
 */
export function extractRedfishError(body: unknown): string | undefined {
  const err = obj(body, 'error');
  const infos: unknown[] = [];
  const fromErr = err?.['@Message.ExtendedInfo'];
  if (Array.isArray(fromErr)) infos.push(...fromErr);
  // Some services put ExtendedInfo at the top level of a 4xx/5xx body.
  const top = isObject(body) ? body['@Message.ExtendedInfo'] : undefined;
  if (Array.isArray(top)) infos.push(...top);
  const msgs: string[] = [];
  for (const info of infos) {
    const m = str(info, 'Message') ?? str(info, 'MessageId');
    if (m && !msgs.includes(m)) msgs.push(m);
  }
  if (msgs.length > 0) return msgs.join('; ');
  return str(err, 'message') ?? str(err, 'code');
}

// --- power

/** Redfish PowerState → fleet PowerState. Transitional states count as where they are heading. */
export function parsePowerState(system: unknown): PowerState {
  const s = str(system, 'PowerState');
  switch (s) {
    case 'On':
    case 'PoweringOn':
    case 'Paused':
      return 'on';
    case 'Off':
    case 'PoweringOff':
      return 'off';
    default:
      throw new FleetError(
        'bmc.protocol',
        s === undefined ? 'Redfish ComputerSystem has no PowerState' : `Redfish ComputerSystem has an unknown PowerState ${JSON.stringify(s.slice(0, 40))}`,
      );
  }
}

/** The raw Redfish PowerState where known (used to wait for 'On' rather than 'PoweringOn'). */
export function rawPowerState(system: unknown): string | undefined {
  return str(system, 'PowerState');
}

export interface ResetActionInfo {
  target: string;
  /** null: the BMC does not advertise its allowed ResetType values. */
  allowable: string[] | null;
  /** Link to an ActionInfo resource listing the parameters, when present. */
  actionInfo?: string;
}

/** The ComputerSystem.Reset action of a system, or undefined when it has none. */
export function parseResetAction(system: unknown): ResetActionInfo | undefined {
  const action = obj(obj(system, 'Actions'), '#ComputerSystem.Reset');
  if (!action) return undefined;
  const target = str(action, 'target');
  if (target === undefined) throw new FleetError('bmc.protocol', 'Redfish ComputerSystem.Reset action has no target');
  const allowable = strArray(action, 'ResetType@Redfish.AllowableValues') ?? null;
  const info = str(action, '@Redfish.ActionInfo');
  return { target: resolveLink(target), allowable, ...(info ? { actionInfo: resolveLink(info) } : {}) };
}

/** AllowableValues of the ResetType parameter in an ActionInfo resource. */
export function parseActionInfoResetTypes(actionInfo: unknown): string[] | null {
  if (!isObject(actionInfo) || !Array.isArray(actionInfo['Parameters'])) return null;
  for (const p of actionInfo['Parameters']) {
    if (str(p, 'Name') === 'ResetType') return strArray(p, 'AllowableValues') ?? null;
  }
  return null;
}

// --- boot

export const DEVICE_TO_TARGET: Readonly<Record<BootDevice, string>> = {
  pxe: 'Pxe',
  disk: 'Hdd',
  cdrom: 'Cd',
  bios: 'BiosSetup',
  none: 'None',
};

const TARGET_TO_DEVICE: Readonly<Record<string, BootDevice>> = {
  Pxe: 'pxe',
  Hdd: 'disk',
  Cd: 'cdrom',
  BiosSetup: 'bios',
  None: 'none',
};

/**
 * Reads Boot back. An override that is Disabled reads as device 'none'
 * (persistent null); targets fleet has no name for (Usb, UefiTarget, ...) read
 * as 'none' too, with the raw target kept in `rawTarget`.
 */
export function parseBootSetting(system: unknown): BootDeviceSetting & { rawTarget?: string; rawEnabled?: string } {
  const boot = obj(system, 'Boot');
  if (!boot) throw new FleetError('bmc.protocol', 'Redfish ComputerSystem has no Boot object');
  const target = str(boot, 'BootSourceOverrideTarget');
  const enabled = str(boot, 'BootSourceOverrideEnabled');
  const modeRaw = str(boot, 'BootSourceOverrideMode');
  const mode: BootMode | null = modeRaw === 'UEFI' ? 'uefi' : modeRaw === 'Legacy' ? 'legacy' : null;
  const raw = { ...(target !== undefined ? { rawTarget: target } : {}), ...(enabled !== undefined ? { rawEnabled: enabled } : {}) };
  if (enabled === 'Disabled' || target === undefined) {
    return { device: 'none', persistent: null, mode, ...raw };
  }
  const device = TARGET_TO_DEVICE[target] ?? 'none';
  const persistent = enabled === 'Continuous' ? true : enabled === 'Once' ? false : null;
  return { device, persistent: device === 'none' ? null : persistent, mode, ...raw };
}

// --- identity and inventory

/** Lower-case colon form (aa:bb:cc:dd:ee:ff), or undefined for anything that is not a 48-bit MAC. */
export function normaliseMac(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const hex = v.replace(/[:\-.\s]/g, '').toLowerCase();
  const mac = hex.length === 12 ? hex.match(/../g)!.join(':') : '';
  return MAC_CANONICAL.test(mac) && mac !== '00:00:00:00:00:00' ? mac : undefined;
}

export interface ProcessorInfo {
  id: string;
  socket?: string;
  type?: string;
  manufacturer?: string;
  model?: string;
  cores?: number;
  threads?: number;
  maxSpeedMHz?: number;
  state?: string;
  health?: string;
}

export interface MemoryInfo {
  id: string;
  capacityMiB?: number;
  type?: string;
  speedMHz?: number;
  manufacturer?: string;
  partNumber?: string;
  serial?: string;
  locator?: string;
  state?: string;
  health?: string;
}

export interface EthernetInfo {
  id: string;
  name?: string;
  /** Currently configured MAC (lower-case colon form). */
  mac?: string;
  /** Burned-in MAC where it differs or the current one is missing. */
  permanentMac?: string;
  speedMbps?: number;
  linkStatus?: string;
  /** The host side of the BMC's host interface (not a data NIC). */
  hostInterface: boolean;
  virtual: boolean;
  state?: string;
}

function idOf(o: JsonObject, fallback: string): string {
  return str(o, 'Id') ?? fallback.split('/').filter(Boolean).pop() ?? fallback;
}

function status(o: JsonObject): { state?: string; health?: string } {
  const s = obj(o, 'Status');
  const state = str(s, 'State');
  const health = str(s, 'Health');
  return { ...(state !== undefined ? { state } : {}), ...(health !== undefined ? { health } : {}) };
}

function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

export function parseProcessor(o: JsonObject, path: string): ProcessorInfo {
  return defined({
    id: idOf(o, path),
    socket: str(o, 'Socket'),
    type: str(o, 'ProcessorType'),
    manufacturer: str(o, 'Manufacturer'),
    model: str(o, 'Model'),
    cores: num(o, 'TotalCores'),
    threads: num(o, 'TotalThreads'),
    maxSpeedMHz: num(o, 'MaxSpeedMHz'),
    ...status(o),
  });
}

export function parseMemory(o: JsonObject, path: string): MemoryInfo {
  return defined({
    id: idOf(o, path),
    capacityMiB: num(o, 'CapacityMiB'),
    type: str(o, 'MemoryDeviceType'),
    speedMHz: num(o, 'OperatingSpeedMhz'),
    manufacturer: str(o, 'Manufacturer'),
    partNumber: str(o, 'PartNumber'),
    serial: str(o, 'SerialNumber'),
    locator: str(o, 'DeviceLocator'),
    ...status(o),
  });
}

export function parseEthernet(o: JsonObject, path: string): EthernetInfo {
  const mac = normaliseMac(str(o, 'MACAddress'));
  const perm = normaliseMac(str(o, 'PermanentMACAddress'));
  return defined({
    id: idOf(o, path),
    name: str(o, 'Name'),
    mac,
    permanentMac: perm !== undefined && perm !== mac ? perm : undefined,
    speedMbps: num(o, 'SpeedMbps'),
    linkStatus: str(o, 'LinkStatus'),
    hostInterface: linkOf(obj(o, 'Links'), 'HostInterface') !== undefined,
    virtual: str(o, 'EthernetInterfaceType') === 'Virtual',
    state: status(o).state,
  });
}

/**
 * Host NIC MACs for identity: data NICs only (the host side of the BMC's
 * host interface is left out), current MAC then burned-in MAC, deduplicated
 * in order (a VLAN interface repeats its parent's MAC).
 */
export function hostMacs(nics: readonly EthernetInfo[]): string[] {
  const out: string[] = [];
  for (const n of nics) {
    if (n.hostInterface) continue;
    for (const m of [n.mac, n.permanentMac]) if (m !== undefined && !out.includes(m)) out.push(m);
  }
  return out;
}

/**
 * RedfishDriver: the BmcDriver contract over Redfish (DESIGN.md §2, ADR 0003).
 *
 * Every operation reads the ComputerSystem fresh (PowerState, Boot, ETag) and
 * decides with the pure functions of decide.ts; vendor differences come from
 * the quirks table (quirks.ts), never from code paths per vendor.
 */
import { FleetError, isFleetError } from '../../../common/errors.js';
import type { BmcDriver, BmcIdentity, BmcTarget, BootDevice, BootDeviceOptions, BootDeviceSetting, PowerState } from '../types.js';
import { RedfishClient, type RedfishClientOptions } from './client.js';
import { decideBootPatch, planPower, type BootFollowUp, type BootPatchDecision, type PowerVerb } from './decide.js';
import {
  hostMacs,
  linksOf,
  obj,
  parseActionInfoResetTypes,
  parseBootSetting,
  parseEthernet,
  parseMemory,
  parsePowerState,
  parseProcessor,
  parseResetAction,
  rawPowerState,
  resolveLink,
  str,
  num,
  linkOf,
  type EthernetInfo,
  type JsonObject,
  type MemoryInfo,
  type ProcessorInfo,
} from './parse.js';
import { DEFAULT_QUIRK_TABLE, resolveQuirks, type QuirkRule, type RedfishQuirks, type ResolvedQuirks } from './quirks.js';
import type { RedfishTlsOptions } from './tls.js';

export interface RedfishDriverOptions {
  /** Default 'session'. */
  auth?: RedfishClientOptions['auth'];
  /** Default 'https'; 'insecure-http' for labs and tests only. */
  scheme?: RedfishClientOptions['scheme'];
  /** Extra TLS settings, merged over target.tls (ca, fingerprint). */
  tls?: Pick<RedfishTlsOptions, 'trustOnFirstUse' | 'verifyHostname'>;
  /** Trust on first use: receives the fingerprint to record. */
  onFirstContact?: (fingerprint: string) => void;
  /** Per request, ms (default 10000). */
  timeoutMs?: number;
  connections?: number;
  /** Which system to drive when the BMC has several: its Id or @odata.id. Default: the first member. */
  systemId?: string;
  /** Per-node quirk override; wins over the table. */
  quirks?: Partial<RedfishQuirks>;
  /** Replaces the built-in quirk table. */
  quirkTable?: readonly QuirkRule[];
  /** powerSettles: how long to wait for PowerState after a Reset (default 60000 ms) and how often to look (default 1000 ms). */
  settleTimeoutMs?: number;
  settlePollMs?: number;
}

export interface RedfishInventory {
  system: {
    path: string;
    id?: string;
    manufacturer?: string;
    model?: string;
    serial?: string;
    uuid?: string;
    biosVersion?: string;
    powerState?: string;
    processorCount?: number;
    memoryGiB?: number;
  };
  bmcFirmware?: string;
  processors: ProcessorInfo[];
  memory: MemoryInfo[];
  ethernet: EthernetInfo[];
  /** Derived: present DIMMs' total capacity. */
  totalMemoryMiB: number;
  quirks: ResolvedQuirks;
}

export interface BootSetResult {
  /** The PATCH body that was sent. */
  sent: JsonObject;
  /** What the caller must do later (onceIgnored): null when nothing. */
  followUp: BootFollowUp | null;
  notes: string[];
}

const PRESENT = (state: string | undefined): boolean => state !== 'Absent';

export class RedfishDriver implements BmcDriver {
  readonly protocol = 'redfish' as const;
  readonly client: RedfishClient;
  private readonly opts: RedfishDriverOptions;
  private systemPath: string | undefined;
  private resolved: ResolvedQuirks | undefined;
  private followUp: BootFollowUp | null = null;

  constructor(target: BmcTarget, options: RedfishDriverOptions = {}) {
    this.opts = options;
    const tls: RedfishTlsOptions = { ...(target.tls ?? {}), ...(options.tls ?? {}) };
    this.client = new RedfishClient({
      address: target.address,
      port: target.port,
      username: target.username,
      password: target.password,
      tls,
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.scheme ? { scheme: options.scheme } : {}),
      ...(options.onFirstContact ? { onFirstContact: options.onFirstContact } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.connections !== undefined ? { connections: options.connections } : {}),
    });
  }

  /** SHA-256 fingerprint of the BMC certificate seen on the last connection. */
  get seenFingerprint(): string | undefined {
    return this.client.seenFingerprint;
  }

  /** The follow-up left by the last setBootDevice (onceIgnored), until clearBootOverride() runs. */
  get pendingFollowUp(): BootFollowUp | null {
    return this.followUp;
  }

  // --- discovery

  private async system(): Promise<{ path: string; body: JsonObject; etag?: string }> {
    if (!this.systemPath) this.systemPath = await this.findSystem();
    const { body, etag } = await this.client.getJson(this.systemPath);
    if (!this.resolved) {
      this.resolved = resolveQuirks(
        { ...optional('manufacturer', str(body, 'Manufacturer')), ...optional('model', str(body, 'Model')) },
        this.opts.quirkTable ?? DEFAULT_QUIRK_TABLE,
        this.opts.quirks,
      );
    }
    return { path: this.systemPath, body, ...(etag !== undefined ? { etag } : {}) };
  }

  private async findSystem(): Promise<string> {
    const members = await this.client.members(await this.client.rootLink('Systems'));
    if (members.length === 0) throw new FleetError('bmc.protocol', `BMC ${this.client.address} lists no ComputerSystem`);
    const want = this.opts.systemId;
    if (want === undefined) return members[0]!;
    const hit = members.find((m) => m === want || m.replace(/\/+$/, '').split('/').pop() === want);
    if (!hit) throw new FleetError('bmc.unsupported', `BMC ${this.client.address} has no system ${JSON.stringify(want)}`, { systems: members });
    return hit;
  }

  /** The quirks in force for this system (resolved on first contact). */
  async quirks(): Promise<ResolvedQuirks> {
    if (!this.resolved) await this.system();
    return this.resolved!;
  }

  // --- power

  async powerStatus(): Promise<PowerState> {
    return parsePowerState((await this.system()).body);
  }

  powerOn(): Promise<void> {
    return this.power('on');
  }
  powerOff(): Promise<void> {
    return this.power('off');
  }
  powerSoft(): Promise<void> {
    return this.power('soft');
  }
  powerCycle(): Promise<void> {
    return this.power('cycle');
  }
  powerReset(): Promise<void> {
    return this.power('reset');
  }

  private async power(verb: PowerVerb): Promise<void> {
    const sys = await this.system();
    const action = parseResetAction(sys.body);
    if (!action) throw new FleetError('bmc.unsupported', `BMC ${this.client.address} offers no ComputerSystem.Reset action`);
    let allowable = action.allowable;
    if (allowable === null && action.actionInfo) {
      allowable = parseActionInfoResetTypes((await this.client.getJson(action.actionInfo)).body);
    }
    const plan = planPower(verb, parsePowerState(sys.body), allowable);
    if (plan.kind === 'noop') return;
    const { quirks } = await this.quirks();
    for (let i = 0; i < plan.steps.length; i++) {
      const step = plan.steps[i]!;
      await this.client.post(action.target, { ResetType: step.resetType });
      const last = i === plan.steps.length - 1;
      // Between steps always wait (On while still going off is lost); after the last only with powerSettles.
      if (step.settleTo !== null && (!last || quirks.powerSettles)) {
        await this.waitFor(step.settleTo, step.resetType);
      }
    }
  }

  private async waitFor(state: PowerState, resetType: string): Promise<void> {
    const timeoutMs = this.opts.settleTimeoutMs ?? 60_000;
    const pollMs = this.opts.settlePollMs ?? 1_000;
    const want = state === 'on' ? 'On' : 'Off';
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const body = (await this.system()).body;
      if (rawPowerState(body) === want) return;
      if (Date.now() + pollMs > deadline) {
        throw new FleetError(
          'bmc.timeout',
          `BMC ${this.client.address}: PowerState did not become ${want} within ${timeoutMs} ms after ${resetType} (last: ${rawPowerState(body) ?? 'unknown'})`,
        );
      }
      await sleep(pollMs);
    }
  }

  // --- boot

  async setBootDevice(device: BootDevice, options: BootDeviceOptions): Promise<void> {
    await this.setBootDeviceDetailed(device, options);
  }

  /** setBootDevice that also returns what was sent and any follow-up the caller must run (onceIgnored). */
  async setBootDeviceDetailed(device: BootDevice, options: BootDeviceOptions): Promise<BootSetResult> {
    const decision = await this.patchBoot((sys, quirks) => decideBootPatch(sys, quirks, { device, ...options }));
    this.followUp = decision.followUp;
    return { sent: decision.body, followUp: decision.followUp, notes: decision.notes };
  }

  /** Resets the boot override to None/Disabled (the follow-up of onceIgnored). */
  async clearBootOverride(): Promise<void> {
    await this.patchBoot((sys, quirks) => decideBootPatch(sys, quirks, { device: 'none', persistent: false, mode: 'auto' }));
    this.followUp = null;
  }

  private async patchBoot(decide: (system: JsonObject, quirks: RedfishQuirks) => BootPatchDecision): Promise<BootPatchDecision> {
    for (let attempt = 0; ; attempt++) {
      const sys = await this.system();
      const { quirks } = await this.quirks();
      const decision = decide(sys.body, quirks);
      try {
        await this.client.patch(sys.path, decision.body, sys.etag);
        return decision;
      } catch (e) {
        // 412: the resource changed between GET and PATCH; read it again once.
        if (attempt === 0 && isFleetError(e) && (e.details as { status?: number } | undefined)?.status === 412) continue;
        throw e;
      }
    }
  }

  async getBootDevice(): Promise<BootDeviceSetting> {
    const { device, persistent, mode } = parseBootSetting((await this.system()).body);
    return { device, persistent, mode };
  }

  // --- identity and inventory

  private async managerPath(system: JsonObject): Promise<string | undefined> {
    const managedBy = linksOf(obj(system, 'Links'), 'ManagedBy');
    if (managedBy[0] !== undefined) return resolveLink(managedBy[0]);
    if (linkOf(await this.client.serviceRoot(), 'Managers') === undefined) return undefined;
    const members = await this.client.members(await this.client.rootLink('Managers'));
    return members[0];
  }

  private async bmcFirmware(system: JsonObject): Promise<string | undefined> {
    const path = await this.managerPath(system);
    if (path === undefined) return undefined;
    return str((await this.client.getJson(path)).body, 'FirmwareVersion');
  }

  private async collection<T>(system: JsonObject, key: string, parse: (o: JsonObject, path: string) => T): Promise<T[]> {
    const link = linkOf(system, key);
    if (link === undefined) return [];
    const paths = await this.client.members(resolveLink(link));
    return Promise.all(paths.map(async (p) => parse((await this.client.getJson(p)).body, p)));
  }

  async identity(): Promise<BmcIdentity> {
    const { body } = await this.system();
    const [bmcFirmware, nics] = await Promise.all([this.bmcFirmware(body), this.collection(body, 'EthernetInterfaces', parseEthernet)]);
    return {
      ...optional('manufacturer', str(body, 'Manufacturer')),
      ...optional('model', str(body, 'Model')),
      ...optional('serial', str(body, 'SerialNumber')),
      ...optional('uuid', str(body, 'UUID')?.toLowerCase()),
      ...optional('bmcFirmware', bmcFirmware),
      macs: hostMacs(nics),
    };
  }

  /** Processors, DIMMs and Ethernet interfaces of the system, as a typed summary. */
  async inventory(): Promise<RedfishInventory> {
    const { path, body } = await this.system();
    const [bmcFirmware, processors, memory, ethernet] = await Promise.all([
      this.bmcFirmware(body),
      this.collection(body, 'Processors', parseProcessor),
      this.collection(body, 'Memory', parseMemory),
      this.collection(body, 'EthernetInterfaces', parseEthernet),
    ]);
    const ps = obj(body, 'ProcessorSummary');
    const ms = obj(body, 'MemorySummary');
    return {
      system: {
        path,
        ...optional('id', str(body, 'Id')),
        ...optional('manufacturer', str(body, 'Manufacturer')),
        ...optional('model', str(body, 'Model')),
        ...optional('serial', str(body, 'SerialNumber')),
        ...optional('uuid', str(body, 'UUID')?.toLowerCase()),
        ...optional('biosVersion', str(body, 'BiosVersion')),
        ...optional('powerState', str(body, 'PowerState')),
        ...optional('processorCount', num(ps, 'Count')),
        ...optional('memoryGiB', num(ms, 'TotalSystemMemoryGiB')),
      },
      ...optional('bmcFirmware', bmcFirmware),
      processors,
      memory,
      ethernet,
      totalMemoryMiB: memory.filter((m) => PRESENT(m.state)).reduce((a, m) => a + (m.capacityMiB ?? 0), 0),
      quirks: await this.quirks(),
    };
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** Runs fn with a driver and always closes it (the session is deleted also when fn throws). */
export async function withRedfishDriver<T>(target: BmcTarget, options: RedfishDriverOptions, fn: (d: RedfishDriver) => Promise<T>): Promise<T> {
  const d = new RedfishDriver(target, options);
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

function optional<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

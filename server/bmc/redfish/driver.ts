/**
 * RedfishDriver: the BmcDriver contract over Redfish (DESIGN.md §2, ADR 0003).
 *
 * Every operation reads the ComputerSystem fresh (PowerState, Boot, ETag) and
 * decides with the pure functions of decide.ts; vendor differences come from
 * the quirks table (quirks.ts), never from code paths per vendor.
 */
import { FleetError, isFleetError } from '../../../common/errors.js';
import type { BmcDriver, BmcIdentity, BmcTarget, BootDevice, BootDeviceOptions, BootDeviceSetting, BootSetReport, PowerState } from '../types.js';
import { RedfishClient, type RedfishClientOptions } from './client.js';
import {
  checkStoredBoot,
  chooseSystem,
  decideBootPatch,
  planPower,
  type BootFollowUp,
  type BootPatchDecision,
  type BootReadBack,
  type ObservedQuirk,
  type PowerVerb,
  type StoredBoot,
} from './decide.js';
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
  /** Default 'auto' (a session when the service offers a SessionService, else Basic); target.redfish.auth wins. */
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
  /** Which system to drive when the BMC has several: its Id or @odata.id (target.redfish.system wins). Required when there are several. */
  systemId?: string;
  /** Per-node quirk override; wins over the table. */
  quirks?: Partial<RedfishQuirks>;
  /** Replaces the built-in quirk table. */
  quirkTable?: readonly QuirkRule[];
  /**
   * How long to wait for PowerState to show a Reset's effect before returning (default 30000 ms; 0: do not
   * wait after the last step; target.redfish.powerWaitMs wins) and how often to look (default 1000 ms).
   */
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
  /** What the BMC showed when read back after the PATCH. */
  stored: StoredBoot;
  /** BMC behaviour seen on the read-back (onceStoredAsContinuous). */
  quirks: ObservedQuirk[];
  /** What the caller must do later (onceIgnored, or Once stored as Continuous): null when nothing. */
  followUp: BootFollowUp | null;
  notes: string[];
}

/** Default of bmc.power_wait: how long a Reset's effect is awaited. */
export const DEFAULT_POWER_WAIT_MS = 30_000;

const PRESENT = (state: string | undefined): boolean => state !== 'Absent';

export class RedfishDriver implements BmcDriver {
  readonly protocol = 'redfish' as const;
  readonly client: RedfishClient;
  private readonly opts: RedfishDriverOptions;
  private readonly systemId: string | undefined;
  private readonly powerWaitMs: number;
  private systemPath: string | undefined;
  private resolved: ResolvedQuirks | undefined;
  private followUp: BootFollowUp | null = null;

  constructor(target: BmcTarget, options: RedfishDriverOptions = {}) {
    this.opts = options;
    this.systemId = target.redfish?.system ?? options.systemId;
    this.powerWaitMs = target.redfish?.powerWaitMs ?? options.settleTimeoutMs ?? DEFAULT_POWER_WAIT_MS;
    const auth = target.redfish?.auth ?? options.auth;
    const tls: RedfishTlsOptions = { ...(target.tls ?? {}), ...(options.tls ?? {}) };
    this.client = new RedfishClient({
      address: target.address,
      port: target.port,
      username: target.username,
      password: target.password,
      tls,
      ...(auth ? { auth } : {}),
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
    return chooseSystem(members, this.systemId, `${this.client.address}:${this.client.port}`);
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
    // With power_wait 0, powerSettles still waits (the default time) for the BMCs known to need it.
    const waitMs = this.powerWaitMs > 0 ? this.powerWaitMs : quirks.powerSettles ? DEFAULT_POWER_WAIT_MS : 0;
    for (let i = 0; i < plan.steps.length; i++) {
      const step = plan.steps[i]!;
      const last = i === plan.steps.length - 1;
      try {
        await this.client.post(action.target, { ResetType: step.resetType });
      } catch (e) {
        // A Reset that timed out may have landed: never send it again; read PowerState back instead.
        if (!isFleetError(e) || e.code !== 'bmc.timeout' || step.settleTo === null) throw e;
        await this.waitFor(step.settleTo, step.resetType, Math.max(waitMs, this.opts.settlePollMs ?? 1_000), 'timed out; not sent again');
        continue;
      }
      // Power changes may land after the 204: wait for PowerState between steps (On while still going off is
      // lost) and after the last one (the caller decides next on what it reads), up to power_wait.
      if (step.settleTo !== null && (!last || waitMs > 0)) {
        await this.waitFor(step.settleTo, step.resetType, last || waitMs > 0 ? waitMs : DEFAULT_POWER_WAIT_MS, 'accepted');
      }
    }
  }

  /** Polls PowerState (bounded by timeoutMs) until it is `state`; bmc.timeout naming the Reset that was sent once. */
  private async waitFor(state: PowerState, resetType: string, timeoutMs: number, sent: 'accepted' | 'timed out; not sent again'): Promise<void> {
    const pollMs = this.opts.settlePollMs ?? 1_000;
    const want = state === 'on' ? 'On' : 'Off';
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const body = (await this.system()).body;
      if (rawPowerState(body) === want) return;
      if (Date.now() + pollMs > deadline) {
        throw new FleetError(
          'bmc.timeout',
          `BMC ${this.client.address}:${this.client.port}: PowerState did not become ${want} within ${timeoutMs} ms after ${resetType} (${sent}; last: ${rawPowerState(body) ?? 'unknown'})`,
          { resetType, sent, powerState: rawPowerState(body) ?? null },
        );
      }
      await sleep(pollMs);
    }
  }

  // --- boot

  /** Sets the override, reads it back, and reports what the BMC stored (and any quirk seen). */
  async setBootDevice(device: BootDevice, options: BootDeviceOptions): Promise<BootSetReport> {
    const r = await this.setBootDeviceDetailed(device, options);
    return { stored: r.stored, quirks: r.quirks, notes: r.notes };
  }

  /** setBootDevice that also returns what was sent and any follow-up the caller must run (onceIgnored, Once stored as Continuous). */
  async setBootDeviceDetailed(device: BootDevice, options: BootDeviceOptions): Promise<BootSetResult> {
    const { decision, readBack } = await this.patchBoot((sys, quirks) => decideBootPatch(sys, quirks, { device, ...options }));
    this.followUp = decision.followUp ?? readBack.followUp;
    return {
      sent: decision.body,
      stored: readBack.stored,
      quirks: readBack.quirks,
      followUp: this.followUp,
      notes: [...decision.notes, ...readBack.notes],
    };
  }

  /** Resets the boot override to None/Disabled (the follow-up of onceIgnored), and checks that it was. */
  async clearBootOverride(): Promise<void> {
    await this.patchBoot((sys, quirks) => decideBootPatch(sys, quirks, { device: 'none', persistent: false, mode: 'auto' }));
    this.followUp = null;
  }

  private async patchBoot(decide: (system: JsonObject, quirks: RedfishQuirks) => BootPatchDecision): Promise<{ decision: BootPatchDecision; readBack: BootReadBack }> {
    for (let attempt = 0; ; attempt++) {
      const sys = await this.system();
      const { quirks } = await this.quirks();
      const decision = decide(sys.body, quirks);
      try {
        await this.client.patch(sys.path, decision.body, sys.etag);
      } catch (e) {
        // 412: the resource changed between GET and PATCH; read it again once.
        if (attempt === 0 && isFleetError(e) && (e.details as { status?: number } | undefined)?.status === 412) continue;
        throw e;
      }
      // The 204 says the PATCH was accepted, not what was stored: read it back.
      const after = parseBootSetting((await this.system()).body);
      const stored: StoredBoot = {
        ...(after.rawTarget !== undefined ? { target: after.rawTarget } : {}),
        ...(after.rawEnabled !== undefined ? { enabled: after.rawEnabled } : {}),
        ...(after.mode !== null ? { mode: after.mode === 'uefi' ? 'UEFI' : 'Legacy' } : {}),
      };
      const readBack = checkStoredBoot(decision.body.Boot, stored, `${this.client.address}:${this.client.port}`);
      return { decision, readBack };
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

/**
 * Pure decisions of the Redfish driver: which ResetType(s) to send for a
 * power verb, and which Boot PATCH body to send for a boot request. Inputs
 * are the system's JSON (or parts of it), the resolved quirks and the
 * request; outputs are plain data. No I/O here: unit-tested table-style.
 */
import { FleetError } from '../../../common/errors.js';
import type { BootDevice, BootDeviceOptions, PowerState } from '../types.js';
import { DEVICE_TO_TARGET, linkOf, obj, str, strArray, type JsonObject } from './parse.js';
import type { RedfishQuirks } from './quirks.js';

export type PowerVerb = 'on' | 'off' | 'soft' | 'cycle' | 'reset';

export interface ResetStep {
  resetType: string;
  /** The power state this step leads to; null where there is nothing to wait for (a graceful request). */
  settleTo: PowerState | null;
}

export type PowerPlan = { kind: 'noop'; reason: string } | { kind: 'reset'; steps: ResetStep[] };

/** Standard ResetType values, used when a BMC does not advertise its AllowableValues. */
export const STANDARD_RESET_TYPES: readonly string[] = [
  'On',
  'ForceOff',
  'GracefulShutdown',
  'GracefulRestart',
  'ForceRestart',
  'Nmi',
  'ForceOn',
  'PushPowerButton',
  'PowerCycle',
];

function pick(allowable: readonly string[], prefs: readonly string[]): string | undefined {
  return prefs.find((p) => allowable.includes(p));
}

function unsupported(verb: PowerVerb, wanted: readonly string[], allowable: readonly string[]): FleetError {
  return new FleetError(
    'bmc.unsupported',
    `BMC offers no ResetType for power ${verb}: wanted ${wanted.join(' or ')}, allowed ${allowable.length ? allowable.join(', ') : '(none)'}`,
    { verb, wanted: [...wanted], allowable: [...allowable] },
  );
}

/**
 * Plans a power verb. Idempotent: on when on, off/soft when off are no-ops.
 * cycle and reset of a system that is off power it on (as a BMC's own
 * "power cycle" would leave it). `allowable` null means "not advertised":
 * every standard ResetType is assumed.
 */
export function planPower(verb: PowerVerb, current: PowerState, allowable: readonly string[] | null): PowerPlan {
  const allowed = allowable ?? STANDARD_RESET_TYPES;
  const one = (prefs: readonly string[], settleTo: PowerState | null): PowerPlan => {
    const t = pick(allowed, prefs);
    if (t === undefined) throw unsupported(verb, prefs, allowed);
    return { kind: 'reset', steps: [{ resetType: t, settleTo }] };
  };
  const powerOnPrefs = ['On', 'ForceOn'];
  switch (verb) {
    case 'on':
      if (current === 'on') return { kind: 'noop', reason: 'already on' };
      return one(powerOnPrefs, 'on');
    case 'off':
      if (current === 'off') return { kind: 'noop', reason: 'already off' };
      return one(['ForceOff'], 'off');
    case 'soft':
      if (current === 'off') return { kind: 'noop', reason: 'already off' };
      return one(['GracefulShutdown'], null);
    case 'cycle': {
      if (current === 'off') return one(powerOnPrefs, 'on');
      if (allowed.includes('PowerCycle')) return { kind: 'reset', steps: [{ resetType: 'PowerCycle', settleTo: 'on' }] };
      const on = pick(allowed, powerOnPrefs);
      if (!allowed.includes('ForceOff') || on === undefined) throw unsupported(verb, ['PowerCycle', 'ForceOff+On'], allowed);
      return {
        kind: 'reset',
        steps: [
          { resetType: 'ForceOff', settleTo: 'off' },
          { resetType: on, settleTo: 'on' },
        ],
      };
    }
    case 'reset':
      if (current === 'off') return one(powerOnPrefs, 'on');
      return one(['ForceRestart', 'GracefulRestart'], 'on');
  }
}

// --- boot

export interface BootRequest extends BootDeviceOptions {
  device: BootDevice;
}

/** What the caller must do after a boot override that could not be sent as asked. */
export interface BootFollowUp {
  /** Reset the override to None/Disabled (driver.clearBootOverride()). */
  action: 'clearBootOverride';
  /** Once the next boot has started (after the next power-on), so the next-but-one boot is normal again. */
  when: 'afterNextPowerOn';
  reason: string;
}

export interface BootPatchDecision {
  body: { Boot: JsonObject };
  followUp: BootFollowUp | null;
  /** Human notes on deviations from the request (quirks applied, mode omitted). */
  notes: string[];
}

const MODE_VALUE = { uefi: 'UEFI', legacy: 'Legacy' } as const;

/**
 * Decides the Boot PATCH body.
 *  - device → BootSourceOverrideTarget (pxe Pxe, disk Hdd, cdrom Cd, bios BiosSetup, none None), checked
 *    against BootSourceOverrideTarget@Redfish.AllowableValues when advertised;
 *  - persistent → Continuous, else Once; device none → Disabled;
 *  - mode uefi/legacy → BootSourceOverrideMode; auto → omitted.
 * Quirks: onceIgnored sends Continuous and asks for a follow-up; modeRequired echoes the current mode when
 * none was asked for; uefiRejected never sends UEFI (omits the mode, winning over modeRequired).
 */
export function decideBootPatch(system: unknown, quirks: RedfishQuirks, req: BootRequest): BootPatchDecision {
  const boot = obj(system, 'Boot');
  if (!boot) throw new FleetError('bmc.unsupported', 'Redfish ComputerSystem has no Boot object: boot override not supported');
  const notes: string[] = [];
  const target = DEVICE_TO_TARGET[req.device];
  const allowedTargets = strArray(boot, 'BootSourceOverrideTarget@Redfish.AllowableValues');
  if (allowedTargets && !allowedTargets.includes(target)) {
    throw new FleetError(
      'bmc.unsupported',
      `BMC does not offer boot target ${target} (allowed: ${allowedTargets.join(', ') || '(none)'})`,
      { target, allowable: allowedTargets },
    );
  }
  const allowedEnabled = strArray(boot, 'BootSourceOverrideEnabled@Redfish.AllowableValues');
  let followUp: BootFollowUp | null = null;
  let enabled: string;
  if (req.device === 'none') {
    enabled = 'Disabled';
  } else if (req.persistent) {
    enabled = 'Continuous';
  } else if (quirks.onceIgnored || (allowedEnabled && !allowedEnabled.includes('Once') && allowedEnabled.includes('Continuous'))) {
    enabled = 'Continuous';
    const reason = quirks.onceIgnored ? 'quirk onceIgnored' : 'BMC does not offer Once';
    followUp = { action: 'clearBootOverride', when: 'afterNextPowerOn', reason };
    notes.push(`${reason}: sent Continuous; the override must be cleared after the next power-on`);
  } else {
    enabled = 'Once';
  }
  if (allowedEnabled && !allowedEnabled.includes(enabled)) {
    throw new FleetError('bmc.unsupported', `BMC does not offer BootSourceOverrideEnabled=${enabled} (allowed: ${allowedEnabled.join(', ')})`);
  }

  const current = str(boot, 'BootSourceOverrideMode');
  let mode: string | undefined = req.mode === 'auto' ? undefined : MODE_VALUE[req.mode];
  if (mode !== undefined) {
    const allowedModes = strArray(boot, 'BootSourceOverrideMode@Redfish.AllowableValues');
    if (allowedModes && !allowedModes.includes(mode)) {
      throw new FleetError('bmc.unsupported', `BMC does not offer BootSourceOverrideMode=${mode} (allowed: ${allowedModes.join(', ')})`);
    }
    if (!('BootSourceOverrideMode' in boot) && !quirks.modeRequired) {
      notes.push(`BMC has no BootSourceOverrideMode: mode ${mode} not sent`);
      mode = undefined;
    }
  } else if (quirks.modeRequired && current !== undefined) {
    mode = current;
    notes.push(`quirk modeRequired: echoed current mode ${current}`);
  }
  if (mode === 'UEFI' && quirks.uefiRejected) {
    notes.push('quirk uefiRejected: mode UEFI not sent');
    mode = undefined;
  }

  const body: JsonObject = { BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled };
  if (mode !== undefined) body['BootSourceOverrideMode'] = mode;
  return { body: { Boot: body }, followUp, notes };
}

// --- authentication

export interface AuthDecision {
  mode: 'session' | 'basic';
  /** Why, for messages and tests. */
  reason: string;
}

/**
 * How to authenticate. `auto`: a session when the service root offers a
 * SessionService (or Links.Sessions), else HTTP Basic (DSP0266 allows a
 * service without sessions). A configured mode is taken as is.
 */
export function decideAuth(configured: 'session' | 'basic' | 'auto', serviceRoot: unknown): AuthDecision {
  if (configured !== 'auto') return { mode: configured, reason: 'configured' };
  const offers = linkOf(serviceRoot, 'SessionService') !== undefined || linkOf(obj(serviceRoot, 'Links'), 'Sessions') !== undefined;
  return offers ? { mode: 'session', reason: 'the service offers a SessionService' } : { mode: 'basic', reason: 'the service offers no SessionService' };
}

// --- which system

/** The Id of a collection member: the last segment of its @odata.id. */
export function memberId(path: string): string {
  return path.replace(/\/+$/, '').split('/').pop() ?? path;
}

/**
 * Which ComputerSystem a node is. `want` (bmc.system) matches a member by Id
 * or by full @odata.id. Without `want`, a BMC with one system is that system;
 * one with several is an error listing them: fleet never picks the first
 * member of a blade chassis for you.
 */
export function chooseSystem(members: readonly string[], want: string | undefined, where: string): string {
  const ids = members.map(memberId);
  if (members.length === 0) throw new FleetError('bmc.protocol', `BMC ${where} lists no ComputerSystem`);
  if (want === undefined) {
    if (members.length === 1) return members[0]!;
    throw new FleetError(
      'bmc.unsupported',
      `BMC ${where} manages ${members.length} systems (${ids.join(', ')}): name this node's system in fleet.yaml (bmc.system)`,
      { systems: ids },
    );
  }
  const hit = members.find((m, i) => m === want || ids[i] === want);
  if (hit === undefined) {
    throw new FleetError('bmc.unsupported', `BMC ${where} has no system ${JSON.stringify(want)} (it has ${ids.join(', ')})`, { systems: ids, wanted: want });
  }
  return hit;
}

// --- boot read-back

/** What the BMC shows in Boot after a PATCH. */
export interface StoredBoot {
  target?: string;
  enabled?: string;
  mode?: string;
}

/** Quirks fleet learns by reading back what a BMC did; recorded with the result (and the audit event). */
export type ObservedQuirk = 'onceStoredAsContinuous';

export interface BootReadBack {
  stored: StoredBoot;
  quirks: ObservedQuirk[];
  /** Set when the BMC stored the override as Continuous where Once was sent: reset it after the boot. */
  followUp: BootFollowUp | null;
  notes: string[];
}

/**
 * Compares what was sent with what the BMC stored. Once stored as
 * Continuous is a quirk (the node boots as asked, and again and again: the
 * override must be reset after the boot); a different target, or an
 * override that was not stored at all, is bmc.command_failed (the BMC said
 * 204 and did something else). A BMC that does not show a property cannot be
 * checked on it (noted).
 */
export function checkStoredBoot(sent: JsonObject, stored: StoredBoot, where: string): BootReadBack {
  const want = { target: str(sent, 'BootSourceOverrideTarget'), enabled: str(sent, 'BootSourceOverrideEnabled'), mode: str(sent, 'BootSourceOverrideMode') };
  const notes: string[] = [];
  const quirks: ObservedQuirk[] = [];
  let followUp: BootFollowUp | null = null;
  const show = (b: StoredBoot) => `${b.target ?? '?'}/${b.enabled ?? '?'}${b.mode ? '/' + b.mode : ''}`;
  const refuse = (what: string) =>
    new FleetError('bmc.command_failed', `BMC ${where} accepted the boot override ${show(want)} but stored ${show(stored)} (${what})`, {
      sent: want,
      stored,
    });
  if (stored.enabled === undefined) notes.push('BMC does not show BootSourceOverrideEnabled: not checked');
  if (stored.target === undefined) notes.push('BMC does not show BootSourceOverrideTarget: not checked');
  if (want.enabled === 'Disabled') {
    if (stored.enabled !== undefined && stored.enabled !== 'Disabled') throw refuse('the override is still enabled');
    return { stored, quirks, followUp, notes };
  }
  if (stored.enabled === 'Disabled') throw refuse('the override was not stored');
  if (stored.target !== undefined && want.target !== undefined && stored.target !== want.target) throw refuse('another target');
  if (stored.enabled !== undefined && want.enabled !== undefined && stored.enabled !== want.enabled) {
    if (want.enabled === 'Once' && stored.enabled === 'Continuous') {
      quirks.push('onceStoredAsContinuous');
      followUp = { action: 'clearBootOverride', when: 'afterNextPowerOn', reason: 'the BMC stored Once as Continuous' };
      notes.push('the BMC stored Once as Continuous: the override stays until it is reset after the boot');
    } else {
      throw refuse(`${want.enabled} was sent`);
    }
  }
  if (want.mode !== undefined && stored.mode !== undefined && stored.mode !== want.mode) notes.push(`the BMC kept boot mode ${stored.mode} where ${want.mode} was sent`);
  return { stored, quirks, followUp, notes };
}

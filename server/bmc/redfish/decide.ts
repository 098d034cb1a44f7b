/**
 * Pure decisions of the Redfish driver: which ResetType(s) to send for a
 * power verb, and which Boot PATCH body to send for a boot request. Inputs
 * are the system's JSON (or parts of it), the resolved quirks and the
 * request; outputs are plain data. No I/O here: unit-tested table-style.
 */
import { FleetError } from '../../../common/errors.js';
import type { BootDevice, BootDeviceOptions, PowerState } from '../types.js';
import { DEVICE_TO_TARGET, obj, str, strArray, type JsonObject } from './parse.js';
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

import { describe, expect, it } from 'vitest';
import {
  checkStoredBoot,
  chooseSystem,
  decideAuth,
  decideBootPatch,
  planPower,
  STANDARD_RESET_TYPES,
  type BootRequest,
  type PowerVerb,
} from '../../../server/bmc/redfish/decide.js';
import { NO_QUIRKS, type RedfishQuirks } from '../../../server/bmc/redfish/quirks.js';
import type { PowerState } from '../../../server/bmc/types.js';
import { FleetError } from '../../../common/errors.js';

const MOCKUP_RESET = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn', 'PushPowerButton'];

describe('planPower', () => {
  const cases: [PowerVerb, PowerState, string[] | null, string[] | 'noop'][] = [
    ['on', 'off', MOCKUP_RESET, ['On']],
    ['on', 'on', MOCKUP_RESET, 'noop'],
    ['on', 'off', ['ForceOn', 'ForceOff'], ['ForceOn']],
    ['off', 'on', MOCKUP_RESET, ['ForceOff']],
    ['off', 'off', MOCKUP_RESET, 'noop'],
    ['soft', 'on', MOCKUP_RESET, ['GracefulShutdown']],
    ['soft', 'off', MOCKUP_RESET, 'noop'],
    ['cycle', 'on', MOCKUP_RESET, ['ForceOff', 'On']],
    ['cycle', 'on', [...MOCKUP_RESET, 'PowerCycle'], ['PowerCycle']],
    ['cycle', 'off', MOCKUP_RESET, ['On']],
    ['reset', 'on', MOCKUP_RESET, ['ForceRestart']],
    ['reset', 'on', ['On', 'GracefulRestart'], ['GracefulRestart']],
    ['reset', 'off', MOCKUP_RESET, ['On']],
    // Not advertised: every standard value is assumed.
    ['cycle', 'on', null, ['PowerCycle']],
    ['off', 'on', null, ['ForceOff']],
  ];
  it.each(cases)('%s from %s with %j → %j', (verb, current, allowable, want) => {
    const plan = planPower(verb, current, allowable);
    if (want === 'noop') expect(plan.kind).toBe('noop');
    else expect(plan.kind === 'reset' ? plan.steps.map((s) => s.resetType) : plan).toEqual(want);
  });

  it('waits for off between the steps of ForceOff + On, and for nothing after a graceful shutdown', () => {
    expect(planPower('cycle', 'on', MOCKUP_RESET)).toEqual({
      kind: 'reset',
      steps: [
        { resetType: 'ForceOff', settleTo: 'off' },
        { resetType: 'On', settleTo: 'on' },
      ],
    });
    expect(planPower('soft', 'on', MOCKUP_RESET)).toEqual({ kind: 'reset', steps: [{ resetType: 'GracefulShutdown', settleTo: null }] });
  });

  const unsupported: [PowerVerb, PowerState, string[]][] = [
    ['on', 'off', ['ForceOff']],
    ['off', 'on', ['On', 'GracefulShutdown']],
    ['soft', 'on', ['On', 'ForceOff']],
    ['cycle', 'on', ['On', 'GracefulRestart']],
    ['cycle', 'on', ['ForceOff']],
    ['reset', 'on', ['On', 'ForceOff']],
    ['on', 'off', []],
  ];
  it.each(unsupported)('%s from %s with %j → bmc.unsupported', (verb, current, allowable) => {
    let err: unknown;
    try {
      planPower(verb, current, allowable);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).code).toBe('bmc.unsupported');
    expect((err as FleetError).message).toContain(`power ${verb}`);
  });

  it('knows PowerCycle as a standard value', () => {
    expect(STANDARD_RESET_TYPES).toContain('PowerCycle');
  });
});

describe('decideBootPatch', () => {
  const TARGETS = ['None', 'Pxe', 'Cd', 'Usb', 'Hdd', 'BiosSetup', 'Utilities', 'Diags', 'SDCard', 'UefiTarget'];
  const system = (boot: Record<string, unknown>) => ({ Boot: { 'BootSourceOverrideTarget@Redfish.AllowableValues': TARGETS, ...boot } });
  const uefiSystem = system({ BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideMode: 'UEFI' });
  const legacySystem = system({ BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideMode: 'Legacy' });
  const noModeSystem = system({ BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Hdd' });
  const q = (over: Partial<RedfishQuirks> = {}): RedfishQuirks => ({ ...NO_QUIRKS, ...over });
  const r = (device: BootRequest['device'], persistent: boolean, mode: BootRequest['mode']): BootRequest => ({ device, persistent, mode });

  const cases: [string, unknown, RedfishQuirks, BootRequest, Record<string, string>, boolean][] = [
    ['pxe once uefi', uefiSystem, q(), r('pxe', false, 'uefi'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' }, false],
    ['disk persistent legacy', uefiSystem, q(), r('disk', true, 'legacy'), { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' }, false],
    ['cdrom once auto omits mode', uefiSystem, q(), r('cdrom', false, 'auto'), { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' }, false],
    ['bios persistent auto', uefiSystem, q(), r('bios', true, 'auto'), { BootSourceOverrideTarget: 'BiosSetup', BootSourceOverrideEnabled: 'Continuous' }, false],
    ['none disables', uefiSystem, q(), r('none', true, 'auto'), { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' }, false],
    ['onceIgnored: Continuous + follow-up', uefiSystem, q({ onceIgnored: true }), r('pxe', false, 'uefi'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' }, true],
    ['onceIgnored: persistent needs no follow-up', uefiSystem, q({ onceIgnored: true }), r('pxe', true, 'uefi'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' }, false],
    ['modeRequired echoes UEFI', uefiSystem, q({ modeRequired: true }), r('pxe', false, 'auto'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' }, false],
    ['modeRequired echoes Legacy', legacySystem, q({ modeRequired: true }), r('pxe', false, 'auto'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'Legacy' }, false],
    ['modeRequired keeps an explicit mode', uefiSystem, q({ modeRequired: true }), r('pxe', false, 'legacy'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'Legacy' }, false],
    ['modeRequired also on disable', uefiSystem, q({ modeRequired: true }), r('none', false, 'auto'), { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI' }, false],
    ['modeRequired with no mode to echo', noModeSystem, q({ modeRequired: true }), r('pxe', false, 'auto'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' }, false],
    ['uefiRejected omits UEFI', uefiSystem, q({ uefiRejected: true }), r('pxe', false, 'uefi'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' }, false],
    ['uefiRejected keeps Legacy', uefiSystem, q({ uefiRejected: true }), r('pxe', false, 'legacy'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'Legacy' }, false],
    ['uefiRejected wins over modeRequired', uefiSystem, q({ uefiRejected: true, modeRequired: true }), r('pxe', false, 'auto'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' }, false],
    ['no mode property: explicit mode not sent', noModeSystem, q(), r('pxe', false, 'uefi'), { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' }, false],
    [
      'Once not offered: Continuous + follow-up',
      system({ BootSourceOverrideMode: 'UEFI', 'BootSourceOverrideEnabled@Redfish.AllowableValues': ['Disabled', 'Continuous'] }),
      q(),
      r('pxe', false, 'auto'),
      { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' },
      true,
    ],
  ];
  it.each(cases)('%s', (_name, sys, quirks, req, body, followUp) => {
    const d = decideBootPatch(sys, quirks, req);
    expect(d.body).toEqual({ Boot: body });
    expect(d.followUp !== null).toBe(followUp);
    if (followUp) expect(d.followUp).toMatchObject({ action: 'clearBootOverride', when: 'afterNextPowerOn' });
  });

  it('notes every deviation from the request', () => {
    expect(decideBootPatch(uefiSystem, q({ uefiRejected: true }), r('pxe', false, 'uefi')).notes.join()).toContain('uefiRejected');
    expect(decideBootPatch(uefiSystem, q({ modeRequired: true }), r('pxe', false, 'auto')).notes.join()).toContain('modeRequired');
    expect(decideBootPatch(uefiSystem, q(), r('pxe', false, 'uefi')).notes).toEqual([]);
  });

  const refused: [string, unknown, BootRequest][] = [
    ['target not offered', system({ 'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Hdd'] }), r('pxe', false, 'auto')],
    ['mode not offered', system({ BootSourceOverrideMode: 'UEFI', 'BootSourceOverrideMode@Redfish.AllowableValues': ['UEFI'] }), r('pxe', false, 'legacy')],
    ['Continuous not offered', system({ 'BootSourceOverrideEnabled@Redfish.AllowableValues': ['Disabled', 'Once'] }), r('pxe', true, 'auto')],
    ['no Boot object', { PowerState: 'On' }, r('pxe', false, 'auto')],
  ];
  it.each(refused)('%s → bmc.unsupported', (_name, sys, req) => {
    expect(() => decideBootPatch(sys, q(), req)).toThrow(FleetError);
    try {
      decideBootPatch(sys, q(), req);
    } catch (e) {
      expect((e as FleetError).code).toBe('bmc.unsupported');
    }
  });
});

describe('decideAuth', () => {
  const root = (extra: Record<string, unknown>) => ({ '@odata.id': '/redfish/v1/', Systems: { '@odata.id': '/redfish/v1/Systems' }, ...extra });
  it.each([
    ['auto', root({ SessionService: { '@odata.id': '/redfish/v1/SessionService' } }), 'session'],
    ['auto', root({ Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } }), 'session'],
    ['auto', root({}), 'basic'],
    ['auto', root({ SessionService: 'not a link' }), 'basic'],
    ['basic', root({ SessionService: { '@odata.id': '/redfish/v1/SessionService' } }), 'basic'],
    ['session', root({}), 'session'],
  ] as const)('%s with %j → %s', (configured, r, mode) => {
    expect(decideAuth(configured, r).mode).toBe(mode);
  });
});

describe('chooseSystem', () => {
  const blades = ['/redfish/v1/Systems/Blade1', '/redfish/v1/Systems/Blade2', '/redfish/v1/Systems/Blade3', '/redfish/v1/Systems/Blade4'];
  it('takes the only system when none is named', () => {
    expect(chooseSystem(['/redfish/v1/Systems/437XR1138R2'], undefined, 'bmc')).toBe('/redfish/v1/Systems/437XR1138R2');
  });
  it('finds a named system by Id or @odata.id', () => {
    expect(chooseSystem(blades, 'Blade3', 'bmc')).toBe(blades[2]);
    expect(chooseSystem(blades, '/redfish/v1/Systems/Blade2', 'bmc')).toBe(blades[1]);
    expect(chooseSystem(['/redfish/v1/Systems/Blade1/'], 'Blade1', 'bmc')).toBe('/redfish/v1/Systems/Blade1/');
  });
  it('never picks the first of several: an unnamed choice is an error listing the Ids', () => {
    const e = (() => {
      try {
        chooseSystem(blades, undefined, '10.1.2.3:443');
      } catch (err) {
        return err as FleetError;
      }
      throw new Error('expected an error');
    })();
    expect(e.code).toBe('bmc.unsupported');
    expect(e.message).toBe("BMC 10.1.2.3:443 manages 4 systems (Blade1, Blade2, Blade3, Blade4): name this node's system in fleet.yaml (bmc.system)");
    expect(e.details).toEqual({ systems: ['Blade1', 'Blade2', 'Blade3', 'Blade4'] });
  });
  it('an unknown name or an empty collection is an error', () => {
    expect(() => chooseSystem(blades, 'Blade9', 'bmc')).toThrow(/has no system "Blade9" \(it has Blade1, Blade2, Blade3, Blade4\)/);
    expect(() => chooseSystem([], undefined, 'bmc')).toThrow(/lists no ComputerSystem/);
  });
});

describe('checkStoredBoot', () => {
  const sent = (target: string, enabled: string, mode?: string) => ({ BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled, ...(mode ? { BootSourceOverrideMode: mode } : {}) });
  it('accepts what was sent', () => {
    const r = checkStoredBoot(sent('Pxe', 'Once', 'UEFI'), { target: 'Pxe', enabled: 'Once', mode: 'UEFI' }, 'bmc');
    expect(r).toEqual({ stored: { target: 'Pxe', enabled: 'Once', mode: 'UEFI' }, quirks: [], followUp: null, notes: [] });
  });
  it('Once stored as Continuous is a quirk with a follow-up, not an error', () => {
    const r = checkStoredBoot(sent('Pxe', 'Once'), { target: 'Pxe', enabled: 'Continuous' }, 'bmc');
    expect(r.quirks).toEqual(['onceStoredAsContinuous']);
    expect(r.followUp).toMatchObject({ action: 'clearBootOverride', when: 'afterNextPowerOn' });
  });
  it.each([
    ['not stored', sent('Pxe', 'Once'), { target: 'None', enabled: 'Disabled' }, /stored None\/Disabled \(the override was not stored\)/],
    ['another target', sent('Pxe', 'Once'), { target: 'Hdd', enabled: 'Once' }, /another target/],
    ['Continuous stored as Once', sent('Hdd', 'Continuous'), { target: 'Hdd', enabled: 'Once' }, /Continuous was sent/],
    ['still enabled after a clear', sent('None', 'Disabled'), { target: 'Pxe', enabled: 'Once' }, /still enabled/],
  ] as const)('%s → bmc.command_failed', (_name, s, stored, msg) => {
    try {
      checkStoredBoot(s, stored, 'bmc');
    } catch (e) {
      expect((e as FleetError).code).toBe('bmc.command_failed');
      expect((e as FleetError).message).toMatch(msg);
      expect((e as FleetError).details).toMatchObject({ stored });
      return;
    }
    throw new Error('expected bmc.command_failed');
  });
  it('notes what it cannot check, and a mode the BMC kept', () => {
    const r = checkStoredBoot(sent('Pxe', 'Once', 'UEFI'), { mode: 'Legacy' }, 'bmc');
    expect(r.quirks).toEqual([]);
    expect(r.notes).toEqual([
      'BMC does not show BootSourceOverrideEnabled: not checked',
      'BMC does not show BootSourceOverrideTarget: not checked',
      'the BMC kept boot mode Legacy where UEFI was sent',
    ]);
  });
});

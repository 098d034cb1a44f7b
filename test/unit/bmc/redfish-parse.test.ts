import { describe, expect, it } from 'vitest';
import {
  extractRedfishError,
  hostMacs,
  normaliseMac,
  parseActionInfoResetTypes,
  parseBootSetting,
  parseEthernet,
  parseMemory,
  parsePowerState,
  parseProcessor,
  parseResetAction,
  resolveLink,
} from '../../../server/bmc/redfish/parse.js';
import { DEFAULT_QUIRK_TABLE, NO_QUIRKS, resolveQuirks } from '../../../server/bmc/redfish/quirks.js';
import { normaliseFingerprint } from '../../../server/bmc/redfish/tls.js';
import { FleetError } from '../../../common/errors.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof FleetError ? e.code : 'not-a-FleetError';
  }
  return undefined;
}

describe('parsePowerState', () => {
  it.each([
    ['On', 'on'],
    ['PoweringOn', 'on'],
    ['Paused', 'on'],
    ['Off', 'off'],
    ['PoweringOff', 'off'],
  ])('%s → %s', (raw, want) => expect(parsePowerState({ PowerState: raw })).toBe(want));

  it.each([[{}], [{ PowerState: 1 }], [{ PowerState: 'Maybe' }], [null], ['On'], [[]]])('%j → bmc.protocol', (sys) => {
    expect(code(() => parsePowerState(sys))).toBe('bmc.protocol');
  });
});

describe('parseBootSetting', () => {
  const b = (boot: Record<string, unknown>) => ({ Boot: boot });
  it.each([
    [b({ BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe', BootSourceOverrideMode: 'UEFI' }), { device: 'pxe', persistent: false, mode: 'uefi' }],
    [b({ BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideMode: 'Legacy' }), { device: 'disk', persistent: true, mode: 'legacy' }],
    [b({ BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Cd' }), { device: 'cdrom', persistent: true, mode: null }],
    [b({ BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'BiosSetup' }), { device: 'bios', persistent: false, mode: null }],
    [b({ BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideMode: 'UEFI' }), { device: 'none', persistent: null, mode: 'uefi' }],
    [b({ BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Usb' }), { device: 'none', persistent: null, mode: null, rawTarget: 'Usb' }],
    [b({}), { device: 'none', persistent: null, mode: null }],
  ])('%j', (sys, want) => expect(parseBootSetting(sys)).toMatchObject(want));

  it('no Boot → bmc.protocol', () => expect(code(() => parseBootSetting({ Boot: 'x' }))).toBe('bmc.protocol'));
});

describe('parseResetAction and ActionInfo', () => {
  it('reads target and AllowableValues', () => {
    const sys = { Actions: { '#ComputerSystem.Reset': { target: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'ResetType@Redfish.AllowableValues': ['On', 7, 'ForceOff'] } } };
    expect(parseResetAction(sys)).toEqual({ target: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', allowable: ['On', 'ForceOff'] });
  });
  it('null allowable and an ActionInfo link where not advertised', () => {
    const sys = { Actions: { '#ComputerSystem.Reset': { target: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', '@Redfish.ActionInfo': '/redfish/v1/Systems/1/ResetActionInfo' } } };
    expect(parseResetAction(sys)).toEqual({ target: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', allowable: null, actionInfo: '/redfish/v1/Systems/1/ResetActionInfo' });
    expect(parseActionInfoResetTypes({ Parameters: [{ Name: 'Other' }, { Name: 'ResetType', AllowableValues: ['On', 'ForceOff'] }] })).toEqual(['On', 'ForceOff']);
    expect(parseActionInfoResetTypes({ Parameters: 'x' })).toBeNull();
  });
  it('no action → undefined; action without target → bmc.protocol; foreign target → bmc.protocol', () => {
    expect(parseResetAction({ Actions: {} })).toBeUndefined();
    expect(code(() => parseResetAction({ Actions: { '#ComputerSystem.Reset': {} } }))).toBe('bmc.protocol');
    expect(code(() => parseResetAction({ Actions: { '#ComputerSystem.Reset': { target: 'https://evil.example/steal' } } }))).toBe('bmc.protocol');
  });
});

describe('resolveLink', () => {
  it.each([
    ['/redfish/v1/Systems/1', '/redfish/v1/Systems/1'],
    ['https://10.0.0.5/redfish/v1/Systems/1', '/redfish/v1/Systems/1'],
    [' /redfish/v1/Managers/BMC ', '/redfish/v1/Managers/BMC'],
  ])('%s → %s', (link, want) => expect(resolveLink(link)).toBe(want));
  it.each(['/etc/passwd', 'Systems/1', '/redfish/v1/../../x', 'https://x/other/path', 'javascript:alert(1)'])('%s → bmc.protocol', (link) => {
    expect(code(() => resolveLink(link))).toBe('bmc.protocol');
  });
});

describe('extractRedfishError', () => {
  it('joins ExtendedInfo messages', () => {
    const body = {
      error: {
        code: 'Base.1.5.0.GeneralError',
        message: 'A general error has occurred.',
        '@Message.ExtendedInfo': [{ MessageId: 'A', Message: 'First.' }, { MessageId: 'B', Message: 'Second.' }, { MessageId: 'C' }],
      },
    };
    expect(extractRedfishError(body)).toBe('First.; Second.; C');
  });
  it('falls back to error.message, then code; nothing for non-Redfish bodies', () => {
    expect(extractRedfishError({ error: { message: 'm', code: 'c' } })).toBe('m');
    expect(extractRedfishError({ error: { code: 'c' } })).toBe('c');
    expect(extractRedfishError({ '@Message.ExtendedInfo': [{ Message: 'top' }] })).toBe('top');
    expect(extractRedfishError('<html>')).toBeUndefined();
    expect(extractRedfishError(undefined)).toBeUndefined();
  });
});

describe('MACs and inventory parsers', () => {
  it.each([
    ['12:44:6A:3B:04:11', '12:44:6a:3b:04:11'],
    ['12-44-6a-3b-04-11', '12:44:6a:3b:04:11'],
    ['12446A3B0411', '12:44:6a:3b:04:11'],
    ['00:00:00:00:00:00', undefined],
    ['not a mac', undefined],
    [undefined, undefined],
  ])('normaliseMac(%s) → %s', (v, want) => expect(normaliseMac(v)).toBe(want));

  it('hostMacs: current then permanent, deduplicated, host interface left out', () => {
    const nics = [
      parseEthernet({ Id: 'A', MACAddress: 'AA:BB:CC:DD:EE:00', PermanentMACAddress: '12:44:6A:3B:88:90' }, '/x/A'),
      parseEthernet({ Id: 'VLAN', MACAddress: 'AA:BB:CC:DD:EE:00', EthernetInterfaceType: 'Virtual' }, '/x/VLAN'),
      parseEthernet({ Id: 'H', MACAddress: 'AA:BB:CC:DD:EE:FE', Links: { HostInterface: { '@odata.id': '/redfish/v1/Managers/BMC/HostInterfaces/1' } } }, '/x/H'),
      parseEthernet({ MACAddress: 42 }, '/redfish/v1/Systems/1/EthernetInterfaces/Z'),
    ];
    expect(nics[1]).toMatchObject({ id: 'VLAN', virtual: true, hostInterface: false });
    expect(nics[2]).toMatchObject({ hostInterface: true });
    expect(nics[3]).toEqual({ id: 'Z', hostInterface: false, virtual: false });
    expect(hostMacs(nics)).toEqual(['aa:bb:cc:dd:ee:00', '12:44:6a:3b:88:90']);
  });

  it('processors and memory keep only well-typed fields', () => {
    expect(parseProcessor({ Id: 'CPU1', TotalCores: 8, TotalThreads: '16', Status: { State: 'Enabled', Health: 'OK' } }, '/p')).toEqual({
      id: 'CPU1',
      cores: 8,
      state: 'Enabled',
      health: 'OK',
    });
    expect(parseMemory({ CapacityMiB: 32768, MemoryDeviceType: 'DDR4', Status: { State: 'Absent' } }, '/redfish/v1/Systems/1/Memory/DIMM4')).toEqual({
      id: 'DIMM4',
      capacityMiB: 32768,
      type: 'DDR4',
      state: 'Absent',
    });
  });
});

describe('normaliseFingerprint', () => {
  const hex = 'ab'.repeat(32);
  const want = Array(32).fill('AB').join(':');
  it.each([hex, hex.toUpperCase(), want, want.toLowerCase(), `sha256:${hex}`, `SHA256=${want}`, ` ${want} `])('%s', (fp) => {
    expect(normaliseFingerprint(fp)).toBe(want);
  });
  it.each(['', 'ab'.repeat(20), 'zz'.repeat(32), 'ab'.repeat(33)])('%s → config.invalid', (fp) => {
    expect(code(() => normaliseFingerprint(fp))).toBe('config.invalid');
  });
});

describe('resolveQuirks', () => {
  const table = [
    { name: 'acme-all', match: { manufacturer: 'ACME' }, quirks: { powerSettles: true } },
    { name: 'acme-x1', match: { manufacturer: 'acme', model: /^X1\b/ }, quirks: { onceIgnored: true, powerSettles: false } },
    { name: 'match-nothing', match: {}, quirks: { uefiRejected: true } },
  ];
  it.each([
    [{ manufacturer: 'Contoso', model: '3500' }, [], NO_QUIRKS],
    [{ manufacturer: 'Acme Corp', model: 'Z9' }, ['acme-all'], { ...NO_QUIRKS, powerSettles: true }],
    [{ manufacturer: 'acme', model: 'X1 Gen2' }, ['acme-all', 'acme-x1'], { ...NO_QUIRKS, onceIgnored: true }],
    [{ model: 'X1' }, [], NO_QUIRKS],
  ])('%j', (sys, rules, quirks) => {
    expect(resolveQuirks(sys, table)).toEqual({ rules, quirks });
  });
  it('the per-node override wins, flag by flag', () => {
    expect(resolveQuirks({ manufacturer: 'ACME', model: 'X1' }, table, { onceIgnored: false, modeRequired: true }).quirks).toEqual({
      ...NO_QUIRKS,
      modeRequired: true,
    });
  });
  it('the built-in table matches Supermicro for modeRequired', () => {
    expect(resolveQuirks({ manufacturer: 'Supermicro', model: 'X11DPU' }).quirks.modeRequired).toBe(true);
    expect(resolveQuirks({ manufacturer: 'Contoso' }, DEFAULT_QUIRK_TABLE).quirks).toEqual(NO_QUIRKS);
  });
});

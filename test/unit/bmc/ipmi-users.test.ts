import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import {
  PasswordOp,
  Priv,
  generateBmcPassword,
  getUserAccess,
  getUserName,
  parseUserAccess,
  parseUserName,
  planRotation,
  setUserAccess,
  setUserName,
  setUserPassword,
  type UserSlot,
} from '../../../server/bmc/ipmi/users.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('IPMI user commands: the bytes of IPMI v2.0 §22.26–22.30', () => {
  it('Get/Set User Access', () => {
    expect(getUserAccess(1, 3)).toMatchObject({ netFn: 0x06, cmd: 0x44 });
    expect(hex(getUserAccess(1, 3).data)).toBe('0103');
    // change bit, IPMI messaging + link auth, channel 1; user 3; administrator
    expect(hex(setUserAccess(1, 3, Priv.ADMINISTRATOR, true).data)).toBe('b10304');
    // change bit only (messaging and link auth off); no access
    expect(hex(setUserAccess(1, 2, Priv.NO_ACCESS, false).data)).toBe('81020f');
  });

  it('parses Get User Access (enabled / disabled / unspecified)', () => {
    expect(parseUserAccess(Buffer.from([0x3f, 0x42, 0x00, 0x34]))).toEqual({
      maxUsers: 63,
      enabledCount: 2,
      enabled: true,
      callbackOnly: false,
      linkAuth: true,
      ipmiMessaging: true,
      privilege: 4,
    });
    expect(parseUserAccess(Buffer.from([0x10, 0x81, 0x00, 0x0f])).enabled).toBe(false);
    expect(parseUserAccess(Buffer.from([0x10, 0x01, 0x00, 0x0f])).enabled).toBeNull();
  });

  it('refuses a truncated Get User Access answer with bmc.protocol, never a RangeError', () => {
    expect(() => parseUserAccess(Buffer.from([0x3f, 0x42]))).toThrow(expect.objectContaining({ code: 'bmc.protocol' }));
    expect(() => parseUserName(Buffer.from('short'))).toThrow(expect.objectContaining({ code: 'bmc.protocol' }));
  });

  it('Set/Get User Name: 16 bytes NUL padded; blanks and long names refused', () => {
    expect(hex(setUserName(3, 'fleet-a').data)).toBe('03' + Buffer.from('fleet-a').toString('hex') + '00'.repeat(9));
    expect(hex(getUserName(5).data)).toBe('05');
    expect(parseUserName(Buffer.concat([Buffer.from('admin'), Buffer.alloc(11)]))).toBe('admin');
    expect(parseUserName(Buffer.alloc(16))).toBe('');
    expect(parseUserName(Buffer.concat([Buffer.from('root'), Buffer.alloc(12, 0xff)]))).toBe('root');
    expect(() => setUserName(3, 'a b')).toThrow(FleetError);
    expect(() => setUserName(3, 'x'.repeat(17))).toThrow(/16/);
    expect(() => setUserName(0, 'x')).toThrow(/out of range/);
    expect(() => setUserName(64, 'x')).toThrow(/out of range/);
  });

  it('Set User Password: 20-byte flag, operations, padding', () => {
    const set = setUserPassword(3, PasswordOp.SET, 'pw', 20).data;
    expect(set[0]).toBe(0x83);
    expect(set[1]).toBe(2);
    expect(set.length).toBe(22);
    expect(set.subarray(2, 4).toString()).toBe('pw');
    expect(set.subarray(4).every((b) => b === 0)).toBe(true);
    const set16 = setUserPassword(3, PasswordOp.SET, 'pw', 16).data;
    expect(set16[0]).toBe(0x03);
    expect(set16.length).toBe(18);
    expect(hex(setUserPassword(2, PasswordOp.DISABLE).data)).toBe('8200');
    expect(hex(setUserPassword(2, PasswordOp.ENABLE, undefined, 16).data)).toBe('0201');
    expect(() => setUserPassword(3, PasswordOp.SET, 'x'.repeat(21), 20)).toThrow();
    expect(() => setUserPassword(3, PasswordOp.SET, 'x'.repeat(17), 16)).toThrow();
    expect(() => setUserPassword(3, PasswordOp.SET, undefined)).toThrow();
  });
});

describe('generateBmcPassword', () => {
  it('maps each random byte to one of 64 symbols (6 bits each: 120 bits for 20)', () => {
    const bytes = Buffer.from(Array.from({ length: 20 }, (_, i) => i * 13));
    const pw = generateBmcPassword(20, () => bytes);
    expect(pw).toHaveLength(20);
    expect(pw).toMatch(/^[A-Za-z0-9._]{20}$/);
    // byte & 63 picks the symbol: 0 → A, 13 → N, 26 → a
    expect(pw.slice(0, 3)).toBe('ANa');
  });

  it('never a "-" (ipmitool would take a password starting with it for an option): byte 62 is "."', () => {
    expect(generateBmcPassword(16, () => Buffer.alloc(16, 62))).toBe('.'.repeat(16));
    for (let i = 0; i < 200; i++) expect(generateBmcPassword()).not.toContain('-');
  });

  it('draws fresh randomness each time and honours 16', () => {
    const a = generateBmcPassword();
    const b = generateBmcPassword();
    expect(a).not.toBe(b);
    expect(generateBmcPassword(16)).toHaveLength(16);
  });

  it('refuses a short random source', () => {
    expect(() => generateBmcPassword(20, () => Buffer.alloc(3))).toThrow(/too few/);
  });
});

const slots = (names: Record<number, string>, max = 8): UserSlot[] =>
  Array.from({ length: max }, (_, i) => ({ id: i + 1, name: names[i + 1] ?? '', enabled: null, privilege: names[i + 1] ? 4 : 0x0f }));

describe('planRotation', () => {
  const table: { what: string; slots: UserSlot[]; current: string; want: { slot: number; name: string; retire: { id: number; name: string } | null } }[] = [
    { what: 'factory admin → fleet-a in the lowest free slot (never id 1)', slots: slots({ 2: 'admin' }), current: 'admin', want: { slot: 3, name: 'fleet-a', retire: { id: 2, name: 'admin' } } },
    { what: 'fleet-a in use → fleet-b', slots: slots({ 2: 'admin', 3: 'fleet-a' }), current: 'fleet-a', want: { slot: 4, name: 'fleet-b', retire: { id: 3, name: 'fleet-a' } } },
    { what: 'fleet-b in use → fleet-a, reusing its old slot', slots: slots({ 2: 'admin', 3: 'fleet-a', 4: 'fleet-b' }), current: 'fleet-b', want: { slot: 3, name: 'fleet-a', retire: { id: 4, name: 'fleet-b' } } },
    { what: 'a half-made fleet-a from a crashed run is reused, not duplicated', slots: slots({ 2: 'admin', 5: 'fleet-a' }), current: 'admin', want: { slot: 5, name: 'fleet-a', retire: { id: 2, name: 'admin' } } },
    { what: 'current user not among the slots: nothing to retire', slots: slots({ 2: 'root' }), current: 'ADMIN', want: { slot: 3, name: 'fleet-a', retire: null } },
  ];
  for (const t of table) {
    it(t.what, () => {
      const plan = planRotation(t.slots, t.current);
      expect({ slot: plan.slot, name: plan.name, retire: plan.retire }).toEqual(t.want);
      expect(plan.slot).not.toBe(plan.retire?.id);
    });
  }

  it('never writes into the slot in use, even when it bears the target name', () => {
    // Someone logs in as fleet-b, but the slot list says fleet-a is current as well: the current slot is skipped.
    const plan = planRotation(slots({ 2: 'fleet-a', 3: 'x' }), 'fleet-a');
    expect(plan.name).toBe('fleet-b');
    expect(plan.slot).toBe(4);
  });

  it('a BMC with every slot named: a clear error, nothing planned', () => {
    const full = slots({ 1: 'anon', 2: 'admin', 3: 'a', 4: 'b' }, 4);
    expect(() => planRotation(full, 'admin')).toThrow(/no free user slot for fleet-a/);
  });
});

import { describe, expect, it } from 'vitest';
import { type AgentIdentityFacts, canonicalSerial, canonicalUuid, reconcile, summarizeChecks } from '../../../server/inventory/reconcile.js';

const U = '4c4c4544-0035-4e10-8048-b4c04f4d4e32';
/** U as the SMBIOS table stores it (first three fields little-endian), then as IPMI's LSB-first order. */
const U_SMBIOS_BYTES = '4445 4c4c 3500 104e 8048b4c04f4d4e32'.replace(/ /g, '');
const U_IPMI_BYTES = Buffer.from(U.replace(/-/g, ''), 'hex').reverse().toString('hex');

function agent(o: { uuid?: string; serial?: string; board?: string; macs?: string[]; unknown?: AgentIdentityFacts['unknown'] } = {}): AgentIdentityFacts {
  return {
    system: { uuid: o.uuid ?? '', serial: o.serial ?? '' },
    baseboard: { serial: o.board ?? '' },
    nics: (o.macs ?? []).map((mac) => ({ mac })),
    ...(o.unknown ? { unknown: o.unknown } : {}),
  };
}

const check = (r: ReturnType<typeof reconcile>, field: string) => r.checks.find((c) => c.field === field)!;

describe('reconcile: agent inventory against BMC identity', () => {
  it('matches on UUID and serial, case and format insensitive', () => {
    const r = reconcile(agent({ uuid: U.toUpperCase(), serial: 'ABC123 ' }), { uuid: `{${U}}`, serial: 'abc123', macs: [] });
    expect(r.status).toBe('match');
    expect(check(r, 'uuid')).toMatchObject({ result: 'match', agent: U, bmc: U });
    expect(check(r, 'serial')).toMatchObject({ result: 'match', agent: 'ABC123', bmc: 'abc123' });
    expect(check(r, 'macs')).toMatchObject({ result: 'unknown', note: 'the BMC lists no host NIC (IPMI never does)' });
    expect(r.reason).toBe('uuid matches, serial matches');
    expect(summarizeChecks(r)).toBe(`uuid=${U} serial=ABC123`);
  });

  it('a GUID in another byte order (IPMI LSB first, SMBIOS fields, RFC 4122) is the same UUID: match with a note', () => {
    const asString = (hex: string) => `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    for (const bmcUuid of [asString(U_SMBIOS_BYTES), asString(U_IPMI_BYTES)]) {
      const r = reconcile(agent({ uuid: U }), { uuid: bmcUuid, macs: [] });
      expect(r.status).toBe('match');
      expect(check(r, 'uuid').note).toMatch(/byte order/);
    }
  });

  it('the mis-cabled BMC: UUID and serial of another machine → mismatch, both named', () => {
    const other = '8f1d9c2e-33a4-4b5c-9d6e-7f8091a2b3c4';
    const r = reconcile(agent({ uuid: U, serial: 'SN-1' }), { uuid: other, serial: 'SN-2', macs: [] });
    expect(r.status).toBe('mismatch');
    expect(r.reason).toBe(`uuid differs: agent ${U}, BMC ${other}; serial differs: agent SN-1, BMC SN-2`);
    expect(summarizeChecks(r)).toBe(`uuid agent=${U} bmc=${other}  serial agent=SN-1 bmc=SN-2`);
  });

  it('one decisive match outweighs the other differing (same machine, its data disagree): match, the disagreement said', () => {
    const r = reconcile(agent({ uuid: U, serial: 'SYS-1' }), { uuid: U, serial: 'CHASSIS-9', macs: [] });
    expect(r.status).toBe('match');
    expect(r.reason).toMatch(/^uuid matches; but serial differs: agent SYS-1, BMC CHASSIS-9/);
  });

  it('serial decides when the UUID is unknown on one side; the baseboard serial counts too', () => {
    expect(reconcile(agent({ serial: 'S1' }), { uuid: U, serial: 'S1', macs: [] }).status).toBe('match');
    expect(reconcile(agent({ serial: 'S1' }), { serial: 'S2', macs: [] }).status).toBe('mismatch');
    const board = reconcile(agent({ serial: 'S1', board: 'MB-7' }), { serial: 'mb-7', macs: [] });
    expect(board.status).toBe('match');
    expect(check(board, 'serial')).toMatchObject({ agent: 'MB-7', note: "the BMC's serial is the baseboard serial" });
  });

  it('placeholders are unknown, never a mismatch', () => {
    for (const s of ['To Be Filled By O.E.M.', '0123456789', 'Not Specified', 'Default string', '   ', '000000', 'System Serial Number', 'N/A']) {
      expect(canonicalSerial(s)).toBeNull();
    }
    for (const u of ['00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '03000200-0400-0500-0006-000700080009', 'not-a-uuid', '']) {
      expect(canonicalUuid(u)).toBeNull();
    }
    const r = reconcile(agent({ uuid: '00000000-0000-0000-0000-000000000000', serial: 'To Be Filled By O.E.M.' }), {
      uuid: '8f1d9c2e-33a4-4b5c-9d6e-7f8091a2b3c4',
      serial: '0123456789',
      macs: [],
    });
    expect(r.status).toBe('unknown');
    expect(check(r, 'uuid')).toMatchObject({ result: 'unknown', agent: null, note: 'the agent reports none' });
    expect(check(r, 'serial')).toMatchObject({ result: 'unknown', agent: null, bmc: null });
    expect(r.reason).toMatch(/^nothing to compare: uuid \(the agent reports none\), serial \(the agent reports none\), macs \(the BMC lists no host NIC/);
  });

  it('a section the agent could not read is unknown with its reason, whatever zeros it holds', () => {
    const r = reconcile(agent({ uuid: U, serial: 'S1', unknown: [{ section: 'system', reason: 'dmi: timed out' }] }), { uuid: '8f1d9c2e-33a4-4b5c-9d6e-7f8091a2b3c4', serial: 'S2', macs: [] });
    expect(r.status).toBe('unknown');
    expect(check(r, 'uuid').note).toBe('system unknown in the report: dmi: timed out');
  });

  it('MACs decide only when UUID and serial are both unknown: overlap → match, disjoint → mismatch', () => {
    const macs = ['AA:BB:CC:00:00:01', 'aa-bb-cc-00-00-02'];
    const overlap = reconcile(agent({ macs }), { macs: ['aa:bb:cc:00:00:02', 'aa:bb:cc:00:00:09'] });
    expect(overlap.status).toBe('match');
    expect(overlap.reason).toBe('uuid and serial unknown; a MAC is common (aa:bb:cc:00:00:02)');
    expect(summarizeChecks(overlap)).toBe('macs=aa:bb:cc:00:00:02');
    const disjoint = reconcile(agent({ macs }), { macs: ['aa:bb:cc:00:00:09'] });
    expect(disjoint.status).toBe('mismatch');
    expect(check(disjoint, 'macs')).toMatchObject({ agent: 'aa:bb:cc:00:00:01,aa:bb:cc:00:00:02', bmc: 'aa:bb:cc:00:00:09' });
    // A UUID match is not undone by disjoint MACs (a replaced NIC the BMC has not seen yet).
    const r = reconcile(agent({ uuid: U, macs }), { uuid: U, macs: ['aa:bb:cc:00:00:09'] });
    expect(r.status).toBe('match');
    expect(r.reason).toMatch(/but macs differs/);
  });

  it('the NIC section unknown: MAC check unknown with its reason', () => {
    const r = reconcile(agent({ macs: ['aa:bb:cc:00:00:01'], unknown: [{ section: 'nics', reason: 'net: failed' }] }), { macs: ['aa:bb:cc:00:00:01'] });
    expect(r.status).toBe('unknown');
    expect(check(r, 'macs').note).toBe('nics unknown in the report: net: failed');
  });
});

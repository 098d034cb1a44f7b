/**
 * planDiscovery(rules, machines, taken): table tests of the naming plan —
 * order and ties, two rules (the first wins and the plan says so), names
 * and addresses already taken, exhausted name sets, rack order from serials,
 * a serial seen twice, machines waiting for a fact, rejected machines, and
 * stability when re-planned after some were accepted.
 */
import { describe, expect, it } from 'vitest';
import { planDiscovery, takenBy, type Candidate, type DiscoveryPlan, type DiscoveryRule, type MachineFacts, type Taken } from '../../../server/discovery/index.js';
import { expandNodeSet, expandPattern } from '../../../server/nodeset/index.js';

function rule(name: string, namesText: string, extra: Partial<DiscoveryRule> = {}): DiscoveryRule {
  return { name, match: {}, names: expandNodeSet(namesText), namesText, profile: 'compute', onAccept: 'inventory-only', ...extra };
}

const mac = (n: number): string => `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;
/** Machine n, first seen at minute n (so machine order is n's order unless a test says otherwise). */
function machine(n: number, facts: Partial<MachineFacts> = {}, firstSeen?: string): Candidate {
  return { facts: { mac: mac(n), ...facts }, firstSeen: firstSeen ?? `2026-01-01T00:${String(n).padStart(2, '0')}:00.000Z` };
}

const NONE: Taken = { names: new Set(), ips: new Map(), bmcs: new Map() };

/** The plan in a compact form: planned as "mac name ip bmc", the rest as "mac status: reason". */
function brief(p: DiscoveryPlan): { planned: string[]; unplanned: string[]; rejected: string[] } {
  return {
    planned: p.planned.map((m) => [m.mac, m.name, m.ip ?? '-', m.bmc ? `${m.bmc.address}:${m.bmc.port}` : '-'].join(' ')),
    unplanned: p.unplanned.map((u) => `${u.mac} ${u.status}: ${u.reason}`),
    rejected: p.rejected.map((r) => r.mac),
  };
}

const compute = rule('compute', 'valkyrie[01-04]', {
  ips: expandPattern('10.10.3.[1-4]'),
  bmc: { addresses: expandPattern('10.10.103.[1-4]'), port: 623, protocol: 'ipmi', credentials: 'bmc-admin' },
});

describe('planDiscovery', () => {
  it('gives names, IPs and BMC addresses in lockstep, in first-seen order', () => {
    const p = planDiscovery([compute], [machine(2), machine(1), machine(3)], NONE);
    expect(brief(p).planned).toEqual([
      `${mac(1)} valkyrie01 10.10.3.1 10.10.103.1:623`,
      `${mac(2)} valkyrie02 10.10.3.2 10.10.103.2:623`,
      `${mac(3)} valkyrie03 10.10.3.3 10.10.103.3:623`,
    ]);
    expect(p.planned[0]).toMatchObject({ rule: 'compute', alsoMatched: [], profile: 'compute', onAccept: 'inventory-only', serial: null, notes: [] });
  });

  it('breaks a tie of first-seen times by MAC', () => {
    const same = '2026-01-01T10:00:00.000Z';
    const p = planDiscovery([compute], [machine(9, {}, same), machine(3, {}, same), machine(5, {}, same)], NONE);
    expect(p.planned.map((m) => [m.mac, m.name])).toEqual([
      [mac(3), 'valkyrie01'],
      [mac(5), 'valkyrie02'],
      [mac(9), 'valkyrie03'],
    ]);
  });

  it('two rules: the first that matches wins, and the plan names the other', () => {
    const gpu = rule('gpu', 'gpu[1-2]', { match: { macPrefixes: ['52:54:00'] } });
    const all = rule('all', 'spare[1-9]');
    const p = planDiscovery([gpu, all], [machine(1), machine(2, { mac: 'aa:00:00:00:00:02' })], NONE);
    expect(p.planned.map((m) => [m.mac, m.name, m.rule, m.alsoMatched])).toEqual([
      [mac(1), 'gpu1', 'gpu', ['all']],
      ['aa:00:00:00:00:02', 'spare1', 'all', []],
    ]);
  });

  it('a machine that fills the last name, and the next one finds the set exhausted (tie on the last slot)', () => {
    const small = rule('small', 'valkyrie[01-02]');
    const same = '2026-01-01T10:00:00.000Z';
    const p = planDiscovery([small], [machine(1), machine(3, {}, same), machine(2, {}, same)], NONE);
    expect(brief(p).planned).toEqual([`${mac(1)} valkyrie01 - -`, `${mac(2)} valkyrie02 - -`]);
    expect(brief(p).unplanned).toEqual([`${mac(3)} refused: rule small: names exhausted (valkyrie[01-02] all taken)`]);
  });

  it('skips names existing nodes hold, and whole slots whose address or BMC another node holds', () => {
    const taken = takenBy(
      [
        { name: 'valkyrie01', ip: '10.10.3.1', bmc: undefined },
        { name: 'thor', ip: '10.10.3.2', bmc: undefined },
        { name: 'loki', ip: null, bmc: { address: '10.10.103.3', port: 623, protocol: 'ipmi', credentials: 'bmc-admin' } },
      ],
      null,
    );
    const p = planDiscovery([compute], [machine(1), machine(2)], taken);
    expect(brief(p).planned).toEqual([`${mac(1)} valkyrie04 10.10.3.4 10.10.103.4:623`]);
    expect(p.planned[0]!.notes).toEqual(['skipped valkyrie02: its address 10.10.3.2 belongs to node thor', 'skipped valkyrie03: its BMC 10.10.103.3:623 belongs to node loki']);
    expect(brief(p).unplanned).toEqual([`${mac(2)} refused: rule compute: names exhausted (valkyrie[01-04] all taken)`]);
  });

  it('never gives the management address', () => {
    const taken = takenBy([], { cluster: { name: 'c', domain: 'd', timezone: 'UTC', managementAddress: '10.10.3.1', managementName: 'odin' }, networks: undefined as never });
    const p = planDiscovery([compute], [machine(1)], taken);
    expect(brief(p).planned).toEqual([`${mac(1)} valkyrie02 10.10.3.2 10.10.103.2:623`]);
    expect(p.planned[0]!.notes).toEqual(['skipped valkyrie01: its address 10.10.3.1 belongs to the management node odin']);
  });

  it('is stable: re-planned after some were accepted, the others keep their names', () => {
    const rules = [rule('compute', 'n[01-10]', { ips: expandPattern('10.10.3.[1-10]') })];
    const machines = [1, 2, 3, 4, 5, 6].map((n) => machine(n));
    const first = planDiscovery(rules, machines, NONE);
    expect(first.planned.map((m) => m.name)).toEqual(['n01', 'n02', 'n03', 'n04', 'n05', 'n06']);
    // Machines 2 and 5 were accepted: they are nodes now, no longer discovered.
    const accepted = first.planned.filter((m) => m.mac === mac(2) || m.mac === mac(5));
    const taken = takenBy(accepted.map((m) => ({ name: m.name, ip: m.ip, bmc: undefined })), null);
    const again = planDiscovery(rules, machines.filter((c) => c.facts.mac !== mac(2) && c.facts.mac !== mac(5)), taken);
    const before = new Map(first.planned.map((m) => [m.mac, `${m.name} ${m.ip}`]));
    expect(again.planned.map((m) => `${m.name} ${m.ip}`)).toEqual(again.planned.map((m) => before.get(m.mac)));
    // A machine seen later takes the next free name; the earlier ones do not move.
    const later = planDiscovery(rules, [...machines.filter((c) => c.facts.mac !== mac(2)), machine(7)], takenBy([{ name: 'n02', ip: '10.10.3.2', bmc: undefined }], null));
    expect(later.planned.map((m) => [m.mac, m.name])).toEqual([
      [mac(1), 'n01'],
      [mac(3), 'n03'],
      [mac(4), 'n04'],
      [mac(5), 'n05'],
      [mac(6), 'n06'],
      [mac(7), 'n07'],
    ]);
  });

  it('serials in rack order: the k-th serial gets the k-th name, whatever the order machines were seen in', () => {
    const po = rule('po4711', 'valkyrie[03-06]', { match: { serials: ['SN-A', 'SN-B', 'SN-C', 'SN-D'], serialsFile: 'po-4711.txt' }, ips: expandPattern('10.10.3.[3-6]') });
    const p = planDiscovery([po], [machine(1, { serial: 'SN-C' }), machine(2, { serial: 'SN-A' }), machine(3, { serial: 'sn-d' })], NONE);
    expect(p.planned.map((m) => [m.serial, m.name, m.ip])).toEqual([
      ['SN-C', 'valkyrie05', '10.10.3.5'],
      ['SN-A', 'valkyrie03', '10.10.3.3'],
      ['sn-d', 'valkyrie06', '10.10.3.6'],
    ]);
  });

  it("a serial's slot held by a node refuses the machine rather than move it to another serial's name", () => {
    const po = rule('po', 'valkyrie[03-04]', { match: { serials: ['SN-A', 'SN-B'], serialsFile: 'po.txt' } });
    const p = planDiscovery([po], [machine(1, { serial: 'SN-B' })], takenBy([{ name: 'valkyrie04', ip: null, bmc: undefined }], null));
    expect(brief(p).unplanned).toEqual([`${mac(1)} refused: rule po: valkyrie04, the name for serial SN-B (the 2nd serial of po.txt), cannot be given: valkyrie04 is an existing node`]);
  });

  it('positional slots go first: a sequential rule sharing the pool takes what is left', () => {
    const po = rule('po', 'n[1-3]', { match: { serials: ['S1', 'S2', 'S3'] } });
    const rest = rule('rest', 'n[1-5]');
    const p = planDiscovery([po, rest], [machine(1, { serial: 'X' }), machine(2, { serial: 'S1' })], NONE);
    expect(p.planned.map((m) => [m.mac, m.name, m.rule])).toEqual([
      [mac(1), 'n2', 'rest'],
      [mac(2), 'n1', 'po'],
    ]);
  });

  it('a serial seen on two machines refuses both, and only them', () => {
    const po = rule('po', 'valkyrie[03-05]', { match: { serials: ['SN-A', 'SN-B', 'SN-C'] } });
    const p = planDiscovery([po], [machine(1, { serial: 'SN-A' }), machine(2, { serial: 'SN-B' }), machine(3, { serial: 'sn-a' })], NONE);
    expect(brief(p).planned).toEqual([`${mac(2)} valkyrie04 - -`]);
    expect(brief(p).unplanned).toEqual([
      `${mac(1)} refused: rule po: serial SN-A is seen on 2 machines (also ${mac(3)}): none is named until the others are rejected`,
      `${mac(3)} refused: rule po: serial sn-a is seen on 2 machines (also ${mac(1)}): none is named until the others are rejected`,
    ]);
  });

  it('a shared placeholder serial does not refuse machines a rule without serials names', () => {
    const p = planDiscovery([rule('all', 'n[1-2]')], [machine(1, { serial: 'To be filled by O.E.M.' }), machine(2, { serial: 'To be filled by O.E.M.' })], NONE);
    expect(p.planned.map((m) => m.name)).toEqual(['n1', 'n2']);
  });

  it('rejecting one of two machines with the same serial lets the other be named', () => {
    const po = rule('po', 'valkyrie[03-05]', { match: { serials: ['SN-A'] } });
    const twin = { ...machine(3, { serial: 'SN-A' }), rejected: { at: '2026-01-02T00:00:00.000Z', by: 'api-token:1234' } };
    const p = planDiscovery([po], [machine(1, { serial: 'SN-A' }), twin], NONE);
    expect(brief(p)).toEqual({ planned: [`${mac(1)} valkyrie03 - -`], unplanned: [], rejected: [mac(3)] });
    expect(p.rejected[0]).toEqual({ mac: mac(3), rejectedAt: '2026-01-02T00:00:00.000Z', rejectedBy: 'api-token:1234' });
  });

  it('waits when a rule that comes first needs a fact the machine lacks, even if a later rule matches', () => {
    const po = rule('po', 'valkyrie[03-05]', { match: { serials: ['SN-A'] } });
    const byMac = rule('bymac', 'spare[1-5]', { match: { macPrefixes: ['52:54:00'] } });
    const p = planDiscovery([po, byMac], [machine(1)], NONE);
    expect(brief(p).unplanned).toEqual([`${mac(1)} waiting: rule po: serial unknown: no inspection report yet; rule bymac matches, but po comes first`]);
    expect(p.unplanned[0]!.rule).toBe('po');
  });

  it('says why no rule matches, rule by rule', () => {
    const a = rule('a', 'a[1-2]', { match: { macPrefixes: ['0c:c4:7a'] } });
    const b = rule('b', 'b[1-2]', { match: { macPrefixes: ['b8:59'], serials: ['S1'] } });
    const p = planDiscovery([a, b], [machine(1)], NONE);
    expect(brief(p).unplanned).toEqual([`${mac(1)} unmatched: no rule matches (a: MAC ${mac(1)} does not start with 0c:c4:7a; b: MAC ${mac(1)} does not start with b8:59)`]);
    expect(brief(planDiscovery([], [machine(1)], NONE)).unplanned).toEqual([`${mac(1)} unmatched: no rule matches (fleet.yaml has no discovery rules)`]);
  });

  it('two rules sharing a name pool never give one name twice; an exhausted first rule does not fall through', () => {
    const a = rule('a', 'n[1-2]', { match: { macPrefixes: ['52:54:00'] } });
    const b = rule('b', 'n[1-3]');
    const p = planDiscovery([a, b], [machine(1), machine(2, { mac: 'aa:00:00:00:00:01' }), machine(3)], NONE);
    expect(brief(p).planned).toEqual([`${mac(1)} n1 - -`, 'aa:00:00:00:00:01 n2 - -']);
    expect(brief(p).unplanned).toEqual([`${mac(3)} refused: rule a: names exhausted (n[1-2] all taken)`]);
  });
});

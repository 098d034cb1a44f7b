/**
 * matchRule(rule, facts): each criterion against known facts (no, with why),
 * missing facts (unknown, naming them), and a rule without criteria.
 */
import { describe, expect, it } from 'vitest';
import { globRegExp, matchRule, type DiscoveryRule, type MachineFacts, type MatchResult, type RuleMatch } from '../../../server/discovery/index.js';

const rule = (match: RuleMatch, extra: Partial<DiscoveryRule> = {}): DiscoveryRule => ({
  name: 'r',
  match,
  names: ['n1', 'n2', 'n3'],
  namesText: 'n[1-3]',
  profile: 'compute',
  onAccept: 'inventory-only',
  ...extra,
});

const leased: MachineFacts = { mac: '0c:c4:7a:00:00:01', ip: '10.10.254.7', vendorClass: 'PXEClient:Arch:00007' };
const inspected: MachineFacts = {
  ...leased,
  inspectedAt: '2026-01-01T00:00:00.000Z',
  macs: ['0c:c4:7a:00:00:01', 'b8:59:9f:00:00:09'],
  serial: 'SN0002',
  manufacturer: 'Supermicro',
  model: 'SYS-4029GP-TRT',
  nicCount: 2,
  diskCount: 4,
  bmc: { mac: '0c:c4:7a:00:00:02', ip: '10.10.254.99' },
  lldp: { switch: 'sw-r12-a', port: 'Ethernet1/7' },
};

const CASES: [string, RuleMatch, MachineFacts, MatchResult][] = [
  ['no criteria: every machine', {}, leased, { kind: 'match' }],
  ['MAC prefix of the boot MAC', { macPrefixes: ['0c:c4:7a'] }, leased, { kind: 'match' }],
  ['MAC prefix, one of several', { macPrefixes: ['aa:bb:cc', '0c:c4'] }, leased, { kind: 'match' }],
  ['MAC prefix of another NIC (inspected)', { macPrefixes: ['b8:59:9f'] }, inspected, { kind: 'match' }],
  ['MAC prefix that fails', { macPrefixes: ['52:54:00'] }, leased, { kind: 'no', reason: 'MAC 0c:c4:7a:00:00:01 does not start with 52:54:00' }],
  ['serial at its position', { serials: ['SN0001', 'sn0002 ', 'SN0003'] }, inspected, { kind: 'match', serialIndex: 1 }],
  ['serial not listed', { serials: ['SN0001'], serialsFile: 'po-4711.txt' }, inspected, { kind: 'no', reason: "serial SN0002 is not in the rule's serials_file po-4711.txt" }],
  ['serial not known yet', { serials: ['SN0001'] }, leased, { kind: 'unknown', missing: ['serial'], reason: 'serial unknown: no inspection report yet' }],
  ['glob manufacturer, any case', { manufacturer: 'super*' }, inspected, { kind: 'match' }],
  ['exact model', { model: 'SYS-4029GP-TRT' }, inspected, { kind: 'match' }],
  ['model that differs', { model: 'SYS-1029*' }, inspected, { kind: 'no', reason: 'model "SYS-4029GP-TRT" does not match "SYS-1029*"' }],
  ['NIC count', { nics: { op: '>=', value: 2 } }, inspected, { kind: 'match' }],
  ['disk count that fails', { disks: { op: '==', value: 2 } }, inspected, { kind: 'no', reason: '4 disks, not 2' }],
  ['BMC subnet', { bmcSubnet: '10.10.254.0/24' }, inspected, { kind: 'match' }],
  ['BMC outside the subnet', { bmcSubnet: '10.10.200.0/24' }, inspected, { kind: 'no', reason: 'BMC address 10.10.254.99 is outside 10.10.200.0/24' }],
  ['LLDP switch and port', { lldp: { switch: 'sw-r12-*', port: 'Ethernet1/?' } }, inspected, { kind: 'match' }],
  [
    'several facts missing',
    { serials: ['SN0001'], manufacturer: 'Dell*', lldp: { port: 'x' } },
    leased,
    { kind: 'unknown', missing: ['serial', 'manufacturer', 'LLDP port'], reason: 'serial, manufacturer, LLDP port unknown: no inspection report yet' },
  ],
  ['a failing known fact wins over a missing one', { serials: ['SN0001'], macPrefixes: ['52:54:00'] }, leased, { kind: 'no', reason: 'MAC 0c:c4:7a:00:00:01 does not start with 52:54:00' }],
  [
    'inspected, but the report lacks the fact',
    { lldp: { switch: 'sw*' } },
    { ...inspected, lldp: {} },
    { kind: 'unknown', missing: ['LLDP switch'], reason: 'LLDP switch unknown: the inspection report does not say' },
  ],
];

describe('matchRule', () => {
  it.each(CASES)('%s', (_what, match, facts, want) => {
    expect(matchRule(rule(match), facts)).toEqual(want);
  });
});

describe('globRegExp', () => {
  it.each([
    ['Dell*', 'DELL Inc.', true],
    ['Dell*', 'Dellx', true],
    ['Dell', 'Dell Inc.', false],
    ['R?50', 'R750', true],
    ['a.b', 'axb', false],
    ['[1-4]', '[1-4]', true],
    ['(x)+', '(x)+', true],
  ])('%s vs %s → %s', (pattern, value, want) => {
    expect(globRegExp(pattern).test(value)).toBe(want);
  });
});

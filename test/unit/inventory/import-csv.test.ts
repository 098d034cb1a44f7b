/**
 * fleet import csv (server/inventory/import-csv.ts): the CSV reader and the
 * node checks as table tests, and the fragment read back by fleet's own
 * config parser inside the seed cluster's fleet.yaml.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { parseConfig } from '../../../server/config/parse.js';
import { importCsv, nodesFragment, parseCsv } from '../../../server/inventory/import-csv.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function errorOf(f: () => unknown): FleetError {
  try {
    f();
  } catch (e) {
    if (e instanceof FleetError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('parseCsv', () => {
  it.each([
    ['plain', 'a,b\n1,2\n', [['a', 'b'], ['1', '2']]],
    ['CRLF, no final newline', 'a,b\r\n1,2', [['a', 'b'], ['1', '2']]],
    ['quoted comma, doubled quote, newline inside quotes', 'a,b\n"x,y","say ""hi""\nthere"\n', [['a', 'b'], ['x,y', 'say "hi"\nthere']]],
    ['empty fields', 'a,b,c\n,,\n', [['a', 'b', 'c'], ['', '', '']]],
    ['blank lines skipped, BOM dropped', '\uFEFFa\n\n1\n\n', [['a'], ['1']]],
  ])('%s', (_label, text, want) => {
    expect(parseCsv(text, 'n.csv').map((r) => r.map((f) => f.value))).toEqual(want);
  });

  it('keeps where each field starts', () => {
    const rows = parseCsv('name,ip\n"n1",10.0.0.1\n', 'n.csv');
    expect(rows[1]!.map((f) => [f.line, f.col])).toEqual([[2, 1], [2, 6]]);
  });

  it.each([
    ['unclosed quote', 'a,b\n1,"2\n', 'n.csv:2:3: quoted field is not closed'],
    ['text after a closing quote', 'a,b\n"1"x,2\n', 'n.csv:2:4: unexpected x after a closing quote'],
    ['quote inside an unquoted field', 'a,b\n1,2"3\n', 'n.csv:2:4: quote inside an unquoted field'],
    ['lone carriage return', 'a,b\r1,2\n', 'n.csv:1:4: carriage return not followed by a line feed'],
  ])('malformed: %s', (_label, text, msg) => {
    const e = errorOf(() => parseCsv(text, 'n.csv'));
    expect(e.code).toBe('usage.invalid');
    expect(e.message).toContain(msg);
  });
});

const GOOD = `Name,MAC,IP,BMC Address,bmc_credentials
valkyrie01,08-00-27-00-03-01,10.10.3.1,10.10.103.1,bmc-admin
valkyrie02,08:00:27:00:03:02,10.10.3.2,10.10.103.2,bmc-admin
valkyrie03,08:00:27:00:03:03,10.10.3.3,10.10.103.3,bmc-admin
rp4n1,08:00:27:00:04:01,10.10.4.1,,
`;

describe('importCsv', () => {
  it('reads the columns in any case and order, with aliases, normalising MACs', () => {
    const nodes = importCsv(GOOD, 'n.csv', { profile: 'compute' });
    expect(nodes.map(({ line: _l, ...n }) => n)).toEqual([
      { name: 'valkyrie01', profile: 'compute', ip: '10.10.3.1', macs: ['08:00:27:00:03:01'], bmc: { address: '10.10.103.1', credentials: 'bmc-admin' } },
      { name: 'valkyrie02', profile: 'compute', ip: '10.10.3.2', macs: ['08:00:27:00:03:02'], bmc: { address: '10.10.103.2', credentials: 'bmc-admin' } },
      { name: 'valkyrie03', profile: 'compute', ip: '10.10.3.3', macs: ['08:00:27:00:03:03'], bmc: { address: '10.10.103.3', credentials: 'bmc-admin' } },
      { name: 'rp4n1', profile: 'compute', ip: '10.10.4.1', macs: ['08:00:27:00:04:01'] },
    ]);
  });

  it.each([
    ['bad MAC', 'name,mac\nn1,08:00:27:00:03\n', 'n.csv:2:4: MAC 08:00:27:00:03 is not a MAC address'],
    ['duplicate name', 'name,ip\nn1,10.0.0.1\nn1,10.0.0.2\n', 'n.csv:3:1: node n1 also on line 2'],
    ['duplicate MAC, other spelling', 'name,mac\nn1,08:00:27:00:03:01\nn2,08-00-27-00-03-01\n', 'n.csv:3:4: MAC 08:00:27:00:03:01 also on line 2'],
    ['duplicate IP', 'name,ip\nn1,10.0.0.1\nn2,10.0.0.1\n', 'n.csv:3:4: IP 10.0.0.1 also on line 2'],
    ['bad IP', 'name,ip\nn1,10.0.0.256\n', 'n.csv:2:4: IP 10.0.0.256 is not an IPv4 address'],
    ['upper-case name', 'name\nValkyrie01\n', 'n.csv:2:1: node name Valkyrie01 is not a lower-case host name'],
    ['unknown column', 'name,rack\nn1,r1\n', 'n.csv:1:6: unknown column rack'],
    ['no name column', 'ip\n10.0.0.1\n', 'n.csv:1:1: no name column'],
    ['short row', 'name,ip\nn1\n', 'n.csv:2:1: 1 fields, the header has 2'],
    ['BMC without credentials', 'name,bmc\nn1,10.0.1.1\n', 'n.csv:2:4: node n1: a BMC needs credentials'],
    ['BMC port out of range', 'name,bmc,bmc_port,bmc_credentials\nn1,10.0.1.1,70000,c\n', 'n.csv:2:13: BMC port 70000 is not a port'],
    ['BMC setting without a BMC', 'name,bmc,bmc_protocol\nn1,,redfish\n', 'n.csv:2:5: node n1: a BMC setting without a BMC address'],
    ['no profile', 'name,profile\nn1,\n', 'n.csv:2:4: node n1: no profile'],
  ])('refuses %s, naming file, line and column', (_label, text, msg) => {
    const e = errorOf(() => importCsv(text, 'n.csv', text.includes('profile') ? {} : { profile: 'compute' }));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toContain(msg);
    expect(e.message).toContain('nothing imported');
  });

  it('lists every problem, not only the first', () => {
    const e = errorOf(() => importCsv('name,mac,ip\nn1,zz,10.0.0.1\nn1,08:00:27:00:00:01,10.0.0.1\n', 'n.csv', { profile: 'p' }));
    expect((e.details as { problems: string[] }).problems).toHaveLength(3);
  });
});

describe('nodesFragment', () => {
  it('folds nodes of one shape under one nodeset key, values as lists in nodeset order; fleet.yaml reads it back', () => {
    const shuffled = GOOD.split('\n');
    const csv = [shuffled[0], shuffled[3], shuffled[1], shuffled[4], shuffled[2], ''].join('\n');
    const text = nodesFragment(importCsv(csv, 'n.csv', { profile: 'compute' }), 'n.csv');
    expect(text).toBe(`# generated by fleet import csv from n.csv: review, then merge into fleet.yaml and run fleet apply
nodes:
  "valkyrie[01-03]":
    profile: "compute"
    ip: ["10.10.3.1", "10.10.3.2", "10.10.3.3"]
    mac: ["08:00:27:00:03:01", "08:00:27:00:03:02", "08:00:27:00:03:03"]
    bmc: {address: ["10.10.103.1", "10.10.103.2", "10.10.103.3"], credentials: "bmc-admin"}
  "rp4n1":
    profile: "compute"
    ip: "10.10.4.1"
    mac: "08:00:27:00:04:01"
`);
    // The seed cluster's fleet.yaml with its nodes: replaced by the fragment.
    const seed = readFileSync(join(ROOT, 'examples/seed-cluster.yaml'), 'utf8');
    const spec = parseConfig(seed.slice(0, seed.indexOf('\nnodes:\n') + 1) + text.split('\n').slice(1).join('\n'));
    expect(spec.nodes.map((n) => [n.name, n.ip, n.macs, n.bmc?.address ?? null])).toEqual([
      ['valkyrie01', '10.10.3.1', ['08:00:27:00:03:01'], '10.10.103.1'],
      ['valkyrie02', '10.10.3.2', ['08:00:27:00:03:02'], '10.10.103.2'],
      ['valkyrie03', '10.10.3.3', ['08:00:27:00:03:03'], '10.10.103.3'],
      ['rp4n1', '10.10.4.1', ['08:00:27:00:04:01'], null],
    ]);
  });

  it('a node with several NICs keeps its own entry', () => {
    const text = nodesFragment(importCsv('name,mac,profile\nthor,08:00:27:18:68:bc;08:00:27:18:68:bd,storage\nn2,08:00:27:18:68:be 08:00:27:18:68:bf,storage\n', 'n.csv'), 'n.csv');
    expect(text).toContain('  "thor":\n    profile: "storage"\n    macs: ["08:00:27:18:68:bc", "08:00:27:18:68:bd"]\n');
    expect(text).toContain('  "n2":\n');
  });
});

/**
 * server/inventory/report.ts: `fleet inventory` formatters. CSV is read
 * back with a strict RFC 4180 parser; HTML is checked for escaping and for
 * having nothing external; the table and the diff text by content.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { diffInventory, toInventory, type Inventory, type RawInventory } from '../../../agent/inventory/index.js';
import {
  csvField,
  escapeHtml,
  formatInventory,
  formatInventoryCsv,
  formatInventoryDiff,
  formatInventoryHtml,
  formatInventoryTable,
  INVENTORY_COLUMNS,
  inventoryCells,
  inventoryJsonView,
  partialSummary,
  type InventoryRow,
} from '../../../server/inventory/report.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory');
const load = (name: string): Inventory => toInventory(JSON.parse(fs.readFileSync(path.join(FIX, name), 'utf8')) as RawInventory);

/**
 * RFC 4180, strictly: records end with CRLF (the last one too), fields are
 * separated by commas, a quoted field may hold commas, CR, LF and doubled
 * quotes; a quote anywhere else, a bare CR or LF, or text after a closing
 * quote is an error. Every record must have as many fields as the header.
 */
export function parseCsvStrict(text: string): string[][] {
  const records: string[][] = [];
  let i = 0;
  let record: string[] = [];
  const fail = (why: string): never => {
    throw new Error(`CSV: ${why} at offset ${i}`);
  };
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i++];
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') fail('text after a closing quote');
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        if (text[i] === '"') fail('quote in an unquoted field');
        field += text[i++];
      }
      if (text[i] === '\n') fail('bare LF');
    }
    record.push(field);
    if (text[i] === ',') {
      i++;
      if (i >= text.length) fail('record ends with a comma and no CRLF');
      continue;
    }
    if (text[i] === '\r') {
      if (text[i + 1] !== '\n') fail('bare CR');
      i += 2;
      records.push(record);
      record = [];
      continue;
    }
    fail('last record without CRLF');
  }
  if (record.length > 0) fail('last record without CRLF');
  if (records.length === 0) fail('no header');
  const n = records[0]!.length;
  records.forEach((r, k) => {
    if (r.length !== n) throw new Error(`CSV: record ${k + 1} has ${r.length} fields, the header ${n}`);
  });
  return records;
}

const dgx = load('gpu-dgx.json');
const ib = load('ib-node.json');
const vm = load('debian-vm.json');
const hostileModel = '<script>alert("x")</script> & co';
const hostile: Inventory = {
  ...vm,
  system: { ...vm.system, manufacturer: 'Evil, "Inc."', model: hostileModel, serial: '=HYPERLINK("http://evil")\r\nnext' },
  nics: [{ ...vm.nics[0]!, name: 'eth0"><img src=x onerror=alert(1)>' }],
  warnings: ['<b>bold</b>'],
};

const rows: InventoryRow[] = [
  { node: 'valkyrie01', reportedAt: '2025-03-04T09:15:03.000Z', inventory: dgx },
  { node: 'valkyrie02', reportedAt: '2025-03-04T09:16:00.000Z', inventory: ib },
  { node: 'valkyrie03', reportedAt: '2025-03-04T09:17:00.000Z', inventory: hostile },
  { node: 'valkyrie04', reportedAt: null, inventory: null },
];

describe('the strict CSV parser of this test', () => {
  it('accepts RFC 4180 and refuses what is not', () => {
    expect(parseCsvStrict('a,b\r\n"x,1","y""z"\r\n')).toEqual([
      ['a', 'b'],
      ['x,1', 'y"z'],
    ]);
    expect(parseCsvStrict('a,b\r\n"line\r\nbreak",\r\n')).toEqual([
      ['a', 'b'],
      ['line\r\nbreak', ''],
    ]);
    for (const bad of ['a,b\n1,2\n', 'a,b\r\n1,2', 'a,b\r\n1\r\n', 'a,b\r\n"1"x,2\r\n', 'a,b\r\n1"",2\r\n', 'a,b\r\n"1,2\r\n', 'a\rb\r\n']) {
      expect(() => parseCsvStrict(bad), JSON.stringify(bad)).toThrow(/CSV/);
    }
  });
});

describe('inventoryCells: the key columns', () => {
  it('GPU node: model, serial, CPUs, memory, disks, NICs with MACs, GPUs, BIOS', () => {
    const c = inventoryCells(rows[0]!);
    expect(c.node).toBe('valkyrie01');
    expect(c.model).toBe(`${dgx.system.manufacturer} ${dgx.system.model}`);
    expect(c.serial).toBe(dgx.system.serial);
    expect(c.cpus).toBe('2x Xeon® Platinum 8480C (112c/224t)');
    expect(c.memory).toBe('1024 GiB (16 DIMMs)');
    expect(c.gpus).toBe('8x NVIDIA H100 80GB HBM3');
    for (const n of dgx.nics) expect(c.nics).toContain(`${n.name} ${n.mac}`);
    for (const d of dgx.disks) expect(c.disks).toContain(d.name);
    expect(c.bios).toContain(dgx.bios.version);
    expect(c.infiniband).toBe('');
    expect(c.reported).toBe('2025-03-04T09:15:03.000Z');
  });

  it('InfiniBand node: HCAs with port state, rate and firmware', () => {
    const c = inventoryCells(rows[1]!);
    const h = ib.infiniband[0]!;
    expect(c.infiniband).toContain(h.name);
    expect(c.infiniband).toContain('ACTIVE');
    expect(c.infiniband).toContain(h.ports[0]!.rate);
    expect(c.infiniband).toContain(`fw ${h.fwVersion}`);
    expect(c.infiniband.split('; ')).toHaveLength(ib.infiniband.length);
  });

  it('a node that never reported: only its name', () => {
    const c = inventoryCells(rows[3]!);
    expect(Object.entries(c).filter(([, v]) => v !== '')).toEqual([['node', 'valkyrie04']]);
  });
});

describe('CSV', () => {
  it('is valid RFC 4180: header, one record per node, every value read back as written', () => {
    const text = formatInventoryCsv(rows);
    const recs = parseCsvStrict(text);
    expect(recs[0]).toEqual([...INVENTORY_COLUMNS]);
    expect(recs).toHaveLength(rows.length + 1);
    rows.forEach((r, k) => {
      const c = inventoryCells(r);
      const back = Object.fromEntries(INVENTORY_COLUMNS.map((col, j) => [col, recs[k + 1]![j]]));
      for (const col of INVENTORY_COLUMNS) {
        // the one change: formulas are neutralised with a leading quote
        const want = /^[=+\-@\t\r]/.test(c[col]) ? `'${c[col]}` : c[col];
        expect(back[col], `${r.node} ${col}`).toBe(want);
      }
    });
  });

  it('quotes commas, quotes and line breaks; neutralises formulas', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('=1+1')).toBe("'=1+1");
    expect(csvField('-2')).toBe("'-2");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    const recs = parseCsvStrict(formatInventoryCsv([rows[2]!]));
    expect(recs[1]![INVENTORY_COLUMNS.indexOf('model')]).toBe(`Evil, "Inc." ${hostileModel}`);
    expect(recs[1]![INVENTORY_COLUMNS.indexOf('serial')]).toBe(`'=HYPERLINK("http://evil")\r\nnext`);
  });
});

describe('HTML', () => {
  const html = formatInventoryHtml(rows, { generatedAt: '2025-03-04T10:00:00Z' });

  it('escapes hostile strings: no markup from the nodes survives', () => {
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img/i);
    expect(html).not.toMatch(/<b>bold/);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co');
    expect(html).toContain('eth0&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&lt;b&gt;bold&lt;/b&gt;');
    expect(escapeHtml(`<>&"'`)).toBe('&lt;&gt;&amp;&quot;&#39;');
  });

  it('is one self-contained document: no script, no external asset, a CSP that forbids loading anything', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    // Escaped text holds no '<', so every tag found is one the formatter wrote.
    const tags = html.match(/<[^>]*>/g) ?? [];
    expect(tags.length).toBeGreaterThan(50);
    const names = new Set(tags.map((t) => /^<\/?([a-z0-9!]+)/i.exec(t)?.[1]?.toLowerCase()));
    for (const n of names) expect(['!doctype', 'html', 'head', 'meta', 'title', 'style', 'body', 'h1', 'h2', 'p', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'details', 'summary', 'ul', 'li']).toContain(n);
    for (const t of tags) expect(t, t).not.toMatch(/\b(src|href|on\w+)\s*=/i);
    expect(html).not.toMatch(/url\(|@import/i);
    // the only URL-looking text is the hostile serial, escaped
    expect(html.match(/https?:\/\//g)?.length).toBe(html.match(/=HYPERLINK\(&quot;http:\/\/evil/g)?.length);
    expect(html).toContain('=HYPERLINK(&quot;http://evil&quot;)');
  });

  it('has a summary row per node and details with DIMMs, GPUs and HCAs', () => {
    for (const r of rows) expect(html).toContain(`<summary>${r.node}</summary>`);
    expect(html.match(/<tr><td>valkyrie0\d<\/td>/g)).toHaveLength(4);
    expect(html).toContain('CPU0_DIMM_A1');
    expect(html).toContain('GPU-3b8d2f4e-8c1a-6f0e-2b7d-91c4a5e6f701');
    expect(html).toContain(ib.infiniband[0]!.nodeGuid);
    expect(html).toContain('no inventory reported');
    expect(html).toContain('4 nodes, generated 2025-03-04T10:00:00Z');
  });
});

describe('table and JSON', () => {
  it('table: a header and one line per node; "(no report)" for a node that never reported', () => {
    const t = formatInventoryTable(rows);
    const lines = t.trimEnd().split('\n');
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['NODE', 'MODEL', 'SERIAL', 'CPUS', 'MEMORY', 'DISKS', 'NICS', 'GPUS', 'INFINIBAND', 'BIOS']);
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/^valkyrie01 +/);
    expect(lines[1]).toContain('8x NVIDIA H100 80GB HBM3');
    expect(lines[4]).toMatch(/^valkyrie04 +\(no report\)/);
    // a line break or an escape sequence from a node cannot break the line or reach the terminal
    expect(lines[3]).toContain('=HYPERLINK("http://evil")\\x0d\\x0anext');
    const esc = formatInventoryTable([{ node: 'n', reportedAt: 't', inventory: { ...vm, system: { ...vm.system, model: 'A\u001b[2JB' } } }]);
    expect(esc).not.toContain('\u001b');
    expect(esc).toContain('A\\x1b[2JB');
    expect(formatInventory(rows, 'table')).toBe(t);
  });

  it('json: the rows, as they are (for complete reports)', () => {
    expect(JSON.parse(formatInventory(rows, 'json'))).toEqual(JSON.parse(JSON.stringify(rows)));
    expect(formatInventory(rows, 'csv')).toBe(formatInventoryCsv(rows));
    expect(formatInventory(rows, 'html', { generatedAt: 'x' })).toBe(formatInventoryHtml(rows, { generatedAt: 'x' }));
  });
});

describe('diff text', () => {
  it('names the DIMM that is gone', () => {
    const after: Inventory = { ...ib, memory: { ...ib.memory, dimms: ib.memory.dimms.slice(1), totalBytes: ib.memory.totalBytes - ib.memory.dimms[0]!.sizeBytes } };
    const changes = diffInventory(ib, after);
    const text = formatInventoryDiff({ node: 'valkyrie02', before: { id: 1, reportedAt: 't1' }, after: { id: 2, reportedAt: 't2' }, changes });
    expect(text).toContain('valkyrie02: report 1 (t1) -> report 2 (t2)');
    expect(text).toMatch(new RegExp(`dimm-removed +DIMM ${ib.memory.dimms[0]!.slot} .*is gone`));
    expect(text).toContain('memory-total');
    expect(formatInventoryDiff({ node: 'n', before: { id: 1, reportedAt: 'a' }, after: { id: 2, reportedAt: 'b' }, changes: [] })).toContain('no hardware changes');
    expect(formatInventoryDiff({ node: 'n', before: null, after: { id: 2, reportedAt: 'b' }, changes: [] })).toContain('nothing to compare');
    expect(formatInventoryDiff({ node: 'n', before: null, after: null, changes: [] })).toBe('n: no inventory reported\n');
  });
});

// ------------------------------------------------------------------ partial reports

/** The lab's VM when every systeminformation probe ran out of time: /sys still gave disks and NICs. */
const partialVm: Inventory = {
  ...vm,
  system: { manufacturer: '', model: '', serial: '', uuid: '', sku: '', virtual: false },
  cpus: { manufacturer: '', model: '', sockets: 0, cores: 0, threads: 0, speedMhz: 0 },
  memory: { totalBytes: 0, dimms: [] },
  unknown: [
    { section: 'system', reason: 'system: timed out after 10000 ms' },
    { section: 'cpus', reason: 'cpu: timed out after 10000 ms' },
    { section: 'memory', reason: 'mem: timed out after 10000 ms' },
    { section: 'dimms', reason: 'memLayout: timed out after 10000 ms' },
  ],
  partial: true,
};
const partialRows: InventoryRow[] = [
  { node: 'lab-node1', reportedAt: '2026-12-06T23:00:00.000Z', inventory: partialVm },
  { node: 'lab-node2', reportedAt: '2026-12-06T23:00:00.000Z', inventory: vm },
];

describe('a partial report reads unknown, never 0', () => {
  it('cells: unknown for the sections the report does not know, values for the others', () => {
    const c = inventoryCells(partialRows[0]!);
    expect(c).toMatchObject({ model: 'unknown', serial: 'unknown', cpus: 'unknown', memory: 'unknown' });
    expect(c.disks).toBe(inventoryCells(partialRows[1]!).disks); // known from /sys
    expect(c.nics).toContain(vm.nics[0]!.mac);
    // DIMMs unknown, memory known: the size, and that the DIMMs are not
    const dimmsOnly: Inventory = { ...vm, unknown: [{ section: 'dimms', reason: 'memLayout: timed out after 10000 ms' }], partial: true };
    expect(inventoryCells({ node: 'n', reportedAt: 't', inventory: dimmsOnly }).memory).toBe('23.5 GiB (DIMMs unknown)');
  });

  it('CSV and table say unknown where the report does not know, not 0 GiB or empty', () => {
    const csv = parseCsvStrict(formatInventoryCsv(partialRows));
    const header = csv[0]!;
    const rec = (i: number) => Object.fromEntries(header.map((h, j) => [h, csv[i]![j]]));
    expect(rec(1)).toMatchObject({ node: 'lab-node1', model: 'unknown', serial: 'unknown', cpus: 'unknown', memory: 'unknown' });
    expect(rec(2)!.memory).toBe('23.5 GiB');
    expect(formatInventoryCsv(partialRows)).not.toContain('0 GiB');
    const table = formatInventoryTable(partialRows).split('\n');
    expect(table[1]).toMatch(/^lab-node1 +unknown +unknown +unknown +unknown +vda /);
    expect(table[2]).not.toContain('unknown');
  });

  it('JSON: an unknown section is the string "unknown", the reasons are in `unknown`', () => {
    const out = JSON.parse(formatInventory(partialRows, 'json')) as { inventory: Record<string, any> }[];
    const inv = out[0]!.inventory;
    expect(inv.memory).toEqual({ totalBytes: 'unknown', dimms: 'unknown' });
    expect(inv.cpus).toBe('unknown');
    expect(inv.system).toBe('unknown');
    expect(inv.disks).toEqual(vm.disks);
    expect(inv.partial).toBe(true);
    expect(inv.unknown).toContainEqual({ section: 'memory', reason: 'mem: timed out after 10000 ms' });
    expect(out[1]!.inventory).toEqual(JSON.parse(JSON.stringify(vm)));
    // the view leaves the inventory it is given alone
    const copy = structuredClone(partialVm);
    inventoryJsonView(partialVm);
    expect(partialVm).toEqual(copy);
  });

  it('partialSummary names the partial reports for stderr', () => {
    expect(partialSummary(partialRows)).toBe('lab-node1 (system, cpus, memory, dimms unknown)');
    expect(partialSummary(rows)).toBe('');
  });

  it('HTML names the unknown sections with their reasons', () => {
    const html = formatInventoryHtml(partialRows);
    expect(html).toContain('partial report: system unknown (system: timed out after 10000 ms); cpus unknown');
    expect(html).toMatch(/<td>unknown<\/td>/);
    // the DIMM list is unknown, not "none"; the disks (known) are listed
    expect(html).toContain('<h2>Memory</h2>\n<p class="warn">unknown (memLayout: timed out after 10000 ms)</p>');
    expect(html).toMatch(/<h2>Disks<\/h2>\n<table>/);
  });

  it('diff text: a partial baseline is not compared, and says so; sections the newer report lacks are named', () => {
    const refused = formatInventoryDiff({
      node: 'lab-node1',
      before: { id: 1, reportedAt: 't1' },
      after: { id: 2, reportedAt: 't2' },
      refused: 'baseline is partial (memory unknown): no comparison',
      notCompared: [],
      changes: [],
    });
    expect(refused).toBe('lab-node1: report 1 (t1) -> report 2 (t2)\nbaseline is partial (memory unknown): no comparison\n');
    const skipped = formatInventoryDiff({
      node: 'lab-node1',
      before: { id: 1, reportedAt: 't1' },
      after: { id: 2, reportedAt: 't2' },
      refused: null,
      notCompared: [{ section: 'disks', reason: 'sys block: EIO; diskLayout: EIO' }],
      changes: [],
    });
    expect(skipped.split('\n')).toEqual([
      'lab-node1: report 1 (t1) -> report 2 (t2)',
      'no hardware changes',
      'not compared: disks unknown in the newer report (sys block: EIO; diskLayout: EIO)',
      '',
    ]);
  });
});


import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toInventory, type Inventory, type RawInventory } from '../../../agent/inventory/index.js';
import { assessExpect, checkExpect, parseExpectRule, shortfallText, unknownText, type ExpectSpec } from '../../../common/inventory/expect.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory');
const dgx = (): Inventory => toInventory(JSON.parse(fs.readFileSync(path.join(FIX, 'gpu-dgx.json'), 'utf8')) as RawInventory);
const rule = (v: unknown) => {
  const r = parseExpectRule(v);
  if (typeof r === 'string') throw new Error(r);
  return r;
};

describe('expected hardware (profile expect:)', () => {
  it('parseExpectRule: a count means exactly, a string is an operator and a number; anything else says what it takes', () => {
    expect(parseExpectRule(8)).toEqual({ op: '==', value: 8 });
    expect(parseExpectRule('>= 512')).toEqual({ op: '>=', value: 512 });
    expect(parseExpectRule('<2')).toEqual({ op: '<', value: 2 });
    expect(parseExpectRule(' == 4 ')).toEqual({ op: '==', value: 4 });
    expect(parseExpectRule('16')).toEqual({ op: '==', value: 16 });
    for (const bad of [-1, Number.NaN, 'lots', '>= -3', '=> 5', '>=', true, null, [8], {}]) {
      expect(typeof parseExpectRule(bad), JSON.stringify(bad)).toBe('string');
    }
    expect(parseExpectRule('=> 5')).toMatch(/is not a comparison: write a number, or one of >=/);
  });

  it('a report that has what the profile expects meets every rule', () => {
    const inv = dgx();
    const spec: ExpectSpec = { gpus: rule(inv.gpus.length), cpus: rule(`>= ${inv.cpus.threads}`), memory_gib: rule(`> 0`), disks: rule('>= 1') };
    const o = checkExpect(spec, inv);
    expect(o.short).toEqual([]);
    expect(o.unknown).toEqual([]);
    expect(o.met.sort()).toEqual(['cpus', 'disks', 'gpus', 'memory_gib']);
  });

  it('a GPU gone: the node falls short, and the reason names what it has and what was expected', () => {
    const inv = dgx();
    const n = inv.gpus.length;
    expect(n).toBeGreaterThan(1);
    const one = { ...inv, gpus: inv.gpus.slice(1) };
    const o = checkExpect({ gpus: rule(n), memory_gib: rule('>= 100000') }, one);
    expect(o.met).toEqual([]);
    expect(shortfallText(o)).toBe(`memory_gib: ${Math.round(inv.memory.totalBytes / 1024 ** 3)} GiB, expected >= 100000 GiB; gpus: ${n - 1}, expected ${n}`);
  });

  it('a section the report does not know is neither met nor short', () => {
    const inv: Inventory = { ...dgx(), gpus: [], unknown: [{ section: 'gpus', reason: 'nvidia-smi: timed out after 20000 ms' }], partial: true };
    const o = checkExpect({ gpus: rule(8), cpus: rule('>= 1') }, inv);
    expect(o.short).toEqual([]);
    expect(o.unknown).toEqual([{ field: 'gpus', section: 'gpus' }]);
    expect(o.met).toEqual(['cpus']);
    expect(unknownText(o)).toBe('gpus (gpus unknown)');
  });

  it('memory is judged in whole GiB: 1 GiB of which the kernel keeps some is still 1 GiB', () => {
    const inv: Inventory = { ...dgx(), memory: { totalBytes: 0.96 * 1024 ** 3, dimms: [] } };
    expect(checkExpect({ memory_gib: rule(1) }, inv).met).toEqual(['memory_gib']);
    expect(checkExpect({ memory_gib: rule('>= 2') }, inv).short).toEqual([{ field: 'memory_gib', want: '>= 2', got: 1 }]);
  });
});

describe('assessExpect (what the lifecycle reads)', () => {
  it('null without expect; short names the shortfall first; unknown when a needed section is unknown; met lists the rules', () => {
    const inv = dgx();
    expect(assessExpect(undefined, inv)).toBeNull();
    expect(assessExpect({}, inv)).toBeNull();
    expect(assessExpect({ gpus: rule(inv.gpus.length) }, inv)).toEqual({ status: 'met', reason: 'hardware meets profile: gpus' });
    expect(assessExpect({ gpus: rule(inv.gpus.length + 1) }, inv)).toEqual({ status: 'short', reason: `hardware short of profile: gpus: ${inv.gpus.length}, expected ${inv.gpus.length + 1}` });
    const partial: Inventory = { ...inv, unknown: [{ section: 'memory', reason: 'mem: timed out' }], partial: true };
    expect(assessExpect({ memory_gib: rule('>= 1') }, partial)).toEqual({ status: 'unknown', reason: 'cannot check memory_gib (memory unknown)' });
    // short wins over unknown: a GPU gone is known even when the memory is not
    expect(assessExpect({ memory_gib: rule('>= 1'), gpus: rule(99) }, partial)?.status).toBe('short');
  });
});

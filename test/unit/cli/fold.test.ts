import { describe, expect, it } from 'vitest';
import { foldFailures } from '../../../server/cli/fold.js';

const pad = (i: number): string => String(i).padStart(2, '0');

describe('foldFailures', () => {
  it('folds 35 nodes of one reason into one nodeset line', () => {
    const failures = Array.from({ length: 35 }, (_, i) => ({ node: `valkyrie${pad(i + 6)}`, reason: 'not in the store' }));
    expect(foldFailures(failures)).toEqual(['valkyrie[06-40]: not in the store']);
  });

  it('gives each reason its line, in the order the reasons first appear', () => {
    expect(
      foldFailures([
        { node: 'n3', reason: 'bmc.timeout: no answer' },
        { node: 'n1', reason: 'auth failed' },
        { node: 'n2', reason: 'bmc.timeout: no answer' },
        { node: 'n7', reason: 'auth failed' },
        { node: 'm1', reason: 'bmc.timeout: no answer' },
      ]),
    ).toEqual(['m1,n[2-3]: bmc.timeout: no answer', 'n[1,7]: auth failed']);
  });

  it('keeps reasons that differ only slightly apart, and one node as its name', () => {
    expect(foldFailures([{ node: 'a1', reason: 'x' }, { node: 'a2', reason: 'x ' }, { node: 'a3', reason: 'X' }])).toEqual(['a1: x', 'a2: x ', 'a3: X']);
  });

  it('prints nothing for no failures, and a node named twice once', () => {
    expect(foldFailures([])).toEqual([]);
    expect(foldFailures([{ node: 'n1', reason: 'r' }, { node: 'n1', reason: 'r' }])).toEqual(['n1: r']);
  });
});

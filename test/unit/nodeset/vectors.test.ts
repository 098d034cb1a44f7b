/**
 * The reference vectors recorded from clustershell 1.9's `nodeset` command:
 * every line must give the same stdout, or fail the same way.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { runNodesetCommand } from '../../../server/nodeset/index.js';

interface Vector {
  args: string[];
  rc: number;
  out: string;
}

const file = new URL('../../../../shared/test-vectors/nodeset.jsonl', import.meta.url);
const vectors: Vector[] = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as Vector);

describe('clustershell nodeset reference vectors', () => {
  it('has all 70 vectors', () => {
    expect(vectors).toHaveLength(70);
  });

  it.each(vectors.map((v, i) => [i + 1, v.args.join(' '), v] as const))('#%i nodeset %s', (_n, _label, v) => {
    if (v.rc === 0) {
      expect(runNodesetCommand(v.args)).toBe(v.out);
      return;
    }
    let err: unknown;
    try {
      runNodesetCommand(v.args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetError);
    const fe = err as FleetError;
    expect(['nodeset.invalid', 'nodeset.too_large']).toContain(fe.code);
    // clustershell prints "nodeset: Parse error: …"; our message is the part after "nodeset: "
    expect(fe.message).toBe(v.out.replace(/^nodeset: /, ''));
  });
});

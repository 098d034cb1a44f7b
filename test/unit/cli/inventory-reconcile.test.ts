import { describe, expect, it } from 'vitest';
import type { ReconcileResponse } from '../../../common/api/schemas.js';
import { formatReconcile } from '../../../server/cli/commands/inventory.js';

type Row = ReconcileResponse['results'][number];
const row = (node: string, status: Row['status'], checks: Row['checks'], reason = ''): Row => ({ node, status, reason, checks, flag: 'unchanged', reportedAt: null });

describe('fleet inventory reconcile: one line per node', () => {
  it('match with the values that matched, mismatch with both sides, unknown with its reason', () => {
    const out = formatReconcile([
      row('valkyrie01', 'match', [
        { field: 'uuid', agent: 'u-1', bmc: 'u-1', result: 'match' },
        { field: 'serial', agent: 'S1', bmc: 's1', result: 'match' },
        { field: 'macs', agent: null, bmc: null, result: 'unknown', note: 'the BMC lists no host NIC (IPMI never does)' },
      ]),
      row('valkyrie02', 'mismatch', [
        { field: 'uuid', agent: 'u-2', bmc: 'u-9', result: 'mismatch' },
        { field: 'serial', agent: null, bmc: 'S9', result: 'unknown' },
        { field: 'macs', agent: null, bmc: null, result: 'unknown' },
      ]),
      row('v3', 'unknown', [], 'no inventory yet'),
    ]);
    expect(out.split('\n')).toEqual([
      'valkyrie01  match     uuid=u-1 serial=S1',
      'valkyrie02  mismatch  uuid agent=u-2 bmc=u-9',
      'v3          unknown   (no inventory yet)',
    ]);
  });
});

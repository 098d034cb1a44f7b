/** The per-node time limit of a BMC operation covers a Redfish node's power wait (issue 9). */
import { describe, expect, it } from 'vitest';
import type { BmcTarget } from '../../../server/bmc/types.js';
import { operationTimeoutMs } from '../../../server/bmc/operation.js';

const ipmi: BmcTarget = { address: '10.0.0.1', port: 623, username: 'u', password: 'p' };
const rf = (powerWaitMs?: number): BmcTarget => ({ ...ipmi, port: 443, redfish: powerWaitMs === undefined ? {} : { powerWaitMs } });

describe('operationTimeoutMs', () => {
  it('leaves IPMI-only runs, reads, soft off and boot devices alone', () => {
    expect(operationTimeoutMs({ kind: 'power', op: 'cycle' }, [ipmi], 20_000)).toBe(20_000);
    expect(operationTimeoutMs({ kind: 'power', op: 'status' }, [rf()], undefined)).toBeUndefined();
    expect(operationTimeoutMs({ kind: 'power', op: 'soft' }, [rf()], 5_000)).toBe(5_000);
    expect(operationTimeoutMs({ kind: 'bootdev', device: 'pxe', persistent: false, mode: 'auto' }, [rf()], 5_000)).toBe(5_000);
  });

  it('raises the limit to two waits plus the requests for Redfish power actions, never lowers it', () => {
    expect(operationTimeoutMs({ kind: 'power', op: 'off' }, [ipmi, rf()], undefined)).toBe(2 * 30_000 + 20_000);
    expect(operationTimeoutMs({ kind: 'power', op: 'cycle' }, [rf(5_000), rf(90_000)], 20_000)).toBe(2 * 90_000 + 20_000);
    expect(operationTimeoutMs({ kind: 'power', op: 'on' }, [rf(0)], 300_000)).toBe(300_000);
  });
});

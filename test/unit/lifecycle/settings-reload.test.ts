/**
 * Lifecycle settings applied while running (issue 9): the conductor reads
 * them through a getter, so new retries and timeouts govern the very next
 * decision. Through the real server: test/integration/apply-server.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { FACT as SIGNAL } from '../../../server/lifecycle/facts.js';
import { S } from '../../../server/lifecycle/states.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const timeoutErr = () => new FleetError('bmc.timeout', 'no answer');

describe('conductor.setSettings', () => {
  it('fewer retries take effect on the next step attempt', async () => {
    h = await harness({ nodes: ['n1', 'n2'] });
    h.bmc.failNext('armPxe', 'n1', timeoutErr());
    let [r] = await h.c.reinstall(['n1'], { actor: 'test' });
    expect(r?.ok).toBe(true);
    await h.c.tick();
    await h.c.idle();
    // Default: arm-pxe is retried, so one failure is recovered from.
    expect(h.bmc.count('armPxe', 'n1')).toBe(2);
    expect((await h.store.nodes.require('n1')).state).toBe(S.powerCycling);

    h.c.setSettings({ retries: { 'arm-pxe': 0, 'power-cycle': 2, 'flip-to-disk': 2, 'check-agent': 0, 'check-applied': 0 } });
    expect(h.c.settings.retries['arm-pxe']).toBe(0);
    h.bmc.failNext('armPxe', 'n2', timeoutErr());
    [r] = await h.c.reinstall(['n2'], { actor: 'test' });
    expect(r?.ok).toBe(true);
    await h.c.tick();
    await h.c.idle();
    expect(h.bmc.count('armPxe', 'n2')).toBe(1);
    expect((await h.store.nodes.require('n2')).state).toBe(S.failed);
  });

  it('a new timeout governs the next state entered; absent settings mean the defaults again', async () => {
    h = await harness();
    const defaults = h.c.settings.timeouts[S.netbooting]!;
    h.c.setSettings({ timeouts: { [S.netbooting]: 90 } });
    const [r] = await h.c.reinstall(['n1'], { actor: 'test' });
    expect(r?.ok).toBe(true);
    await h.c.tick();
    await h.c.idle();
    await h.fact('n1', SIGNAL.scriptFetched, { decision: 'install' });
    const n = await h.store.nodes.require('n1');
    expect(n.state).toBe(S.netbooting);
    expect(Date.parse(n.stateDeadline!) - h.clock.ms).toBe(90_000);
    h.c.setSettings(undefined);
    expect(h.c.settings.timeouts[S.netbooting]).toBe(defaults);
  });
});

/**
 * The one rule for a power cycle that may have happened
 * (server/lifecycle/steps/power-cycle.ts): read the power, never cycle
 * again. The step and recovery both go through settleDoubtfulCycle; these
 * tests drive it and the step with a recording double, no store, no socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { markNotRun } from '../../../server/bmc/retry.js';
import type { PowerState } from '../../../server/bmc/types.js';
import { LIFECYCLE_EVENT_KINDS as K, S } from '../../../server/lifecycle/states.js';
import type { Steps } from '../../../server/lifecycle/steps.js';
import { powerCycle, settleDoubtfulCycle } from '../../../server/lifecycle/steps/power-cycle.js';
import type { StepContext } from '../../../server/lifecycle/steps/types.js';
import type { NodeRecord, Store } from '../../../server/store/index.js';

/** Records every BMC call; power per node; one queued error per op. */
class Recorder implements Steps {
  readonly calls: string[] = [];
  power: PowerState = 'on';
  readonly errors: Partial<Record<string, Error>> = {};
  private async call(op: string): Promise<void> {
    this.calls.push(op);
    const e = this.errors[op];
    if (e) {
      delete this.errors[op];
      throw e;
    }
  }
  async armPxe(): Promise<void> {
    await this.call('armPxe');
  }
  async powerCycle(): Promise<'cycle' | 'on'> {
    await this.call('powerCycle');
    return 'cycle';
  }
  async powerOn(): Promise<void> {
    await this.call('powerOn');
    this.power = 'on';
  }
  async powerStatus(): Promise<PowerState> {
    await this.call('powerStatus');
    return this.power;
  }
  async flipToDisk(): Promise<void> {
    await this.call('flipToDisk');
  }
}

const timeout = (): FleetError => new FleetError('bmc.timeout', 'no answer from the BMC');

describe('settleDoubtfulCycle', () => {
  it('off: powers on (the cycle\u2019s second half), never cycles', async () => {
    const bmc = new Recorder();
    bmc.power = 'off';
    expect(await settleDoubtfulCycle(bmc, 'n1')).toEqual({ outcome: 'powered-on' });
    expect(bmc.calls).toEqual(['powerStatus', 'powerOn']);
  });

  it('on: sends nothing (the cycle may have happened)', async () => {
    const bmc = new Recorder();
    expect(await settleDoubtfulCycle(bmc, 'n1')).toEqual({ outcome: 'left-on', power: 'on' });
    expect(bmc.calls).toEqual(['powerStatus']);
  });

  it('unreadable: sends nothing more and says why', async () => {
    const bmc = new Recorder();
    bmc.errors.powerStatus = new FleetError('unavailable', 'no route');
    const r = await settleDoubtfulCycle(bmc, 'n1');
    expect(r.outcome).toBe('unreadable');
    expect(r.outcome === 'unreadable' && r.error.message).toBe('no route');
    expect(bmc.calls).toEqual(['powerStatus']);
  });

  it('a failed power-on is the caller\u2019s to judge: it is thrown', async () => {
    const bmc = new Recorder();
    bmc.power = 'off';
    bmc.errors.powerOn = new FleetError('bmc.command_failed', 'refused');
    await expect(settleDoubtfulCycle(bmc, 'n1')).rejects.toThrow('refused');
    expect(bmc.calls).toEqual(['powerStatus', 'powerOn']);
  });
});

describe('the power-cycle step', () => {
  const rec = { name: 'n1', state: S.powerCycling, generation: 3 } as NodeRecord;
  function ctx(bmc: Recorder): { ctx: StepContext; events: [string, Record<string, unknown>][] } {
    const events: [string, Record<string, unknown>][] = [];
    return { ctx: { store: {} as Store, steps: bmc, append: async (_n, kind, details) => void events.push([kind, details]) }, events };
  }

  it('cycles once and waits for the netboot', async () => {
    const bmc = new Recorder();
    const { ctx: c, events } = ctx(bmc);
    expect(await powerCycle.run(c, rec, 1)).toEqual({ kind: 'wait' });
    expect(bmc.calls).toEqual(['powerCycle']);
    expect(events).toEqual([[K.stepDone, { step: 'power-cycle', attempt: 1, action: 'cycle' }]]);
  });

  it('a cycle that timed out is not repeated: the power is read', async () => {
    const bmc = new Recorder();
    bmc.errors.powerCycle = timeout();
    const { ctx: c, events } = ctx(bmc);
    expect(await powerCycle.run(c, rec, 1)).toEqual({ kind: 'wait' });
    expect(bmc.calls).toEqual(['powerCycle', 'powerStatus']);
    expect(events[0]?.[1].action).toBe('none (timed out; power is on, not repeated)');
  });

  it('a cycle that timed out and left the node off: powered on, not cycled', async () => {
    const bmc = new Recorder();
    bmc.power = 'off';
    bmc.errors.powerCycle = new FleetError('bmc.protocol', 'garbled reply');
    const { ctx: c, events } = ctx(bmc);
    expect(await powerCycle.run(c, rec, 2)).toEqual({ kind: 'wait' });
    expect(bmc.calls).toEqual(['powerCycle', 'powerStatus', 'powerOn']);
    expect(events[0]?.[1]).toEqual({ step: 'power-cycle', attempt: 2, action: 'on (after a unconfirmed: bmc.protocol cycle left it off)' });
  });

  it('power unreadable too: fails the node, nothing repeated', async () => {
    const bmc = new Recorder();
    bmc.errors.powerCycle = timeout();
    bmc.errors.powerStatus = new FleetError('bmc.timeout', 'still nothing');
    const { ctx: c, events } = ctx(bmc);
    const out = await powerCycle.run(c, rec, 1);
    expect(out).toMatchObject({ kind: 'event', event: 'fail', details: { step: 'power-cycle', attempts: 1 } });
    expect(out.kind === 'event' && String(out.details.reason)).toMatch(/power state is unreadable too, so the power action is not repeated \(still nothing\)/);
    expect(events).toEqual([[K.stepFailed, { step: 'power-cycle', attempt: 1, code: 'bmc.timeout', reason: 'no answer from the BMC', willRetry: false }]]);
    expect(bmc.calls).toEqual(['powerCycle', 'powerStatus']);
  });

  it('a failure that proves the cycle did not run is thrown (the runner may retry it)', async () => {
    const bmc = new Recorder();
    bmc.errors.powerCycle = markNotRun(new FleetError('bmc.command_failed', 'refused'));
    const { ctx: c } = ctx(bmc);
    await expect(powerCycle.run(c, rec, 1)).rejects.toThrow('refused');
    expect(bmc.calls).toEqual(['powerCycle']);
  });
});

describe('the rule exists once', () => {
  it('no lifecycle module but steps/power-cycle.ts decides by reading the power after a cycle', () => {
    const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../server/lifecycle');
    const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
    // steps.ts is BmcSteps itself (the BMC operations); every other reader goes through settleDoubtfulCycle.
    const readers = files.filter((f) => /\.powerStatus\(/.test(fs.readFileSync(path.join(dir, f), 'utf8'))).sort();
    expect(readers).toEqual(['steps.ts', path.join('steps', 'power-cycle.ts')]);
    const users = files.filter((f) => /settleDoubtfulCycle\(/.test(fs.readFileSync(path.join(dir, f), 'utf8'))).sort();
    expect(users).toEqual(['recovery.ts', path.join('steps', 'power-cycle.ts')]);
  });
});

/** The lifecycle table, next(), the signal translation, settings and the generated doc (pure). */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { generatedSection, renderStateTableMarkdown, syncLifecycleDoc } from '../../../server/lifecycle/doc.js';
import { parseLifecycleConfig, resolveLifecycleSettings } from '../../../server/lifecycle/settings.js';
import { eventForFact as eventForSignal, FACT as SIGNAL } from '../../../server/lifecycle/facts.js';
import { ALL_EVENTS, ALL_STATES, E, REINSTALL_PATH, RESTING_STATES, S, TRANSIENT_STATES } from '../../../server/lifecycle/states.js';
import { checkTable, next, STATE_SPECS, TRANSITIONS, tryNext } from '../../../server/lifecycle/table.js';
import { DEFAULT_BOOT_OPTIONS } from '../../../server/netboot/decide.js';

describe('lifecycle table', () => {
  it('is consistent: closed sets, one row per (state, event), fail/cancel/timeout from every transient state', () => {
    expect(checkTable()).toEqual([]);
    expect(new Set(STATE_SPECS.map((s) => s.state))).toEqual(new Set(ALL_STATES));
    for (const t of TRANSITIONS) {
      expect(ALL_EVENTS).toContain(t.event);
      expect(t.why.length).toBeGreaterThan(10);
    }
  });

  it('next() gives every row of the table', () => {
    for (const t of TRANSITIONS) {
      const got = next(t.from, t.event);
      expect(got.to).toBe(t.to);
      expect(got).toBe(t);
    }
  });

  it('refuses every (state, event) pair that is not in the table with state.invalid_transition', () => {
    let refused = 0;
    for (const s of ALL_STATES) {
      for (const e of ALL_EVENTS) {
        if (tryNext(s, e)) continue;
        refused++;
        expect(() => next(s, e, 'n1')).toThrowError(FleetError);
        try {
          next(s, e, 'n1');
        } catch (err) {
          expect((err as FleetError).code).toBe('state.invalid_transition');
          expect((err as FleetError).message).toContain(`node n1 is ${s}`);
        }
      }
    }
    expect(refused).toBeGreaterThan(50);
    expect(() => next('no-such-state', E.reinstall)).toThrow(/not allowed/);
  });

  it('walks the reinstall path from enrolled, ready and failed', () => {
    const events = [E.reinstall, E.cycle, E.netboot, E.install, E.finish, E.flip, E.boot, E.configure, E.complete];
    for (const start of [S.enrolled, S.ready, S.failed]) {
      let state: string = start;
      const seen: string[] = [];
      for (const ev of events) {
        state = next(state, ev).to;
        seen.push(state);
      }
      expect(seen).toEqual(REINSTALL_PATH);
    }
  });

  it('fail and cancel leave every transient state, to failed and enrolled, disarmed', () => {
    for (const s of TRANSIENT_STATES) {
      expect(next(s, E.fail)).toMatchObject({ to: S.failed, armed: 'disarm' });
      expect(next(s, E.cancel)).toMatchObject({ to: S.enrolled, armed: 'disarm' });
    }
    for (const s of RESTING_STATES) {
      // Resting states that fail: an accepted machine whose BMC set-up failed (discovery bmc.setup) is still
      // enrolled; a stateless node rebooted from ready or held whose stage 1 failed (its image did not verify).
      if (s === S.enrolled || s === S.ready || s === S.held) expect(next(s, E.fail)).toMatchObject({ to: S.failed });
      else expect(tryNext(s, E.fail)).toBeUndefined();
      expect(tryNext(s, E.cancel)).toBeUndefined();
    }
  });

  it('arms only when the PXE override is in place and disarms at install-finished (loop breaker layer 2)', () => {
    expect(TRANSITIONS.filter((t) => t.armed === 'arm').map((t) => `${t.from} ${t.event}`)).toEqual([`${S.pxeArmed} ${E.cycle}`]);
    expect(next(S.installing, E.finish).armed).toBe('disarm');
  });

  it('shares its state names with the boot decision', () => {
    for (const s of [...DEFAULT_BOOT_OPTIONS.installStates, ...DEFAULT_BOOT_OPTIONS.postInstallStates]) expect(ALL_STATES).toContain(s);
  });
});

describe('signals to events', () => {
  const install = { decision: 'install', mac: '52:54:00:00:00:01' };
  it('maps the boot endpoints\' facts in the states that await them', () => {
    expect(eventForSignal(S.powerCycling, SIGNAL.scriptFetched, install)).toMatchObject({ event: E.netboot });
    expect(eventForSignal(S.netbooting, SIGNAL.scriptFetched, install)).toMatchObject({ event: E.netboot });
    expect(eventForSignal(S.netbooting, SIGNAL.kickstartFetched, {})).toMatchObject({ event: E.install });
    expect(eventForSignal(S.installing, SIGNAL.installStarted, {})).toMatchObject({ event: E.install });
    expect(eventForSignal(S.installing, SIGNAL.installFinished, {})).toMatchObject({ event: E.finish });
    expect(eventForSignal(S.installing, SIGNAL.installFailed, { message: 'no disk found by installer' })).toEqual({
      event: E.fail,
      details: { step: 'install', reason: 'installer failed: no disk found by installer' },
    });
    expect(eventForSignal(S.installing, SIGNAL.installFailed, { log: 'a\nb\nanaconda: no space left\n\n' })).toMatchObject({
      details: { reason: 'installer failed: anaconda: no space left' },
    });
  });

  it('ignores facts a state does not await, with a reason', () => {
    expect(eventForSignal(S.ready, SIGNAL.scriptFetched, install)).toHaveProperty('ignore');
    expect(eventForSignal(S.pxeArmed, SIGNAL.scriptFetched, install)).toHaveProperty('ignore');
    expect(eventForSignal(S.powerCycling, SIGNAL.scriptFetched, { decision: 'localboot' })).toHaveProperty('ignore');
    expect(eventForSignal(S.netbooting, SIGNAL.installFinished, {})).toHaveProperty('ignore');
    expect(eventForSignal(S.ready, SIGNAL.installFailed, {})).toHaveProperty('ignore');
    expect(eventForSignal(S.installing, SIGNAL.agentEnrolled, {})).toHaveProperty('ignore');
    expect(eventForSignal(S.firstBoot, SIGNAL.agentApplied, {})).toHaveProperty('ignore');
  });

  it('flags a netboot while not armed after the install, and never turns it into an event', () => {
    const t = eventForSignal(S.diskArmed, SIGNAL.scriptFetched, { decision: 'localboot', flag: 'boot-loop-suspect', reason: 'back' });
    expect(t).toEqual({ ignore: expect.any(String), flag: { name: 'boot-loop-suspect', reason: 'back' } });
  });

  it('reads the first boot: disk → boot, network entry → boot with a flag, not on a local disk → fail', () => {
    expect(eventForSignal(S.diskArmed, SIGNAL.agentBoot, { bootId: 'b1', assessment: { rootOnLocalDisk: true, firmwareVia: 'disk' } })).toEqual({
      event: E.boot,
      details: { bootId: 'b1', firmwareVia: 'disk' },
    });
    const net = eventForSignal(S.diskArmed, SIGNAL.agentBoot, { assessment: { rootOnLocalDisk: true, firmwareVia: 'network', firmwareEntry: { id: '0003', label: 'PXE IPv4' } } });
    expect(net).toMatchObject({ event: E.boot, flag: { name: 'boot-loop-suspect' } });
    expect(eventForSignal(S.diskArmed, SIGNAL.agentBoot, { assessment: { rootOnLocalDisk: false, notes: ['root is not on a local disk (nfs)'] } })).toMatchObject({
      event: E.fail,
      details: { step: 'first-boot', reason: expect.stringContaining('nfs') },
    });
    expect(eventForSignal(S.diskArmed, SIGNAL.agentBoot, { isNewBoot: false, assessment: { rootOnLocalDisk: true } })).toHaveProperty('ignore');
  });

  it('reads the apply report', () => {
    expect(eventForSignal(S.configuring, SIGNAL.agentApplied, { version: 'v1' })).toEqual({ event: E.complete, details: { version: 'v1' } });
    expect(eventForSignal(S.configuring, SIGNAL.agentApplyFailed, { failed: ['nfs', 'gpu'], results: [{ role: 'nfs', outcome: 'failed', message: 'mount timed out' }] })).toEqual({
      event: E.fail,
      details: { step: 'configure', reason: 'roles failed: nfs, gpu: nfs: mount timed out' },
    });
  });
});

describe('lifecycle settings (fleet.yaml lifecycle:)', () => {
  it('defaults to the table', () => {
    const s = resolveLifecycleSettings();
    expect(s.timeouts[S.installing]).toBe(7200);
    expect(s.retries['power-cycle']).toBe(2);
  });

  it('parses durations and retries', () => {
    const { settings, issues } = parseLifecycleConfig({ timeouts: { 'power-cycling': '20m', installing: '3h', netbooting: 90 }, retries: { 'power-cycle': 1 }, retry_delay: '2s' });
    expect(issues).toEqual([]);
    expect(settings.timeouts[S.powerCycling]).toBe(1200);
    expect(settings.timeouts[S.installing]).toBe(10800);
    expect(settings.timeouts[S.netbooting]).toBe(90);
    expect(settings.retries['power-cycle']).toBe(1);
    expect(settings.retryDelayMs).toBe(2000);
  });

  it('collects every problem with its path', () => {
    const { issues } = parseLifecycleConfig({ timeouts: { ready: '1m', installing: 'soon' }, retries: { 'power-cycle': -1, dance: 1 }, retry_delay: 'x', extra: 1 });
    expect(issues.map((i) => i.path).sort()).toEqual(
      ['lifecycle.extra', 'lifecycle.retries.dance', 'lifecycle.retries.power-cycle', 'lifecycle.retry_delay', 'lifecycle.timeouts.installing', 'lifecycle.timeouts.ready'].sort(),
    );
    expect(parseLifecycleConfig('x').issues).toHaveLength(1);
    expect(parseLifecycleConfig(undefined).issues).toEqual([]);
  });
});

describe('docs/lifecycle.md', () => {
  it('carries the state table generated from the code (regenerate: node dist/server/lifecycle/doc.js docs/lifecycle.md)', async () => {
    const doc = await readFile(new URL('../../../docs/lifecycle.md', import.meta.url), 'utf8');
    expect(generatedSection(doc)).toBe(renderStateTableMarkdown());
    expect(syncLifecycleDoc(doc)).toBe(doc);
  });

  it('renders one line per state and per transition', () => {
    const md = renderStateTableMarkdown();
    for (const s of STATE_SPECS) expect(md).toContain(`| \`${s.state}\` | ${s.kind}`);
    expect(md.split('\n').filter((l) => l.startsWith('| `')).length).toBe(STATE_SPECS.length + TRANSITIONS.length);
  });
});

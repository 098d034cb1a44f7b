/** The real Steps (BmcSteps over runBmcOperation) against the stateful Redfish double, and the conductor driving them. */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IpmiTransport } from '../../../server/bmc/ipmi/transport.js';
import { FleetError } from '../../../common/errors.js';
import { Conductor } from '../../../server/lifecycle/conductor.js';
import { E, S } from '../../../server/lifecycle/states.js';
import { BmcSteps } from '../../../server/lifecycle/steps.js';
import { mayRetry } from '../../../server/bmc/retry.js';
import { PROFILE } from '../../helpers/lifecycle.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { RedfishDouble } from '../../helpers/redfish-double.js';

const PASSWORD = 'Lifecycle-Redfish-Pw-1';
let store: Store;
let bmc: RedfishDouble;
let transport: IpmiTransport;
let steps: BmcSteps;

beforeEach(async () => {
  bmc = await RedfishDouble.start({ scheme: 'http', username: 'root', password: PASSWORD });
  transport = await IpmiTransport.open();
  store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  await store.credentials.upsert('rf', 'root', PASSWORD, { actor: 't' });
  await store.profiles.upsert(PROFILE, { actor: 't' });
  await store.nodes.upsert({ name: 'rack01', profile: 'compute', macs: [], pet: false, bmc: { address: '127.0.0.1', port: bmc.port, protocol: 'redfish', credentials: 'rf' } }, { actor: 't' });
  await store.nodes.upsert({ name: 'nobmc', profile: 'compute', macs: [], pet: false }, { actor: 't' });
  steps = new BmcSteps(store, { providers: { ipmiTransport: transport, redfish: { scheme: 'insecure-http' } }, timeoutMs: 5000 });
});

afterEach(async () => {
  await store.close();
  await transport.close();
  await bmc.close();
});

describe('BmcSteps (Redfish double)', () => {
  it('reads power, powers on an off node instead of cycling it, cycles an on node', async () => {
    bmc.setPowerState('Off');
    expect(await steps.powerStatus('rack01')).toBe('off');
    expect(await steps.powerCycle('rack01')).toBe('on');
    expect(bmc.system().PowerState).toBe('On');
    expect(await steps.powerCycle('rack01')).toBe('cycle');
    const resets = bmc.requests.filter((r) => r.method === 'POST' && r.path.includes('Reset')).map((r) => JSON.parse(r.body) as { ResetType: string });
    // "on" for the node that was off; the cycle is PowerCycle or ForceOff+On, as the BMC allows.
    expect(resets[0]?.ResetType).toBe('On');
    expect(resets.length).toBeGreaterThanOrEqual(2);
    expect(bmc.system().PowerState).toBe('On');
    const audit = (await store.events.list({ node: 'rack01', kinds: ['bmc.power'] })).events.map((e) => (e.details as { operation: string }).operation);
    expect(audit).toEqual(['power on', 'power cycle']);
  });

  it('a BMC that keeps Once: nothing is set at the install boot (one PXE arm, one flip after install-finished)', async () => {
    const c = new Conductor({ store, steps, tickMs: 60_000, sweepIntervalMs: 0 });
    await c.reinstall(['rack01'], { actor: 't' });
    await c.tick();
    await c.idle();
    await c.fire('rack01', E.netboot, { actor: 't' });
    await c.idle();
    const ops = async () => (await store.events.list({ node: 'rack01', kinds: ['bmc.bootdev'] })).events.map((e) => (e.details as { operation: string }).operation);
    expect(await ops()).toEqual(['bootdev pxe once']);
    for (const ev of [E.install, E.finish]) await c.fire('rack01', ev, { actor: 't' });
    await c.idle();
    expect(await ops()).toEqual(['bootdev pxe once', 'bootdev disk persistent']);
    await c.stop();
  });

  it('a stateless node: the network boot for good, no flip to disk after its stage 1, none on a cancel either', async () => {
    await store.profiles.upsert({ ...PROFILE, name: 'diskfree', os: { install: 'stateless', tree: '', image: 'debian12' } }, { actor: 't' });
    await store.nodes.upsert({ name: 'rack01', profile: 'diskfree', macs: [], pet: false, bmc: { address: '127.0.0.1', port: bmc.port, protocol: 'redfish', credentials: 'rf' } }, { actor: 't' });
    const c = new Conductor({ store, steps, tickMs: 60_000, sweepIntervalMs: 0 });
    await c.reinstall(['rack01'], { actor: 't' });
    await c.tick();
    await c.idle();
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' });
    for (const ev of [E.netboot, E.install, E.handover]) await c.fire('rack01', ev, { actor: 't' });
    await c.idle();
    expect(await store.nodes.require('rack01')).toMatchObject({ state: S.imageBooting, armed: false });
    await c.cancel(['rack01'], { actor: 't' });
    await c.idle();
    const ops = (await store.events.list({ node: 'rack01', kinds: ['bmc.bootdev'] })).events.map((e) => (e.details as { operation: string }).operation);
    expect(ops).toEqual(['bootdev pxe persistent']);
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' });
    await c.stop();
  });

  it('sets the one-time PXE override, then the persistent disk boot', async () => {
    await steps.armPxe('rack01');
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
    await steps.flipToDisk('rack01');
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
  });

  it('a BMC that stores the one-time PXE override as Continuous: the quirk is audited, and the disk is back after the install', async () => {
    bmc.switches.onceAsContinuous = true;
    const c = new Conductor({ store, steps, tickMs: 60_000, sweepIntervalMs: 0 });
    await c.reinstall(['rack01'], { actor: 't' });
    await c.tick();
    await c.idle();
    expect(await store.nodes.require('rack01')).toMatchObject({ state: S.powerCycling, armed: true });
    // Once was sent, Continuous stored: on record in the audit event of the arm.
    const arm = (await store.events.list({ node: 'rack01', kinds: ['bmc.bootdev'] })).events[0];
    expect(arm?.details).toMatchObject({ operation: 'bootdev pxe once', outcome: 'ok', stored: { target: 'Pxe', enabled: 'Continuous' }, quirks: ['onceStoredAsContinuous'] });
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' });
    // The install boot has started (the node fetched its install script): the disk is set at once, so the
    // installer's reboot does not netboot again.
    await c.fire('rack01', E.netboot, { actor: 't' });
    await c.idle();
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
    expect((await store.events.list({ node: 'rack01', kinds: ['bmc.bootdev'] })).events.map((e) => (e.details as { operation: string }).operation)).toEqual([
      'bootdev pxe once',
      'bootdev disk persistent',
    ]);
    // install-finished: the flip-to-disk step sets it again (idempotent).
    for (const ev of [E.install, E.finish]) await c.fire('rack01', ev, { actor: 't' });
    await c.idle();
    expect(await store.nodes.require('rack01')).toMatchObject({ state: S.diskArmed, armed: false });
    expect(bmc.system().Boot).toMatchObject({ BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
    const flip = (await store.events.list({ node: 'rack01', kinds: ['bmc.bootdev'] })).events.at(-1);
    expect(flip?.details).toMatchObject({ operation: 'bootdev disk persistent', stored: { target: 'Hdd', enabled: 'Continuous' }, quirks: [] });
    // The next boots come from the disk, not the network.
    await steps.powerCycle('rack01');
    expect(bmc.boots.map((b) => b.target)).toEqual(['Pxe', 'Hdd']);
    await c.stop();
  });

  it('fails with catalogue errors: no BMC (not retried), wrong password (not retried)', async () => {
    await expect(steps.armPxe('nobmc')).rejects.toMatchObject({ code: 'bmc.unsupported' });
    await store.credentials.upsert('rf', 'root', 'wrong', { actor: 't' });
    const err = await steps.powerStatus('rack01').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).code).toBe('bmc.auth_failed');
    expect(mayRetry('power.status', err)).toBe(false);
    expect((err as FleetError).message).not.toContain('wrong');
  });

  it('drives a reinstall through the conductor: PXE once, power cycle, then waits for the netboot', async () => {
    const c = new Conductor({ store, steps, tickMs: 60_000, sweepIntervalMs: 0 });
    await c.reinstall(['rack01'], { actor: 't' });
    await c.tick();
    await c.idle();
    expect(await store.nodes.require('rack01')).toMatchObject({ state: S.powerCycling, armed: true });
    // The PXE override was set once, before the power cycle (which the double's firmware consumed it on).
    const order = bmc.requests.filter((r) => r.method === 'PATCH' || (r.method === 'POST' && r.path.includes('Reset'))).map((r) => r.body);
    expect(order.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(order[0]!)).toMatchObject({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
    for (const b of order.slice(1)) expect(JSON.parse(b)).toHaveProperty('ResetType');
    // A node without a BMC (bmc: none): power is manual. It is armed and waits for its netboot; no BMC operation at all.
    const before = bmc.requests.length;
    const [r] = await c.reinstall(['nobmc'], { actor: 't' });
    expect(r).toMatchObject({ ok: true, note: 'power is manual (no BMC): PXE-boot nobmc by hand; waiting for its netboot' });
    await c.tick();
    await c.idle();
    expect(await store.nodes.require('nobmc')).toMatchObject({ state: S.powerCycling, armed: true });
    expect(bmc.requests.length).toBe(before);
    const nobmcEvents = (await store.events.list({ node: 'nobmc' })).events;
    expect(nobmcEvents.filter((e) => e.kind.startsWith('bmc.'))).toEqual([]);
    expect(nobmcEvents.find((e) => e.kind === 'lifecycle.step_done')).toMatchObject({ details: { step: 'power-cycle', action: 'manual', message: expect.stringContaining('PXE-boot nobmc by hand') } });
    // Its netboot moves it on like any other node's.
    expect(await c.signal('nobmc', 'boot.script_fetched', { decision: 'install' })).toMatchObject({ status: 'applied', to: S.netbooting });
    // A cancel asks no BMC to boot the disk either.
    await c.cancel(['nobmc'], { actor: 't' });
    await c.idle();
    expect(bmc.requests.length).toBe(before);
    expect((await store.events.list({ node: 'nobmc', kinds: ['lifecycle.cleanup_failed'] })).events).toEqual([]);
    await c.stop();
  });
});

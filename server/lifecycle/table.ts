/**
 * The node lifecycle as data (DESIGN §1, §3): per state, its step, timeout
 * and what happens on timeout; per transition, (state, event) → next state,
 * what it does to the armed flag, and why. `next()` is pure. The doc table in
 * docs/lifecycle.md is generated from these arrays (doc.ts).
 */
import { FleetError } from '../../common/errors.js';
import { E, S, STEP, TRANSIENT_STATES, type LifecycleEvent, type LifecycleState, type StepName } from './states.js';

export interface StateSpec {
  state: LifecycleState;
  kind: 'resting' | 'transient';
  /** What the conductor does on entering the state; its result is an event (or a wait). */
  step?: StepName;
  /** Default timeout (fleet.yaml lifecycle.timeouts overrides it); transient states only. */
  timeoutSeconds?: number;
  /** The event fired when the timeout expires. */
  onTimeout?: LifecycleEvent;
  /** What the node waits for here, for timeout reasons and docs. */
  waitsFor: string;
}

export interface Transition {
  from: LifecycleState;
  event: LifecycleEvent;
  to: LifecycleState;
  /** 'arm': set the armed flag, 'disarm': clear it, in the transition's transaction. */
  armed?: 'arm' | 'disarm';
  /** Accepted without a change (a repeated signal): nothing is written. */
  stay?: true;
  why: string;
}

const m = 60;

export const STATE_SPECS: readonly StateSpec[] = [
  { state: S.enrolled, kind: 'resting', waitsFor: 'an operator (reinstall)' },
  { state: S.ready, kind: 'resting', waitsFor: 'an operator (reinstall)' },
  { state: S.held, kind: 'resting', waitsFor: 'an inventory report that meets the profile (fix the hardware, or the profile), or an operator (reinstall)' },
  { state: S.failed, kind: 'resting', waitsFor: 'an operator (fix the cause, then reinstall)' },
  { state: S.pxeArmed, kind: 'transient', step: STEP.armPxe, timeoutSeconds: 5 * m, onTimeout: E.fail, waitsFor: 'its stagger slot and the BMC to accept the one-time PXE boot override' },
  { state: S.powerCycling, kind: 'transient', step: STEP.powerCycle, timeoutSeconds: 15 * m, onTimeout: E.fail, waitsFor: 'the power cycle and the node to fetch its iPXE install script' },
  { state: S.netbooting, kind: 'transient', timeoutSeconds: 15 * m, onTimeout: E.fail, waitsFor: 'the installer to fetch its kickstart' },
  { state: S.installing, kind: 'transient', timeoutSeconds: 120 * m, onTimeout: E.fail, waitsFor: 'the installer to report install-finished' },
  { state: S.installed, kind: 'transient', step: STEP.flipToDisk, timeoutSeconds: 5 * m, onTimeout: E.fail, waitsFor: 'the BMC to set the boot device to disk (persistent)' },
  { state: S.diskArmed, kind: 'transient', timeoutSeconds: 30 * m, onTimeout: E.fail, waitsFor: 'the agent to report a boot from the local disk' },
  { state: S.imageBooting, kind: 'transient', timeoutSeconds: 15 * m, onTimeout: E.fail, waitsFor: 'the agent on the stateless image to report a boot from the network image' },
  { state: S.firstBoot, kind: 'transient', step: STEP.checkAgent, timeoutSeconds: 5 * m, onTimeout: E.fail, waitsFor: 'the check that the agent enrolled during this install' },
  { state: S.configuring, kind: 'transient', step: STEP.checkApplied, timeoutSeconds: 60 * m, onTimeout: E.fail, waitsFor: 'the agent to report its roles applied' },
  { state: S.adopting, kind: 'transient', timeoutSeconds: 120 * m, onTimeout: E.fail, waitsFor: 'the admin to run the adoption line on the machine and its agent to enrol with the adoption token' },
];

/** One transition per line; `why` is the comment (and the doc's last column). */
export const TRANSITIONS: readonly Transition[] = [
  // --- start a reinstall (pets need --force: checked before the event is fired)
  { from: S.enrolled, event: E.reinstall, to: S.pxeArmed, why: 'an operator asked for a reinstall: set the one-time PXE override first' },
  { from: S.ready, event: E.reinstall, to: S.pxeArmed, why: 'reinstall of a node in service (its disk is erased)' },
  { from: S.failed, event: E.reinstall, to: S.pxeArmed, why: 'the cause of the failure was fixed: try again' },
  { from: S.held, event: E.reinstall, to: S.pxeArmed, why: 'reinstall of a node held for its hardware' },
  // --- netboot and install
  { from: S.pxeArmed, event: E.cycle, to: S.powerCycling, armed: 'arm', why: 'the BMC accepted the one-time PXE override (layer 1): arm the node (layer 2) and power-cycle it' },
  { from: S.powerCycling, event: E.netboot, to: S.netbooting, why: 'the node fetched its iPXE script and was given the installer' },
  { from: S.netbooting, event: E.netboot, to: S.netbooting, stay: true, why: 'iPXE fetched its script again (a retry): nothing changes' },
  { from: S.netbooting, event: E.install, to: S.installing, why: 'the installer fetched its kickstart or reported install-started' },
  { from: S.installing, event: E.install, to: S.installing, stay: true, why: 'another kickstart fetch or install-started: the install goes on' },
  { from: S.installing, event: E.finish, to: S.installed, armed: 'disarm', why: 'install-finished: disarm at once, so any later netboot boots the disk (layer 2)' },
  // --- stateless: stage 1 hands over to the image in RAM; no disk, nothing to flip (docs/stateless.md)
  { from: S.installing, event: E.handover, to: S.imageBooting, armed: 'disarm', why: "a stateless node's stage 1 reported install-finished: the image is in RAM and runs; disarm (every boot is a netboot anyway)" },
  { from: S.imageBooting, event: E.boot, to: S.firstBoot, why: 'the agent on the stateless image reported a boot from the network image' },
  // --- back to the disk
  { from: S.installed, event: E.flip, to: S.diskArmed, why: 'the BMC boot device is the disk, persistent (layer 3): wait for the first boot' },
  { from: S.diskArmed, event: E.boot, to: S.firstBoot, why: 'the agent on the installed system reported a boot from the local disk (layer 4)' },
  { from: S.firstBoot, event: E.configure, to: S.configuring, why: 'the agent enrolled during this install: it applies its roles' },
  { from: S.configuring, event: E.complete, to: S.ready, why: 'the agent applied every role: in service' },
  // --- adoption of an installed machine (fleet adopt; no install, no BMC): the adoption token authorises the enrolment
  { from: S.enrolled, event: E.adopt, to: S.adopting, why: 'an operator adopts an installed machine: an adoption token is issued' },
  { from: S.ready, event: E.adopt, to: S.adopting, why: 'adopt again (e.g. the machine lost its agent): a new adoption token' },
  { from: S.failed, event: E.adopt, to: S.adopting, why: 'adopt after a failure (e.g. the adoption timed out): a new adoption token' },
  { from: S.adopting, event: E.adopt, to: S.adopting, why: 'adopt again while waiting (the line was lost): a new token supersedes the old, the timer starts again' },
  { from: S.adopting, event: E.configure, to: S.configuring, why: 'the agent enrolled with the adoption token: it applies its roles' },
  // --- hardware against the profile's expect: (USER-STORIES Day 3)
  { from: S.configuring, event: E.hold, to: S.held, why: 'every role applied, but the inventory falls short of the profile: not in service' },
  { from: S.ready, event: E.hold, to: S.held, why: 'a new inventory falls short of the profile (a GPU or a DIMM gone): out of service' },
  { from: S.held, event: E.hold, to: S.held, stay: true, why: 'still short: nothing changes' },
  { from: S.held, event: E.release, to: S.ready, why: 'the inventory meets the profile again: back in service' },
  // --- fail, from every transient state (step and reason in the event)
  { from: S.enrolled, event: E.fail, to: S.failed, why: 'the BMC set-up of an accepted machine failed (discovery bmc.setup): the factory credential is unchanged' },
  { from: S.pxeArmed, event: E.fail, to: S.failed, armed: 'disarm', why: 'the PXE override failed after its retries, or timed out' },
  { from: S.powerCycling, event: E.fail, to: S.failed, armed: 'disarm', why: 'the power cycle failed after its retries, or no netboot in time' },
  { from: S.netbooting, event: E.fail, to: S.failed, armed: 'disarm', why: 'the installer failed or did not fetch its kickstart in time' },
  { from: S.installing, event: E.fail, to: S.failed, armed: 'disarm', why: 'the installer reported install-failed, or did not finish in time' },
  { from: S.installed, event: E.fail, to: S.failed, armed: 'disarm', why: 'the boot device could not be set to disk' },
  { from: S.diskArmed, event: E.fail, to: S.failed, armed: 'disarm', why: 'no boot from the local disk in time, or the node booted from elsewhere' },
  { from: S.imageBooting, event: E.fail, to: S.failed, armed: 'disarm', why: 'no boot report from the stateless image in time, or it did not run from the network image' },
  { from: S.ready, event: E.fail, to: S.failed, why: "a stateless node's stage 1 failed at a reboot (its image did not verify, too little RAM): it runs nothing" },
  { from: S.held, event: E.fail, to: S.failed, why: "a held stateless node's stage 1 failed at a reboot: it runs nothing" },
  { from: S.firstBoot, event: E.fail, to: S.failed, armed: 'disarm', why: 'the agent did not enrol during this install' },
  { from: S.configuring, event: E.fail, to: S.failed, armed: 'disarm', why: 'a role failed, or the apply did not finish in time' },
  { from: S.adopting, event: E.fail, to: S.failed, armed: 'disarm', why: 'the agent did not enrol in time (the adoption token is revoked)' },
  // --- cancel, from every transient state: back to rest, disarmed (the disk holds the old or a partial system)
  { from: S.pxeArmed, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled before the power cycle' },
  { from: S.powerCycling, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled during the power cycle' },
  { from: S.netbooting, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled during the netboot' },
  { from: S.installing, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled the install (the disk holds a partial system)' },
  { from: S.installed, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled after the install' },
  { from: S.diskArmed, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled before the first boot' },
  { from: S.imageBooting, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled while the stateless image was booting' },
  { from: S.firstBoot, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled at the first boot' },
  { from: S.configuring, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled the configuration' },
  { from: S.adopting, event: E.cancel, to: S.enrolled, armed: 'disarm', why: 'an operator cancelled the adoption (the adoption token is revoked)' },
];

const byKey = new Map<string, Transition>(TRANSITIONS.map((t) => [`${t.from}\u0000${t.event}`, t]));
const specByState = new Map<string, StateSpec>(STATE_SPECS.map((s) => [s.state, s]));

/** The spec of a state; undefined for a name outside the closed set (e.g. a state written by an older version). */
export function stateSpec(state: string): StateSpec | undefined {
  return specByState.get(state);
}

/** The transition (state, event) takes, or undefined when the event is not allowed there. Pure. */
export function tryNext(state: string, event: string): Transition | undefined {
  return byKey.get(`${state}\u0000${event}`);
}

/** Events a node in `state` can take. */
export function eventsFrom(state: string): LifecycleEvent[] {
  return TRANSITIONS.filter((t) => t.from === state).map((t) => t.event);
}

/**
 * The transition (state, event) takes. Pure.
 * @throws FleetError('state.invalid_transition') when the event is not allowed in the state.
 */
export function next(state: string, event: string, node?: string): Transition {
  const t = tryNext(state, event);
  if (t) return t;
  const allowed = eventsFrom(state);
  const who = node ? `node ${node} is ${state}` : `state ${state}`;
  throw new FleetError(
    'state.invalid_transition',
    `${who}: '${event}' is not allowed there${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`,
    { ...(node ? { node } : {}), state, event, allowed },
  );
}

/** Self-check of the table (a test runs it): closed sets, one row per (state, event), fail and cancel from every transient state. */
export function checkTable(): string[] {
  const problems: string[] = [];
  const states = new Set<string>(STATE_SPECS.map((s) => s.state));
  const seen = new Set<string>();
  for (const t of TRANSITIONS) {
    const key = `${t.from} ${t.event}`;
    if (seen.has(key)) problems.push(`duplicate transition ${key}`);
    seen.add(key);
    if (!states.has(t.from)) problems.push(`unknown state ${t.from}`);
    if (!states.has(t.to)) problems.push(`unknown state ${t.to}`);
    if (t.stay && t.from !== t.to) problems.push(`stay transition ${key} changes state`);
  }
  for (const s of TRANSIENT_STATES) {
    if (!tryNext(s, E.fail)) problems.push(`no fail from ${s}`);
    if (!tryNext(s, E.cancel)) problems.push(`no cancel from ${s}`);
    const spec = specByState.get(s);
    if (!spec?.timeoutSeconds || !spec.onTimeout) problems.push(`no timeout for ${s}`);
    else if (!tryNext(s, spec.onTimeout)) problems.push(`timeout event ${spec.onTimeout} not allowed from ${s}`);
  }
  return problems;
}

/**
 * The closed sets of lifecycle states and events (DESIGN §1, §3), declared
 * apart from the transition table (table.ts), in the manner of Ironic's
 * states.py: states are nouns (where the node is), events are verbs (what
 * moves it).
 */
import { EVENT } from '../../common/events.js';

/** Lifecycle states. The groups below are the only lists of them outside the table. */
export const S = {
  /** Known to fleet (declared in fleet.yaml), not verified to be in service. The store's default state. */
  enrolled: 'enrolled',
  /** Installed, configured, in service. */
  ready: 'ready',
  /** Installed and configured, but its reported hardware falls short of its profile's `expect:` (the event says what); out of service until a report meets it again. */
  held: 'held',
  /** A lifecycle step failed; the node rests until an operator acts (the event says which step and why). */
  failed: 'failed',
  /** Reinstall requested: the one-time PXE boot override is being set through the BMC (maybe after a stagger wait). */
  pxeArmed: 'pxe-armed',
  /** Armed; the node is power-cycled and expected to fetch its iPXE install script. */
  powerCycling: 'power-cycling',
  /** The node fetched its iPXE install script; kernel and installer are loading. */
  netbooting: 'netbooting',
  /** The installer fetched its kickstart / reported install-started. */
  installing: 'installing',
  /** The installer reported install-finished; the node was disarmed and the boot device is being set to disk. */
  installed: 'installed',
  /** Boot device is the disk (persistent); waiting for the node's first boot and its agent's boot report. */
  diskArmed: 'disk-armed',
  /**
   * A stateless node's stage 1 reported install-finished: the image is in RAM and
   * stage 1 switched root to it; waiting for its agent's report of a boot from
   * the network image (docs/stateless.md). No disk, no flip.
   */
  imageBooting: 'image-booting',
  /** The agent reported a boot from the local disk (or, stateless, from the network image); its enrolment is being checked. */
  firstBoot: 'first-boot',
  /** The agent applies the profile's roles. */
  configuring: 'configuring',
  /**
   * Adoption of an installed machine (`fleet adopt`, typically one without a
   * BMC): an adoption token was issued; waiting for the admin to run the
   * printed line on the machine and for its agent to enrol.
   */
  adopting: 'adopting',
} as const;

export type LifecycleState = (typeof S)[keyof typeof S];

/** Lifecycle events: verbs. */
export const E = {
  /** Operator: reinstall the node (erases its disk). */
  reinstall: 'reinstall',
  /** Step arm-pxe done: arm the node and power-cycle it. */
  cycle: 'cycle',
  /** The node fetched its iPXE install script. */
  netboot: 'netboot',
  /** The installer fetched its kickstart or reported install-started. */
  install: 'install',
  /** The installer reported install-finished. */
  finish: 'finish',
  /** A stateless node's stage 1 reported install-finished: it switches root into the image in RAM. */
  handover: 'handover',
  /** Step flip-to-disk done: the BMC boots the disk from now on. */
  flip: 'flip',
  /** The agent reported a boot from the local disk. */
  boot: 'boot',
  /** Step check-agent done: the agent enrolled during this install. */
  configure: 'configure',
  /** The agent applied every role. */
  complete: 'complete',
  /** A step failed (after its retries), the installer or agent reported a failure, or the state timed out. */
  fail: 'fail',
  /** The agent's inventory falls short of the profile's `expect:`. */
  hold: 'hold',
  /** The agent's inventory meets the profile's `expect:` again. */
  release: 'release',
  /** Operator: stop the lifecycle and put the node back to rest. */
  cancel: 'cancel',
  /** Operator: adopt an already-installed machine (`fleet adopt`): an adoption token is issued. */
  adopt: 'adopt',
} as const;

export type LifecycleEvent = (typeof E)[keyof typeof E];

/** States in which a node rests: no step runs, no timer. */
export const RESTING_STATES: readonly LifecycleState[] = [S.enrolled, S.ready, S.held, S.failed];

/** States a node passes through; each has a timeout, and `fail` and `cancel` leave every one of them. */
export const TRANSIENT_STATES: readonly LifecycleState[] = [
  S.pxeArmed,
  S.powerCycling,
  S.netbooting,
  S.installing,
  S.installed,
  S.diskArmed,
  S.imageBooting,
  S.firstBoot,
  S.configuring,
  S.adopting,
];

export const ALL_STATES: readonly LifecycleState[] = [...RESTING_STATES, ...TRANSIENT_STATES];

/** Resting states a reinstall must not end in: failed, and held (hardware short of the profile's expect:). */
export const OUT_OF_SERVICE_STATES: readonly LifecycleState[] = [S.failed, S.held];

/** States in which an armed node that netboots is given the installer (netboot/decide.ts). */
export const INSTALL_STATES: readonly LifecycleState[] = [S.pxeArmed, S.powerCycling, S.netbooting, S.installing];

/** States in which the node should boot its disk: a netboot then makes it a boot-loop suspect (netboot/decide.ts). */
export const POST_INSTALL_STATES: readonly LifecycleState[] = [S.installed, S.diskArmed, S.firstBoot];
export const ALL_EVENTS: readonly LifecycleEvent[] = Object.values(E);

/** The happy path of a reinstall, from a resting state back to ready. */
export const REINSTALL_PATH: readonly LifecycleState[] = [
  S.pxeArmed,
  S.powerCycling,
  S.netbooting,
  S.installing,
  S.installed,
  S.diskArmed,
  S.firstBoot,
  S.configuring,
  S.ready,
];

/** The happy path of an adoption, from a resting state to ready: no install, no BMC. */
export const ADOPT_PATH: readonly LifecycleState[] = [S.adopting, S.configuring, S.ready];

/** States a run starts in (history.ts runStart): a reinstall enters pxe-armed, an adoption adopting. */
export const RUN_START_STATES: readonly LifecycleState[] = [S.pxeArmed, S.adopting];

export function isLifecycleState(s: string): s is LifecycleState {
  return (ALL_STATES as readonly string[]).includes(s);
}

export function isLifecycleEvent(s: string): s is LifecycleEvent {
  return (ALL_EVENTS as readonly string[]).includes(s);
}

export function isTransient(s: string): boolean {
  return (TRANSIENT_STATES as readonly string[]).includes(s);
}

export function isResting(s: string): boolean {
  return (RESTING_STATES as readonly string[]).includes(s);
}

/** Steps the conductor runs on entering a state (side effects through the injected Steps, or store checks). */
export const STEP = {
  armPxe: 'arm-pxe',
  powerCycle: 'power-cycle',
  flipToDisk: 'flip-to-disk',
  checkAgent: 'check-agent',
  checkApplied: 'check-applied',
} as const;
export type StepName = (typeof STEP)[keyof typeof STEP];

/** Event kinds the conductor writes besides state.changed (which the store writes with each transition). */
export const LIFECYCLE_EVENT_KINDS = {
  stepStarted: EVENT.stepStarted,
  stepDone: EVENT.stepDone,
  stepFailed: EVENT.stepFailed,
  recovered: EVENT.recovered,
  cleanupFailed: EVENT.cleanupFailed,
  /** Same kind as the boot endpoint's: one flag, whoever saw it. */
  loopSuspect: EVENT.loopSuspect,
} as const;

/** The flag a node carries when it came back to the netboot path after its install (DESIGN §3 layer 4). */
export const BOOT_LOOP_SUSPECT = 'boot-loop-suspect';

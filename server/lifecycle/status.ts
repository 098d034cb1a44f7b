/**
 * `fleet status`: per node, its state, time in state, last event, next
 * timeout, failure (step and reason) and flags (boot-loop-suspect from the
 * events; the store's flags such as bmc-mismatch, with their reasons). Read-only.
 */
import type { EventRecord, NodeRecord, Store } from '../store/index.js';
import { BOOT_LOOP_SUSPECT, LIFECYCLE_EVENT_KINDS as K, RUN_START_STATES, S, isTransient } from './states.js';
import { stateSpec } from './table.js';
import { EVENT } from '../../common/events.js';

export interface NodeStatus {
  name: string;
  profile: string;
  pet: boolean;
  state: string;
  /** When the node entered its state (ISO). */
  since: string;
  inStateSeconds: number;
  armed: boolean;
  /** When the state times out (ISO), null: no timer. */
  deadline: string | null;
  /** Seconds until the timeout (negative: overdue), null: no timer. */
  timeoutInSeconds: number | null;
  /** What a node in a transient state waits for. */
  waitingFor: string | null;
  /** When the current (or last) reinstall started. */
  runStartedAt: string | null;
  lastEvent: { id: number; time: string; kind: string; fromState: string | null; toState: string | null; actor: string } | null;
  /** For failed nodes: which step and why. */
  failure: { step: string; reason: string; time: string } | null;
  /** e.g. boot-loop-suspect: the node came back to the netboot path after its install (cleared by the next reinstall). */
  flags: string[];
  flagReasons: Record<string, string>;
  /** The profile's install method (kickstart, image, stateless); absent when the profile is not in the store. */
  install?: string;
  /** The fleet image the node's agent last reported it runs (its /etc/fleet/image.json), null when none was reported. */
  image?: { name: string; digest: string; install: string; reportedAt: string } | null;
}

/** How far back the flag and run start are looked for. */
const HISTORY = 40;

export async function nodeStatus(store: Store, node: NodeRecord, now: Date = new Date(), profiles?: Map<string, string>): Promise<NodeStatus> {
  const nowMs = now.getTime();
  const [lastPage, histPage, bootPage, install] = await Promise.all([
    store.events.list({ node: node.name, order: 'desc', limit: 1 }),
    store.events.list({ node: node.name, kinds: [EVENT.stateChanged, K.loopSuspect], order: 'desc', limit: HISTORY }),
    store.events.list({ node: node.name, kinds: [EVENT.agentBoot], order: 'desc', limit: 1 }),
    profiles ? Promise.resolve(profiles.get(node.profile)) : store.profiles.get(node.profile).then((p) => p?.os.install),
  ]);
  const boot = bootPage.events[0];
  const reported = (boot?.details as { image?: { name?: unknown; digest?: unknown; install?: unknown } } | null)?.image;
  const image =
    boot && reported && typeof reported.name === 'string' && typeof reported.digest === 'string' && typeof reported.install === 'string'
      ? { name: reported.name, digest: reported.digest, install: reported.install, reportedAt: boot.time }
      : null;
  const last = lastPage.events[0];
  let runStartedAt: string | null = null;
  const flags: string[] = [];
  const flagReasons: Record<string, string> = {};
  let failure: NodeStatus['failure'] = null;
  let latestChange: EventRecord | undefined;
  for (const e of histPage.events) {
    if (e.kind === EVENT.stateChanged) {
      latestChange ??= e;
      if (e.toState !== null && (RUN_START_STATES as readonly string[]).includes(e.toState)) {
        runStartedAt = e.time;
        break;
      }
    } else if (e.kind === K.loopSuspect && !flags.includes(BOOT_LOOP_SUSPECT)) {
      flags.push(BOOT_LOOP_SUSPECT);
      const reason = (e.details as { reason?: unknown } | null)?.reason;
      flagReasons[BOOT_LOOP_SUSPECT] = typeof reason === 'string' ? reason : 'back on the netboot path after its install';
    }
  }
  // A failed node says which step failed; a held one why its hardware keeps it out of service.
  if ((node.state === S.failed || node.state === S.held) && latestChange?.toState === node.state) {
    const d = (latestChange.details ?? {}) as { step?: unknown; reason?: unknown };
    failure = { step: typeof d.step === 'string' ? d.step : 'unknown', reason: typeof d.reason === 'string' ? d.reason : 'unknown', time: latestChange.time };
  }
  const deadlineMs = node.stateDeadline ? Date.parse(node.stateDeadline) : NaN;
  return {
    name: node.name,
    profile: node.profile,
    pet: node.pet,
    state: node.state,
    since: node.stateSince,
    inStateSeconds: Math.max(0, Math.round((nowMs - Date.parse(node.stateSince)) / 1000)),
    armed: node.armed,
    deadline: node.stateDeadline,
    timeoutInSeconds: Number.isFinite(deadlineMs) ? Math.round((deadlineMs - nowMs) / 1000) : null,
    waitingFor: isTransient(node.state) ? (stateSpec(node.state)?.waitsFor ?? null) : null,
    runStartedAt,
    lastEvent: last ? { id: last.id, time: last.time, kind: last.kind, fromState: last.fromState, toState: last.toState, actor: last.actor } : null,
    failure,
    flags,
    flagReasons,
    ...(install !== undefined ? { install } : {}),
    image,
  };
}

/** A status with the node's stored flags (e.g. bmc-mismatch and its reason) added after the lifecycle's. */
export function withStoredFlags(st: NodeStatus, stored: readonly { flag: string; reason: string }[]): NodeStatus {
  const flags = [...st.flags];
  const flagReasons = { ...st.flagReasons };
  for (const f of stored) {
    if (!flags.includes(f.flag)) flags.push(f.flag);
    flagReasons[f.flag] = f.reason;
  }
  return { ...st, flags, flagReasons };
}

/** Statuses of the named nodes (natural order) and the names not in the store. */
export async function nodeStatuses(store: Store, names: string[] | undefined, now: Date = new Date()): Promise<{ nodes: NodeStatus[]; missing: string[] }> {
  const nodes = await store.nodes.list(names ? { names } : {});
  const found = new Set(nodes.map((n) => n.name));
  // The store's flags (bmc-mismatch, raised by reconciliation) beside the lifecycle's own.
  const stored = await store.flags.byNode(nodes.map((n) => n.name));
  const profiles = new Map((await store.profiles.list()).map((p) => [p.name, p.os.install]));
  const out: NodeStatus[] = [];
  for (const n of nodes) out.push(withStoredFlags(await nodeStatus(store, n, now, profiles), stored.get(n.name) ?? []));
  return { nodes: out, missing: names ? names.filter((n) => !found.has(n)) : [] };
}

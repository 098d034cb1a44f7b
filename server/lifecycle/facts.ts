/**
 * From facts to lifecycle events, as data. The outside world reports facts
 * (the boot endpoints' and the agent service's event kinds, catalogued in
 * common/events.ts); `FACT_RULES` says, like the transition table, what a
 * fact seen in a state means: a table event with the details it carries, or
 * why it is ignored, and whether it raises a flag. `eventForFact` reads the
 * table (first matching row wins). Pure.
 *
 * The conductor reads the same facts back from the event log when it catches
 * up after a restart (recovery), so a fact's details are its event row's.
 * docs/lifecycle.md's fact table is generated from these rows (doc.ts).
 */
import { EVENT } from '../../common/events.js';
import { BOOT_LOOP_SUSPECT, E, S, type LifecycleEvent, type LifecycleState } from './states.js';

/** The event kinds the lifecycle acts on (a subset of the catalogue). */
export const FACT = {
  scriptFetched: EVENT.scriptFetched,
  kickstartFetched: EVENT.kickstartFetched,
  planFetched: EVENT.planFetched,
  loopSuspect: EVENT.loopSuspect,
  installStarted: EVENT.installStarted,
  installFailed: EVENT.installFailed,
  installFinished: EVENT.installFinished,
  agentEnrolled: EVENT.agentEnrolled,
  agentBoot: EVENT.agentBoot,
  agentApplied: EVENT.agentApplied,
  agentApplyFailed: EVENT.agentApplyFailed,
  agentInventory: EVENT.agentInventory,
} as const;
export type FactKind = (typeof FACT)[keyof typeof FACT];
export const FACT_KINDS: readonly string[] = Object.values(FACT);

export function isFactKind(k: string): k is FactKind {
  return FACT_KINDS.includes(k);
}

export type Details = Record<string, unknown>;
export interface Flag {
  name: string;
  reason: string;
}

export type Translation = { event: LifecycleEvent; details: Details; flag?: Flag } | { ignore: string; flag?: Flag };

export type FirmwareVia = 'network' | 'disk' | 'other' | 'unknown' | 'legacy';

/**
 * What the agent's boot report says about how the node booted: the agent
 * service assesses the report (server/agents/boot.ts) and the agent.boot
 * fact carries it; the rules below read it back (from the event row too,
 * so every field may be missing: they read it as Partial).
 */
export interface BootAssessment {
  /** / is on a local block device (not NFS, tmpfs, overlay, a ramdisk). */
  rootOnLocalDisk: boolean;
  /** The EFI entry the firmware booted (BootCurrent), when known. */
  firmwareEntry: { id: string; label: string } | null;
  /** What that entry looks like: network (PXE/HTTP boot), disk, other; legacy when no EFI data. */
  firmwareVia: FirmwareVia;
  /** BootNext still set after booting: a one-time override is pending for the next boot. */
  bootNextPending: string | null;
  /** Whether BootOrder puts a network entry before the first disk entry. */
  networkFirst: boolean | null;
  notes: string[];
}

export interface FactRule {
  fact: FactKind;
  /** States the row applies in; absent: every state. */
  in?: readonly LifecycleState[];
  /** A further condition on the fact's details (read as `when` in the doc). */
  when?: { test: (d: Details) => boolean; says: string };
  /** The table event fired, and the details it carries from the fact... */
  event?: LifecycleEvent;
  details?: (d: Details) => Details;
  /** ...or why the fact does not move the node. */
  ignore?: (state: string, d: Details) => string;
  /** A flag raised on the node (with or without an event); undefined: none. */
  flag?: (d: Details) => Flag | undefined;
  why: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function pick(keys: string[]): (d: Details) => Details {
  return (d) => {
    const out: Details = {};
    for (const k of keys) if (d[k] !== undefined) out[k] = d[k];
    return out;
  };
}

const assessment = (d: Details): Partial<BootAssessment> => (d.assessment ?? {}) as Partial<BootAssessment>;
const bootIdOf = (d: Details): Details => {
  const id = str(d.bootId);
  return id ? { bootId: id } : {};
};
const notAwaited = (kind: string) => (state: string) => `${kind} in ${state} is not awaited`;
const applyReadLater = (state: string) => `an apply report in ${state} is read when configuring starts`;

/** One line from an install-failed report: its message, else the last non-empty log line. */
export function installFailureReason(details: Details): string {
  const who = isStateless(details) ? 'stage 1 failed' : 'installer failed';
  const msg = str(details.message);
  if (msg) return `${who}: ${msg.slice(0, 300)}`;
  const log = str(details.log);
  if (log) {
    const last = log
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1);
    if (last) return `${who}: ${last.slice(0, 300)}`;
  }
  return isStateless(details) ? 'stage 1 reported a failure (no log)' : 'the installer reported a failure (no log)';
}

/** The boot endpoints mark the callbacks of a stateless node's stage 1 with method: stateless. */
const isStateless = (d: Details): boolean => d.method === 'stateless' || d.method === 'diskless';
const STATELESS = { test: isStateless, says: 'from a stateless boot' };

export function applyFailureReason(details: Details): string {
  const failed = Array.isArray(details.failed) ? details.failed.filter((x): x is string => typeof x === 'string') : [];
  const results = Array.isArray(details.results) ? (details.results as { role?: unknown; outcome?: unknown; message?: unknown }[]) : [];
  const firstMsg = results.find((r) => r.outcome === 'failed' && typeof r.message === 'string' && r.message !== '');
  const msg = firstMsg ? `: ${String(firstMsg.role)}: ${String(firstMsg.message).slice(0, 200)}` : '';
  return failed.length ? `roles failed: ${failed.join(', ')}${msg}` : `the agent reported a failed apply${msg}`;
}

/** The `expect` assessment an inventory or apply report carries (ExpectAssessment, common/inventory/expect.ts). */
function expectOf(d: Details): { status?: unknown; reason?: unknown } {
  return d.expect && typeof d.expect === 'object' ? (d.expect as { status?: unknown; reason?: unknown }) : {};
}
const expectIs = (status: string) => (d: Details) => expectOf(d).status === status;
const holdDetails = (d: Details): Details => ({ step: 'expect', reason: str(expectOf(d).reason) ?? 'hardware short of profile' });

const loopFlag = (d: Details): Flag => ({ name: BOOT_LOOP_SUSPECT, reason: str(d.reason) ?? 'back on the netboot path' });

/** First-boot flag: the firmware came through its network entry although the boot device was set to disk. */
function networkEntryFlag(d: Details): Flag | undefined {
  const a = assessment(d);
  if (a.firmwareVia !== 'network') return undefined;
  const entry = a.firmwareEntry ? ` ${a.firmwareEntry.id ?? ''} (${a.firmwareEntry.label ?? ''})` : '';
  return {
    name: BOOT_LOOP_SUSPECT,
    reason: `the first boot came through the network entry${entry} although the boot device was set to disk: the firmware ignores it; only the armed flag keeps the node from reinstalling`,
  };
}

const INSTALL_PATH: readonly LifecycleState[] = [S.powerCycling, S.netbooting, S.installing];

/** The rules, one per line; for each fact the first row that matches (state, then `when`) wins. */
export const FACT_RULES: readonly FactRule[] = [
  // --- iPXE fetched its script (details.decision is the boot decision served)
  { fact: FACT.scriptFetched, when: { test: (d) => d.flag === BOOT_LOOP_SUSPECT, says: 'flagged boot-loop-suspect' }, ignore: (s) => `netboot while not armed in ${s}: flagged, not reinstalled`, flag: loopFlag, why: 'a node back on the netboot path after its install is flagged, never reinstalled' },
  { fact: FACT.scriptFetched, when: { test: (d) => d.decision !== 'install', says: 'decision is not install' }, ignore: (_s, d) => `script ${String(d.decision ?? 'unknown')} does not move the lifecycle`, why: 'only an install script moves a node' },
  { fact: FACT.scriptFetched, in: [S.powerCycling, S.netbooting], event: E.netboot, details: pick(['mac', 'ip', 'platform', 'profile']), why: 'the power-cycled node fetched its install script' },
  { fact: FACT.scriptFetched, ignore: (s) => `an install script in ${s} is not awaited`, why: 'an install script is awaited only after the power cycle' },
  // --- the installer
  { fact: FACT.kickstartFetched, in: [S.netbooting, S.installing], event: E.install, details: pick(['ip']), why: 'the installer runs' },
  { fact: FACT.kickstartFetched, ignore: notAwaited(FACT.kickstartFetched), why: 'a kickstart is awaited only while netbooting or installing' },
  { fact: FACT.planFetched, in: [S.netbooting, S.installing], event: E.install, details: pick(['ip']), why: 'the boot environment runs the install' },
  { fact: FACT.planFetched, ignore: notAwaited(FACT.planFetched), why: 'an install plan is awaited only while netbooting or installing' },
  { fact: FACT.installStarted, in: [S.netbooting, S.installing], event: E.install, details: pick(['ip']), why: 'the installer runs' },
  { fact: FACT.installStarted, ignore: notAwaited(FACT.installStarted), why: 'install-started is awaited only while netbooting or installing' },
  { fact: FACT.installFailed, in: INSTALL_PATH, event: E.fail, details: (d) => ({ step: 'install', reason: installFailureReason(d) }), why: 'the installer gave up: fail with its last words' },
  { fact: FACT.installFailed, in: [S.enrolled, S.ready, S.held], when: STATELESS, event: E.fail, details: (d) => ({ step: 'stateless', reason: installFailureReason(d) }), why: 'a stateless node rebooted and its stage 1 failed (its image did not verify): it runs nothing' },
  { fact: FACT.installFailed, ignore: notAwaited(FACT.installFailed), why: 'an install failure outside an install is stale' },
  { fact: FACT.installFinished, in: [S.installing], when: STATELESS, event: E.handover, details: pick(['ip', 'digest']), why: 'stage 1 has the image in RAM and switches root to it: no disk to flip' },
  { fact: FACT.installFinished, in: [S.installing], event: E.finish, details: pick(['ip']), why: 'the install finished: disarm and flip to disk' },
  { fact: FACT.installFinished, ignore: notAwaited(FACT.installFinished), why: 'install-finished counts only while installing' },
  // --- the agent on the installed system
  { fact: FACT.agentBoot, in: [S.diskArmed], when: { test: (d) => d.isNewBoot === false, says: 'the same boot again' }, ignore: () => 'a repeated boot report', why: 'one boot, one report' },
  { fact: FACT.agentBoot, in: [S.diskArmed], when: { test: (d) => assessment(d).rootOnLocalDisk !== true, says: 'root not on a local disk' }, event: E.fail, details: (d) => {
    const a = assessment(d);
    const notes = Array.isArray(a.notes) && a.notes.length ? `: ${a.notes.join('; ')}` : '';
    return { step: 'first-boot', reason: `the first boot did not run from the local disk${notes}`, ...bootIdOf(d) };
  }, why: 'the node booted, but not the system just installed' },
  { fact: FACT.agentBoot, in: [S.diskArmed], event: E.boot, details: (d) => ({ ...bootIdOf(d), firmwareVia: assessment(d).firmwareVia ?? 'unknown' }), flag: networkEntryFlag, why: 'the first boot from the local disk (a network firmware entry is flagged)' },
  { fact: FACT.agentBoot, in: [S.imageBooting], when: { test: (d) => d.isNewBoot === false, says: 'the same boot again' }, ignore: () => 'a repeated boot report', why: 'one boot, one report' },
  { fact: FACT.agentBoot, in: [S.imageBooting], when: { test: (d) => assessment(d).rootOnLocalDisk === true, says: 'root on a local disk' }, event: E.fail, details: (d) => ({ step: 'image-boot', reason: 'the stateless node booted a system on its local disk, not the network image (fix the boot order: network first)', ...bootIdOf(d) }), why: 'a stateless node runs from RAM, never from a disk' },
  { fact: FACT.agentBoot, in: [S.imageBooting], event: E.boot, details: (d) => ({ ...bootIdOf(d), firmwareVia: assessment(d).firmwareVia ?? 'unknown' }), why: 'the stateless image runs and its agent reported' },
  { fact: FACT.agentBoot, ignore: (s) => `a boot report in ${s} does not move the lifecycle`, why: 'boot reports matter only after the flip to disk or the handover to a stateless image' },
  { fact: FACT.agentApplied, in: [S.configuring], when: { test: expectIs('short'), says: "its inventory falls short of the profile's expect" }, event: E.hold, details: holdDetails, why: 'every role applied, but the hardware falls short: held, not in service' },
  { fact: FACT.agentApplied, in: [S.configuring], event: E.complete, details: pick(['version']), why: 'every role applied: in service' },
  { fact: FACT.agentApplied, ignore: applyReadLater, why: 'check-applied reads the last report when configuring starts' },
  { fact: FACT.agentApplyFailed, in: [S.configuring], event: E.fail, details: (d) => ({ step: 'configure', reason: applyFailureReason(d) }), why: 'a role failed' },
  { fact: FACT.agentApplyFailed, ignore: applyReadLater, why: 'check-applied reads the last report when configuring starts' },
  { fact: FACT.agentEnrolled, in: [S.adopting], event: E.configure, details: pick(['peer']), why: 'an adopted machine\'s agent enrolled with its adoption token: it applies its roles' },
  { fact: FACT.agentEnrolled, ignore: () => 'enrolment is checked at the first boot', why: 'check-agent reads the enrolment' },
  // --- the agent's inventory against the profile's expect: (USER-STORIES Day 3)
  { fact: FACT.agentInventory, in: [S.ready, S.held], when: { test: expectIs('short'), says: "it falls short of the profile's expect" }, event: E.hold, details: holdDetails, why: 'a node in service whose hardware falls short is held' },
  { fact: FACT.agentInventory, in: [S.held], when: { test: expectIs('met'), says: "it meets the profile's expect" }, event: E.release, details: (d) => ({ step: 'expect', reason: str(expectOf(d).reason) ?? 'hardware meets profile' }), why: 'the hardware meets the profile again: back in service' },
  { fact: FACT.agentInventory, ignore: (s) => `an inventory report in ${s} does not move the lifecycle`, why: "only a report judged against the profile's expect moves a ready or held node (configuring reads it with the apply report)" },
  { fact: FACT.loopSuspect, ignore: () => 'flag recorded by the boot endpoint', flag: loopFlag, why: 'the flag is raised, nothing moves' },
];

/** What a fact seen in a state means (first matching rule), or why it is ignored. */
export function eventForFact(state: string, kind: string, details: Details = {}): Translation {
  for (const r of FACT_RULES) {
    if (r.fact !== kind) continue;
    if (r.in && !(r.in as readonly string[]).includes(state)) continue;
    if (r.when && !r.when.test(details)) continue;
    const flag = r.flag?.(details);
    const withFlag = flag ? { flag } : {};
    if (r.event !== undefined) return { event: r.event, details: r.details ? r.details(details) : {}, ...withFlag };
    return { ignore: r.ignore ? r.ignore(state, details) : `${kind} is ignored`, ...withFlag };
  }
  return { ignore: `unknown signal ${kind}` };
}

/** A fact kind ignored in every state (the conductor answers without reading the node). */
export function ignoredEverywhere(kind: string): boolean {
  const rows = FACT_RULES.filter((r) => r.fact === kind);
  return rows.length > 0 && rows.every((r) => r.event === undefined && !r.in && !r.when);
}

/** Self-check of the table, like checkTable(): every fact has a last row that catches every state. */
export function checkFactRules(): string[] {
  const problems: string[] = [];
  for (const f of FACT_KINDS) {
    const rows = FACT_RULES.filter((r) => r.fact === f);
    const last = rows.at(-1);
    if (!last) problems.push(`fact ${f} has no rule`);
    else if (last.in || last.when) problems.push(`fact ${f}: its last rule is conditional, so some states fall through`);
  }
  for (const r of FACT_RULES) {
    if ((r.event === undefined) === (r.ignore === undefined)) problems.push(`fact ${r.fact}: a rule must either fire an event or say why it ignores (${r.why})`);
  }
  return problems;
}

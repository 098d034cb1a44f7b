/**
 * From facts to lifecycle events. The outside world reports facts (the boot
 * endpoints' and the agent service's event kinds); `eventForSignal` turns a
 * fact seen in a state into a table event, or says why it is ignored. Pure.
 *
 * The same function reads the facts back from the event log when the
 * conductor catches up after a restart (recovery), so the signal details are
 * the event rows' details.
 */
import { BOOT_LOOP_SUSPECT, E, S, type LifecycleEvent } from './states.js';

export const SIGNAL = {
  scriptFetched: 'boot.script_fetched',
  kickstartFetched: 'boot.kickstart_fetched',
  loopSuspect: 'boot.loop_suspect',
  installStarted: 'install.started',
  installFailed: 'install.failed',
  installFinished: 'install.finished',
  agentEnrolled: 'agent.enrolled',
  agentBoot: 'agent.boot',
  agentApplied: 'agent.applied',
  agentApplyFailed: 'agent.apply_failed',
} as const;
export type SignalKind = (typeof SIGNAL)[keyof typeof SIGNAL];
export const SIGNAL_KINDS: readonly string[] = Object.values(SIGNAL);

export function isSignalKind(k: string): k is SignalKind {
  return SIGNAL_KINDS.includes(k);
}

export type Translation =
  | { event: LifecycleEvent; details: Record<string, unknown>; flag?: { name: string; reason: string } }
  | { ignore: string; flag?: { name: string; reason: string } };

interface Assessment {
  rootOnLocalDisk?: boolean;
  firmwareVia?: string;
  firmwareEntry?: { id?: string; label?: string } | null;
  notes?: string[];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** One line from an install-failed report: its message, else the last non-empty log line. */
export function installFailureReason(details: Record<string, unknown>): string {
  const msg = str(details.message);
  if (msg) return `installer failed: ${msg.slice(0, 300)}`;
  const log = str(details.log);
  if (log) {
    const last = log
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1);
    if (last) return `installer failed: ${last.slice(0, 300)}`;
  }
  return 'the installer reported a failure (no log)';
}

/** The facts a state waits for, and what they mean there. */
export function eventForSignal(state: string, kind: string, details: Record<string, unknown> = {}): Translation {
  switch (kind) {
    case SIGNAL.scriptFetched: {
      const decision = details.decision;
      if (details.flag === BOOT_LOOP_SUSPECT) {
        return { ignore: `netboot while not armed in ${state}: flagged, not reinstalled`, flag: { name: BOOT_LOOP_SUSPECT, reason: str(details.reason) ?? 'back on the netboot path' } };
      }
      if (decision !== 'install') return { ignore: `script ${String(decision ?? 'unknown')} does not move the lifecycle` };
      if (state === S.powerCycling || state === S.netbooting) return { event: E.netboot, details: pick(details, ['mac', 'ip', 'platform', 'profile']) };
      return { ignore: `an install script in ${state} is not awaited` };
    }
    case SIGNAL.kickstartFetched:
    case SIGNAL.installStarted:
      if (state === S.netbooting || state === S.installing) return { event: E.install, details: pick(details, ['ip']) };
      return { ignore: `${kind} in ${state} is not awaited` };
    case SIGNAL.installFailed:
      if (state === S.powerCycling || state === S.netbooting || state === S.installing) {
        return { event: E.fail, details: { step: 'install', reason: installFailureReason(details) } };
      }
      return { ignore: `${kind} in ${state} is not awaited` };
    case SIGNAL.installFinished:
      if (state === S.installing) return { event: E.finish, details: pick(details, ['ip']) };
      return { ignore: `${kind} in ${state} is not awaited` };
    case SIGNAL.agentBoot: {
      if (state !== S.diskArmed) return { ignore: `a boot report in ${state} does not move the lifecycle` };
      if (details.isNewBoot === false) return { ignore: 'a repeated boot report' };
      const a = (details.assessment ?? {}) as Assessment;
      const bootId = str(details.bootId);
      if (a.rootOnLocalDisk !== true) {
        const notes = Array.isArray(a.notes) && a.notes.length ? `: ${a.notes.join('; ')}` : '';
        return { event: E.fail, details: { step: 'first-boot', reason: `the first boot did not run from the local disk${notes}`, ...(bootId ? { bootId } : {}) } };
      }
      const out: Translation = { event: E.boot, details: { ...(bootId ? { bootId } : {}), firmwareVia: a.firmwareVia ?? 'unknown' } };
      if (a.firmwareVia === 'network') {
        const entry = a.firmwareEntry ? ` ${a.firmwareEntry.id ?? ''} (${a.firmwareEntry.label ?? ''})` : '';
        out.flag = {
          name: BOOT_LOOP_SUSPECT,
          reason: `the first boot came through the network entry${entry} although the boot device was set to disk: the firmware ignores it; only the armed flag keeps the node from reinstalling`,
        };
      }
      return out;
    }
    case SIGNAL.agentApplied:
      if (state === S.configuring) return { event: E.complete, details: pick(details, ['version']) };
      return { ignore: `an apply report in ${state} is read when configuring starts` };
    case SIGNAL.agentApplyFailed:
      if (state === S.configuring) return { event: E.fail, details: { step: 'configure', reason: applyFailureReason(details) } };
      return { ignore: `an apply report in ${state} is read when configuring starts` };
    case SIGNAL.agentEnrolled:
      return { ignore: 'enrolment is checked at the first boot' };
    case SIGNAL.loopSuspect:
      return { ignore: 'flag recorded by the boot endpoint', flag: { name: BOOT_LOOP_SUSPECT, reason: str(details.reason) ?? 'back on the netboot path' } };
    default:
      return { ignore: `unknown signal ${kind}` };
  }
}

export function applyFailureReason(details: Record<string, unknown>): string {
  const failed = Array.isArray(details.failed) ? details.failed.filter((x): x is string => typeof x === 'string') : [];
  const results = Array.isArray(details.results) ? (details.results as { role?: unknown; outcome?: unknown; message?: unknown }[]) : [];
  const firstMsg = results.find((r) => r.outcome === 'failed' && typeof r.message === 'string' && r.message !== '');
  const msg = firstMsg ? `: ${String(firstMsg.role)}: ${String(firstMsg.message).slice(0, 200)}` : '';
  return failed.length ? `roles failed: ${failed.join(', ')}${msg}` : `the agent reported a failed apply${msg}`;
}

function pick(d: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (d[k] !== undefined) out[k] = d[k];
  return out;
}

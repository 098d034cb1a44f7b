/**
 * The one rule that decides whether a failed BMC action may be sent again
 * (issue 9 item 4). The fan-out, the provider registry's fallback and the
 * lifecycle conductor all ask `mayRetry`; nothing else decides.
 *
 * - Reads (power status, boot device, identity) have no effect: retried on
 *   any transient error.
 * - Idempotent sets (power on, boot device set) give the same end state when
 *   sent twice: retried on any transient error.
 * - Actions that must run at most once (power off, soft, cycle, reset): never
 *   retried after an error where the request may have landed (a timeout, an
 *   unreadable answer, a dropped connection). Only an error that proves the
 *   action did not run (`markNotRun`: the BMC refused it with a completion
 *   code, or the failure came before it was sent) lets it be tried again.
 *
 * Pure: no I/O, no clock.
 */
import { FleetError, toFleetError, type ErrorCode } from '../../common/errors.js';

export type BmcAction = 'power.status' | 'power.on' | 'power.off' | 'power.soft' | 'power.cycle' | 'power.reset' | 'bootdev.set' | 'bootdev.get' | 'info';

export type ActionKind = 'read' | 'idempotent' | 'once';

export const ACTION_KIND: Readonly<Record<BmcAction, ActionKind>> = {
  'power.status': 'read',
  'bootdev.get': 'read',
  info: 'read',
  'power.on': 'idempotent',
  'bootdev.set': 'idempotent',
  'power.off': 'once',
  'power.soft': 'once',
  'power.cycle': 'once',
  'power.reset': 'once',
};

/** Errors after which the BMC may answer next time. A wrong password, a TLS mismatch or an unsupported verb will not change. */
export const TRANSIENT_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['bmc.timeout', 'bmc.protocol', 'bmc.command_failed', 'unavailable']);

interface NotRunDetails {
  /** The action provably did not run: refused by the BMC, or the failure came before it was sent. */
  notRun: true;
}

interface UnconfirmedDetails {
  /** The action was sent once, its answer never came, and it was not sent again. */
  unconfirmed: true;
  /** What the BMC showed when read back afterwards (null: the read failed too). */
  readBack: { power: 'on' | 'off' | null; error?: string };
}

function detailsOf(e: FleetError): Record<string, unknown> {
  return e.details !== null && typeof e.details === 'object' && !Array.isArray(e.details) ? (e.details as Record<string, unknown>) : {};
}

/** The same error, marked as proof that the action did not run. */
export function markNotRun(e: FleetError): FleetError {
  if (provedNotRun(e)) return e;
  const details: NotRunDetails & Record<string, unknown> = { ...detailsOf(e), notRun: true };
  return new FleetError(e.code, e.message, details, { cause: e });
}

export function provedNotRun(e: unknown): boolean {
  return e instanceof FleetError && detailsOf(e).notRun === true;
}

/** An error saying a once-only action got no answer, was not resent, and what the read-back showed. */
export function unconfirmedError(message: string, readBack: UnconfirmedDetails['readBack']): FleetError {
  const details: UnconfirmedDetails = { unconfirmed: true, readBack };
  return new FleetError('bmc.timeout', message, details);
}

export function unconfirmedOf(e: unknown): UnconfirmedDetails['readBack'] | undefined {
  if (!(e instanceof FleetError)) return undefined;
  const d = detailsOf(e);
  return d.unconfirmed === true ? (d.readBack as UnconfirmedDetails['readBack']) : undefined;
}

/**
 * Whether `action`, having failed with `error`, may be sent again (by a
 * retry, a fallback provider or the lifecycle). Bounds on how often are the
 * caller's; this only says whether at all.
 */
export function mayRetry(action: BmcAction, error: unknown): boolean {
  const e = toFleetError(error);
  if (!TRANSIENT_ERRORS.has(e.code)) return false;
  if (ACTION_KIND[action] !== 'once') return true;
  return provedNotRun(e) && !unconfirmedOf(e);
}

/** The registry's fallback: another provider is tried only for errors it could fix, and only where resending is allowed. */
export function mayFallBack(action: BmcAction, error: unknown): boolean {
  const e = toFleetError(error);
  if (e.code !== 'bmc.protocol' && e.code !== 'bmc.unsupported') return false;
  if (ACTION_KIND[action] !== 'once') return true;
  // "unsupported" from a provider means it refused before sending anything (no such verb or no IPMI 2.0).
  return e.code === 'bmc.unsupported' || provedNotRun(e);
}

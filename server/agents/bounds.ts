/**
 * Bounds on what an agent sends: every free-text field is cut to a size the
 * store and the logs can carry, whatever the message size limit let through.
 */
export const MAX_MACS = 64;
export const MAX_FIELD = 256;
export const MAX_TEXT = 4096;

export function short(s: string, max = MAX_FIELD): string {
  return s.length > max ? s.slice(0, max) : s;
}

/** An agent's millisecond timestamp as ISO text; null when absent (0) or out of range. */
export function isoFromMs(ms: number): string | null {
  if (!Number.isFinite(ms) || ms <= 0 || ms > 8.64e15) return null;
  return new Date(ms).toISOString();
}

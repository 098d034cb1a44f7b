/**
 * Exponential backoff with full jitter, and an abortable sleep. Pure apart
 * from the timer.
 */
export interface BackoffOptions {
  /** First delay. Default 1000 ms. */
  initialMs?: number;
  /** Ceiling. Default 30 000 ms. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Random source in [0, 1) (tests pin it). Default Math.random. */
  random?: () => number;
}

/** Delay before retry number `attempt` (0-based): uniform in [d/2, d], d = min(max, initial * factor^attempt). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const d = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  const r = (opts.random ?? Math.random)();
  return Math.round(d / 2 + (d / 2) * r);
}

/** Resolves after ms, or at once (with false) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The one exponential backoff (the agent's retries with full jitter; the BMC
 * fan-out, the lifecycle steps and the dnsmasq supervisor without), and an
 * abortable sleep. Pure apart from the timer.
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

/** Delay before retry number `attempt` (0-based), without jitter: min(max, initial * factor^attempt). Defaults: factor 2, no ceiling. */
export function exponentialDelay(attempt: number, opts: { initialMs: number; maxMs?: number; factor?: number }): number {
  return Math.min(opts.maxMs ?? Infinity, opts.initialMs * Math.pow(opts.factor ?? 2, Math.max(0, attempt)));
}

/** Delay before retry number `attempt` (0-based) with full jitter: uniform in [d/2, d], d = exponentialDelay (defaults 1 s, 30 s, ×2). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const d = exponentialDelay(attempt, { initialMs: opts.initialMs ?? 1000, maxMs: opts.maxMs ?? 30_000, factor: opts.factor ?? 2 });
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

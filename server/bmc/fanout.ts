/**
 * The fan-out runner: one BMC operation applied to many nodes.
 *
 * - a global concurrency limit (default 64) across all nodes;
 * - one operation at a time per BMC: targets sharing a `bmcKey` queue up in
 *   the server's BmcQueue (shared with the lifecycle) or, without one, in a
 *   queue of this fan-out;
 * - a timeout per attempt, after which the attempt is abandoned (the caller's
 *   `abort` hook closes the driver) and counted as bmc.timeout;
 * - bounded retries with exponential backoff, only where the caller's
 *   `retryable` rule allows (bmc/operation.ts passes retry.ts's `mayRetry` for its
 *   action: a timed-out reset is never sent again; a wrong password is never
 *   retried: it would only lock the account);
 * - optional staggering: at most N attempts *start* per interval (PDU inrush),
 *   both bounded (parseStagger: N <= 100,000, interval <= 1 h);
 * - an optional AbortSignal (the server's shutdown): once aborted, no attempt
 *   starts, stagger and backoff waits end at once, attempts in flight are
 *   abandoned (their driver closed, never resent) and every node not done
 *   reports the abort's reason;
 * - a per-node result table, each result also handed to `onResult` as it
 *   lands; one node's failure never affects another's.
 *
 * It knows nothing of protocols or the store: the operation is a function.
 */
import { exponentialDelay } from '../../common/backoff.js';
import { parseDurationMs } from '../../common/duration.js';
import { FleetError, toFleetError, type ErrorCode } from '../../common/errors.js';
import { BmcQueue } from './queue.js';
import { TRANSIENT_ERRORS } from './retry.js';

export interface FanoutTarget {
  node: string;
  /** Identity of the BMC (e.g. "10.10.103.1:623"): operations on one key never overlap. */
  bmcKey: string;
}

export interface Stagger {
  /** At most `count` starts ... */
  count: number;
  /** ... per this many milliseconds. */
  intervalMs: number;
}

export interface FanoutOptions {
  concurrency?: number;
  /** Per attempt. Default 20 s. */
  timeoutMs?: number;
  /** Extra attempts after the first. Default 2. */
  retries?: number;
  /** First backoff; doubles each retry. Default 500 ms. */
  backoffMs?: number;
  stagger?: Stagger;
  /**
   * Whether a failed attempt may be made again (retry.ts `mayRetry` for the
   * operation's action). Default: transient errors only, which is right for
   * reads and idempotent sets and wrong for once-only actions: operation.ts
   * always passes the rule for its action.
   */
  retryable?: (error: FleetError) => boolean;
  /**
   * How long an attempt abandoned at its timeout may keep its BMC (and its
   * concurrency slot) while its driver winds down. Default max(timeoutMs, 30 s).
   */
  settleMs?: number;
  /** The per-BMC queue shared across the server; default a queue of this fan-out only. */
  queue?: BmcQueue;
  /** Called once per node as its result lands (before the whole fan-out ends), outside the BMC's queue slot. */
  onResult?: (result: NodeResult<unknown>) => Promise<void> | void;
  /** Aborts the fan-out (see the file comment); a FleetError reason is what unfinished nodes report. */
  signal?: AbortSignal;
  /** Injected for tests. Given the fan-out's signal: a sleep should end (and free its timer) when it aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface AttemptRecord {
  /** Which provider answered or failed (ipmi, redfish, ipmitool), as reported by the operation. */
  provider: string;
  durationMs: number;
  outcome: 'ok' | ErrorCode;
  message?: string;
}

export interface NodeResult<T> {
  node: string;
  ok: boolean;
  value?: T;
  error?: { code: ErrorCode; message: string; details?: unknown };
  attempts: AttemptRecord[];
  durationMs: number;
}

/** What one attempt of an operation returns: its value and the provider that produced it. */
export interface OpOutcome<T> {
  value: T;
  provider: string;
  /** Attempts made inside (e.g. provider fallbacks), recorded before this one. */
  inner?: AttemptRecord[];
}

export interface OpContext {
  attempt: number;
  signal: AbortSignal;
}

export type FanoutOp<T> = (target: FanoutTarget, ctx: OpContext) => Promise<OpOutcome<T>>;

const defaultRetryable = (e: FleetError): boolean => TRANSIENT_ERRORS.has(e.code);

/** setTimeout as a promise; an abort clears the timer, so a stopped server is not kept alive by an hour-long stagger wait. */
const realSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Largest N of a stagger: more starts per interval than the largest nodeset is no stagger at all. */
export const MAX_STAGGER_COUNT = 100_000;
/** Longest stagger interval: 1 hour. */
export const MAX_STAGGER_INTERVAL_MS = 3_600_000;

/** The error a fan-out aborted by `signal` reports. */
export function abortError(signal: AbortSignal): FleetError {
  const r: unknown = signal.reason;
  return r instanceof FleetError ? r : new FleetError('unavailable', 'the operation was cancelled');
}

/** Resolves when `p` settles or rejects with abortError as soon as `signal` aborts. */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/** A counting semaphore. */
class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/** Hands out start slots: at most `count` per `intervalMs`, in request order. */
export class StaggerGate {
  private readonly starts: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly s: Stagger,
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
    private readonly now: () => number,
  ) {
    checkStagger(s);
  }
  /** Waits for a start slot; rejects with abortError when `signal` aborts first. */
  slot(signal?: AbortSignal): Promise<void> {
    const mine = this.chain.then(async () => {
      // Bounded: each pass either takes a slot or sleeps until the oldest start leaves the window.
      for (let pass = 0; pass < 1_000_000; pass++) {
        if (signal?.aborted) throw abortError(signal);
        const t = this.now();
        while (this.starts.length && this.starts[0]! <= t - this.s.intervalMs) this.starts.shift();
        if (this.starts.length < this.s.count) {
          this.starts.push(t);
          return;
        }
        await unlessAborted(this.sleep(Math.max(1, this.starts[0]! + this.s.intervalMs - t), signal), signal);
      }
      throw new FleetError('internal', 'stagger gate: no slot after a million waits');
    });
    // The next caller waits for this one to be served, whether it got its slot or was aborted.
    this.chain = mine.catch(() => undefined);
    return mine;
  }
}

/** Throws usage.invalid unless 1 <= count <= MAX_STAGGER_COUNT and 0 <= intervalMs <= MAX_STAGGER_INTERVAL_MS. */
export function checkStagger(s: Stagger, text = `${s.count}/${s.intervalMs}ms`): void {
  if (!Number.isInteger(s.count) || s.count < 1 || s.count > MAX_STAGGER_COUNT) {
    throw new FleetError('usage.invalid', `bad --stagger '${text}': N must be a whole number from 1 to ${MAX_STAGGER_COUNT}`);
  }
  if (!Number.isFinite(s.intervalMs) || s.intervalMs < 0 || s.intervalMs > MAX_STAGGER_INTERVAL_MS) {
    throw new FleetError('usage.invalid', `bad --stagger '${text}': the interval must be from 0 to 1 hour (60m, 3600s)`);
  }
}

/**
 * Parses "10/2s", "5/500ms", "10/2" (seconds), "1/5m" into a Stagger; N <= 100,000, interval <= 1 h.
 * The interval is read by common/duration (units ms, s, m; a bare number is seconds); the
 * shape is bounded first (N up to 6 digits, the interval up to 24 characters, no spaces).
 */
export function parseStagger(text: string): Stagger {
  const m = /^(\d{1,6})\/(\S{1,24})$/.exec(text.trim());
  const intervalMs = m ? parseDurationMs(m[2]!, { defaultUnit: 's', units: STAGGER_UNITS }) : undefined;
  if (!m || intervalMs === undefined) throw new FleetError('usage.invalid', `bad --stagger '${text.slice(0, 40)}' (expected N/INTERVAL, e.g. 10/2s)`);
  const s = { count: Number(m[1]), intervalMs };
  checkStagger(s, text.trim());
  return s;
}

const STAGGER_UNITS = ['ms', 's', 'm'] as const;

/** Waits until `p` settles or `ms` pass, whichever comes first; never throws. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.then(() => undefined, () => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

async function withTimeout<T>(p: Promise<T>, ms: number, ctl: AbortController, label: string, outer?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Reject first so the race reports the timeout, not whatever the aborted operation throws.
      reject(new FleetError('bmc.timeout', `${label}: no answer within ${ms} ms`));
      ctl.abort();
    }, ms);
    if (outer) {
      onAbort = () => {
        const why = abortError(outer);
        reject(new FleetError(why.code, `${why.message}; the attempt in flight was abandoned and its outcome is unknown`, why.details));
        ctl.abort();
      };
      outer.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
    if (onAbort) outer?.removeEventListener('abort', onAbort);
  }
}

export async function runFanout<T>(targets: readonly FanoutTarget[], op: FanoutOp<T>, opts: FanoutOptions = {}): Promise<NodeResult<T>[]> {
  const concurrency = opts.concurrency ?? 64;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const retries = opts.retries ?? 2;
  const backoffMs = opts.backoffMs ?? 500;
  const retryable = opts.retryable ?? defaultRetryable;
  const settleMs = opts.settleMs ?? Math.max(timeoutMs, 30_000);
  const sleep = opts.sleep ?? realSleep;
  const now = opts.now ?? Date.now;
  const signal = opts.signal;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new FleetError('usage.invalid', 'concurrency must be a positive integer');
  const names = new Set<string>();
  for (const t of targets) {
    if (names.has(t.node)) throw new FleetError('usage.invalid', `node ${t.node} given twice`);
    names.add(t.node);
  }

  const global = new Semaphore(concurrency);
  const gate = opts.stagger ? new StaggerGate(opts.stagger, sleep, now) : undefined;
  // Per-BMC serialisation: each key's operations (retries included) run one after another.
  const queue = opts.queue ?? new BmcQueue();

  const runOne = async (target: FanoutTarget): Promise<NodeResult<T>> => {
    const started = now();
    const attempts: AttemptRecord[] = [];
    let last: FleetError | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        if (attempt > 0) await unlessAborted(sleep(exponentialDelay(attempt - 1, { initialMs: backoffMs }), signal), signal);
        const permit = global.acquire();
        await unlessAborted(permit, signal).catch((e: unknown) => {
          // A waiting acquire cannot be withdrawn: hand the permit back once it is granted.
          void permit.then(() => global.release());
          throw e;
        });
      } catch (e) {
        last = toFleetError(e);
        break;
      }
      const t0 = now();
      let sent = false;
      let running: Promise<unknown> | undefined;
      try {
        if (gate) await gate.slot(signal);
        if (signal?.aborted) throw abortError(signal);
        const ctl = new AbortController();
        sent = true;
        const p = op(target, { attempt, signal: ctl.signal });
        running = p;
        const out = await withTimeout(p, timeoutMs, ctl, target.node, signal);
        attempts.push(...(out.inner ?? []), { provider: out.provider, durationMs: now() - t0, outcome: 'ok' });
        return { node: target.node, ok: true, value: out.value, attempts, durationMs: now() - started };
      } catch (e) {
        last = toFleetError(e);
        if (!sent) break; // aborted while waiting for a stagger slot: nothing was sent
        const provider = (e as { provider?: string }).provider ?? '-';
        const inner = (e as { attempts?: AttemptRecord[] }).attempts ?? [];
        attempts.push(...inner, { provider, durationMs: now() - t0, outcome: last.code, message: last.message });
        // An abandoned attempt may still be talking to the BMC (its driver ends at its own deadline):
        // keep the BMC's queue slot until it has settled, bounded, so the next caller never overlaps it.
        // (A server stopping has no next caller: its abort closed the driver already.)
        if (running && !signal?.aborted) await settledWithin(running, settleMs);
        if (!retryable(last) || signal?.aborted) break;
      } finally {
        global.release();
      }
    }
    return {
      node: target.node,
      ok: false,
      error: { code: last!.code, message: last!.message, ...(last!.details === undefined ? {} : { details: last!.details }) },
      attempts,
      durationMs: now() - started,
    };
  };

  // A failing onResult (the store, for audit events) does not stop the other nodes: every BMC action
  // already started finishes, then the first such error is thrown.
  let hookError: unknown;
  const results = await Promise.all(
    targets.map(async (t) => {
      const r = await queue.run(t.bmcKey, () => runOne(t));
      if (opts.onResult) {
        try {
          await opts.onResult(r);
        } catch (e) {
          hookError ??= e;
        }
      }
      return r;
    }),
  );
  if (hookError !== undefined) throw hookError;
  return results;
}

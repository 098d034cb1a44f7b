/**
 * The conductor's public types (re-exported by conductor.ts and index.ts):
 * its options, its logger, and what its requests answer.
 */
import type { Store } from '../store/index.js';
import type { LifecycleSettings } from './settings.js';
import type { LifecycleEvent } from './states.js';
import type { Steps } from './steps.js';

export interface ConductorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ConductorOptions {
  store: Store;
  steps: Steps;
  /** Lock owner id; unique per conductor. Default host:pid:random. */
  owner?: string;
  /** Timeouts and retries (fleet.yaml lifecycle:); defaults from the table. */
  settings?: Partial<LifecycleSettings>;
  /** Clock for deadlines and stagger slots (use the store's clock). Default: the system clock. */
  clock?: () => Date;
  log?: ConductorLogger;
  /** Actor of the conductor's own transitions (steps, timeouts, signals). Default 'conductor'. */
  actor?: string;
  /** Lease of a node lock; renewed every third of it while held. Default 60 s. */
  lockTtlMs?: number;
  /** How long a signal or request waits for a busy node. Default 5 s. */
  lockWaitMs?: number;
  /** Timer loop period. Default 1 s. */
  tickMs?: number;
  /** Most timeouts and stagger starts launched per tick. Default 200. */
  dueBatch?: number;
  /** Most sessions launched by the timer loop running at once. Default 64. */
  maxConcurrent?: number;
  /** How often transient nodes nobody works on are recovered (another server died). Default 60 s; 0: never. */
  sweepIntervalMs?: number;
  /** Only nodes this long in their state are swept. Default 60 s. */
  sweepMinAgeMs?: number;
  /** Most nodes recovered per sweep. Default 100. */
  sweepBatch?: number;
  /** Backoff sleeps between step attempts (tests make them instant). */
  sleep?: (ms: number) => Promise<void>;
}

export interface NodeActionResult {
  node: string;
  ok: boolean;
  /** State after the action. */
  state?: string;
  from?: string;
  /** Stagger: the step starts no earlier than this (ISO). */
  notBefore?: string;
  /** Something the operator must know (a node without a BMC: power is manual). */
  note?: string;
  error?: { code: string; message: string };
}

export interface SignalResult {
  node: string;
  status: 'applied' | 'ignored' | 'busy' | 'unknown-node';
  event?: LifecycleEvent;
  from?: string;
  to?: string;
  reason?: string;
  flag?: string;
}

export interface RecoveryReport {
  /** Transient nodes examined. */
  nodes: number;
  /** Resting nodes found armed and disarmed. */
  disarmed: number;
  /** Count per action taken (e.g. 'waiting', 'step rerun', 'power read: on, not repeated'). */
  actions: Record<string, number>;
  /** Nodes skipped because another live conductor holds their lock. */
  skipped: number;
}

export interface ReinstallOptions {
  actor: string;
  /** Pets are refused without it. */
  force?: boolean;
  /** Install this profile (the node's profile is changed in the store; fleet.yaml should follow). */
  profile?: string;
  /** At most `count` nodes start every `intervalMs`. */
  stagger?: { count: number; intervalMs: number };
}

/**
 * Lifecycle settings: per-state timeouts and per-step retries, with their
 * defaults from the table, and a pure parser for the fleet.yaml section
 *
 *   lifecycle:
 *     timeouts:            # per transient state: 90s, 15m, 2h, or seconds
 *       power-cycling: 20m
 *       installing: 3h
 *     retries:             # per step: extra attempts after the first
 *       power-cycle: 2
 *     retry_delay: 5s      # first backoff between attempts; doubles
 *
 * The parser returns every problem with its path (ConfigIssue-shaped), so
 * the config loader can merge them into its one config.invalid error.
 */
import { parseDurationMs } from '../../common/duration.js';
import { STATE_SPECS } from './table.js';
import { STEP, TRANSIENT_STATES, type StepName } from './states.js';

export interface LifecycleSettings {
  /** Seconds per transient state. */
  timeouts: Record<string, number>;
  /** Extra attempts per step after the first. */
  retries: Record<StepName, number>;
  /** First backoff between attempts of a step (ms); doubles each attempt. */
  retryDelayMs: number;
}

export const DEFAULT_RETRIES: Readonly<Record<StepName, number>> = {
  [STEP.armPxe]: 2,
  [STEP.powerCycle]: 2,
  [STEP.flipToDisk]: 2,
  [STEP.checkAgent]: 0,
  [STEP.checkApplied]: 0,
};

export const DEFAULT_RETRY_DELAY_MS = 5000;

export function defaultLifecycleSettings(): LifecycleSettings {
  const timeouts: Record<string, number> = {};
  for (const s of STATE_SPECS) if (s.timeoutSeconds !== undefined) timeouts[s.state] = s.timeoutSeconds;
  return { timeouts, retries: { ...DEFAULT_RETRIES }, retryDelayMs: DEFAULT_RETRY_DELAY_MS };
}

/** Defaults overlaid with what is given. */
export function resolveLifecycleSettings(partial: Partial<LifecycleSettings> = {}): LifecycleSettings {
  const d = defaultLifecycleSettings();
  return {
    timeouts: { ...d.timeouts, ...partial.timeouts },
    retries: { ...d.retries, ...partial.retries },
    retryDelayMs: partial.retryDelayMs ?? d.retryDelayMs,
  };
}

export interface LifecycleIssue {
  path: string;
  message: string;
}

/** "90s", "15m", "2h", "1d" or a number of seconds → seconds; undefined when unreadable. */
export function parseDurationSeconds(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const ms = parseDurationMs(v, { defaultUnit: 's' });
  return ms !== undefined && ms > 0 ? ms / 1000 : undefined;
}

const MAX_TIMEOUT_S = 7 * 86400;
const MAX_RETRIES = 10;

/**
 * Parses the `lifecycle:` section of fleet.yaml (already YAML-decoded).
 * Absent section: the defaults. Pure; collects every problem.
 */
export function parseLifecycleConfig(raw: unknown, path = 'lifecycle'): { settings: LifecycleSettings; issues: LifecycleIssue[] } {
  const settings = defaultLifecycleSettings();
  const issues: LifecycleIssue[] = [];
  if (raw === undefined || raw === null) return { settings, issues };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    issues.push({ path, message: 'must be a mapping with timeouts, retries and retry_delay' });
    return { settings, issues };
  }
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!['timeouts', 'retries', 'retry_delay'].includes(k)) issues.push({ path: `${path}.${k}`, message: `unknown key '${k}' (expected timeouts, retries, retry_delay)` });
  }
  const mapping = (key: string): Record<string, unknown> | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) {
      issues.push({ path: `${path}.${key}`, message: 'must be a mapping' });
      return undefined;
    }
    return v as Record<string, unknown>;
  };
  const timeouts = mapping('timeouts');
  if (timeouts) {
    for (const [state, v] of Object.entries(timeouts)) {
      const p = `${path}.timeouts.${state}`;
      if (!(TRANSIENT_STATES as readonly string[]).includes(state)) {
        issues.push({ path: p, message: `'${state}' is not a state with a timeout (one of: ${TRANSIENT_STATES.join(', ')})` });
        continue;
      }
      const secs = parseDurationSeconds(v);
      if (secs === undefined || secs > MAX_TIMEOUT_S) issues.push({ path: p, message: `${JSON.stringify(v)} is not a duration up to 7d (e.g. 90s, 15m, 2h)` });
      else settings.timeouts[state] = secs;
    }
  }
  const retries = mapping('retries');
  if (retries) {
    const steps = Object.values(STEP) as string[];
    for (const [step, v] of Object.entries(retries)) {
      const p = `${path}.retries.${step}`;
      if (!steps.includes(step)) {
        issues.push({ path: p, message: `'${step}' is not a step (one of: ${steps.join(', ')})` });
        continue;
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_RETRIES) issues.push({ path: p, message: `must be an integer from 0 to ${MAX_RETRIES}` });
      else settings.retries[step as StepName] = v;
    }
  }
  if (obj.retry_delay !== undefined) {
    const secs = parseDurationSeconds(obj.retry_delay);
    if (secs === undefined || secs > 3600) issues.push({ path: `${path}.retry_delay`, message: `${JSON.stringify(obj.retry_delay)} is not a duration up to 1h` });
    else settings.retryDelayMs = Math.round(secs * 1000);
  }
  return { settings, issues };
}

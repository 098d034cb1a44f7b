/**
 * Durations as fleet.yaml and the command line write them: a number and a
 * unit (ms, s, m, h, d), e.g. 500ms, 90s, 1.5m, 2h, 7d. The one parser;
 * each caller says which units it takes and whether a bare number means
 * seconds, and words its own error. Pure.
 */
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd';

export const UNIT_MS: Readonly<Record<DurationUnit, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;

export interface DurationOptions {
  /** Unit of a bare number; without it a unit is required. */
  defaultUnit?: DurationUnit;
  /** Units accepted (default all). */
  units?: readonly DurationUnit[];
}

/** The duration in milliseconds, or undefined when `text` is not one (wrong shape or a unit not accepted). */
export function parseDurationMs(text: string, opts: DurationOptions = {}): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] as DurationUnit | undefined) ?? opts.defaultUnit;
  if (unit === undefined || (opts.units && !opts.units.includes(unit))) return undefined;
  return Number(m[1]) * UNIT_MS[unit];
}

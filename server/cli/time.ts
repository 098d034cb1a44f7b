import { parseDurationMs } from '../../common/duration.js';
import { FleetError } from '../../common/errors.js';

/** Accepts an ISO time or a duration ago: 30s, 10m, 2h, 7d. */
export function parseSince(since: string, now: Date = new Date()): string {
  const ago = parseDurationMs(since, { units: ['s', 'm', 'h', 'd'] });
  if (ago !== undefined) return new Date(now.getTime() - ago).toISOString();
  const t = Date.parse(since);
  if (Number.isNaN(t)) throw new FleetError('usage.invalid', `--since: '${since}' is neither an ISO time nor a duration like 10m, 2h, 7d`);
  return new Date(t).toISOString();
}

import { FleetError } from '../../common/errors.js';

/** Accepts an ISO time or a duration ago: 30s, 10m, 2h, 7d. */
export function parseSince(since: string, now: Date = new Date()): string {
  const m = /^(\d+)\s*([smhd])$/.exec(since.trim());
  if (m) {
    const mult = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(m[1]) * mult).toISOString();
  }
  const t = Date.parse(since);
  if (Number.isNaN(t)) throw new FleetError('usage.invalid', `--since: '${since}' is neither an ISO time nor a duration like 10m, 2h, 7d`);
  return new Date(t).toISOString();
}

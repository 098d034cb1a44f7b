/**
 * `fleet timeline [NODESET] [--since fit|2h|ISO] [--until ...] -o FILE.svg`:
 * the reinstall timeline (one row per node, its states as coloured spans,
 * failures marked) as an SVG file, the picture of the dashboard's
 * /ui/timeline (GET /api/v1/timeline). `-o -` writes it to stdout. PNG is
 * not drawn here: open the SVG in a browser, or convert it (rsvg-convert).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TimelineResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

export interface TimelineFlags {
  since?: string;
  until?: string;
  output?: string;
}

export async function cmdTimeline(flags: GlobalFlags, nodeset: string | undefined, opts: TimelineFlags, io: CliIo): Promise<number> {
  const out = opts.output;
  if (out === undefined || out === '') throw new FleetError('usage.invalid', '-o FILE.svg is required (-o - for stdout)');
  if (out !== '-' && /\.png$/i.test(out)) throw new FleetError('usage.invalid', 'only SVG is drawn: -o FILE.svg (convert it with rsvg-convert if a PNG is needed)');
  const q = new URLSearchParams();
  if (nodeset) q.set('nodeset', nodeset);
  if (opts.since) q.set('since', opts.since);
  if (opts.until) q.set('until', opts.until);
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<TimelineResponse>(settings, 'GET', `/api/v1/timeline${q.size ? `?${q.toString()}` : ''}`);
  const doc = `<?xml version="1.0" encoding="UTF-8"?>\n${res.svg}`;
  if (out === '-') io.stdout(doc);
  else await writeFile(path.resolve(io.cwd, out), doc);
  const what = `${res.nodes} node${res.nodes === 1 ? '' : 's'}, ${res.failures} failure${res.failures === 1 ? '' : 's'}, ${res.since} to ${res.until}`;
  io.stderr(`fleet: timeline of ${what}${out === '-' ? '' : ` written to ${out}`}${res.truncated ? ' (too many events: the picture stops early; narrow the nodeset or the window)' : ''}\n`);
  return Exit.OK;
}

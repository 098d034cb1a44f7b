/**
 * `fleet timeline [NODESET] [--since fit|2h|ISO] [--until ...] -o FILE.svg`:
 * the reinstall timeline (one row per node, its states as coloured spans,
 * failures marked) as an SVG file, the picture of the dashboard's
 * /ui/timeline (GET /api/v1/timeline). `-o -` writes it to stdout.
 * `-o FILE.png` rasterises that SVG with librsvg's `rsvg-convert` (Debian
 * librsvg2-bin), the converter of the SVG's own toolchain; without it the
 * PNG is refused with the package to install, and SVG still works.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TimelineResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { findExecutable } from '../../../common/executable.js';
import { runProcess } from '../../../common/spawn.js';
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
  if (out === undefined || out === '') throw new FleetError('usage.invalid', '-o FILE.svg or -o FILE.png is required (-o - for SVG on stdout)');
  const png = out !== '-' && /\.png$/i.test(out);
  if (out !== '-' && !png && !/\.svg$/i.test(out)) throw new FleetError('usage.invalid', `-o ${out}: name the file .svg or .png (the format follows the name)`);
  const rsvg = png ? findExecutable('rsvg-convert') : undefined;
  if (png && !rsvg) throw new FleetError('unavailable', 'a PNG needs rsvg-convert (apt-get install librsvg2-bin); -o FILE.svg works without it');
  const q = new URLSearchParams();
  if (nodeset) q.set('nodeset', nodeset);
  if (opts.since) q.set('since', opts.since);
  if (opts.until) q.set('until', opts.until);
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<TimelineResponse>(settings, 'GET', `/api/v1/timeline${q.size ? `?${q.toString()}` : ''}`);
  const doc = `<?xml version="1.0" encoding="UTF-8"?>\n${res.svg}`;
  if (out === '-') io.stdout(doc);
  else if (png) {
    const r = await runProcess(rsvg!, ['--format', 'png', '--background-color', 'white', '--output', path.resolve(io.cwd, out)], { input: doc, timeoutMs: 120_000 });
    if (r.code !== 0) throw new FleetError('internal', `rsvg-convert could not draw the PNG (${r.error ?? `exit ${r.code}`}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  } else await writeFile(path.resolve(io.cwd, out), doc);
  const what = `${res.nodes} node${res.nodes === 1 ? '' : 's'}, ${res.failures} failure${res.failures === 1 ? '' : 's'}, ${res.since} to ${res.until}`;
  io.stderr(`fleet: timeline of ${what}${out === '-' ? '' : ` written to ${out}`}${res.truncated ? ' (too many events: the picture stops early; narrow the nodeset or the window)' : ''}\n`);
  return Exit.OK;
}

/**
 * The reinstall timeline on the API (under /api/v1), for `fleet timeline`:
 *
 *   GET /timeline?nodeset=&since=&until=   {svg, nodes, failures, since, until, truncated}
 *
 * The same picture as the dashboard's /ui/timeline (server/dashboard/
 * timeline.ts, from timeline-data.ts): one row per node, spans per state,
 * failures marked. A bad window or nodeset is request.invalid.
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { renderTimeline } from '../../dashboard/timeline.js';
import { timelineData } from '../../dashboard/timeline-data.js';
import { DEFAULT_EXPAND_LIMIT } from '../../nodeset/index.js';
import type { Store } from '../../store/index.js';
import { expandNodeset } from '../nodesets.js';

export async function registerTimelineRoutes(api: FastifyInstance, deps: { store: Store; nodesetLimit?: number; clock?: () => Date }): Promise<void> {
  const limit = deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT;
  api.get<{ Querystring: S.TimelineQuery }>(
    '/timeline',
    {
      schema: {
        summary: 'The reinstall timeline as SVG: one row per node, its states as coloured spans over the window, failures marked with step and reason',
        querystring: S.TimelineQuery,
        response: { 200: S.TimelineResponse },
      },
    },
    async (req): Promise<S.TimelineResponse> => {
      const tl = await timelineData(
        deps.store,
        (expr) => expandNodeset(deps.store, expr, limit),
        { nodeset: req.query.nodeset ?? '', since: req.query.since ?? '', until: req.query.until ?? '' },
        (deps.clock ?? (() => new Date()))(),
      );
      if (tl.error !== undefined) throw new FleetError('request.invalid', tl.error);
      const svg = renderTimeline(tl.rows, { since: tl.from, until: tl.to, title: tl.nodeset ? `fleet ${tl.nodeset}` : 'fleet' });
      return {
        svg,
        nodes: tl.rows.length,
        failures: tl.rows.reduce((a, r) => a + r.failures.length, 0),
        since: new Date(tl.from).toISOString(),
        until: new Date(tl.to).toISOString(),
        truncated: tl.truncated,
      };
    },
  );
}

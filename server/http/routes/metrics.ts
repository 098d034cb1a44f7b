/**
 * Prometheus metrics (docs/operations.md "Monitoring"):
 *   GET /metrics     the text exposition format 0.0.4; Authorization: Bearer TOKEN
 * On the admin face only, outside /api/v1 (Prometheus' default metrics_path)
 * but guarded by the same hook as the API (server/http/app.ts).
 */
import type { FastifyInstance } from 'fastify';
import { FleetError } from '../../../common/errors.js';
import type { FleetMetrics } from '../../metrics/index.js';
import type { Store } from '../../store/index.js';

export interface MetricsRouteDeps {
  store: Store;
  /** The server's metrics; absent: the route answers not_implemented. */
  metrics?: FleetMetrics;
}

export async function registerMetricsRoutes(scope: FastifyInstance, deps: MetricsRouteDeps): Promise<void> {
  scope.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format): nodes by state, transitions, failures, BMC operations, DHCP, boot HTTP, agents, the event log',
        'x-fleet-role': 'read-only',
      },
    },
    async (_req, reply) => {
      if (!deps.metrics) throw new FleetError('not_implemented', 'this server was started without metrics');
      const text = await deps.metrics.exposition(deps.store);
      return reply.type(deps.metrics.contentType).send(text);
    },
  );
}

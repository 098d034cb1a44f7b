/** The console path as a plain route: without the upgrade it only says how to use it (the upgrade itself: server/http/console.ts). */
import type { FastifyInstance, FastifySchema } from 'fastify';
import { FleetError } from '../../../common/errors.js';

export async function registerConsoleRoutes(api: FastifyInstance): Promise<void> {
  api.get<{ Params: { name: string } }>(
    '/nodes/:name/console',
    {
      // x-fleet-role: published in the OpenAPI operation as the admin scope's onRoute hook does for its routes.
      schema: {
        summary:
          "The node's serial console (IPMI SOL through the server): an HTTP upgrade (Connection: Upgrade, Upgrade: fleet-console; ?force=1 takes it over); `fleet console NODE` speaks it. 409 when someone else is attached. Without the upgrade headers: 400",
        'x-fleet-role': 'operator',
      } as FastifySchema,
    },
    async (req) => {
      throw new FleetError('request.invalid', `GET /api/v1/nodes/${req.params.name}/console needs Connection: Upgrade and Upgrade: fleet-console (use \`fleet console ${req.params.name}\`)`);
    },
  );
}

/**
 * The HTTP edge of the error catalogue: every error leaves as
 * `{error: {code, message, details?}}` with the catalogue's status.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { FleetError, toFleetError } from '../errors.js';

function fromFastifyError(e: FastifyError): FleetError | undefined {
  if (e.validation) {
    return new FleetError('request.invalid', e.message, {
      errors: e.validation.map((v) => ({ path: v.instancePath || v.schemaPath, message: v.message ?? 'invalid' })),
    });
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new FleetError('request.too_large', 'request body too large');
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new FleetError('request.invalid', 'unsupported content type');
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.statusCode === 400) {
    return new FleetError('request.invalid', e.message);
  }
  if (e.statusCode === 429) return new FleetError('rate_limited', e.message);
  return undefined;
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const fe = err instanceof FleetError ? err : (fromFastifyError(err as FastifyError) ?? toFleetError(err));
    if (fe.code === 'internal') {
      req.log.error({ err }, 'internal error');
      // Never leak internals (paths, SQL) to clients.
      void reply.status(500).send(new FleetError('internal', 'internal error; see the server log').toJSON());
      return;
    }
    void reply.status(fe.http).send(fe.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new FleetError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });
}

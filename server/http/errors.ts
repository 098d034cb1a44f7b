/**
 * The HTTP edge of the error catalogue: every error leaves as
 * `{error: {code, message, details?}}` with the catalogue's status.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { FleetError, toFleetError } from '../../common/errors.js';

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

/** Every error answer names its catalogue code in this header too (HEAD answers have no body to read it from). */
export const ERROR_CODE_HEADER = 'x-fleet-error';
/** The header's value when no route matched (a handler's own 404 carries its domain code, e.g. node.not_found). */
export const NO_ROUTE = 'not_found; no-route';

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const fe = err instanceof FleetError ? err : (fromFastifyError(err as FastifyError) ?? toFleetError(err));
    if (fe.code === 'internal') {
      req.log.error({ err }, 'internal error');
      // Never leak internals (paths, SQL) to clients.
      void reply.status(500).header(ERROR_CODE_HEADER, 'internal').send(new FleetError('internal', 'internal error; see the server log').toJSON());
      return;
    }
    void reply.status(fe.http).header(ERROR_CODE_HEADER, fe.code).send(fe.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .header(ERROR_CODE_HEADER, NO_ROUTE)
      .send(new FleetError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });
}

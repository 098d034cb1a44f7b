/**
 * Logger options for the server. Requests are logged without headers and
 * with secret-bearing query parameters (token=...) masked; pino redaction
 * covers any object field that could carry a secret.
 */
import type { FastifyServerOptions } from 'fastify';

export const REDACT_PATHS = [
  'req.headers.authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.secrets',
  'password',
  'secret',
  'token',
  'secrets',
];

/** Masks the value of query parameters whose name suggests a secret. */
export function maskUrl(url: string): string {
  return url.replace(/([?&](?:token|password|secret)[^=&]*=)[^&]*/gi, '$1***');
}

export function loggerOptions(level: string, destination?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '***' },
    serializers: {
      req(req: { method: string; url: string; ip?: string }) {
        return { method: req.method, url: maskUrl(req.url), remote: req.ip };
      },
    },
    ...(destination ? { stream: destination } : {}),
  } as FastifyServerOptions['logger'];
}

/**
 * The server's one log format (docs/operations.md "Logs"): pino JSON lines
 * on stdout, for journald and whatever reads it (`journalctl -o cat | jq`).
 * The HTTP faces, the start-up facts of `fleet server` and the process's
 * own warnings (Node's and its dependencies') all go through it. Requests
 * are logged at debug, one line each when answered, without headers and
 * with secret-bearing query parameters (token=...) masked; pino redaction
 * covers any object field that could carry a secret.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import pino, { type Logger } from 'pino';

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

/** A logger with the server's options (the start-up facts of `fleet server`, process warnings). */
export function serverLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const { stream, ...opts } = loggerOptions(level, destination) as { stream?: NodeJS.WritableStream } & pino.LoggerOptions;
  return stream ? pino(opts, stream) : pino(opts);
}

/**
 * Request logs at debug: one line per answered request (method, masked URL,
 * remote, status, milliseconds), instead of Fastify's two lines at info. The
 * app is built with a LogController that disables Fastify's own; errors are still logged at their
 * own level by the error handler.
 */
export function logRequestsAtDebug(app: FastifyInstance, level: string): void {
  if (level !== 'debug' && level !== 'trace') return;
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ req, res: { statusCode: reply.statusCode }, responseTime: Math.round(reply.elapsedTime * 10) / 10 }, 'request completed');
  });
}

/**
 * Node's own process warnings (deprecations, MaxListenersExceeded...) as log
 * lines of `log` instead of Node's plain text on stderr. Returns the function
 * that puts Node's printing back.
 */
export function logProcessWarnings(log: Pick<Logger, 'warn'>): () => void {
  const before = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (w: Error & { code?: string }): void => log.warn({ warning: w.name, ...(w.code ? { code: w.code } : {}) }, w.message);
  process.on('warning', onWarning);
  return () => {
    process.off('warning', onWarning);
    for (const l of before) process.on('warning', l);
  };
}

/**
 * The agent's gRPC client: a channel to the server that trusts only the
 * pinned fleet CA, with or without the node certificate, promisified unary
 * calls with a deadline each, and the mapping of gRPC errors back to the
 * catalogue.
 */
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient } from '../proto/gen/fleet/v1/agent.js';
import { CATALOGUE, FleetError, type ErrorCode } from '../common/errors.js';
import { ERROR_CODE_TRAILER } from '../common/wire.js';
import { checkServerIdentity } from './tls.js';
/** Largest answer the agent accepts. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface ChannelTrust {
  caPem: string;
  /** The node's key and certificate; absent for Enroll. */
  keyPem?: string;
  certPem?: string;
}

export function makeClient(target: string, trust: ChannelTrust, opts: { keepaliveMs?: number } = {}): AgentServiceClient {
  const creds = credentials.createSsl(
    Buffer.from(trust.caPem),
    trust.keyPem !== undefined ? Buffer.from(trust.keyPem) : null,
    trust.certPem !== undefined ? Buffer.from(trust.certPem) : null,
    { checkServerIdentity },
  );
  return new AgentServiceClient(target, creds, {
    'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
    'grpc.keepalive_time_ms': opts.keepaliveMs ?? 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.initial_reconnect_backoff_ms': 1000,
    'grpc.max_reconnect_backoff_ms': 30_000,
    'grpc.enable_retries': 0,
  });
}

function grpcCodeName(code: number): string {
  return (Object.entries(status).find(([, v]) => v === code)?.[0] ?? String(code)).toString();
}

/** A gRPC error as a FleetError: the catalogue code from the server's trailer when present, else one by status. */
export function fromGrpcError(e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const se = e as Partial<ServiceError>;
  const trailer = se.metadata instanceof Metadata ? se.metadata.get(ERROR_CODE_TRAILER)[0] : undefined;
  const message = se.details || (e as Error)?.message || String(e);
  if (typeof trailer === 'string' && Object.hasOwn(CATALOGUE, trailer)) {
    return new FleetError(trailer as ErrorCode, message, { grpc: se.code }, { cause: e });
  }
  const byStatus: Partial<Record<number, ErrorCode>> = {
    [status.UNAVAILABLE]: 'unavailable',
    [status.DEADLINE_EXCEEDED]: 'unavailable',
    [status.CANCELLED]: 'unavailable',
    [status.UNAUTHENTICATED]: 'auth.invalid',
    [status.PERMISSION_DENIED]: 'auth.forbidden',
    [status.INVALID_ARGUMENT]: 'request.invalid',
    [status.RESOURCE_EXHAUSTED]: 'request.too_large',
    [status.NOT_FOUND]: 'not_found',
    [status.UNIMPLEMENTED]: 'not_implemented',
  };
  const code = typeof se.code === 'number' ? (byStatus[se.code] ?? 'internal') : 'internal';
  const what = typeof se.code === 'number' ? `${grpcCodeName(se.code)}: ${message}` : message;
  return new FleetError(code, what, { grpc: se.code }, { cause: e });
}

/** Errors worth retrying: the server is away, slow, busy or failed internally. Refusals (auth, token, request) are final. */
export function isTransient(e: FleetError): boolean {
  return e.code === 'unavailable' || e.code === 'rate_limited' || e.code === 'internal';
}

type Unary<Q, R> = (req: Q, md: Metadata, options: { deadline: Date }, cb: (err: ServiceError | null, res: R) => void) => unknown;

/** Calls a unary method with a deadline; rejects with a FleetError. */
export function callUnary<Q, R>(client: AgentServiceClient, method: Unary<Q, R>, req: Q, timeoutMs: number): Promise<R> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      if (err) reject(fromGrpcError(err));
      else resolve(res);
    });
  });
}

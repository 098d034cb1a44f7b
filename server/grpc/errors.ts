/**
 * The one place where fleet errors become gRPC statuses (DESIGN §1: grpc/).
 * The status code comes from the catalogue (server/errors.ts); the catalogue
 * code travels in the `fleet-error-code` trailer so the agent can tell
 * token.used from token.expired although both are UNAUTHENTICATED.
 */
import { Metadata, type ServerErrorResponse } from '@grpc/grpc-js';
import { CATALOGUE, FleetError, toFleetError, type ErrorCode } from '../errors.js';

export const ERROR_CODE_TRAILER = 'fleet-error-code';

/** Turns anything thrown into the error a grpc-js handler passes to its callback (or emits on a stream). */
export function toGrpcError(e: unknown): ServerErrorResponse {
  const fe = toFleetError(e);
  // Internal errors keep their message out of the answer (it may name files or SQL); the caller logs it.
  const details = fe.code === 'internal' ? 'internal error' : fe.message;
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, fe.code);
  return Object.assign(new Error(details), { code: CATALOGUE[fe.code].grpc, details, metadata });
}

/** Reads the catalogue code back from a gRPC error's trailers (agent side); undefined when absent or unknown. */
export function errorCodeOf(metadata: Metadata | undefined): ErrorCode | undefined {
  const v = metadata?.get(ERROR_CODE_TRAILER)[0];
  return typeof v === 'string' && Object.hasOwn(CATALOGUE, v) ? (v as ErrorCode) : undefined;
}

export { FleetError };

/**
 * Wire constants the gRPC edge (server/grpc) and the agent share.
 *
 * The status code of a failed call comes from the error catalogue
 * (common/errors.ts); the catalogue code itself travels in the
 * `fleet-error-code` trailer so the agent can tell token.used from
 * token.expired although both are UNAUTHENTICATED.
 */
import type { Metadata } from '@grpc/grpc-js';
import { CATALOGUE, type ErrorCode } from './errors.js';

export const ERROR_CODE_TRAILER = 'fleet-error-code';

/** Reads the catalogue code back from a gRPC error's trailers (agent side); undefined when absent or unknown. */
export function errorCodeOf(metadata: Metadata | undefined): ErrorCode | undefined {
  const v = metadata?.get(ERROR_CODE_TRAILER)[0];
  return typeof v === 'string' && Object.hasOwn(CATALOGUE, v) ? (v as ErrorCode) : undefined;
}

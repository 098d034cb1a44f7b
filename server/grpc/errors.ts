/**
 * The one place where fleet errors become gRPC statuses (DESIGN §1: grpc/).
 * The status code comes from the catalogue (common/errors.ts); the catalogue
 * code travels in the trailer named in common/wire.ts.
 */
import { Metadata, type ServerErrorResponse } from '@grpc/grpc-js';
import { CATALOGUE, toFleetError } from '../../common/errors.js';
import { ERROR_CODE_TRAILER } from '../../common/wire.js';

/** Turns anything thrown into the error a grpc-js handler passes to its callback (or emits on a stream). */
export function toGrpcError(e: unknown): ServerErrorResponse {
  const fe = toFleetError(e);
  // Internal errors keep their message out of the answer (it may name files or SQL); the caller logs it.
  const details = fe.code === 'internal' ? 'internal error' : fe.message;
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, fe.code);
  return Object.assign(new Error(details), { code: CATALOGUE[fe.code].grpc, details, metadata });
}

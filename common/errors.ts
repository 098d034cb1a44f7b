/**
 * The one error catalogue of fleet.
 *
 * Every error that crosses a module boundary is a FleetError carrying a code
 * from CATALOGUE. The edges map it: HTTP status and JSON body in server/http,
 * gRPC status in server/grpc, exit code in server/cli. Nothing else decides
 * how an error looks to the outside.
 *
 * Messages must never contain secrets (BMC passwords, tokens): callers build
 * them from names and addresses only.
 */

/** gRPC status codes (numeric values from grpc's status.proto), kept here so the catalogue has no gRPC dependency. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** Process exit codes used by the CLI (see README): 0 ok, 1 some targets failed, 2 usage/config error. */
export const Exit = { OK: 0, FAILED: 1, USAGE: 2 } as const;

interface CatalogueEntry {
  /** HTTP status at the REST edge. */
  http: number;
  /** gRPC status at the agent edge. */
  grpc: GrpcStatusCode;
  /** CLI exit code when this error ends a command. */
  exit: number;
  /** One-line description for docs and OpenAPI. */
  summary: string;
}

export const CATALOGUE = {
  // --- input and configuration
  'usage.invalid': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'Bad command-line usage or request parameters' },
  'config.invalid': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'fleet.yaml has errors (every error is listed in details)' },
  'config.unreadable': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'A configuration or secret file cannot be read' },
  'nodeset.invalid': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'A nodeset expression has bad syntax' },
  'nodeset.too_large': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'A nodeset expands past the configured limit' },
  'request.invalid': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'The request body or parameters are invalid' },
  'request.too_large': { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: Exit.USAGE, summary: 'The request is larger than allowed' },
  // --- authentication
  'auth.missing': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.USAGE, summary: 'No credentials were presented' },
  'auth.invalid': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.USAGE, summary: 'The presented credentials are not valid' },
  'auth.forbidden': { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, exit: Exit.USAGE, summary: 'The caller may not do this' },
  'token.expired': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.FAILED, summary: 'The one-time token has expired' },
  'token.used': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.FAILED, summary: 'The one-time token was already used' },
  'token.wrong_node': { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, exit: Exit.FAILED, summary: 'The token belongs to another node' },
  'token.revoked': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.FAILED, summary: 'The token was revoked (install finished, cancelled or reinstalled)' },
  'enroll.not_installing': { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.FAILED, summary: 'The node is not in an install phase, so its agent cannot enrol' },
  // --- resources
  'node.not_found': { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: Exit.FAILED, summary: 'No such node' },
  'not_found': { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: Exit.FAILED, summary: 'No such resource' },
  'conflict': { http: 409, grpc: GrpcStatus.ALREADY_EXISTS, exit: Exit.FAILED, summary: 'The resource exists or changed underneath' },
  'state.invalid_transition': { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.FAILED, summary: 'The node cannot take this event in its current state' },
  'precondition.failed': { http: 412, grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.FAILED, summary: 'A check this action depends on fails (fleet doctor); details list the findings; force overrides' },
  'rate_limited': { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: Exit.FAILED, summary: 'Too many requests' },
  // --- BMC
  'bmc.auth_failed': { http: 502, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'The BMC refused the credentials' },
  'bmc.timeout': { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: Exit.FAILED, summary: 'The BMC did not answer in time' },
  'bmc.protocol': { http: 502, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'The BMC answered something that is not valid protocol' },
  'bmc.command_failed': { http: 502, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'The BMC rejected the command' },
  'bmc.unsupported': { http: 501, grpc: GrpcStatus.UNIMPLEMENTED, exit: Exit.FAILED, summary: 'The BMC or provider does not support this operation' },
  'bmc.tls': { http: 502, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'The BMC certificate does not match what was trusted' },
  // --- data directory
  'store.locked': { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.USAGE, summary: 'Another fleet server holds the data directory' },
  'store.disk_full': { http: 507, grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: Exit.FAILED, summary: 'The disk holding the data directory is full' },
  'store.read_only': { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'The data directory cannot be written (read-only)' },
  // --- images (server/images)
  'image.unsafe': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE, summary: 'An image archive is hostile or malformed (absolute or climbing paths, links out of the tree)' },
  'image.build_failed': { http: 500, grpc: GrpcStatus.INTERNAL, exit: Exit.FAILED, summary: 'Building or importing an image failed (nothing was registered)' },
  // --- other
  'not_implemented': { http: 501, grpc: GrpcStatus.UNIMPLEMENTED, exit: Exit.FAILED, summary: 'This is not implemented yet' },
  'unavailable': { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: Exit.FAILED, summary: 'A dependency is unavailable' },
  'internal': { http: 500, grpc: GrpcStatus.INTERNAL, exit: Exit.FAILED, summary: 'Internal error' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof CATALOGUE;

export class FleetError extends Error {
  override readonly name = 'FleetError';
  readonly code: ErrorCode;
  /** Structured, secret-free details (e.g. the list of config errors). */
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  get http(): number {
    return CATALOGUE[this.code].http;
  }
  get grpc(): GrpcStatusCode {
    return CATALOGUE[this.code].grpc;
  }
  get exit(): number {
    return CATALOGUE[this.code].exit;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: unknown } } {
    return {
      error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) },
    };
  }
}

export function isFleetError(e: unknown): e is FleetError {
  return e instanceof FleetError;
}

/** Turns anything thrown into a FleetError, hiding internals of unexpected errors behind 'internal'. */
export function toFleetError(e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new FleetError('internal', message, undefined, { cause: e });
}

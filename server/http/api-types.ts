/**
 * Left for server/ops/apply-config.ts only, which this change stays out of:
 * the REST contract lives in common/api/schemas.ts. Point that import there
 * and delete this file.
 */
export type { ApplyResponse } from '../../common/api/schemas.js';

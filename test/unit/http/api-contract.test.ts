/**
 * The REST contract (common/api/schemas.ts) is what the server publishes:
 * every body and 200 answer in /api/v1/openapi.json is the contract's schema
 * for that route, as JSON, so the document, the validation and the types the
 * CLI reads cannot say different things.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../../../common/api/schemas.js';
import { buildAdminApp } from '../../../server/http/app.js';
import { openStore, type Store } from '../../../server/store/index.js';

type Op = { requestBody?: { content: { 'application/json': { schema: unknown } } }; responses: Record<string, { content?: { 'application/json': { schema: unknown } } }> };

/** [method, path, body schema or null, 200 answer schema or null (the SSE stream)] */
const ROUTES: [string, string, TSchema | null, TSchema | null][] = [
  ['get', '/api/v1/nodes', null, S.NodesResponse],
  ['get', '/api/v1/nodes/{name}', null, S.ApiNode],
  ['get', '/api/v1/nodes/{name}/events', null, S.EventsResponse],
  ['get', '/api/v1/events', null, S.EventsResponse],
  ['get', '/api/v1/groups', null, S.GroupsResponse],
  ['post', '/api/v1/apply', S.ApplyRequest, S.ApplyResponse],
  ['post', '/api/v1/power', S.PowerRequest, S.BmcResponse],
  ['post', '/api/v1/bootdev', S.BootdevRequest, S.BmcResponse],
  ['post', '/api/v1/bmc/info', S.BmcInfoRequest, S.BmcResponse],
  ['post', '/api/v1/bmc/rotate', S.BmcRotateRequest, S.BmcRotateResponse],
  ['post', '/api/v1/discover/bmc', S.BmcScanRequest, S.BmcScanResponse],
  ['get', '/api/v1/discover/bmc', null, S.DiscoveredBmcsResponse],
  ['get', '/api/v1/inventory', null, S.InventoryResponse],
  ['get', '/api/v1/inventory/{name}/history', null, S.InventoryHistoryResponse],
  ['get', '/api/v1/inventory/{name}/diff', null, S.InventoryDiffResponse],
  ['post', '/api/v1/inventory/reconcile', S.ReconcileRequest, S.ReconcileResponse],
  ['post', '/api/v1/nodes/reinstall', S.ReinstallRequest, S.LifecycleActionResponse],
  ['post', '/api/v1/nodes/cancel', S.CancelRequest, S.LifecycleActionResponse],
  ['post', '/api/v1/nodes/{name}/adopt', null, S.AdoptResponse],
  ['get', '/api/v1/nodes/status', null, S.StatusResponse],
  ['get', '/api/v1/events/stream', null, null],
  ['get', '/api/v1/render/{name}/ipxe', null, S.RenderResponse],
  ['get', '/api/v1/render/{name}/kickstart', null, S.RenderResponse],
  ['get', '/api/v1/export/{format}', null, S.ExportResponse],
  ['get', '/api/v1/discovered', null, S.DiscoveredResponse],
  ['post', '/api/v1/enroll', S.EnrollRequest, S.EnrollResponse],
  ['get', '/api/v1/discover/plan', null, S.DiscoverPlanResponse],
  ['post', '/api/v1/discover/accept', S.DiscoverAcceptRequest, S.DiscoverAcceptResponse],
  ['post', '/api/v1/discover/reject', S.DiscoverRejectRequest, S.DiscoverRejectResponse],
  ['post', '/api/v1/discover/unreject', S.DiscoverRejectRequest, S.DiscoverUnrejectResponse],
  ['post', '/api/v1/slurm/rotate-key', null, S.SlurmRotateKeyResponse],
  ['get', '/api/v1/users', null, S.UsersResponse],
  ['post', '/api/v1/users', S.UserAddRequest, S.UserTokenResponse],
  ['delete', '/api/v1/users/{name}', null, S.UserRemoveResponse],
  ['post', '/api/v1/users/{name}/tokens', S.UserTokenRequest, S.UserTokenResponse],
  ['post', '/api/v1/users/{name}/disable', null, S.UserDisableResponse],
  ['post', '/api/v1/users/{name}/enable', null, S.UserDisableResponse],
  // Prometheus text format, not JSON: no contract schema (test/unit/metrics/metrics.test.ts parses it).
  ['get', '/metrics', null, null],
  ['get', '/api/v1/nodes/{name}/console', null, null],
  ['get', '/api/v1/timeline', null, S.TimelineResponse],
];

const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

describe('REST contract', () => {
  let store: Store;
  let app: FastifyInstance;
  let paths: Record<string, Record<string, Op>>;

  beforeAll(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    app = await buildAdminApp({ store, apiToken: 'contract-token-0123456789abcdef0123', logLevel: 'silent', netboot: { serverUrl: 'http://192.0.2.1:8080' } });
    paths = (await app.inject({ url: '/api/v1/openapi.json' })).json<{ paths: typeof paths }>().paths;
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  it('the document has exactly the contract routes', () => {
    const published = Object.entries(paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(published.sort()).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
  });

  it.each(ROUTES)('%s %s publishes the contract schemas', (method, path, body, answer) => {
    const op = paths[path]![method]!;
    if (body) expect(op.requestBody?.content['application/json'].schema).toEqual(json(body));
    else expect(op.requestBody).toBeUndefined();
    if (answer) expect(op.responses['200']?.content?.['application/json'].schema).toEqual(json(answer));
  });
});

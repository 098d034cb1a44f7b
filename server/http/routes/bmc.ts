/** REST routes for BMC actions on nodesets: power, boot device, identity. */
import type { FastifyInstance } from 'fastify';
import { parseStagger } from '../../bmc/fanout.js';
import type { ProviderContext } from '../../bmc/registry.js';
import type { BootMode } from '../../bmc/types.js';
import { FleetError } from '../../../common/errors.js';
import { NodeSet } from '../../nodeset/index.js';
import { BOOT_DEVICES, POWER_OPS, runBmcOperation, type BmcOperation, type BmcOpResult } from '../../ops/bmc.js';
import type { Store } from '../../store/index.js';
import { actorOf } from './actor.js';

export interface BmcDeps {
  store: Store;
  nodesetLimit?: number;
  /** Absent: the server runs without BMC access (the routes answer not_implemented). */
  bmc?: { providers: ProviderContext; concurrency?: number; timeoutMs?: number; retries?: number };
}

export interface BmcResponse {
  results: BmcOpResult[];
  summary: { total: number; ok: number; failed: number };
}

const common = {
  nodeset: { type: 'string', minLength: 1, maxLength: 65536 },
  concurrency: { type: 'integer', minimum: 1, maximum: 1024 },
  timeoutMs: { type: 'integer', minimum: 100, maximum: 600_000 },
} as const;

const resultsSchema = {
  type: 'object',
  properties: {
    results: { type: 'array', items: { type: 'object', additionalProperties: true } },
    summary: { type: 'object', properties: { total: { type: 'integer' }, ok: { type: 'integer' }, failed: { type: 'integer' } } },
  },
} as const;

export async function registerBmcRoutes(api: FastifyInstance, deps: BmcDeps): Promise<void> {
  // Stopping the server (close(), SIGTERM) ends every fan-out in progress: a staggered one could
  // otherwise hold the close for up to (nodes / N) intervals. Aborted nodes say so in their result.
  const stopping = new AbortController();
  api.addHook('preClose', async () => {
    stopping.abort(new FleetError('unavailable', 'not done: the server is stopping'));
  });
  const run = async (req: { ip: string; headers: Record<string, unknown> }, body: { nodeset: string; concurrency?: number; timeoutMs?: number; stagger?: string }, op: BmcOperation): Promise<BmcResponse> => {
    if (!deps.bmc) throw new FleetError('not_implemented', 'this server runs without BMC access');
    const names = NodeSet.parse(body.nodeset, { limit: deps.nodesetLimit }).expand();
    // Retries follow the one rule (bmc/retry.ts) inside runBmcOperation: power actions that may have
    // landed are never sent again, whatever `retries` says.
    const results = await runBmcOperation(deps.store, names, op, {
      actor: actorOf(req),
      providers: deps.bmc.providers,
      concurrency: body.concurrency ?? deps.bmc.concurrency,
      timeoutMs: body.timeoutMs ?? deps.bmc.timeoutMs,
      retries: deps.bmc.retries,
      ...(body.stagger ? { stagger: parseStagger(body.stagger) } : {}),
      signal: stopping.signal,
    });
    const ok = results.filter((r) => r.ok).length;
    return { results, summary: { total: results.length, ok, failed: results.length - ok } };
  };

  api.post<{ Body: { nodeset: string; op: (typeof POWER_OPS)[number]; stagger?: string; concurrency?: number; timeoutMs?: number } }>(
    '/power',
    {
      schema: {
        summary:
          'Power status or action on a nodeset through the BMCs (on can be staggered: "10/2s"). off, soft, cycle and reset are sent at most once: never retried after a timeout; a node whose BMC did not answer is reported with "unconfirmed" and the power read back',
        body: {
          type: 'object',
          properties: { ...common, op: { type: 'string', enum: [...POWER_OPS] }, stagger: { type: 'string', maxLength: 32 } },
          required: ['nodeset', 'op'],
          additionalProperties: false,
        },
        response: { 200: resultsSchema },
      },
    },
    async (req) => run(req, req.body, { kind: 'power', op: req.body.op }),
  );

  api.post<{ Body: { nodeset: string; device: (typeof BOOT_DEVICES)[number]; persistent?: boolean; mode?: BootMode; concurrency?: number; timeoutMs?: number } }>(
    '/bootdev',
    {
      schema: {
        summary: 'Set the boot device (next boot only unless persistent)',
        body: {
          type: 'object',
          properties: {
            ...common,
            device: { type: 'string', enum: [...BOOT_DEVICES] },
            persistent: { type: 'boolean', default: false },
            mode: { type: 'string', enum: ['uefi', 'legacy', 'auto'], default: 'auto' },
          },
          required: ['nodeset', 'device'],
          additionalProperties: false,
        },
        response: { 200: resultsSchema },
      },
    },
    async (req) => run(req, req.body, { kind: 'bootdev', device: req.body.device, persistent: req.body.persistent ?? false, mode: req.body.mode ?? 'auto' }),
  );

  api.post<{ Body: { nodeset: string; concurrency?: number; timeoutMs?: number } }>(
    '/bmc/info',
    {
      schema: {
        summary: 'BMC identity: manufacturer, model, serial, UUID, firmware, MACs',
        body: { type: 'object', properties: { ...common }, required: ['nodeset'], additionalProperties: false },
        response: { 200: resultsSchema },
      },
    },
    async (req) => run(req, req.body, { kind: 'info' }),
  );
}

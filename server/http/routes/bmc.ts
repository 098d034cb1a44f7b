/** REST routes for BMC actions on nodesets: power, boot device, identity. */
import type { FastifyInstance } from 'fastify';
import { parseStagger } from '../../bmc/fanout.js';
import type { ProviderContext } from '../../bmc/registry.js';
import type { BootMode } from '../../bmc/types.js';
import * as S from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { DEFAULT_EXPAND_LIMIT } from '../../nodeset/index.js';
import { expandNodeset } from '../nodesets.js';
import { runBmcOperation, type BmcOperation, type BOOT_DEVICES, type POWER_OPS } from '../../bmc/operation.js';
import type { Store } from '../../store/index.js';
import { rotateBmcCredentials } from '../../bmc/rotate.js';
import { actorOf } from './actor.js';

export interface BmcDeps {
  store: Store;
  nodesetLimit?: number;
  /** Absent: the server runs without BMC access (the routes answer not_implemented). */
  bmc?: { providers: ProviderContext; concurrency?: number; timeoutMs?: number; retries?: number };
}

/** The contract's lists are the operations' own, both ways (a compile error otherwise). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameLists: [Same<S.PowerOp, (typeof POWER_OPS)[number]>, Same<S.BootDeviceName, (typeof BOOT_DEVICES)[number]>, Same<(typeof S.BOOT_MODES)[number], BootMode>] = [true, true, true];
void sameLists;

export async function registerBmcRoutes(api: FastifyInstance, deps: BmcDeps): Promise<void> {
  // Stopping the server (close(), SIGTERM) ends every fan-out in progress: a staggered one could
  // otherwise hold the close for up to (nodes / N) intervals. Aborted nodes say so in their result.
  const stopping = new AbortController();
  api.addHook('preClose', async () => {
    stopping.abort(new FleetError('unavailable', 'not done: the server is stopping'));
  });
  const run = async (req: { ip: string; headers: Record<string, unknown> }, body: S.BmcInfoRequest & { stagger?: string }, op: BmcOperation): Promise<S.BmcResponse> => {
    if (!deps.bmc) throw new FleetError('not_implemented', 'this server runs without BMC access');
    const names = await expandNodeset(deps.store, body.nodeset, deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT);
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

  api.post<{ Body: S.PowerRequest }>(
    '/power',
    {
      schema: {
        summary:
          'Power status or action on a nodeset through the BMCs (on can be staggered: "10/2s"). off, soft, cycle and reset are sent at most once: never retried after a timeout; a node whose BMC did not answer is reported with "unconfirmed" and the power read back',
        body: S.PowerRequest,
        response: { 200: S.BmcResponse },
      },
    },
    async (req) => run(req, req.body, { kind: 'power', op: req.body.op }),
  );

  api.post<{ Body: S.BootdevRequest }>(
    '/bootdev',
    {
      schema: {
        summary: 'Set the boot device (next boot only unless persistent)',
        body: S.BootdevRequest,
        response: { 200: S.BmcResponse },
      },
    },
    async (req) => run(req, req.body, { kind: 'bootdev', device: req.body.device, persistent: req.body.persistent ?? false, mode: req.body.mode ?? 'auto' }),
  );

  api.post<{ Body: S.BmcInfoRequest }>(
    '/bmc/info',
    {
      schema: {
        summary: 'BMC identity: manufacturer, model, serial, UUID, firmware, MACs',
        body: S.BmcInfoRequest,
        response: { 200: S.BmcResponse },
      },
    },
    async (req) => run(req, req.body, { kind: 'info' }),
  );

  api.post<{ Body: S.BmcRotateRequest }>(
    '/bmc/rotate',
    {
      schema: {
        summary:
          'Rotate the BMC account of each node: a new administrator account (fleet-a/fleet-b) with a generated password, verified by a session of its own before it is recorded (sealed, per node); only then is the old account disabled. A failure leaves the credential in use unchanged. The password is never returned.',
        body: S.BmcRotateRequest,
        response: { 200: S.BmcRotateResponse },
      },
    },
    async (req): Promise<S.BmcRotateResponse> => {
      if (!deps.bmc) throw new FleetError('not_implemented', 'this server runs without BMC access');
      const size = req.body.passwordLength;
      if (size !== undefined && size !== 16 && size !== 20) throw new FleetError('request.invalid', `passwordLength ${size}: 16 or 20 (IPMI password sizes)`);
      const names = await expandNodeset(deps.store, req.body.nodeset, deps.nodesetLimit ?? DEFAULT_EXPAND_LIMIT);
      const results = await rotateBmcCredentials(deps.store, names, {
        actor: actorOf(req),
        providers: deps.bmc.providers,
        cause: 'fleet bmc rotate',
        ...(req.body.concurrency !== undefined ? { concurrency: req.body.concurrency } : {}),
        ...(req.body.timeoutMs !== undefined ? { timeoutMs: req.body.timeoutMs } : {}),
        ...(size !== undefined ? { passwordSize: size } : {}),
      });
      const ok = results.filter((r) => r.ok).length;
      return { results, summary: { total: results.length, ok, failed: results.length - ok } };
    },
  );
}

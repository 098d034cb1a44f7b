/**
 * Discovery rule routes of the REST API (/api/v1, bearer-protected by the
 * admin scope's hook on the matched route), thin over server/discovery:
 *
 *   GET  /discover/plan                                   names, IPs, BMCs the rules would give; the rest with why
 *   POST /discover/accept {macs?, expect?, force?, stagger?}   planned machines → nodes; on_accept install starts the reinstall
 *   POST /discover/reject {macs}                          machines set aside: plans skip them
 *   POST /discover/unreject {macs}                        rejected machines taken back: plans consider them again
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { parseStagger } from '../../bmc/fanout.js';
import { acceptMachines, currentPlan, rejectMachines, unrejectMachines, type DiscoveryDeps } from '../../discovery/index.js';
import { actorOf } from './actor.js';

export async function registerDiscoverRoutes(api: FastifyInstance, deps: DiscoveryDeps): Promise<void> {
  api.get(
    '/discover/plan',
    { schema: { summary: 'The naming plan for discovered machines: what each rule gives, and why the others get nothing', response: { 200: S.DiscoverPlanResponse } } },
    async (): Promise<S.DiscoverPlanResponse> => {
      const { policy, rules, plan } = await currentPlan(deps.store);
      return { policy, rules, ...plan };
    },
  );

  api.post<{ Body: S.DiscoverAcceptRequest }>(
    '/discover/accept',
    {
      schema: {
        summary: 'Accept planned machines: each becomes its planned node (kept by apply); on_accept install starts the reinstall as fleet reinstall does',
        body: S.DiscoverAcceptRequest,
        response: { 200: S.DiscoverAcceptResponse },
      },
    },
    async (req): Promise<S.DiscoverAcceptResponse> => {
      const stagger = req.body.stagger !== undefined ? parseStagger(req.body.stagger) : undefined;
      const res = await acceptMachines(deps, {
        ...(req.body.macs !== undefined ? { macs: req.body.macs } : {}),
        ...(req.body.expect !== undefined ? { expect: req.body.expect } : {}),
        force: req.body.force === true,
        ...(stagger ? { stagger } : {}),
        actor: actorOf(req),
        via: 'command',
      });
      const ok = res.accepted.filter((a) => a.install === null || a.install.ok).length;
      req.log.info({ accepted: res.accepted.length, ok }, 'discover accept');
      return { accepted: res.accepted, summary: { total: res.accepted.length, ok, failed: res.accepted.length - ok } };
    },
  );

  api.post<{ Body: S.DiscoverRejectRequest }>(
    '/discover/reject',
    {
      schema: {
        summary: 'Reject discovered machines: plans skip them and list them as rejected',
        body: S.DiscoverRejectRequest,
        response: { 200: S.DiscoverRejectResponse },
      },
    },
    async (req): Promise<S.DiscoverRejectResponse> => ({ rejected: await rejectMachines(deps.store, req.body.macs, actorOf(req)) }),
  );

  api.post<{ Body: S.DiscoverRejectRequest }>(
    '/discover/unreject',
    {
      schema: {
        summary: 'Take rejected machines back: plans consider them again',
        body: S.DiscoverRejectRequest,
        response: { 200: S.DiscoverUnrejectResponse },
      },
    },
    async (req): Promise<S.DiscoverUnrejectResponse> => ({ unrejected: await unrejectMachines(deps.store, req.body.macs, actorOf(req)) }),
  );
}

/**
 * BMC discovery by scan (issue 13 item 4), in the admin API's authenticated
 * scope (the bearer token is checked on the matched route, like every
 * /api/v1 route):
 *
 *   POST /discover/bmc   scan a subnet for IPMI and Redfish BMCs; record the BMCs found
 *   GET  /discover/bmc   the BMCs found so far
 *
 * The server does the scan, so `fleet discover bmc` works from anywhere the
 * API is reachable, and the probes leave from the management node, which is
 * on the BMC network. One scan at a time: a second one is refused (409)
 * while one runs. Stopping the server stops handing out addresses; what was
 * not probed is reported as not scanned.
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import type { HostFinding } from '../../discovery/scan-classify.js';
import { planScan } from '../../discovery/scan-input.js';
import { recordBmcScan, runBmcScan, type ScanResult } from '../../discovery/scan.js';
import type { DiscoveredBmc, Store } from '../../store/index.js';
import { actorOf } from './actor.js';

export interface DiscoverBmcDeps {
  store: Store;
}

/** The plan's protocols as the API names them: ["ipmi/623", "redfish/443"]. */
export function protocolsOf(plan: ScanResult['plan']): string[] {
  return [...(plan.ipmi ? [`ipmi/${plan.ipmi.port}`] : []), ...(plan.redfish ? [`redfish/${plan.redfish.port}`] : [])];
}

function toApiHost(h: HostFinding, added: Set<string>): S.BmcScanHost {
  return { address: h.address, verdict: h.verdict, new: added.has(h.address), ipmi: h.ipmi, redfish: h.redfish };
}

export function toApiScan(r: ScanResult, added: Set<string>): S.BmcScanResponse {
  const p = r.plan;
  return {
    subnet: p.subnet,
    protocols: protocolsOf(p),
    concurrency: p.concurrency,
    timeoutMs: p.timeoutMs,
    retries: p.retries,
    boundMs: p.boundMs,
    startedAt: r.startedAt,
    durationMs: r.durationMs,
    summary: { ...r.counts, new: added.size },
    hosts: r.answered.map((h) => toApiHost(h, added)),
    silent: r.silent,
    notScanned: r.notScanned,
  };
}

export function toApiDiscoveredBmc(b: DiscoveredBmc): S.ApiDiscoveredBmc {
  return {
    address: b.address,
    ipmi: b.ipmi,
    redfish: b.redfish,
    uuid: b.uuid,
    vendor: b.vendor,
    product: b.product,
    tlsFingerprint: b.tlsFingerprint,
    firstSeen: b.firstSeen,
    lastSeen: b.lastSeen,
    nodes: b.nodes,
  };
}

export async function registerDiscoverBmcRoutes(api: FastifyInstance, deps: DiscoverBmcDeps): Promise<void> {
  const stopping = new AbortController();
  api.addHook('preClose', async () => stopping.abort());
  let running: { subnet: string; actor: string; since: string } | null = null;

  api.post<{ Body: S.BmcScanRequest }>(
    '/discover/bmc',
    {
      schema: {
        summary:
          'Scan an IPv4 subnet for BMCs: RMCP presence ping and Get Channel Auth Caps (IPMI, no session), GET /redfish/v1/ (Redfish, no credentials, TLS not verified: the certificate SHA-256 is recorded). Bounded concurrency and per-address timeout; records each BMC found (bmc.discovered the first time). One scan at a time.',
        body: S.BmcScanRequest,
        response: { 200: S.BmcScanResponse },
      },
    },
    async (req): Promise<S.BmcScanResponse> => {
      const plan = planScan(req.body);
      const actor = actorOf(req);
      if (running) {
        throw new FleetError('conflict', `a BMC scan of ${running.subnet} is running (asked by ${running.actor} at ${running.since}); one scan at a time`);
      }
      running = { subnet: plan.subnet, actor, since: new Date().toISOString() };
      try {
        req.log.info({ subnet: plan.subnet, addresses: plan.count, protocols: protocolsOf(plan), concurrency: plan.concurrency, timeoutMs: plan.timeoutMs, boundMs: plan.boundMs }, 'BMC scan started');
        const result = await runBmcScan(plan, { signal: stopping.signal });
        const { added } = await recordBmcScan(deps.store, result, actor);
        req.log.info({ subnet: plan.subnet, ...result.counts, new: added.size, durationMs: result.durationMs }, 'BMC scan done');
        return toApiScan(result, added);
      } finally {
        running = null;
      }
    },
  );

  api.get(
    '/discover/bmc',
    { schema: { summary: 'BMCs found by scans, in address order, with what they said and the nodes whose BMC is at that address', response: { 200: S.DiscoveredBmcsResponse } } },
    async (): Promise<S.DiscoveredBmcsResponse> => ({ bmcs: (await deps.store.discoveredBmcs.list()).map(toApiDiscoveredBmc) }),
  );
}

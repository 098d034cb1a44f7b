/**
 * Netboot routes of the REST API (/api/v1, bearer-protected by the app):
 *
 *   GET  /render/:node/ipxe?platform=   what the node would be served now if its primary MAC booted
 *   GET  /render/:node/kickstart        the node's kickstart, PLACEHOLDER_TOKEN for every token
 *   GET  /export/:format                hosts | dnsmasq | ansible-inventory | clustershell-groups
 *   GET  /discovered                    machines seen on the network that no node declares
 *   POST /enroll {mac, name, profile?}  a node from a discovered machine
 *
 * Render and export answer text/plain, or `{..., text}` JSON when the client
 * asks for application/json (the CLI does). Previews issue no token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { show } from '../../../common/patterns.js';
import { FleetError } from '../../../common/errors.js';
import { EXPORT_FORMATS, exportAs, isExportFormat } from '../../inventory/export.js';
import { clusterInfo, previewIpxe, previewKickstart, type RenderDeps } from '../../netboot/scripts.js';
import { enrollMachine } from '../../netboot/enroll.js';
import type { DiscoveredMachine } from '../../store/index.js';
import { bmcOwners } from '../../discovery/facts.js';
import { actorOf } from './actor.js';
import { toApiNode } from './api.js';

export interface NetbootApiDeps extends RenderDeps {
  /** Called after enroll created a node (DHCP reservations follow). */
  onNodesChanged?: () => Promise<void>;
}

/** The contract's list is the exporters' own, both ways (a compile error otherwise). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameFormats: Same<S.ExportFormat, (typeof EXPORT_FORMATS)[number]> = true;
void sameFormats;

function wantsJson(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && /\bapplication\/json\b/.test(accept);
}

function answer<T extends { text: string }>(req: FastifyRequest, reply: FastifyReply, body: T): FastifyReply {
  if (wantsJson(req)) return reply.send(body);
  return reply.type('text/plain; charset=utf-8').send(body.text);
}

function toApiDiscovered(m: DiscoveredMachine, bmcOf: ReadonlyMap<string, string>): S.ApiDiscovered {
  return {
    mac: m.mac,
    ip: m.ip,
    hostname: m.hostname,
    vendorClass: m.vendorClass,
    arch: m.arch,
    pxe: m.pxe,
    firstSeen: m.firstSeen,
    lastSeen: m.lastSeen,
    inspectedAt: m.inspectedAt,
    inspection: m.inspection,
    bmcOf: bmcOf.get(m.mac) ?? null,
  };
}

export async function registerNetbootApiRoutes(api: FastifyInstance, deps: NetbootApiDeps): Promise<void> {
  api.get<{ Params: S.NodeParams; Querystring: S.RenderIpxeQuery }>(
    '/render/:name/ipxe',
    {
      schema: {
        summary: 'The iPXE script the node would be served now (tokens replaced by a placeholder; nothing is issued)',
        params: S.NodeParams,
        querystring: S.RenderIpxeQuery,
        response: { 200: S.RenderResponse },
      },
    },
    async (req, reply) => {
      const { decision, text } = await previewIpxe(deps, req.params.name, req.query.platform ? { platform: req.query.platform } : {});
      return answer(req, reply, { node: req.params.name, kind: 'ipxe', decision: decision.kind, text } satisfies S.RenderResponse);
    },
  );

  api.get<{ Params: S.NodeParams }>(
    '/render/:name/kickstart',
    {
      schema: {
        summary: "The node's kickstart (tokens replaced by a placeholder; served to the node only while it is armed)",
        params: S.NodeParams,
        response: { 200: S.RenderResponse },
      },
    },
    async (req, reply) => {
      const text = await previewKickstart(deps, req.params.name);
      return answer(req, reply, { node: req.params.name, kind: 'kickstart', text } satisfies S.RenderResponse);
    },
  );

  api.get<{ Params: S.ExportParams }>(
    '/export/:format',
    {
      schema: {
        summary: `The declared cluster for other tools: ${EXPORT_FORMATS.join(', ')}`,
        params: S.ExportParams,
        response: { 200: S.ExportResponse },
      },
    },
    async (req, reply) => {
      const format = req.params.format;
      if (!isExportFormat(format)) throw new FleetError('request.invalid', `unknown export format ${show(format)} (${EXPORT_FORMATS.join(', ')})`);
      const cluster = await clusterInfo(deps.store);
      const nodes = await deps.store.nodes.list();
      const text = exportAs(format, { cluster, nodes });
      return answer(req, reply, { format, text } satisfies S.ExportResponse);
    },
  );

  api.get(
    '/discovered',
    { schema: { summary: 'Machines seen on the provisioning network that no node declares, newest first', response: { 200: S.DiscoveredResponse } } },
    async (): Promise<S.DiscoveredResponse> => {
      const machines = await deps.store.discovered.list({ unknownOnly: true });
      const owners = bmcOwners(machines);
      return { machines: machines.map((m) => toApiDiscovered(m, owners)) };
    },
  );

  api.post<{ Body: S.EnrollRequest }>(
    '/enroll',
    {
      schema: {
        summary: 'Create a node from a discovered machine (not written to fleet.yaml)',
        body: S.EnrollRequest,
        response: { 200: S.EnrollResponse },
      },
    },
    async (req): Promise<S.EnrollResponse> => {
      const res = await enrollMachine(deps.store, req.body, actorOf(req));
      req.log.info({ node: res.node.name, mac: req.body.mac }, 'enrolled a discovered machine');
      await deps.onNodesChanged?.();
      return { node: toApiNode(res.node), ...(res.ipNote !== undefined ? { ipNote: res.ipNote } : {}) };
    },
  );
}

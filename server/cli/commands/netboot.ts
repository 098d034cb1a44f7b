/**
 * Netboot CLI commands, thin clients of the REST API:
 *   fleet render ipxe|kickstart NODE       what the node would be served now (placeholder tokens)
 *   fleet export FORMAT                     hosts, dnsmasq, ansible-inventory, clustershell-groups
 *   fleet export ansible-inventory --list|--dynamic|--host NODE
 *                                           Ansible's dynamic inventory script protocol (JSON)
 *   fleet discovered [--json]               machines seen on the network that no node declares
 *   fleet enroll MAC --name N [--profile P] a node from a discovered machine
 */
import { Exit, FleetError } from '../../../common/errors.js';
import type { DiscoveredResponse, EnrollRequest, EnrollResponse, ExportResponse, NodesResponse, RenderResponse } from '../../../common/api/schemas.js';
import { ansibleDynamicInventory, ansibleHostVars, EXPORT_FORMATS, isExportFormat, type ExportNode } from '../../inventory/export.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

export const RENDER_KINDS = ['ipxe', 'kickstart'] as const;
export type RenderKind = (typeof RENDER_KINDS)[number];

function withNewline(s: string): string {
  return s.endsWith('\n') ? s : `${s}\n`;
}

export async function cmdRender(flags: GlobalFlags, kind: string, node: string, io: CliIo): Promise<number> {
  if (!(RENDER_KINDS as readonly string[]).includes(kind)) throw new FleetError('usage.invalid', `render what? ${JSON.stringify(kind)} is not one of ${RENDER_KINDS.join(', ')}`);
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<RenderResponse>(settings, 'GET', `/api/v1/render/${encodeURIComponent(node)}/${kind}`);
  io.stdout(withNewline(res.text));
  return Exit.OK;
}

/** The parts of an inspection report (server/discovery/inspection.ts) the table shows. */
interface InspectionView {
  system: { serial?: string; manufacturer?: string; model?: string };
  bmc: { ip?: string; mac?: string } | { absent: string };
  nics?: { mac: string; lldp?: { switch: string; port: string } | null }[];
}

function modelOf(i: InspectionView | null): string {
  if (!i) return '-';
  return [i.system.manufacturer, i.system.model].filter((x) => x !== undefined).join(' ') || '-';
}

function bmcOf(i: InspectionView | null): string {
  if (!i) return '-';
  if ('absent' in i.bmc) return 'none';
  return i.bmc.ip ?? i.bmc.mac ?? 'no address';
}

/** The switch and port of the boot NIC (else of the first NIC that heard one), as the rules see them (inspection.ts lldpFacts). */
function switchPortOf(i: InspectionView | null, bootMac: string): string {
  const listened = (i?.nics ?? []).filter((n) => n.lldp !== undefined);
  if (listened.length === 0) return '-';
  const heard = listened.find((n) => n.mac === bootMac && n.lldp) ?? listened.find((n) => n.lldp);
  return heard?.lldp ? `${heard.lldp.switch} ${heard.lldp.port}` : 'none heard';
}

/** `--list`/`--dynamic` and `--host`: Ansible's inventory script protocol. */
export interface ExportFlags {
  list?: boolean;
  dynamic?: boolean;
  host?: string;
}

export async function cmdExport(flags: GlobalFlags, format: string, opts: ExportFlags, io: CliIo): Promise<number> {
  if (!isExportFormat(format)) throw new FleetError('usage.invalid', `unknown export format ${JSON.stringify(format)}: use one of ${EXPORT_FORMATS.join(', ')}`);
  const dynamic = opts.list === true || opts.dynamic === true;
  if ((dynamic || opts.host !== undefined) && format !== 'ansible-inventory') {
    throw new FleetError('usage.invalid', `--list, --dynamic and --host are Ansible's inventory script protocol: only with ansible-inventory, not ${format}`);
  }
  if (dynamic && opts.host !== undefined) throw new FleetError('usage.invalid', '--list and --host are each a whole answer: give one');
  const settings = await resolveClientSettings(flags, io);
  if (dynamic || opts.host !== undefined) {
    const res = await apiRequest<NodesResponse>(settings, 'GET', '/api/v1/nodes');
    const nodes: (ExportNode & { state: string })[] = res.nodes.map((n) => ({ name: n.name, profile: n.profile, ip: n.ip, macs: n.macs, state: n.state }));
    if (dynamic) {
      io.stdout(JSON.stringify(ansibleDynamicInventory(nodes), null, 2) + '\n');
      return Exit.OK;
    }
    const inv = ansibleDynamicInventory(nodes); // the same checks as --list
    const node = nodes.find((n) => n.name === opts.host);
    if (node === undefined || inv._meta.hostvars[node.name] === undefined) throw new FleetError('node.not_found', `node ${JSON.stringify(opts.host)} is not in the store`);
    io.stdout(JSON.stringify(ansibleHostVars(node), null, 2) + '\n');
    return Exit.OK;
  }
  const res = await apiRequest<ExportResponse>(settings, 'GET', `/api/v1/export/${format}`);
  io.stdout(withNewline(res.text));
  return Exit.OK;
}

export async function cmdDiscovered(flags: GlobalFlags, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<DiscoveredResponse>(settings, 'GET', '/api/v1/discovered');
  if (opts.json) {
    io.stdout(JSON.stringify(res.machines, null, 2) + '\n');
    return Exit.OK;
  }
  if (res.machines.length === 0) {
    io.stdout('no unknown machines seen\n');
    return Exit.OK;
  }
  io.stdout(
    formatTable(
      ['mac', 'ip', 'serial', 'model', 'bmc', 'switch port', 'arch', 'pxe', 'inspected', 'last seen'],
      res.machines.map((m) => {
        const i = m.inspection as InspectionView | null;
        return [m.mac, m.ip ?? '-', i?.system.serial ?? '-', modelOf(i), m.bmcOf ? `bmc of ${m.bmcOf}` : bmcOf(i), switchPortOf(i, m.mac), m.arch ?? '-', m.pxe ? 'yes' : 'no', m.inspectedAt ?? '-', m.lastSeen];
      }),
    ) + '\n',
  );
  return Exit.OK;
}

export async function cmdEnroll(flags: GlobalFlags, mac: string, opts: { name?: string; profile?: string }, io: CliIo): Promise<number> {
  if (!opts.name) throw new FleetError('usage.invalid', 'enroll needs --name NAME for the new node');
  const settings = await resolveClientSettings(flags, io);
  const body: EnrollRequest = { mac, name: opts.name, ...(opts.profile !== undefined ? { profile: opts.profile } : {}) };
  const res = await apiRequest<EnrollResponse>(settings, 'POST', '/api/v1/enroll', body);
  const n = res.node;
  io.stdout(`enrolled ${n.name}: profile ${n.profile}, MAC ${n.macs.join(', ')}, IP ${n.ip ?? 'none'}, state ${n.state}\n`);
  if (res.ipNote) io.stdout(`note: no IP kept: ${res.ipNote}\n`);
  io.stderr(`fleet: ${n.name} is not in fleet.yaml; add it there, or a later fleet apply of that file removes it\n`);
  return Exit.OK;
}

/**
 * `fleet inventory [NODESET] [--format table|json|csv|html]` and
 * `fleet inventory diff NODE [--json]`: thin clients of GET /api/v1/inventory.
 */
import type { InventoryDiffResponse, InventoryResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { formatInventory, formatInventoryDiff, INVENTORY_FORMATS, partialSummary, type InventoryFormat } from '../../inventory/report.js';
import { foldNames } from '../../nodeset/index.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

export async function cmdInventory(flags: GlobalFlags, nodeset: string | undefined, opts: { format?: string }, io: CliIo): Promise<number> {
  const format = (opts.format ?? 'table') as InventoryFormat;
  if (!INVENTORY_FORMATS.includes(format)) throw new FleetError('usage.invalid', `--format must be one of ${INVENTORY_FORMATS.join(', ')}`);
  const settings = await resolveClientSettings(flags, io);
  const q = nodeset ? `?nodeset=${encodeURIComponent(nodeset)}` : '';
  const res = await apiRequest<InventoryResponse>(settings, 'GET', `/api/v1/inventory${q}`);
  io.stdout(formatInventory(res.nodes, format, { generatedAt: new Date().toISOString() }));
  const never = res.nodes.filter((n) => n.inventory === null).map((n) => n.node);
  if (never.length > 0) io.stderr(`fleet: no inventory reported yet: ${foldNames(never)}\n`);
  const partial = partialSummary(res.nodes);
  if (partial !== '') io.stderr(`fleet: partial inventory (a probe failed; see unknown in --format json): ${partial}\n`);
  if (nodeset && res.missing.length > 0) {
    io.stderr(`fleet: not in the store: ${res.missingFolded}\n`);
    return Exit.FAILED;
  }
  return Exit.OK;
}

export async function cmdInventoryDiff(flags: GlobalFlags, node: string, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<InventoryDiffResponse>(settings, 'GET', `/api/v1/inventory/${encodeURIComponent(node)}/diff`);
  io.stdout(opts.json ? JSON.stringify(res, null, 2) + '\n' : formatInventoryDiff(res));
  return Exit.OK;
}

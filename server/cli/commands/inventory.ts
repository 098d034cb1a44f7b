/**
 * `fleet inventory [NODESET] [--format table|json|csv|html]`,
 * `fleet inventory diff NODE [--json]`: thin clients of GET /api/v1/inventory;
 * `fleet inventory reconcile NODESET`: of POST /api/v1/inventory/reconcile.
 */
import type { InventoryDiffResponse, InventoryResponse, ReconcileRequest, ReconcileResponse } from '../../../common/api/schemas.js';
import { summarizeChecks } from '../../inventory/reconcile.js';
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

export const RECONCILE_FORMATS = ['table', 'json'] as const;

/** One line per node: `valkyrie01  match     uuid=… serial=…`, `mismatch  uuid agent=… bmc=…`, `unknown   (no inventory yet)`. */
export function formatReconcile(results: ReconcileResponse['results']): string {
  const w = Math.max(0, ...results.map((r) => r.node.length));
  return results
    .map((r) => {
      const detail = r.status === 'unknown' ? `(${r.reason})` : summarizeChecks(r as Parameters<typeof summarizeChecks>[0]);
      return `${r.node.padEnd(w)}  ${r.status.padEnd(8)}  ${detail}`.trimEnd();
    })
    .join('\n');
}

/**
 * `fleet inventory reconcile NODESET [--format table|json]`: each node's
 * latest agent inventory against its BMC's identity (POST
 * /api/v1/inventory/reconcile). Exit 1 when any node mismatches (it is then
 * flagged bmc-mismatch), when a BMC could not be read or a name is not in
 * the store; unknown (no inventory yet, nothing decisive) is not a failure.
 */
export async function cmdInventoryReconcile(flags: GlobalFlags, nodeset: string, opts: { format?: string; timeout?: string }, io: CliIo): Promise<number> {
  const format = opts.format ?? 'table';
  if (!(RECONCILE_FORMATS as readonly string[]).includes(format)) throw new FleetError('usage.invalid', `--format must be one of ${RECONCILE_FORMATS.join(', ')}`);
  let timeoutMs: number | undefined;
  if (opts.timeout !== undefined) {
    const s = Number(opts.timeout);
    if (!Number.isFinite(s) || s <= 0) throw new FleetError('usage.invalid', '--timeout takes a number of seconds');
    timeoutMs = Math.round(s * 1000);
  }
  const settings = await resolveClientSettings(flags, io);
  const body: ReconcileRequest = { nodeset, ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
  const res = await apiRequest<ReconcileResponse>(settings, 'POST', '/api/v1/inventory/reconcile', body, 30 * 60_000);
  if (format === 'json') io.stdout(JSON.stringify(res, null, 2) + '\n');
  else if (res.results.length > 0) io.stdout(formatReconcile(res.results) + '\n');
  const named = (pred: (r: ReconcileResponse['results'][number]) => boolean) => foldNames(res.results.filter(pred).map((r) => r.node));
  const raised = named((r) => r.flag === 'raised');
  const cleared = named((r) => r.flag === 'cleared');
  const failed = res.results.filter((r) => r.error !== undefined);
  if (raised) io.stderr(`fleet: flagged bmc-mismatch (the BMC describes another machine; check its cabling and fleet.yaml): ${raised}\n`);
  if (cleared) io.stderr(`fleet: bmc-mismatch cleared: ${cleared}\n`);
  if (failed.length > 0) io.stderr(`fleet: BMC not read: ${foldNames(failed.map((r) => r.node))}\n`);
  if (res.missing.length > 0) io.stderr(`fleet: not in the store: ${res.missingFolded}\n`);
  return res.summary.mismatch > 0 || failed.length > 0 || res.missing.length > 0 ? Exit.FAILED : Exit.OK;
}

/**
 * `fleet inventory`: the latest hardware inventory of nodes as a table, JSON,
 * CSV or one self-contained HTML file; and `fleet inventory diff`. Pure:
 * formatters of what the API answers (GET /api/v1/inventory).
 *
 * - CSV follows RFC 4180: one header line, CRLF line ends, a field holding a
 *   comma, a double quote, CR or LF is quoted, quotes doubled. A field that
 *   starts with = + - @ TAB or CR gets a leading ' so a spreadsheet does not
 *   run it as a formula (the values come from the nodes: a DMI string is
 *   whatever the machine says).
 * - HTML: one file, no script, no external asset (inline CSS, a CSP that
 *   forbids everything else), every value escaped.
 * - A section the report does not know (Inventory.unknown: its probe failed)
 *   reads `unknown` in every format, never 0 or empty; in JSON its value is
 *   the string "unknown" and `unknown` lists the reasons.
 */
import type { Inventory, InventoryChange, InventorySection, UnknownSection } from '../../common/inventory/types.js';

export type InventoryFormat = 'table' | 'json' | 'csv' | 'html';
export const INVENTORY_FORMATS: readonly InventoryFormat[] = ['table', 'json', 'csv', 'html'];

/** One node's latest report (inventory null: the node never reported). */
export interface InventoryRow {
  node: string;
  reportedAt: string | null;
  inventory: Inventory | null;
}

export interface InventoryDiffReport {
  node: string;
  /** The older of the two reports compared (null: fewer than two reports). */
  before: { id: number; reportedAt: string } | null;
  after: { id: number; reportedAt: string } | null;
  /** Why the two were not compared (the older is partial), or null. Absent from servers before it existed. */
  refused?: string | null;
  /** Sections the newer report does not know: not compared. */
  notCompared?: UnknownSection[];
  changes: InventoryChange[];
}

/** What a cell of an unknown section shows. */
export const UNKNOWN_CELL = 'unknown';

export const INVENTORY_COLUMNS = ['node', 'model', 'serial', 'cpus', 'memory', 'disks', 'nics', 'gpus', 'infiniband', 'bios', 'reported'] as const;
export type InventoryColumn = (typeof INVENTORY_COLUMNS)[number];

const GiB = 1024 ** 3;
const TB = 1000 ** 4;

function gib(b: number): string {
  return `${+(b / GiB).toFixed(b >= 100 * GiB || b === 0 ? 0 : 1)} GiB`;
}

/** Disks are sold in decimal units. */
function diskSize(b: number): string {
  if (b >= TB) return `${+(b / TB).toFixed(1)} TB`;
  return `${Math.round(b / 1000 ** 3)} GB`;
}

const join = (parts: (string | false | undefined)[], sep = ' '): string => parts.filter((p): p is string => typeof p === 'string' && p !== '').join(sep);

/** The key columns of one inventory, as one-line strings. Lists are joined with "; ". */
export function inventoryCells(row: InventoryRow): Record<InventoryColumn, string> {
  const inv = row.inventory;
  if (!inv) return { node: row.node, model: '', serial: '', cpus: '', memory: '', disks: '', nics: '', gpus: '', infiniband: '', bios: '', reported: '' };
  const gpuGroups = new Map<string, number>();
  for (const g of inv.gpus) gpuGroups.set(g.model, (gpuGroups.get(g.model) ?? 0) + 1);
  const unknown = new Set<InventorySection>(inv.unknown.map((u) => u.section));
  const cell = (section: InventorySection, text: () => string): string => (unknown.has(section) ? UNKNOWN_CELL : text());
  const dimms = unknown.has('dimms') ? ' (DIMMs unknown)' : inv.memory.dimms.length ? ` (${inv.memory.dimms.length} DIMMs)` : '';
  return {
    node: row.node,
    model: cell('system', () => join([inv.system.manufacturer, inv.system.model])),
    serial: cell('system', () => inv.system.serial),
    cpus: cell('cpus', () =>
      inv.cpus.sockets > 0 || inv.cpus.model
        ? `${inv.cpus.sockets}x ${inv.cpus.model || '?'} (${inv.cpus.cores}c/${inv.cpus.threads}t)`
        : `${inv.cpus.threads} CPUs`,
    ),
    memory: cell('memory', () => `${gib(inv.memory.totalBytes)}${dimms}`),
    disks: cell('disks', () => inv.disks.map((d) => join([d.name, diskSize(d.sizeBytes), d.type || d.interface, d.model])).join('; ')),
    nics: cell('nics', () => inv.nics.map((n) => join([n.name, n.mac, n.speedMbps ? `${n.speedMbps >= 1000 ? `${n.speedMbps / 1000}G` : `${n.speedMbps}M`}` : ''])).join('; ')),
    gpus: cell('gpus', () => [...gpuGroups].map(([m, k]) => `${k}x ${m}`).join('; ')),
    infiniband: cell('infiniband', () =>
      inv.infiniband
        .map((h) => join([h.name, h.ports.length > 0 && `(${h.ports.map((p) => join([`port ${p.port}`, p.state, p.rate])).join(', ')})`, h.fwVersion && `fw ${h.fwVersion}`]))
        .join('; '),
    ),
    bios: cell('bios', () => join([inv.bios.vendor, inv.bios.version, inv.bios.date && `(${inv.bios.date})`])),
    reported: row.reportedAt ?? '',
  };
}

/** One line for stderr naming the partial reports, e.g. "lab-node1 (memory, cpus unknown); lab-node2 (disks unknown)"; '' when none. */
export function partialSummary(rows: InventoryRow[]): string {
  return rows
    .filter((r) => r.inventory && (r.inventory.partial || r.inventory.unknown.length > 0))
    .map((r) => `${r.node} (${r.inventory!.unknown.map((u) => u.section).join(', ') || 'sections'} unknown)`)
    .join('; ');
}

// ------------------------------------------------------------------ table

/**
 * For terminals: control characters (line breaks, ESC sequences a hostile
 * DMI string could carry) shown as \xHH, so a cell stays on its line and
 * cannot drive the terminal.
 */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function formatInventoryTable(rows: InventoryRow[]): string {
  const cols = INVENTORY_COLUMNS.filter((c) => c !== 'reported');
  const cells = rows.map((r) => {
    const c = inventoryCells(r);
    if (!r.inventory) return cols.map((k) => (k === 'node' ? r.node : k === 'model' ? '(no report)' : '-'));
    return cols.map((k) => printable(c[k]) || '-');
  });
  const widths = cols.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (xs: string[]) =>
    xs
      .map((x, i) => (i === xs.length - 1 ? x : x.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

// ------------------------------------------------------------------ JSON

/** Where each section lives in an Inventory, for the JSON view. */
const SECTION_PATHS: Record<InventorySection, readonly string[]> = {
  system: ['system'],
  baseboard: ['baseboard'],
  bios: ['bios'],
  cpus: ['cpus'],
  memory: ['memory', 'totalBytes'],
  dimms: ['memory', 'dimms'],
  disks: ['disks'],
  nics: ['nics'],
  gpus: ['gpus'],
  infiniband: ['infiniband'],
  os: ['os'],
};

/**
 * The inventory as `--format json` prints it: every unknown section's value
 * is the string "unknown" (so no reader takes its zeros for data); the
 * reasons are in `unknown`, and `partial` says whether there are any.
 */
export function inventoryJsonView(inv: Inventory): Record<string, unknown> {
  const out = structuredClone(inv) as unknown as Record<string, unknown>;
  for (const u of inv.unknown) {
    const p = SECTION_PATHS[u.section];
    let o: Record<string, unknown> = out;
    for (const k of p.slice(0, -1)) o = o[k] as Record<string, unknown>;
    o[p[p.length - 1]!] = UNKNOWN_CELL;
  }
  return out;
}

export function formatInventoryJson(rows: InventoryRow[]): string {
  return JSON.stringify(rows.map((r) => ({ ...r, inventory: r.inventory ? inventoryJsonView(r.inventory) : null })), null, 2) + '\n';
}

// ------------------------------------------------------------------ CSV

/** One RFC 4180 field, formula-neutralised. */
export function csvField(v: string): string {
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatInventoryCsv(rows: InventoryRow[]): string {
  const lines = [INVENTORY_COLUMNS.join(',')];
  for (const r of rows) {
    const c = inventoryCells(r);
    lines.push(INVENTORY_COLUMNS.map((k) => csvField(c[k])).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

// ------------------------------------------------------------------ HTML

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 1em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
.muted{color:#888}.warn{color:#a40}
details{margin:.2em 0}summary{cursor:pointer;font-weight:600}
`.trim();

function htmlTable(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '<p class="muted">none</p>';
  const th = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${tr}\n</tbody>\n</table>`;
}

function nodeDetails(row: InventoryRow): string {
  const inv = row.inventory;
  const title = `<summary>${escapeHtml(row.node)}</summary>`;
  if (!inv) return `<details>${title}<p class="muted">no inventory reported</p></details>`;
  const why = new Map(inv.unknown.map((u) => [u.section, u.reason]));
  // A list whose section is unknown is not "none": say unknown, with the reason.
  const orUnknown = (section: InventorySection, html: () => string): string => {
    const r = why.get(section);
    return r !== undefined ? `<p class="warn">unknown (${escapeHtml(r)})</p>` : html();
  };
  const parts: string[] = [
    `<p>reported ${escapeHtml(row.reportedAt ?? '?')}, collected ${escapeHtml(inv.collectedAt || '?')}; ${escapeHtml(join([inv.os.distro, inv.os.release, inv.os.kernel, inv.os.arch]))}</p>`,
    '<h2>System</h2>',
    htmlTable(
      ['', 'manufacturer', 'model', 'serial', 'other'],
      [
        ['system', inv.system.manufacturer, inv.system.model, inv.system.serial, join([inv.system.uuid && `uuid ${inv.system.uuid}`, inv.system.sku && `sku ${inv.system.sku}`], ', ')],
        ['baseboard', inv.baseboard.manufacturer, inv.baseboard.model, inv.baseboard.serial, inv.baseboard.version],
        ['bios', inv.bios.vendor, inv.bios.version, '', join([inv.bios.date, inv.bios.uefi ? 'UEFI' : 'legacy'], ', ')],
      ],
    ),
    '<h2>Memory</h2>',
    orUnknown('dimms', () => htmlTable(
      ['slot', 'size', 'type', 'speed', 'manufacturer', 'part', 'serial'],
      inv.memory.dimms.map((d) => [d.slot, gib(d.sizeBytes), d.type, d.speedMTs ? `${d.speedMTs} MT/s` : '', d.manufacturer, d.partNumber, d.serial]),
    )),
    '<h2>Disks</h2>',
    orUnknown('disks', () => htmlTable(['name', 'size', 'type', 'interface', 'model', 'serial'], inv.disks.map((d) => [d.name, diskSize(d.sizeBytes), d.type, d.interface, d.model, d.serial]))),
    '<h2>Network</h2>',
    orUnknown('nics', () => htmlTable(['name', 'mac', 'speed', 'driver', 'link', 'addresses'], inv.nics.map((n) => [n.name, n.mac, n.speedMbps ? `${n.speedMbps} Mb/s` : '', n.driver, n.link ? 'up' : 'down', n.addresses.join(', ')]))),
    '<h2>GPUs</h2>',
    orUnknown('gpus', () => htmlTable(['pci', 'model', 'memory', 'driver', 'serial', 'uuid'], inv.gpus.map((g) => [g.pciBus, g.model, g.memoryMiB ? `${g.memoryMiB} MiB` : '', g.driver, g.serial ?? '', g.uuid ?? '']))),
    '<h2>InfiniBand</h2>',
    orUnknown('infiniband', () =>
      htmlTable(
        ['hca', 'model', 'firmware', 'node guid', 'pci', 'ports'],
        inv.infiniband.map((h) => [h.name, h.model, h.fwVersion, h.nodeGuid, h.pciBus, h.ports.map((p) => join([`${p.port}:`, p.state, p.rate, p.linkLayer, p.lid ? `lid ${p.lid}` : ''])).join('; ')]),
      ),
    ),
  ];
  if (inv.unknown.length > 0) parts.unshift(`<p class="warn">partial report: ${inv.unknown.map((u) => escapeHtml(`${u.section} unknown (${u.reason})`)).join('; ')}</p>`);
  if (inv.warnings.length > 0) parts.push('<h2>Warnings</h2>', `<ul>${inv.warnings.map((w) => `<li class="warn">${escapeHtml(w)}</li>`).join('')}</ul>`);
  return `<details>${title}\n${parts.join('\n')}\n</details>`;
}

export function formatInventoryHtml(rows: InventoryRow[], opts: { title?: string; generatedAt?: string } = {}): string {
  const title = opts.title ?? 'fleet inventory';
  const summary = htmlTable(
    INVENTORY_COLUMNS.map((c) => c),
    rows.map((r) => {
      const c = inventoryCells(r);
      return INVENTORY_COLUMNS.map((k) => (r.inventory ? c[k] : k === 'node' ? r.node : k === 'model' ? '(no report)' : ''));
    }),
  );
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="muted">${rows.length} node${rows.length === 1 ? '' : 's'}${opts.generatedAt ? `, generated ${escapeHtml(opts.generatedAt)}` : ''}</p>`,
    summary,
    '<h1>Details</h1>',
    ...rows.map(nodeDetails),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export function formatInventory(rows: InventoryRow[], format: InventoryFormat, opts: { generatedAt?: string } = {}): string {
  switch (format) {
    case 'json':
      return formatInventoryJson(rows);
    case 'csv':
      return formatInventoryCsv(rows);
    case 'html':
      return formatInventoryHtml(rows, opts);
    default:
      return formatInventoryTable(rows);
  }
}

// ------------------------------------------------------------------ diff

export function formatInventoryDiff(d: InventoryDiffReport): string {
  if (!d.after) return `${d.node}: no inventory reported\n`;
  if (!d.before) return `${d.node}: one inventory report (${d.after.reportedAt}): nothing to compare\n`;
  const head = `${d.node}: report ${d.before.id} (${d.before.reportedAt}) -> report ${d.after.id} (${d.after.reportedAt})`;
  if (d.refused) return `${head}\n${printable(d.refused)}\n`;
  const skipped = (d.notCompared ?? []).map((u) => `not compared: ${u.section} unknown in the newer report (${printable(u.reason)})`);
  const changes = d.changes.length === 0 ? ['no hardware changes'] : d.changes.map((c) => `  ${c.kind.padEnd(19)}  ${printable(c.message)}`);
  return [head, ...changes, ...skipped].join('\n') + '\n';
}

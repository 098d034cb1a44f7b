/**
 * `fleet import csv`: a site's node list (a spreadsheet export) to a
 * fleet.yaml `nodes:` fragment the admin reads and merges, so that fleet.yaml
 * stays the source of truth (docs/operations.md "Importing a node list").
 * Pure: text in, text out; nothing is written anywhere.
 *
 * The CSV: RFC 4180 (comma-separated, `"` quotes, `""` inside quotes, CRLF or
 * LF), a header row naming the columns, in any order and any case:
 *
 *   name             required  node name (RFC 1123 label, lower case)
 *   mac              optional  boot NIC (aa:bb:… or aa-bb-…); several: separated by spaces or ';'
 *   ip               optional  provisioning IPv4
 *   bmc              optional  BMC IPv4 (also accepted: bmc_address, bmc_ip)
 *   profile          optional  the node's profile; else --profile
 *   bmc_port         optional  BMC port
 *   bmc_protocol     optional  ipmi, redfish, ipmitool
 *   bmc_credentials  optional  credential set name; else --credentials (required with a BMC)
 *
 * Any other column is an error (a typo must not drop data silently). Every
 * problem names FILE:LINE:COLUMN; one bad row rejects the whole file.
 */
import { FleetError } from '../../common/errors.js';
import { isIPv4, NODE_NAME, normalizeMac, OBJECT_NAME, show } from '../../common/patterns.js';
import { expandNodeSet, foldNames } from '../nodeset/index.js';

/** One CSV field and where it starts (1-based line and column). */
export interface CsvField {
  value: string;
  line: number;
  col: number;
}

/** Rows of fields; throws FleetError('usage.invalid') naming FILE:LINE:COL on malformed quoting. */
export function parseCsv(text: string, file: string): CsvField[][] {
  const rows: CsvField[][] = [];
  let row: CsvField[] = [];
  let i = 0;
  let line = 1;
  let col = 1;
  const bad = (l: number, c: number, msg: string): FleetError => new FleetError('usage.invalid', `${file}:${l}:${c}: ${msg}`);
  const advance = (ch: string): void => {
    i++;
    if (ch === '\n') {
      line++;
      col = 1;
    } else col++;
  };
  if (text.startsWith('\uFEFF')) i = 1; // a spreadsheet's byte-order mark
  for (;;) {
    // One field starts here.
    const start = { line, col };
    let value = '';
    if (text[i] === '"') {
      advance('"');
      for (;;) {
        if (i >= text.length) throw bad(start.line, start.col, 'quoted field is not closed');
        const ch = text[i]!;
        if (ch === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            advance('"');
            advance('"');
            continue;
          }
          advance('"');
          break;
        }
        value += ch;
        advance(ch);
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') throw bad(line, col, `unexpected ${show(next)} after a closing quote (a quote inside a field is written "")`);
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        if (text[i] === '"') throw bad(line, col, 'quote inside an unquoted field (quote the whole field and write the quote as "")');
        value += text[i];
        advance(text[i]!);
      }
    }
    row.push({ value, ...start });
    if (text[i] === ',') {
      advance(',');
      continue;
    }
    if (text[i] === '\r') {
      if (text[i + 1] !== '\n') throw bad(line, col, 'carriage return not followed by a line feed');
      i++;
    }
    if (text[i] === '\n') advance('\n');
    // End of a row: a blank line is no row.
    if (!(row.length === 1 && row[0]!.value === '')) rows.push(row);
    row = [];
    if (i >= text.length) break;
  }
  return rows;
}

export const CSV_COLUMNS = ['name', 'mac', 'ip', 'bmc', 'profile', 'bmc_port', 'bmc_protocol', 'bmc_credentials'] as const;
type Column = (typeof CSV_COLUMNS)[number];
const ALIASES: Record<string, Column> = { bmc_address: 'bmc', bmc_ip: 'bmc', macs: 'mac' };
const PROTOCOLS = ['ipmi', 'redfish', 'ipmitool'] as const;

export interface ImportedNode {
  name: string;
  profile: string;
  ip?: string;
  macs: string[];
  bmc?: { address: string; port?: number; protocol?: string; credentials: string };
  /** Where it came from, for messages. */
  line: number;
}

export interface CsvImportDefaults {
  profile?: string;
  credentials?: string;
}

/** The nodes of a CSV node list, every value checked; one FleetError('config.invalid') lists every problem as FILE:LINE:COL. */
export function importCsv(text: string, file: string, defaults: CsvImportDefaults = {}): ImportedNode[] {
  const rows = parseCsv(text, file);
  const problems: string[] = [];
  const at = (f: { line: number; col: number }, msg: string): void => void problems.push(`${file}:${f.line}:${f.col}: ${msg}`);
  if (rows.length === 0) throw new FleetError('config.invalid', `${file}: empty: a header row (${CSV_COLUMNS.join(',')}) and one row per node`);
  const header = rows[0]!;
  const index = new Map<Column, number>();
  header.forEach((h, k) => {
    const key = h.value.trim().toLowerCase().replace(/[\s-]+/g, '_');
    const c = (CSV_COLUMNS as readonly string[]).includes(key) ? (key as Column) : ALIASES[key];
    if (c === undefined) at(h, `unknown column ${show(h.value)} (columns: ${CSV_COLUMNS.join(', ')})`);
    else if (index.has(c)) at(h, `column ${c} given twice`);
    else index.set(c, k);
  });
  if (!index.has('name') && problems.length === 0) at(header[0]!, `no name column in the header row (columns: ${CSV_COLUMNS.join(', ')})`);
  if (problems.length > 0) throw invalid(file, problems);
  const nodes: ImportedNode[] = [];
  const firstSeen = { name: new Map<string, number>(), mac: new Map<string, number>(), ip: new Map<string, number>(), bmc: new Map<string, number>() };
  const dup = (kind: keyof typeof firstSeen, key: string, f: CsvField, what: string): void => {
    const prev = firstSeen[kind].get(key);
    if (prev !== undefined) at(f, `${what} ${key} also on line ${prev}`);
    else firstSeen[kind].set(key, f.line);
  };
  for (const row of rows.slice(1)) {
    if (row.length !== header.length) {
      at({ line: row[0]!.line, col: 1 }, `${row.length} fields, the header has ${header.length}`);
      continue;
    }
    const get = (c: Column): CsvField | undefined => {
      const k = index.get(c);
      if (k === undefined) return undefined;
      const f = row[k]!;
      return { ...f, value: f.value.trim() };
    };
    const name = get('name')!;
    if (!NODE_NAME.test(name.value)) at(name, `node name ${show(name.value)} is not a lower-case host name (RFC 1123 label)`);
    else dup('name', name.value, name, 'node');
    const profileField = get('profile');
    const profile = profileField?.value || defaults.profile || '';
    if (profile === '') at(profileField ?? name, `node ${name.value}: no profile (a profile column or --profile)`);
    else if (!OBJECT_NAME.test(profile)) at(profileField ?? name, `profile ${show(profile)} is not a valid profile name`);
    const node: ImportedNode = { name: name.value, profile, macs: [], line: name.line };
    const macField = get('mac');
    if (macField && macField.value !== '') {
      for (const m of macField.value.split(/[\s;]+/).filter((x) => x !== '')) {
        const mac = normalizeMac(m);
        if (mac === undefined) at(macField, `MAC ${show(m)} is not a MAC address (six hex pairs separated by : or -)`);
        else {
          dup('mac', mac, macField, 'MAC');
          node.macs.push(mac);
        }
      }
    }
    const ip = get('ip');
    if (ip && ip.value !== '') {
      if (!isIPv4(ip.value)) at(ip, `IP ${show(ip.value)} is not an IPv4 address`);
      else {
        dup('ip', ip.value, ip, 'IP');
        node.ip = ip.value;
      }
    }
    const bmc = get('bmc');
    const port = get('bmc_port');
    const protocol = get('bmc_protocol');
    const cred = get('bmc_credentials');
    if (bmc && bmc.value !== '') {
      const credentials = cred?.value || defaults.credentials || '';
      if (!isIPv4(bmc.value)) at(bmc, `BMC address ${show(bmc.value)} is not an IPv4 address`);
      if (credentials === '') at(cred ?? bmc, `node ${name.value}: a BMC needs credentials (a bmc_credentials column or --credentials)`);
      else if (!OBJECT_NAME.test(credentials)) at(cred ?? bmc, `credential set ${show(credentials)} is not a valid name`);
      let portNum: number | undefined;
      if (port && port.value !== '') {
        portNum = Number(port.value);
        if (!/^\d+$/.test(port.value) || portNum < 1 || portNum > 65535) at(port, `BMC port ${show(port.value)} is not a port (1-65535)`);
      }
      if (protocol && protocol.value !== '' && !(PROTOCOLS as readonly string[]).includes(protocol.value)) at(protocol, `BMC protocol ${show(protocol.value)} is not one of ${PROTOCOLS.join(', ')}`);
      if (isIPv4(bmc.value)) dup('bmc', `${bmc.value}:${portNum ?? 'default'}`, bmc, 'BMC endpoint');
      node.bmc = { address: bmc.value, credentials, ...(portNum !== undefined ? { port: portNum } : {}), ...(protocol?.value ? { protocol: protocol.value } : {}) };
    } else {
      for (const f of [port, protocol, cred]) if (f && f.value !== '') at(f, `node ${name.value}: a BMC setting without a BMC address`);
    }
    nodes.push(node);
  }
  if (problems.length > 0) throw invalid(file, problems);
  return nodes;
}

function invalid(file: string, problems: string[]): FleetError {
  return new FleetError('config.invalid', `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}, nothing imported:\n${problems.join('\n')}`, { problems });
}

/**
 * A fleet.yaml `nodes:` fragment: nodes of the same shape (profile, which
 * of ip/mac/bmc they have, BMC port/protocol/credentials) under one folded
 * nodeset key, their values as YAML lists in the key's nodeset order
 * (docs/configuration.md "Ranges step in lockstep with the names").
 */
export function nodesFragment(nodes: readonly ImportedNode[], source: string): string {
  const groups = new Map<string, ImportedNode[]>();
  for (const n of nodes) {
    // A node with several NICs keeps an entry of its own (`macs:` is a list per node, not lockstep).
    const shape = JSON.stringify([n.profile, n.ip !== undefined, n.macs.length > 1 ? n.name : n.macs.length, n.bmc ? [n.bmc.port ?? null, n.bmc.protocol ?? null, n.bmc.credentials] : null]);
    groups.set(shape, [...(groups.get(shape) ?? []), n]);
  }
  const q = (s: string): string => JSON.stringify(s); // a JSON string is a YAML double-quoted scalar
  const list = (vals: string[]): string => (vals.length === 1 ? q(vals[0]!) : `[${vals.map(q).join(', ')}]`);
  const lines = [`# generated by fleet import csv from ${source}: review, then merge into fleet.yaml and run fleet apply`, 'nodes:'];
  const entries = [...groups.values()].map((members) => {
    const key = foldNames(members.map((m) => m.name));
    const byName = new Map(members.map((m) => [m.name, m]));
    const ordered = expandNodeSet(key).map((name) => byName.get(name)!);
    return { key, ordered };
  });
  entries.sort((a, b) => a.ordered[0]!.line - b.ordered[0]!.line);
  for (const { key, ordered } of entries) {
    const first = ordered[0]!;
    lines.push(`  ${q(key)}:`, `    profile: ${q(first.profile)}`);
    if (first.ip !== undefined) lines.push(`    ip: ${list(ordered.map((n) => n.ip!))}`);
    if (first.macs.length === 1) lines.push(`    mac: ${list(ordered.map((n) => n.macs[0]!))}`);
    else if (first.macs.length > 1) lines.push(`    macs: [${first.macs.map(q).join(', ')}]`);
    if (first.bmc) {
      const b = first.bmc;
      const parts = [`address: ${list(ordered.map((n) => n.bmc!.address))}`];
      if (b.port !== undefined) parts.push(`port: ${b.port}`);
      if (b.protocol !== undefined) parts.push(`protocol: ${b.protocol}`);
      parts.push(`credentials: ${q(b.credentials)}`);
      lines.push(`    bmc: {${parts.join(', ')}}`);
    }
  }
  return lines.join('\n') + '\n';
}

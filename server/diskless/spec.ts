/**
 * Diskless nodes, pure parts (issue 14 item 2, docs/diskless.md, seed 004):
 * where fleet keeps what it serves over NFS, which exports the nodes need,
 * and fleet's NFS server configuration (nfs-ganesha). No I/O here (tree.ts
 * and ganesha.ts do it).
 *
 *   DATA/diskless/images/<hex>/root   the image's tree, unpacked once per image,
 *                                     exported read-only to the image's nodes:
 *                                     NFS pseudo path /fleet/images/<hex>
 *   DATA/diskless/nodes/<node>/var    the node's own /var, copied from its
 *                                     image's /var when fleet first serves it,
 *                                     exported read-write to that node alone:
 *                                     /fleet/nodes/<node>/var
 *   DATA/diskless/ganesha/            ganesha.conf, its pid file, log and
 *                                     NFSv4 recovery records
 *
 * Every export is NFSv4 over TCP, AUTH_SYS, no root squash (the node's root
 * owns its files), and names its clients by address: a node mounts its
 * image and its own /var, never another node's.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { isIP } from 'node:net';

export const DISKLESS_DIR = 'diskless';
/** Where every fleet export sits in the server's NFSv4 pseudo file system. */
export const PSEUDO_ROOT = '/fleet';
/** The NFS version stage 1 mounts with. */
export const NFS_VERS = '4.1';

const HEX = /^[0-9a-f]{64}$/;
/** A node name as the inventory allows it (a DNS label); checked again here because it becomes a path. */
const NODE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

function hexOf(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!HEX.test(hex)) throw new Error(`diskless: ${JSON.stringify(digest)} is not a sha256 digest`);
  return hex;
}

function nodeName(node: string): string {
  if (!NODE.test(node)) throw new Error(`diskless: ${JSON.stringify(node)} is not a node name`);
  return node;
}

/** DATA/diskless */
export function disklessRoot(dataDir: string): string {
  return path.join(path.resolve(dataDir), DISKLESS_DIR);
}

/** DATA/diskless/images/<hex>: the unpacked tree (root/) and its record (tree.json). */
export function imageTreeDir(dataDir: string, digest: string): string {
  return path.join(disklessRoot(dataDir), 'images', hexOf(digest));
}

/** DATA/diskless/nodes/<node>: the node's var/ and its record (node.json). */
export function nodeDir(dataDir: string, node: string): string {
  return path.join(disklessRoot(dataDir), 'nodes', nodeName(node));
}

export function imagePseudo(digest: string): string {
  return `${PSEUDO_ROOT}/images/${hexOf(digest)}`;
}

export function nodeVarPseudo(node: string): string {
  return `${PSEUDO_ROOT}/nodes/${nodeName(node)}/var`;
}

/** What stage 1 mounts for one node (its plan's `nfs`). */
export interface DisklessMounts {
  /** The NFS server's address. */
  server: string;
  /** NFS version, e.g. 4.1. */
  vers: string;
  /** The image's tree (read-only): /fleet/images/<hex>. */
  root: string;
  /** The node's /var (read-write): /fleet/nodes/<node>/var. */
  var: string;
}

/** A diskless node as the exports see it: its address and the digest of its profile's image. */
export interface DisklessNode {
  name: string;
  ip: string | undefined;
  digest: string;
}

export interface NfsExport {
  id: number;
  /** The directory on this server. */
  path: string;
  /** Where clients mount it. */
  pseudo: string;
  access: 'RO' | 'RW';
  /** Addresses allowed to mount it. */
  clients: string[];
}

export interface DisklessExports {
  exports: NfsExport[];
  /** Nodes that cannot be served, each with the reason (no fixed address). */
  unserved: { node: string; reason: string }[];
}

/**
 * The exports `nodes` need: one read-only export per image, open to the
 * addresses of the nodes that boot it, and one read-write /var per node,
 * open to that node's address alone. A node without a fixed address cannot
 * be named in an export: it is unserved, with the reason.
 */
export function disklessExports(dataDir: string, nodes: readonly DisklessNode[]): DisklessExports {
  const unserved: DisklessExports['unserved'] = [];
  const byImage = new Map<string, Set<string>>();
  const rw: Omit<NfsExport, 'id'>[] = [];
  for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!n.ip || isIP(n.ip) !== 4) {
      unserved.push({ node: n.name, reason: `${n.name} has no fixed IPv4 address (nodes.${n.name}.ip): a diskless node's exports name it by address` });
      continue;
    }
    const hex = hexOf(n.digest);
    if (!byImage.has(hex)) byImage.set(hex, new Set());
    byImage.get(hex)!.add(n.ip);
    rw.push({ path: path.join(nodeDir(dataDir, n.name), 'var'), pseudo: nodeVarPseudo(n.name), access: 'RW', clients: [n.ip] });
  }
  const ro: Omit<NfsExport, 'id'>[] = [...byImage].sort(([a], [b]) => a.localeCompare(b)).map(([hex, ips]) => ({
    path: path.join(imageTreeDir(dataDir, hex), 'root'),
    pseudo: imagePseudo(hex),
    access: 'RO',
    clients: [...ips].sort(),
  }));
  const all = [...ro, ...rw];
  const ids = exportIds(all.map((e) => e.pseudo));
  return { exports: all.map((e) => ({ id: ids.get(e.pseudo)!, ...e })), unserved };
}

/**
 * Export ids that stay the same for a pseudo path from one configuration to
 * the next (ganesha matches exports by id when it reloads): a hash of the
 * path in 2..65534, the next free one on a collision (in sorted order, so
 * the result does not depend on the input's order).
 */
export function exportIds(pseudos: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  const used = new Set<number>();
  for (const p of [...new Set(pseudos)].sort()) {
    let id = 2 + (createHash('sha256').update(p).digest().readUInt32BE(0) % 65533);
    while (used.has(id)) id = id >= 65534 ? 2 : id + 1;
    used.add(id);
    out.set(p, id);
  }
  return out;
}

export interface GaneshaConfInput {
  /** The management address the server listens on (IPv4). */
  bind: string;
  port?: number;
  /** NFSv4 client records, so clients reclaim their state after a restart. */
  recoveryDir: string;
  exports: readonly NfsExport[];
  /** Seconds clients have to reclaim their state after a restart. */
  graceSeconds?: number;
}

function quoted(s: string, what: string): string {
  if (/["\\\n\r\0]/.test(s)) throw new Error(`ganesha.conf: ${what} ${JSON.stringify(s)} has a character the configuration cannot quote`);
  return `"${s}"`;
}

/**
 * fleet's ganesha.conf: NFSv4.1+ only over TCP on the management address
 * (no rpcbind, NLM or rquota: NFSv4 needs none), a short grace period, one
 * EXPORT block per export, nothing exported to anyone not named.
 */
export function renderGaneshaConf(o: GaneshaConfInput): string {
  if (isIP(o.bind) !== 4) throw new Error(`ganesha.conf: bind address ${JSON.stringify(o.bind)} is not an IPv4 address`);
  const grace = o.graceSeconds ?? 15;
  const lines = [
    '# Written by fleet server (server/diskless): do not edit, it is rewritten at every change.',
    'NFS_CORE_PARAM {',
    '  Protocols = 4;',
    `  NFS_Port = ${o.port ?? 2049};`,
    `  Bind_addr = ${o.bind};`,
    '  Enable_NLM = false;',
    '  Enable_RQUOTA = false;',
    '  Enable_UDP = false;',
    '}',
    'NFSV4 {',
    // 4.0 too: libnfs (the tests' user-space client, and tools admins use) speaks 4.0; nodes mount 4.1.
    '  Minor_Versions = 0, 1, 2;',
    `  Grace_Period = ${grace};`,
    `  Lease_Lifetime = ${Math.max(10, Math.min(grace, 60))};`,
    // Numeric owners ("0", not "root@domain"): a node's root is on NFS, and the client's idmapper
    // upcall (/sbin/request-key, itself on the NFS root) would deadlock decoding a name; the nodes
    // and their image share one uid space anyway.
    '  Allow_Numeric_Owners = true;',
    '  Only_Numeric_Owners = true;',
    '  RecoveryBackend = fs;',
    `  RecoveryRoot = ${quoted(o.recoveryDir, 'recovery dir')};`,
    '}',
    'NFS_KRB5 { Active_krb5 = false; }',
    'EXPORT_DEFAULTS { Access_Type = None; Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; }',
  ];
  for (const e of [...o.exports].sort((a, b) => a.id - b.id)) {
    if (e.clients.length === 0) continue;
    for (const c of e.clients) if (isIP(c) !== 4) throw new Error(`ganesha.conf: client ${JSON.stringify(c)} of ${e.pseudo} is not an IPv4 address`);
    lines.push(
      'EXPORT {',
      `  Export_Id = ${e.id};`,
      `  Path = ${quoted(e.path, 'path')};`,
      `  Pseudo = ${quoted(e.pseudo, 'pseudo path')};`,
      '  Access_Type = None;',
      '  FSAL { Name = VFS; }',
      `  CLIENT { Clients = ${e.clients.join(', ')}; Access_Type = ${e.access}; }`,
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

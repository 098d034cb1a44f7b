/**
 * `fleet diskless list|purge` (docs/diskless.md): the diskless nodes'
 * directories in this data dir (DATA/diskless/nodes/<node>/var), read
 * locally like `fleet image`. A node's /var outlives the node: removing it
 * from fleet.yaml keeps its directory (its logs, what it wrote) until
 * `fleet diskless purge NODESET`, which refuses a node fleet's NFS server
 * still exports (remove it from fleet.yaml and `fleet apply` first).
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Exit, FleetError } from '../../../common/errors.js';
import { ganeshaPaths } from '../../diskless/ganesha.js';
import { disklessRoot, nodeVarPseudo } from '../../diskless/spec.js';
import { type NodeVarRecord, purgeNodeVar } from '../../diskless/tree.js';
import { runProcess } from '../../../common/spawn.js';
import { expandNodeSet } from '../../nodeset/index.js';
import type { CliIo } from '../io.js';
import { localDataDir, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

async function exported(dataDir: string): Promise<Set<string>> {
  try {
    const conf = await fs.readFile(ganeshaPaths(dataDir).conf, 'utf8');
    return new Set([...conf.matchAll(/Pseudo = "\/fleet\/nodes\/([^/"]+)\/var";/g)].map((m) => m[1]!));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw e;
  }
}

interface Row {
  node: string;
  digest: string;
  createdAt: string;
  kib: number | null;
  exported: boolean;
}

async function rows(dataDir: string): Promise<Row[]> {
  const dir = join(disklessRoot(dataDir), 'nodes');
  const names = existsSync(dir) ? (await fs.readdir(dir)).sort() : [];
  const live = await exported(dataDir);
  const out: Row[] = [];
  for (const n of names) {
    let rec: NodeVarRecord | null = null;
    try {
      rec = JSON.parse(await fs.readFile(join(dir, n, 'node.json'), 'utf8')) as NodeVarRecord;
    } catch {
      /* a directory fleet did not finish: listed without a record */
    }
    const du = await runProcess('du', ['-sk', join(dir, n)], { timeoutMs: 60_000, maxOutputBytes: 4096 });
    const kib = du.code === 0 ? Number(du.stdout.split(/\s/)[0]) : null;
    out.push({ node: n, digest: rec?.digest ?? '-', createdAt: rec?.createdAt ?? '-', kib: Number.isFinite(kib) ? kib : null, exported: live.has(n) });
  }
  return out;
}

export async function cmdDisklessList(globals: GlobalFlags, flags: { json?: boolean }, io: CliIo): Promise<number> {
  const dataDir = localDataDir(globals.data, io);
  const rs = await rows(dataDir);
  if (flags.json) {
    io.stdout(`${JSON.stringify(rs, null, 2)}\n`);
    return Exit.OK;
  }
  if (rs.length === 0) {
    io.stdout(`no diskless node directories under ${join(disklessRoot(dataDir), 'nodes')}\n`);
    return Exit.OK;
  }
  io.stdout(
    formatTable(
      ['NODE', 'VAR FROM IMAGE', 'CREATED', 'SIZE', 'EXPORTED'],
      rs.map((r) => [r.node, r.digest === '-' ? '-' : r.digest.slice(0, 19), r.createdAt, r.kib === null ? '?' : `${(r.kib / 1024).toFixed(1)} MiB`, r.exported ? 'yes' : 'no (kept until purge)']),
    ),
  );
  return Exit.OK;
}

export async function cmdDisklessPurge(globals: GlobalFlags, nodeset: string, flags: { yes?: boolean }, io: CliIo): Promise<number> {
  const dataDir = localDataDir(globals.data, io);
  const names = expandNodeSet(nodeset);
  const live = await exported(dataDir);
  const still = names.filter((n) => live.has(n));
  if (still.length) {
    throw new FleetError('conflict', `${still.join(', ')} ${still.length > 1 ? 'are' : 'is'} still exported as diskless (${nodeVarPseudo(still[0]!)}); remove ${still.length > 1 ? 'them' : 'it'} from fleet.yaml and fleet apply first`, { nodes: still });
  }
  if (!flags.yes) throw new FleetError('request.invalid', `fleet diskless purge deletes the /var of ${names.length} node(s) for good: give --yes`);
  for (const name of names) {
    if (await purgeNodeVar(dataDir, name)) {
      io.stdout(`purged ${name}: ${join(disklessRoot(dataDir), 'nodes', name)}\n`);
    } else io.stdout(`${name}: no diskless directory\n`);
  }
  return Exit.OK;
}

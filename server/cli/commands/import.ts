/**
 * `fleet import csv FILE`: a site's node list to a fleet.yaml `nodes:`
 * fragment on stdout (server/inventory/import-csv.ts); `fleet import groups
 * FILE --profile GROUP=PROFILE`: clustershell groups to a `nodes:` skeleton
 * (server/inventory/import-groups.ts). Offline: it reads
 * the file and writes nothing; the admin merges the fragment into fleet.yaml
 * and runs `fleet apply`, so fleet.yaml stays the source of truth.
 */
import { readFile } from 'node:fs/promises';
import { Exit, FleetError } from '../../../common/errors.js';
import { importCsv, nodesFragment } from '../../inventory/import-csv.js';
import type { CliIo } from '../io.js';
import path from 'node:path';

export interface ImportCsvFlags {
  profile?: string;
  credentials?: string;
  json?: boolean;
}

async function read(file: string, io: CliIo): Promise<string> {
  try {
    return await readFile(path.resolve(io.cwd, file), 'utf8');
  } catch (e) {
    throw new FleetError('usage.invalid', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function cmdImportCsv(file: string, opts: ImportCsvFlags, io: CliIo): Promise<number> {
  const text = await read(file, io);
  const nodes = importCsv(text, file, { ...(opts.profile ? { profile: opts.profile } : {}), ...(opts.credentials ? { credentials: opts.credentials } : {}) });
  if (opts.json) io.stdout(JSON.stringify(nodes.map(({ line: _line, ...n }) => n), null, 2) + '\n');
  else io.stdout(nodesFragment(nodes, file));
  io.stderr(`fleet: ${nodes.length} node${nodes.length === 1 ? '' : 's'} from ${file}; nothing was changed: merge the fragment into fleet.yaml and run fleet apply\n`);
  return Exit.OK;
}

export interface ImportGroupsFlags {
  profile?: string[];
  source?: string;
  json?: boolean;
}

export async function cmdImportGroups(file: string, opts: ImportGroupsFlags, io: CliIo): Promise<number> {
  // Loaded here: it needs the YAML parser, which `fleet import csv` does not.
  const { groupsFragment, parseGroupsFile, resolveGroups } = await import('../../inventory/import-groups.js');
  const groups = resolveGroups(parseGroupsFile(await read(file, io), file), file);
  if (opts.json) {
    io.stdout(JSON.stringify(Object.fromEntries([...groups].map(([s, g]) => [s, Object.fromEntries([...g].map(([n, set]) => [n, set.fold()]))])), null, 2) + '\n');
    return Exit.OK;
  }
  const source = opts.source ?? (groups.size === 1 ? [...groups.keys()][0]! : undefined);
  if (source === undefined) throw new FleetError('usage.invalid', `${file} has several group sources (${[...groups.keys()].join(', ')}): name one with --source`);
  const profiles = new Map<string, string>();
  for (const p of opts.profile ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(p);
    if (!m) throw new FleetError('usage.invalid', `--profile ${p}: write GROUP=PROFILE`);
    profiles.set(m[1]!, m[2]!);
  }
  if (profiles.size === 0) {
    throw new FleetError('usage.invalid', `which groups are which profile? --profile GROUP=PROFILE (repeatable); ${file} source ${source} has: ${[...(groups.get(source)?.keys() ?? [])].join(', ')}`);
  }
  io.stdout(groupsFragment(groups, profiles, source, file));
  io.stderr(`fleet: nothing was changed: add ip, mac and bmc to the fragment, merge it into fleet.yaml and run fleet apply\n`);
  return Exit.OK;
}

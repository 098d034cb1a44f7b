/**
 * `fleet import csv FILE`: a site's node list to a fleet.yaml `nodes:`
 * fragment on stdout (server/inventory/import-csv.ts). Offline: it reads
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

export async function cmdImportCsv(file: string, opts: ImportCsvFlags, io: CliIo): Promise<number> {
  let text: string;
  try {
    text = await readFile(path.resolve(io.cwd, file), 'utf8');
  } catch (e) {
    throw new FleetError('usage.invalid', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const nodes = importCsv(text, file, { ...(opts.profile ? { profile: opts.profile } : {}), ...(opts.credentials ? { credentials: opts.credentials } : {}) });
  if (opts.json) io.stdout(JSON.stringify(nodes.map(({ line: _line, ...n }) => n), null, 2) + '\n');
  else io.stdout(nodesFragment(nodes, file));
  io.stderr(`fleet: ${nodes.length} node${nodes.length === 1 ? '' : 's'} from ${file}; nothing was changed: merge the fragment into fleet.yaml and run fleet apply\n`);
  return Exit.OK;
}

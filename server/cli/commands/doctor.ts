/**
 * `fleet doctor`: the Day 0 checks (server/doctor) on this host, for the
 * fleet.yaml the server runs with. One line per check with its fix; exit 1
 * when any check fails (warnings alone: 0), 2 for a bad config.
 */
import { resolve } from 'node:path';
import { loadConfigFile } from '../../config/index.js';
import { doctorExit, formatFinding, summarize } from '../../doctor/checks.js';
import { plannedBoot, runDoctor } from '../../doctor/gather.js';
import type { CliIo } from '../io.js';
import { localDataDir } from '../settings.js';

export interface DoctorFlags {
  config: string;
  data?: string;
  bootListen?: string;
  json?: boolean;
}

export async function cmdDoctor(flags: DoctorFlags, io: CliIo): Promise<number> {
  const loaded = await loadConfigFile(resolve(io.cwd, flags.config));
  const spec = loaded.spec;
  // The data dir of the server on this host: as `fleet server` picks it (serve.ts), or the service's.
  const dataDir = localDataDir(flags.data, io, spec.server?.dataDir);
  const findings = await runDoctor({ spec, dataDir, boot: plannedBoot(spec, flags.bootListen !== undefined ? { bootListen: flags.bootListen } : {}) });
  const summary = summarize(findings);
  if (flags.json) {
    io.stdout(JSON.stringify({ config: loaded.path, dataDir, findings, summary }, null, 2) + '\n');
  } else {
    for (const f of findings) io.stdout(formatFinding(f) + '\n');
    io.stdout(`${summary.ok} ok, ${summary.warn} warn, ${summary.fail} fail (config ${loaded.path}, data dir ${dataDir})\n`);
  }
  return doctorExit(findings);
}

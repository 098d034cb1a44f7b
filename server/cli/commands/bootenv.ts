/**
 * `fleet bootenv build|show`: the fleet boot environment (server/bootenv,
 * docs/bootenv.md). They work on this machine's data dir, under the boot
 * environment's own lock (DATA/bootenv/bootenv.lock), like `fleet image`.
 */
import { Exit, FleetError } from '../../../common/errors.js';
import { buildBootenv, currentBootenv, formatBootenv } from '../../bootenv/index.js';
import type { CliIo } from '../io.js';
import { localDataDir, type GlobalFlags } from '../settings.js';

function dataDirOf(globals: GlobalFlags, io: CliIo): string {
  return localDataDir(globals.data, io);
}

export async function cmdBootenvBuild(globals: GlobalFlags, flags: { force?: boolean; json?: boolean }, io: CliIo): Promise<number> {
  const t0 = Date.now();
  const r = await buildBootenv({
    dataDir: dataDirOf(globals, io),
    ...(flags.force ? { force: true } : {}),
    log: (line) => io.stderr(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] bootenv: ${line}\n`),
  });
  io.stdout(flags.json ? JSON.stringify({ reused: r.reused, dir: r.dir, manifest: r.manifest }, null, 2) + '\n' : `${r.reused ? 'reused' : 'built'} ${formatBootenv(r.manifest, r.dir)}`);
  return Exit.OK;
}

export async function cmdBootenvShow(globals: GlobalFlags, flags: { json?: boolean }, io: CliIo): Promise<number> {
  const dataDir = dataDirOf(globals, io);
  const c = await currentBootenv(dataDir);
  if (!c) throw new FleetError('not_found', `no boot environment in ${dataDir} (fleet bootenv build)`);
  io.stdout(flags.json ? JSON.stringify({ dir: c.dir, manifest: c.manifest }, null, 2) + '\n' : formatBootenv(c.manifest, c.dir));
  return Exit.OK;
}

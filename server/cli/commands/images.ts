/**
 * `fleet image build|import|list|show|rm`: OS images (server/images,
 * docs/images.md). They run on this machine's data dir, not through the
 * server (docs/decisions/0009-image-store.md): build and import take the
 * image store's own lock (DATA/images/images.lock), so they run while a
 * server serves; rm also reads the profiles from the store, so it needs
 * the data dir's lock (a running server holds it) unless --force.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Exit, FleetError } from '../../../common/errors.js';
import { show } from '../../../common/patterns.js';
import { buildImage, formatList, formatManifest, imagePaths, importImage, listImages, lockImages, showImage, unregister, type NamedManifest } from '../../images/index.js';
import { DB_FILE, openDataDir } from '../../store/index.js';
import type { CliIo } from '../io.js';
import { localDataDir, type GlobalFlags } from '../settings.js';

function dataDirOf(globals: GlobalFlags, io: CliIo): string {
  return localDataDir(globals.data, io);
}

/** Phase lines on stderr with the time since the start. */
function progress(io: CliIo, name: string): (line: string) => void {
  const t0 = Date.now();
  return (line) => io.stderr(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] image ${name}: ${line}\n`);
}

/** An AbortSignal that SIGINT/SIGTERM fire while fn runs (the build's processes stop, its workspace goes). */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function summary(m: NamedManifest, reused: boolean): string {
  const size = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  return `${reused ? 'reused' : 'built'} image ${m.name} ${m.digest}: ${m.packageCount} packages, rootfs ${size(m.artefacts.rootfs.size)}, squashfs ${size(m.artefacts.squashfs.size)}, kernel ${m.kernelVersion ?? 'absent'}\n`;
}

export interface ImageBuildFlags {
  from: string;
  include?: string[];
  arch?: string;
  force?: boolean;
  agent?: string;
  json?: boolean;
}

export async function cmdImageBuild(globals: GlobalFlags, name: string, flags: ImageBuildFlags, io: CliIo): Promise<number> {
  const log = progress(io, name);
  const r = await interruptible((signal) =>
    buildImage({
      dataDir: dataDirOf(globals, io),
      name,
      from: flags.from,
      ...(flags.include ? { includes: flags.include } : {}),
      ...(flags.arch ? { arch: flags.arch } : {}),
      ...(flags.force ? { force: true } : {}),
      ...(flags.agent ? { agentDir: resolve(io.cwd, flags.agent) } : {}),
      log,
      signal,
    }),
  );
  io.stdout(flags.json ? JSON.stringify({ reused: r.reused, image: r.image }, null, 2) + '\n' : summary(r.image, r.reused));
  return Exit.OK;
}

export async function cmdImageImport(globals: GlobalFlags, name: string, file: string, flags: { arch?: string; force?: boolean; json?: boolean }, io: CliIo): Promise<number> {
  const log = progress(io, name);
  const r = await interruptible((signal) =>
    importImage({
      dataDir: dataDirOf(globals, io),
      name,
      file: resolve(io.cwd, file),
      ...(flags.arch ? { arch: flags.arch } : {}),
      ...(flags.force ? { force: true } : {}),
      log,
      signal,
    }),
  );
  io.stdout(flags.json ? JSON.stringify({ reused: r.reused, image: r.image }, null, 2) + '\n' : summary(r.image, r.reused).replace(/^built/, 'imported'));
  return Exit.OK;
}

export async function cmdImageList(globals: GlobalFlags, flags: { json?: boolean }, io: CliIo): Promise<number> {
  const rows = await listImages(dataDirOf(globals, io));
  io.stdout(flags.json ? JSON.stringify(rows.map(({ packages: _p, ...m }) => m), null, 2) + '\n' : formatList(rows));
  return Exit.OK;
}

export async function cmdImageShow(globals: GlobalFlags, name: string, flags: { json?: boolean; packages?: boolean }, io: CliIo): Promise<number> {
  const m = await showImage(dataDirOf(globals, io), name);
  if (flags.json) io.stdout(JSON.stringify(m, null, 2) + '\n');
  else {
    io.stdout(formatManifest(m));
    if (flags.packages) io.stdout(m.packages.map((p) => `  ${p.name} ${p.version}\n`).join(''));
  }
  return Exit.OK;
}

/** Profiles in the store whose os names the image (needs the data dir's lock). */
async function profilesUsing(dataDir: string, name: string): Promise<string[]> {
  if (!existsSync(join(dataDir, DB_FILE))) return [];
  let dd;
  try {
    dd = await openDataDir(dataDir, { lockedBy: `fleet image rm ${name}` });
  } catch (e) {
    if (e instanceof FleetError && e.code === 'store.locked') {
      throw new FleetError(
        'store.locked',
        `fleet image rm reads the profiles from the store, which a running fleet server holds (${e.message}); stop it, or give --force if no profile names image ${show(name)}`,
        e.details,
      );
    }
    throw e;
  }
  try {
    return (await dd.store.profiles.list()).filter((p) => p.os.install !== 'kickstart' && p.os.image === name).map((p) => p.name);
  } finally {
    await dd.store.close();
  }
}

export async function cmdImageRm(globals: GlobalFlags, name: string, flags: { force?: boolean }, io: CliIo): Promise<number> {
  const dataDir = dataDirOf(globals, io);
  const p = imagePaths(dataDir);
  const lock = await lockImages(p, `fleet image rm ${name}`);
  try {
    await showImage(dataDir, name); // not_found first
    if (!flags.force) {
      const users = await profilesUsing(dataDir, name);
      if (users.length > 0) {
        throw new FleetError('conflict', `image ${name} is named by profile${users.length > 1 ? 's' : ''} ${users.join(', ')}; change ${users.length > 1 ? 'them' : 'it'} in fleet.yaml first, or give --force`, { profiles: users });
      }
    }
    const r = await unregister(p, name);
    io.stdout(`removed image ${name} (${r.digest}${r.removedContent ? '' : ', content kept: another name refers to it'})\n`);
    return Exit.OK;
  } finally {
    lock.release();
  }
}

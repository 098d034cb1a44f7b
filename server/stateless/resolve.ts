/**
 * A stateless node's image as a boot needs it (I/O): the profile's image
 * name resolved to its manifest in the image store, the boot environment
 * built, and the image's module layer built or reused (layer.ts). The boot
 * decision (server/netboot/decide.ts) takes the result; the plan
 * (boot-service.ts) uses the manifest.
 *
 * Layers are derived data: the first boot of an image builds its layer
 * (a few seconds: unsquashfs of the module index and some .ko files), every
 * later one reuses it. Builds are single-flight per image (a rack powered on
 * at once asks for the same layer a hundred times) and the result is kept in
 * memory; a failed build is remembered for FAILURE_TTL_MS so that a broken
 * image does not cost an unsquashfs per boot request, then tried again.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isFleetError } from '../../common/errors.js';
import type { StatelessImage } from '../netboot/decide.js';
import type { NamedManifest } from '../images/manifest.js';
import { imageDir, imagePaths, showImage } from '../images/store.js';
import { buildStatelessLayer, type StatelessLayerBuild } from './layer.js';

export const FAILURE_TTL_MS = 60_000;

export interface ResolvedStateless {
  image: StatelessImage;
  manifest: NamedManifest;
  layer: StatelessLayerBuild;
}

interface Entry {
  promise: Promise<StatelessLayerBuild>;
  failedAt?: number;
}

const layers = new Map<string, Entry>();
const entryKey = (dataDir: string, digest: string): string => `${path.resolve(dataDir)}\0${digest}`;

/** The layer of one image, built once per process (see the module comment). */
function layerOf(dataDir: string, m: NamedManifest, log: (l: string) => void, now: number): Promise<StatelessLayerBuild> {
  const key = entryKey(dataDir, m.digest);
  const have = layers.get(key);
  if (have && (have.failedAt === undefined || now - have.failedAt < FAILURE_TTL_MS)) return have.promise;
  const entry: Entry = {
    promise: buildStatelessLayer({
      dataDir,
      imageDigest: m.digest,
      squashfs: path.join(imageDir(imagePaths(dataDir), m.digest), m.artefacts.squashfs.file),
      kernelVersion: m.kernelVersion!,
      log,
    }),
  };
  entry.promise.catch(() => {
    entry.failedAt = Date.now();
  });
  layers.set(key, entry);
  return entry.promise;
}

/** Forgets every remembered layer (tests; an image removed and built again under the same digest). */
export function forgetStatelessLayers(): void {
  layers.clear();
}

/**
 * Resolves a stateless profile's image, or says in one sentence why it
 * cannot be booted (the boot script shows it, the event records it).
 */
export async function resolveStateless(o: {
  dataDir: string | undefined;
  image: string | undefined;
  bootenvBuilt: boolean;
  log?: (l: string) => void;
}): Promise<ResolvedStateless | { error: string }> {
  if (o.dataDir === undefined) return { error: 'the server has no data dir, so it has no image store' };
  if (!o.image) return { error: 'its profile names no image' };
  if (!o.bootenvBuilt) return { error: 'the fleet boot environment (stage 1) is not built: run fleet bootenv build' };
  let manifest: NamedManifest;
  try {
    manifest = await showImage(o.dataDir, o.image);
  } catch (e) {
    if (!isFleetError(e)) throw e;
    return { error: `its image ${o.image} is not in the image store (fleet image list)` };
  }
  if (manifest.kernelVersion === null || manifest.artefacts.kernel === null) return { error: `its image ${o.image} has no kernel (an imported image without /boot/vmlinuz cannot boot stateless)` };
  let layer: StatelessLayerBuild;
  try {
    layer = await layerOf(o.dataDir, manifest, o.log ?? (() => {}), Date.now());
    // Removed from the disk behind our back (a cleaned data dir): built again.
    if (!existsSync(layer.path)) {
      layers.delete(entryKey(o.dataDir, manifest.digest));
      layer = await layerOf(o.dataDir, manifest, o.log ?? (() => {}), Date.now());
    }
  } catch (e) {
    if (!isFleetError(e)) throw e;
    return { error: `the module layer of image ${o.image} cannot be built: ${e.message}` };
  }
  return { image: { name: o.image, digest: manifest.digest, layerKey: layer.layer.key }, manifest, layer };
}

/**
 * OCI image archives (pure): `skopeo copy ... oci-archive:` and `docker save`
 * (Docker 25+ writes the OCI layout too; older ones only manifest.json).
 *
 *   index.json → (nested index →) image manifest → layers, bottom first,
 *   each blobs/sha256/<hex>, a tar (plain, gzip or zstd) with whiteouts.
 *
 * The legacy `docker save` layout (manifest.json: [{Layers: [paths]}]) is
 * read when there is no index.json. Every JSON read here comes from the
 * archive, so nothing is trusted: digests must be sha256:<64 hex>, paths are
 * checked like tar members.
 */
import { FleetError } from '../../common/errors.js';
import { show } from '../../common/patterns.js';
import { memberPath } from './tar.js';

export const INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
export const MANIFEST_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'];

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string };
}

const bad = (why: string): never => {
  throw new FleetError('image.unsafe', `not a usable OCI image archive: ${why}`);
};

function json(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return bad(`${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null) return bad(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function descriptor(v: unknown, what: string): Descriptor {
  if (typeof v !== 'object' || v === null) return bad(`${what} is not a descriptor`);
  const d = v as Record<string, unknown>;
  if (typeof d.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d.digest)) return bad(`${what} has no sha256 digest`);
  const p = d.platform as Record<string, unknown> | undefined;
  return {
    mediaType: typeof d.mediaType === 'string' ? d.mediaType : '',
    digest: d.digest,
    size: typeof d.size === 'number' ? d.size : -1,
    ...(p && typeof p === 'object' ? { platform: { ...(typeof p.architecture === 'string' ? { architecture: p.architecture } : {}), ...(typeof p.os === 'string' ? { os: p.os } : {}) } } : {}),
  };
}

/** Path of a blob inside the archive. */
export function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/**
 * The manifest an index points at for `arch` (a Debian architecture; OCI
 * says the same names for amd64 and arm64): the only one, or the one whose
 * platform matches. A nested index comes back as such (mediaType tells).
 */
export function pickFromIndex(text: string, arch: string | undefined, what = 'index.json'): Descriptor {
  const idx = json(text, what);
  if (!Array.isArray(idx.manifests) || idx.manifests.length === 0) return bad(`${what} lists no manifest`);
  const all = idx.manifests.map((m, i) => descriptor(m, `${what} manifests[${i}]`));
  const usable = all.filter((d) => d.platform?.architecture !== 'unknown'); // buildkit attestations
  if (usable.length === 1) return usable[0]!;
  if (arch) {
    const match = usable.filter((d) => d.platform?.architecture === arch && (d.platform.os ?? 'linux') === 'linux');
    if (match.length >= 1) return match[0]!;
  }
  return bad(`${what} lists ${usable.length} images (${usable.map((d) => d.platform?.architecture ?? '?').join(', ')}); give --arch to pick one`);
}

/** The layers of an image manifest, bottom first, and its config descriptor. */
export function manifestLayers(text: string, what: string): { config: Descriptor | null; layers: Descriptor[] } {
  const m = json(text, what);
  if (!Array.isArray(m.layers)) return bad(`${what} has no layers`);
  return {
    config: m.config === undefined ? null : descriptor(m.config, `${what} config`),
    layers: m.layers.map((l, i) => descriptor(l, `${what} layers[${i}]`)),
  };
}

/** The layer paths of a legacy `docker save` manifest.json (its first image), bottom first. */
export function dockerLayers(text: string): { config: string | null; layers: string[] } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return bad('manifest.json is not JSON');
  }
  if (!Array.isArray(v) || v.length === 0) return bad('manifest.json lists no image');
  if (v.length > 1) return bad(`manifest.json holds ${v.length} images; save one image per archive`);
  const img = v[0] as Record<string, unknown>;
  if (!Array.isArray(img.Layers) || !img.Layers.every((l) => typeof l === 'string')) return bad('manifest.json has no Layers');
  return {
    config: typeof img.Config === 'string' ? memberPath(img.Config, 'manifest.json Config') : null,
    layers: (img.Layers as string[]).map((l) => {
      const p = memberPath(l, 'manifest.json layer');
      if (p === '') return bad(`layer path ${show(l)}`);
      return p;
    }),
  };
}

/** The architecture an image config says (`architecture`), or null. */
export function configArch(text: string): string | null {
  try {
    const c = JSON.parse(text) as { architecture?: unknown };
    return typeof c.architecture === 'string' ? c.architecture : null;
  } catch {
    return null;
  }
}

/** Compression by magic bytes: gzip, zstd, or none (a plain tar). */
export function compressionOf(head: Buffer): 'gzip' | 'zstd' | 'none' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/**
 * A hand-made image store for the boot tests: one image under
 * DATA/images/sha256/<hex>/ (a small rootfs.tar.zst stand-in and a
 * squashfs stand-in, a manifest, SHA256SUMS) registered under a name,
 * written with server/images' own functions. No mmdebstrap, no zstd.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestHex, FILES, imageDigest, renderManifest, renderSums, sha256Hex, type Artefact, type ImageManifest } from '../../server/images/manifest.js';
import { imagePaths, register } from '../../server/images/store.js';

export interface FakeImage {
  manifest: ImageManifest;
  hex: string;
  rootfs: Buffer;
}

export async function fakeImage(
  dataDir: string,
  name: string,
  rootfs: Buffer = Buffer.from('not really zstd, a stand-in rootfs\n'),
  /** A real squashfs (the stateless tests make one with mksquashfs) and a kernel artefact; defaults: stand-ins, no kernel. */
  o: { squashfs?: Buffer; kernel?: Buffer } = {},
): Promise<FakeImage> {
  const squash = o.squashfs ?? Buffer.from('squashfs stand-in\n');
  const art = (file: string, data: Buffer): Artefact => ({ file, size: data.length, sha256: sha256Hex(data) });
  const kernel = o.kernel ? art(FILES.kernel, o.kernel) : null;
  const artefacts = { rootfs: art(FILES.rootfs, rootfs), squashfs: art(FILES.squashfs, squash), kernel, initrd: null };
  const listed = [artefacts.rootfs, artefacts.squashfs, ...(kernel ? [kernel] : [])];
  const digest = imageDigest(listed);
  const manifest: ImageManifest = {
    schema: 1,
    digest,
    from: 'import:test.tar',
    arch: 'amd64',
    created: '2026-03-01T10:00:00.000Z',
    buildKey: `test-${name}`,
    origin: { kind: 'import', file: 'test.tar', format: 'tar', sha256: sha256Hex(rootfs) },
    kernelVersion: '6.1.0-18-amd64',
    agent: true,
    packageCount: 0,
    packages: [],
    artefacts,
  };
  const p = imagePaths(dataDir);
  const dir = join(p.blobs, digestHex(digest));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, FILES.rootfs), rootfs);
  writeFileSync(join(dir, FILES.squashfs), squash);
  if (o.kernel) writeFileSync(join(dir, FILES.kernel), o.kernel);
  writeFileSync(join(dir, FILES.manifest), renderManifest(manifest));
  writeFileSync(join(dir, FILES.sums), renderSums(listed));
  await register(p, name, manifest, () => new Date('2026-03-01T10:00:00.000Z'));
  return { manifest, hex: digestHex(digest), rootfs };
}

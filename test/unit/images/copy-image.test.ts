/**
 * copyImage (server/images/store.ts): an image of one data dir's store put
 * into another's, as the lab does with the image the test suite built once:
 * hard links, checked against the manifest, published and registered like a
 * build; a second copy only registers; a damaged source registers nothing.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { FILES } from '../../../server/images/manifest.js';
import { copyImage, imagePaths, listImages, showImage } from '../../../server/images/store.js';
import { fakeImage } from '../../helpers/image-store.js';

describe('copyImage', () => {
  let root = '';
  let from = '';
  let to = '';
  const logs: string[] = [];
  const log = (s: string) => logs.push(s);
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fleet-copy-image-'));
    from = join(root, 'cache');
    to = join(root, 'lab');
    logs.length = 0;
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('hard-links the artefacts, publishes them by digest and registers the new name', async () => {
    const img = await fakeImage(from, 'itest');
    const r = await copyImage({ fromDataDir: from, name: 'itest', toDataDir: to, as: 'lab', log });
    expect(r.copied).toBe(true);
    expect(r.image).toMatchObject({ name: 'lab', digest: img.manifest.digest, buildKey: img.manifest.buildKey });
    const shown = await showImage(to, 'lab');
    expect(shown.digest).toBe(img.manifest.digest);
    const a = join(imagePaths(from).blobs, img.hex, FILES.rootfs);
    const b = join(imagePaths(to).blobs, img.hex, FILES.rootfs);
    expect(statSync(b).ino).toBe(statSync(a).ino);
    expect(existsSync(join(imagePaths(to).blobs, img.hex, FILES.manifest))).toBe(true);
    expect(readdirSync(imagePaths(to).tmp)).toEqual([]);

    // Again: the digest is there, only the name is registered.
    const again = await copyImage({ fromDataDir: from, name: 'itest', toDataDir: to, as: 'lab2', log });
    expect(again.copied).toBe(false);
    expect((await listImages(to)).map((i) => i.name).sort()).toEqual(['lab', 'lab2']);
  });

  it('refuses a source whose artefact does not match its manifest, and registers nothing', async () => {
    const img = await fakeImage(from, 'itest');
    writeFileSync(join(imagePaths(from).blobs, img.hex, FILES.rootfs), 'tampered');
    const e = await copyImage({ fromDataDir: from, name: 'itest', toDataDir: to, as: 'lab', log }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('image.build_failed');
    expect((e as FleetError).message).toMatch(/does not match its manifest/);
    expect(await listImages(to)).toEqual([]);
    expect(existsSync(join(imagePaths(to).blobs, img.hex))).toBe(false);
    expect(readdirSync(imagePaths(to).tmp)).toEqual([]);
  });

  it('says which image is missing, and refuses to copy a store onto itself', async () => {
    await expect(copyImage({ fromDataDir: from, name: 'nope', toDataDir: to, as: 'lab', log })).rejects.toThrow(/nope/);
    await fakeImage(from, 'itest');
    await expect(copyImage({ fromDataDir: from, name: 'itest', toDataDir: from, as: 'x', log })).rejects.toThrow(/its own store/);
  });
});

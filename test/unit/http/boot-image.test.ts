/**
 * Image installs on the boot face (server/http/routes/boot.ts) through
 * buildBootApp and inject: the plan route (JSON, or one line of text when
 * refused), install-progress (204, dropped or not), the boot environment's
 * files from DATA/bootenv/current (a symlink to a sibling directory is
 * fine, one leaving DATA/bootenv is not) and the image store's rootfs.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { buildBootApp } from '../../../server/http/app.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER } from '../../helpers/golden.js';
import { fakeImage, type FakeImage } from '../../helpers/image-store.js';

const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

describe('boot face: image installs', () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;
  let clock: number;
  let image: FakeImage;
  let told: string[];
  const now = () => new Date(clock);

  beforeEach(async () => {
    clock = T0;
    told = [];
    dir = mkdtempSync(join(tmpdir(), 'fleet-boot-image-'));
    store = await openStore({ memory: true }, { secretKey: randomBytes(32), clock: now });
    await store.profiles.upsert({ ...PROFILES.compute, name: 'debian', os: { install: 'image', tree: '', image: 'debian12' } }, ACTOR);
    await store.settings.setCluster(
      { cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } } },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'debian', ip: '10.10.3.1', macs: [MAC1], pet: false }, ACTOR);
    image = await fakeImage(dir, 'debian12', randomBytes(70_000));
    // DATA/bootenv/current -> a sibling directory, as a build publishes it
    mkdirSync(join(dir, 'bootenv', 'b1'), { recursive: true });
    writeFileSync(join(dir, 'bootenv', 'b1', 'vmlinuz'), 'KERNEL');
    writeFileSync(join(dir, 'bootenv', 'b1', 'initrd.img'), 'INITRD!');
    symlinkSync('b1', join(dir, 'bootenv', 'current'));
    app = await buildBootApp({
      store,
      serverUrl: SERVER,
      caFingerprint: CA_FP,
      enrolServer: '10.10.0.1:50051',
      dataDir: dir,
      now,
      logLevel: 'silent',
      rateLimit: { max: 10_000, timeWindow: 60_000 },
      recorder: createRecorder({ store, listener: { signal: async (_node, kind) => void told.push(kind) } }),
    });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function installToken(): Promise<string> {
    await store.nodes.setState('valkyrie01', 'netbooting', ACTOR);
    await store.nodes.setArmed('valkyrie01', true, ACTOR);
    const res = await app.inject({ url: '/boot/52-54-00-12-34-56.ipxe' });
    expect(res.statusCode, res.body).toBe(200);
    return /fleet\.token=([A-Za-z0-9_-]+)/.exec(res.body)![1]!;
  }

  it('GET /bootenv/:node/plan answers the plan as JSON for the install token', async () => {
    const token = await installToken();
    const res = await app.inject({ url: `/bootenv/valkyrie01/plan?token=${token}` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const plan = res.json() as { image: { rootfs: { url: string; size: number } }; node: string };
    expect(plan.node).toBe('valkyrie01');
    expect(plan.image.rootfs).toMatchObject({ url: `${SERVER}/images/sha256/${image.hex}/rootfs.tar.zst`, size: 70_000 });
    expect(told).toContain(EVENT.planFetched);
  });

  it('a refused plan is one line of text with its status', async () => {
    await installToken();
    const none = await app.inject({ url: '/bootenv/valkyrie01/plan' });
    expect(none.statusCode).toBe(403);
    expect(none.headers['content-type']).toMatch(/^text\/plain/);
    expect(none.body).toMatch(/^install plan for valkyrie01 refused: no token .*\n$/);
    expect(none.body.trimEnd()).not.toContain('\n');
    const bad = await app.inject({ url: `/bootenv/valkyrie01/plan?token=${'A'.repeat(43)}` });
    expect(bad.statusCode).toBe(403);
    expect(bad.body).toBe('install plan for valkyrie01 refused: unknown token\n');
    expect((await app.inject({ url: '/bootenv/Not..A.Node/plan?token=x' })).statusCode).toBe(400);
  });

  it('an image missing from the store: 409 with the reason', async () => {
    const token = await installToken();
    await store.profiles.upsert({ ...PROFILES.compute, name: 'debian', os: { install: 'image', tree: '', image: 'gone' } }, ACTOR);
    const res = await app.inject({ url: `/bootenv/valkyrie01/plan?token=${token}` });
    expect(res.statusCode).toBe(409);
    expect(res.body).toMatch(/image gone of profile debian is not in the image store/);
  });

  it('POST install-progress answers 204, kept or dropped; a bad body is a 400', async () => {
    const token = await installToken();
    const post = (body: unknown) => app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-progress?token=${token}`, payload: body as object });
    expect((await post({ phase: 'write', bytes: 1, total: 10, percent: 10 })).statusCode).toBe(204);
    expect((await post({ phase: 'write', bytes: 2, total: 10, percent: 20 })).statusCode).toBe(204);
    expect((await post({ phase: 'nope' })).statusCode).toBe(400);
    const rows = (await store.events.list({ kinds: [EVENT.installProgress], limit: 10 })).events;
    expect(rows).toHaveLength(1);
    expect(told).not.toContain(EVENT.installProgress);
  });

  it('serves the boot environment from DATA/bootenv/current (a symlink to a sibling), with Content-Length', async () => {
    const k = await app.inject({ url: '/bootenv/vmlinuz' });
    expect(k.statusCode).toBe(200);
    expect(k.body).toBe('KERNEL');
    expect(k.headers['content-length']).toBe('6');
    const i = await app.inject({ url: '/bootenv/initrd.img' });
    expect(i.body).toBe('INITRD!');
    expect((await app.inject({ method: 'HEAD', url: '/bootenv/vmlinuz' })).headers['content-length']).toBe('6');
    // only those two files
    writeFileSync(join(dir, 'bootenv', 'b1', 'secret'), 'x');
    expect((await app.inject({ url: '/bootenv/secret' })).statusCode).toBe(404);
    // a file that is a symlink out of the boot environment is refused
    writeFileSync(join(dir, 'outside'), 'OUT');
    rmSync(join(dir, 'bootenv', 'b1', 'initrd.img'));
    symlinkSync(join(dir, 'outside'), join(dir, 'bootenv', 'b1', 'initrd.img'));
    expect((await app.inject({ url: '/bootenv/initrd.img' })).statusCode).toBe(404);
    // not built: 404 with the reason
    rmSync(join(dir, 'bootenv'), { recursive: true });
    const gone = await app.inject({ url: '/bootenv/vmlinuz' });
    expect(gone.statusCode).toBe(404);
  });

  it('serves the image store’s rootfs under /images/sha256/<hex>/ (streamed, Content-Length, ranges), nothing outside it', async () => {
    const res = await app.inject({ url: `/images/sha256/${image.hex}/rootfs.tar.zst` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('70000');
    expect(res.rawPayload.equals(image.rootfs)).toBe(true);
    const part = await app.inject({ url: `/images/sha256/${image.hex}/rootfs.tar.zst`, headers: { range: 'bytes=0-9' } });
    expect(part.statusCode).toBe(206);
    expect(part.rawPayload.equals(image.rootfs.subarray(0, 10))).toBe(true);
    expect((await app.inject({ url: '/images/sha256/../index.json' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/images/sha256/%2e%2e/index.json' })).statusCode).toBe(404);
  });
});

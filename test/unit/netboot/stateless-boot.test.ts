/**
 * Stateless boots through the boot service (server/netboot/boot-service.ts)
 * without sockets: a real SQLite store, an image store in a temp data dir
 * whose squashfs is a real one (mksquashfs of a small tree holding the
 * kernel's module index and a few module files), so the module layer is
 * built for real (unsquashfs, zstd). The boot script of a ready, unarmed
 * node; the layer it names; the plan for the token, armed or not; the
 * callbacks marked stateless; an image that cannot be resolved.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { findExecutable } from '../../../common/executable.js';
import { FleetError } from '../../../common/errors.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { bootenvCurrentDir, createBootService, type BootService } from '../../../server/netboot/boot-service.js';
import { forgetStatelessLayers } from '../../../server/stateless/resolve.js';
import { statelessLayerDir } from '../../../server/stateless/spec.js';
import { openStore, type EventRecord, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER, SSH_KEY } from '../../helpers/golden.js';
import { fakeImage, type FakeImage } from '../../helpers/image-store.js';
import { rejection } from '../../helpers/rejection.js';

const missing = ['mksquashfs', 'unsquashfs', 'zstd'].filter((t) => !findExecutable(t));
if (missing.length > 0 && process.env.CI === 'true') throw new Error(`CI=true: stateless-boot.test.ts needs ${missing.join(', ')} (squashfs-tools, zstd)`);
const suite = missing.length > 0 ? describe.skip : describe;

const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const hyp = (mac: string) => mac.replace(/:/g, '-');
const IP = '10.10.3.1';
const KVER = '6.1.0-18-amd64';
const PROFILE = { ...PROFILES.compute, kernelArgs: [], name: 'diskfree', os: { install: 'stateless' as const, tree: '', image: 'debian12' }, sshKeys: [SSH_KEY] };

/** A squashfs holding what the layer reads: modules.dep and modules.builtin of KVER and the .ko files they name. */
function moduleSquashfs(work: string): Buffer {
  const tree = join(work, 'tree');
  const mods = join(tree, 'usr/lib/modules', KVER);
  const ko = (p: string) => {
    mkdirSync(join(mods, p, '..'), { recursive: true });
    writeFileSync(join(mods, p), `\x7fELF stand-in for ${p}\n`);
  };
  for (const p of ['kernel/drivers/block/loop.ko', 'kernel/fs/squashfs/squashfs.ko', 'kernel/fs/overlayfs/overlay.ko', 'kernel/drivers/net/virtio_net.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/net/core/failover.ko']) ko(p);
  writeFileSync(
    join(mods, 'modules.dep'),
    [
      'kernel/drivers/block/loop.ko:',
      'kernel/fs/squashfs/squashfs.ko:',
      'kernel/fs/overlayfs/overlay.ko:',
      'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
      'kernel/net/core/failover.ko:',
      '',
    ].join('\n'),
  );
  writeFileSync(join(mods, 'modules.builtin'), 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n');
  const out = join(work, 'rootfs.squashfs');
  execFileSync('mksquashfs', [tree, out, '-noappend', '-quiet', '-no-progress', '-comp', 'gzip'], { stdio: 'ignore' });
  return readFileSync(out);
}

suite('stateless boots through the boot service', () => {
  let work: string;
  let squashfs: Buffer;
  let dir: string;
  let store: Store;
  let told: { node: string; kind: string }[];
  let boot: BootService;
  let image: FakeImage;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'fleet-stateless-sq-'));
    squashfs = moduleSquashfs(work);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  beforeEach(async () => {
    forgetStatelessLayers();
    told = [];
    dir = mkdtempSync(join(tmpdir(), 'fleet-stateless-boot-'));
    store = await openStore({ file: join(dir, 'fleet.db') }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(PROFILE, ACTOR);
    await store.settings.setCluster(
      { cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', gateway: '10.10.0.1', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: ['10.10.0.1'], ntp: [] } } },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'diskfree', ip: IP, macs: [MAC1], pet: false }, ACTOR);
    image = await fakeImage(dir, 'debian12', undefined, { squashfs, kernel: Buffer.from('a kernel stand-in\n') });
    mkdirSync(bootenvCurrentDir(dir), { recursive: true });
    writeFileSync(join(bootenvCurrentDir(dir), 'vmlinuz'), 'kernel');
    writeFileSync(join(bootenvCurrentDir(dir), 'initrd.img'), 'initrd');
    const recorder = createRecorder({ store, listener: { signal: async (node, kind) => void told.push({ node, kind }) } });
    boot = createBootService({ store, recorder, serverUrl: SERVER, caFingerprint: CA_FP, enrolServer: '10.10.0.1:50051', dataDir: dir });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function events(kind: string): Promise<EventRecord[]> {
    return (await store.events.list({ kinds: [kind], node: 'valkyrie01', limit: 1000 })).events;
  }

  it('a ready, unarmed node boots its image: the image\'s kernel, stage 1, the module layer built from the image, a token', async () => {
    await store.nodes.setState('valkyrie01', 'ready', ACTOR);
    const script = await boot.machineScript(hyp(MAC1), { ip: IP });
    const layerUrl = new RegExp(`^initrd ${SERVER}/stateless/${image.hex}/([0-9a-f]{64})/modules\\.img \\|\\| goto failed$`, 'm').exec(script);
    expect(layerUrl, script).not.toBeNull();
    expect(script).toContain(`kernel ${SERVER}/images/sha256/${image.hex}/vmlinuz initrd=initrd.img initrd=modules.img console=tty0 console=ttyS0 fleet.server=${SERVER} fleet.node=valkyrie01 fleet.token=`);
    expect(script).toContain(`fleet.mac=${MAC1} fleet.job=stateless || goto failed`);
    expect(script).toContain(`initrd ${SERVER}/bootenv/initrd.img || goto failed`);
    // The layer the script names exists: the image's modules in load order (dependencies first), its kernel version.
    const layerDir = statelessLayerDir(dir, image.manifest.digest, layerUrl![1]!);
    const layer = JSON.parse(readFileSync(join(layerDir, 'layer.json'), 'utf8')) as { modules: string[]; builtin: string[]; kernelVersion: string };
    expect(layer.kernelVersion).toBe(KVER);
    expect(layer.modules.indexOf('kernel/net/core/failover.ko')).toBeLessThan(layer.modules.indexOf('kernel/drivers/net/virtio_net.ko'));
    expect(layer.modules).toEqual(expect.arrayContaining(['kernel/drivers/block/loop.ko', 'kernel/fs/squashfs/squashfs.ko', 'kernel/fs/overlayfs/overlay.ko']));
    const listing = execFileSync('sh', ['-c', `zstd -dc '${join(layerDir, 'modules.img')}' | cpio -t 2>/dev/null`]).toString();
    expect(listing).toContain(`lib/modules/${KVER}/kernel/drivers/net/virtio_net.ko`);
    expect(listing).toContain('etc/fleet/kernel');
    const [ev] = await events(EVENT.scriptFetched);
    expect(ev!.details).toMatchObject({ decision: 'install', method: 'stateless', installToken: 'issued' });
    // Not armed, ready: no loop suspicion, and the lifecycle is not moved by it.
    expect(await events(EVENT.loopSuspect)).toEqual([]);
    expect((await store.nodes.require('valkyrie01')).state).toBe('ready');
  });

  it('the plan for the token, unarmed: the squashfs, the root, the identity and an enrolment token; every callback marked stateless', async () => {
    await store.nodes.setState('valkyrie01', 'ready', ACTOR);
    const token = /fleet\.token=(\S+)/.exec(await boot.machineScript(hyp(MAC1), { ip: IP }))![1]!;
    const plan = await boot.statelessPlan('valkyrie01', token, IP);
    expect(plan).toMatchObject({
      node: 'valkyrie01',
      hostname: 'valkyrie01.cluster.local',
      image: { name: 'debian12', digest: image.manifest.digest, squashfs: { url: `${SERVER}/images/sha256/${image.hex}/rootfs.squashfs`, sha256: image.manifest.artefacts.squashfs.sha256, size: squashfs.length } },
      root: 'overlay',
      network: { mac: MAC1, ip: IP, prefix: 16, gateway: '10.10.0.1' },
      sshKeys: [SSH_KEY],
      agent: { caFingerprint: `sha256:${CA_FP}`, server: '10.10.0.1:50051' },
    });
    expect(plan.agent.enrolToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await events(EVENT.planFetched))[0]!.details).toMatchObject({ method: 'stateless', image: 'debian12', digest: image.manifest.digest });
    await boot.installCallback('valkyrie01', 'install-started', token, IP);
    await boot.installCallback('valkyrie01', 'install-finished', token, IP);
    expect((await events(EVENT.installStarted))[0]!.details).toMatchObject({ method: 'stateless' });
    expect((await events(EVENT.installFinished))[0]!.details).toMatchObject({ method: 'stateless' });
    // install-finished used the token up: the next boot gets a new one.
    expect((await rejection(boot.statelessPlan('valkyrie01', token, IP))).code).toBe('auth.forbidden');
    const next = /fleet\.token=(\S+)/.exec(await boot.machineScript(hyp(MAC1), { ip: IP }))![1]!;
    expect(next).not.toBe(token);
  });

  it('a wrong token or no token is refused with an event; the image of an image-install profile is not a stateless plan', async () => {
    expect((await rejection(boot.statelessPlan('valkyrie01', undefined, IP))).message).toContain('no token');
    expect((await rejection(boot.statelessPlan('valkyrie01', 'x'.repeat(43), IP))).code).toBe('auth.forbidden');
    expect((await events(EVENT.planRefused)).length).toBe(2);
    await store.profiles.upsert({ ...PROFILE, os: { install: 'image', tree: '', image: 'debian12' } }, ACTOR);
    await store.nodes.setState('valkyrie01', 'netbooting', ACTOR);
    await store.nodes.setArmed('valkyrie01', true, ACTOR);
    const token = /fleet\.token=(\S+)/.exec(await boot.machineScript(hyp(MAC1), { ip: IP }))![1]!;
    const e = await rejection(boot.statelessPlan('valkyrie01', token, IP));
    expect(e.code).toBe('conflict');
    expect(e.message).toContain('does not boot stateless (os.install: image)');
  });

  it('an image that cannot boot stateless says why on the console and issues no token', async () => {
    // No kernel in the image (an import without /boot/vmlinuz).
    forgetStatelessLayers();
    await fakeImage(dir, 'nokernel', Buffer.from('other rootfs\n'), { squashfs });
    await store.profiles.upsert({ ...PROFILE, os: { install: 'stateless', tree: '', image: 'nokernel' } }, ACTOR);
    let script = await boot.machineScript(hyp(MAC1), { ip: IP });
    expect(script).toContain('echo fleet: valkyrie01 boots stateless, but its image nokernel has no kernel');
    expect(script).not.toContain('fleet.token=');
    // Not in the store.
    await store.profiles.upsert({ ...PROFILE, os: { install: 'stateless', tree: '', image: 'gone' } }, ACTOR);
    script = await boot.machineScript(hyp(MAC1), { ip: IP });
    expect(script).toContain('echo fleet: valkyrie01 boots stateless, but its image gone is not in the image store (fleet image list)');
    // No boot environment.
    await store.profiles.upsert(PROFILE, ACTOR);
    rmSync(join(dir, 'bootenv'), { recursive: true });
    script = await boot.machineScript(hyp(MAC1), { ip: IP });
    expect(script).toContain('is not built: run fleet bootenv build');
    expect(await events(EVENT.tokenIssued)).toEqual([]);
  });

  it('a diskless node: the same stage 1 with fleet.job=diskless; its plan names what it mounts over NFS and its scratch disk; callbacks marked diskless', async () => {
    const mounts = { server: '10.10.0.1', vers: '4.1', root: `/fleet/images/${image.hex}`, var: '/fleet/nodes/valkyrie01/var' };
    const served: string[] = [];
    let answer: typeof mounts | { error: string } = mounts;
    const withNfs = createBootService({
      store,
      recorder: createRecorder({ store }),
      serverUrl: SERVER,
      caFingerprint: CA_FP,
      enrolServer: '10.10.0.1:50051',
      dataDir: dir,
      diskless: { serve: async (n) => (served.push(n), answer) },
    });
    await store.profiles.upsert({ ...PROFILE, os: { install: 'diskless', tree: '', image: 'debian12', nfs: { server: 'management' }, scratch: '/dev/sdb' } }, ACTOR);
    await store.nodes.setState('valkyrie01', 'ready', ACTOR);
    const script = await withNfs.machineScript(hyp(MAC1), { ip: IP });
    expect(script).toContain('echo fleet: booting valkyrie01 diskless, image debian12');
    expect(script).toContain(`fleet.mac=${MAC1} fleet.job=diskless || goto failed`);
    const token = /fleet\.token=(\S+)/.exec(script)![1]!;
    const plan = await withNfs.statelessPlan('valkyrie01', token, IP);
    expect(served).toEqual(['valkyrie01']);
    expect(plan).toMatchObject({ node: 'valkyrie01', install: 'diskless', root: 'overlay', nfs: mounts, scratch: '/dev/sdb', image: { digest: image.manifest.digest }, network: { ip: IP } });
    expect((await events(EVENT.planFetched))[0]!.details).toMatchObject({ method: 'diskless', digest: image.manifest.digest });
    await withNfs.installCallback('valkyrie01', 'install-finished', token, IP);
    expect((await events(EVENT.installFinished))[0]!.details).toMatchObject({ method: 'diskless' });

    // What the NFS service cannot serve is the plan's refusal, with its reason; a server without the service refuses too.
    answer = { error: 'valkyrie01 has no fixed IPv4 address (nodes.valkyrie01.ip): a diskless node\'s exports name it by address' };
    const t2 = /fleet\.token=(\S+)/.exec(await withNfs.machineScript(hyp(MAC1), { ip: IP }))![1]!;
    const e = await rejection(withNfs.statelessPlan('valkyrie01', t2, IP));
    expect(e.code).toBe('conflict');
    expect(e.message).toContain('diskless plan for valkyrie01: valkyrie01 has no fixed IPv4 address');
    const e2 = await rejection(boot.statelessPlan('valkyrie01', t2, IP));
    expect(e2.message).toContain("this server does not serve diskless roots");
  });
});

/**
 * Image installs through the boot service (server/netboot/boot-service.ts)
 * without sockets: a real SQLite store and a hand-made image store in a temp
 * data dir, a recorder whose listener collects what the conductor would be
 * told. The bootenv script, the plan for good / bad / used tokens, progress
 * recorded and not signalled, an image missing from the store.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { bootenvCurrentDir, createBootService, type BootService } from '../../../server/netboot/boot-service.js';
import { openStore, type EventRecord, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER, SSH_KEY } from '../../helpers/golden.js';
import { fakeImage, type FakeImage } from '../../helpers/image-store.js';
import { rejection } from '../../helpers/rejection.js';

const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const hyp = (mac: string) => mac.replace(/:/g, '-');
const IP = '10.10.3.1';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const IMAGE_PROFILE = { ...PROFILES.compute, name: 'debian', os: { install: 'image' as const, tree: '', image: 'debian12' }, sshKeys: [SSH_KEY] };

describe('image install through the boot service', () => {
  let dir: string;
  let store: Store;
  let told: { node: string; kind: string }[];
  let boot: BootService;
  let clock: number;
  let image: FakeImage;
  const now = () => new Date(clock);

  beforeEach(async () => {
    clock = T0;
    told = [];
    dir = mkdtempSync(join(tmpdir(), 'fleet-image-install-'));
    store = await openStore({ file: join(dir, 'fleet.db') }, { secretKey: randomBytes(32), clock: now });
    await store.profiles.upsert(IMAGE_PROFILE, ACTOR);
    await store.settings.setCluster(
      { cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', gateway: '10.10.0.1', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: ['10.10.0.1'], ntp: [] } } },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'debian', ip: IP, macs: [MAC1], pet: false }, ACTOR);
    image = await fakeImage(dir, 'debian12');
    mkdirSync(bootenvCurrentDir(dir), { recursive: true });
    writeFileSync(join(bootenvCurrentDir(dir), 'vmlinuz'), 'kernel');
    writeFileSync(join(bootenvCurrentDir(dir), 'initrd.img'), 'initrd');
    const recorder = createRecorder({ store, listener: { signal: async (node, kind) => void told.push({ node, kind }) } });
    boot = createBootService({ store, recorder, serverUrl: SERVER, caFingerprint: CA_FP, enrolServer: '10.10.0.1:50051', dataDir: dir, now });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function arm(): Promise<void> {
    await store.nodes.setState('valkyrie01', 'netbooting', ACTOR);
    await store.nodes.setArmed('valkyrie01', true, ACTOR);
  }
  async function events(kind: string): Promise<EventRecord[]> {
    return (await store.events.list({ kinds: [kind], node: 'valkyrie01', limit: 1000 })).events;
  }
  async function installToken(): Promise<string> {
    const script = await boot.machineScript(hyp(MAC1), { ip: IP });
    const m = /fleet\.token=([A-Za-z0-9_-]+)/.exec(script);
    expect(m, script).not.toBeNull();
    return m![1]!;
  }

  it('an armed image node gets the boot environment script with its install token', async () => {
    await arm();
    const script = await boot.machineScript(hyp(MAC1), { ip: IP, platform: 'efi' });
    expect(script).toContain(`kernel ${SERVER}/bootenv/vmlinuz initrd=initrd.img console=tty0 console=ttyS0 fleet.server=${SERVER} fleet.node=valkyrie01 fleet.token=`);
    expect(script).toContain(`fleet.mac=${MAC1} fleet.job=install || goto failed`);
    expect(script).not.toContain('inst.ks');
    const token = /fleet\.token=(\S+)/.exec(script)![1]!;
    expect(await installToken()).toBe(token); // a repeated fetch: the same token
    const [ev] = await events(EVENT.scriptFetched);
    expect(ev!.details).toMatchObject({ decision: 'install', method: 'image', profile: 'debian', installToken: 'issued' });
    expect(JSON.stringify(await store.events.list({ limit: 1000 }))).not.toContain(token);
    expect(told.map((t) => t.kind)).toEqual([EVENT.scriptFetched, EVENT.scriptFetched]);
  });

  it('no boot environment built: a clear script and an event, no token', async () => {
    rmSync(join(dir, 'bootenv'), { recursive: true });
    await arm();
    const script = await boot.machineScript(hyp(MAC1), { ip: IP });
    expect(script).toContain('echo fleet: the fleet boot environment is not built: run fleet bootenv build (valkyrie01 installs by image)');
    expect(script).not.toContain('fleet.token=');
    expect(script.trimEnd().split('\n').at(-1)).toBe('exit');
    const [ev] = await events(EVENT.scriptFetched);
    expect(ev!.details).toMatchObject({ decision: 'not-implemented', reason: 'the fleet boot environment is not built: run fleet bootenv build (valkyrie01 installs by image)' });
    expect(await events(EVENT.tokenIssued)).toEqual([]);
  });

  it('fleet render shows what the node would get: the boot environment script once built, the clear refusal before', async () => {
    const { previewIpxe } = await import('../../../server/netboot/scripts.js');
    await arm();
    const deps = { store, serverUrl: SERVER, caFingerprint: CA_FP, dataDir: dir, now };
    expect((await previewIpxe(deps, 'valkyrie01')).decision).toMatchObject({ kind: 'install', method: 'image' });
    rmSync(join(dir, 'bootenv'), { recursive: true });
    const { decision, text } = await previewIpxe(deps, 'valkyrie01');
    expect(decision).toMatchObject({ kind: 'not-implemented', method: 'image' });
    expect(text).toContain('the fleet boot environment is not built: run fleet bootenv build (valkyrie01 installs by image)');
  });

  it('the plan for the install token: the image, the node identity and an enrolment token; a plan fact moves the lifecycle', async () => {
    await arm();
    const token = await installToken();
    const plan = await boot.installPlan('valkyrie01', token, IP);
    expect(plan).toMatchObject({
      node: 'valkyrie01',
      hostname: 'valkyrie01.cluster.local',
      image: { name: 'debian12', digest: image.manifest.digest, rootfs: { url: `${SERVER}/images/sha256/${image.hex}/rootfs.tar.zst`, sha256: image.manifest.artefacts.rootfs.sha256, size: image.rootfs.length }, kernel: 'boot/vmlinuz-6.1.0-18-amd64' },
      network: { mac: MAC1, ip: IP, prefix: 16, gateway: '10.10.0.1', dns: ['10.10.0.1'], domain: 'cluster.local' },
      sshKeys: [SSH_KEY],
      agent: { caFingerprint: `sha256:${CA_FP}`, server: '10.10.0.1:50051' },
    });
    expect(plan.agent.enrolToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(plan.agent.enrolToken).not.toBe(token);
    // a repeated fetch gets the same enrolment token
    expect((await boot.installPlan('valkyrie01', token, IP)).agent.enrolToken).toBe(plan.agent.enrolToken);
    const [ev] = await events(EVENT.planFetched);
    expect(ev!.details).toMatchObject({ ip: IP, image: 'debian12', digest: image.manifest.digest, enrolToken: 'issued' });
    expect(JSON.stringify(await store.events.list({ limit: 1000 }))).not.toContain(plan.agent.enrolToken);
    expect(told.map((t) => t.kind)).toContain(EVENT.planFetched);
  });

  it('the plan is refused without a token, with a bad one, with another node’s, and once the install finished', async () => {
    await store.nodes.upsert({ name: 'valkyrie02', profile: 'debian', ip: '10.10.3.2', macs: ['52:54:00:12:34:57'], pet: false }, ACTOR);
    await arm();
    const token = await installToken();
    expect((await rejection(boot.installPlan('valkyrie01', undefined, IP))).message).toMatch(/refused: no token/);
    expect((await rejection(boot.installPlan('valkyrie01', 'A'.repeat(43), IP))).message).toMatch(/unknown token/);
    const other = await rejection(boot.installPlan('valkyrie02', token, IP));
    expect(other.code).toBe('auth.forbidden');
    expect(other.message).toMatch(/another node/);
    await store.nodes.setState('valkyrie01', 'installing', ACTOR);
    await boot.installCallback('valkyrie01', 'install-finished', token, IP);
    const used = await rejection(boot.installPlan('valkyrie01', token, IP));
    expect(used.code).toBe('auth.forbidden');
    expect(used.message).toMatch(/already used|revoked/);
    const refusals = await events(EVENT.planRefused);
    expect(refusals.length).toBe(3); // valkyrie02's is on valkyrie02
    expect(JSON.stringify(refusals)).not.toContain(token);
  });

  it('an image missing from the store: a clear 409, an event, and nothing issued', async () => {
    await store.profiles.upsert({ ...IMAGE_PROFILE, os: { install: 'image', tree: '', image: 'gone' } }, ACTOR);
    await arm();
    const token = await installToken();
    const e = await rejection(boot.installPlan('valkyrie01', token, IP));
    expect(e.code).toBe('conflict');
    expect(e.message).toMatch(/install plan for valkyrie01: image gone of profile debian is not in the image store \(fleet image list\)/);
    const [ev] = await events(EVENT.planRefused);
    expect(String((ev!.details as { reason?: unknown }).reason)).toMatch(/image gone/);
    expect(await events(EVENT.planFetched)).toEqual([]);
  });

  it('progress is an event row, never told to the conductor, and rate-limited per node', async () => {
    await arm();
    const token = await installToken();
    told = [];
    expect(await boot.installCallback('valkyrie01', 'install-progress', token, IP, { phase: 'partition' })).toEqual({ recorded: EVENT.installProgress });
    expect(await boot.installCallback('valkyrie01', 'install-progress', token, IP, { phase: 'write', bytes: 0, total: 100, percent: 0 })).toEqual({ recorded: EVENT.installProgress });
    expect(await boot.installCallback('valkyrie01', 'install-progress', token, IP, { phase: 'write', bytes: 5, total: 100, percent: 5 })).toEqual({ recorded: null });
    clock += 1000;
    await boot.installCallback('valkyrie01', 'install-progress', token, IP, { phase: 'write', bytes: 50, total: 100, percent: 50 });
    const rows = await events(EVENT.installProgress);
    const kept = rows.map((r) => r.details as Record<string, unknown>).sort((x, y) => Number(x.bytes ?? -1) - Number(y.bytes ?? -1));
    expect(kept).toEqual([
      { ip: IP, phase: 'partition' },
      { ip: IP, phase: 'write', bytes: 0, total: 100, percent: 0 },
      { ip: IP, phase: 'write', bytes: 50, total: 100, percent: 50 },
    ]);
    expect(rows).toHaveLength(3);
    expect(told).toEqual([]);
    // a bad body and a bad token are refused
    expect((await rejection(boot.installCallback('valkyrie01', 'install-progress', token, IP, { phase: 'reboot' }))).code).toBe('request.invalid');
    expect((await rejection(boot.installCallback('valkyrie01', 'install-progress', 'B'.repeat(43), IP, { phase: 'write' }))).code).toBe('auth.forbidden');
  });
});

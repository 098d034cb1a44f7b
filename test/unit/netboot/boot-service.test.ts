/**
 * The boot service (server/netboot/boot-service.ts) without sockets: a real
 * SQLite store in a temp dir and a recorder whose listener collects what the
 * conductor would be told. Scripts for unknown / unarmed / armed machines,
 * kickstarts for valid / invalid / used tokens, install callbacks as facts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { createRecorder, type FactRecorder } from '../../../server/lifecycle/record.js';
import { createBootService, type BootService } from '../../../server/netboot/boot-service.js';
import { openStore, type EventRecord, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER } from '../../helpers/golden.js';

const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const UNKNOWN = '52:54:00:aa:bb:cc';
const hyp = (mac: string) => mac.replace(/:/g, '-');
const IP = '10.10.3.1';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

interface Told {
  node: string;
  kind: string;
  details: Record<string, unknown>;
}

describe('boot service', () => {
  let dir: string;
  let store: Store;
  let told: Told[];
  let recorder: FactRecorder;
  let boot: BootService;
  let clock: number;
  const now = () => new Date(clock);

  beforeEach(async () => {
    clock = T0;
    told = [];
    dir = mkdtempSync(join(tmpdir(), 'fleet-boot-service-'));
    store = await openStore({ file: join(dir, 'fleet.db') }, { secretKey: randomBytes(32), clock: now });
    await store.profiles.upsert(PROFILES.compute, ACTOR);
    await store.settings.setCluster(
      { cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } } },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'compute', ip: IP, macs: [MAC1], pet: false }, ACTOR);
    recorder = createRecorder({
      store,
      listener: {
        signal: async (node, kind, details) => {
          told.push({ node, kind, details });
        },
      },
    });
    boot = createBootService({ store, recorder, serverUrl: SERVER, caFingerprint: CA_FP, now });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function arm(name: string): Promise<void> {
    await store.nodes.setState(name, 'pxe-armed', ACTOR);
    await store.nodes.setArmed(name, true, ACTOR);
  }

  async function events(kind: string, node?: string): Promise<EventRecord[]> {
    return (await store.events.list({ kinds: [kind], ...(node ? { node } : {}), limit: 1000 })).events;
  }

  /** The install token on the kickstart URL of an armed node's script. */
  async function installToken(): Promise<string> {
    const script = await boot.machineScript(hyp(MAC1), { ip: IP });
    const m = /\.ks\?token=([A-Za-z0-9_-]+)/.exec(script);
    expect(m, script).not.toBeNull();
    return m![1]!;
  }

  describe('machine script', () => {
    it('an unknown MAC gets the discovery script, is recorded as discovered, and no fact is told', async () => {
      const script = await boot.machineScript(hyp(UNKNOWN), { ip: '10.10.254.7', arch: 'x86_64' });
      expect(script).toContain(`this machine (${UNKNOWN}) is registered as an unknown machine`);
      expect(await store.discovered.get(UNKNOWN)).toMatchObject({ mac: UNKNOWN, ip: '10.10.254.7', pxe: true, arch: 'x86_64', node: null });
      expect(await events(EVENT.scriptFetched)).toEqual([]);
      expect(told).toEqual([]);
    });

    it('an unarmed node boots its disk: the fetch is written and told, no token is issued', async () => {
      const script = await boot.machineScript(hyp(MAC1), { ip: IP, platform: 'efi' });
      expect(script).not.toContain('kernel ');
      const [ev] = await events(EVENT.scriptFetched, 'valkyrie01');
      expect(ev).toMatchObject({ actor: 'netboot', details: { decision: 'localboot', mac: MAC1, ip: IP, platform: 'efi' } });
      expect(await events(EVENT.tokenIssued)).toEqual([]);
      expect(told).toEqual([{ node: 'valkyrie01', kind: EVENT.scriptFetched, details: ev!.details }]);
    });

    it('an armed node gets the install script with one install token, served again on a repeated fetch', async () => {
      await arm('valkyrie01');
      const first = await installToken();
      const again = await installToken();
      expect(again).toBe(first);
      const fetched = await events(EVENT.scriptFetched, 'valkyrie01');
      expect(fetched.map((e) => (e.details as { installToken: string }).installToken)).toEqual(['issued', 'reused']);
      expect(JSON.stringify(fetched)).not.toContain(first);
      expect(told.map((t) => t.kind)).toEqual([EVENT.scriptFetched, EVENT.scriptFetched]);
    });

    it('a node back on the netboot path after its install: the loop row follows the fetch, and only the fetch is told', async () => {
      await store.nodes.setState('valkyrie01', 'installed', ACTOR);
      const script = await boot.machineScript('valkyrie01', { ip: IP });
      expect(script).toContain('suspected boot loop');
      const rows = (await store.events.list({ node: 'valkyrie01', kinds: [EVENT.scriptFetched, EVENT.loopSuspect], order: 'asc', limit: 10 })).events;
      expect(rows.map((e) => e.kind)).toEqual([EVENT.scriptFetched, EVENT.loopSuspect]);
      expect(rows[1]!.details).toMatchObject({ state: 'installed', mac: MAC1, ip: IP });
      expect(told.map((t) => t.kind)).toEqual([EVENT.scriptFetched]);
    });

    it('an id that is neither a MAC nor a node name, or an unknown node, is an error', async () => {
      await expect(boot.machineScript('Bad_${x}', { ip: IP })).rejects.toMatchObject({ code: 'request.invalid' });
      await expect(boot.machineScript('nosuchnode', { ip: IP })).rejects.toMatchObject({ code: 'node.not_found' });
      expect(told).toEqual([]);
    });
  });

  describe('kickstart', () => {
    it('with its install token: the kickstart, and the fetch written and told', async () => {
      await arm('valkyrie01');
      const token = await installToken();
      told = [];
      const ks = await boot.kickstart('valkyrie01', token, IP);
      expect(ks).toContain('network --bootproto=dhcp --hostname=valkyrie01.cluster.local --activate');
      expect(ks).toContain(`--ca-fingerprint "${CA_FP}"`);
      const [ev] = await events(EVENT.kickstartFetched, 'valkyrie01');
      expect(ev!.details).toMatchObject({ ip: IP, enrolToken: 'issued' });
      expect(told).toEqual([{ node: 'valkyrie01', kind: EVENT.kickstartFetched, details: ev!.details }]);
    });

    it('a wrong token, no token, or a used one is refused (auth.forbidden) with a refusal row and nothing told', async () => {
      await arm('valkyrie01');
      const token = await installToken();
      await expect(boot.kickstart('valkyrie01', 'A'.repeat(43), IP)).rejects.toMatchObject({ code: 'auth.forbidden', message: expect.stringMatching(/unknown token/) });
      await expect(boot.kickstart('valkyrie01', undefined, IP)).rejects.toMatchObject({ code: 'auth.forbidden', message: expect.stringMatching(/no token/) });
      await boot.installCallback('valkyrie01', 'install-finished', token, IP);
      told = [];
      await expect(boot.kickstart('valkyrie01', token, IP)).rejects.toMatchObject({ code: 'auth.forbidden', message: expect.stringMatching(/already used/) });
      const refused = await events(EVENT.kickstartRefused, 'valkyrie01');
      expect(refused.map((e) => (e.details as { reason: string }).reason)).toEqual([
        'unknown token',
        expect.stringMatching(/^no token/),
        'the token was already used (the install finished)',
      ]);
      expect(told).toEqual([]);
      expect(await events(EVENT.kickstartFetched)).toEqual([]);
    });
  });

  describe('install callbacks', () => {
    it('started and failed are written and told; finished is written with the token used up, then told', async () => {
      await arm('valkyrie01');
      const token = await installToken();
      told = [];
      await expect(boot.installCallback('valkyrie01', 'install-started', token, IP)).resolves.toEqual({ recorded: EVENT.installStarted });
      await expect(boot.installCallback('valkyrie01', 'install-failed', token, IP, { message: 'disk', log: 'no space left\n' })).resolves.toEqual({
        recorded: EVENT.installFailed,
      });
      await expect(boot.installCallback('valkyrie01', 'install-finished', token, '10.10.3.99')).resolves.toEqual({ recorded: EVENT.installFinished });
      expect(told).toEqual([
        { node: 'valkyrie01', kind: EVENT.installStarted, details: { ip: IP } },
        { node: 'valkyrie01', kind: EVENT.installFailed, details: { ip: IP, message: 'disk', log: 'no space left\n', logBytes: 14, logTruncated: false } },
        { node: 'valkyrie01', kind: EVENT.installFinished, details: { ip: '10.10.3.99', previousIp: IP } },
      ]);
      const [finished] = await events(EVENT.installFinished, 'valkyrie01');
      expect(finished).toMatchObject({ actor: 'netboot', details: { ip: '10.10.3.99', previousIp: IP } });
      expect(await store.tokens.outstandingOf('valkyrie01')).toEqual([]);
    });

    it('a refused callback writes its refusal row and tells nothing', async () => {
      await arm('valkyrie01');
      await installToken();
      told = [];
      await expect(boot.installCallback('valkyrie01', 'install-started', undefined, IP)).rejects.toMatchObject({ code: 'auth.forbidden' });
      await expect(boot.installCallback('valkyrie01', 'install-finished', 'A'.repeat(43), IP)).rejects.toMatchObject({ code: 'auth.forbidden' });
      const refused = await events(EVENT.callbackRefused, 'valkyrie01');
      expect(refused.map((e) => e.details)).toEqual([
        { event: 'install-started', reason: 'no token', ip: IP },
        { event: 'install-finished', reason: 'unknown token', ip: IP },
      ]);
      expect(told).toEqual([]);
      expect(await events(EVENT.installFinished)).toEqual([]);
    });
  });
});

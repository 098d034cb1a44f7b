/**
 * Boot endpoints (server/http/routes/boot.ts) through inject, on a real
 * in-memory store: the chain, per-machine decisions and their events,
 * discovery, kickstart tokens, install callbacks, rate limiting, /agent.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../../server/http/errors.js';
import { registerBootRoutes, type BootDeps } from '../../../server/http/routes/boot.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { loadTemplate, PLACEHOLDER_TOKEN, renderBootChain } from '../../../server/netboot/render/index.js';
import { openStore, type EventRecord, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER } from '../../helpers/golden.js';

const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const MAC2 = '52:54:00:12:34:57';
const UNKNOWN = '52:54:00:aa:bb:cc';
const hyp = (mac: string) => mac.replace(/:/g, '-');
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

describe('boot endpoints', () => {
  let store: Store;
  let app: FastifyInstance;
  let clock: number;
  let signals: { node: string; kind: string; details: Record<string, unknown> }[];
  const now = () => new Date(clock);

  async function build(extra: Partial<BootDeps> = {}): Promise<FastifyInstance> {
    const a = fastify();
    installErrorHandling(a);
    await registerBootRoutes(a, {
      store,
      serverUrl: SERVER,
      caFingerprint: CA_FP,
      now,
      rateLimit: { max: 10_000, timeWindow: 60_000 },
      recorder: createRecorder({
        store,
        listener: {
          signal: async (node, kind, details) => {
            signals.push({ node, kind, details });
          },
        },
      }),
      ...extra,
    });
    await a.ready();
    return a;
  }

  beforeEach(async () => {
    clock = T0;
    signals = [];
    store = await openStore({ memory: true }, { secretKey: randomBytes(32), clock: now });
    await store.profiles.upsert(PROFILES.compute, ACTOR);
    await store.settings.setCluster(
      { cluster: CLUSTER, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } } },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'compute', ip: '10.10.3.1', macs: [MAC1], pet: false }, ACTOR);
    await store.nodes.upsert({ name: 'valkyrie02', profile: 'compute', ip: '10.10.3.2', macs: [MAC2], pet: false }, ACTOR);
    app = await build();
  });
  afterEach(async () => {
    await app.close();
    await store.close();
  });

  async function arm(name: string): Promise<void> {
    await store.nodes.setState(name, 'pxe-armed', ACTOR);
    await store.nodes.setArmed(name, true, ACTOR);
  }

  async function events(kind: string, node?: string): Promise<EventRecord[]> {
    return (await store.events.list({ kinds: [kind], ...(node ? { node } : {}), limit: 1000 })).events;
  }

  /** Fetches the install script of an armed node and returns its install token. */
  async function installToken(mac: string): Promise<string> {
    const res = await app.inject({ url: `/boot/${hyp(mac)}.ipxe` });
    expect(res.statusCode, res.body).toBe(200);
    const m = /\.ks\?token=([A-Za-z0-9_-]+)/.exec(res.body);
    expect(m, res.body).not.toBeNull();
    return m![1]!;
  }

  function expectIpxeError(res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, text: RegExp): void {
    expect(res.statusCode).toBe(status);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
    expect(res.body.startsWith('#!ipxe\n')).toBe(true);
    expect(res.body).toMatch(text);
    expect(res.body).toMatch(/\nexit\n$/);
    expect(res.body).not.toMatch(/\bshell\b/);
    // Only inert characters on the echo lines.
    for (const line of res.body.split('\n').filter((l) => l.startsWith('echo '))) expect(line).toMatch(/^echo [A-Za-z0-9 .,:()/_+=@%-]*$/);
  }

  it('GET /boot.ipxe serves the chain script as text/plain', async () => {
    const res = await app.inject({ url: '/boot.ipxe' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toBe(renderBootChain(await loadTemplate('ipxe', 'boot.ipxe'), { server: SERVER }));
    expect(res.body).toContain(`chain --autofree --replace ${SERVER}/boot/\${mac:hexhyp}.ipxe?`);
  });

  it('an armed node in an install state gets the install script with a per-node install token, and an event', async () => {
    await arm('valkyrie01');
    const res = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?serial=VMW-1234&uuid=4c4c4544-0042&arch=x86_64&platform=efi` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toContain('kernel http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/images/pxeboot/vmlinuz initrd=initrd.img');
    const m = /inst\.ks=(\S+)/.exec(res.body);
    expect(m![1]).toMatch(new RegExp(`^${SERVER}/kickstart/valkyrie01\\.ks\\?token=[A-Za-z0-9_-]{43}$`));
    expect(res.body).toContain(`BOOTIF=01-${hyp(MAC1)}`);
    const token = m![1]!.split('token=')[1]!;
    expect(token).not.toBe(PLACEHOLDER_TOKEN);

    const [ev] = await events('boot.script_fetched', 'valkyrie01');
    expect(ev!.details).toEqual({
      decision: 'install',
      profile: 'compute',
      method: 'kickstart',
      installToken: 'issued',
      installTokenExpiresAt: new Date(clock + 2 * 60 * 60 * 1000).toISOString(),
      mac: MAC1,
      ip: '127.0.0.1',
      arch: 'x86_64',
      platform: 'efi',
      serial: 'VMW-1234',
      uuid: '4c4c4544-0042',
    });
    const [issued] = await events('token.issued', 'valkyrie01');
    expect((issued!.details as { purpose: string }).purpose).toBe('install');
    const all = JSON.stringify((await store.events.list({ limit: 1000 })).events);
    expect(all).not.toContain(token);
    expect(signals.map((s) => `${s.node} ${s.kind}`)).toEqual(['valkyrie01 boot.script_fetched']);
  });

  it('an odd SMBIOS serial does not stop a boot: it is just not recorded', async () => {
    const res = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?serial=${encodeURIComponent('Ser#1;$x')}&uuid=not-a-uuid!` });
    expect(res.statusCode, res.body).toBe(200);
    const [ev] = await events('boot.script_fetched', 'valkyrie01');
    expect(ev!.details).not.toHaveProperty('serial');
    expect(ev!.details).not.toHaveProperty('uuid');
  });

  it('HEAD on a machine script issues nothing and records nothing', async () => {
    await arm('valkyrie01');
    const res = await app.inject({ method: 'HEAD', url: `/boot/${hyp(MAC1)}.ipxe` });
    expect(res.statusCode).toBe(404);
    expect(await events('token.issued')).toEqual([]);
    expect(await events('boot.script_fetched')).toEqual([]);
  });

  it('the script can be asked for by node name (its primary MAC)', async () => {
    await arm('valkyrie01');
    const res = await app.inject({ url: '/boot/valkyrie01.ipxe' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(`BOOTIF=01-${hyp(MAC1)}`);
  });

  it('a known node that is not armed boots its local disk; back within 2 min on BIOS it gets sanboot', async () => {
    const res = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?platform=pcbios` });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('goto exit');
    expect(res.body).not.toContain('kernel ');
    const [ev] = await events('boot.script_fetched', 'valkyrie01');
    expect(ev!.details).toMatchObject({ decision: 'localboot', method: 'exit', mac: MAC1, ip: '127.0.0.1' });
    expect((ev!.details as { reason: string }).reason).toContain('not armed');
    expect(await events('token.issued')).toEqual([]);

    clock += 30_000;
    const again = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?platform=pcbios` });
    expect(again.body).toContain('goto sanboot');
    clock += 30_000;
    const third = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?platform=pcbios` });
    expect(third.body).toContain('goto exit');
  });

  it('a node back on the netboot path after its install is flagged boot-loop-suspect and not reinstalled', async () => {
    await store.nodes.setState('valkyrie01', 'installed', ACTOR);
    const res = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe` });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('suspected boot loop');
    expect(res.body).not.toContain('kernel ');
    const [loop] = await events('boot.loop_suspect', 'valkyrie01');
    expect(loop!.details).toMatchObject({ state: 'installed', mac: MAC1, ip: '127.0.0.1' });
    const [fetched] = await events('boot.script_fetched', 'valkyrie01');
    expect(fetched!.details).toMatchObject({ decision: 'localboot', flag: 'boot-loop-suspect' });
  });

  it('an unknown MAC gets the discovery script and is recorded as discovered, with no node event', async () => {
    const res = await app.inject({ url: `/boot/${hyp(UNKNOWN)}.ipxe?arch=x86_64` });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(`this machine (${UNKNOWN}) is registered as an unknown machine`);
    expect(res.body).toContain(`chain --autofree --replace ${SERVER}/boot.ipxe`);
    const m = await store.discovered.get(UNKNOWN);
    expect(m).toMatchObject({ mac: UNKNOWN, ip: '127.0.0.1', pxe: true, arch: 'x86_64', node: null });
    expect(await events('boot.script_fetched')).toEqual([]);
    const [disc] = await events('machine.discovered');
    expect(disc!.node).toBeNull();
  });

  it('a bad id or query is answered with an iPXE-safe error script, never a shell', async () => {
    // multicast MAC
    expectIpxeError(await app.inject({ url: '/boot/01-00-5e-00-00-01.ipxe' }), 400, /not a unicast MAC|multicast|MAC/);
    // neither a MAC nor a node name; the id's characters must not reach the script
    expectIpxeError(await app.inject({ url: '/boot/Bad_$%7Bx%7D.ipxe' }), 400, /neither a MAC address/);
    // query values are validated
    expectIpxeError(await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe?platform=efi%3Bshell` }), 400, /platform|querystring/);
    // unknown node name
    expectIpxeError(await app.inject({ url: '/boot/nosuchnode.ipxe' }), 404, /no node named nosuchnode/);
    expect(await events('boot.script_fetched')).toEqual([]);
    expect(await store.discovered.list()).toEqual([]);
  });

  describe('kickstart', () => {
    it('an armed node with its install token gets its kickstart, with an enrolment token; fetching again serves the same one', async () => {
      await arm('valkyrie01');
      const token = await installToken(MAC1);
      const res = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body).toContain('network --bootproto=dhcp --hostname=valkyrie01.cluster.local --activate');
      expect(res.body).toContain(`${SERVER}/api/v1/boot-events/valkyrie01/install-started?token=${token}`);
      const enrol = /--token "([A-Za-z0-9_-]+)"/.exec(res.body)![1]!;
      expect(enrol).not.toBe(token);
      expect(enrol).not.toBe(PLACEHOLDER_TOKEN);
      expect(res.body).toContain(`--ca-fingerprint "${CA_FP}"`);

      // Installers retry: the install token is not used up by a fetch, and the retry gets the
      // same kickstart (the same enrolment token), not a second live token.
      const again = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}` });
      expect(again.statusCode).toBe(200);
      expect(again.body).toBe(res.body);
      const fetched = await events('boot.kickstart_fetched', 'valkyrie01');
      expect(fetched.map((e) => (e.details as { enrolToken: string }).enrolToken)).toEqual(['issued', 'reused']);
      expect((await store.tokens.outstandingOf('valkyrie01')).map((t) => t.purpose)).toEqual(['enrol', 'install']);

      // The enrolment token is the one the gRPC Enroll consumes (store default purpose), bound to the node, one-time.
      await expect(store.tokens.consume(enrol, { node: 'valkyrie01' })).resolves.toMatchObject({ node: 'valkyrie01' });
      await expect(store.tokens.consume(enrol, { node: 'valkyrie01' })).rejects.toMatchObject({ code: 'token.used' });
      // ... and it does not open the kickstart.
      const withEnrol = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${enrol}` });
      expect(withEnrol.statusCode).toBe(403);
      const all = JSON.stringify((await store.events.list({ limit: 1000 })).events);
      expect(all).not.toContain(token);
      expect(all).not.toContain(enrol);
    });

    it('a wrong token, another node\'s token, no token, an expired token or a disarmed node are refused with 403 and an event', async () => {
      await arm('valkyrie01');
      await arm('valkyrie02');
      const mine = await installToken(MAC1);
      const other = await installToken(MAC2);

      const cases: [string, RegExp][] = [
        [`/kickstart/valkyrie01.ks?token=${'A'.repeat(43)}`, /unknown token/],
        [`/kickstart/valkyrie01.ks?token=${other}`, /belongs to another node/],
        ['/kickstart/valkyrie01.ks', /no token/],
      ];
      for (const [url, why] of cases) {
        const res = await app.inject({ url });
        expect(res.statusCode, url).toBe(403);
        expect(res.json().error.code).toBe('auth.forbidden');
        expect(res.json().error.message).toMatch(why);
        expect(res.body).not.toContain('%packages');
      }
      const refused = await events('boot.kickstart_refused', 'valkyrie01');
      expect(refused.map((e) => (e.details as { reason: string }).reason)).toEqual([
        'unknown token',
        'the token belongs to another node',
        expect.stringMatching(/^no token/),
      ]);
      expect(JSON.stringify(refused)).not.toContain(other);

      // disarmed meanwhile
      await store.nodes.setArmed('valkyrie01', false, ACTOR);
      const disarmed = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${mine}` });
      expect(disarmed.statusCode).toBe(403);
      expect(disarmed.json().error.message).toMatch(/not armed/);
      await store.nodes.setArmed('valkyrie01', true, ACTOR);
      expect((await app.inject({ url: `/kickstart/valkyrie01.ks?token=${mine}` })).statusCode).toBe(200);

      // expired: the install token lives 2 h by default
      clock += 2 * 60 * 60 * 1000 + 1000;
      const expired = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${mine}` });
      expect(expired.statusCode).toBe(403);
      expect(expired.json().error.message).toMatch(/expired/);
      expect(await events('boot.kickstart_fetched', 'valkyrie01')).toHaveLength(1);
    });

    it('an unknown node is a 404', async () => {
      const res = await app.inject({ url: `/kickstart/nosuch.ks?token=${'A'.repeat(43)}` });
      expect(res.statusCode).toBe(404);
    });
  });

  describe('install callbacks', () => {
    it('records install-started, install-failed (log tail) and install-finished; finished uses the token up', async () => {
      await arm('valkyrie01');
      const token = await installToken(MAC1);
      const started = await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-started?token=${token}` });
      expect(started.statusCode, started.body).toBe(200);
      expect(started.json()).toEqual({ recorded: 'install.started' });

      const log = '== /tmp/anaconda.log\nerror: no space left on device\n';
      const failed = await app.inject({
        method: 'POST',
        url: `/api/v1/boot-events/valkyrie01/install-failed?token=${token}`,
        headers: { 'content-type': 'text/plain' },
        payload: log,
      });
      expect(failed.statusCode, failed.body).toBe(200);
      const [f] = await events('install.failed', 'valkyrie01');
      expect(f!.details).toEqual({ ip: '127.0.0.1', log, logBytes: Buffer.byteLength(log), logTruncated: false });

      const json = await app.inject({
        method: 'POST',
        url: `/api/v1/boot-events/valkyrie01/install-failed?token=${token}`,
        payload: { message: 'disk', log: 'tail' },
      });
      expect(json.statusCode).toBe(200);
      expect((await events('install.failed', 'valkyrie01'))[1]!.details).toMatchObject({ message: 'disk', log: 'tail' });

      const finished = await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-finished?token=${token}` });
      expect(finished.statusCode).toBe(200);
      expect(await events('install.finished', 'valkyrie01')).toHaveLength(1);
      expect(await events('install.started', 'valkyrie01')).toHaveLength(1);

      // After install-finished the token is spent: the kickstart copy left on disk opens nothing.
      const late = await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-started?token=${token}` });
      expect(late.statusCode).toBe(403);
      expect(late.json().error.message).toMatch(/already used/);
      expect((await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}` })).statusCode).toBe(403);
      const all = JSON.stringify((await store.events.list({ limit: 1000 })).events);
      expect(all).not.toContain(token);
    });

    it('a long log is stored truncated to its end; an oversized body is refused with 413 and nothing is recorded', async () => {
      await arm('valkyrie01');
      const token = await installToken(MAC1);
      const long = 'x'.repeat(40 * 1024) + 'THE-END';
      const ok = await app.inject({
        method: 'POST',
        url: `/api/v1/boot-events/valkyrie01/install-failed?token=${token}`,
        headers: { 'content-type': 'text/plain' },
        payload: long,
      });
      expect(ok.statusCode).toBe(200);
      const [f] = await events('install.failed', 'valkyrie01');
      const d = f!.details as { log: string; logBytes: number; logTruncated: boolean };
      expect(d.logTruncated).toBe(true);
      expect(d.log.length).toBe(16 * 1024);
      expect(d.log.endsWith('THE-END')).toBe(true);
      expect(d.logBytes).toBe(long.length);

      const huge = await app.inject({
        method: 'POST',
        url: `/api/v1/boot-events/valkyrie01/install-failed?token=${token}`,
        headers: { 'content-type': 'text/plain' },
        payload: 'y'.repeat(64 * 1024 + 1),
      });
      expect(huge.statusCode).toBe(413);
      expect(await events('install.failed', 'valkyrie01')).toHaveLength(1);
    });

    it('refuses a wrong token (403, event without the token), an unknown event (400) and an unknown node (404)', async () => {
      await arm('valkyrie01');
      await arm('valkyrie02');
      await installToken(MAC1);
      const other = await installToken(MAC2);
      const wrong = await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-started?token=${other}` });
      expect(wrong.statusCode).toBe(403);
      const none = await app.inject({ method: 'POST', url: '/api/v1/boot-events/valkyrie01/install-finished' });
      expect(none.statusCode).toBe(403);
      expect(await events('install.started')).toEqual([]);
      expect(await events('install.finished')).toEqual([]);
      const refused = await events('install.callback_refused', 'valkyrie01');
      expect(refused.map((e) => e.details)).toEqual([
        { event: 'install-started', reason: 'the token belongs to another node', ip: '127.0.0.1' },
        { event: 'install-finished', reason: 'no token', ip: '127.0.0.1' },
      ]);
      expect((await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-rebooted?token=${other}` })).statusCode).toBe(400);
      expect((await app.inject({ method: 'POST', url: `/api/v1/boot-events/nosuch/install-started?token=${other}` })).statusCode).toBe(404);
    });
  });

  describe('install tokens (issue 9)', () => {
    /** The script of a machine, fetched from `ip`. */
    const script = (mac: string, ip = '10.10.3.1') => app.inject({ url: `/boot/${hyp(mac)}.ipxe`, remoteAddress: ip });
    const tokenOf = (body: string) => /\.ks\?token=([A-Za-z0-9_-]+)/.exec(body)![1]!;
    const enrolOf = (body: string) => /--token "([A-Za-z0-9_-]+)"/.exec(body)![1]!;
    const post = (event: string, token: string, ip = '10.10.3.1') =>
      app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/${event}?token=${token}`, remoteAddress: ip });

    it('a repeated script fetch is served the same install token: one outstanding per node, one token.issued', async () => {
      await arm('valkyrie01');
      const first = await script(MAC1);
      expect(first.statusCode, first.body).toBe(200);
      clock += 5 * 60_000;
      const second = await script(MAC1);
      expect(second.body).toBe(first.body);
      const byName = await app.inject({ url: '/boot/valkyrie01.ipxe' });
      expect(tokenOf(byName.body)).toBe(tokenOf(first.body));
      expect((await store.tokens.outstandingOf('valkyrie01')).map((t) => t.purpose)).toEqual(['install']);
      expect(await events('token.issued', 'valkyrie01')).toHaveLength(1);
      const fetched = await events('boot.script_fetched', 'valkyrie01');
      expect(fetched.map((e) => (e.details as { installToken: string }).installToken)).toEqual(['issued', 'reused', 'reused']);
      // Another node gets its own.
      await arm('valkyrie02');
      expect(tokenOf((await script(MAC2)).body)).not.toBe(tokenOf(first.body));
    });

    it('install-finished revokes every other token of the node: the kickstart copy on disk opens nothing', async () => {
      await arm('valkyrie01');
      const token = tokenOf((await script(MAC1)).body);
      const ks = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}`, remoteAddress: '10.10.3.1' });
      expect(ks.statusCode, ks.body).toBe(200);
      const enrol = enrolOf(ks.body);
      expect((await store.tokens.outstandingOf('valkyrie01')).map((t) => t.purpose)).toEqual(['enrol', 'install']);

      expect((await post('install-finished', token)).statusCode).toBe(200);
      expect(await store.tokens.outstandingOf('valkyrie01')).toEqual([]);
      // The enrolment token the agent did not use is dead (the gRPC Enroll consumes it the same way).
      await expect(store.tokens.consume(enrol, { node: 'valkyrie01' })).rejects.toMatchObject({ code: 'token.revoked', message: expect.stringMatching(/install-finished/) });
      // The install token is spent: a replayed callback or kickstart fetch is refused, and says why.
      const replay = await post('install-finished', token);
      expect(replay.statusCode).toBe(403);
      expect(replay.json().error.message).toMatch(/already used/);
      const again = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}` });
      expect(again.statusCode).toBe(403);
      expect(await events('install.finished', 'valkyrie01')).toHaveLength(1);
      const [rev] = await events('token.revoked', 'valkyrie01');
      expect(rev!.details).toEqual({ reason: 'install-finished', purposes: ['enrol'], count: 1 });
      // The next install (armed again) gets new tokens, never the old ones.
      const next = tokenOf((await script(MAC1)).body);
      expect(next).not.toBe(token);
    });

    it('a revoked token (cancel, reinstall) is refused on the kickstart and every callback with the reason; the next fetch gets a new one', async () => {
      await arm('valkyrie01');
      const token = tokenOf((await script(MAC1)).body);
      expect(await store.tokens.revokeAll('valkyrie01', { actor: 'tester', reason: 'cancel' })).toBe(1);
      const ks = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}` });
      expect(ks.statusCode).toBe(403);
      expect(ks.json().error.message).toMatch(/kickstart for valkyrie01 refused: the token was revoked: cancel/);
      for (const event of ['install-started', 'install-failed', 'install-finished']) {
        const res = await post(event, token);
        expect(res.statusCode, event).toBe(403);
        expect(res.json().error.message).toMatch(/revoked: cancel/);
      }
      const refused = [...(await events('boot.kickstart_refused', 'valkyrie01')), ...(await events('install.callback_refused', 'valkyrie01'))];
      expect(refused.map((e) => (e.details as { reason: string }).reason)).toEqual(Array(4).fill('the token was revoked: cancel'));
      expect(await events('install.started', 'valkyrie01')).toEqual([]);
      expect(JSON.stringify(refused)).not.toContain(token);
      const fresh = tokenOf((await script(MAC1)).body);
      expect(fresh).not.toBe(token);
      expect((await app.inject({ url: `/kickstart/valkyrie01.ks?token=${fresh}` })).statusCode).toBe(200);
    });

    it('every token use records its source address; a use from another address than the last names both', async () => {
      await arm('valkyrie01');
      const token = tokenOf((await script(MAC1, '10.10.3.1')).body);
      const [issued] = await events('token.issued', 'valkyrie01');
      expect(issued!.details).toMatchObject({ purpose: 'install', ip: '10.10.3.1' });
      expect((await app.inject({ url: `/kickstart/valkyrie01.ks?token=${token}`, remoteAddress: '10.10.3.1' })).statusCode).toBe(200);
      expect((await post('install-started', token, '10.10.3.1')).statusCode).toBe(200);
      expect((await post('install-started', token, '10.10.9.9')).statusCode).toBe(200);
      expect((await post('install-finished', token, '10.10.3.1')).statusCode).toBe(200);

      const [ks] = await events('boot.kickstart_fetched', 'valkyrie01');
      expect(ks!.details).toMatchObject({ ip: '10.10.3.1', enrolToken: 'issued' });
      expect(ks!.details).not.toHaveProperty('previousIp');
      const started = await events('install.started', 'valkyrie01');
      expect(started.map((e) => e.details)).toEqual([{ ip: '10.10.3.1' }, { ip: '10.10.9.9', previousIp: '10.10.3.1' }]);
      const [fin] = await events('install.finished', 'valkyrie01');
      expect(fin!.details).toEqual({ ip: '10.10.3.1', previousIp: '10.10.9.9' });
      const [used] = await events('token.used', 'valkyrie01');
      expect(used!.details).toEqual({ purpose: 'install', ip: '10.10.3.1', previousIp: '10.10.9.9' });
      // Refusals carry the address too.
      const bad = await app.inject({ url: `/kickstart/valkyrie01.ks?token=${'B'.repeat(43)}`, remoteAddress: '10.10.7.7' });
      expect(bad.statusCode).toBe(403);
      const [refused] = await events('boot.kickstart_refused', 'valkyrie01');
      expect(refused!.details).toEqual({ reason: 'unknown token', ip: '10.10.7.7' });
    });

    it("another node's install token is refused on the callbacks and stays valid for its node", async () => {
      await arm('valkyrie01');
      await arm('valkyrie02');
      const other = tokenOf((await script(MAC2)).body);
      const res = await post('install-finished', other);
      expect(res.statusCode).toBe(403);
      expect(res.json().error.message).toMatch(/belongs to another node/);
      expect(await events('install.finished')).toEqual([]);
      const ok = await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie02/install-finished?token=${other}` });
      expect(ok.statusCode).toBe(200);
    });
  });

  it('an install.finished event feeds the decision: the first netboot since is let through, a second within 30 min is a loop suspect', async () => {
    await arm('valkyrie01');
    const token = await installToken(MAC1);
    await app.inject({ method: 'POST', url: `/api/v1/boot-events/valkyrie01/install-finished?token=${token}` });
    await store.nodes.setArmed('valkyrie01', false, ACTOR);
    await store.nodes.setState('valkyrie01', 'configuring', ACTOR);
    clock += 5 * 60 * 1000;
    // A firmware that keeps the network first (UEFI until its next power cycle): one pass is expected.
    const first = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe` });
    expect(first.body, first.body).toContain('after its install, the first time since');
    expect(first.body).not.toContain('suspected boot loop');
    expect(await events('boot.loop_suspect', 'valkyrie01')).toHaveLength(0);
    clock += 10 * 60 * 1000;
    const res = await app.inject({ url: `/boot/${hyp(MAC1)}.ipxe` });
    expect(res.body).toContain('after its install: suspected boot loop');
    expect(await events('boot.loop_suspect', 'valkyrie01')).toHaveLength(1);
  });

  it('rate-limits a burst per client IP with 429 (an iPXE script on .ipxe routes), but not the static trees', async () => {
    const limited = await build({ rateLimit: { max: 3, timeWindow: 60_000 } });
    try {
      for (let i = 0; i < 3; i++) expect((await limited.inject({ url: '/boot.ipxe' })).statusCode).toBe(200);
      const over = await limited.inject({ url: `/boot/${hyp(MAC1)}.ipxe` });
      expectIpxeError(over, 429, /Rate limit exceeded/);
      expect(over.headers['retry-after']).toBeDefined();
      const ks = await limited.inject({ url: '/kickstart/valkyrie01.ks?token=x' });
      expect(ks.statusCode).toBe(429);
      expect(ks.json().error.code).toBe('rate_limited');
      // Another client address has its own budget.
      expect((await limited.inject({ url: '/boot.ipxe', remoteAddress: '10.10.3.9' })).statusCode).toBe(200);
      // The repository tree is not limited (an install fetches hundreds of packages).
      for (let i = 0; i < 10; i++) expect((await limited.inject({ url: '/repo/x.rpm' })).statusCode).toBe(404);
      // Nothing was recorded for the refused requests.
      expect(await events('boot.script_fetched')).toEqual([]);
    } finally {
      await limited.close();
    }
  });

  it('/agent/* is a 404 saying the bundle is not built when no agent dir is configured, and serves it when it is', async () => {
    const res = await app.inject({ url: '/agent/fleet-agent' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toMatch(/agent bundle is not built/);

    const dir = mkdtempSync(join(tmpdir(), 'fleet-agent-'));
    try {
      writeFileSync(join(dir, 'fleet-agent'), '#!/bin/sh\necho agent\n');
      const withAgent = await build({ agentDir: dir });
      try {
        const ok = await withAgent.inject({ url: '/agent/fleet-agent' });
        expect(ok.statusCode).toBe(200);
        expect(ok.body).toBe('#!/bin/sh\necho agent\n');
      } finally {
        await withAgent.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('/stateless/HEX/KEY/modules.img serves a layer, only by hex and key (no traversal, nothing of tmp/); /stateless/NODE/plan wants its token', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fleet-boot-stateless-'));
    try {
      const hex = 'ab'.repeat(32);
      const key = 'cd'.repeat(32);
      mkdirSync(join(dataDir, 'stateless', hex, key), { recursive: true });
      writeFileSync(join(dataDir, 'stateless', hex, key, 'modules.img'), 'layer bytes');
      mkdirSync(join(dataDir, 'stateless', 'tmp', 'x'), { recursive: true });
      writeFileSync(join(dataDir, 'stateless', 'tmp', 'x', 'modules.img'), 'a build in progress');
      writeFileSync(join(dataDir, 'secret'), 'not served');
      await app.close();
      app = await build({ dataDir });
      const ok = await app.inject({ url: `/stateless/${hex}/${key}/modules.img` });
      expect(ok.statusCode).toBe(200);
      expect(ok.body).toBe('layer bytes');
      expect((await app.inject({ method: 'HEAD', url: `/stateless/${hex}/${key}/modules.img` })).statusCode).toBe(200);
      for (const url of [
        `/stateless/${'ef'.repeat(32)}/${key}/modules.img`,
        `/stateless/tmp/x/modules.img`,
        `/stateless/${hex}/..%2F..%2Fsecret/modules.img`,
        `/stateless/${hex}/${key}/layer.json`,
        `/stateless/${hex.toUpperCase()}/${key}/modules.img`,
      ]) {
        const r = await app.inject({ url });
        expect([400, 404], `${url}: ${r.statusCode} ${r.body}`).toContain(r.statusCode);
        expect(r.body).not.toContain('a build in progress');
        expect(r.body).not.toContain('not served');
      }
      const noToken = await app.inject({ url: '/stateless/valkyrie01/plan' });
      expect(noToken.statusCode).toBe(403);
      expect(noToken.headers['content-type']).toMatch(/^text\/plain/);
      expect(noToken.body).toMatch(/^stateless plan for valkyrie01 refused: no token/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/**
 * Netboot API (render, discovered, enroll) and its CLI commands, against a
 * real in-memory store and the two faces built as fleet server builds them:
 * the admin app (bearer on /api/v1) and the boot app (scripts, callbacks).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cmdDiscovered, cmdEnroll, cmdExport, cmdRender } from '../../../server/cli/commands/netboot.js';
import type { CliIo } from '../../../server/cli/io.js';
import { FleetError } from '../../../common/errors.js';
import { buildAdminApp, buildBootApp } from '../../../server/http/app.js';
import { PLACEHOLDER_TOKEN } from '../../../server/netboot/render/index.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { CA_FP, CLUSTER, PROFILES, SERVER } from '../../helpers/golden.js';

const API_TOKEN = 'test-api-token-0123456789abcdef';
const auth = { authorization: `Bearer ${API_TOKEN}` };
const ACTOR = { actor: 'test' };
const MAC1 = '52:54:00:12:34:56';
const NEW = '52:54:00:aa:bb:cc';
const hyp = (mac: string) => mac.replace(/:/g, '-');

describe('netboot API and CLI', () => {
  let store: Store;
  let app: FastifyInstance;
  let bootApp: FastifyInstance;
  let home: string;

  beforeEach(async () => {
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert(PROFILES.compute, ACTOR);
    await store.profiles.upsert(PROFILES.login, ACTOR);
    await store.settings.setCluster(
      {
        cluster: { ...CLUSTER, managementName: 'odin' },
        networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } },
      },
      ACTOR,
    );
    await store.nodes.upsert({ name: 'valkyrie01', profile: 'compute', ip: '10.10.3.1', macs: [MAC1], pet: false }, ACTOR);
    await store.nodes.upsert({ name: 'nomac', profile: 'compute', macs: [], pet: false }, ACTOR);

    // The two faces as fleet server builds them.
    const deps = { serverUrl: SERVER, caFingerprint: CA_FP };
    app = await buildAdminApp({ store, apiToken: API_TOKEN, logLevel: 'silent', netboot: deps });
    bootApp = await buildBootApp({ store, ...deps, logLevel: 'silent', rateLimit: { max: 10_000, timeWindow: 60_000 } });
    await bootApp.ready();
    await app.ready();
    home = mkdtempSync(join(tmpdir(), 'fleet-cli-'));
  });
  afterEach(async () => {
    await app.close();
    await bootApp.close();
    await store.close();
    rmSync(home, { recursive: true, force: true });
  });

  async function arm(name: string): Promise<void> {
    await store.nodes.setState(name, 'pxe-armed', ACTOR);
    await store.nodes.setArmed(name, true, ACTOR);
  }

  async function kinds(): Promise<string[]> {
    return (await store.events.list({ limit: 1000 })).events.map((e) => e.kind);
  }

  describe('render', () => {
    it('needs the API token', async () => {
      expect((await app.inject({ url: '/api/v1/render/valkyrie01/ipxe' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/api/v1/discovered' })).statusCode).toBe(401);
      expect((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: { mac: NEW, name: 'x' } })).statusCode).toBe(401);
    });

    it('shows exactly the script the node would be served, with the placeholder token and nothing issued', async () => {
      await arm('valkyrie01');
      const before = await kinds();
      const preview = await app.inject({ url: '/api/v1/render/valkyrie01/ipxe', headers: auth });
      expect(preview.statusCode, preview.body).toBe(200);
      expect(preview.headers['content-type']).toMatch(/^text\/plain/);
      expect(preview.body).toContain(`inst.ks=${SERVER}/kickstart/valkyrie01.ks?token=${PLACEHOLDER_TOKEN}`);
      expect(await kinds()).toEqual(before);

      const served = await bootApp.inject({ url: `/boot/${hyp(MAC1)}.ipxe` });
      const real = /\?token=([A-Za-z0-9_-]+)/.exec(served.body)![1]!;
      expect(served.body.replaceAll(real, PLACEHOLDER_TOKEN)).toBe(preview.body);

      const json = await app.inject({ url: '/api/v1/render/valkyrie01/ipxe', headers: { ...auth, accept: 'application/json' } });
      expect(json.json()).toEqual({ node: 'valkyrie01', kind: 'ipxe', decision: 'install', text: preview.body });
    });

    it('an unarmed node previews its local boot; a node without MAC, an unknown node are refused', async () => {
      const res = await app.inject({ url: '/api/v1/render/valkyrie01/ipxe', headers: auth });
      expect(res.body).toContain('goto exit');
      expect((await app.inject({ url: '/api/v1/render/nomac/ipxe', headers: auth })).statusCode).toBe(400);
      expect((await app.inject({ url: '/api/v1/render/nosuch/ipxe', headers: auth })).statusCode).toBe(404);
      expect((await app.inject({ url: '/api/v1/render/nosuch/kickstart', headers: auth })).statusCode).toBe(404);
      expect(await kinds()).not.toContain('boot.script_fetched');
    });

    it('the kickstart preview carries only placeholder tokens and issues none', async () => {
      const before = await kinds();
      const res = await app.inject({ url: '/api/v1/render/valkyrie01/kickstart', headers: auth });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body).toContain(`--token "${PLACEHOLDER_TOKEN}"`);
      expect(res.body).toContain(`install-started?token=${PLACEHOLDER_TOKEN}`);
      expect(res.body.match(/token[=" ]+([A-Za-z0-9_-]{16,})/g)!.every((m) => m.includes(PLACEHOLDER_TOKEN))).toBe(true);
      expect(await kinds()).toEqual(before);
    });

    it('without a CA fingerprint the kickstart cannot be rendered (503, clear message)', async () => {
      const bare = await buildAdminApp({ store, apiToken: API_TOKEN, logLevel: 'silent', netboot: { serverUrl: SERVER } });
      const res = await bare.inject({ url: '/api/v1/render/valkyrie01/kickstart', headers: auth });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.message).toMatch(/CA fingerprint/);
      await bare.close();
    });
  });

  describe('discovery and enrolment', () => {
    it('lists machines no node declares', async () => {
      await bootApp.inject({ url: `/boot/${hyp(NEW)}.ipxe?arch=x86_64` });
      await store.discovered.record({ mac: MAC1, ip: '10.10.3.1', pxe: true }); // declared: not listed
      const res = await app.inject({ url: '/api/v1/discovered', headers: auth });
      expect(res.statusCode).toBe(200);
      expect(res.json().machines).toEqual([
        { mac: NEW, ip: '127.0.0.1', hostname: null, vendorClass: null, arch: 'x86_64', pxe: true, firstSeen: expect.any(String), lastSeen: expect.any(String), inspectedAt: null, inspection: null, bmcOf: null },
      ]);
    });

    it('enrolls a discovered machine: a node with its MAC, the discovered record gone, its next boot known', async () => {
      await bootApp.inject({ url: `/boot/${hyp(NEW)}.ipxe` });
      const res = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: { ...auth, 'x-fleet-actor': 'alice' }, payload: { mac: hyp(NEW).toUpperCase(), name: 'valkyrie05', profile: 'compute' } });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(body.node).toMatchObject({ name: 'valkyrie05', profile: 'compute', macs: [NEW], ip: null, pet: false, armed: false });
      expect(body.ipNote).toMatch(/outside the provisioning subnet/);
      expect(await store.discovered.get(NEW)).toBeNull();
      const added = (await store.events.list({ node: 'valkyrie05', kinds: ['node.added'] })).events[0]!;
      expect(added.actor).toBe('admin@127.0.0.1 (client: alice)');
      expect(added.cause).toBe('enroll');
      const boot = await bootApp.inject({ url: `/boot/${hyp(NEW)}.ipxe` });
      expect(boot.body).toContain('valkyrie05 is not armed');
    });

    it('keeps the discovered IP only inside the provisioning subnet, outside the unknown range and free', async () => {
      const cases: [string, string, string | null, RegExp | undefined][] = [
        ['52:54:00:00:00:01', 'n1', '10.10.5.7', undefined],
        ['52:54:00:00:00:02', 'n2', '10.10.254.7', /range for unknown machines/],
        ['52:54:00:00:00:03', 'n3', '10.10.3.1', /belongs to node valkyrie01/],
        ['52:54:00:00:00:04', 'n4', '192.168.1.4', /outside the provisioning subnet/],
      ];
      for (const [mac, name, ip, note] of cases) {
        await store.discovered.record({ mac, ip, pxe: true });
        const res = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: auth, payload: { mac, name, profile: 'login' } });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().node.ip).toBe(note ? null : ip);
        if (note) expect(res.json().ipNote).toMatch(note);
        else expect(res.json().ipNote).toBeUndefined();
      }
    });

    it('refuses a bad MAC, a bad name, an unknown profile, an undiscovered MAC, a declared MAC and an existing name; nothing changes', async () => {
      await store.discovered.record({ mac: NEW, ip: '10.10.254.9', pxe: true });
      await store.discovered.record({ mac: MAC1, ip: '10.10.3.1', pxe: true });
      const nodesBefore = (await store.nodes.list()).length;
      const cases: [Record<string, string>, number, RegExp][] = [
        [{ mac: 'ff:ff:ff:ff:ff:ff', name: 'n9', profile: 'compute' }, 400, /not a unicast MAC/],
        [{ mac: NEW, name: 'Bad_Name', profile: 'compute' }, 400, /not a valid node name|lower case/],
        [{ mac: NEW, name: 'x;reboot', profile: 'compute' }, 400, /not a valid node name/],
        [{ mac: NEW, name: 'n9', profile: 'nosuch' }, 400, /no profile named nosuch/],
        [{ mac: NEW, name: 'n9' }, 400, /give the node a profile \(one of compute, login\)/],
        [{ mac: '52:54:00:99:99:99', name: 'n9', profile: 'compute' }, 404, /no discovered machine/],
        [{ mac: MAC1, name: 'n9', profile: 'compute' }, 409, /already belongs to node valkyrie01/],
        [{ mac: NEW, name: 'valkyrie01', profile: 'compute' }, 409, /already exists/],
      ];
      for (const [payload, status, msg] of cases) {
        const res = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: auth, payload });
        expect(res.statusCode, JSON.stringify(payload)).toBe(status);
        expect(res.json().error.message).toMatch(msg);
      }
      expect((await store.nodes.list()).length).toBe(nodesBefore);
      expect(await store.discovered.get(NEW)).not.toBeNull();
      expect((await store.nodes.get('valkyrie01'))!.macs).toEqual([MAC1]);
    });

    it('with a single profile the profile may be left out', async () => {
      await store.profiles.remove('login', ACTOR);
      await store.discovered.record({ mac: NEW, pxe: true });
      const res = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: auth, payload: { mac: NEW, name: 'n9' } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().node.profile).toBe('compute');
      expect(res.json().ipNote).toMatch(/no address/);
    });
  });

  describe('CLI commands over HTTP', () => {
    let url: string;
    let out: string;
    let err: string;
    let io: CliIo;

    beforeEach(async () => {
      await app.listen({ host: '127.0.0.1', port: 0 });
      url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      out = '';
      err = '';
      io = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: { USER: 'alice' }, isTTY: false, home, cwd: home };
    });
    const flags = () => ({ url, token: API_TOKEN });

    it('fleet render ipxe|kickstart NODE prints the preview', async () => {
      await arm('valkyrie01');
      expect(await cmdRender(flags(), 'ipxe', 'valkyrie01', io)).toBe(0);
      expect(out).toContain(`?token=${PLACEHOLDER_TOKEN}`);
      expect(out.startsWith('#!ipxe\n')).toBe(true);
      out = '';
      expect(await cmdRender(flags(), 'kickstart', 'valkyrie01', io)).toBe(0);
      expect(out).toContain('%packages');
      await expect(cmdRender(flags(), 'grub', 'valkyrie01', io)).rejects.toMatchObject({ code: 'usage.invalid' });
      await expect(cmdRender(flags(), 'ipxe', 'nosuch', io)).rejects.toMatchObject({ code: 'node.not_found' });
      await expect(cmdRender({ url }, 'ipxe', 'valkyrie01', io)).rejects.toMatchObject({ code: 'auth.missing' });
    });

    it('fleet export FORMAT prints the export', async () => {
      expect(await cmdExport(flags(), 'hosts', {}, io)).toBe(0);
      expect(out).toContain('\n10.10.0.1  odin.cluster.local odin\n10.10.3.1  valkyrie01.cluster.local valkyrie01\n# no IP address, not listed: nomac\n');
      await expect(cmdExport(flags(), 'csv', {}, io)).rejects.toBeInstanceOf(FleetError);
    });

    it('fleet export ansible-inventory --list / --host NODE: the dynamic inventory script protocol', async () => {
      expect(await cmdExport(flags(), 'ansible-inventory', { list: true }, io)).toBe(0);
      const inv = JSON.parse(out);
      expect(inv.all.children).toContain('ungrouped');
      const groups = Object.keys(inv).filter((k) => k !== '_meta' && k !== 'all');
      expect(groups.length).toBeGreaterThan(0);
      const hosts = groups.flatMap((g) => inv[g].hosts as string[]);
      expect(hosts).toContain('valkyrie01');
      expect(Object.keys(inv._meta.hostvars).sort()).toEqual([...hosts].sort());
      expect(inv._meta.hostvars.valkyrie01).toMatchObject({ ansible_host: '10.10.3.1' });
      out = '';
      expect(await cmdExport(flags(), 'ansible-inventory', { dynamic: true }, io)).toBe(0);
      expect(JSON.parse(out)).toEqual(inv);
      out = '';
      expect(await cmdExport(flags(), 'ansible-inventory', { host: 'valkyrie01' }, io)).toBe(0);
      expect(JSON.parse(out)).toEqual(inv._meta.hostvars.valkyrie01);
      await expect(cmdExport(flags(), 'ansible-inventory', { host: 'nosuch' }, io)).rejects.toMatchObject({ code: 'node.not_found' });
      await expect(cmdExport(flags(), 'hosts', { list: true }, io)).rejects.toMatchObject({ code: 'usage.invalid' });
      await expect(cmdExport(flags(), 'ansible-inventory', { list: true, host: 'valkyrie01' }, io)).rejects.toMatchObject({ code: 'usage.invalid' });
    });

    it('fleet discovered prints a table (or JSON), fleet enroll creates the node and warns about fleet.yaml', async () => {
      expect(await cmdDiscovered(flags(), {}, io)).toBe(0);
      expect(out).toBe('no unknown machines seen\n');
      out = '';
      await store.discovered.record({ mac: NEW, ip: '10.10.254.9', vendorClass: 'PXEClient:Arch:00007:UNDI:003016', arch: 'x86_64', pxe: true });
      expect(await cmdDiscovered(flags(), {}, io)).toBe(0);
      const lines = out.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^MAC\s+IP\s+SERIAL\s+MODEL\s+BMC\s+SWITCH PORT\s+ARCH\s+PXE\s+INSPECTED\s+LAST SEEN$/);
      // Not inspected: no serial, model or BMC yet.
      expect(lines[1]).toMatch(new RegExp(`^${NEW}\\s+10\\.10\\.254\\.9\\s+-\\s+-\\s+-\\s+-\\s+x86_64\\s+yes\\s+-\\s+\\d{4}-`));
      out = '';
      expect(await cmdDiscovered(flags(), { json: true }, io)).toBe(0);
      expect(JSON.parse(out)[0].mac).toBe(NEW);

      out = '';
      expect(await cmdEnroll(flags(), NEW, { name: 'valkyrie05', profile: 'compute' }, io)).toBe(0);
      expect(out).toContain('enrolled valkyrie05: profile compute, MAC 52:54:00:aa:bb:cc, IP none');
      expect(out).toMatch(/note: no IP kept: .*range for unknown machines/);
      expect(err).toMatch(/not in fleet.yaml/);
      const added = (await store.events.list({ node: 'valkyrie05', kinds: ['node.added'] })).events[0]!;
      expect(added.actor).toBe('admin@127.0.0.1 (client: alice)');
      await expect(cmdEnroll(flags(), NEW, { name: 'valkyrie06', profile: 'compute' }, io)).rejects.toMatchObject({ code: 'not_found' });
      await expect(cmdEnroll(flags(), NEW, { profile: 'compute' }, io)).rejects.toMatchObject({ code: 'usage.invalid' });
    });
  });
});

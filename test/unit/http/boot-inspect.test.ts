/**
 * Inspection on the boot face (issue 13 item 1; server/http/routes/boot.ts,
 * boot-service.ts, the discovered repository) through buildBootApp and
 * inject: an unknown MAC gets the inspect script (the fleet boot
 * environment, fleet.job=inspect, a fresh inspect token) when the boot
 * environment is built, the waiting script otherwise or with `inspect:
 * false`; the report is kept once per token, refused without the right
 * token (before its body is read), and what comes next follows
 * `after_inspect`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { buildBootApp } from '../../../server/http/app.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { candidatesOf } from '../../../server/discovery/facts.js';
import { CA_FP, CLUSTER, SERVER } from '../../helpers/golden.js';

const ACTOR = { actor: 'test' };
const MAC = '52:54:00:77:00:21';
const URL_MAC = '52-54-00-77-00-21';
const T0 = Date.parse('2026-12-07T08:00:00.000Z');
const fixture = (name: string) => readFileSync(new URL(`../../fixtures/inspection/${name}`, import.meta.url), 'utf8');

function report(): Record<string, unknown> {
  return {
    version: 1,
    firmware: 'bios',
    system: { sys_vendor: 'QEMU', product_name: 'Standard PC', product_serial: 'LAB-RACK-0003', product_uuid: '4c4c4544-0042-3510-8052-b4c04f4e4e31' },
    cpu: { model: 'QEMU Virtual CPU', count: 1 },
    memoryKiB: 786_432,
    disks: [{ name: 'vda', sectors: 6_291_456, serial: 'D1', rotational: 1, removable: 0 }],
    nics: [{ name: 'eth0', mac: MAC, carrier: 1, speed: -1, driver: 'virtio_net' }],
    bmc: { channel: 1, lan: fixture('ipmi_sim-lan-print.txt'), mc: fixture('ipmi_sim-mc-info.txt'), users: fixture('ipmi_sim-user-list.txt'), guid: fixture('ipmi_sim-guid-raw.txt') },
    notes: [],
  };
}

describe('boot face: inspection of unknown machines', () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;
  let clock: number;
  let inspected: string[];
  const now = () => new Date(clock);

  async function settings(discovery?: Record<string, unknown>): Promise<void> {
    await store.settings.setCluster(
      {
        cluster: CLUSTER,
        networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } },
        ...(discovery ? { discovery: { policy: 'manual', rules: [], ...discovery } } : {}),
      },
      ACTOR,
    );
  }

  beforeEach(async () => {
    clock = T0;
    inspected = [];
    dir = mkdtempSync(join(tmpdir(), 'fleet-boot-inspect-'));
    store = await openStore({ memory: true }, { secretKey: randomBytes(32), clock: now });
    await settings();
    mkdirSync(join(dir, 'bootenv', 'b1'), { recursive: true });
    writeFileSync(join(dir, 'bootenv', 'b1', 'vmlinuz'), 'KERNEL');
    writeFileSync(join(dir, 'bootenv', 'b1', 'initrd.img'), 'INITRD');
    symlinkSync('b1', join(dir, 'bootenv', 'current'));
    app = await buildBootApp({
      store,
      serverUrl: SERVER,
      caFingerprint: CA_FP,
      dataDir: dir,
      now,
      logLevel: 'silent',
      rateLimit: { max: 10_000, timeWindow: 60_000 },
      recorder: createRecorder({ store }),
      onInspected: (mac) => void inspected.push(mac),
    });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function inspectToken(): Promise<string> {
    const res = await app.inject({ url: `/boot/${URL_MAC}.ipxe`, remoteAddress: '10.10.254.7' });
    expect(res.statusCode, res.body).toBe(200);
    return /fleet\.token=([A-Za-z0-9_-]+)/.exec(res.body)![1]!;
  }
  const post = (token: string | null, body: unknown, mac = URL_MAC) =>
    app.inject({ method: 'POST', url: `/inspection/${mac}${token === null ? '' : `?token=${token}`}`, payload: body as object, remoteAddress: '10.10.254.7' });
  const next = (token: string) => app.inject({ url: `/inspection/${URL_MAC}/next?token=${token}` });

  it('an unknown MAC boots the boot environment in inspect mode with a token of its own', async () => {
    const res = await app.inject({ url: `/boot/${URL_MAC}.ipxe` });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(`kernel ${SERVER}/bootenv/vmlinuz initrd=initrd.img console=tty0 console=ttyS0 fleet.server=${SERVER} fleet.token=`);
    expect(res.body).toMatch(/fleet\.token=[A-Za-z0-9_-]{43} fleet\.mac=52:54:00:77:00:21 fleet\.job=inspect/);
    expect(res.body).not.toContain('fleet.node=');
    expect(res.body).toContain(`initrd ${SERVER}/bootenv/initrd.img`);
    expect((await store.discovered.get(MAC))?.pxe).toBe(true);
  });

  it('listens for LLDP when a rule matches on it (35 s) or discovery.lldp_wait says how long; not otherwise', async () => {
    const rule = { name: 'r12', match: { lldp: { switch: 'sw-r12-*' } }, names: 'n[1-4]', profile: 'compute', onAccept: 'install' };
    await settings({ rules: [rule] });
    expect((await app.inject({ url: `/boot/${URL_MAC}.ipxe` })).body).toMatch(/fleet\.mac=52:54:00:77:00:21 fleet\.job=inspect fleet\.lldp_wait=35 \|\| goto/);
    await settings({ lldpWaitSeconds: 8 });
    expect((await app.inject({ url: `/boot/${URL_MAC}.ipxe` })).body).toMatch(/fleet\.job=inspect fleet\.lldp_wait=8 \|\| goto/);
    await settings({ rules: [rule], lldpWaitSeconds: 0 });
    expect((await app.inject({ url: `/boot/${URL_MAC}.ipxe` })).body).not.toContain('lldp_wait');
  });

  it('without a built boot environment, or with inspect: false, the machine gets the waiting script', async () => {
    await settings({ inspect: false });
    const off = await app.inject({ url: `/boot/${URL_MAC}.ipxe` });
    expect(off.body).toContain('waiting to be enrolled');
    expect(off.body).not.toContain('fleet.job=inspect');
    await settings();
    rmSync(join(dir, 'bootenv', 'current'));
    const none = await app.inject({ url: `/boot/${URL_MAC}.ipxe` });
    expect(none.body).toContain('waiting to be enrolled');
  });

  it('keeps one report per token: machine.inspected without secrets, the facts the rules read, the waiting machine told to wait', async () => {
    const token = await inspectToken();
    const res = await post(token, report());
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ mac: MAC, inspectedAt: '2026-12-07T08:00:00.000Z' });
    expect(inspected).toEqual([MAC]);
    const m = (await store.discovered.get(MAC))!;
    expect(m.inspection?.system.serial).toBe('LAB-RACK-0003');
    expect(candidatesOf([m])[0]!.facts).toMatchObject({ serial: 'LAB-RACK-0003', nicCount: 1, diskCount: 1, bmc: { ip: '10.77.1.50', mac: '52:54:00:aa:bb:01' } });
    const ev = (await store.events.list({ kinds: [EVENT.machineInspected] })).events;
    expect(ev).toHaveLength(1);
    expect(ev[0]!.details).toMatchObject({ mac: MAC, ip: '10.10.254.7', serial: 'LAB-RACK-0003', bmc: { ip: '10.77.1.50', users: ['admin'] } });
    expect(JSON.stringify(ev[0]!.details)).not.toContain(token);

    const again = await post(token, report());
    expect(again.statusCode).toBe(403);
    expect(again.json().error.message).toMatch(/^inspection report for 52:54:00:77:00:21 refused: already used by a report at 2026-12-07T08:00:00.000Z \(one report per boot\)$/);

    const n = await next(token);
    expect(n.statusCode).toBe(200);
    expect(n.json()).toEqual({ action: 'wait', seconds: 30, reason: 'waiting to be accepted (fleet discover --plan)' });
    await settings({ afterInspect: 'poweroff' });
    expect((await next(token)).json()).toEqual({ action: 'poweroff', reason: 'discovery.after_inspect: poweroff' });
  });

  it('reports sent together are written in one transaction; a refused one (its token already used by its twin) leaves the others kept', async () => {
    const macs = ['52-54-00-77-00-31', '52-54-00-77-00-32', '52-54-00-77-00-33'];
    const tokens: string[] = [];
    for (const m of macs) {
      const res = await app.inject({ url: `/boot/${m}.ipxe`, remoteAddress: '10.10.254.7' });
      tokens.push(/fleet\.token=([A-Za-z0-9_-]+)/.exec(res.body)![1]!);
    }
    // Each committed transaction tells the observers its event rows once.
    const commits: string[][] = [];
    const stop = store.events.observe((rows) => void commits.push(rows.map((r) => r.kind)));
    const res = await Promise.all([...macs.map((m, i) => post(tokens[i]!, report(), m)), post(tokens[0]!, report(), macs[0])]);
    stop();
    expect(res.map((r) => r.statusCode)).toEqual([200, 200, 200, 403]);
    expect(res[3]!.json().error.message).toMatch(/already used by a report at .* \(one report per boot\)/);
    expect(commits.filter((k) => k.includes(EVENT.machineInspected))).toEqual([[EVENT.machineInspected, EVENT.machineInspected, EVENT.machineInspected]]);
    for (const m of macs) expect((await store.discovered.get(m.replace(/-/g, ':')))?.inspectedAt).toBe('2026-12-07T08:00:00.000Z');
  });

  it('refuses a report without the token of the last inspect script, before interpreting it, and says why', async () => {
    const first = await inspectToken();
    const second = await inspectToken();
    const cases: [string | null, string][] = [
      [null, 'no token (the boot environment takes it from fleet.token= on its command line)'],
      ['x'.repeat(43), "unknown token (not the one of this machine's last inspect script)"],
      [first, "unknown token (not the one of this machine's last inspect script)"],
    ];
    for (const [token, why] of cases) {
      const res = await post(token, { not: 'a report' });
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json().error.message).toBe(`inspection report for 52:54:00:77:00:21 refused: ${why}`);
    }
    const other = await post(second, report(), '52-54-00-00-00-99');
    expect(other.json().error.message).toBe('inspection report for 52:54:00:00:00:99 refused: not a discovered machine (no inspect script was served to this MAC)');
    const refused = (await store.events.list({ kinds: [EVENT.inspectionRefused] })).events;
    expect(refused).toHaveLength(4);
    for (const e of refused) for (const t of [first, second]) expect(JSON.stringify(e.details)).not.toContain(t);
    expect((await store.discovered.get(MAC))?.inspection).toBeNull();

    clock += 24 * 3600_000 + 1;
    const late = await post(second, report());
    expect(late.statusCode).toBe(403);
    expect(late.json().error.message).toBe('inspection report for 52:54:00:77:00:21 refused: expired at 2026-12-08T08:00:00.000Z');
  });

  it('a malformed report with the right token is a 400 naming the problems, and leaves the token usable', async () => {
    const token = await inspectToken();
    const bad = await post(token, { ...report(), nics: [{ name: 'eth0', mac: 'not-a-mac' }] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toBe('inspection report: nics[0].mac: not a MAC address');
    expect((await post(token, report())).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: `/inspection/not-a-mac?token=${token}`, payload: report() })).statusCode).toBe(400);
    const huge = await post(token, { ...report(), pad: 'x'.repeat(300 * 1024) });
    expect(huge.statusCode).toBe(413);
  });

  it('a poll before the report is a conflict; a machine accepted meanwhile is no longer answered', async () => {
    const token = await inspectToken();
    const early = await next(token);
    expect(early.statusCode).toBe(409);
    expect(early.json().error.message).toBe('no inspection report from 52:54:00:77:00:21 yet: report first');
    expect((await post(token, report())).statusCode).toBe(200);
    await store.discovered.remove(MAC);
    const gone = await next(token);
    expect(gone.statusCode).toBe(403);
  });
});

/**
 * BMC set-up on accept (issue 13 item 3) through a real fleet server and
 * real ipmi_sim BMCs: the machine reports its inspection, is accepted by a
 * rule with `bmc.setup: true`, gets the job on its next poll, reports the
 * set-up; fleet verifies the new account OUT OF BAND before recording it and
 * only then disables the factory account.
 *
 * The boot environment's part is played here over LAN with the real
 * ipmitool and the factory account, the same commands inspect.sh sends over
 * KCS (test/integration/inspect-vm.test.ts runs them in band in a VM). The
 * failure is the peer's own: ipmi_sim stores a 20-byte password but
 * authenticates 16 bytes only, so the out-of-band check of a 20-byte
 * account fails and the node must end failed with its factory credential.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiscoverAcceptResponse } from '../../common/api/schemas.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';
import { IPMITOOL, IPMI_SIM, startIpmiSims, type IpmiSimLab, type SimBmc } from '../helpers/ipmisim.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
if (!READY && process.env.CI === 'true') throw new Error('ipmi_sim/ipmitool missing under CI=true (.ci/deps.sh installs them)');
const suite = READY ? describe : describe.skip;
const FACTORY = 'Factory-Pw-0042';

const MAC_A = '52:54:00:5e:00:0a';
const MAC_B = '52:54:00:5e:00:0b';

suite(READY ? 'BMC set-up on accept (bmc.setup) with ipmi_sim' : 'BMC set-up on accept — SKIPPED: ipmi_sim/ipmitool missing', () => {
  let lab: IpmiSimLab;
  let dir: string;
  let server: RunningServer;
  const env = { FACTORY_PW: FACTORY };
  const fleet = (...args: string[]): Promise<CliResult> => cliAgainst(server, dir, env)(...args);

  beforeAll(async () => {
    lab = await startIpmiSims(2, { password: FACTORY });
    dir = await mkdtemp(join(tmpdir(), 'fleet-bmc-setup-'));
    const [a, b] = lab.bmcs as [SimBmc, SimBmc];
    await writeFile(
      join(dir, 'fleet.yaml'),
      `
cluster: {name: lab, domain: cluster.local, timezone: UTC, management_address: 127.1.0.1}
networks:
  provisioning: {subnet: 127.1.0.0/16, unknown_range: 127.1.254.1-127.1.254.254}
  bmc: {subnet: 127.0.0.0/16, gateway: 127.0.0.254}
credentials:
  factory: {username: admin, password_env: FACTORY_PW}
profiles:
  compute: {os: {tree: "http://127.1.0.1:9/os"}}
nodes: {}
discovery:
  policy: manual
  rules:
    - name: rack-a
      match: {serial: [RACK-A]}
      names: racka01
      profile: compute
      ip: 127.1.3.1
      bmc: {address: 127.0.0.1, port: ${a.port}, credentials: factory, setup: true, password_length: 16}
      on_accept: inventory-only
    - name: rack-b
      match: {serial: [RACK-B]}
      names: rackb01
      profile: compute
      ip: 127.1.3.2
      bmc: {address: 127.0.0.1, port: ${b.port}, credentials: factory, setup: true}
      on_accept: inventory-only
`,
    );
    // A built boot environment (the unknown machines get the inspect script and a token).
    const data = join(dir, 'data');
    await mkdir(join(data, 'bootenv', 'b1'), { recursive: true });
    await writeFile(join(data, 'bootenv', 'b1', 'vmlinuz'), 'KERNEL');
    await writeFile(join(data, 'bootenv', 'b1', 'initrd.img'), 'INITRD');
    await symlink('b1', join(data, 'bootenv', 'current'));
    server = await startServer({ configPath: join(dir, 'fleet.yaml'), dataDir: data, listen: '127.0.0.1:0', bootListen: '127.0.0.1:0', logLevel: 'warn', env: { ...process.env, ...env } });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const dashed = (mac: string): string => mac.replace(/:/g, '-');
  async function inspect(mac: string, serial: string, bmc: SimBmc): Promise<string> {
    const script = await (await fetch(`${server.bootUrl}/boot/${dashed(mac)}.ipxe`)).text();
    const token = /fleet\.token=([A-Za-z0-9_-]+)/.exec(script)?.[1];
    expect(token, script).toBeDefined();
    // What inspect.sh collects over KCS, read here from the same ipmi_sim over LAN.
    const [lan, mc, users] = await Promise.all([bmc.ipmitool(['lan', 'print', '1']), bmc.ipmitool(['mc', 'info']), bmc.ipmitool(['user', 'list', '1'])]);
    const report = {
      version: 1,
      firmware: 'bios',
      system: { sys_vendor: 'QEMU', product_name: 'Standard PC', product_serial: serial, product_uuid: '4c4c4544-0042-3510-8052-b4c04f4e4e31' },
      cpu: { model: 'QEMU Virtual CPU', count: 1 },
      memoryKiB: 786_432,
      disks: [],
      nics: [{ name: 'eth0', mac, carrier: 1, speed: -1, driver: 'virtio_net' }],
      bmc: { channel: 1, lan: lan.stdout, mc: mc.stdout, users: users.stdout, guid: '' },
      notes: [],
    };
    const res = await fetch(`${server.bootUrl}/inspection/${dashed(mac)}?token=${token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) });
    expect(res.status, await res.clone().text()).toBe(200);
    return token!;
  }
  const next = async (mac: string, token: string): Promise<Record<string, any>> => (await (await fetch(`${server.bootUrl}/inspection/${dashed(mac)}/next?token=${token}`)).json()) as Record<string, any>;
  const reportSetup = async (mac: string, token: string, body: unknown): Promise<Response> =>
    fetch(`${server.bootUrl}/inspection/${dashed(mac)}/bmc?token=${token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  /** The in-band steps of inspect.sh's bmc_setup, sent with the factory account (in the lab: over KCS). */
  async function playBootenv(bmc: SimBmc, job: Record<string, any>): Promise<string> {
    const steps: string[][] = [
      ['user', 'set', 'name', String(job.slot), job.account],
      ['user', 'set', 'password', String(job.slot), job.password, String(job.passwordLength)],
      ['channel', 'setaccess', String(job.channel), String(job.slot), 'callin=on', 'ipmi=on', 'link=on', 'privilege=4'],
      ['user', 'enable', String(job.slot)],
    ];
    const log: string[] = [];
    for (const s of steps) {
      const r = await bmc.ipmitool(s);
      expect(r.code, r.stderr).toBe(0);
      log.push(`ok: ${s.slice(0, 3).join(' ')}`);
    }
    return log.join('\n');
  }

  it('accepts racka01 with a pending set-up; its next poll gets the job; the report is verified out of band, recorded, the factory account disabled', async () => {
    const a = lab.bmcs[0]!;
    const token = await inspect(MAC_A, 'RACK-A', a);
    // Before acceptance: wait.
    expect((await next(MAC_A, token)).action).toBe('wait');
    const acc = await fleet('discover', '--accept', MAC_A, '--json');
    expect(acc.code, acc.out + acc.err).toBe(0);
    const accepted = (JSON.parse(acc.out) as DiscoverAcceptResponse).accepted[0] as Record<string, any>;
    expect(accepted).toMatchObject({ name: 'racka01', bmcSetup: { state: 'pending', account: 'fleet-a', slot: 3, address: '127.0.0.1' } });
    expect(acc.out).not.toMatch(/"password"/);

    const job = await next(MAC_A, token);
    expect(job.action).toBe('bmc-setup');
    expect(job.job).toMatchObject({ channel: 1, slot: 3, account: 'fleet-a', passwordLength: 16, address: '127.0.0.1', netmask: '255.255.0.0', gateway: '127.0.0.254', retire: { id: 2, name: 'admin' } });
    expect(job.job.password).toMatch(/^[A-Za-z0-9._]{16}$/);
    // A boot environment that lost the answer asks again and gets the same job.
    expect((await next(MAC_A, token)).job.password).toBe(job.job.password);

    const log = await playBootenv(a, job.job);
    const res = await reportSetup(MAC_A, token, { ok: true, log });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/BMC of racka01 set up and verified/);

    // The factory password no longer opens the BMC; fleet's own credential does.
    expect((await a.ipmitool(['chassis', 'power', 'status'])).code).not.toBe(0);
    const st = await fleet('power', 'status', 'racka01');
    expect(st.code, st.out + st.err).toBe(0);
    expect(st.out.trim()).toBe('racka01: off');
    expect((await server.store.credentials.revealSecret('rotated.racka01')).secret).toBe(job.job.password);
    // The story, in order, with no secret in it.
    const ev = await fleet('events', 'racka01', '--json', '-n', '100');
    const kinds = (JSON.parse(ev.out) as { kind: string }[]).map((e) => e.kind);
    for (const k of ['machine.accepted', 'bmc.setup_planned', 'bmc.setup_reported', 'bmc.credential_rotated']) expect(kinds).toContain(k);
    expect(kinds.indexOf('bmc.setup_reported')).toBeLessThan(kinds.indexOf('bmc.credential_rotated'));
    expect(ev.out).not.toContain(job.job.password);
    // Done: the next poll says so, and a second report is refused.
    expect((await next(MAC_A, token)).reason).toMatch(/accepted as racka01, BMC set up/);
    expect((await reportSetup(MAC_A, token, { ok: true, log: '' })).status).toBe(409);
  }, 120_000);

  it('a set-up whose new account does not answer out of band fails the node with why; the factory credential still works', async () => {
    const b = lab.bmcs[1]!;
    const token = await inspect(MAC_B, 'RACK-B', b);
    const acc = await fleet('discover', '--accept', MAC_B);
    expect(acc.code, acc.out + acc.err).toBe(0);
    const job = await next(MAC_B, token);
    expect(job.job).toMatchObject({ passwordLength: 20, account: 'fleet-a' });
    const log = await playBootenv(b, job.job);
    const res = await reportSetup(MAC_B, token, { ok: true, log });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/BMC set-up of rackb01 failed: .*did not answer the new account fleet-a out of band.*factory credential \(factory\) is unchanged/);
    const node = await server.store.nodes.get('rackb01');
    expect(node?.state).toBe('failed');
    expect((await b.ipmitool(['chassis', 'power', 'status'])).code).toBe(0);
    const st = await fleet('power', 'status', 'rackb01');
    expect(st.code, st.out + st.err).toBe(0);
    await expect(server.store.credentials.revealSecret('rotated.rackb01')).rejects.toThrow();
    const ev = await fleet('events', 'rackb01', '--json', '-n', '100');
    expect(ev.out).toContain('bmc.setup_failed');
    expect(ev.out).not.toContain(job.job.password);
  }, 180_000);

  it('refuses a report without the token, or a malformed one, and changes nothing', async () => {
    expect((await reportSetup(MAC_A, 'x'.repeat(43), { ok: true, log: '' })).status).toBe(403);
    const token = 'y'.repeat(43);
    expect((await fetch(`${server.bootUrl}/inspection/${dashed(MAC_A)}/bmc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(403);
    expect((await reportSetup(MAC_A, token, { ok: 'yes' })).status).toBe(403);
  }, 30_000);
});

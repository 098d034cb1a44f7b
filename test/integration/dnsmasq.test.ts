/**
 * Real dnsmasq (DnsmasqSupervisor) in a network namespace, real clients in a
 * second one: busybox udhcpc acting as PXE ROMs and iPXE, busybox tftp.
 * Checks what a client actually receives (file field / option 67, siaddr,
 * address, options), reservations added while dnsmasq runs, the restart
 * after a crash, and TFTP path traversal.
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeSpec } from '../../server/model.js';
import { reservationsOf } from '../../server/netboot/dnsmasq/index.js';
import { ipToInt } from '../../common/patterns.js';
import { type NetbootLab, skipReason, startNetbootLab, tftpGet, udhcpc } from '../helpers/netns.js';

const reason =
  skipReason(['dnsmasq', 'udhcpc', 'busybox', 'ss']) ??
  (existsSync('/usr/lib/ipxe/undionly.kpxe') ? null : '/usr/lib/ipxe/undionly.kpxe is missing (Debian package ipxe)');
const suite = reason ? describe.skip : describe;

const KNOWN: NodeSpec = { name: 'known1', profile: 'compute', ip: '10.77.0.11', macs: ['52:54:00:aa:00:01'], pet: false };
const inUnknownRange = (ip: string) => ipToInt(ip) >= ipToInt('10.77.0.100') && ipToInt(ip) <= ipToInt('10.77.0.199');

suite(`dnsmasq with real DHCP and TFTP clients${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let nb: NetbootLab;
  let tftpNic: string;

  beforeAll(async () => {
    nb = await startNetbootLab({ nodes: [KNOWN] });
    tftpNic = await nb.lab.addClient('52:54:00:ee:00:01', { address: '10.77.0.250/24' });
  });

  afterAll(async () => {
    await nb?.stop();
  });

  it('runs as the unprivileged dnsmasq user, in the lab namespace', async () => {
    const st = nb.supervisor.status();
    expect(st).toMatchObject({ state: 'running', running: true, user: 'dnsmasq' });
    const status = readFileSync(`/proc/${st.pid}/status`, 'utf8');
    expect(status).not.toMatch(/^Uid:\s+0\s/m);
    const ns = await nb.lab.exec(nb.lab.server, ['ss', '-ulpn']);
    expect(ns.stdout).toMatch(/%br0:67\b/);
  });

  it('a BIOS PXE client (arch 0) gets undionly.kpxe from next-server, an address in the unknown range and the options', async () => {
    const nic = await nb.lab.addClient('52:54:00:bb:00:01');
    const lease = await udhcpc(nb.lab, nic, { arch: 0 });
    expect(lease).not.toBeNull();
    expect(lease!.bootFile).toBe('undionly.kpxe');
    expect(lease!.siaddr).toBe('10.77.0.1');
    expect(inUnknownRange(lease!.ip)).toBe(true);
    expect(lease!.router).toBe('10.77.0.1');
    expect(lease!.domain).toBe('lab.test');
  });

  it('a UEFI x86-64 client (arch 7, and 9) gets ipxe.efi', async () => {
    const a7 = await udhcpc(nb.lab, await nb.lab.addClient('52:54:00:bb:00:02'), { arch: 7 });
    expect(a7).toMatchObject({ bootFile: 'ipxe.efi', siaddr: '10.77.0.1' });
    const a9 = await udhcpc(nb.lab, await nb.lab.addClient('52:54:00:bb:00:03'), { arch: 9 });
    expect(a9!.bootFile).toBe('ipxe.efi');
  });

  it('iPXE (user class iPXE, or option 175) gets the HTTP boot script, whatever its arch', async () => {
    const nic = await nb.lab.addClient('52:54:00:bb:00:04');
    const byClass = await udhcpc(nb.lab, nic, { arch: 7, userClass: 'iPXE' });
    expect(byClass!.bootFile).toBe('http://10.77.0.1:8080/boot.ipxe');
    const by175 = await udhcpc(nb.lab, nic, { arch: 0, ipxeOption: true });
    expect(by175!.bootFile).toBe('http://10.77.0.1:8080/boot.ipxe');
    const plain = await udhcpc(nb.lab, nic, {});
    expect(plain!.bootFile).toBe(''); // not a PXE client: no boot file
  });

  it('a known MAC gets its reserved address and name', async () => {
    const lease = await udhcpc(nb.lab, await nb.lab.addClient(KNOWN.macs[0]!), { arch: 0 });
    expect(lease).toMatchObject({ ip: '10.77.0.11', hostname: 'known1', bootFile: 'undionly.kpxe' });
  });

  it('a node added while dnsmasq runs gets its reservation on the next request, without a restart or signal', async () => {
    const mac = '52:54:00:bb:00:05';
    const nic = await nb.lab.addClient(mac);
    const before = await udhcpc(nb.lab, nic, { arch: 7 });
    expect(inUnknownRange(before!.ip)).toBe(true);
    const pid = nb.supervisor.status().pid;
    const added: NodeSpec = { name: 'added1', profile: 'compute', ip: '10.77.0.21', macs: [mac], pet: false };
    await nb.store.nodes.upsert(added, { actor: 'test' });
    const upd = await nb.supervisor.updateHosts(reservationsOf(await nb.store.nodes.list()));
    expect(upd).toEqual({ added: ['52-54-00-bb-00-05'], changed: [], removed: [], reloaded: false });
    const log = () => fs.readFile(nb.paths.logFile, 'utf8');
    const deadline = Date.now() + 3000;
    while (!(await log()).includes('52-54-00-bb-00-05') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await log()).toMatch(/inotify: .*52-54-00-bb-00-05 new or modified|read .*52-54-00-bb-00-05/);
    const after = await udhcpc(nb.lab, nic, { arch: 7 });
    expect(after).toMatchObject({ ip: '10.77.0.21', hostname: 'added1' });
    expect(nb.supervisor.status()).toMatchObject({ pid, restarts: 0 });
  });

  it('TFTP serves the iPXE binaries and refuses ../, absolute paths, symlinks and files it does not own', async () => {
    void tftpNic;
    const good = await tftpGet(nb.lab, '10.77.0.1', 'undionly.kpxe');
    expect(good.error).toBe('');
    expect(good.data!.equals(readFileSync('/usr/lib/ipxe/undionly.kpxe'))).toBe(true);

    const root = nb.paths.tftpRoot;
    await fs.symlink('/etc/passwd', path.join(root, 'evil'));
    await fs.writeFile(path.join(root, 'rootowned'), 'secret\n', { mode: 0o644 }); // world-readable, owned by root
    await fs.mkdir(path.join(root, 'sub'), { mode: 0o755 });
    await fs.symlink('/etc', path.join(root, 'etc'));
    for (const remote of ['../etc/passwd', '../../../../etc/passwd', '/etc/passwd', 'evil', 'rootowned', 'sub/../../etc/passwd', 'etc/passwd', `${root}/../../../etc/passwd`]) {
      const r = await tftpGet(nb.lab, '10.77.0.1', remote);
      expect(r.data, `${remote} must be refused`).toBeNull();
      expect(r.error, remote).toMatch(/server error|not found|denied|Permission|Access/i);
    }
    const served = (await fs.readFile(nb.paths.logFile, 'utf8')).split('\n').filter((l) => /dnsmasq-tftp.*sent /.test(l));
    expect(served.every((l) => l.includes(`${root}/undionly.kpxe`))).toBe(true);
  });

  it('dnsmasq killed → the supervisor restarts it and clients get leases again', async () => {
    const pid = nb.supervisor.status().pid!;
    const restarted = new Promise<number>((resolve) => nb.supervisor.once('restart', (e: { pid: number }) => resolve(e.pid)));
    process.kill(pid, 'SIGKILL');
    const newPid = await Promise.race([restarted, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no restart within 5 s')), 5000))]);
    expect(newPid).not.toBe(pid);
    const st = nb.supervisor.status();
    expect(st).toMatchObject({ restarts: 1, running: true });
    expect(st.lastExit).toMatchObject({ signal: 'SIGKILL' });
    // give it time to bind, then a client must get an answer
    let lease = null;
    for (let i = 0; i < 3 && !lease; i++) lease = await udhcpc(nb.lab, await nb.lab.addClient(`52:54:00:bb:01:0${i}`), { arch: 0 });
    expect(lease!.bootFile).toBe('undionly.kpxe');
  });
});

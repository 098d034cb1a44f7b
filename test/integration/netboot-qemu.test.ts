/**
 * A real PXE boot through fleet: a QEMU VM (TCG, QEMU's iPXE NIC ROM) on the
 * cluster bridge of a namespace gets its DHCP answer from fleet's dnsmasq,
 * chains to http://SERVER/boot.ipxe and then to its own per-node script. The
 * node is not armed, so fleet answers "boot local disk" (the loop breaker's
 * second layer) and records the fetch as an event for the right node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distMissing, startFleetInNetns, type FleetInNetns } from '../helpers/fleet-server.js';
import { createNetnsLab, run, skipReason, type NetnsLab } from '../helpers/netns.js';

const MAC = '52:54:00:77:00:21';
const why = skipReason(['dnsmasq', 'qemu-system-x86_64']) ?? distMissing();
const suite = why ? describe.skip : describe;

const yaml = `
cluster: {name: nbq, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/24, unknown_range: 10.77.0.200-10.77.0.250}
netboot:
  dhcp: {enabled: true, mode: authoritative, interface: br0}
# The admin API on the namespace's loopback; the boot endpoints default to the management address, port 8080.
server: {listen: "127.0.0.1:8080"}
profiles:
  compute: {os: {tree: "http://10.77.0.1:8080/images/os"}}
nodes:
  valkyrie21: {profile: compute, ip: 10.77.0.21, mac: "${MAC}"}
`;

interface ApiEvent {
  kind: string;
  node: string;
  details: { decision?: string; mac?: string } | null;
}

suite(why ? `PXE boot of a QEMU VM through fleet — SKIPPED: ${why}` : 'PXE boot of a QEMU VM through fleet', () => {
  let lab: NetnsLab;
  let fleetd: FleetInNetns;
  let vm: ChildProcess | undefined;
  let vmConsole = '';

  beforeAll(async () => {
    lab = await createNetnsLab({ address: '10.77.0.1/24' });
    fleetd = await startFleetInNetns(lab, yaml, { url: 'http://127.0.0.1:8080', readyLine: /netboot: dnsmasq serving/ });
    for (const argv of [
      ['ip', '-n', lab.server, 'tuntap', 'add', 'tap0', 'mode', 'tap'],
      ['ip', '-n', lab.server, 'link', 'set', 'tap0', 'master', 'br0', 'up'],
    ]) {
      const res = await run(argv);
      if (res.code !== 0) throw new Error(`${argv.join(' ')}: ${res.stderr}`);
    }
  }, 60_000);

  afterAll(async () => {
    if (vm && vm.exitCode === null) {
      vm.kill('SIGKILL');
      await new Promise((r) => vm!.once('exit', r));
    }
    await fleetd?.cleanup();
    await lab?.destroy();
  });

  it('boots iPXE, fetches boot.ipxe, then its per-node script, and is told to boot its disk', async () => {
    vm = spawn(
      'ip',
      [
        'netns', 'exec', lab.server,
        'qemu-system-x86_64', '-accel', 'tcg', '-machine', 'pc', '-m', '256', '-nographic', '-no-user-config', '-nodefaults',
        '-serial', 'stdio', '-boot', 'n',
        '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no',
        '-device', `virtio-net-pci,netdev=n0,mac=${MAC}`,
        '-smbios', 'type=1,serial=FLEET-QEMU-21,manufacturer=QEMU',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    vm.stdout!.on('data', (b: Buffer) => (vmConsole += b.toString()));
    vm.stderr!.on('data', (b: Buffer) => (vmConsole += b.toString()));

    // iPXE under TCG: DHCP ~5 s (+13 s of IPv6 autoconfiguration without router advertisements).
    let fetched: ApiEvent | undefined;
    const deadline = Date.now() + 90_000;
    while (!fetched && Date.now() < deadline && vm.exitCode === null) {
      await new Promise((r) => setTimeout(r, 1000));
      const r = await fleetd.cli('events', 'valkyrie21', '--json');
      fetched = (JSON.parse(r.out || '[]') as ApiEvent[]).find((e) => e.kind === 'boot.script_fetched');
    }
    expect(fetched, `no script fetch recorded; VM console:\n${vmConsole.slice(-3000)}\nserver:\n${fleetd.log().slice(-2000)}`).toBeDefined();
    expect(fetched!.node).toBe('valkyrie21');
    expect(fetched!.details).toMatchObject({ decision: 'localboot', mac: MAC });
    // What iPXE printed: the chain through fleet's HTTP boot script.
    expect(vmConsole).toMatch(/boot\.ipxe/);
  }, 120_000);
});

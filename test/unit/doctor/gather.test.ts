/**
 * The doctor's I/O shell: real files in a temporary data dir, stand-in `ip`
 * and `timedatectl` programs (shell scripts printing what iproute2 and
 * systemd print), so every fact is under the test's control and nothing
 * leaves this host.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gatherFacts, localTreeDir, parseIpAddr, parseRouteGet, plannedBoot, runDoctor } from '../../../server/doctor/gather.js';
import { parseConfig } from '../../../server/config/index.js';
import { agentSourceDigest, sourceRoot } from '../../../server/images/build.js';
import type { ClusterSpec } from '../../../server/model.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleet-doctor-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const IP_ADDR = JSON.stringify([
  { ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], addr_info: [{ family: 'inet', local: '127.0.0.1' }] },
  { ifname: 'enp0s3', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], addr_info: [{ family: 'inet', local: '10.10.0.1' }, { family: 'inet6', local: 'fe80::1' }] },
  { ifname: 'enp0s8', flags: ['BROADCAST', 'MULTICAST'], addr_info: [] },
]);

/** A stand-in program: `ip -j addr` prints IP_ADDR; `ip -j route get 10.10.10x.*` a route, anything else "unreachable". */
function fakeIp(): string {
  const p = path.join(dir, 'ip');
  writeFileSync(
    p,
    `#!/bin/sh
if [ "$2" = addr ]; then cat <<'J'
${IP_ADDR}
J
exit 0; fi
case "$4" in
  10.10.10[0-3].*) echo '[{"dst":"'"$4"'","dev":"enp0s8","prefsrc":"10.10.100.254","flags":[],"uid":0,"cache":[]}]' ;;
  *) echo 'RTNETLINK answers: Network is unreachable' >&2; exit 2 ;;
esac
`,
  );
  chmodSync(p, 0o755);
  return p;
}

function fakeProgram(name: string, out: string): string {
  const p = path.join(dir, `${name}-${out}`);
  writeFileSync(p, `#!/bin/sh\necho ${out}\n`);
  chmodSync(p, 0o755);
  return p;
}

function spec(extra = ''): ClusterSpec {
  return parseConfig(`version: 1
cluster: { name: c, domain: c.local, timezone: UTC, management_address: 10.10.0.1 }
networks:
  provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254, dns: [10.10.0.1], ntp: [10.10.0.1], interface: enp0s3 }
netboot: { dhcp: { enabled: true, mode: authoritative } }
credentials: { adm: { username: ADMIN, password_env: BMC_PW } }
profiles:
  compute: { os: { install: kickstart, tree: "http://10.10.0.1:8080/repo/alma/9" } }
  other: { os: { install: kickstart, tree: "http://10.10.0.1/repositories/alma" } }
  disk: { os: { install: image, image: debian12 } }
nodes:
  n[1-2]: { profile: compute, ip: "10.10.3.[1-2]", mac: ["52:54:00:00:00:01", "52:54:00:00:00:02"], bmc: { address: "10.10.101.[1-2]", credentials: adm } }
  far: { profile: disk, ip: 10.10.3.9, mac: "52:54:00:00:00:09", bmc: { address: 192.168.7.9, credentials: adm } }
${extra}`);
}

describe('parsers', () => {
  it('ip -j addr: name, up, carrier, addresses', () => {
    expect(parseIpAddr(IP_ADDR)).toEqual([
      { name: 'lo', up: true, carrier: true, addresses: ['127.0.0.1'] },
      { name: 'enp0s3', up: true, carrier: true, addresses: ['10.10.0.1', 'fe80::1'] },
      { name: 'enp0s8', up: false, carrier: true, addresses: [] },
    ]);
    expect(parseIpAddr(JSON.stringify([{ ifname: 'br0', flags: ['NO-CARRIER', 'UP'], addr_info: [] }]))[0]).toMatchObject({ up: true, carrier: false });
  });

  it('ip -j route get: a device (and gateway), or why not', () => {
    expect(parseRouteGet({ code: 0, stdout: '[{"dst":"10.1.1.1","gateway":"10.0.0.1","dev":"eth0"}]', stderr: '' })).toEqual({ dev: 'eth0', via: '10.0.0.1' });
    expect(parseRouteGet({ code: 0, stdout: '[{"type":"local","dst":"127.0.0.1","dev":"lo"}]', stderr: '' })).toEqual({ dev: 'lo' });
    expect(parseRouteGet({ code: 2, stdout: '', stderr: 'RTNETLINK answers: Network is unreachable\n' })).toEqual({ unreachable: 'Network is unreachable' });
    expect(parseRouteGet({ code: 0, stdout: '[{"type":"blackhole","dst":"10.9.9.9","dev":"lo"}]', stderr: '' })).toEqual({ unreachable: 'blackhole' });
  });

  it('a tree URL under the boot endpoints maps into DATA/www; elsewhere, the image store and climbing paths do not', () => {
    const adv = 'http://10.10.0.1:8080';
    expect(localTreeDir('http://10.10.0.1:8080/repo/alma/9/', adv, '/d/www')).toBe('/d/www/repo/alma/9');
    expect(localTreeDir('http://10.10.0.1:8080/images/lab', adv, '/d/www')).toBe('/d/www/images/lab');
    expect(localTreeDir('http://10.10.0.1/repo/alma', adv, '/d/www')).toBeNull();
    expect(localTreeDir('http://10.10.0.1:8080/images/sha256/ab', adv, '/d/www')).toBeNull();
    // Dot segments are resolved by the URL parser (as by the server); encoded slashes cannot climb out.
    expect(localTreeDir('http://10.10.0.1:8080/repo/a/%2e%2e/x', adv, '/d/www')).toBe('/d/www/repo/x');
    expect(localTreeDir('http://10.10.0.1:8080/repo/a%2F..%2F..%2Fetc', adv, '/d/www')).toBeNull();
    expect(localTreeDir('http://10.10.0.1:8080/other/a', adv, '/d/www')).toBeNull();
  });

  it('plannedBoot: the default is the management address, port 8080; a setting wins', () => {
    expect(plannedBoot(spec())).toEqual({ listenHost: '10.10.0.1', listenPort: 8080, implicit: true, advertisedUrl: 'http://10.10.0.1:8080' });
    expect(plannedBoot(spec(), { bootListen: '127.0.0.1:9000' })).toMatchObject({ listenHost: '127.0.0.1', implicit: false, advertisedUrl: 'http://127.0.0.1:9000' });
    expect(plannedBoot(spec(), { bootListen: '0.0.0.0:8081' }).advertisedUrl).toBe('http://10.10.0.1:8081');
  });
});

describe('gatherFacts and runDoctor', () => {
  const opts = (over: object = {}) => {
    const s = spec();
    const ipxe = path.join(dir, 'ipxe');
    mkdirSync(ipxe, { recursive: true });
    writeFileSync(path.join(ipxe, 'ipxe.efi'), 'x');
    return { spec: s, dataDir: path.join(dir, 'data'), boot: plannedBoot(s), ip: fakeIp(), timedatectl: fakeProgram('timedatectl', 'no'), dnsmasq: null, ipxeSourceDir: ipxe, ...over };
  };

  it('reports exactly what is missing on a bare data dir', async () => {
    const byId = Object.fromEntries((await runDoctor(opts())).map((f) => [f.id, f]));
    expect(Object.keys(byId)).toEqual([
      'boot-endpoint',
      'dnsmasq',
      'ipxe',
      'dhcp-interface',
      'os-tree:compute',
      'os-tree:other',
      'image:disk',
      'bootenv',
      'nfs-server',
      'agent-bundle',
      'clock',
      'disk',
      'bmc-route:10.10.101.0/24',
      'bmc-route:192.168.7.0/24',
    ]);
    expect(byId['boot-endpoint']?.status).toBe('ok');
    expect(byId['dnsmasq']?.status).toBe('fail');
    expect(byId['ipxe']).toMatchObject({ status: 'warn', message: expect.stringContaining('undionly.kpxe') });
    expect(byId['dhcp-interface']?.status).toBe('ok');
    expect(byId['os-tree:compute']).toMatchObject({ status: 'fail', message: expect.stringContaining(path.join(dir, 'data', 'www', 'repo', 'alma', '9')) });
    expect(byId['os-tree:other']?.status).toBe('warn');
    expect(byId['image:disk']?.status).toBe('fail');
    expect(byId['bootenv']?.status).toBe('fail');
    expect(byId['agent-bundle']?.status).toBe('fail');
    expect(byId['clock']?.status).toBe('warn');
    expect(byId['disk']?.message).toContain('does not exist yet');
    expect(byId['bmc-route:10.10.101.0/24']).toMatchObject({ status: 'ok', message: expect.stringContaining('dev enp0s8') });
    expect(byId['bmc-route:192.168.7.0/24']).toMatchObject({ status: 'fail', message: expect.stringContaining('Network is unreachable') });
  });

  it('what is put in place turns ok: the OS tree, the agent bundle, the iPXE binaries in the TFTP root', async () => {
    const www = path.join(dir, 'data', 'www');
    mkdirSync(path.join(www, 'repo', 'alma', '9', 'images', 'pxeboot'), { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img']) writeFileSync(path.join(www, 'repo', 'alma', '9', 'images', 'pxeboot', f), 'k');
    mkdirSync(path.join(www, 'agent'), { recursive: true });
    for (const f of ['fleet-agent', 'fleet-agent.service']) writeFileSync(path.join(www, 'agent', f), 'a');
    mkdirSync(path.join(dir, 'data', 'tftp'), { recursive: true });
    for (const f of ['undionly.kpxe', 'snponly.efi']) writeFileSync(path.join(dir, 'data', 'tftp', f), 'b');
    const byId = Object.fromEntries((await runDoctor(opts({ timedatectl: fakeProgram('timedatectl', 'yes'), dnsmasq: '/usr/sbin/dnsmasq' }))).map((f) => [f.id, f.status]));
    expect(byId).toMatchObject({ dnsmasq: 'ok', ipxe: 'ok', 'os-tree:compute': 'ok', 'agent-bundle': 'ok', clock: 'ok' });

    // A bundle recorded as built from other agent sources (an older fleet's): stale, a warning.
    writeFileSync(path.join(www, 'agent', 'fleet-agent.source'), `${'0'.repeat(64)}\n`);
    const stale = (await runDoctor(opts({ timedatectl: fakeProgram('timedatectl', 'yes'), dnsmasq: '/usr/sbin/dnsmasq' }))).find((f) => f.id === 'agent-bundle');
    expect(stale).toMatchObject({ status: 'warn', message: expect.stringContaining('built from other agent sources') });
    // This checkout's digest: ok again.
    writeFileSync(path.join(www, 'agent', 'fleet-agent.source'), `${await agentSourceDigest(sourceRoot())}\n`);
    expect((await runDoctor(opts({ timedatectl: fakeProgram('timedatectl', 'yes'), dnsmasq: '/usr/sbin/dnsmasq' }))).find((f) => f.id === 'agent-bundle')?.status).toBe('ok');
  });

  it('without ip or timedatectl the checks say unknown (warn), never ok', async () => {
    const f = await gatherFacts(opts({ ip: null, timedatectl: null }));
    expect(f.clock).toEqual({ synchronized: null, unknown: expect.stringContaining('timedatectl') });
    expect(f.bmcRoutes?.every((r) => r.route === null)).toBe(true);
    expect(f.interfaces?.every((i) => i.up === null)).toBe(true);
    const byId = Object.fromEntries((await runDoctor(opts({ ip: null, timedatectl: null }))).map((x) => [x.id, x]));
    expect(byId['bmc-route:10.10.101.0/24']).toMatchObject({ status: 'warn', message: expect.stringMatching(/^unknown: /) });
    expect(byId['clock']?.status).toBe('warn');
  });

  it('the reinstall preflight skips the BMC lookups', async () => {
    const f = await gatherFacts(opts({ bmc: false }));
    expect(f.bmcRoutes).toBeUndefined();
  });
});

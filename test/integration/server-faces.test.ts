/**
 * The two faces of a real `fleet server` (DESIGN §9) on loopback sockets:
 * the admin API and the boot endpoints on separate listeners, each refusing
 * the other's routes; the admin API over TLS with a certificate issued by
 * the fleet CA, which the CLI trusts from the local data dir; gRPC on its
 * own configured address; and two servers on one host at once.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch as undiciFetch, Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickFreePort, startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst } from '../helpers/cli.js';

const yaml = (extra = ''): string => `
cluster: {name: faces, domain: lab.local, timezone: UTC, management_address: 10.10.0.1}
networks:
  provisioning: {subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254}
profiles:
  compute: {os: {tree: "http://10.10.0.1/os"}}
nodes:
  valkyrie01: {profile: compute, ip: 10.10.3.1, mac: "52:54:00:77:00:01"}
${extra}`;

describe('fleet server faces', () => {
  let dir: string;
  let plain: RunningServer;
  let tls: RunningServer;
  const lines: string[] = [];
  let grpcPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-faces-'));
    await writeFile(join(dir, 'plain.yaml'), yaml());
    plain = await startServer({ configPath: join(dir, 'plain.yaml'), dataDir: join(dir, 'plain'), listen: '127.0.0.1:0', bootListen: '127.0.0.1:0', logLevel: 'warn' });
    grpcPort = await pickFreePort('127.0.0.1');
    await writeFile(join(dir, 'tls.yaml'), yaml(`server: {tls: fleet-ca, grpc_listen: "127.0.0.1:${grpcPort}"}\n`));
    // A second server on the same host, at the same time, with its own data dir.
    tls = await startServer({ configPath: join(dir, 'tls.yaml'), dataDir: join(dir, 'tls'), listen: '127.0.0.1:0', logLevel: 'warn', say: (l) => lines.push(l) });
  }, 60_000);
  afterAll(async () => {
    await plain?.close();
    await tls?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the admin API and the boot endpoints on separate listeners, each without the other', async () => {
    expect(plain.bootUrl).not.toBe(plain.url);
    const token = (await readFile(plain.tokenPath, 'utf8')).trim();
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${plain.url}/api/v1/nodes`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${plain.bootUrl}/api/v1/nodes`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${plain.bootUrl}/%61pi/v1/nodes`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${plain.bootUrl}/boot.ipxe`)).status).toBe(200);
    expect((await fetch(`${plain.url}/boot.ipxe`)).status).toBe(404);
    // The chain names the boot face, never the admin face.
    expect(await (await fetch(`${plain.bootUrl}/boot.ipxe`)).text()).toContain(plain.bootUrl!);
  });

  it('without a boot address on this host the boot endpoints are not served, and the server says why', () => {
    expect(tls.bootUrl).toBeNull();
    expect(tls.bootApp).toBeNull();
    expect(lines.join('\n')).toMatch(/boot endpoints not served: the management address 10\.10\.0\.1 is not on this host/);
  });

  it('runs the doctor at start: one line per warning or failure, a summary, and it still serves', () => {
    const doctor = lines.filter((l) => l.startsWith('doctor: '));
    // The management address is not on this host: the boot endpoints fail, with the fix.
    expect(doctor).toContainEqual(expect.stringMatching(/^doctor: fail {2}boot-endpoint: the boot endpoints are not served: nodes are told http:\/\/10\.10\.0\.1:\d+.* — fix: /));
    expect(doctor).toContainEqual(expect.stringMatching(/^doctor: fail {2}agent-bundle: /));
    expect(doctor.filter((l) => /^doctor: ok /.test(l))).toEqual([]);
    expect(doctor.at(-1)).toMatch(/^doctor: \d+ ok, \d+ warn, [1-9]\d* fail; fleet reinstall refuses/);
    expect(tls.url).toMatch(/^https:/);
  });

  it('serves the admin API over TLS with a certificate of the fleet CA; the CLI trusts it from the data dir', async () => {
    expect(tls.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(lines.join('\n')).toMatch(/HTTP API listening on https:.*TLS certificate issued by the fleet CA/);
    const ca = await readFile(join(tls.dataDir, 'pki', 'ca.crt'), 'utf8');
    const healthy = await undiciFetch(`${tls.url}/healthz`, { dispatcher: new Agent({ connect: { ca } }) });
    expect(healthy.status).toBe(200);
    // Without the CA the certificate is not trusted.
    await expect(fetch(`${tls.url}/healthz`)).rejects.toThrow();
    const fleet = cliAgainst(tls, dir, { FLEET_DATA: tls.dataDir });
    const r = await fleet('nodes', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual([expect.objectContaining({ name: 'valkyrie01' })]);
    const bad = await cliAgainst(tls, dir, { FLEET_CA_FILE: join(dir, 'nope.crt') })('nodes');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/CA file .*nope\.crt does not exist/);
  });

  it('puts gRPC where server.grpc_listen says', () => {
    expect(tls.grpc.port).toBe(grpcPort);
    expect(lines.join('\n')).toMatch(new RegExp(`gRPC agent service \\(TLS\\) listening on 127\\.0\\.0\\.1:${grpcPort}`));
  });
});

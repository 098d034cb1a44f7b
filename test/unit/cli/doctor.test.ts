/** `fleet doctor` through the CLI's main(): bad input is a clear usage error; findings one line each; --json; exit 1 on a fail. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../../server/cli/main.js';
import type { Finding } from '../../../server/doctor/checks.js';
import { captureIo } from './recording-server.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleet-doctor-cli-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A cluster whose boot endpoints are on loopback: nodes would be told 127.0.0.1. BMCs on loopback too (only a route lookup is made). */
const LOOPBACK_BOOT = `version: 1
cluster: { name: c, domain: c.local, timezone: UTC, management_address: 10.10.0.1 }
networks:
  provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254, dns: [10.10.0.1], ntp: [10.10.0.1] }
netboot: { http: { listen: "127.0.0.1:18080" } }
credentials: { adm: { username: ADMIN, password_env: BMC_PW } }
profiles: { compute: { os: { install: kickstart, tree: "http://10.10.0.1/os" } } }
nodes:
  n1: { profile: compute, ip: 10.10.3.1, mac: "52:54:00:00:00:01", bmc: { address: 127.0.0.1, port: 9001, credentials: adm } }
`;

function run(args: string[]) {
  const c = captureIo();
  c.io.cwd = dir;
  return main(['node', 'fleet', 'doctor', ...args], c.io).then((code) => ({ code, out: c.out(), err: c.err() }));
}

describe('fleet doctor', () => {
  it('a missing config file is a usage error naming the file', async () => {
    const r = await run(['--config', 'nope.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`cannot read config file ${path.join(dir, 'nope.yaml')}`);
    expect(r.out).toBe('');
  });

  it('bad YAML is a usage error with file:line', async () => {
    writeFileSync(path.join(dir, 'bad.yaml'), 'version: 1\ncluster: [unclosed\n');
    const r = await run(['--config', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.yaml:\d+/);
  });

  it('--config is required', async () => {
    expect((await run([])).code).toBe(2);
  });

  it('boot endpoints on loopback fail with the fix; one line per check; exit 1', async () => {
    writeFileSync(path.join(dir, 'fleet.yaml'), LOOPBACK_BOOT);
    const r = await run(['--config', 'fleet.yaml', '--data', 'd']);
    expect(r.code).toBe(1);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^fail {2}boot-endpoint: .*loopback.* — fix: set netboot\.http\.listen/);
    expect(lines.find((l) => l.includes('dnsmasq:'))).toMatch(/^ok {4}dnsmasq: not needed/);
    expect(lines.at(-1)).toMatch(new RegExp(`^\\d+ ok, \\d+ warn, \\d+ fail \\(config ${path.join(dir, 'fleet.yaml')}, data dir ${path.join(dir, 'd')}\\)$`));
  });

  it('--json: findings with id, status, message, fix, and a summary', async () => {
    writeFileSync(path.join(dir, 'fleet.yaml'), LOOPBACK_BOOT);
    const r = await run(['--config', 'fleet.yaml', '--data', 'd', '--json']);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { findings: Finding[]; summary: { ok: number; warn: number; fail: number }; dataDir: string };
    expect(body.dataDir).toBe(path.join(dir, 'd'));
    expect(body.findings.find((f) => f.id === 'boot-endpoint')).toMatchObject({ status: 'fail', fix: expect.stringContaining('netboot.http.listen') });
    expect(body.findings.find((f) => f.id === 'os-tree:compute')?.status).toBe('warn');
    expect(body.findings.find((f) => f.id === 'agent-bundle')?.status).toBe('fail');
    for (const f of body.findings) expect(Object.keys(f).sort()).toEqual(['fix', 'id', 'message', 'status']);
    expect(body.summary.fail).toBe(body.findings.filter((f) => f.status === 'fail').length);
  });
});

describe('fleet reinstall prints the server\'s refusal', () => {
  it('precondition.failed: the message and one line per failed check on stderr, exit 1', async () => {
    const { createServer } = await import('node:http');
    const finding = 'fail  image:disk: profile disk installs image debian12, which is not in the image store — fix: sudo fleet image build debian12';
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ nodes: [{ name: 'n1', pet: false, state: 'enrolled', lastEvent: null }], missing: [], missingFolded: '', summary: { total: 1, byState: { enrolled: 1 }, failed: 0, flagged: 0 } }));
          return;
        }
        res.writeHead(412, { 'content-type': 'application/json', 'x-fleet-error': 'precondition.failed' });
        res.end(JSON.stringify({ error: { code: 'precondition.failed', message: 'reinstall refused: 1 check that profile disk depends on fails (fleet doctor); nothing was changed', details: { errors: [finding] } } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const c = captureIo();
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const code = await main(['node', 'fleet', '--url', url, '--token', 't', 'reinstall', 'n1', '--yes'], c.io);
      expect(code).toBe(1);
      expect(c.err()).toContain('fleet: reinstall refused: 1 check that profile disk depends on fails');
      expect(c.err()).toContain(`  ${finding}\n`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

/**
 * API users through a real running server on loopback (issue 17 item 1):
 * the first start's api.token is user admin's; `fleet user add` prints a
 * token once; a read-only user lists nodes and reads the event stream but
 * gets 403 on power and reinstall; an operator powers a real ipmi_sim BMC but
 * may not apply; admin does all; events name the user as the actor; a
 * removed user's and a revoked token are refused (401); the last admin stays.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsersResponse, UserTokenResponse } from '../../common/api/schemas.js';
import { EVENT } from '../../common/events.js';
import { cliAgainst } from '../helpers/cli.js';
import { IPMI_SIM, startIpmiSims, type IpmiSimLab } from '../helpers/ipmisim.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const suite = IPMI_SIM ? describe : describe.skip;
const PASSWORD = 'Users-Sim-Pw-4411';

suite(IPMI_SIM ? 'API users and roles against a running server' : 'API users and roles — SKIPPED: ipmi_sim not installed (apt-get install openipmi)', () => {
  let lab: IpmiSimLab;
  let srv: TestServer;
  const tokens: Record<string, string> = {};
  let logs = '';

  const api = (token: string | null, method: string, path: string, body?: unknown) =>
    fetch(srv.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** The CLI as the holder of `token` (in a 0600 token file). */
  const fleetAs = async (token: string, ...args: string[]) => {
    const file = join(srv.dir, `token-${token.slice(0, 6)}`);
    await writeFile(file, token + '\n');
    await chmod(file, 0o600);
    return cliAgainst({ url: srv.url, tokenPath: file }, srv.dir, { USER: 'tester', SIM_BMC_PASSWORD: PASSWORD })(...args);
  };
  const yaml = (extra = '') => `
cluster: {name: users, domain: lab.local, timezone: UTC, management_address: 10.78.0.1}
networks:
  provisioning: {subnet: 10.78.0.0/16, unknown_range: 10.78.254.1-10.78.254.254}
credentials:
  sim: {username: admin, password_env: SIM_BMC_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.78.0.1/os"}}
nodes:
  n1:
    profile: compute
    bmc: {address: 127.0.0.1, port: ${lab.bmcs[0]!.port}, protocol: ipmi, credentials: sim}
${extra}`;

  beforeAll(async () => {
    lab = await startIpmiSims(1, { password: PASSWORD });
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        logs += chunk.toString();
        cb();
      },
    });
    srv = await startTestServer(yaml(), { prefix: 'fleet-users-', logLevel: 'info', logStream: sink, env: { SIM_BMC_PASSWORD: PASSWORD }, cliEnv: { USER: 'tester', SIM_BMC_PASSWORD: PASSWORD }, bmc: { timeoutMs: 5000, retries: 1 } });
  }, 120_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
  });

  it('the first start made api.token the token of user admin', async () => {
    const r = await srv.fleet('user', 'list', '--json');
    expect(r.code, r.err).toBe(0);
    const { users } = JSON.parse(r.out) as UsersResponse;
    expect(users.map((u) => [u.name, u.role, u.disabled, u.tokens.length])).toEqual([['admin', 'admin', false, 1]]);
    expect(r.out).not.toContain(srv.token);
  });

  it('fleet user add prints the token once, alone on stdout; the server keeps no copy', async () => {
    for (const [name, role] of [['ro', 'read-only'], ['op', 'operator']] as const) {
      const r = await srv.fleet('user', 'add', name, '--role', role);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
      expect(r.err).toMatch(new RegExp(`user added: user ${name} \\(role ${role}\\), token id [0-9a-f]{8};.*shown this once`));
      tokens[name] = r.out.trim();
    }
    const list = await srv.fleet('user', 'list');
    expect(list.out).toMatch(/^NAME\s+ROLE\s+STATE\s+TOKENS/);
    expect(list.out).toMatch(/\nop\s+operator\s+enabled\s+1\s/);
    const events = JSON.stringify((await srv.server.store.events.list({ limit: 1000 })).events);
    for (const t of Object.values(tokens)) expect(events).not.toContain(t);
    const bad = await srv.fleet('user', 'add', 'x', '--role', 'root');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--role must be one of read-only, operator, admin/);
  });

  it('read-only: 200 on GET nodes and the event stream, 403 on power and reinstall', async () => {
    const ro = tokens.ro!;
    expect((await api(ro, 'GET', '/api/v1/nodes')).status).toBe(200);
    const ac = new AbortController();
    const stream = await fetch(`${srv.url}/api/v1/events/stream`, { headers: { authorization: `Bearer ${ro}` }, signal: ac.signal });
    expect(stream.status).toBe(200);
    ac.abort();
    for (const [path, body] of [
      ['/api/v1/power', { nodeset: 'n1', op: 'on' }],
      ['/api/v1/nodes/reinstall', { nodeset: 'n1' }],
      ['/api/v1/apply', { yaml: yaml(), secrets: {} }],
    ] as const) {
      const res = await api(ro, 'POST', path, body);
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('auth.forbidden');
    }
    const cli = await fleetAs(ro, 'power', 'on', 'n1');
    expect(cli.code).not.toBe(0);
    expect(cli.err).toMatch(/user ro \(role read-only\) may not POST \/api\/v1\/power: it needs role operator/);
    const nodes = await fleetAs(ro, 'nodes', '--names');
    expect(nodes.code, nodes.err).toBe(0);
    expect(nodes.out).toBe('n1\n');
  });

  it('operator: powers the real BMC (event actor is the user) but may not apply', async () => {
    const r = await fleetAs(tokens.op!, 'power', 'on', 'n1');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/n1: on/);
    const power = (await srv.server.store.events.list({ node: 'n1', kinds: [EVENT.bmcPower] })).events;
    expect(power.at(-1)?.actor).toBe('op@127.0.0.1 (client: tester)');
    const apply = await fleetAs(tokens.op!, 'apply', '-f', srv.configPath);
    expect(apply.code).not.toBe(0);
    expect(apply.err).toMatch(/user op \(role operator\) may not POST \/api\/v1\/apply: it needs role admin/);
    expect((await api(tokens.op!, 'GET', '/api/v1/users')).status).toBe(403);
  });

  it('admin: applies, manages users; events name the admin user', async () => {
    await writeFile(srv.configPath, yaml('  n2: {profile: compute}\n'));
    const r = await srv.fleet('apply', '-f', srv.configPath);
    expect(r.code, r.out + r.err).toBe(0);
    const added = (await srv.server.store.events.list({ node: 'n2', kinds: [EVENT.nodeAdded] })).events;
    expect(added.map((e) => e.actor)).toEqual(['admin@127.0.0.1 (client: tester)']);
    const users = (await srv.server.store.events.list({ kinds: [EVENT.userAdded] })).events;
    expect(users.map((e) => [(e.details as { user: string }).user, e.actor])).toEqual([
      ['ro', 'admin@127.0.0.1 (client: tester)'],
      ['op', 'admin@127.0.0.1 (client: tester)'],
    ]);
    const power = await api(srv.token, 'POST', '/api/v1/power', { nodeset: 'n1', op: 'status' });
    expect(power.status).toBe(200);
  });

  it('no token, a wrong token, a revoked token, a removed user: 401', async () => {
    expect((await api(null, 'GET', '/api/v1/nodes')).status).toBe(401);
    expect((await api('not-a-token-0123456789', 'GET', '/api/v1/nodes')).status).toBe(401);
    const old = tokens.op!;
    const r = await srv.fleet('user', 'token', 'op', '--revoke-others', '--json');
    expect(r.code, r.err).toBe(0);
    const issued = JSON.parse(r.out) as UserTokenResponse;
    tokens.op2 = issued.token;
    expect(issued).toMatchObject({ user: 'op', role: 'operator', revoked: 1, expiresAt: null });
    expect((await api(old, 'GET', '/api/v1/nodes')).status).toBe(401);
    expect((await api(issued.token, 'GET', '/api/v1/nodes')).status).toBe(200);
    const rm = await srv.fleet('user', 'rm', 'op');
    expect(rm.code, rm.err).toBe(0);
    const gone = await api(issued.token, 'GET', '/api/v1/nodes');
    expect(gone.status).toBe(401);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe('auth.invalid');
  });

  it('refuses removing the last admin; a second admin makes it possible', async () => {
    const r = await srv.fleet('user', 'rm', 'admin');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/admin is the last enabled admin/);
    const two = await srv.fleet('user', 'add', 'root2', '--role', 'admin');
    expect(two.code, two.err).toBe(0);
    tokens.root2 = two.out.trim();
    const asTwo = await fleetAs(two.out.trim(), 'user', 'rm', 'admin');
    expect(asTwo.code, asTwo.err).toBe(0);
    expect((await api(srv.token, 'GET', '/api/v1/nodes')).status).toBe(401);
    const list = await fleetAs(two.out.trim(), 'user', 'list', '--json');
    expect((JSON.parse(list.out) as UsersResponse).users.map((u) => u.name)).toEqual(['ro', 'root2']);
  });

  it('no token reaches the log; user changes are logged by name and token id', () => {
    expect(logs).toMatch(/"user":"ro".*"tokenId":"[0-9a-f]{8}".*user added/);
    for (const t of [srv.token, ...Object.values(tokens)]) expect(logs).not.toContain(t);
  });
});

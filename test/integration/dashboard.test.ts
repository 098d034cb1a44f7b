/**
 * The dashboard through a real `fleet server` on loopback (issue 17 items
 * 1/2): users made with `fleet user add`, a session from /ui/login, every
 * write refused without a session, with a missing, wrong or another
 * session's CSRF token, with a foreign Origin, for a read-only user, with a
 * bad cookie, after logout; a confirmed power-on through the dashboard
 * reaches the node's ipmi_sim BMC and its event names the user; the session's
 * event stream (GET /ui/events) carries the state changes of a reinstall
 * started with the CLI, and `fleet timeline` draws that reinstall as an SVG
 * file. The browser drives the same pages in
 * dashboard-browser.test.ts; expiry with a clock is test/unit/http/dashboard.test.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const READY = IPMI_SIM !== null && IPMITOOL !== null;
if (!READY && process.env.CI === 'true') throw new Error('ipmi_sim/ipmitool are missing and CI=true: .ci/deps.sh installs them');
const suite = READY ? describe : describe.skip;

const PASSWORD = 'dash-Sim-Pass1';

suite(READY ? 'dashboard through a real server' : 'dashboard through a real server — SKIPPED: ipmi_sim/ipmitool not installed', () => {
  let lab: IpmiSimLab;
  let srv: TestServer;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    lab = await startIpmiSims(2, { password: PASSWORD });
    srv = await startTestServer(
      `
cluster: {name: dash, domain: lab.local, timezone: UTC, management_address: 10.77.0.1}
networks:
  provisioning: {subnet: 10.77.0.0/16, unknown_range: 10.77.254.1-10.77.254.254}
credentials:
  sim: {username: admin, password_env: SIM_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.77.0.1/repo/os"}}
  diskfree: {os: {install: stateless, image: lab}}
nodes:
  s01: {profile: diskfree, mac: "52:54:00:17:04:31"}
  n01: {profile: compute, mac: "52:54:00:17:04:01", bmc: {address: 127.0.0.1, port: ${lab.bmcs[0]!.port}, protocol: ipmi, credentials: sim}}
  n02: {profile: compute, mac: "52:54:00:17:04:02", bmc: {address: 127.0.0.1, port: ${lab.bmcs[1]!.port}, protocol: ipmi, credentials: sim}}
discovery:
  policy: manual
  rules:
    - name: spares
      match: {mac_prefix: "0c:c4:7a"}
      names: spare[1-9]
      profile: compute
      on_accept: inventory-only
`,
      { prefix: 'fleet-dash-', env: { SIM_PASSWORD: PASSWORD }, bootListen: '127.0.0.1:0', bmc: { timeoutMs: 5000, retries: 0 } },
    );
    for (const [name, role] of [['ro', 'read-only'], ['op', 'operator'], ['op2', 'operator']] as const) {
      const r = await srv.fleet('user', 'add', name, '--role', role);
      expect(r.code, r.err).toBe(0);
      tokens[name] = r.out.trim();
    }
  }, 60_000);

  afterAll(async () => {
    await srv?.close();
    await lab?.stop();
  });

  const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();
  const post = (path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form(fields) });
  const login = async (user: string): Promise<{ cookie: string; csrf: string }> => {
    const res = await post('/ui/login', { token: tokens[user]! });
    expect(res.status).toBe(303);
    const set = res.headers.get('set-cookie')!;
    expect(set).toMatch(/; Path=\/ui; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const cookie = /^fleet_session=[A-Za-z0-9_-]{43}/.exec(set)![0];
    const page = await fetch(`${srv.url}/ui/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    return { cookie, csrf };
  };

  it('logs in with a token; a wrong one gets the form again, 401', async () => {
    const bad = await post('/ui/login', { token: `${tokens.op!.slice(0, -2)}xx` });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    expect(await bad.text()).toContain('not valid');
    const { cookie } = await login('op');
    const nodes = await fetch(`${srv.url}/ui/nodes?nodeset=n[01-02]`, { headers: { cookie } });
    const html = await nodes.text();
    expect(html).toContain('<tr data-node="n01">');
    expect(html).toContain('<tr data-node="n02">');
  });

  it("a stateless node's row says its method and the image its agent last reported", async () => {
    const digest = `sha256:${'5e'.repeat(32)}`;
    // What the agent service writes for a boot report naming the image (server/agents/reports.ts).
    await srv.server.store.events.append({ node: 's01', kind: 'agent.boot', actor: 'node:s01', details: { bootId: 'b-1', image: { name: 'lab', digest, install: 'stateless' } } });
    const { cookie } = await login('ro');
    const html = await (await fetch(`${srv.url}/ui/nodes?nodeset=s01`, { headers: { cookie } })).text();
    expect(html).toContain(`<td class="install">stateless lab<br><code class="digest" title="lab ${digest}">${'5e'.repeat(6)}</code></td>`);
    const st = await srv.fleet('status', 's01');
    expect(st.out).toMatch(new RegExp(`s01\\s+enrolled\\s+.*stateless lab@${'5e'.repeat(6)}`));
  });

  it('refuses every write without a session, without or with a wrong CSRF token, from another origin, for read-only, after logout', async () => {
    const op = await login('op');
    const op2 = await login('op2');
    const ro = await login('ro');
    const write = { action: 'power-on', nodeset: 'n01', confirm: 'n01' };
    const cases: [string, Response, number][] = [
      ['no session', await post('/ui/actions', { ...write, _csrf: op.csrf }), 401],
      ['a made-up session', await post('/ui/actions', { ...write, _csrf: op.csrf }, { cookie: `fleet_session=${'Z'.repeat(43)}` }), 401],
      ['a garbled cookie', await post('/ui/actions', { ...write, _csrf: op.csrf }, { cookie: 'fleet_session=%00;;==' }), 401],
      ['no CSRF token', await post('/ui/actions', write, { cookie: op.cookie }), 403],
      // Its last character changed (to one it is not: 'A' when it ended in 'A' was the right token, 1 run in 64).
      ['a wrong CSRF token', await post('/ui/actions', { ...write, _csrf: `${op.csrf.slice(0, -1)}${op.csrf.endsWith('A') ? 'B' : 'A'}` }, { cookie: op.cookie }), 403],
      ['another session’s CSRF token', await post('/ui/actions', { ...write, _csrf: op2.csrf }, { cookie: op.cookie }), 403],
      ['a foreign origin', await post('/ui/actions', { ...write, _csrf: op.csrf }, { cookie: op.cookie, origin: 'http://attacker.example' }), 403],
      ['a read-only user', await post('/ui/actions', { ...write, _csrf: ro.csrf }, { cookie: ro.cookie }), 403],
      ['logout without CSRF', await post('/ui/logout', {}, { cookie: op2.cookie }), 403],
    ];
    for (const [what, res, status] of cases) expect(res.status, what).toBe(status);
    const out = await post('/ui/logout', { _csrf: op2.csrf }, { cookie: op2.cookie });
    expect(out.status).toBe(303);
    expect((await post('/ui/actions', { ...write, _csrf: op2.csrf }, { cookie: op2.cookie })).status).toBe(401);
    // None of them reached the BMC or wrote an event.
    expect(lab.bmcs[0]!.state().power).toBe('off');
    expect((await srv.server.store.events.list({ node: 'n01', kinds: ['bmc.power'] })).events).toEqual([]);
  });

  it('an operator confirms a power-on naming the node; the BMC powers on and the event names the user', async () => {
    const op = await login('op');
    const ask = await post('/ui/actions', { action: 'power-on', nodeset: 'n01', _csrf: op.csrf }, { cookie: op.cookie });
    expect(ask.status).toBe(200);
    const confirm = await ask.text();
    expect(confirm).toContain('power on</strong> 1 node: <strong id="confirm-nodes">n01</strong>');
    expect(lab.bmcs[0]!.state().power).toBe('off');
    const done = await post('/ui/actions', { action: 'power-on', nodeset: 'n01', confirm: 'n01', _csrf: op.csrf }, { cookie: op.cookie, origin: srv.url });
    const body = await done.text();
    expect(done.status, body).toBe(200);
    expect(body).toContain('Power on: 1 of 1 done');
    await until(async () => lab.bmcs[0]!.state().power === 'on', 10_000);
    const ev = (await srv.server.store.events.list({ node: 'n01', kinds: ['bmc.power'] })).events.at(-1)!;
    expect(ev.actor).toBe('op@127.0.0.1');
  });

  it('a reinstall from the dashboard runs the doctor checks; the force box goes past them', async () => {
    const op = await login('op');
    const ask = await (await post('/ui/actions', { action: 'reinstall', nodeset: 'n01', _csrf: op.csrf }, { cookie: op.cookie })).text();
    expect(ask).toContain('name="force"');
    // This server has no OS tree nor boot environment: the checks a reinstall depends on fail.
    const refused = await post('/ui/actions', { action: 'reinstall', nodeset: 'n01', confirm: 'n01', _csrf: op.csrf }, { cookie: op.cookie });
    expect(refused.headers.get('x-fleet-error')).toBe('precondition.failed');
    expect(await refused.text()).toContain('reinstall refused');
    expect((await srv.server.store.nodes.require('n01')).state).toBe('enrolled');
    const forced = await post('/ui/actions', { action: 'reinstall', nodeset: 'n01', confirm: 'n01', force: 'yes', _csrf: op.csrf }, { cookie: op.cookie });
    const body = await forced.text();
    expect(forced.status, body).toBe(200);
    expect(body).toContain('Reinstall: 1 of 1 done');
    expect((await srv.server.store.nodes.require('n01')).state).not.toBe('enrolled');
    await srv.server.conductor.idle();
    expect((await srv.fleet('cancel', 'n01')).code).toBe(0);
    await srv.server.conductor.idle();
  }, 30_000);

  it("the session's event stream carries a reinstall's state changes", async () => {
    const ro = await login('ro');
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/ui/events?nodeset=n02`, { headers: { cookie: ro.cookie }, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    let text = '';
    const r = await srv.fleet('reinstall', 'n02', '--yes', '--force');
    expect(r.code, r.out + r.err).toBe(0);
    const deadline = Date.now() + 15_000;
    while (!/"toState":"power-cycling"/.test(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    expect(text).toMatch(/event: state\.changed\ndata: \{[^\n]*"node":"n02"[^\n]*"toState":"pxe-armed"/);
    expect(text).toContain('"toState":"power-cycling"');
    expect(text).not.toContain('"node":"n01"');
    await srv.server.conductor.idle();
    expect((await srv.fleet('cancel', 'n02')).code).toBe(0);
    await srv.server.conductor.idle();
  }, 30_000);

  it('fleet timeline writes the reinstall as an SVG or PNG file; another format or a bad window is refused', async () => {
    const r = await srv.fleet('timeline', 'n[01-02]', '-o', 'run.svg');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/^fleet: timeline of 2 nodes, 0 failures, \S+ to \S+ written to run\.svg\n$/);
    const svg = await readFile(join(srv.dir, 'run.svg'), 'utf8');
    expect(svg).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('<g class="row" data-node="n02">');
    expect(svg).toContain('power-cycling');
    // A PNG: the same picture rasterised by rsvg-convert (librsvg2-bin), as wide as the SVG says.
    const png = await srv.fleet('timeline', 'n[01-02]', '-o', 'run.png');
    expect(png.code, png.err).toBe(0);
    const pngBytes = await readFile(join(srv.dir, 'run.png'));
    expect(pngBytes.subarray(0, 8).toString('hex'), 'the PNG signature').toBe('89504e470d0a1a0a');
    expect(pngBytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect(pngBytes.readUInt32BE(16)).toBe(Number(/<svg [^>]*width="(\d+)"/.exec(svg)![1]));
    const other = await srv.fleet('timeline', 'n02', '-o', 'run.jpg');
    expect(other.code).not.toBe(0);
    expect(other.err).toContain('name the file .svg or .png');
    const bad = await srv.fleet('timeline', 'n02', '--since', 'last tuesday', '-o', '-');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('neither a duration');
  });

  it('an admin accepts a discovered machine as its planned name and rejects another, each after a confirmation; an operator may not', async () => {
    // Two unknown machines netboot: the boot face records them as discovered.
    for (const mac of ['0c-c4-7a-00-00-01', '0c-c4-7a-00-00-02']) expect((await fetch(`${srv.server.bootUrl}/boot/${mac}.ipxe`)).status).toBe(200);
    tokens.admin = srv.token;
    const admin = await login('admin');
    const op = await login('op');
    const list = await (await fetch(`${srv.url}/ui/discovery`, { headers: { cookie: admin.cookie } })).text();
    expect(list).toContain('<tr data-mac="0c:c4:7a:00:00:01">');
    expect(list).toContain('data-discovery="accept"');
    const opList = await (await fetch(`${srv.url}/ui/discovery`, { headers: { cookie: op.cookie } })).text();
    expect(opList).not.toContain('data-discovery=');
    expect((await post('/ui/discovery', { action: 'reject', mac: '0c:c4:7a:00:00:02', confirm: '0c:c4:7a:00:00:02', _csrf: op.csrf }, { cookie: op.cookie })).status).toBe(403);
    expect((await post('/ui/discovery', { action: 'reject', mac: '0c:c4:7a:00:00:02', confirm: '0c:c4:7a:00:00:02' }, { cookie: admin.cookie })).status).toBe(403);

    const ask = await post('/ui/discovery', { action: 'accept', mac: '0c:c4:7a:00:00:01', _csrf: admin.csrf }, { cookie: admin.cookie });
    const question = await ask.text();
    expect(ask.status, question).toBe(200);
    expect(question).toContain('as node <strong id="confirm-name">spare1</strong>');
    expect(await srv.server.store.nodes.get('spare1')).toBeNull();
    // Confirmed for a name the plan does not give: refused, nothing accepted.
    expect((await post('/ui/discovery', { action: 'accept', mac: '0c:c4:7a:00:00:01', confirm: 'spare7', _csrf: admin.csrf }, { cookie: admin.cookie })).status).toBe(409);
    const done = await post('/ui/discovery', { action: 'accept', mac: '0c:c4:7a:00:00:01', confirm: 'spare1', _csrf: admin.csrf }, { cookie: admin.cookie });
    expect(done.status).toBe(200);
    expect(await done.text()).toContain('0c:c4:7a:00:00:01 → node spare1');
    expect((await srv.server.store.nodes.get('spare1'))?.macs).toEqual(['0c:c4:7a:00:00:01']);

    const rej = await post('/ui/discovery', { action: 'reject', mac: '0c:c4:7a:00:00:02', confirm: '0c:c4:7a:00:00:02', _csrf: admin.csrf }, { cookie: admin.cookie });
    expect(rej.status).toBe(200);
    expect((await srv.server.store.discovered.get('0c:c4:7a:00:00:02'))?.rejectedBy).toBe('admin@127.0.0.1');
  });
});

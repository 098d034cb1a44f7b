/**
 * The dashboard in a real browser (issue 17 item 4): Debian's Chromium,
 * headless, driven by puppeteer-core (no browser download; docs/decisions/
 * 0018), against a real `fleet server` on loopback with a temp data dir,
 * eight nodes (two behind ipmi_sim BMCs) and a group. It logs in through the
 * page with a token, reads the overview (a failed node with its step and
 * its reason, shown as text), filters the nodes by @group, opens a node,
 * powers it on through the confirmation page, watches a row change state
 * live while `fleet reinstall` runs (no reload), checks that a read-only
 * user sees no action button and is refused if it posts anyway, and draws
 * the reinstall timeline of 50 simulated nodes (their transitions written
 * through the store, one failing with its reason).
 * Screenshots of each page go to test-output/screenshots/ (git-ignored).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const CHROMIUM = findExecutable('chromium') ?? findExecutable('chromium-browser');
const READY = CHROMIUM !== null && IPMI_SIM !== null && IPMITOOL !== null;
if (!READY && process.env.CI === 'true') throw new Error('chromium, ipmi_sim or ipmitool is missing and CI=true: .ci/deps.sh installs them');
const suite = READY ? describe : describe.skip;

const SHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-output', 'screenshots');
const PASSWORD = 'browser-Sim-Pass1';
const REASON = '<b>BMC said</b> "no" & gave up';

suite(READY ? 'dashboard in Chromium' : 'dashboard in Chromium — SKIPPED: chromium, ipmi_sim or ipmitool not installed', () => {
  let lab: IpmiSimLab;
  let srv: TestServer;
  let browser: Browser;
  let readOnlyToken: string;

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    lab = await startIpmiSims(2, { password: PASSWORD });
    srv = await startTestServer(
      `
cluster: {name: web, domain: lab.local, timezone: UTC, management_address: 10.76.0.1}
networks:
  provisioning: {subnet: 10.76.0.0/16, unknown_range: 10.76.254.1-10.76.254.254}
credentials:
  sim: {username: admin, password_env: SIM_PASSWORD}
profiles:
  compute: {os: {tree: "http://10.76.0.1/repo/os"}}
  login: {os: {tree: "http://10.76.0.1/repo/os"}}
groups:
  rack1: "n[01-03]"
nodes:
  n01: {profile: compute, mac: "52:54:00:17:05:01", bmc: {address: 127.0.0.1, port: ${lab.bmcs[0]!.port}, protocol: ipmi, credentials: sim}}
  n02: {profile: compute, mac: "52:54:00:17:05:02", bmc: {address: 127.0.0.1, port: ${lab.bmcs[1]!.port}, protocol: ipmi, credentials: sim}}
  "n[03-06]": {profile: compute, mac: ["52:54:00:17:05:03", "52:54:00:17:05:04", "52:54:00:17:05:05", "52:54:00:17:05:06"]}
  "login[1-2]": {profile: login, mac: ["52:54:00:17:05:11", "52:54:00:17:05:12"]}
  "sim[001-050]": {profile: compute}
`,
      { prefix: 'fleet-browser-', env: { SIM_PASSWORD: PASSWORD }, bootListen: '127.0.0.1:0', bmc: { timeoutMs: 5000, retries: 0 } },
    );
    // A failure whose reason came from outside, as a BMC's refusal would: it must show as text.
    await srv.server.store.nodes.setState('n05', 'failed', { actor: 'test', details: { step: 'arm-pxe', reason: REASON } });
    const ro = await srv.fleet('user', 'add', 'viewer', '--role', 'read-only');
    expect(ro.code, ro.err).toBe(0);
    readOnlyToken = ro.out.trim();
    // Root cannot use Chromium's sandbox: --no-sandbox only then.
    browser = await puppeteer.launch({
      executablePath: CHROMIUM!,
      headless: true,
      args: ['--headless=new', '--disable-gpu', '--disable-dev-shm-usage', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    await lab?.stop();
  });

  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  const loginAs = async (page: Page, token: string): Promise<void> => {
    await page.goto(`${srv.url}/ui/`);
    expect(page.url()).toBe(`${srv.url}/ui/login`);
    await page.type('#token', token);
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    expect(page.url()).toBe(`${srv.url}/ui/`);
  };

  it('logs in, shows the overview, filters by @group, opens a node and powers it on after a confirmation', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(`${srv.url}/ui/login`);
    await shot(page, '01-login');
    await loginAs(page, srv.token);

    // Overview: counts, the failed node with its step and its reason as text (no element made of it).
    expect(await page.$eval('#total', (e) => e.textContent)).toBe('58');
    expect(await page.$eval('[data-count-state="failed"]', (e) => e.textContent)).toBe('1');
    const failed = await page.$eval('#failed tbody tr', (tr) => ({ text: tr.textContent ?? '', bold: tr.querySelectorAll('b').length }));
    expect(failed.text).toContain('n05');
    expect(failed.text).toContain('arm-pxe');
    expect(failed.text).toContain(REASON);
    expect(failed.bold).toBe(0);
    await shot(page, '02-overview');

    // Nodes: the @group filter.
    await page.goto(`${srv.url}/ui/nodes`);
    expect(await page.$$eval('#nodes tbody tr', (rows) => rows.length)).toBe(58);
    await page.type('#nodeset', '@rack1');
    await Promise.all([page.waitForNavigation(), page.click('#filter button[type=submit]')]);
    expect(await page.$$eval('#nodes tbody tr', (rows) => rows.map((r) => r.getAttribute('data-node')))).toEqual(['n01', 'n02', 'n03']);
    await shot(page, '03-nodes-rack1');

    // A node's page: its story, BMC identity without a secret, the actions.
    await Promise.all([page.waitForNavigation(), page.click('#nodes a[href="/ui/nodes/n01"]')]);
    expect(await page.$eval('h1', (e) => e.getAttribute('data-node'))).toBe('n01');
    expect(await page.$eval('#bmc', (e) => e.textContent)).toContain('127.0.0.1');
    expect(await page.content()).not.toContain(PASSWORD);
    expect(await page.$$eval('#events li', (l) => l.length)).toBeGreaterThan(0);
    expect(await page.$$eval('button[data-action]', (b) => b.map((x) => x.getAttribute('data-action')))).toEqual(['power-on', 'power-off', 'power-cycle', 'reinstall', 'cancel']);
    await shot(page, '04-node-n01');

    // Power on: a confirmation page naming the node first; nothing happens before it is confirmed.
    await Promise.all([page.waitForNavigation(), page.click('button[data-action="power-on"]')]);
    expect(await page.$eval('#confirm-nodes', (e) => e.textContent)).toBe('n01');
    expect(lab.bmcs[0]!.state().power).toBe('off');
    await shot(page, '05-confirm');
    await Promise.all([page.waitForNavigation(), page.click('#confirm')]);
    expect(await page.$eval('h1', (e) => e.textContent)).toBe('Power on: 1 of 1 done');
    await until(async () => lab.bmcs[0]!.state().power === 'on', 10_000);
    await shot(page, '06-result');
    // Discovery: the machines no node declares (one seen on the network here) and the naming plan.
    await srv.server.store.discovered.record({ mac: '52:54:00:17:05:99', ip: '10.76.254.9', hostname: 'unknown-box', pxe: true });
    await page.goto(`${srv.url}/ui/discovery`);
    expect(await page.$$eval('#discovered tbody tr', (r) => r.map((x) => x.getAttribute('data-mac')))).toEqual(['52:54:00:17:05:99']);
    await shot(page, '10-discovery');
    await page.close();
  }, 60_000);

  it('a row changes state live while a reinstall runs, without a reload', async () => {
    // A context of its own: no cookie from the test before.
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 700 });
    await loginAs(page, srv.token);
    await page.goto(`${srv.url}/ui/nodes?nodeset=n[01-04]`);
    await page.waitForSelector('body[data-live="connected"]', { timeout: 10_000 });
    // A mark that a reload would lose.
    // (Page functions as strings: the type check has no DOM library.)
    await page.evaluate('window.fleetMark = 42');
    // The overview in a second tab: its counts follow too.
    const overview = await context.newPage();
    await overview.goto(`${srv.url}/ui/`);
    await overview.waitForSelector('body[data-live="connected"]', { timeout: 10_000 });
    const enrolledBefore = Number(await overview.$eval('[data-count-state="enrolled"]', (e) => e.textContent));
    // (Waits poll on a timer: a tab in the background runs no animation frames.)
    await page.bringToFront();
    const stateOf = () => page.$eval('tr[data-node="n02"] .state', (e) => e.getAttribute('data-state'));
    expect(await stateOf()).toBe('enrolled');
    const r = await srv.fleet('reinstall', 'n02', '--yes', '--force');
    expect(r.code, r.out + r.err).toBe(0);
    await page.waitForFunction(`document.querySelector('tr[data-node="n02"] .state')?.getAttribute('data-state') === 'power-cycling'`, { timeout: 15_000, polling: 100 });
    expect(await page.evaluate('window.fleetMark')).toBe(42);
    expect(await page.$eval('tr[data-node="n01"] .state', (e) => e.getAttribute('data-state'))).toBe('enrolled');
    await shot(page, '07-nodes-live');
    await overview.waitForFunction(`document.querySelector('[data-count-state="enrolled"]').textContent === '${enrolledBefore - 1}'`, { timeout: 10_000, polling: 100 });
    await srv.server.conductor.idle();
    expect((await srv.fleet('cancel', 'n02')).code).toBe(0);
    await page.waitForFunction(`document.querySelector('tr[data-node="n02"] .state')?.getAttribute('data-state') === 'enrolled'`, { timeout: 15_000, polling: 100 });
    await srv.server.conductor.idle();

    // The node's story now tells that run: the reinstall asked, the states it went
    // through (each a "from → to" line) and the cancel, newest first, by whom.
    await Promise.all([page.waitForNavigation(), page.goto(`${srv.url}/ui/nodes/n02`)]);
    const story = await page.$$eval('#events li', (items) =>
      items.map((li) => ({
        kind: li.querySelector('.kind')?.textContent ?? '',
        states: [...li.querySelectorAll('[data-state]')].map((s) => s.getAttribute('data-state')),
        actor: li.querySelector('.actor')?.textContent ?? '',
      })),
    );
    // The state changes, newest first, the way the run went: armed for PXE, power
    // cycled once, then back to enrolled on the cancel (by the admin who asked).
    const changes = story.filter((e) => e.kind === 'state.changed').map((e) => e.states.join('>'));
    expect(changes.slice(0, 3)).toEqual(['power-cycling>enrolled', 'pxe-armed>power-cycling', 'enrolled>pxe-armed']);
    expect(story.filter((e) => e.kind === 'bmc.power')).toHaveLength(1);
    expect(story.find((e) => e.kind === 'state.changed')?.actor).toContain('admin');
    await page.setViewport({ width: 1280, height: 900 });
    await shot(page, '11-node-story-n02');
    await context.close();
  }, 60_000);

  it('a read-only user sees no action button, and a write it makes anyway is refused', async () => {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await loginAs(page, readOnlyToken);
    expect(await page.$eval('header .who', (e) => e.textContent)).toContain('viewer');
    await page.goto(`${srv.url}/ui/nodes/n01`);
    expect(await page.$$('button[data-action]')).toHaveLength(0);
    expect(await page.$$('form[action="/ui/actions"]')).toHaveLength(0);
    await shot(page, '08-node-read-only');
    await page.goto(`${srv.url}/ui/nodes?nodeset=@rack1`);
    expect(await page.$$('#actions')).toHaveLength(0);
    // Posting by hand, with the session's own CSRF token: 403 for the role.
    const status = await page.evaluate(`(async () => {
      const csrf = document.querySelector('input[name="_csrf"]').value;
      const res = await fetch('/ui/actions', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf }, body: 'action=power-off&nodeset=n01&confirm=n01' });
      return res.status;
    })()`);
    expect(status).toBe(403);
    expect(lab.bmcs[0]!.state().power).toBe('on');
    await context.close();
  }, 60_000);

  it('draws the reinstall timeline of 50 simulated nodes, one failed with its reason', async () => {
    // A simulated run: ten nodes start every round, each walks the install path; sim017 fails installing.
    const path = ['pxe-armed', 'power-cycling', 'netbooting', 'installing', 'installed', 'disk-armed', 'first-boot', 'configuring', 'ready'];
    const names = Array.from({ length: 50 }, (_, i) => `sim${String(i + 1).padStart(3, '0')}`);
    const done = new Set<string>();
    for (let round = 0; round < path.length + 5; round++) {
      for (const [i, name] of names.entries()) {
        const step = round - Math.floor(i / 10);
        if (step < 0 || step >= path.length || done.has(name)) continue;
        const to = name === 'sim017' && path[step] === 'installed' ? 'failed' : path[step]!;
        const details = to === 'failed' ? { step: 'install', reason: 'installer reported: <disk /dev/sda not found>' } : undefined;
        await srv.server.store.nodes.setState(name, to as 'ready', { actor: 'simulation', ...(details ? { details } : {}) });
        if (to === 'failed') done.add(name);
      }
      await new Promise((r) => setTimeout(r, 120));
    }
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 1100 });
    await loginAs(page, srv.token);
    await page.goto(`${srv.url}/ui/timeline?nodeset=${encodeURIComponent('sim[001-050]')}`);
    expect(await page.$$eval('#timeline g.row', (g) => g.length)).toBe(50);
    expect(await page.$$eval('#timeline path.failure', (p) => p.map((x) => x.closest('g')?.getAttribute('data-node')))).toEqual(['sim017']);
    expect(await page.$eval('#timeline path.failure title', (t) => t.textContent)).toContain('install: installer reported: <disk /dev/sda not found>');
    await shot(page, '09-timeline');
    // The same picture as a file.
    const svg = await page.evaluate(`fetch(document.getElementById('svg-download').getAttribute('href')).then((r) => r.text())`);
    expect(String(svg)).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg /);
    await context.close();
  }, 60_000);
});

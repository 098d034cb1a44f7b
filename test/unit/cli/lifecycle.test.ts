/**
 * `fleet reinstall | status | watch | cancel` against a real HTTP server on
 * loopback, the real conductor and the simulator's nodes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimWorld, SIM_PROFILE, simMac } from '../../../bench/lifecycle.js';
import { checkBearer } from '../../../server/auth/api-token.js';
import { cmdCancel, cmdReinstall, cmdStatus, cmdWatch, fitWidth, formatDuration, installOf } from '../../../server/cli/commands/lifecycle.js';
import type { CliIo } from '../../../server/cli/io.js';
import { FleetError } from '../../../common/errors.js';
import { installErrorHandling } from '../../../server/http/errors.js';
import { registerLifecycleRoutes } from '../../../server/http/routes/lifecycle.js';
import type { Conductor } from '../../../server/lifecycle/conductor.js';
import { S } from '../../../server/lifecycle/states.js';
import { Clock, harness, type Harness } from '../../helpers/lifecycle.js';

/** The system clock: stagger slots and elapsed times pass for real here. */
class LiveClock extends Clock {
  override readonly now = (): Date => new Date();
}

const TOKEN = 'lifecycle-cli-token-0123456789abcdef';
let h: Harness;
let app: FastifyInstance;
let world: SimWorld;
let conductor: Conductor;
let url: string;
let home: string;

interface Captured {
  io: CliIo;
  out: () => string;
  err: () => string;
}

function capture(isTTY = false): Captured {
  let out = '';
  let err = '';
  return {
    io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, isTTY, home, cwd: home },
    out: () => out,
    err: () => err,
  };
}

const flags = () => ({ url, token: TOKEN });

beforeEach(async () => {
  home = mkdtempSync(path.join(tmpdir(), 'fleet-lc-cli-'));
  h = await harness({ nodes: ['n1', 'n2', 'n3'], pets: ['thor'], clock: new LiveClock() });
  world = new SimWorld(h.store, SIM_PROFILE, { timings: { bmcMs: [0, 1], postMs: [1, 5], netbootMs: [1, 5], installMs: [5, 20], rebootMs: [1, 5], applyMs: [1, 5] } });
  ['n1', 'n2', 'n3', 'thor'].forEach((n, i) => world.add(n, simMac(i)));
  conductor = h.conductor({ steps: world.steps, tickMs: 5, owner: 'cli-test' });
  world.attach(conductor);
  await conductor.start();
  app = fastify({ logger: false });
  installErrorHandling(app);
  // What the admin scope's auth hook does (server/http/app.ts): check the token, name the credential.
  app.addHook('onRequest', async (req) => {
    checkBearer(req.headers.authorization, TOKEN);
    req.principal = { user: 'test', role: 'admin', tokenId: '00000000', hash: '' };
  });
  await app.register(async (api) => registerLifecycleRoutes(api, { store: h.store, conductor, clock: h.clock.now, stream: { pollMs: 10 } }), { prefix: '/api/v1' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  world.stop();
  await app.close();
  await conductor.stop();
  await h.close();
  rmSync(home, { recursive: true, force: true });
});

describe('fleet reinstall', () => {
  it('--yes --watch without a terminal: plain event lines, every node ready, exit 0', async () => {
    const c = capture();
    const code = await cmdReinstall(flags(), 'n[1-3]', { yes: true, watch: true, stagger: '2/0.01' }, c.io);
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    const out = c.out();
    expect(out).toContain('n1: reinstalling (enrolled -> pxe-armed)');
    expect(out).toMatch(/n1  state\.changed enrolled -> pxe-armed \(reinstall\)/);
    expect(out).toMatch(/n1  state\.changed pxe-armed -> power-cycling \(cycle\)/);
    expect(out).toMatch(/n3  state\.changed configuring -> ready \(complete\)/);
    expect(out.trimEnd().split('\n').at(-1)).toMatch(/^3 nodes: 3 ready, 0 failed, 0 in progress/);
    for (const n of ['n1', 'n2', 'n3']) expect((await h.store.nodes.require(n)).state).toBe(S.ready);
    expect(world.node('n1').powerActions).toBe(1);
  }, 20_000);

  it('asks for confirmation; a no changes nothing; pets are left out without --force', async () => {
    const c = capture(true);
    const questions: string[] = [];
    const code = await cmdReinstall(flags(), 'n[1-2],thor', {}, c.io, { confirm: async (q) => (questions.push(q), false) });
    expect(code).toBe(1);
    expect(questions).toEqual(['Reinstall 2 nodes n[1-2]? Their disks are erased. [y/N] ']);
    expect(c.err()).toContain('thor is a pet: not reinstalled without --force');
    expect(c.err()).toContain('nothing was changed');
    expect((await h.store.nodes.require('n1')).state).toBe(S.enrolled);
  });

  it('refuses to run without a terminal to ask on, unless --yes', async () => {
    const c = capture(false);
    await expect(cmdReinstall(flags(), 'n1', {}, c.io)).rejects.toMatchObject({ code: 'usage.invalid', message: expect.stringContaining('--yes') });
    expect((await h.store.nodes.require('n1')).state).toBe(S.enrolled);
    await expect(cmdReinstall(flags(), 'n1', { yes: true, stagger: 'many' }, c.io)).rejects.toBeInstanceOf(FleetError);
  });

  it('--force includes pets; the live view on a terminal redraws and ends with a summary', async () => {
    const c = capture(true);
    const code = await cmdReinstall(flags(), 'thor', { force: true, watch: true }, c.io, { confirm: async () => true, redrawMs: 5 });
    expect(code).toBe(0);
    expect(c.out()).toContain('\x1b[');
    expect(c.out()).toMatch(/thor\s+ready/);
    expect(c.out()).toMatch(/1 node: 1 ready, 0 failed, 0 in progress/);
  }, 20_000);
});

describe('fitWidth: one watch line, one terminal row', () => {
  it.each([
    ['short', 80, 'short'],
    ['x'.repeat(79), 80, 'x'.repeat(79)],
    ['x'.repeat(80), 80, `${'x'.repeat(78)}…`],
    ['x'.repeat(300), 200, `${'x'.repeat(198)}…`],
    ['ab', 2, '…'],
    ['é'.repeat(10), 5, 'éééé'.slice(0, 3) + '…'],
  ])('%s at %i columns', (line, columns, want) => {
    expect(fitWidth(line, columns)).toBe(want);
    expect([...fitWidth(line, columns)].length).toBeLessThan(Math.max(2, columns));
  });
});

describe('the install column of fleet status', () => {
  it('says the method and the image the agent last reported, its digest cut to 12 hex', () => {
    expect(installOf({ install: 'stateless', image: { name: 'lab', digest: `sha256:${'3f'.repeat(32)}`, install: 'stateless', reportedAt: 'x' } })).toBe(`stateless lab@${'3f'.repeat(6)}`);
    expect(installOf({ install: 'kickstart', image: null })).toBe('kickstart');
    expect(installOf({})).toBe('-');
  });
});

describe('fleet status, watch, cancel', () => {
  it('status: one line per node, failed nodes last with step and reason, exit 1 when any failed', async () => {
    await h.put('n2', S.installing, { armed: true });
    await h.fact('n2', 'install.failed', { message: 'no disk found by installer' }, conductor);
    const c = capture();
    const code = await cmdStatus(flags(), 'n[1-2]', {}, c.io);
    expect(code).toBe(1);
    const lines = c.out().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+IN STATE\s+TIMEOUT IN\s+INSTALL\s+LAST EVENT\s+FLAGS$/);
    expect(lines[1]).toMatch(/^n1\s+enrolled/);
    expect(lines[2]).toMatch(/^n2\s+failed/);
    expect(c.out()).toContain('-- 1 of 2 failed:\nn2: install: installer failed: no disk found by installer');
    const json = capture();
    await cmdStatus(flags(), 'n1', { json: true }, json.io);
    expect(JSON.parse(json.out()).nodes[0]).toMatchObject({ name: 'n1', state: S.enrolled });
  });

  it('watch ends when the nodes rest and exits 1 when one failed', async () => {
    await h.put('n1', S.installing, { armed: true });
    const c = capture();
    const watching = cmdWatch(flags(), 'n1', {}, c.io);
    await new Promise((r) => setTimeout(r, 100));
    await h.fact('n1', 'install.failed', { message: 'kernel panic' }, conductor);
    expect(await watching).toBe(1);
    expect(c.out()).toContain('n1: install: installer failed: kernel panic');
    expect(c.out()).toMatch(/1 node: 0 ready, 1 failed, 0 in progress/);
  }, 10_000);

  it('watch stops at its timeout while nodes are still in progress', async () => {
    await h.put('n3', S.installing, { armed: true });
    const c = capture();
    expect(await cmdWatch(flags(), 'n3', { timeout: '0.3s' }, c.io)).toBe(1);
    expect(c.err()).toContain('stopped watching after the timeout; 1 nodes still in progress');
  });

  it('cancel: per node, back to enrolled; refused for a resting node', async () => {
    await h.put('n1', S.netbooting, { armed: true });
    const c = capture();
    expect(await cmdCancel(flags(), 'n[1-2]', {}, c.io)).toBe(1);
    expect(c.out()).toContain('n1: cancelled in netbooting, now enrolled (disarmed)');
    expect(c.out()).toMatch(/-- 1 of 2 refused:\nn2: node n2 is enrolled: 'cancel' is not allowed there/);
    expect(await h.store.nodes.require('n1')).toMatchObject({ state: S.enrolled, armed: false });
  });

  it('formats durations', () => {
    expect([5, 65, 3700, 90_000].map(formatDuration)).toEqual(['5s', '1m05s', '1h01m', '1d1h']);
  });
});

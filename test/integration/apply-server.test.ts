/**
 * Issue 9, "the data dir and apply are safe", through a real `fleet server`
 * (in-process, loopback TCP) and the CLI: enrolled nodes survive apply and
 * restarts, apply never removes a node mid-operation or a pet without
 * --prune, and lifecycle settings applied while running take effect.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmdApply } from '../../server/cli/commands/apply.js';
import type { CliIo } from '../../server/cli/io.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { cliAgainst, type CliResult } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('apply and restarts keep what fleet.yaml does not declare', () => {
  let dir: string;
  let config: string;
  let seedYaml: string;
  let server: RunningServer | undefined;
  const lines: string[] = [];

  const start = async (): Promise<RunningServer> => {
    server = await startServer({ configPath: config, dataDir: join(dir, 'data'), listen: '127.0.0.1:0', logLevel: 'warn', say: (l) => lines.push(l) });
    return server;
  };
  const fleet = (...args: string[]): Promise<CliResult> => cliAgainst(server!, dir)(...args);
  /** The seed cluster with its demo secret file named absolutely, minus the given YAML lines. */
  const variant = async (name: string, edit: (yaml: string) => string): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, edit(seedYaml));
    return file;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-apply-srv-'));
    seedYaml = (await readFile(join(ROOT, 'examples/seed-cluster.yaml'), 'utf8')).replace(
      'password_file: secrets/bmc-admin.password',
      `password_file: ${join(ROOT, 'examples/secrets/bmc-admin.password')}`,
    );
    config = await variant('fleet.yaml', (y) => y);
    await start();
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('fleet enroll + server restart keeps the node; apply leaves it alone', async () => {
    // A machine seen on the network (what dnsmasq's lease hook records), then enrolled by the admin.
    await server!.store.discovered.record({ mac: '52:54:00:aa:bb:01', ip: '10.10.3.50', pxe: true });
    const e = await fleet('enroll', '52:54:00:aa:bb:01', '--name', 'valkyrie50', '--profile', 'compute');
    expect(e.code, e.err).toBe(0);
    expect((await server!.store.nodes.get('valkyrie50'))?.origin).toBe('enroll');

    const again = await fleet('apply', '-f', config);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain('= 1 not in fleet.yaml, kept (enrolled): valkyrie50');
    expect(again.out).toContain('no changes.');

    await server!.close();
    server = undefined;
    lines.length = 0;
    await start();
    expect(lines.join('\n')).toMatch(/config .* no changes/);
    const n = await fleet('nodes', 'valkyrie50', '--json');
    expect(n.code, n.err).toBe(0);
    expect(JSON.parse(n.out)).toMatchObject([{ name: 'valkyrie50', profile: 'compute', ip: '10.10.3.50', macs: ['52:54:00:aa:bb:01'], origin: 'enroll' }]);
    expect((await fleet('show', 'valkyrie50')).out).toMatch(/^origin\s+fleet enroll \(not in fleet\.yaml; apply keeps it\)$/m);
  });

  it('apply of a file that drops a node in installing refuses without --prune', async () => {
    await server!.store.nodes.setState('valkyrie03', 'installing', { actor: 'test' });
    // valkyrie[03-04] becomes valkyrie04 alone (its IP, MACs and BMC follow the single name).
    const dropped = await variant('dropped.yaml', (y) =>
      y
        .replace('valkyrie[03-04]:', 'valkyrie04:')
        .replace('ip: 10.10.3.[3-4]', 'ip: 10.10.3.4')
        .replace('mac: [08:00:27:18:6a:bc, 08:00:27:18:6b:bc]', 'mac: [08:00:27:18:6b:bc]')
        .replace('address: 10.10.103.[3-4]', 'address: 10.10.103.4'),
    );
    const before = (await server!.store.events.list({ limit: 1, order: 'desc' })).events[0]!.id;
    const r = await fleet('apply', '-f', dropped, '--yes');
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toContain('! valkyrie03 (installing): would remove (use --prune)');
    expect(r.err).toMatch(/no longer declares valkyrie03 \(installing\): removed only with --prune; nothing was changed/);
    expect((await server!.store.nodes.get('valkyrie03'))?.state).toBe('installing');
    expect((await server!.store.events.list({ limit: 1, order: 'desc' })).events[0]!.id).toBe(before);

    // The API refuses too, whoever the client is.
    const api = await fetch(`${server!.url}/api/v1/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(await readFile(server!.tokenPath, 'utf8')).trim()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ yaml: await readFile(dropped, 'utf8'), secrets: { 'bmc-admin': (await readFile(join(ROOT, 'examples/secrets/bmc-admin.password'), 'utf8')).trim() }, dryRun: false }),
    });
    expect(api.status).toBe(409);
    expect(((await api.json()) as { error: { details: unknown } }).error.details).toEqual({
      held: [{ name: 'valkyrie03', state: 'installing', pet: false, reasons: ['busy'] }],
    });

    // Without a terminal and without --yes, a removal is not confirmed; with --prune --yes it goes.
    const noTty = await fleet('apply', '-f', dropped, '--prune');
    expect(noTty.code).toBe(2);
    expect(noTty.err).toContain('pass --yes');
    expect(await server!.store.nodes.get('valkyrie03')).not.toBeNull();
    const pruned = await fleet('apply', '-f', dropped, '--prune', '--yes');
    expect(pruned.code, pruned.err).toBe(0);
    expect(pruned.out).toContain('- valkyrie03');
    expect(await server!.store.nodes.get('valkyrie03')).toBeNull();
    expect((await server!.store.nodes.get('valkyrie50'))?.origin).toBe('enroll');
  });

  it('a plan that removes resting nodes asks first; no is no', async () => {
    const noGpu = await variant('no-gpu.yaml', (y) => y.replace(/  valkyrie\[03-04\]:[\s\S]*$/, ''));
    let out = '';
    let err = '';
    const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, isTTY: true, home: dir, cwd: dir };
    const flags = { url: server!.url, tokenFile: server!.tokenPath };
    const questions: string[] = [];
    const refuse = await cmdApply(flags, { file: noGpu }, io, { confirm: async (q) => (questions.push(q), false) });
    expect(refuse).toBe(1);
    expect(questions).toEqual(['Remove 1 node valkyrie04 from fleet? Their records are deleted (their events stay). [y/N] ']);
    expect(out).toContain('- valkyrie04');
    expect(err).toContain('not confirmed; nothing was changed');
    expect(await server!.store.nodes.get('valkyrie04')).not.toBeNull();
    const yes = await cmdApply(flags, { file: noGpu }, io, { confirm: async () => true });
    expect(yes).toBe(0);
    expect(out).toMatch(/applied\.\n$/);
    expect(await server!.store.nodes.get('valkyrie04')).toBeNull();
  });

  it('lifecycle settings applied while running take effect without a restart', async () => {
    const installingDeadline = async (node: string): Promise<number> => {
      await server!.store.nodes.setState(node, 'netbooting', { actor: 'test' });
      const res = await server!.conductor.signal(node, 'install.started', {});
      expect(res).toMatchObject({ status: 'applied', to: 'installing' });
      const rec = (await server!.store.nodes.get(node))!;
      await server!.store.nodes.setState(node, 'failed', { actor: 'test' });
      return Math.round((Date.parse(rec.stateDeadline!) - Date.parse(rec.stateSince)) / 1000);
    };
    const defaultTimeout = server!.conductor.settings.timeouts.installing!;
    expect(await installingDeadline('valkyrie01')).toBe(defaultTimeout);

    const tuned = await variant('tuned.yaml', (y) => `${y}\nlifecycle:\n  timeouts:\n    installing: 7m\n  retries:\n    power-cycle: 0\n`);
    const r = await fleet('apply', '-f', tuned);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('~ settings: lifecycle');
    expect(server!.conductor.settings.retries['power-cycle']).toBe(0);
    expect(await installingDeadline('valkyrie02')).toBe(420);
  });

  it('the apply at server start keeps a pet the file dropped, says so, and applies the rest', async () => {
    const noThor = await variant('no-thor.yaml', (y) => y.replace(/  thor:\n(    .*\n)+/, '').replace('ip: 10.10.2.1', 'ip: 10.10.2.9'));
    await server!.close();
    server = undefined;
    lines.length = 0;
    server = await startServer({ configPath: noThor, dataDir: join(dir, 'data'), listen: '127.0.0.1:0', logLevel: 'warn', say: (l) => lines.push(l) });
    expect(lines).toContain(`warning: thor is no longer in ${noThor} but is a pet: kept (fleet apply --prune removes it)`);
    expect((await server.store.nodes.get('thor'))?.pet).toBe(true);
    expect((await server.store.nodes.get('heimdall'))?.ip).toBe('10.10.2.9');
  });
});

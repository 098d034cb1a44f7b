/** `fleet lab …` without a lab and without root: clear refusals, no side effects (the lab itself: test/e2e). */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cmdLabDown, cmdLabExec, cmdLabUp } from '../../../server/cli/commands/lab.js';
import { labPaths } from '../../../server/lab/server.js';
import type { CliIo } from '../../../server/cli/io.js';
import { main } from '../../../server/cli/main.js';

const dir = mkdtempSync(join(tmpdir(), 'fleet-cli-lab-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, isTTY: false, home: dir, cwd: dir, out: () => out, err: () => err };
}
const notRoot = { isRoot: () => false };

describe('fleet lab', () => {
  it('up, down and exec refuse to run without root, saying so, and create nothing', async () => {
    for (const run of [
      (x: CliIo) => cmdLabUp({ dir: 'lab' }, x, notRoot),
      (x: CliIo) => cmdLabDown({ dir: 'lab' }, x, notRoot),
      (x: CliIo) => cmdLabExec({ dir: 'lab' }, ['--', 'status'], x, notRoot),
    ]) {
      await expect(run(io())).rejects.toMatchObject({ code: 'usage.invalid', message: expect.stringMatching(/needs root.*sudo/) });
    }
    expect(existsSync(join(dir, 'lab'))).toBe(false);
  });

  it('status without a lab says so (exit 1); exec needs arguments after --', async () => {
    const x = io();
    expect(await main(['node', 'fleet', 'lab', 'status', '--dir', join(dir, 'none')], x)).toBe(1);
    expect(x.out()).toMatch(/no lab in .*none/);
    await expect(cmdLabExec({ dir: 'lab' }, ['--'], io(), { isRoot: () => true })).rejects.toMatchObject({ code: 'usage.invalid' });
  });

  it('keeps its files under DIR: data/www for the server, server.log and server.pid', () => {
    expect(labPaths('/var/tmp/l')).toEqual({ dir: '/var/tmp/l', dataDir: '/var/tmp/l/data', www: '/var/tmp/l/data/www', serverLog: '/var/tmp/l/server.log', serverPid: '/var/tmp/l/server.pid' });
  });
});

/**
 * `fleet import csv FILE` through the CLI's own entry point (main): the
 * fragment on stdout, the count on stderr, exit codes, and a bad file that
 * prints every problem with FILE:LINE:COL and nothing on stdout. The
 * command is offline: no server, no data dir.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../../server/cli/io.js';
import { main } from '../../../server/cli/main.js';

const dir = mkdtempSync(join(tmpdir(), 'fleet-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function fleet(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, isTTY: false, home: dir, cwd: dir };
  const code = await main(['node', 'fleet', ...args], io);
  return { code, out, err };
}

describe('fleet import csv', () => {
  it('prints a nodes: fragment; says on stderr that nothing changed', async () => {
    writeFileSync(join(dir, 'nodes.csv'), 'name,mac,ip,bmc,profile\nn02,08:00:27:00:00:02,10.0.0.2,10.0.1.2,compute\nn01,08:00:27:00:00:01,10.0.0.1,10.0.1.1,compute\n');
    const r = await fleet('import', 'csv', 'nodes.csv', '--credentials', 'bmc-admin');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('nodes:\n  "n[01-02]":\n    profile: "compute"\n    ip: ["10.0.0.1", "10.0.0.2"]\n');
    expect(r.err).toBe('fleet: 2 nodes from nodes.csv; nothing was changed: merge the fragment into fleet.yaml and run fleet apply\n');
    const j = await fleet('import', 'csv', 'nodes.csv', '--credentials', 'bmc-admin', '--json');
    expect(JSON.parse(j.out)[0]).toEqual({ name: 'n02', profile: 'compute', ip: '10.0.0.2', macs: ['08:00:27:00:00:02'], bmc: { address: '10.0.1.2', credentials: 'bmc-admin' } });
    expect(readdirSync(dir).sort()).toEqual(['nodes.csv']);
  });

  it('a bad file: exit 2, every problem as FILE:LINE:COL, nothing on stdout', async () => {
    writeFileSync(join(dir, 'bad.csv'), 'name,mac,ip\nn1,08:00:27:00:00:0g,10.0.0.1\nn2,08:00:27:00:00:02,10.0.0.1\n');
    const r = await fleet('import', 'csv', 'bad.csv', '--profile', 'compute');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toContain('bad.csv:2:4: MAC 08:00:27:00:00:0g is not a MAC address');
    expect(r.err).toContain('bad.csv:3:22: IP 10.0.0.1 also on line 2');
    const missing = await fleet('import', 'csv', 'nosuch.csv');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read nosuch\.csv: ENOENT/);
  });

  it('fleet import groups: a clustershell file to a nodes: skeleton; --json shows the groups; mistakes are usage errors', async () => {
    writeFileSync(join(dir, 'local.cfg'), 'io: example[4-6]\ncompute: example[32-159]\ngpu: example[156-159]\n');
    const r = await fleet('import', 'groups', 'local.cfg', '--profile', 'io=storage', '--profile', 'compute=compute');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('nodes:\n  "example[4-6]":    # @local:io\n    profile: "storage"\n  "example[32-159]":    # @local:compute\n');
    const j = await fleet('import', 'groups', 'local.cfg', '--json');
    expect(JSON.parse(j.out)).toEqual({ local: { io: 'example[4-6]', compute: 'example[32-159]', gpu: 'example[156-159]' } });
    const none = await fleet('import', 'groups', 'local.cfg');
    expect(none.code).toBe(2);
    expect(none.err).toContain('has: io, compute, gpu');
    const both = await fleet('import', 'groups', 'local.cfg', '--profile', 'compute=compute', '--profile', 'gpu=compute_gpu');
    expect(both.code).toBe(2);
    expect(both.out).toBe('');
    expect(both.err).toContain('example156 is in both @compute and @gpu');
  });
});

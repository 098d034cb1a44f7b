/**
 * The agent bundle (agent/package/build.sh): esbuild bundles agent/, common/
 * and proto/gen/ into one module, the npm packages it imports are copied
 * beside it, and the self-extracting fleet-agent runs from a fresh unpack
 * directory with the node running the tests (--system-node).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let stderr: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-agent-bundle-'));
  const r = await exec('sh', [join(ROOT, 'agent/package/build.sh'), '--system-node', '--out', join(dir, 'out')], { timeout: 120_000 });
  stderr = r.stderr;
}, 150_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the bundle with its unpack directory inside the test's directory. */
function agent(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const env = { ...process.env, FLEET_AGENT_LIB: join(dir, 'lib'), FLEET_AGENT_NODE: process.execPath };
  return exec(join(dir, 'out', 'fleet-agent'), args, { timeout: 60_000, env });
}

describe('agent bundle', () => {
  it('writes the files the server serves under /agent/, with their checksums', async () => {
    for (const f of ['fleet-agent', 'fleet-agent.service', 'fleet-agent.sha256']) expect(existsSync(join(dir, 'out', f)), f).toBe(true);
    const sums = readFileSync(join(dir, 'out', 'fleet-agent.sha256'), 'utf8');
    expect(sums).toMatch(/^[0-9a-f]{64} {2}fleet-agent\n[0-9a-f]{64} {2}fleet-agent.service\n$/);
    const { stdout } = await exec('sha256sum', ['-c', 'fleet-agent.sha256'], { cwd: join(dir, 'out') });
    expect(stdout).toContain('fleet-agent: OK');
    expect(stderr).toMatch(/wrote .*fleet-agent \(\d+ bytes, bundle [0-9a-f]{16}, \d+ modules\)/);
  });

  it('runs from a fresh unpack: --version, then an inventory through the copied npm packages', async () => {
    expect((await agent('--version')).stdout.trim()).toBe(VERSION);
    const inv = JSON.parse((await agent('inventory', '--json')).stdout) as { collectedAt: string; system: unknown; warnings: unknown[] };
    expect(typeof inv.collectedAt).toBe('string');
    expect(inv.system).toBeTypeOf('object');
  });

  it('holds the agent as one bundled module, no server code, and the packages it imports', async () => {
    const [id] = (await readdir(join(dir, 'lib'))).filter((n) => /^[0-9a-f]{16}$/.test(n));
    expect(id).toBeDefined();
    const app = join(dir, 'lib', id!, 'app');
    expect((await readdir(app)).sort()).toEqual(['agent', 'bin', 'node_modules', 'package.json']);
    expect(await readdir(join(app, 'agent'))).toEqual(['main.js']);
    const bundle = readFileSync(join(app, 'agent', 'main.js'), 'utf8');
    // Relative imports are all resolved inside the bundle; packages stay imports.
    expect(bundle).not.toMatch(/from\s*['"]\.{1,2}\//);
    expect(bundle).toMatch(/from\s*['"]@grpc\/grpc-js['"]/);
    for (const pkg of ['@grpc/grpc-js', '@bufbuild/protobuf', 'commander', 'systeminformation']) {
      expect(existsSync(join(app, 'node_modules', pkg, 'package.json')), pkg).toBe(true);
    }
    expect(existsSync(join(app, 'node_modules', 'fastify'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', 'esbuild'))).toBe(false);
  });
});

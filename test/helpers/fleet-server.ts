/**
 * Runs the built `fleet server` inside a test's network namespace, as on a
 * management node, and the CLI next to it. The caller owns the namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsLab } from './netns.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FLEET_BIN = join(ROOT, 'bin/fleet.js');
/** Why the built binary cannot be used, or null. */
export const distMissing = (): string | null => (existsSync(join(ROOT, 'dist/server/cli/main.js')) ? null : 'dist/ is not built (npm run build)');

export interface FleetInNetns {
  dir: string;
  dataDir: string;
  url: string;
  /** Everything the server printed so far. */
  log(): string;
  /** Runs the CLI inside the namespace against this server. */
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  /** SIGTERM, wait for exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Removes the temp dir (after stop). */
  cleanup(): Promise<void>;
  child: ChildProcess;
}

/** Starts `fleet server --config <yaml>` in `lab.server`; resolves once `readyLine` appears in its output. */
export async function startFleetInNetns(lab: NetnsLab, yaml: string, opts: { url: string; readyLine: RegExp; timeoutMs?: number }): Promise<FleetInNetns> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-srv-'));
  await chmod(dir, 0o711); // dnsmasq drops root and must traverse to the data dir
  const dataDir = join(dir, 'data');
  await writeFile(join(dir, 'fleet.yaml'), yaml);
  let out = '';
  const child = spawn('ip', ['netns', 'exec', lab.server, process.execPath, FLEET_BIN, 'server', '--config', join(dir, 'fleet.yaml'), '--data', dataDir, '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!opts.readyLine.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await new Promise((r) => setTimeout(r, 200)); // let the last output arrive
      await stop();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`fleet server did not become ready (exit ${child.exitCode}):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    dataDir,
    url: opts.url,
    child,
    log: () => out,
    async cli(...args) {
      const r = await lab.exec(lab.server, [process.execPath, FLEET_BIN, '--url', opts.url, '--data', dataDir, ...args], { timeoutMs: 20_000 });
      return { code: r.code ?? -1, out: r.stdout, err: r.stderr };
    },
    stop,
    async cleanup() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

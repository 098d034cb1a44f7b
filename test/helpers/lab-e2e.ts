/**
 * What the lab's e2e files share (test/e2e/*.test.ts): the `fleet lab …`
 * command itself, the last-resort stop of what a lab started, and the
 * what-it-needs check. Each file brings up its own lab.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { findExecutable } from '../../common/executable.js';
import { labKillSync, labPrerequisites } from '../../server/lab/lab.js';
import { labServerPid, type LabPaths } from '../../server/lab/server.js';
import { imageBuildMissing } from './debian-image.js';
import { distMissing, FLEET_BIN } from './fleet-server.js';

/** Why the lab's e2e cannot run here ('' when it can): root, the lab's packages, dnsmasq, ipmitool, dist/, the image build. */
export function labE2eMissing(): string {
  const missing = [...labPrerequisites()];
  if (!findExecutable('dnsmasq')) missing.push('dnsmasq (dnsmasq-base)');
  if (!findExecutable('ipmitool')) missing.push('ipmitool (ipmitool)');
  const dist = distMissing();
  if (dist) missing.push(dist);
  const imageWhy = imageBuildMissing();
  if (imageWhy) missing.push(`the image build: ${imageWhy}`);
  return missing.length > 0 ? `needs ${missing.join(', ')}` : '';
}

/** The `fleet lab …` command itself (up/down/status), its stdout and stderr together; SIGKILLed after timeoutMs. */
export function labCli(args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FLEET_BIN, 'lab', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

/** For process.once('exit'): SIGKILLs the lab's server, BMCs and VMs by PID and deletes its namespace (no async work possible there). */
export function labEmergencyStop(p: LabPaths | undefined, work: string): void {
  const pid = p ? labServerPid(p) : undefined;
  if (pid) process.kill(pid, 'SIGKILL');
  if (work) labKillSync(join(work, 'lab'));
}

/**
 * The ipmitool fallback console: `ipmitool -I lanplus ... sol activate`
 * with pipes (no TTY: ipmitool says "tcgetattr: Inappropriate ioctl" and
 * works). The password goes in IPMI_PASSWORD (-E), never in argv. Ending it:
 * SIGTERM to the process, then `sol deactivate` so the BMC frees the payload
 * at once instead of at its session timeout.
 *
 * ipmitool's own escape character (~) still applies to what reaches it; the
 * CLI consumes `~.`, `~?` and `~B` first, so only a `~~` typed at the start of
 * a line reaches ipmitool as a `~` there.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { IpmitoolDriver, type IpmitoolDriverOptions } from '../bmc/ipmitool/driver.js';
import type { BmcTarget } from '../bmc/types.js';
import type { BackendHandlers, ConsoleBackend } from './manager.js';

export interface IpmitoolSolOptions extends IpmitoolDriverOptions {
  force?: boolean;
}

const OPERATIONAL = /SOL Session operational/;

/** What ipmitool's stderr says, as a FleetError (exported for tests). */
export function ipmitoolSolError(stderr: string, label: string): FleetError {
  const text = stderr.replace(/tcgetattr: Inappropriate ioctl for device\s*/g, '').trim();
  if (/already active/i.test(text)) return new FleetError('conflict', `SOL on ${label}: console busy: the BMC says SOL is already active on another session (someone else is attached; --force takes it over)`);
  if (/RAKP 2 HMAC is invalid|unauthorized name|Unable to establish IPMI v2 \/ RMCP\+ session.*password/i.test(text)) return new FleetError('bmc.auth_failed', `SOL on ${label}: the BMC refused the credentials (ipmitool: ${firstLine(text)})`);
  if (/disabled/i.test(text)) return new FleetError('bmc.unsupported', `SOL on ${label}: SOL is disabled on this BMC (ipmitool: ${firstLine(text)})`);
  if (/No response|timeout/i.test(text)) return new FleetError('bmc.timeout', `SOL on ${label}: no answer (ipmitool: ${firstLine(text)})`);
  if (/Unable to establish/i.test(text)) return new FleetError('bmc.command_failed', `SOL on ${label}: ipmitool could not open a session (wrong password or BMC unreachable): ${firstLine(text)}`);
  return new FleetError('bmc.command_failed', `SOL on ${label}: ipmitool sol activate failed${text ? `: ${firstLine(text)}` : ''}`);
}

/** The line that says what went wrong: an Error/Info line when there is one (-v adds debug lines), else the first. */
function firstLine(s: string): string {
  const lines = s.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return (lines.find((l) => /^(Error|Info)\b/.test(l)) ?? lines[0] ?? '').slice(0, 200);
}

export class IpmitoolSol implements ConsoleBackend {
  readonly provider = 'ipmitool' as const;
  private ended = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly deactivate: () => Promise<void>,
  ) {}

  static async open(target: BmcTarget, opts: IpmitoolSolOptions, h: BackendHandlers): Promise<IpmitoolSol> {
    const label = `${target.address}:${target.port}`;
    const driver = new IpmitoolDriver(target, opts);
    const bin = opts.ipmitoolPath ?? 'ipmitool';
    const env = { ...(opts.env ?? process.env), IPMI_PASSWORD: target.password };
    // Without -v: verbose ipmitool loads the IANA PEN registry first (seconds). A wrong password then
    // reads "Unable to establish IPMI v2 / RMCP+ session", said as such.
    const argv = (cmd: string[]): string[] => driver.argv(cmd).filter((a) => a !== '-v');
    const deactivate = (): Promise<void> =>
      new Promise((resolve) => execFile(bin, argv(['sol', 'deactivate']), { env, timeout: 10_000, killSignal: 'SIGKILL' }, () => resolve()));
    if (opts.force) await deactivate();
    // ipmitool writes the console through stdio, fully buffered on a pipe: stdbuf -o0 makes it
    // unbuffered (without stdbuf the banner and output only come in 4 KiB blocks).
    const stdbuf = findExecutable('stdbuf');
    const child = stdbuf
      ? spawn(stdbuf, ['-o0', bin, ...argv(['sol', 'activate'])], { env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(bin, argv(['sol', 'activate']), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let head = '';
    const timeoutMs = opts.timeoutMs ?? 15_000;
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const fail = (e: FleetError): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(e);
      };
      const timer = setTimeout(() => fail(new FleetError('bmc.timeout', `SOL on ${label}: ipmitool did not open the console in ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (done || !OPERATIONAL.test(head + stderr)) return;
        done = true;
        clearTimeout(timer);
        resolve();
      };
      child.stderr!.on('data', (d: Buffer) => {
        // Only the end is kept: -v can be chatty over a long session.
        stderr = (stderr + d.toString('utf8')).slice(-8192);
        check();
      });
      child.stdout!.on('data', (d: Buffer) => {
        if (!done) {
          // ipmitool prints its banner on stdout; what follows it is the console.
          head += d.toString('latin1');
          const m = /\[SOL Session operational\.[^\]]*\]\r?\n?/.exec(head);
          if (m) {
            const rest = Buffer.from(head.slice(m.index + m[0].length), 'latin1');
            check();
            if (rest.length) h.onData(rest);
          }
          return;
        }
        h.onData(d);
      });
      child.on('error', (e) => fail(new FleetError('bmc.unsupported', `SOL on ${label}: cannot run ${bin}: ${e.message}`)));
      child.on('exit', () => fail(ipmitoolSolError(stderr, label)));
    });
    const sol = new IpmitoolSol(child, deactivate);
    child.stdin!.on('error', () => undefined);
    child.on('exit', () => {
      if (sol.ended) return;
      sol.ended = true;
      h.onEnd(new FleetError('bmc.command_failed', `SOL on ${label}: ipmitool ended the console${stderr.trim() ? `: ${firstLine(stderr.replace(/tcgetattr[^\n]*\n?/g, '')) || 'no message'}` : ''}`));
    });
    return sol;
  }

  write(data: Uint8Array): void {
    if (!this.ended) this.child.stdin!.write(data);
  }

  sendBreak(): void {
    // ipmitool's own escape: ~B after a newline sends a break.
    if (!this.ended) this.child.stdin!.write('\r~B');
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
    await this.deactivate();
  }
}

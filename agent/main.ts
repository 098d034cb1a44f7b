/**
 * `fleet-agent`: the node agent.
 *
 *   fleet-agent enroll --server HOST:PORT --token T --ca-fingerprint F [--state-dir DIR]
 *   fleet-agent run [--state-dir DIR]
 *   fleet-agent inventory --json      (not implemented yet)
 *   fleet-agent plan                  (not implemented yet)
 *
 * Exit codes: 0 ok, 1 failed, 2 usage or configuration error. Errors are one
 * line on stderr.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { Exit, FleetError, toFleetError } from '../server/errors.js';
import { enroll } from './enroll.js';
import { runAgent, type AgentHandlers } from './run.js';
import { DEFAULT_STATE_DIR } from './state.js';
import { AGENT_VERSION } from './version.js';

export interface AgentIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

const processIo: AgentIo = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
};

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new FleetError('usage.invalid', `--${name} must be a positive integer`);
  return n;
}

async function readToken(opts: { token?: string; tokenFile?: string }): Promise<string> {
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new FleetError('usage.invalid', 'give --token or --token-file, not both');
  if (opts.tokenFile !== undefined) {
    try {
      return (await fs.promises.readFile(opts.tokenFile, 'utf8')).trim();
    } catch (e) {
      throw new FleetError('config.unreadable', `cannot read ${opts.tokenFile}: ${(e as Error).message}`);
    }
  }
  const token = opts.token ?? process.env.FLEET_ENROLL_TOKEN;
  if (token === undefined || token.trim() === '') throw new FleetError('usage.invalid', 'an enrolment token is needed: --token, --token-file or FLEET_ENROLL_TOKEN');
  return token.trim();
}

/** What `run` does with server commands until roles and inventory exist. */
function defaultHandlers(io: AgentIo): AgentHandlers {
  return {
    async reboot(ctx) {
      io.stderr(`fleet-agent: rebooting (${ctx.reason || 'asked by the server'})\n`);
      const child = spawn('systemctl', ['reboot'], { stdio: 'ignore', detached: true });
      child.on('error', (e) => io.stderr(`fleet-agent: cannot reboot: ${e.message}\n`));
      child.unref();
    },
  };
}

export function buildProgram(io: AgentIo, onExit: (code: number) => void): Command {
  const program = new Command('fleet-agent');
  program
    .description('fleet node agent: enrols with the fleet server, reports boot and inventory, applies configuration')
    .version(AGENT_VERSION)
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .exitOverride();

  program
    .command('enroll')
    .description('exchange a one-time token for this node\'s credential (key and certificate in the state dir)')
    .requiredOption('--server <host:port>', 'fleet server gRPC address (port default 50051)')
    .option('--token <token>', 'one-time enrolment token (or --token-file, or env FLEET_ENROLL_TOKEN)')
    .option('--token-file <path>', 'file holding the enrolment token')
    .requiredOption('--ca-fingerprint <sha256>', 'SHA-256 fingerprint of the fleet CA certificate (hex, colons optional)')
    .option('--state-dir <dir>', 'where the credential is kept', DEFAULT_STATE_DIR)
    .option('--attempts <n>', 'attempts before giving up when the server is unreachable', '10')
    .option('--max-delay <seconds>', 'longest wait between attempts', '30')
    .option('--timeout <seconds>', 'deadline of each attempt', '20')
    .option('--force', 'enrol again over an existing credential')
    .action(async (o: { server: string; token?: string; tokenFile?: string; caFingerprint: string; stateDir: string; attempts: string; maxDelay: string; timeout: string; force?: boolean }) => {
      const res = await enroll({
        server: o.server,
        token: await readToken(o),
        caFingerprint: o.caFingerprint,
        stateDir: o.stateDir,
        force: o.force === true,
        attempts: positiveInt('attempts', o.attempts, 10),
        backoff: { initialMs: 1000, maxMs: positiveInt('max-delay', o.maxDelay, 30) * 1000 },
        timeoutMs: positiveInt('timeout', o.timeout, 20) * 1000,
        log: (line) => io.stderr(`fleet-agent: ${line}\n`),
      });
      io.stdout(`enrolled as ${res.node}\n`);
      onExit(Exit.OK);
    });

  program
    .command('run')
    .description('run the agent: report boot, heartbeat, follow server commands (until SIGTERM)')
    .option('--state-dir <dir>', 'where the credential is kept', DEFAULT_STATE_DIR)
    .option('--heartbeat <seconds>', 'heartbeat interval', '60')
    .action(async (o: { stateDir: string; heartbeat: string }) => {
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        await runAgent({
          stateDir: o.stateDir,
          signal: ac.signal,
          heartbeatMs: positiveInt('heartbeat', o.heartbeat, 60) * 1000,
          handlers: defaultHandlers(io),
          log: (line) => io.stderr(`fleet-agent: ${line}\n`),
        });
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
      onExit(Exit.OK);
    });

  program
    .command('inventory')
    .description('collect and print this node\'s hardware inventory (not implemented yet)')
    .option('--json', 'JSON output')
    .action(() => {
      throw new FleetError('not_implemented', 'inventory collection is not implemented yet');
    });

  program
    .command('plan')
    .description('show what applying this node\'s configuration would change (not implemented yet)')
    .action(() => {
      throw new FleetError('not_implemented', 'configuration roles are not implemented yet');
    });

  return program;
}

/** Runs the agent CLI; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: AgentIo = processIo): Promise<number> {
  let code: number = Exit.OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    const fe = toFleetError(e);
    io.stderr(`fleet-agent: ${fe.message}\n`);
    return fe.exit;
  }
}

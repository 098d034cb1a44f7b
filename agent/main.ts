/**
 * `fleet-agent`: the node agent.
 *
 *   fleet-agent enroll --server HOST:PORT --token T --ca-fingerprint F [--state-dir DIR]
 *   fleet-agent run [--state-dir DIR] [--root DIR] [--once]
 *   fleet-agent inventory [--json]             (local, no server)
 *   fleet-agent plan [--root DIR] [--config FILE] (dry run of the roles)
 *
 * Exit codes: 0 ok, 1 failed, 2 usage or configuration error. Errors are one
 * line on stderr.
 */
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { Exit, FleetError, toFleetError } from '../common/errors.js';
import { loadCachedConfig, readConfigFile } from './cache.js';
import { enroll } from './enroll.js';
import { formatArgv, systemRunner, type Runner } from './exec.js';
import { collectInventory, parseProbeTimeout, retryTimeout, type ProbeTimeout } from './inventory/index.js';
import type { Inventory, InventorySection } from '../common/inventory/types.js';
import { makeRoleContext, rolesFor, runRoles } from './roles/index.js';
import type { RoleResult } from './roles/types.js';
import { runAgent, runCycle, type CycleResult } from './run.js';
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

const GiB = 1024 ** 3;
const gib = (b: number): string => `${+(b / GiB).toFixed(b >= 100 * GiB ? 0 : 1)} GiB`;

/** A few lines for people (`fleet-agent inventory` without --json). An unknown section reads "unknown (reason)". */
export function formatInventoryText(inv: Inventory): string {
  const why = new Map(inv.unknown.map((u) => [u.section, u.reason]));
  const or = (section: InventorySection, text: () => string): string => {
    const r = why.get(section);
    return r !== undefined ? `unknown (${r})` : text();
  };
  const memory = (): string => {
    const dimms = why.has('dimms') ? ', DIMMs unknown' : inv.memory.dimms.length ? ` in ${inv.memory.dimms.length} DIMMs` : '';
    return `${gib(inv.memory.totalBytes)}${dimms}`;
  };
  const rows: [string, string][] = [
    ['system', or('system', () => [inv.system.manufacturer, inv.system.model].filter((x) => x).join(' ') || '-')],
    ['serial', or('system', () => inv.system.serial || '-')],
    ['bios', or('bios', () => [inv.bios.vendor, inv.bios.version, inv.bios.date ? `(${inv.bios.date})` : '', inv.bios.uefi ? 'UEFI' : ''].filter((x) => x).join(' ') || '-')],
    ['cpus', or('cpus', () => `${inv.cpus.sockets}x ${inv.cpus.model || '?'}, ${inv.cpus.cores} cores, ${inv.cpus.threads} threads`)],
    ['memory', or('memory', memory)],
    ['disks', or('disks', () => inv.disks.map((d) => `${d.name} ${gib(d.sizeBytes)}${d.model ? ` ${d.model}` : ''}`).join(', ') || '-')],
    ['nics', or('nics', () => inv.nics.map((n) => `${n.name} ${n.mac}${n.speedMbps ? ` ${n.speedMbps}Mb/s` : ''}`).join(', ') || '-')],
    ['gpus', or('gpus', () => inv.gpus.map((g) => g.model).join(', ') || '-')],
    ['infiniband', or('infiniband', () => inv.infiniband.map((h) => `${h.name} ${h.ports.map((p) => `${p.port}:${p.state}`).join(' ')}`).join(', ') || '-')],
    ['os', or('os', () => `${inv.os.distro} ${inv.os.release} ${inv.os.kernel} ${inv.os.arch}`.trim())],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  if (inv.partial) lines.push(`partial: ${inv.unknown.map((u) => u.section).join(', ')} unknown`);
  for (const x of inv.warnings) lines.push(`warning: ${x}`);
  return lines.join('\n') + '\n';
}

/** What a dry run would change, role by role, with the file diffs. */
export function formatPlan(results: RoleResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`${r.role}: ${r.status}${r.message ? ` - ${r.message}` : ''}`);
    for (const c of r.changes) {
      const what = c.path ?? (c.command ? formatArgv(c.command[0] ?? '', c.command.slice(1)) : '');
      out.push(`  ${c.action} ${what}${c.summary && c.summary !== what ? ` (${c.summary})` : ''}`.trimEnd());
      if (c.diff) out.push(...c.diff.replace(/\n$/, '').split('\n').map((l) => `    ${l}`));
    }
  }
  if (results.length === 0) out.push('the profile declares no roles');
  return out.join('\n') + '\n';
}

function formatCycle(r: CycleResult): string {
  const lines = [
    `node ${r.node}: boot ${r.bootReported ? 'reported' : 'not reported'}, inventory ${r.inventoryReported ? 'reported' : 'not reported'}`,
    `config: ${r.config}${r.configVersion ? ` ${r.configVersion}` : ''}; apply ${r.applyReported ? 'reported' : 'not reported'}`,
    ...r.results.map((x) => `  ${x.role}: ${x.status}${x.message ? ` - ${x.message}` : ''}`),
    ...r.errors.map((e) => `error: ${e}`),
  ];
  return lines.join('\n') + '\n';
}

const PROBE_TIMEOUT_HELP = "each probe's budget (systeminformation 10 s, /sys walks 5 s, nvidia-smi 20 s) times N (e.g. 3x), or one limit for every probe (e.g. 30s)";

export interface ProgramOptions {
  /** Runner for roles and reboot (tests); default the real one. */
  runner?: Runner;
  /** Inventory collection (tests); default collectInventory(). */
  collectInventory?: (retry: number) => Promise<Inventory>;
}

export function buildProgram(io: AgentIo, onExit: (code: number) => void, popts: ProgramOptions = {}): Command {
  const runner = popts.runner ?? systemRunner;
  const collectWith = (timeout: ProbeTimeout | undefined) =>
    popts.collectInventory ?? ((retry: number) => collectInventory({ runner, timeout: retryTimeout(timeout, retry) }));
  const log = (line: string) => io.stderr(`fleet-agent: ${line}\n`);
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
        log,
      });
      io.stdout(`enrolled as ${res.node}\n`);
      onExit(Exit.OK);
    });

  program
    .command('run')
    .description('run the agent: report boot and inventory, apply the config (cached when the server is away), heartbeat, follow server commands (until SIGTERM)')
    .option('--state-dir <dir>', 'where the credential and the config cache are kept', DEFAULT_STATE_DIR)
    .option('--root <dir>', 'the system the roles configure', '/')
    .option('--heartbeat <seconds>', 'heartbeat interval', '60')
    .option('--once', 'one cycle (boot, inventory, config, roles, apply report), each call tried once, then exit')
    .option('--json', 'with --once: print the cycle as JSON')
    .option('--probe-timeout <Nx|duration>', PROBE_TIMEOUT_HELP)
    .action(async (o: { stateDir: string; root: string; heartbeat: string; once?: boolean; json?: boolean; probeTimeout?: string }) => {
      const heartbeatMs = positiveInt('heartbeat', o.heartbeat, 60) * 1000;
      const timeout = o.probeTimeout !== undefined ? parseProbeTimeout(o.probeTimeout) : undefined;
      const work = { root: o.root, runner, collectInventory: collectWith(timeout) };
      if (o.once) {
        const r = await runCycle({ stateDir: o.stateDir, work, log });
        io.stdout(o.json ? JSON.stringify(r, null, 2) + '\n' : formatCycle(r));
        onExit(r.errors.length > 0 || r.results.some((x) => x.status === 'failed') ? Exit.FAILED : Exit.OK);
        return;
      }
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        await runAgent({ stateDir: o.stateDir, signal: ac.signal, heartbeatMs, work, log });
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
      onExit(Exit.OK);
    });

  program
    .command('inventory')
    .description("collect and print this node's hardware inventory (local, no server)")
    .option('--json', 'JSON output')
    .option('--probe-timeout <Nx|duration>', PROBE_TIMEOUT_HELP)
    .action(async (o: { json?: boolean; probeTimeout?: string }) => {
      const timeout = o.probeTimeout !== undefined ? parseProbeTimeout(o.probeTimeout) : undefined;
      const inv = await collectWith(timeout)(0);
      io.stdout(o.json ? JSON.stringify(inv, null, 2) + '\n' : formatInventoryText(inv));
      onExit(Exit.OK);
    });

  program
    .command('plan')
    .description("dry run: what applying this node's configuration would change, role by role (the cached config, or --config FILE)")
    .option('--state-dir <dir>', 'where the config cache is kept', DEFAULT_STATE_DIR)
    .option('--config <file>', 'a config JSON file instead of the cache (the cache format, a GetConfig answer, or {roles, cluster})')
    .option('--root <dir>', 'the system to compare with', '/')
    .option('--json', 'JSON output')
    .action(async (o: { stateDir: string; config?: string; root: string; json?: boolean }) => {
      const cfg = o.config !== undefined ? await readConfigFile(o.config) : await loadCachedConfig(o.stateDir);
      if (!cfg) {
        throw new FleetError('config.unreadable', `no cached config in ${o.stateDir} (fleet-agent run caches it once the server answered); give --config FILE`);
      }
      const ctx = await makeRoleContext({ root: o.root, settings: cfg.settings, runner, log: () => {} });
      const results = await runRoles(rolesFor(cfg.settings.roles), ctx, { dryRun: true });
      io.stdout(o.json ? JSON.stringify({ version: cfg.version, profile: cfg.profile, root: o.root, results }, null, 2) + '\n' : formatPlan(results));
      onExit(results.some((r) => r.status === 'failed') ? Exit.FAILED : Exit.OK);
    });

  return program;
}

/** Runs the agent CLI; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: AgentIo = processIo, popts: ProgramOptions = {}): Promise<number> {
  let code: number = Exit.OK;
  const program = buildProgram(
    io,
    (c) => {
      code = c;
    },
    popts,
  );
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

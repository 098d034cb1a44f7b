/**
 * `fleet`: the command line. A thin client of the REST API, plus the
 * offline commands (`nodeset`) and `fleet server` itself.
 *
 * Exit codes: 0 ok, 1 some targets failed, 2 usage or configuration error.
 * Errors are one clear line on stderr; `--debug` adds the stack.
 *
 * Start-up is kept short: this file and register.ts define every command's
 * options and help and import only commander and small modules; each action
 * imports its command module when it runs (load.ts). Import nothing else here.
 */
import { Command, CommanderError, Option } from 'commander';
import { configIssuesOf, formatConfigIssues } from '../config/issues.js';
import { Exit, toFleetError } from '../../common/errors.js';
import { processIo, type CliIo } from './io.js';
import type { GlobalFlags } from './settings.js';
import { DEFAULT_EVENT_COUNT, MAX_EVENT_COUNT } from './counts.js';
import { COMPLETION_SHELLS, cmdCompletion } from './completion.js';
import * as load from './load.js';
import {
  registerAdoptCommand,
  registerBootenvCommands,
  registerDisklessCommands,
  registerDiscoverBmcCommand,
  registerImageCommands,
  registerLabCommands,
  registerLifecycleCommands,
  registerRepoCommands,
  registerSlurmCommands,
  registerUserCommands,
} from './register.js';
import type { ApplyFlags } from './commands/apply.js';
import type { DiscoverFlags } from './commands/discover.js';
import type { DoctorFlags } from './commands/doctor.js';
import type { EventsFlags } from './commands/events.js';
import type { ExportFlags } from './commands/netboot.js';
import type { ImportCsvFlags, ImportGroupsFlags } from './commands/import.js';

export function buildProgram(io: CliIo, onExit: (code: number) => void): Command {
  const program = new Command('fleet');
  program
    .description('fleet: bare-metal fleet lifecycle manager (server and CLI)')
    .version('0.1.0')
    .option('--url <url>', 'server URL (env FLEET_URL; default http://127.0.0.1:8080)')
    .option('--token <token>', 'API token (prefer FLEET_TOKEN or --token-file: argv is visible to other users)')
    .option('--token-file <path>', 'file holding the API token (env FLEET_TOKEN_FILE)')
    .option('--data <dir>', 'server data dir, to find its api.token when on the same host (env FLEET_DATA)')
    .option('--ca-file <path>', 'CA certificate an https:// server must chain to (env FLEET_CA_FILE; default: the local data dir\'s fleet CA, else the system CAs)')
    .option('--debug', 'show stack traces on errors')
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
    })
    .exitOverride()
    .showSuggestionAfterError(true);

  const globals = (): GlobalFlags => program.opts<GlobalFlags>();
  const run = (p: Promise<number>): Promise<void> => p.then(onExit);

  program
    .command('server')
    .description('run the fleet server: admin API, boot endpoints, gRPC for agents, DHCP/TFTP via dnsmasq, the lifecycle')
    .option('-c, --config <file>', 'fleet.yaml describing the cluster (applied at start); as a systemd service default $CONFIGURATION_DIRECTORY/fleet.yaml (/etc/fleet)')
    .option('--data <dir>', 'data dir: SQLite file, secret key, API token (env FLEET_DATA; default fleet.yaml server.data_dir, else $STATE_DIRECTORY (/var/lib/fleet) as a systemd service, else ./fleet-data)', undefined)
    .option('--listen <addr:port>', 'admin API address (default from fleet.yaml server.listen, else 127.0.0.1:8080)')
    .option('--boot-listen <addr:port>', 'boot endpoints address (default from fleet.yaml netboot.http.listen, else the management address, port 8080)')
    .option('--grpc-listen <addr:port>', 'gRPC agent service address (default from fleet.yaml server.grpc_listen, else the boot address, port 50051)')
    .option('--store <url>', 'PostgreSQL database postgres://USER@HOST:PORT/DB instead of DATA/fleet.db (default fleet.yaml store.url; password from store.password_file/password_env or PGPASSWORD, never in the URL)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
    .action((opts: { config?: string; data?: string; listen?: string; bootListen?: string; grpcListen?: string; store?: string; logLevel: string }) =>
      run(load.server().then((m) => m.cmdServer({ ...opts, data: opts.data ?? globals().data }, io))),
    );

  program
    .command('doctor')
    .description('check this host can serve the cluster: boot endpoints, dnsmasq, iPXE, DHCP interface, OS trees/images/boot environment, agent bundle, clock, disk, BMC routes')
    .requiredOption('-c, --config <file>', 'fleet.yaml the server runs with')
    .option('--data <dir>', 'data dir (default: as fleet server picks it)')
    .option('--boot-listen <addr:port>', 'as fleet server --boot-listen')
    .option('--json', 'JSON output: {findings: [{id, status, message, fix}], summary}')
    .action((opts: DoctorFlags) => run(load.doctor().then((m) => m.cmdDoctor({ ...opts, ...(opts.data ?? globals().data ? { data: opts.data ?? globals().data } : {}) }, io))));

  program
    .command('apply')
    .description('import the cluster declared in fleet.yaml into the server (idempotent); prints the diff')
    .requiredOption('-f, --file <file>', 'fleet.yaml')
    .option('--dry-run', 'only print what would change')
    .option('--prune', 'also remove nodes gone from the file that are pets or mid-operation')
    .option('-y, --yes', 'do not ask before removing nodes')
    .option('--json', 'print the plan as JSON')
    .action((opts: ApplyFlags) => run(load.apply().then((m) => m.cmdApply(globals(), opts, io))));

  program
    .command('nodes')
    .description('list nodes (name, profile, ip, bmc, state)')
    .argument('[nodeset]', 'clustershell nodeset, e.g. valkyrie[01-02]')
    .option('--json', 'JSON output')
    .option('--names', 'only the node names, one per line (for scripts and shell completion)')
    .action((nodeset: string | undefined, opts: { json?: boolean; names?: boolean }) => run(load.api().then((m) => m.cmdNodes(globals(), nodeset, opts, io))));

  program
    .command('show')
    .description('show one node in detail')
    .argument('<node>', 'node name')
    .option('--json', 'JSON output')
    .action((node: string, opts: { json?: boolean }) => run(load.api().then((m) => m.cmdShow(globals(), node, opts, io))));

  program
    .command('events')
    .description('the event log: who asked for what and what happened; the newest events, oldest first (like tail)')
    .argument('[nodeset]', 'only events of these nodes')
    .option('-n, --limit <n>', `show the newest N events (default ${DEFAULT_EVENT_COUNT}; with --since up to ${MAX_EVENT_COUNT})`)
    .option('--since <time>', 'only events since an ISO time or a duration ago like 10m, 2h, 7d')
    .option('-f, --follow', 'then keep printing new events until Ctrl-C')
    .option('--json', 'JSON output (with --follow: one event per line)')
    .action((nodeset: string | undefined, opts: EventsFlags) => run(load.events().then((m) => m.cmdEvents(globals(), nodeset, opts, io))));

  program
    .command('power')
    .description('power through the BMCs: on|off|soft|cycle|reset|status')
    .argument('<op>', 'on, off (hard), soft (ACPI shutdown), cycle, reset, status')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--stagger <N/interval>', 'at most N power actions per interval, e.g. 10/2s (PDU inrush)')
    .option('--timeout <duration>', 'per-BMC timeout: 10s, 1500ms, 2m (a bare number is seconds)')
    .option('--json', 'JSON output')
    .action((op: string, nodeset: string, opts: { json?: boolean; stagger?: string; timeout?: string }) => run(load.bmc().then((m) => m.cmdPower(globals(), op, nodeset, opts, io))));

  program
    .command('bootdev')
    .description('set the boot device through the BMCs (next boot only unless --persistent)')
    .argument('<device>', 'pxe (or network, as ipmitool says), disk, cdrom, bios')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--persistent', 'keep it for every boot')
    .option('--uefi', 'UEFI boot mode')
    .option('--legacy', 'legacy BIOS boot mode')
    .option('--json', 'JSON output')
    .action((device: string, nodeset: string, opts: { json?: boolean; persistent?: boolean; uefi?: boolean; legacy?: boolean }) =>
      run(load.bmc().then((m) => m.cmdBootdev(globals(), device, nodeset, opts, io))),
    );

  const bmc = program.command('bmc').description('BMC information and accounts');
  bmc
    .command('info')
    .description('identity through the BMC: manufacturer, model, serial, UUID, firmware, MACs')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--json', 'JSON output')
    .action((nodeset: string, opts: { json?: boolean }) => run(load.bmc().then((m) => m.cmdBmcInfo(globals(), nodeset, opts, io))));
  bmc
    .command('rotate')
    .description('new BMC account per node (fleet-a/fleet-b, generated password, never shown), verified out of band before it is recorded; then the old account is disabled. A failure keeps the old credential')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--password-length <n>', '20 (IPMI 2.0 maximum, default) or 16 (BMCs that authenticate only 16 bytes)')
    .option('--timeout <duration>', 'per node, everything included (default 60s)')
    .option('--json', 'JSON output')
    .action((nodeset: string, opts: { json?: boolean; passwordLength?: string; timeout?: string }) => run(load.bmc().then((m) => m.cmdBmcRotate(globals(), nodeset, opts, io))));

  program
    .command('console')
    .description("the node's serial console through its BMC (IPMI SOL, via the server); ~. after Enter detaches, ~? for help")
    .argument('<node>', 'node name')
    .option('--force', 'take the console over from whoever holds it (they are detached and told)')
    .action((node: string, opts: { force?: boolean }) => run(load.serialConsole().then((m) => m.cmdConsole(globals(), node, opts, io))));

  registerLifecycleCommands(program, { io, globals, run });
  registerAdoptCommand(program, { io, globals, run });
  registerLabCommands(program, { io, run });
  registerImageCommands(program, { io, globals, run });
  registerBootenvCommands(program, { io, globals, run });
  registerDisklessCommands(program, { io, globals, run });
  registerRepoCommands(program, { io, globals, run });
  registerSlurmCommands(program, { io, globals, run });
  registerUserCommands(program, { io, globals, run });

  const inventory = program
    .command('inventory')
    .description('hardware inventory reported by the agents: model, serial, CPUs, memory, disks, NICs, GPUs, IB, BIOS')
    .argument('[nodeset]', 'clustershell nodeset (default: every node)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv', 'html']).default('table'))
    .action((nodeset: string | undefined, opts: { format: string }) => run(load.inventory().then((m) => m.cmdInventory(globals(), nodeset, opts, io))));
  inventory
    .command('diff')
    .description('hardware changes between the last two inventory reports of a node (e.g. a DIMM gone)')
    .argument('<node>', 'node name')
    .option('--json', 'JSON output')
    .action((node: string, opts: { json?: boolean }) => run(load.inventory().then((m) => m.cmdInventoryDiff(globals(), node, opts, io))));
  inventory
    .command('reconcile')
    .description("compare each node's agent inventory (UUID, serial, MACs) with what its BMC says; a mismatch (a mis-cabled BMC) flags the node bmc-mismatch, exit 1")
    .argument('<nodeset>', 'clustershell nodeset')
    // --format is also the parent's option (commander hands it to `inventory` wherever it is written): either one counts.
    .addOption(new Option('--format <format>', 'output format: table (default) or json').choices(['table', 'json']))
    .option('--timeout <seconds>', 'per-BMC timeout')
    .action((nodeset: string, opts: { format?: string; timeout?: string }) =>
      run(load.inventory().then((m) => m.cmdInventoryReconcile(globals(), nodeset, { ...opts, format: opts.format ?? inventory.opts<{ format?: string }>().format }, io))),
    );

  program
    .command('render')
    .description('print exactly what a node would be served now (tokens replaced by placeholders)')
    .argument('<what>', 'ipxe or kickstart')
    .argument('<node>', 'node name')
    .action((what: string, node: string) => run(load.netboot().then((m) => m.cmdRender(globals(), what, node, io))));

  program
    .command('export')
    .description('the cluster for other tools: hosts, dnsmasq, ansible-inventory, clustershell-groups')
    .argument('<format>', 'hosts, dnsmasq, ansible-inventory or clustershell-groups')
    .option('--list', "ansible-inventory: the JSON of Ansible's dynamic inventory script protocol (groups, _meta.hostvars)")
    .option('--dynamic', 'ansible-inventory: the same as --list')
    .option('--host <node>', "ansible-inventory: one node's variables as JSON (the protocol's --host)")
    .action((format: string, opts: ExportFlags) => run(load.netboot().then((m) => m.cmdExport(globals(), format, opts, io))));

  const imp = program.command('import').description("nodes a site already lists, as a fleet.yaml fragment to merge (offline; nothing is changed)");
  imp
    .command('csv')
    .description('a CSV node list (header row: name, mac, ip, bmc; optional profile, bmc_port, bmc_protocol, bmc_credentials) to a fleet.yaml nodes: fragment on stdout')
    .argument('<file>', 'the CSV file')
    .option('--profile <profile>', 'profile of rows without a profile column value')
    .option('--credentials <name>', 'BMC credential set of rows with a BMC and no bmc_credentials value')
    .option('--json', 'the checked nodes as JSON instead')
    .action((file: string, opts: ImportCsvFlags) => run(load.importer().then((m) => m.cmdImportCsv(file, opts, io))));
  imp
    .command('groups')
    .description("a clustershell groups file (groups.d YAML, or the flat 'group: nodeset' file) to a fleet.yaml nodes: skeleton, one key per group mapped to a profile")
    .argument('<file>', 'the groups file')
    .option('--profile <group=profile>', 'the nodes of this group get this profile (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--source <name>', 'the group source to read (default: the only one)')
    .option('--json', 'every group of every source, resolved and folded, as JSON instead')
    .action((file: string, opts: ImportGroupsFlags) => run(load.importer().then((m) => m.cmdImportGroups(file, opts, io))));

  program
    .command('discovered')
    .description('machines seen on the network (DHCP, PXE) that no node declares')
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }) => run(load.netboot().then((m) => m.cmdDiscovered(globals(), opts, io))));

  program
    .command('enroll')
    .description('turn a discovered machine into a node (not written to fleet.yaml: add it there too)')
    .argument('<mac>', 'MAC of the discovered machine')
    .requiredOption('--name <name>', 'node name')
    .option('--profile <profile>', 'profile (default: the only one, if there is one)')
    .action((mac: string, opts: { name: string; profile?: string }) => run(load.netboot().then((m) => m.cmdEnroll(globals(), mac, opts, io))));

  const discover = program
    .command('discover')
    .description('naming rules for discovered machines (fleet.yaml discovery:): --plan shows what each rule gives, --accept commits, --reject sets aside, --unreject takes back; `discover bmc` scans for BMCs')
    .argument('[machines...]', 'MACs of discovered machines (--accept: default every planned machine; --reject, --unreject: required)')
    .option('--plan', 'show the names, IPs and BMC addresses the rules would give, and why the other machines get none (the default)')
    .option('--accept', 'make planned machines their nodes (kept by apply); on_accept install starts the reinstall')
    .option('--reject', 'set machines aside: plans skip them and list them as rejected')
    .option('--unreject', 'take rejected machines back: plans consider them again')
    .option('-y, --yes', 'with --accept: do not ask before machines install')
    .option('--force', 'with --accept: install even when a check the profile depends on fails (fleet doctor)')
    .option('--stagger <N/INTERVAL>', 'with --accept: at most N installs start per interval, e.g. 10/30s (PDU inrush)')
    .option('--json', 'JSON output')
    .action((machines: string[], opts: DiscoverFlags) => run(load.discover().then((m) => m.cmdDiscover(globals(), machines, opts, io))));
  registerDiscoverBmcCommand(discover, { io, globals, run });

  program
    .command('nodeset')
    .description('clustershell-compatible nodeset tool: -e expand, -f fold, -c count, -l list groups (@group from the server)')
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[args...]', 'options and nodesets, as clustershell nodeset takes them')
    .action((args: string[]) => run(load.nodeset().then((m) => m.cmdNodeset(globals(), args, io))));

  program
    .command('completion')
    .description(`print the shell completion script: ${COMPLETION_SHELLS.join(' or ')} (e.g. source <(fleet completion bash))`)
    .argument('<shell>', COMPLETION_SHELLS.join(' or '))
    .action((shell: string) => run((async () => cmdCompletion(shell, program, io))()));

  return program;
}

function printError(e: unknown, io: CliIo, debug: boolean): number {
  const fe = toFleetError(e);
  io.stderr(`fleet: ${fe.message}\n`);
  const issues = configIssuesOf(fe);
  const errors = (fe.details as { errors?: unknown; source?: unknown } | undefined)?.errors;
  if (issues.length > 0) {
    // fleet.yaml errors, compiler style: one line each with file:line:column and the YAML path.
    const source = (fe.details as { source?: unknown }).source;
    io.stderr(formatConfigIssues(typeof source === 'string' ? source : 'fleet.yaml', issues) + '\n');
  } else if (Array.isArray(errors)) {
    for (const x of errors) io.stderr(`  ${typeof x === 'string' ? x : JSON.stringify(x)}\n`);
  }
  if (debug && e instanceof Error && e.stack) io.stderr(e.stack + '\n');
  return fe.exit;
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  let code: number = Exit.OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; every other commander error is a usage error, already printed.
      return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    }
    return printError(e, io, debug);
  }
}

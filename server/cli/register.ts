/**
 * The command groups that main.ts adds to the program: their options and help
 * only. Like main.ts, this file loads nothing heavy at start: each action
 * imports its command module (./load.ts) when it runs, so that `fleet nodeset`
 * or `fleet nodes` does not load the server, the lab or the image builder.
 * Only `import type` from the command modules here.
 */
import type { Command } from 'commander';
import { DEFAULT_LAB_DIR } from '../lab/defaults.js';
import { SCAN_DEFAULTS, SCAN_LIMITS } from '../discovery/scan-input.js';
import type { CliIo } from './io.js';
import * as load from './load.js';
import type { GlobalFlags } from './settings.js';
import type { DiscoverBmcFlags } from './commands/discover-bmc.js';
import type { ImageBuildFlags } from './commands/images.js';
import type { LabUpFlags } from './commands/lab.js';
import type { ReinstallFlags } from './commands/lifecycle.js';
import type { TimelineFlags } from './commands/timeline.js';

/** What a command's action needs: where to write, the global flags, and where its exit code goes. */
export interface CommandCtx {
  io: CliIo;
  globals: () => GlobalFlags;
  run: (p: Promise<number>) => Promise<void>;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerImageCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const image = program.command('image').description('OS images: build (mmdebstrap), import (rootfs tarball, OCI archive), list, show, rm (docs/images.md)');
  image
    .command('build')
    .description("build a Debian image from this machine's apt sources (systemd, kernel, initramfs, openssh-server, the fleet agent); root, minutes")
    .argument('<name>', 'image name')
    .requiredOption('--from <distro:suite>', 'what to build, e.g. debian:bookworm')
    .option('--include <packages>', 'more packages (comma-separated; repeatable)', collect)
    .option('--arch <arch>', 'Debian architecture (default amd64)')
    .option('--agent <dir>', 'agent bundle directory (fleet-agent, fleet-agent.service); default DATA/www/agent, built when absent')
    .option('--force', 'build again even if an image with the same inputs exists')
    .option('--json', 'print the manifest as JSON')
    .action((name: string, opts: ImageBuildFlags) => run(load.images().then((m) => m.cmdImageBuild(globals(), name, opts, io))));
  image
    .command('import')
    .description('import a root filesystem tarball (.tar, .tar.gz, .tar.zst) or an OCI image archive (oci-archive, docker save); root')
    .argument('<name>', 'image name')
    .argument('<file>', 'the archive')
    .option('--arch <arch>', 'the image to take from a multi-architecture OCI index')
    .option('--force', 'import again even if this file was imported before')
    .option('--json', 'print the manifest as JSON')
    .action((name: string, file: string, opts: { arch?: string; force?: boolean; json?: boolean }) => run(load.images().then((m) => m.cmdImageImport(globals(), name, file, opts, io))));
  image
    .command('list')
    .description('images of this data dir')
    .option('--json', 'JSON output (manifests without their package lists)')
    .action((opts: { json?: boolean }) => run(load.images().then((m) => m.cmdImageList(globals(), opts, io))));
  image
    .command('show')
    .description("one image's manifest: digest, origin, kernel, package count, artefacts with sizes and sha256")
    .argument('<name>', 'image name')
    .option('--packages', 'also list the packages')
    .option('--json', 'the whole manifest as JSON')
    .action((name: string, opts: { json?: boolean; packages?: boolean }) => run(load.images().then((m) => m.cmdImageShow(globals(), name, opts, io))));
  image
    .command('rm')
    .description('remove an image (refused while a profile names it, unless --force)')
    .argument('<name>', 'image name')
    .option('--force', 'remove it even if a profile names it (and without reading the store)')
    .action((name: string, opts: { force?: boolean }) => run(load.images().then((m) => m.cmdImageRm(globals(), name, opts, io))));
}

export function registerDisklessCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const dl = program.command('diskless').description("diskless nodes' own /var directories in this data dir, served over NFS by fleet server (docs/diskless.md)");
  dl.command('list')
    .description("each diskless node's /var directory: the image it was made from, when, its size, whether fleet's NFS server exports it")
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }) => run(load.diskless().then((m) => m.cmdDisklessList(globals(), opts, io))));
  dl.command('purge')
    .description("delete the /var directories of nodes no longer in fleet.yaml (refused for a node still exported)")
    .argument('<nodeset>', 'nodes, e.g. valkyrie[01-04]')
    .option('--yes', 'really delete (their contents are gone for good)')
    .action((nodeset: string, opts: { yes?: boolean }) => run(load.diskless().then((m) => m.cmdDisklessPurge(globals(), nodeset, opts, io))));
}

export function registerBootenvCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const be = program.command('bootenv').description('the fleet boot environment: the in-RAM Linux nodes netboot into to be installed (docs/bootenv.md)');
  be.command('build')
    .description("build it from this machine's kernel and Debian packages (reused while its inputs are unchanged)")
    .option('--force', 'build again even if a build with the same inputs exists')
    .option('--json', 'print the manifest as JSON')
    .action((opts: { force?: boolean; json?: boolean }) => run(load.bootenv().then((m) => m.cmdBootenvBuild(globals(), opts, io))));
  be.command('show')
    .description('the current build: kernel, sizes, modules, tools')
    .option('--json', 'the manifest as JSON')
    .action((opts: { json?: boolean }) => run(load.bootenv().then((m) => m.cmdBootenvShow(globals(), opts, io))));
}

export function registerRepoCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const repo = program.command('repo').description('the local apt repository the server serves at /repo/debian/ (docs/repo.md)');
  const suiteHelp = "suite (dists/ directory; default this machine's Debian code name)";
  repo
    .command('add')
    .description('add .deb files (each checked: a real Debian package for amd64 or all) and publish the suite, signed')
    .argument('<files...>', '.deb files')
    .option('--suite <suite>', suiteHelp)
    .option('--json', 'JSON output')
    .action((files: string[], opts: { suite?: string; json?: boolean }) => run(load.repo().then((m) => m.cmdRepoAdd(globals(), files, opts, io))));
  repo
    .command('fetch')
    .description("download packages and their dependencies from this machine's apt sources (private apt state) and add them")
    .argument('<packages...>', 'Debian package names')
    .option('--suite <suite>', `${suiteHelp}; the host's sources are rewritten for it, as fleet image build does`)
    .option('--json', 'JSON output')
    .action((packages: string[], opts: { suite?: string; json?: boolean }) => run(load.repo().then((m) => m.cmdRepoFetch(globals(), packages, opts, io))));
  repo
    .command('list')
    .description('the packages of every suite (or one)')
    .option('--suite <suite>', 'only this suite')
    .option('--json', 'JSON output')
    .action((opts: { suite?: string; json?: boolean }) => run(load.repo().then((m) => m.cmdRepoList(globals(), opts, io))));
  repo
    .command('remove')
    .alias('rm')
    .description('remove packages (by name) from a suite and publish it; pool files no suite uses are deleted')
    .argument('<packages...>', 'package names')
    .option('--suite <suite>', suiteHelp)
    .action((names: string[], opts: { suite?: string }) => run(load.repo().then((m) => m.cmdRepoRemove(globals(), names, opts, io))));
  repo
    .command('key')
    .description('print the repository public key (ASCII-armoured; nodes get it from the cluster facts or /repo/debian/fleet-archive-keyring.gpg)')
    .action(() => run(load.repo().then((m) => m.cmdRepoKey(globals(), io))));
}

export function registerSlurmCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const slurm = program.command('slurm').description("the cluster's Slurm, derived by fleet (docs/slurm.md)");
  slurm
    .command('rotate-key')
    .description('replace the munge key; every slurm node writes the new one and restarts munge and its daemon at its next heartbeat')
    .option('--yes', 'yes: nodes cannot authenticate to each other until all have the new key')
    .option('--json', 'JSON output')
    .action((opts: { yes?: boolean; json?: boolean }) => run(load.slurm().then((m) => m.cmdSlurmRotateKey(globals(), opts, io))));
}

export function registerLabCommands(program: Command, ctx: Omit<CommandCtx, 'globals'>): void {
  const { io, run } = ctx;
  const lab = program.command('lab').description('the lab: QEMU VMs with IPMI BMCs in a network namespace, served by a real fleet server (root; docs/lab.md)');
  const dirOpt = ['--dir <dir>', `lab directory (default ./${DEFAULT_LAB_DIR})`] as const;
  lab
    .command('up')
    .description('create the lab (namespace, VMs powered off, BMCs) and start fleet server inside it')
    .option('--nodes <n>', 'number of compute VMs (valkyrieNN), 1-32', '2')
    .option('--no-storage', 'without the storage node thor (and so without NFS mounts and Slurm on the compute VMs)')
    .option('--racked <n>', 'also rack N machines no node names (serial LAB-RACK-NN, factory BMC reachable in band): lab.yaml\'s discovery rule (policy auto) names them valkyrieNN after the compute VMs; powered on once the server is up', '0')
    .option('--unplanned <n>', 'also rack N machines that no rule matches (they stay discovered)', '0')
    .option(...dirOpt)
    .option('--image-cache <datadir>', 'build (or reuse) the lab image in this fleet data dir and copy it into the lab\'s (default: build in DIR/data)')
    .action((opts: LabUpFlags) => run(load.lab().then((m) => m.cmdLabUp(opts, io))));
  lab
    .command('down')
    .description('stop the lab\'s fleet server, VMs and BMCs, delete its namespace')
    .option(...dirOpt)
    .option('--purge', 'also delete the lab directory')
    .action((opts: { dir?: string; purge?: boolean }) => run(load.lab().then((m) => m.cmdLabDown(opts, io))));
  lab
    .command('status')
    .description('the lab\'s VMs (power, next boot device), BMCs and fleet server')
    .option(...dirOpt)
    .option('--json', 'JSON output')
    .action((opts: { dir?: string; json?: boolean }) => run(load.lab().then((m) => m.cmdLabStatus(opts, io))));
  lab
    .command('exec')
    .description('run the fleet CLI inside the lab against its server: fleet lab exec -- status')
    .option(...dirOpt)
    .argument('[args...]', 'fleet arguments, after --')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action((args: string[], opts: { dir?: string }) => run(load.lab().then((m) => m.cmdLabExec(opts, args, io))));
  lab
    .command('ssh')
    .description('ssh to a lab VM as root with the lab\'s key (it must be installed): fleet lab ssh valkyrie01 [-- COMMAND]')
    .option(...dirOpt)
    .argument('<node>', 'the VM, e.g. valkyrie01')
    .argument('[command...]', 'a command to run instead of a shell, after --')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action((node: string, args: string[], opts: { dir?: string }) => run(load.lab().then((m) => m.cmdLabSsh(opts, node, args, io))));
  lab
    .command('demo')
    .description('lab up (unless up) and reinstall every lab VM, watching; the lab stays up (npm run lab)')
    .option('--nodes <n>', 'number of compute VMs (valkyrieNN), 1-32', '2')
    .option('--no-storage', 'without the storage node thor')
    .option(...dirOpt)
    .option('--image-cache <datadir>', 'build (or reuse) the lab image in this fleet data dir and copy it into the lab\'s (default: build in DIR/data)')
    .action((opts: LabUpFlags) => run(load.lab().then((m) => m.cmdLabDemo(opts, io))));
}

/**
 * Adds the four commands to the program (cli/main.ts):
 *   registerLifecycleCommands(program, { io, globals, run });
 */
export function registerLifecycleCommands(
  program: Command,
  ctx: CommandCtx,
): void {
  const { io, globals, run } = ctx;
  program
    .command('reinstall')
    .description('reinstall nodes (erases their disks): one-time PXE boot, install, boot the disk, configure')
    .argument('<nodeset>', 'clustershell nodeset, e.g. valkyrie[01-02]')
    .option('--profile <name>', 'install this profile (changes the node\'s profile; update fleet.yaml too)')
    .option('--stagger <N/SECONDS>', 'at most N nodes power-cycle per interval, e.g. 10/30 or 10/30s (PDU inrush)')
    .option('--watch', 'follow the nodes until they are ready or failed')
    .option('--timeout <duration>', 'with --watch: stop watching after this long (e.g. 2h)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--force', 'also reinstall pets, and reinstall even when a check the profile depends on fails (fleet doctor)')
    .option('--json', 'JSON output')
    .action((nodeset: string, opts: ReinstallFlags) => run(load.lifecycle().then((m) => m.cmdReinstall(globals(), nodeset, opts, io))));

  program
    .command('status')
    .description('lifecycle status: state, time in state, next timeout, last event, failure reason, flags')
    .argument('[nodeset]', 'clustershell nodeset (default: every node)')
    .option('--json', 'JSON output')
    .action((nodeset: string | undefined, opts: { json?: boolean }) => run(load.lifecycle().then((m) => m.cmdStatus(globals(), nodeset, opts, io))));

  program
    .command('watch')
    .description('follow nodes live until each is ready or failed (plain event lines when not on a terminal)')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--timeout <duration>', 'stop watching after this long (e.g. 2h)')
    .option('--json', 'one JSON event per line')
    .action((nodeset: string, opts: { timeout?: string; json?: boolean }) => run(load.lifecycle().then((m) => m.cmdWatch(globals(), nodeset, opts, io))));

  program
    .command('cancel')
    .description('cancel the lifecycle of nodes: back to enrolled, disarmed, boot device disk')
    .argument('<nodeset>', 'clustershell nodeset')
    .option('--json', 'JSON output')
    .action((nodeset: string, opts: { json?: boolean }) => run(load.lifecycle().then((m) => m.cmdCancel(globals(), nodeset, opts, io))));

  program
    .command('timeline')
    .description("the reinstall timeline as an SVG or PNG file: one row per node, its states as coloured spans, failures marked (the dashboard's /ui/timeline)")
    .argument('[nodeset]', 'clustershell nodeset or @group (default: every node with a state change in the window)')
    .option('--since <when>', 'fit (default: the span of the last 24 h of state changes), a duration back (2h, 7d) or an ISO time')
    .option('--until <when>', 'a duration back or an ISO time (default: now)')
    .option('-o, --output <file>', 'FILE.svg, or FILE.png (drawn by rsvg-convert, librsvg2-bin); - for SVG on stdout')
    .action((nodeset: string | undefined, opts: TimelineFlags) => run(load.timeline().then((m) => m.cmdTimeline(globals(), nodeset, opts, io))));
}

/** Adds `fleet adopt` (cli/main.ts). */
export function registerAdoptCommand(program: Command, ctx: CommandCtx): void {
  program
    .command('adopt')
    .description('adopt an installed machine (e.g. bmc: none) as NODE: prints one line to run as root on it (fetches, checks and enrols the agent)')
    .argument('<node>', 'the node name the machine becomes')
    .option('--json', 'JSON output (the line, its expiry, the digests)')
    .action((node: string, opts: { json?: boolean }) => ctx.run(load.adopt().then((m) => m.cmdAdopt(ctx.globals(), node, opts, ctx.io))));
}

export function registerDiscoverBmcCommand(discover: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  discover
    .command('bmc')
    .description('scan a subnet for BMCs (IPMI: RMCP ping and Get Channel Auth Caps; Redfish: the anonymous service root) and record them; no credentials are used')
    .option('--subnet <cidr>', 'IPv4 subnet, e.g. 10.10.100.0/24 (at most a /16 unless --force), or one address')
    .option('--protocol <protocol>', `ipmi, redfish or both (default ${SCAN_DEFAULTS.protocol})`)
    .option('--port <n>', `the port of the one --protocol given (default ${SCAN_DEFAULTS.ipmiPort} for ipmi, ${SCAN_DEFAULTS.redfishPort} for redfish)`)
    .option('--ipmi-port <n>', `RMCP UDP port (default ${SCAN_DEFAULTS.ipmiPort})`)
    .option('--redfish-port <n>', `HTTPS TCP port (default ${SCAN_DEFAULTS.redfishPort})`)
    .option('--concurrency <n>', `addresses probed at a time (default ${SCAN_DEFAULTS.concurrency}, at most ${SCAN_LIMITS.maxConcurrency})`)
    .option('--timeout <duration>', `per address and protocol: 3s, 500ms (default ${SCAN_DEFAULTS.timeoutMs / 1000}s; IPMI is retried ${SCAN_DEFAULTS.retries} times within it)`)
    .option('--force', 'scan more than a /16 (up to a /12)')
    .option('--list', 'show the BMCs found so far instead of scanning')
    .option('--json', 'JSON output')
    // `fleet discover` has --json and --force too: commander gives them to the parent wherever they stand.
    .action((opts: DiscoverBmcFlags, cmd: Command) => {
      const parent = (cmd.parent?.opts() ?? {}) as { json?: boolean; force?: boolean };
      return run(load.discoverBmc().then((m) => m.cmdDiscoverBmc(globals(), { ...opts, ...(parent.json ? { json: true } : {}), ...(parent.force ? { force: true } : {}) }, io)));
    });
}

export function registerUserCommands(program: Command, ctx: CommandCtx): void {
  const { io, globals, run } = ctx;
  const roles = 'read-only (GETs, the event stream), operator (+ power, bootdev, reinstall, cancel), admin (+ apply, discovery, users)';
  const user = program.command('user').description('API users, their roles and tokens (admin; docs/operations.md)');
  user
    .command('add')
    .description('add a user; prints its token once, alone on stdout')
    .argument('<name>', 'user name (a-z, 0-9, . _ -)')
    .requiredOption('--role <role>', roles)
    .option('--expires <when>', 'the token expires: a duration (30m, 12h, 90d, 4w) or an ISO date; default never')
    .option('--json', 'JSON output (holds the token)')
    .action((name: string, opts: { role?: string; expires?: string; json?: boolean }) => run(load.users().then((m) => m.cmdUserAdd(globals(), name, opts, io))));
  user
    .command('list')
    .alias('ls')
    .description('users, roles, state, token ids and last use (never a token)')
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }) => run(load.users().then((m) => m.cmdUserList(globals(), opts, io))));
  user
    .command('rm')
    .alias('remove')
    .description('remove a user and its tokens (never the last enabled admin)')
    .argument('<name>', 'user name')
    .action((name: string) => run(load.users().then((m) => m.cmdUserRm(globals(), name, io))));
  user
    .command('token')
    .description('issue a new token to a user; prints it once, alone on stdout')
    .argument('<name>', 'user name')
    .option('--revoke-others', "revoke the user's other tokens")
    .option('--expires <when>', 'the token expires: a duration (30m, 12h, 90d, 4w) or an ISO date; default never')
    .option('--json', 'JSON output (holds the token)')
    .action((name: string, opts: { revokeOthers?: boolean; expires?: string; json?: boolean }) => run(load.users().then((m) => m.cmdUserToken(globals(), name, opts, io))));
  user
    .command('disable')
    .description("disable a user: its tokens stop working until enabled (never the last enabled admin)")
    .argument('<name>', 'user name')
    .action((name: string) => run(load.users().then((m) => m.cmdUserDisable(globals(), name, true, io))));
  user
    .command('enable')
    .description('enable a disabled user again')
    .argument('<name>', 'user name')
    .action((name: string) => run(load.users().then((m) => m.cmdUserDisable(globals(), name, false, io))));
}

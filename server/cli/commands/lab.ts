/**
 * `fleet lab up|down|status|exec|ssh|demo`: the lab (server/lab, docs/lab.md)
 * with the real fleet server running inside its namespace.
 *
 *   up      build (or reuse) the Debian image `lab` and the boot environment
 *           in DIR/data (server/lab/os.ts), fill fleet's repository with the
 *           packages the lab's roles install (LAB_REPO_PACKAGES, `fleet repo
 *           fetch`), labUp (namespace, bridge, VMs
 *           powered off, BMCs), start `fleet server --config DIR/lab.yaml
 *           --data DIR/data` inside the namespace, detached (DIR/server.log,
 *           DIR/server.pid), and wait until its dnsmasq serves.
 *   exec    run the fleet CLI inside the namespace against that server.
 *   ssh     ssh to a VM as root with the lab's key (from inside the namespace).
 *   down    stop the server (by PID, command line checked), then labDown.
 *   status  labStatus and whether the server runs.
 *   demo    up (unless already up) + exec reinstall of every lab VM --yes --watch.
 *
 * Root only (namespaces, taps). Every wait is bounded. The lab's server
 * (start, stop, run the CLI in the namespace) is in server/lab/server.ts.
 */

import { chmod, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Exit, FleetError } from '../../../common/errors.js';
import { LAB_MAX_RACKED, labAdminUrl, labDown, labPowerOnRacked, labPrerequisites, labStatus, labUp, prepareLabOs, readLabState } from '../../lab/index.js';
import { LAB_REPO_PACKAGES, LAB_REPO_SUITE, type LabState } from '../../lab/lab.js';
import { fetchPackages, listPackages } from '../../repo/index.js';
import { foldNames } from '../../nodeset/index.js';
import { DEFAULT_LAB_DIR, fleetBin, labPaths, labServerPid, labSsh, resetLabData, runInLab, startLabServer, stopLabServer, type LabPaths } from '../../lab/server.js';
import type { CliIo } from '../io.js';

export interface LabCliDeps {
  /** Whether this process runs as root (tests). */
  isRoot?: () => boolean;
}

function requireRoot(deps: LabCliDeps): void {
  const root = deps.isRoot ? deps.isRoot() : typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    throw new FleetError('usage.invalid', 'the lab needs root (network namespaces, taps, a DHCP server): run it as root, e.g. sudo node bin/fleet.js lab up');
  }
}

export interface LabUpFlags {
  nodes?: string;
  dir?: string;
  imageCache?: string;
  /** commander's --no-storage: false. */
  storage?: boolean;
  /** Racked machines a rule names, and ones no rule matches (lab up only). */
  racked?: string;
  unplanned?: string;
}

/** Every VM of the lab as one nodeset, e.g. `thor,valkyrie[01-02]`. */
export function labNodeset(state: Pick<LabState, 'nodes'>): string {
  return foldNames(state.nodes.filter((n) => n.role !== 'racked').map((n) => n.name));
}

/**
 * fleet's repository in DATA/repo gets the packages the lab's roles install
 * (and their dependencies), unless the suite already lists each of them:
 * the VMs have no other network. Kept across labs (LAB_DATA_KEPT).
 */
export async function prepareLabRepo(dataDir: string, log: (line: string) => void): Promise<void> {
  const have = new Set((await listPackages(dataDir, LAB_REPO_SUITE)).map((e) => e.package));
  const missing = LAB_REPO_PACKAGES.filter((p) => !have.has(p));
  if (missing.length === 0) {
    log(`repository: ${LAB_REPO_SUITE} already holds ${LAB_REPO_PACKAGES.join(', ')} (reused)`);
    return;
  }
  log(`repository: fleet repo fetch --suite ${LAB_REPO_SUITE} ${LAB_REPO_PACKAGES.join(' ')} (with dependencies, from this machine's apt sources)`);
  const r = await fetchPackages({ dataDir, packages: [...LAB_REPO_PACKAGES], suite: LAB_REPO_SUITE, log: (l) => log(`repository: ${l}`) });
  log(`repository: ${r.suite} now holds ${(await listPackages(dataDir, LAB_REPO_SUITE)).length} packages`);
}

function parseCount(flag: string, text: string | undefined): number {
  const n = Number(text ?? '0');
  if (!/^\d+$/.test(text ?? '0') || n > LAB_MAX_RACKED) throw new FleetError('usage.invalid', `--${flag} must be 0-${LAB_MAX_RACKED}, got ${text}`);
  return n;
}

function parseNodes(text: string | undefined): number {
  const n = Number(text ?? '2');
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new FleetError('usage.invalid', `--nodes must be 1-32, got ${text}`);
  return n;
}

/** How to call this CLI again, as printed for the user: `sudo node bin/fleet.js` from the checkout. */
function fleetCmd(io: CliIo): string {
  const bin = fleetBin();
  return `sudo node ${bin === join(resolve(io.cwd), 'bin', 'fleet.js') ? 'bin/fleet.js' : bin}`;
}

function execHint(io: CliIo, p: LabPaths, defaultDir: string): string {
  return `${fleetCmd(io)} lab exec${p.dir === defaultDir ? '' : ` --dir ${p.dir}`} --`;
}

export async function cmdLabUp(flags: LabUpFlags, io: CliIo, deps: LabCliDeps = {}): Promise<number> {
  requireRoot(deps);
  const nodes = parseNodes(flags.nodes);
  const racked = parseCount('racked', flags.racked);
  const unplanned = parseCount('unplanned', flags.unplanned);
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  const t0 = Date.now();
  const say = (line: string) => io.stderr(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}\n`);
  await mkdir(p.dir, { recursive: true });
  // dnsmasq drops root and must traverse DIR to reach DIR/data (files keep their own modes).
  await chmod(p.dir, 0o711);
  // Before the long build: a host that cannot run the lab says so at once.
  const missing = labPrerequisites();
  if (missing.length > 0) throw new FleetError('unavailable', `the lab needs: ${missing.join(', ')}`);
  if (readLabState(p.dir) && (await labStatus({ dir: p.dir })).netnsExists) {
    throw new FleetError('conflict', `a lab is already up in ${p.dir}: run lab down first`);
  }
  // Fresh VMs (empty disks) get a fresh fleet server: no store, CA or enrolments of an earlier lab;
  // the image, the boot environment and the agent bundle stay (LAB_DATA_KEPT).
  await resetLabData(p);
  const os = await prepareLabOs({ dataDir: p.dataDir, imageName: 'lab', ...(flags.imageCache ? { imageCache: resolve(io.cwd, flags.imageCache) } : {}), log: say });
  await prepareLabRepo(p.dataDir, say);
  const state = await labUp({ dir: p.dir, nodes, ...(flags.storage === false ? { storage: false } : {}), racked, unplanned, imageName: os.image.name, log: say });
  try {
    say(`starting fleet server in namespace ${state.netns} (log ${p.serverLog})`);
    const pid = await startLabServer(state, p);
    say(`fleet server running (pid ${pid}) on ${state.server}; DHCP/TFTP on br0`);
    const on = await labPowerOnRacked(state);
    if (on.length > 0) say(`racked and powered on: ${on.join(', ')} (discovery policy auto: fleet inspects them and installs the ones its rule names)`);
  } catch (e) {
    await stopLabServer(p).catch(() => undefined);
    await labDown({ dir: p.dir }).catch(() => undefined);
    throw e;
  }
  const x = execHint(io, p, resolve(io.cwd, DEFAULT_LAB_DIR));
  const f = fleetCmd(io);
  const first = state.nodes[0]!.name;
  const set = labNodeset(state);
  io.stdout(
    [
      `lab up: ${state.nodes.filter((n) => n.role !== 'racked').length} VM(s) (powered off)${racked + unplanned > 0 ? ` and ${racked + unplanned} racked (powered on)` : ''}, fleet server at ${state.server} in namespace ${state.netns}`,
      '',
      ...(racked + unplanned > 0 ? [`The racked machines, with no command: ${x} discovered; ${x} discover --plan; ${x} watch '${labNodeset({ nodes: state.nodes.filter((n) => n.planned).map((n) => ({ ...n, name: n.planned!, role: 'compute' as const })) }) || '-'}'`, ''] : []),
      'Use it (as root):',
      `  ${x} reinstall '${set}' --yes --watch     # PXE, boot environment, Debian 12, disk boot, agent: ~4-5 min under TCG`,
      `  ${x} status`,
      `  ${x} events ${first}`,
      `  ${f} lab status${p.dir === resolve(io.cwd, DEFAULT_LAB_DIR) ? '' : ` --dir ${p.dir}`}                    # VMs, BMCs, server`,
      `  ${f} lab ssh${p.dir === resolve(io.cwd, DEFAULT_LAB_DIR) ? '' : ` --dir ${p.dir}`} ${first}                   # root on an installed VM (the lab's key)`,
      `  tail -f ${join(state.nodes[0]!.vmDir, 'console.log')}   # a VM's serial console`,
      `  tail -f ${p.serverLog}`,
      `Or directly: sudo ip netns exec ${state.netns} node ${fleetBin()} --url ${labAdminUrl(state)} --data ${p.dataDir} status`,
      `Tear down: ${f} lab down${p.dir === resolve(io.cwd, DEFAULT_LAB_DIR) ? '' : ` --dir ${p.dir}`}`,
      '',
    ].join('\n'),
  );
  return Exit.OK;
}

export async function cmdLabDown(flags: { dir?: string; purge?: boolean }, io: CliIo, deps: LabCliDeps = {}): Promise<number> {
  requireRoot(deps);
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  if (!readLabState(p.dir)) {
    io.stdout(`no lab in ${p.dir}\n`);
    return Exit.OK;
  }
  const s = await stopLabServer(p);
  const d = await labDown({ dir: p.dir, ...(flags.purge ? { purge: true } : {}) });
  io.stdout(
    [
      `fleet server: ${s.server ? 'stopped' : 'was not running'}${s.dnsmasq ? ' (and a dnsmasq it left behind)' : ''}`,
      `VMs stopped: ${d.vmsStopped.join(', ') || '-'}; BMCs stopped: ${d.bmcsStopped.join(', ') || '-'}`,
      `namespace ${d.netns ?? '-'}: ${d.netnsDeleted ? 'deleted' : 'not present'}`,
      ...(d.foreignPids.length ? [`warning: processes still in the namespace (not started by the lab, left alone): ${d.foreignPids.join(' ')}`] : []),
      flags.purge ? `removed ${p.dir}` : `kept ${p.dir} (disks, logs, images cache; --purge removes it)`,
      '',
    ].join('\n'),
  );
  return Exit.OK;
}

export async function cmdLabStatus(flags: { dir?: string; json?: boolean }, io: CliIo): Promise<number> {
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  const st = await labStatus({ dir: p.dir });
  const pid = labServerPid(p);
  if (flags.json) {
    io.stdout(JSON.stringify({ ...st, fleetServer: { running: pid !== undefined, ...(pid !== undefined ? { pid } : {}), log: p.serverLog, dataDir: p.dataDir } }, null, 2) + '\n');
    return st.up && pid !== undefined ? Exit.OK : Exit.FAILED;
  }
  if (!st.netns) {
    io.stdout(`no lab in ${p.dir} (fleet lab up creates one)\n`);
    return Exit.FAILED;
  }
  const lines = [
    `lab ${p.dir}: ${st.up ? 'up' : 'DOWN'}; namespace ${st.netns} ${st.netnsExists ? 'exists' : 'missing'}`,
    `fleet server: ${pid !== undefined ? `running (pid ${pid}) at ${st.server}` : 'not running'}; log ${p.serverLog}`,
    ...st.nodes.map(
      (n) =>
        `  ${n.name}  ${n.ip}  ${n.mac}  ${n.firmware}  power ${n.power}${n.qemuPid ? ` (qemu ${n.qemuPid})` : ''}  next boot ${n.nextBoot}  BMC ${n.bmc.address}:${n.bmc.port} ${n.bmc.up ? 'up' : 'DOWN'}`,
    ),
  ];
  io.stdout(lines.join('\n') + '\n');
  return st.up && pid !== undefined ? Exit.OK : Exit.FAILED;
}

function stripDashes(args: string[]): string[] {
  return args[0] === '--' ? args.slice(1) : args;
}

export async function cmdLabExec(flags: { dir?: string }, args: string[], io: CliIo, deps: LabCliDeps = {}): Promise<number> {
  requireRoot(deps);
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  const a = stripDashes(args);
  if (a.length === 0) throw new FleetError('usage.invalid', 'fleet lab exec -- <fleet arguments>, e.g. fleet lab exec -- status');
  if (labServerPid(p) === undefined) io.stderr(`fleet: warning: the lab's fleet server is not running (fleet lab status)\n`);
  return (await runInLab(p, a)).code;
}

export async function cmdLabSsh(flags: { dir?: string }, node: string, args: string[], io: CliIo, deps: LabCliDeps = {}): Promise<number> {
  requireRoot(deps);
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  return (await labSsh(p, node, stripDashes(args))).code;
}

export async function cmdLabDemo(flags: LabUpFlags, io: CliIo, deps: LabCliDeps = {}): Promise<number> {
  requireRoot(deps);
  const p = labPaths(resolve(io.cwd, flags.dir ?? DEFAULT_LAB_DIR));
  const st = readLabState(p.dir) ? await labStatus({ dir: p.dir }) : undefined;
  if (st?.up && labServerPid(p) !== undefined) {
    io.stderr(`lab already up in ${p.dir}: reusing it\n`);
  } else {
    if (st) {
      io.stderr(`a lab in ${p.dir} is partly up: taking it down first\n`);
      await stopLabServer(p);
      await labDown({ dir: p.dir });
    }
    const up = await cmdLabUp(flags, io, deps);
    if (up !== Exit.OK) return up;
  }
  const state = readLabState(p.dir)!;
  const first = state.nodes[0]!.name;
  const set = labNodeset(state);
  io.stderr(`\nfleet reinstall '${set}' --yes --watch   (inside the lab; each VM: one-time PXE, install, disk boot, agent)\n\n`);
  const code = (await runInLab(p, ['reinstall', set, '--yes', '--watch', '--timeout', '15m'])).code;
  const dirFlag = p.dir === resolve(io.cwd, DEFAULT_LAB_DIR) ? '' : ` --dir ${p.dir}`;
  io.stdout(
    [
      '',
      code === 0 ? `done: ${set} installed and ready. The lab stays up.` : `the reinstall did not end well (exit ${code}); the lab stays up for a look.`,
      `  ${fleetCmd(io)} lab exec${dirFlag} -- status      (or: events ${first}, power status '${set}', watch '${set}')`,
      `  ${fleetCmd(io)} lab status${dirFlag}`,
      `Tear down: ${fleetCmd(io)} lab down${dirFlag}   (add --purge to delete ${p.dir})`,
      '',
    ].join('\n'),
  );
  return code === 0 ? Exit.OK : Exit.FAILED;
}

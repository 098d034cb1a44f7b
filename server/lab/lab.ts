/**
 * The lab: N VMs with IPMI BMCs on one isolated network, for running fleet
 * end to end on one machine (docs/lab.md, docs/decisions/0006-lab.md).
 *
 * labUp({dir, nodes}) creates
 *   - a network namespace `fleet-lab-<id>` with a bridge br0 (10.77.0.1/24 and
 *     fd77::1/64, the ULA lets dnsmasq send the router advertisements iPXE
 *     waits for) and one tap per VM; nothing is linked to the host's network;
 *   - seed 000's cluster in small: compute VMs valkyrie01..N and, unless
 *     `storage: false`, the storage node thor (index N+1: NFS server of /home
 *     and /software, and the Slurm controller); lab.yaml gives them the
 *     seed's roles (renderLabConfig);
 *   - per VM (valkyrieNN, thor): VMDIR = DIR/vms/NAME with an empty 4 GiB
 *     qcow2, 1 GiB of memory, MAC 52:54:00:77:00:NN, IP 10.77.0.(10+N) (N: the VM's index),
 *     SMBIOS serial/uuid, legacy BIOS for odd N and UEFI (OVMF) for even N,
 *     and an ipmi_sim BMC on 127.0.0.1:(9000+N) of the namespace whose
 *     chassis hook starts/stops the VM's QEMU (powered off at first);
 *   - DIR/lab.yaml (a fleet.yaml for the lab: profiles `compute` and
 *     `storage` install the image `lab` with fleet's boot environment and
 *     apply the seed's roles, packages from fleet's own repository), DIR/secrets/lab.password
 *     (the BMCs'), DIR/secrets/lab_ed25519 (root's ssh key on the VMs);
 *   - DIR/lab.json, the state labStatus() and labDown() read.
 * The image and the boot environment themselves are built by server/lab/os.ts.
 * Everything the lab starts is detached and recorded by PID; labDown() stops
 * it by PID and deletes the namespace. The fleet server itself (dnsmasq, the
 * boot HTTP endpoints) is not started here: run it inside the namespace
 * (`fleet lab up` runs `fleet server --config DIR/lab.yaml --data DIR/data` in it).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../../common/errors.js';
import { foldNames } from '../nodeset/index.js';
import { bmcPid, LAB_SERIAL_PORT_OFFSET, labIpmitool, labSerialPort, startBmc, stopBmc } from './bmc.js';
import { findExecutable } from '../../common/executable.js';
import { killPid, run, runOk } from './exec.js';
import { assetPath } from './assets.js';
import { type Firmware, LAB_MANUFACTURER, LAB_PRODUCT, OVMF, prepareVm, uuidFor, vmHook, vmNextBoot, vmPid, type VmSpec } from './vm.js';

export const LAB_SUBNET = '10.77.0.0/24';
export const LAB_GATEWAY = '10.77.0.1';
export const LAB_IPV6 = 'fd77::1/64';
export const LAB_BRIDGE = 'br0';
/** A veth port of the bridge (its peer stays unbridged): keeps br0 up (carrier) while every VM is off. */
export const LAB_CARRIER = 'carrier0';
export const LAB_MAX_NODES = 32;
/** Racked machines (planned and unplanned together). */
export const LAB_MAX_RACKED = 8;
/** A racked VM's BMC answers out of band on 127.0.1.K:623 of the namespace (K: its place in the rack). */
export function rackedBmcAddress(k: number): string {
  return `127.0.1.${k}`;
}
/** The lab's storage node (seed 000's thor): NFS server of /home and /software, Slurm controller. */
export const LAB_STORAGE_NODE = 'thor';
/** The suite of fleet's repository the lab's nodes use: the image's (LAB_IMAGE_FROM). */
export const LAB_REPO_SUITE = 'bookworm';
/**
 * What `fleet lab up` puts into fleet's repository (`fleet repo fetch`, with
 * dependencies): the packages the lab's roles install (chrony, nfs-common,
 * nfs-kernel-server, munge and Slurm's) and `hello`, which no role installs
 * (the e2e installs it by hand on a node, from fleet's repository).
 */
export const LAB_REPO_PACKAGES: readonly string[] = ['chrony', 'nfs-common', 'nfs-kernel-server', 'munge', 'slurm-client', 'slurmctld', 'slurmd', 'hello'];
const NETNS_PATTERN = /^fleet-(lab|test)-[a-z0-9][a-z0-9-]{0,30}$/;

export interface LabUpOptions {
  /** Lab directory (absolute path without blanks), e.g. DATA/lab. */
  dir: string;
  /** Number of compute VMs (valkyrieNN), 1-32. */
  nodes: number;
  /** Add the storage node thor (default true). */
  storage?: boolean;
  /** Namespace name: fleet-lab-<id> or fleet-test-<id> (default fleet-lab-<hash of dir>). */
  netns?: string;
  /** Firmware of VM i (1-based): default legacy BIOS for odd i, UEFI for even i. */
  firmware?: (i: number) => Firmware;
  /** The image profile `lab` installs (default `lab`: server/lab/os.ts builds it). */
  imageName?: string;
  /** Port of the fleet server on 10.77.0.1 (default 8080). */
  serverPort?: number;
  /** BMC of VM N listens on 127.0.0.1:(bmcPortBase+N) (default 9000). */
  bmcPortBase?: number;
  memoryMiB?: number;
  diskMiB?: number;
  /**
   * Racked machines (issue 13 item 5): VMs that no node of lab.yaml names, each with an SMBIOS
   * serial LAB-RACK-NN, an empty disk and its own BMC (factory account admin with the password of
   * DIR/secrets/factory.password, reachable in band from inside the VM over KCS and out of band on
   * 127.0.1.NN:623 of the namespace). lab.yaml's discovery (policy auto) has one rule, `rack`,
   * naming the first `racked` of them by serial: valkyrieNN after the compute nodes, profile
   * compute, BMC set up on accept, install. `unplanned` more match no rule. They are powered on by
   * labPowerOnRacked() (`fleet lab up` calls it once the server is up), as a person would.
   */
  racked?: number;
  unplanned?: number;
  /** Keep existing VM disks (default: fresh, empty disks). */
  keepDisks?: boolean;
  log?: (line: string) => void;
}

export interface LabNode {
  name: string;
  index: number;
  /** compute (valkyrieNN), storage (thor) or racked (rackNN: no node of lab.yaml); absent in a lab.json of an older fleet: compute. */
  role?: 'compute' | 'storage' | 'racked';
  /** A racked VM that the lab's rule names: the node it becomes (its `ip` is the rule's address for it). Absent on an unplanned one (ip ''). */
  planned?: string;
  /** A racked VM's factory BMC account (DIR/secrets/factory.password); absent: the lab credential. */
  factory?: { username: string; passwordFile: string };
  mac: string;
  ip: string;
  tap: string;
  vmDir: string;
  serial: string;
  uuid: string;
  firmware: Firmware;
  /** mac: a racked VM's BMC MAC, as its factory set it (the lab's BMCs have none of their own). */
  bmc: { address: string; port: number; pid: number; mac?: string };
}

export interface LabState {
  version: 1;
  dir: string;
  netns: string;
  bridge: string;
  subnet: string;
  gateway: string;
  ipv6: string;
  /** Base URL the VMs reach the fleet server at. */
  server: string;
  /** The image the lab profile installs. */
  imageName: string;
  hook: string;
  configFile: string;
  credentials: { name: 'lab'; username: string; passwordFile: string };
  /** root's ssh key on the VMs (the profile's ssh_keys holds its public half). */
  sshKey: string;
  nodes: LabNode[];
  createdAt: string;
}

export interface LabNodeStatus {
  name: string;
  ip: string;
  mac: string;
  firmware: Firmware;
  power: 'on' | 'off';
  qemuPid?: number;
  nextBoot: string;
  bmc: { address: string; port: number; pid?: number; up: boolean };
  console: string;
}

export interface LabStatus {
  dir: string;
  up: boolean;
  netns?: string;
  netnsExists: boolean;
  server?: string;
  configFile?: string;
  nodes: LabNodeStatus[];
}

/** What this host lacks to run a lab ([] when nothing): root, tools, kernel. */
export function labPrerequisites(): string[] {
  const missing: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('root (network namespaces, taps)');
  const need = (name: string, pkg: string) => {
    if (!findExecutable(name)) missing.push(`${name} (${pkg})`);
  };
  need('ip', 'iproute2');
  need('qemu-system-x86_64', 'qemu-system-x86');
  need('ipmi_sim', 'openipmi');
  need('ssh-keygen', 'openssh-client');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  if (!existsSync('/usr/lib/ipxe/qemu/efi-virtio.rom') && !existsSync('/usr/share/qemu/efi-virtio.rom')) missing.push('efi-virtio.rom (ipxe-qemu)');
  if (!existsSync(OVMF.code) || !existsSync(OVMF.vars)) missing.push(`${OVMF.code} (ovmf)`);
  return missing;
}

/** This fleet checkout's root (holds package.json and bin/fleet-agent.js). */
export function fleetSourceRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'fleet-agent.js'))) return dir;
    dir = dirname(dir);
  }
  throw new FleetError('internal', 'cannot find the fleet source tree (package.json with bin/fleet-agent.js) above server/lab');
}

export function defaultNetns(dir: string): string {
  return `fleet-lab-${createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 8)}`;
}

function checkDir(dir: string): string {
  if (!isAbsolute(dir)) throw new FleetError('usage.invalid', `lab directory ${dir} must be an absolute path`);
  if (/[\s"'\\]/.test(dir)) throw new FleetError('usage.invalid', `lab directory ${JSON.stringify(dir)} must not contain blanks, quotes or backslashes`);
  return resolve(dir);
}

/** Racked VM k (1-based): lab label rackNN, serial LAB-RACK-NN, MAC 52:54:00:77:01:NN, its BMC's MAC 52:54:00:77:bb:NN. */
export function rackedLabel(k: number): { label: string; serial: string; mac: string; bmcMac: string } {
  const nn = String(k).padStart(2, '0');
  return { label: `rack${nn}`, serial: `LAB-RACK-${nn}`, mac: `52:54:00:77:01:${nn}`, bmcMac: `52:54:00:77:bb:${nn}` };
}

export function labNodeName(i: number): string {
  return `valkyrie${String(i).padStart(2, '0')}`;
}

/** Node i (1-based): MAC 52:54:00:77:00:NN (NN = i in decimal digits), IP 10.77.0.(10+i); named valkyrieNN unless `name` says otherwise. */
export function labNodeAddresses(i: number, name = labNodeName(i)): { name: string; mac: string; ip: string } {
  const nn = String(i).padStart(2, '0');
  return { name, mac: `52:54:00:77:00:${nn}`, ip: `10.77.0.${10 + i}` };
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** The lab server's admin API: the namespace's loopback, on the boot endpoints' port (the VMs never see it). */
export function labAdminUrl(s: Pick<LabState, 'server'>): string {
  return `http://127.0.0.1:${new URL(s.server).port || '80'}`;
}

/** Legacy BIOS for odd VMs, UEFI for even ones: a two-VM lab exercises both bootloader paths. */
export function defaultFirmware(i: number): Firmware {
  return i % 2 === 1 ? 'bios' : 'uefi';
}

/** fleet.yaml for the lab (see docs/configuration.md, docs/lab.md): seed 000's cluster in small. */
export function renderLabConfig(s: Pick<LabState, 'server' | 'imageName' | 'nodes' | 'gateway'>, sshPublicKey: string, passwordFile = 'secrets/lab.password'): string {
  const computes = s.nodes.filter((x) => x.role !== 'storage' && x.role !== 'racked');
  const racked = s.nodes.filter((x) => x.role === 'racked');
  const planned = racked.filter((x) => x.planned !== undefined);
  const storage = s.nodes.find((x) => x.role === 'storage');
  const n = computes.length;
  const range = (a: number, b: number) => (a === b ? `${a}` : `[${a}-${b}]`);
  const first = computes[0]!;
  const last = computes[n - 1]!;
  const nn = (x: LabNode) => String(x.index).padStart(2, '0');
  const key = n === 1 ? first.name : `valkyrie[${nn(first)}-${nn(last)}]`;
  const ipRange = n === 1 ? first.ip : `10.77.0.[${10 + first.index}-${10 + last.index}]`;
  const macRange = n === 1 ? first.mac : `52:54:00:77:00:[${nn(first)}-${nn(last)}]`;
  const portRange = n === 1 ? `${first.bmc.port}` : `"${range(first.bmc.port, last.bmc.port)}"`;
  const listen = new URL(s.server).host;
  const adminListen = new URL(labAdminUrl(s)).host;
  const storageRoles = storage
    ? `      # Seed 000 §7.1: /home read-write, /software read-only, to the cluster network.
      nfs_server:
        exports:
          - { path: /home, clients: ${LAB_SUBNET}, options: "rw,sync,no_root_squash" }
          - { path: /software, clients: ${LAB_SUBNET}, options: "ro,sync" }
      # Seed 002: the scheduler (slurmctld); slurm.conf and the munge key come from fleet.
      slurm: { role: controller }
`
    : '';
  const computeRoles = storage
    ? `      nfs:
        mounts:
          - { source: "${storage.name}:/home", target: /home, options: "rw,nfsvers=4,bg" }
          - { source: "${storage.name}:/software", target: /software, options: "ro,nfsvers=4,bg" }
      slurm: { role: compute }
`
    : '';
  return `# fleet.yaml of the fleet lab, written by \`fleet lab up\` (server/lab/lab.ts).
# It is regenerated by every lab up: edit a copy. docs/lab.md explains the lab.
# Seed 000's cluster in small: ${storage ? `${storage.name} (storage, Slurm controller) and ` : ''}${key} (compute).
version: 1

cluster:
  name: lab
  domain: lab.local
  timezone: UTC
  management_name: fleet
  management_address: ${s.gateway}

networks:
  provisioning:
    subnet: ${LAB_SUBNET}
    unknown_range: 10.77.0.200-10.77.0.250
    dns: [${s.gateway}]
    ntp: [${s.gateway}]
    interface: ${LAB_BRIDGE}
${
  racked.length > 0
    ? `  # The BMCs: the lab's answer on the namespace's loopback (racked machines' on 127.0.1.K:623).
  bmc:
    subnet: 127.0.0.0/8
`
    : ''
}
netboot:
  dhcp:
    enabled: true
    mode: authoritative
    interface: ${LAB_BRIDGE}
    # The bridge has ${LAB_IPV6}: RAs spare iPXE ~13 s of IPv6 autoconfiguration per boot.
    router_advertisements: true
  # The boot endpoints (iPXE scripts, kickstarts, callbacks, /repo/) face the VMs.
  http:
    listen: "${listen}"

server:
  # The admin API stays on the namespace's loopback: \`fleet lab exec\` reaches it there.
  listen: "${adminListen}"

credentials:
  lab:
    username: admin
    password_file: ${passwordFile}
${
  racked.length > 0
    ? `  # The racked machines' BMCs as they come from the factory (fleet lab up --racked): used once, to set them up.
  factory:
    username: admin
    password_file: secrets/factory.password
`
    : ''
}
# Shared by the profiles below (YAML anchors; top-level x- keys are ignored by fleet).
x-base: &base
  os:
    install: image
    # Built by \`fleet lab up\` (fleet image build ${s.imageName} --from debian:bookworm).
    image: ${s.imageName}
  kernel_args: console=ttyS0
  # \`fleet lab ssh NODE\` logs in with DIR/secrets/lab_ed25519.
  ssh_keys:
    - ${sshPublicKey}

x-roles: &roles
  repos:
    # Seed 000 §6.2.2: the distribution's sources go; nodes install from the management node only
    # (fleet's repository, filled by \`fleet lab up\` with \`fleet repo fetch\`, signed by the server's key).
    remove: ["*.list", "*.sources"]
    repos:
      - name: fleet
        baseurl: ${s.server}/repo/debian
        suite: ${LAB_REPO_SUITE}
        key: fleet
  hosts:
    enabled: true
  chrony:
    servers: [${s.gateway}]
  users:
    groups:
      - { name: myuser, gid: 2001 }
    users:
      - { name: myuser, uid: 2001, gid: 2001, group: myuser, home: /home/myuser, shell: /bin/bash }

profiles:
  compute:
    <<: *base
    description: Lab compute VM (seed 000's valkyrie), Debian 12 installed by fleet's boot environment (docs/lab.md)
    roles:
      <<: *roles
${computeRoles}${
    storage
      ? `  storage:
    <<: *base
    description: Lab storage VM (seed 000's thor)
    roles:
      <<: *roles
${storageRoles}`
      : ''
  }
nodes:
  ${key}:
    profile: compute
    ip: ${ipRange}
    mac: ${macRange}
    bmc: { address: 127.0.0.1, port: ${portRange}, protocol: ipmi, credentials: lab }
${
  storage
    ? `  ${storage.name}:
    profile: storage
    ip: ${storage.ip}
    mac: "${storage.mac}"
    bmc: { address: ${storage.bmc.address}, port: ${storage.bmc.port}, protocol: ipmi, credentials: lab }
`
    : ''
}${renderLabDiscovery(racked, planned)}`;
}

/**
 * lab.yaml's discovery for the racked VMs: policy auto and one rule naming the planned ones by
 * serial, in rack order, after the compute nodes; the unplanned ones match no rule.
 */
function renderLabDiscovery(racked: LabNode[], planned: LabNode[]): string {
  if (racked.length === 0) return '';
  const rule =
    planned.length === 0
      ? '  rules: []\n'
      : `  rules:
    - name: rack
      match:
        serial: [${planned.map((x) => x.serial).join(', ')}]
      names: ${foldNames(planned.map((x) => x.planned!))}
      profile: compute
      ip: [${planned.map((x) => x.ip).join(', ')}]
      # Set up in band on accept (a fleet account, verified out of band, then the factory one is
      # disabled); 16 bytes: ipmi_sim authenticates only the first 16 of a 20-byte password.
      bmc: { address: [${planned.map((x) => x.bmc.address).join(', ')}], credentials: factory, setup: true, password_length: 16 }
      on_accept: install
`;
  return `
# Zero-touch (fleet lab up --racked): a machine a rule names is accepted as soon as its inspection
# report is in, its BMC is set up and it is installed, with no command. ${racked.filter((x) => !x.planned).length} racked VM(s) match no rule: they stay discovered.
discovery:
  policy: auto
${rule}`;
}

function stateFile(dir: string): string {
  return join(dir, 'lab.json');
}

export function readLabState(dir: string): LabState | undefined {
  const f = stateFile(dir);
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, 'utf8')) as LabState;
}

async function ipns(netns: string, args: string[]): Promise<void> {
  await runOk('ip', ['-n', netns, ...args], { timeoutMs: 10_000 });
}

/** Creates the lab. On failure, whatever was started is stopped again. */
export async function labUp(o: LabUpOptions): Promise<LabState> {
  const log = o.log ?? (() => {});
  const dir = checkDir(o.dir);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > LAB_MAX_NODES) {
    throw new FleetError('usage.invalid', `lab nodes must be 1-${LAB_MAX_NODES}, got ${o.nodes}`);
  }
  const rackedCount = o.racked ?? 0;
  const unplannedCount = o.unplanned ?? 0;
  for (const [flag, v] of [['racked', rackedCount], ['unplanned', unplannedCount]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new FleetError('usage.invalid', `lab ${flag} machines must be a count (0 or more), got ${v}`);
  }
  if (rackedCount + unplannedCount > LAB_MAX_RACKED) throw new FleetError('usage.invalid', `at most ${LAB_MAX_RACKED} racked machines (planned and unplanned together), got ${rackedCount + unplannedCount}`);
  const netns = o.netns ?? defaultNetns(dir);
  if (!NETNS_PATTERN.test(netns)) throw new FleetError('usage.invalid', `lab namespace ${netns} must be named fleet-lab-<id> or fleet-test-<id>`);
  const missing = labPrerequisites();
  if (missing.length > 0) throw new FleetError('unavailable', `the lab needs: ${missing.join(', ')}`);
  const existing = readLabState(dir);
  if (existing && (netnsExists(existing.netns) || existing.nodes.some((n) => vmPid(n.vmDir) || bmcPid(n.vmDir)))) {
    throw new FleetError('conflict', `a lab is already up in ${dir} (namespace ${existing.netns}): run lab down first`);
  }
  if (netnsExists(netns)) throw new FleetError('conflict', `network namespace ${netns} already exists`);

  const qemu = findExecutable('qemu-system-x86_64')!;
  const ipmiSim = findExecutable('ipmi_sim')!;
  const ipmitool = findExecutable('ipmitool');
  const firmware = o.firmware ?? defaultFirmware;
  const port = o.serverPort ?? 8080;
  const server = `http://${LAB_GATEWAY}:${port}`;
  const bmcBase = o.bmcPortBase ?? 9000;

  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
  await chmod(join(dir, 'secrets'), 0o700);
  const hook = join(dir, 'bin', 'chassis-control.sh');
  await copyFile(assetPath('chassis-control.sh'), hook);
  await chmod(hook, 0o755);
  const passwordFile = join(dir, 'secrets', 'lab.password');
  const password = randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 16);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  await chmod(passwordFile, 0o600);
  const sshKey = join(dir, 'secrets', 'lab_ed25519');
  await rm(sshKey, { force: true });
  await rm(`${sshKey}.pub`, { force: true });
  await runOk(findExecutable('ssh-keygen')!, ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleet-lab', '-f', sshKey], { timeoutMs: 30_000 });
  const sshPublicKey = (await readFile(`${sshKey}.pub`, 'utf8')).trim();
  const factoryFile = join(dir, 'secrets', 'factory.password');
  const factoryPassword = randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, 'f').slice(0, 16);
  if (rackedCount + unplannedCount > 0) {
    await writeFile(factoryFile, `${factoryPassword}\n`, { mode: 0o600 });
    await chmod(factoryFile, 0o600);
  }

  const nodes: LabNode[] = [];
  const count = o.storage === false ? o.nodes : o.nodes + 1;
  for (let i = 1; i <= count; i++) {
    const storage = i > o.nodes;
    const a = labNodeAddresses(i, storage ? LAB_STORAGE_NODE : labNodeName(i));
    nodes.push({
      ...a,
      index: i,
      role: storage ? 'storage' : 'compute',
      tap: `tap${String(i).padStart(2, '0')}`,
      vmDir: join(dir, 'vms', a.name),
      serial: `LAB-${a.name.toUpperCase()}`,
      uuid: uuidFor(a.name),
      firmware: firmware(i),
      bmc: { address: '127.0.0.1', port: bmcBase + i, pid: 0 },
    });
  }
  for (let k = 1; k <= rackedCount + unplannedCount; k++) {
    const i = count + k;
    const r = rackedLabel(k);
    const planned = k <= rackedCount ? labNodeName(o.nodes + k) : undefined;
    nodes.push({
      name: r.label,
      index: i,
      role: 'racked',
      ...(planned ? { planned } : {}),
      mac: r.mac,
      // The rule's address for the node it becomes; an unplanned one keeps its lease in the unknown range.
      ip: planned ? labNodeAddresses(i).ip : '',
      tap: `tap${String(i).padStart(2, '0')}`,
      vmDir: join(dir, 'vms', r.label),
      serial: r.serial,
      uuid: uuidFor(r.label),
      // Legacy BIOS: an empty disk falls through to the NIC's iPXE, as a new server's does.
      firmware: 'bios',
      bmc: { address: rackedBmcAddress(k), port: 623, pid: 0, mac: r.bmcMac },
      factory: { username: 'admin', passwordFile: factoryFile },
    });
  }
  const state: LabState = {
    version: 1,
    dir,
    netns,
    bridge: LAB_BRIDGE,
    subnet: LAB_SUBNET,
    gateway: LAB_GATEWAY,
    ipv6: LAB_IPV6,
    server,
    imageName: o.imageName ?? 'lab',
    hook,
    configFile: join(dir, 'lab.yaml'),
    credentials: { name: 'lab', username: 'admin', passwordFile },
    sshKey,
    nodes,
    createdAt: new Date().toISOString(),
  };
  const save = () => writeFile(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`);
  await save();

  try {
    log(`lab: namespace ${netns}, bridge ${LAB_BRIDGE} ${LAB_GATEWAY}/24`);
    await runOk('ip', ['netns', 'add', netns], { timeoutMs: 10_000 });
    await ipns(netns, ['link', 'set', 'lo', 'up']);
    await ipns(netns, ['link', 'add', LAB_BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await ipns(netns, ['addr', 'add', `${LAB_GATEWAY}/24`, 'dev', LAB_BRIDGE]);
    await ipns(netns, ['-6', 'addr', 'add', LAB_IPV6, 'dev', LAB_BRIDGE, 'nodad']);
    // A port keeps the bridge's carrier up while every VM is off: without it br0 is NO-CARRIER,
    // the kernel reports it not RUNNING, Node's networkInterfaces() omits it and fleet's netboot
    // refuses to start DHCP ("br0 does not exist here or has no IPv4 address").
    // (A veth pair, both ends in the namespace: the dummy driver is not always available.)
    await ipns(netns, ['link', 'add', LAB_CARRIER, 'type', 'veth', 'peer', 'name', `${LAB_CARRIER}p`]);
    await ipns(netns, ['link', 'set', LAB_CARRIER, 'master', LAB_BRIDGE]);
    await ipns(netns, ['link', 'set', LAB_CARRIER, 'up']);
    await ipns(netns, ['link', 'set', `${LAB_CARRIER}p`, 'up']);
    await ipns(netns, ['link', 'set', LAB_BRIDGE, 'up']);
    for (const n of nodes) {
      await ipns(netns, ['tuntap', 'add', 'dev', n.tap, 'mode', 'tap']);
      await ipns(netns, ['link', 'set', n.tap, 'master', LAB_BRIDGE]);
      await ipns(netns, ['link', 'set', n.tap, 'up']);
      await mkdir(n.vmDir, { recursive: true });
      const vm: VmSpec = {
        name: n.name,
        dir: n.vmDir,
        mac: n.mac,
        tap: n.tap,
        serial: n.serial,
        uuid: n.uuid,
        firmware: n.firmware,
        qemu,
        // The serial line is a TCP server its BMC's SOL connects to (`fleet console`), and console.log as before.
        serialPort: serialPortOf(n, bmcBase),
        ...(n.role === 'racked' ? { inBandBmcPort: inBandPortOf(n, bmcBase) } : {}),
        ...(o.memoryMiB !== undefined ? { memoryMiB: o.memoryMiB } : {}),
        ...(o.diskMiB !== undefined ? { diskMiB: o.diskMiB } : {}),
      };
      await prepareVm(vm, { keepDisk: o.keepDisks === true });
      await writeFile(join(n.vmDir, 'chassis.state'), 'default\n');
      // A racked machine's BMC comes from the factory: no account or LAN setting of an earlier lab.
      if (n.role === 'racked') await rm(join(n.vmDir, 'bmc'), { recursive: true, force: true });
    }
    await Promise.all(
      nodes.map(async (n) => {
        n.bmc.pid = await startBmc(
          netns,
          ipmiSim,
          {
            name: n.name,
            vmDir: n.vmDir,
            address: n.bmc.address,
            port: n.bmc.port,
            username: 'admin',
            password: n.role === 'racked' ? factoryPassword : password,
            hook,
            machine: { uuid: n.uuid, serial: n.serial, manufacturer: LAB_MANUFACTURER, product: LAB_PRODUCT },
            solPort: serialPortOf(n, bmcBase),
            ...(n.role === 'racked' ? { inBandPort: inBandPortOf(n, bmcBase) } : {}),
          },
          ipmitool,
        );
        // What the factory set: the BMC's MAC, and DHCP for its address (the set-up on accept makes it static).
        if (n.role === 'racked' && n.bmc.mac && ipmitool) {
          const b = { address: n.bmc.address, port: n.bmc.port, username: 'admin', password: factoryPassword };
          for (const args of [['lan', 'set', '1', 'macaddr', n.bmc.mac], ['lan', 'set', '1', 'ipsrc', 'dhcp']]) {
            const r = await labIpmitool(netns, ipmitool, b, args);
            if (r.code !== 0) throw new FleetError('internal', `ipmitool ${args.join(' ')} on ${n.name}'s BMC failed: ${r.stderr.trim()}`);
          }
        }
      }),
    );
    await writeFile(state.configFile, renderLabConfig(state, sshPublicKey));
    await save();
    const declared = nodes.filter((n) => n.role !== 'racked');
    const rack = nodes.filter((n) => n.role === 'racked');
    log(`lab: ${declared.length} VM(s) (${declared.map((n) => `${n.name} ${n.firmware}`).join(', ')}) with BMCs on 127.0.0.1:${declared[0]!.bmc.port}-${declared[declared.length - 1]!.bmc.port}; config ${state.configFile}`);
    if (rack.length > 0) log(`lab: racked, unknown to lab.yaml's nodes: ${rack.map((n) => `${n.name} serial ${n.serial} BMC ${n.bmc.address}:${n.bmc.port}${n.planned ? ` (rule rack: ${n.planned})` : ' (no rule)'}`).join(', ')}`);
    return state;
  } catch (e) {
    await labDown({ dir }).catch(() => undefined);
    throw e;
  }
}

/** The TCP port of a VM's serial line (its BMC's SOL connects to it): 1000 above the lab's BMC port of its index. */
function serialPortOf(n: Pick<LabNode, 'index'>, bmcBase: number): number {
  return labSerialPort(bmcBase + n.index);
}

/** The TCP port of a racked VM's in-band BMC interface (its KCS): 2000 above the lab's BMC port of its index. */
function inBandPortOf(n: Pick<LabNode, 'index'>, bmcBase: number): number {
  return bmcBase + n.index + 2 * LAB_SERIAL_PORT_OFFSET;
}

/**
 * Powers the racked VMs on through their BMCs' hook, as a person presses the button once the
 * machine is cabled (call it once the fleet server answers DHCP). Their disks are empty: the
 * firmware falls through to the network. Returns the VMs powered on.
 */
export async function labPowerOnRacked(state: LabState): Promise<string[]> {
  const racked = state.nodes.filter((n) => n.role === 'racked');
  for (const n of racked) await vmHook(state.hook, state.netns, n.vmDir, ['set', 'power', '1']);
  return racked.map((n) => n.name);
}

export interface LabDownResult {
  netns?: string;
  /** VMs whose QEMU was stopped. */
  vmsStopped: string[];
  /** BMCs whose ipmi_sim was stopped. */
  bmcsStopped: string[];
  netnsDeleted: boolean;
  /** PIDs still in the namespace that the lab did not start (left alone). */
  foreignPids: number[];
}

/** Stops every VM and BMC of the lab by PID and deletes its namespace. Safe to call twice. */
export async function labDown(o: { dir: string; purge?: boolean }): Promise<LabDownResult> {
  const dir = checkDir(o.dir);
  const state = readLabState(dir);
  const res: LabDownResult = { vmsStopped: [], bmcsStopped: [], netnsDeleted: false, foreignPids: [] };
  if (!state) return res;
  res.netns = state.netns;
  // BMCs first, so that no hook call starts a VM again while we stop it.
  await Promise.all(
    state.nodes.map(async (n) => {
      if (bmcPid(n.vmDir) !== undefined) {
        await stopBmc(n.vmDir);
        res.bmcsStopped.push(n.name);
      }
    }),
  );
  await Promise.all(
    state.nodes.map(async (n) => {
      if (await killPid(vmPid(n.vmDir), `${n.vmDir}/`)) res.vmsStopped.push(n.name);
      await rm(join(n.vmDir, 'qemu.pid'), { force: true });
    }),
  );
  if (netnsExists(state.netns)) {
    const pids = await run('ip', ['netns', 'pids', state.netns], { timeoutMs: 10_000 });
    res.foreignPids = pids.stdout.split(/\s+/).filter(Boolean).map(Number);
    const del = await run('ip', ['netns', 'del', state.netns], { timeoutMs: 10_000 });
    res.netnsDeleted = del.code === 0;
  }
  if (o.purge) await rm(dir, { recursive: true, force: true });
  return res;
}

/** The lab's state: namespace, and per VM its power (QEMU PID), next boot device and BMC. */
export async function labStatus(o: { dir: string }): Promise<LabStatus> {
  const dir = checkDir(o.dir);
  const state = readLabState(dir);
  if (!state) return { dir, up: false, netnsExists: false, nodes: [] };
  const nodes: LabNodeStatus[] = state.nodes.map((n) => {
    const qemuPid = vmPid(n.vmDir);
    const bPid = bmcPid(n.vmDir);
    return {
      name: n.name,
      ip: n.ip,
      mac: n.mac,
      firmware: n.firmware ?? 'bios',
      power: qemuPid !== undefined ? 'on' : 'off',
      ...(qemuPid !== undefined ? { qemuPid } : {}),
      nextBoot: vmNextBoot(n.vmDir),
      bmc: { address: n.bmc.address, port: n.bmc.port, ...(bPid !== undefined ? { pid: bPid } : {}), up: bPid !== undefined },
      console: join(n.vmDir, 'console.log'),
    };
  });
  const exists = netnsExists(state.netns);
  return {
    dir,
    up: exists && nodes.every((n) => n.bmc.up),
    netns: state.netns,
    netnsExists: exists,
    server: state.server,
    configFile: state.configFile,
    nodes,
  };
}

/** The lab's BMC password (from DIR/secrets/lab.password). */
export async function labPassword(state: LabState): Promise<string> {
  return (await readFile(state.credentials.passwordFile, 'utf8')).trim();
}

/**
 * Last-resort cleanup for an exiting process (no async work possible): SIGKILLs
 * the lab's BMCs and VMs by PID (checked against their command lines) and
 * deletes its namespace. Prefer labDown().
 */
export function labKillSync(dir: string): void {
  const state = readLabState(resolve(dir));
  if (!state) return;
  for (const n of state.nodes) {
    for (const pid of [bmcPid(n.vmDir), vmPid(n.vmDir)]) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  if (netnsExists(state.netns)) {
    try {
      execFileSync('ip', ['netns', 'del', state.netns], { timeout: 5000, stdio: 'ignore' });
    } catch {
      // best effort
    }
  }
}

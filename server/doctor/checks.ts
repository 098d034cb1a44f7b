/**
 * `fleet doctor`: the Day 0 checks as pure functions. Each takes a small
 * facts object (gathered by ./gather.ts, the only I/O here) and returns one
 * finding: an id, ok/warn/fail, what was found and how to fix it.
 *
 * A fact that could not be read is `null` (or carries an `unknown` reason)
 * and its check answers `warn` with "unknown: why", never `ok`.
 */
import { cidrContains, isIPv4, parseCidr } from '../../common/patterns.js';
import { isLoopback, isWildcard } from '../../common/listen.js';
import { Exit } from '../../common/errors.js';

export type DoctorStatus = 'ok' | 'warn' | 'fail';

export interface Finding {
  id: string;
  status: DoctorStatus;
  message: string;
  /** What to do; '' when status is ok. */
  fix: string;
}

const ok = (id: string, message: string): Finding => ({ id, status: 'ok', message, fix: '' });
const warn = (id: string, message: string, fix: string): Finding => ({ id, status: 'warn', message, fix });
const fail = (id: string, message: string, fix: string): Finding => ({ id, status: 'fail', message, fix });

/** This host's interfaces as `ip -j addr` shows them. */
export interface HostInterface {
  name: string;
  /** Administratively up (IFF_UP); null when not known (no `ip`). */
  up: boolean | null;
  /** Has a carrier (not NO-CARRIER); null when not known. */
  carrier: boolean | null;
  /** IPv4 and IPv6 addresses, without prefix length. */
  addresses: string[];
}

// ------------------------------------------------------------------ boot endpoints

export interface BootEndpointFacts {
  /** The boot listener's host as planned (flag > netboot.http.listen > the management address). */
  listenHost: string;
  listenPort: number;
  /** The host came from the default (the management address), not from a setting. */
  implicit: boolean;
  /** The URL rendered into iPXE scripts, kickstarts and plans: what nodes are told. */
  advertisedUrl: string;
  managementAddress: string;
  provisioningSubnet: string;
  /** Every address of this host; null when they could not be read. */
  localAddresses: string[] | null;
}

const BOOT_FIX_LISTEN = 'set netboot.http.listen in fleet.yaml (or --boot-listen) to the management address on the provisioning network, e.g. "10.10.0.1:8080", and restart fleet server';

export function checkBootEndpoint(f: BootEndpointFacts): Finding {
  const id = 'boot-endpoint';
  const told = f.advertisedUrl;
  const toldHost = new URL(told).hostname.replace(/^\[|\]$/g, '');
  if (isLoopback(f.listenHost) || isLoopback(toldHost)) {
    return fail(
      id,
      `the boot endpoints listen on ${f.listenHost}:${f.listenPort}, a loopback address, and nodes are told ${told}: no node can reach it`,
      BOOT_FIX_LISTEN,
    );
  }
  if (f.localAddresses === null) return warn(id, `unknown: this host's addresses could not be read; nodes are told ${told}`, 'install iproute2 (ip) and run fleet doctor again');
  const local = new Set(f.localAddresses);
  if (isWildcard(f.listenHost)) {
    if (!local.has(f.managementAddress)) {
      return fail(
        id,
        `the boot endpoints listen on every address (${f.listenHost}:${f.listenPort}) but nodes are told ${told}, and the management address ${f.managementAddress} is not on this host`,
        `give this host the management address ${f.managementAddress} on the provisioning NIC, or set cluster.management_address to an address it has`,
      );
    }
  } else if (!isIPv4(f.listenHost) && !f.listenHost.includes(':')) {
    return warn(id, `unknown: the boot endpoints listen on the host name ${f.listenHost}, which fleet doctor does not resolve; nodes are told ${told}`, 'give netboot.http.listen as an IP address');
  } else if (!local.has(f.listenHost)) {
    return fail(
      id,
      f.implicit
        ? `the boot endpoints are not served: nodes are told ${told}, but the management address ${f.managementAddress} is not on this host`
        : `the boot endpoints are to listen on ${f.listenHost}:${f.listenPort}, which is not an address of this host; nodes are told ${told}`,
      f.implicit
        ? `give this host the management address ${f.managementAddress} on the provisioning NIC (ip addr add ${f.managementAddress}/PREFIX dev NIC), or correct cluster.management_address`
        : BOOT_FIX_LISTEN,
    );
  }
  const subnet = parseCidr(f.provisioningSubnet);
  if (typeof subnet !== 'string' && isIPv4(toldHost) && !cidrContains(subnet, toldHost)) {
    return warn(
      id,
      `nodes are told ${told}, outside the provisioning subnet ${f.provisioningSubnet}: they reach it only through a router`,
      'set netboot.http.listen to this host\'s address in the provisioning subnet (normally the management address)',
    );
  }
  return ok(id, `boot endpoints on ${f.listenHost}:${f.listenPort}; nodes are told ${told}`);
}

// ------------------------------------------------------------------ DHCP, dnsmasq, iPXE

export interface DhcpFacts {
  enabled: boolean;
  mode: 'authoritative' | 'proxy';
  /** netboot.dhcp.interface, else networks.provisioning.interface. */
  interface?: string;
  managementAddress: string;
  provisioningSubnet: string;
}

export function checkDnsmasq(f: { dhcp: DhcpFacts; path: string | null }): Finding {
  const id = 'dnsmasq';
  if (!f.dhcp.enabled) return ok(id, 'not needed: DHCP/TFTP is off (netboot.dhcp.enabled); the site\'s DHCP must hand nodes the boot URL');
  if (f.path === null) return fail(id, 'dnsmasq is not installed: fleet serves no DHCP/TFTP, so no node can netboot', 'apt-get install dnsmasq-base (Debian)');
  return ok(id, `dnsmasq found at ${f.path}`);
}

export interface IpxeFacts {
  /** Where netboot copies the binaries from (/usr/lib/ipxe). */
  sourceDir: string;
  /** The TFTP root dnsmasq serves (DATA/tftp). */
  tftpDir: string;
  /** Required binary → found in the source or already in the TFTP root. */
  found: Record<string, boolean>;
}

export function checkIpxe(f: { dhcp: DhcpFacts; ipxe: IpxeFacts }): Finding {
  const id = 'ipxe';
  if (!f.dhcp.enabled) return ok(id, 'not needed: DHCP/TFTP is off (the site\'s TFTP serves iPXE)');
  const names = Object.keys(f.ipxe.found);
  const missing = names.filter((n) => !f.ipxe.found[n]);
  const fix = `apt-get install ipxe (Debian; the binaries land in ${f.ipxe.sourceDir})`;
  if (missing.length === names.length) return fail(id, `no iPXE binary in ${f.ipxe.sourceDir} or ${f.ipxe.tftpDir} (${names.join(', ')}): no PXE client can chainload iPXE`, fix);
  if (missing.length) return warn(id, `iPXE binaries missing from ${f.ipxe.sourceDir}: ${missing.join(', ')}; clients asking for them cannot boot`, fix);
  return ok(id, `iPXE binaries present (${names.join(', ')})`);
}

export function checkDhcpInterface(f: { dhcp: DhcpFacts; interfaces: HostInterface[] | null }): Finding {
  const id = 'dhcp-interface';
  const d = f.dhcp;
  if (!d.enabled) return ok(id, 'not needed: DHCP/TFTP is off');
  if (!d.interface) return fail(id, 'DHCP is enabled but names no interface', 'set netboot.dhcp.interface (or networks.provisioning.interface) to the cluster NIC');
  if (f.interfaces === null) return warn(id, `unknown: this host's interfaces could not be read (interface ${d.interface})`, 'install iproute2 (ip) and run fleet doctor again');
  const nic = f.interfaces.find((i) => i.name === d.interface);
  if (!nic) {
    const names = f.interfaces.map((i) => i.name).join(', ');
    return fail(id, `interface ${d.interface} does not exist on this host (it has ${names || 'none'}): fleet serves no DHCP`, `set netboot.dhcp.interface to the NIC on the provisioning network`);
  }
  if (nic.up === false) return fail(id, `interface ${d.interface} is down: fleet's DHCP answers nobody`, `ip link set ${d.interface} up (and check its cable/switch port)`);
  const v4 = nic.addresses.filter(isIPv4);
  if (d.mode === 'proxy') {
    const subnet = parseCidr(d.provisioningSubnet);
    if (typeof subnet === 'string' || !v4.some((a) => cidrContains(subnet, a))) {
      return fail(id, `interface ${d.interface} (${v4.join(', ') || 'no IPv4 address'}) has no address in ${d.provisioningSubnet}: fleet serves no proxy DHCP`, `give ${d.interface} an address in ${d.provisioningSubnet}`);
    }
  } else if (!v4.includes(d.managementAddress)) {
    return fail(
      id,
      `interface ${d.interface} (${v4.join(', ') || 'no IPv4 address'}) does not hold the management address ${d.managementAddress}: fleet serves no DHCP`,
      `ip addr add ${d.managementAddress}/PREFIX dev ${d.interface} (and make it permanent), or correct cluster.management_address`,
    );
  }
  const holds = d.mode === 'proxy' ? v4.join(', ') : d.managementAddress;
  if (nic.up === null) return warn(id, `unknown: whether interface ${d.interface} is up (no \`ip\`); it holds ${holds}`, 'install iproute2 (ip) and run fleet doctor again');
  if (nic.carrier === false) {
    // A bridge whose ports are all down has no carrier yet; dnsmasq answers as soon as one comes up.
    return warn(id, `interface ${d.interface} is up and holds ${holds} but has no carrier: nothing is plugged in (or a bridge with no port up yet)`, `check the cable and switch port of ${d.interface}`);
  }
  return ok(id, `interface ${d.interface} is up and holds ${holds}`);
}

// ------------------------------------------------------------------ what profiles need

export interface OsTreeFacts {
  profile: string;
  tree: string;
  /** The tree is under fleet's own boot endpoints (/repo/, /images/): its directory there and what it holds; null when served elsewhere. */
  local: { dir: string; kernel: boolean; initrd: boolean } | null;
}

export function checkOsTree(f: OsTreeFacts): Finding {
  const id = `os-tree:${f.profile}`;
  if (!f.tree) return fail(id, `profile ${f.profile} installs by kickstart but names no OS tree`, `set profiles.${f.profile}.os.tree to the URL of an OS tree (kernel and initrd under images/pxeboot/)`);
  if (f.local) {
    const missing = [f.local.kernel ? null : 'images/pxeboot/vmlinuz', f.local.initrd ? null : 'images/pxeboot/initrd.img'].filter((x): x is string => x !== null);
    if (missing.length) {
      return fail(id, `profile ${f.profile}: ${f.tree} is served from ${f.local.dir}, which lacks ${missing.join(' and ')}`, `copy the OS tree (e.g. the DVD's contents) into ${f.local.dir}`);
    }
    return ok(id, `profile ${f.profile}: OS tree ${f.tree} served from ${f.local.dir}`);
  }
  return warn(
    id,
    `unknown: profile ${f.profile}'s OS tree ${f.tree} is served by another web server; fleet doctor fetches nothing`,
    `check that ${f.tree.replace(/\/+$/, '')}/images/pxeboot/vmlinuz answers from the provisioning network, or serve the tree from DATA/www/repo (fleet's /repo/)`,
  );
}

export interface ImageFacts {
  profile: string;
  image: string;
  /** The image's digest in the store; null when the store has no such name. */
  digest: string | null;
  /** The store could not be read: why. */
  unknown?: string;
}

export function checkImage(f: ImageFacts): Finding {
  const id = `image:${f.profile}`;
  if (f.unknown) return warn(id, `unknown: profile ${f.profile}'s image ${f.image}: the image store cannot be read (${f.unknown})`, 'check the data dir and its images/index.json');
  if (f.digest === null) {
    return fail(id, `profile ${f.profile} installs image ${f.image}, which is not in the image store`, `sudo fleet image build ${f.image} --from debian:bookworm (or fleet image import ${f.image} FILE) on this data dir`);
  }
  return ok(id, `profile ${f.profile}: image ${f.image} is in the store (${f.digest.slice(0, 19)}…)`);
}

export interface BootenvFacts {
  /** Profiles that install an image (they netboot the boot environment). */
  imageProfiles: string[];
  /** The current build's directory; null when none. */
  current: string | null;
  unknown?: string;
}

export function checkBootenv(f: BootenvFacts): Finding {
  const id = 'bootenv';
  if (f.imageProfiles.length === 0) return ok(id, 'not needed: no profile installs an image');
  if (f.unknown) return warn(id, `unknown: the boot environment cannot be read (${f.unknown})`, 'sudo fleet bootenv build');
  if (f.current === null) return fail(id, `the boot environment is not built: profile${f.imageProfiles.length > 1 ? 's' : ''} ${f.imageProfiles.join(', ')} cannot install`, 'sudo fleet bootenv build (on this data dir)');
  return ok(id, `boot environment built (${f.current})`);
}

/** fleet's NFS server for diskless profiles (server/diskless/ganesha.ts). */
export interface NfsServerFacts {
  disklessProfiles: string[];
  /** Why ganesha cannot run here (ganeshaMissing), or null. */
  missing: string | null;
}

export function checkNfsServer(f: NfsServerFacts): Finding {
  const id = 'nfs-server';
  if (f.disklessProfiles.length === 0) return ok(id, 'not needed: no profile is diskless');
  if (f.missing) return fail(id, `${f.missing}: profile${f.disklessProfiles.length > 1 ? 's' : ''} ${f.disklessProfiles.join(', ')} cannot boot diskless`, 'apt-get install nfs-ganesha nfs-ganesha-vfs');
  return ok(id, `nfs-ganesha installed (diskless profile${f.disklessProfiles.length > 1 ? 's' : ''} ${f.disklessProfiles.join(', ')})`);
}

export interface AgentBundleFacts {
  dir: string;
  /** Files the kickstart downloads from /agent/ → present. */
  files: Record<string, boolean>;
  /** Profiles that install by kickstart (their %post downloads the agent). */
  kickstartProfiles: string[];
  /**
   * The bundle's recorded source digest (DIR/fleet-agent.source) differs from
   * this fleet's agent sources: it was built from another agent. Absent when
   * it matches, nothing is recorded, or the sources cannot be read.
   */
  stale?: boolean;
}

export function checkAgentBundle(f: AgentBundleFacts): Finding {
  const id = 'agent-bundle';
  const missing = Object.keys(f.files).filter((n) => !f.files[n]);
  if (missing.length === 0 && f.stale) {
    return warn(
      id,
      `the agent bundle in ${f.dir} was built from other agent sources than this fleet's (an older fleet?): ${f.kickstartProfiles.length ? `kickstart installs of ${f.kickstartProfiles.join(', ')} would get that agent` : 'the server serves it at /agent/'}`,
      `remove ${f.dir}/fleet-agent.source and run fleet image build (it rebuilds a stale bundle), or agent/package/build.sh --out ${f.dir}`,
    );
  }
  if (missing.length === 0) return ok(id, `agent bundle in ${f.dir}`);
  const fix = `agent/package/build.sh --out ${f.dir}`;
  if (f.kickstartProfiles.length === 0) return warn(id, `${f.dir} lacks ${missing.join(', ')} (no profile installs by kickstart now, images carry their own agent)`, fix);
  return fail(id, `${f.dir} lacks ${missing.join(', ')}: kickstart installs of ${f.kickstartProfiles.join(', ')} cannot enrol their agent`, fix);
}

// ------------------------------------------------------------------ host

/** `timedatectl show -p NTPSynchronized --value`: 'yes', 'no', or null with why. */
export function checkClock(f: { synchronized: 'yes' | 'no' | null; unknown?: string }): Finding {
  const id = 'clock';
  if (f.synchronized === 'yes') return ok(id, 'the clock is synchronised (NTP)');
  if (f.synchronized === 'no') {
    return warn(id, 'the clock is not synchronised: certificates fleet issues now may not yet be valid on nodes, and event times drift', 'enable NTP: timedatectl set-ntp true, or install chrony');
  }
  return warn(id, `unknown: ${f.unknown ?? 'the clock state could not be read'}`, 'check the clock is synchronised (chronyc tracking, or timedatectl)');
}

export const GiB = 1024 ** 3;
export const DISK_WARN_BYTES = 5 * GiB;
export const DISK_FAIL_BYTES = 1 * GiB;

export function checkDisk(f: { dataDir: string; /** the directory statfs was asked about (the data dir or its nearest existing parent) */ measured: string; freeBytes: number | null; unknown?: string }): Finding {
  const id = 'disk';
  if (f.freeBytes === null) return warn(id, `unknown: free space of ${f.dataDir} (${f.unknown ?? 'statfs failed'})`, `check with df -h ${f.measured}`);
  const gib = (f.freeBytes / GiB).toFixed(1);
  const where = f.measured === f.dataDir ? f.dataDir : `${f.measured} (the data dir ${f.dataDir} does not exist yet)`;
  const fix = `free space on the file system of ${f.measured}, or give --data a larger one`;
  if (f.freeBytes < DISK_FAIL_BYTES) return fail(id, `only ${gib} GiB free in ${where}: writes will fail`, fix);
  if (f.freeBytes < DISK_WARN_BYTES) return warn(id, `only ${gib} GiB free in ${where}: an image build needs ~1-2 GiB`, fix);
  return ok(id, `${gib} GiB free in ${where}`);
}

// ------------------------------------------------------------------ BMC network

export interface BmcRouteFacts {
  /** What the group is: the BMC subnet of fleet.yaml, or an address's /24. */
  group: string;
  /** The address the kernel was asked about (never contacted). */
  probe: string;
  /** How many nodes' BMCs fall in the group. */
  nodes: number;
  /** `ip route get`'s answer: the device (and gateway) or why there is none; null when it could not be asked. */
  route: { dev: string; via?: string } | { unreachable: string } | null;
  unknown?: string;
}

export function checkBmcRoute(f: BmcRouteFacts): Finding {
  const id = `bmc-route:${f.group}`;
  const what = `BMC network ${f.group} (${f.nodes} node${f.nodes === 1 ? '' : 's'})`;
  if (f.route === null) return warn(id, `unknown: ${what}: ${f.unknown ?? 'no route lookup possible'}`, 'install iproute2 (ip) and run fleet doctor again');
  if ('unreachable' in f.route) {
    return fail(id, `${what}: no route to ${f.probe} (${f.route.unreachable}): power and boot-device commands cannot reach the BMCs`, `add an address or a route for ${f.group} on the BMC network's NIC (networks.bmc in fleet.yaml)`);
  }
  return ok(id, `${what}: routed via ${f.route.via ? `${f.route.via} ` : ''}dev ${f.route.dev} (no packet sent)`);
}

/**
 * Groups nodes' BMC addresses by the fleet.yaml BMC subnet when it holds
 * them, else by /24: one route lookup per group. Pure.
 */
export function bmcGroups(addresses: string[], bmcSubnet: string | undefined): { group: string; probe: string; nodes: number }[] {
  const subnet = bmcSubnet ? parseCidr(bmcSubnet) : undefined;
  const groups = new Map<string, { group: string; probe: string; nodes: number }>();
  for (const a of addresses) {
    if (!isIPv4(a)) continue;
    const group = subnet && typeof subnet !== 'string' && cidrContains(subnet, a) ? bmcSubnet! : `${a.split('.').slice(0, 3).join('.')}.0/24`;
    const g = groups.get(group);
    if (g) g.nodes++;
    else groups.set(group, { group, probe: a, nodes: 1 });
  }
  return [...groups.values()];
}

// ------------------------------------------------------------------ the whole report

export interface DoctorFacts {
  boot: BootEndpointFacts;
  dhcp: DhcpFacts;
  dnsmasqPath: string | null;
  ipxe: IpxeFacts;
  interfaces: HostInterface[] | null;
  osTrees: OsTreeFacts[];
  images: ImageFacts[];
  bootenv: BootenvFacts;
  /** Absent: not gathered (treated as no diskless profile). */
  nfs?: NfsServerFacts;
  agent: AgentBundleFacts;
  clock: { synchronized: 'yes' | 'no' | null; unknown?: string };
  disk: { dataDir: string; measured: string; freeBytes: number | null; unknown?: string };
  /** Absent when not gathered (the reinstall preflight does not look at BMCs). */
  bmcRoutes?: BmcRouteFacts[];
}

export function runChecks(f: DoctorFacts): Finding[] {
  const out = [
    checkBootEndpoint(f.boot),
    checkDnsmasq({ dhcp: f.dhcp, path: f.dnsmasqPath }),
    checkIpxe({ dhcp: f.dhcp, ipxe: f.ipxe }),
    checkDhcpInterface({ dhcp: f.dhcp, interfaces: f.interfaces }),
    ...f.osTrees.map(checkOsTree),
    ...f.images.map(checkImage),
    checkBootenv(f.bootenv),
    checkNfsServer(f.nfs ?? { disklessProfiles: [], missing: null }),
    checkAgentBundle(f.agent),
    checkClock(f.clock),
    checkDisk(f.disk),
  ];
  if (f.bmcRoutes) {
    if (f.bmcRoutes.length === 0) out.push(ok('bmc-route', 'no node declares a BMC'));
    out.push(...f.bmcRoutes.map(checkBmcRoute));
  }
  return out;
}

/**
 * The checks a reinstall with `profile` depends on: the boot chain for every
 * profile (boot endpoints; dnsmasq, iPXE and the DHCP interface when fleet
 * serves DHCP), then the OS tree and the agent bundle (kickstart) or the
 * image and the boot environment (image, stateless, diskless: they boot the
 * boot environment's initrd under the image's kernel at every boot). Pure.
 */
export function profileDependencies(profile: { name: string; os: { install: 'kickstart' | 'image' | 'stateless' | 'diskless' } }): string[] {
  const chain = ['boot-endpoint', 'dnsmasq', 'ipxe', 'dhcp-interface'];
  if (profile.os.install === 'kickstart') return [...chain, `os-tree:${profile.name}`, 'agent-bundle'];
  return [...chain, `image:${profile.name}`, 'bootenv', ...(profile.os.install === 'diskless' ? ['nfs-server'] : [])];
}

/** The failed findings among those `profiles` depend on, each once. Pure. */
export function blockingFindings(findings: Finding[], profiles: { name: string; os: { install: 'kickstart' | 'image' | 'stateless' | 'diskless' } }[]): Finding[] {
  const ids = new Set(profiles.flatMap(profileDependencies));
  return findings.filter((f) => f.status === 'fail' && ids.has(f.id));
}

/** The command's exit code: 1 when any check fails; warnings alone are 0 (common/errors.ts Exit). */
export function doctorExit(findings: Finding[]): number {
  return findings.some((f) => f.status === 'fail') ? Exit.FAILED : Exit.OK;
}

/** One line per finding: `fail  boot-endpoint  message — fix: ...`. */
export function formatFinding(f: Finding): string {
  return `${f.status.padEnd(4)}  ${f.id}: ${f.message}${f.fix ? ` — fix: ${f.fix}` : ''}`;
}

export function summarize(findings: Finding[]): { ok: number; warn: number; fail: number } {
  return {
    ok: findings.filter((f) => f.status === 'ok').length,
    warn: findings.filter((f) => f.status === 'warn').length,
    fail: findings.filter((f) => f.status === 'fail').length,
  };
}

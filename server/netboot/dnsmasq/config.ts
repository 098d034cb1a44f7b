/**
 * dnsmasq configuration, rendered from the cluster's provisioning network,
 * its netboot settings and the known nodes. Pure: no I/O.
 *
 * Two modes (DESIGN §2, Tinkerbell smee keeps them as separate handlers too):
 *   authoritative  fleet's dnsmasq is the DHCP server of the provisioning
 *                  network: a dynamic range for machines fleet does not know
 *                  (the "unknown range"), one reservation file per known MAC
 *                  in a dhcp-hostsdir (re-read by dnsmasq through inotify),
 *                  boot file by client architecture / iPXE user class.
 *   proxy          the site keeps its DHCP server; dnsmasq only answers PXE
 *                  clients (proxyDHCP, `dhcp-range=<net>,proxy`) with
 *                  `pxe-service` entries. No leases exist in this mode, so no
 *                  lease events: discovery then relies on the HTTP boot path.
 *
 * Boot file choice, first match wins (tags are set by dhcp-match/userclass):
 *   1. user class iPXE or option 175 (tag ipxe) → http://SERVER/boot.ipxe
 *   2. client-arch 0 (tag bios)                 → undionly.kpxe
 *   3. client-arch 7, 8, 9 (tag efi64)          → ipxe.efi (or snponly.efi)
 *   4. client-arch 11 (tag arm64)               → the arm64 binary, only when
 *      the TFTP root has one (Debian's `ipxe` package ships none)
 *   otherwise no boot file (a DHCP client that is not a PXE ROM).
 *
 * DESIGN §4: every value is validated right before rendering; a value that
 * does not match is an error (FleetError config.invalid listing every
 * problem), never escaped into the file.
 */
import { FleetError } from '../../../common/errors.js';
import {
  INTERFACE_NAME,
  NODE_NAME,
  POSIX_NAME,
  cidrContains,
  intToIp,
  ipToInt,
  isDomain,
  isIPv4,
  normalizeMac,
  parseCidr,
  show,
  type Cidr,
} from '../../../common/patterns.js';
import type { ClusterSpec, IpRange } from '../../model.js';
import { bootScriptUrl } from '../render/urls.js';

export type DhcpMode = 'authoritative' | 'proxy';

/** A known node as a reservation: its provisioning IP (optional) and its MACs, primary first. */
export interface HostReservation {
  name: string;
  ip?: string | null;
  macs: string[];
}

/** Where dnsmasq finds and writes its files. All absolute. */
export interface DnsmasqFilePaths {
  /** dhcp-hostsdir: one reservation file per MAC. */
  hostsDir: string;
  /** hostsdir for DNS names (only used when `dns` is set). */
  dnsHostsDir: string;
  tftpRoot: string;
  leaseFile: string;
  logFile: string;
  pidFile: string;
  /** dhcp-script; null: no lease events. */
  hookScript: string | null;
}

/** What the cluster says (see dnsmasqSettingsFromCluster); the supervisor adds paths, user and hosts. */
export interface DnsmasqSettings {
  mode: DhcpMode;
  /** The NIC to serve on (required: DHCP is never served on every interface of a multi-homed host). */
  interface: string;
  /** Provisioning subnet, CIDR. */
  subnet: string;
  /** Dynamic range for machines fleet does not know (authoritative mode). */
  unknownRange?: IpRange;
  /** Lease time in seconds (authoritative mode), >= 120. Default 600 (seed 000: default-lease-time 600). */
  leaseTime?: number;
  /** Address of this server on the provisioning network: next-server / TFTP server. */
  serverAddress: string;
  /** What iPXE is handed: http://SERVER:PORT/boot.ipxe */
  bootScriptUrl: string;
  gateway?: string;
  dns?: string[];
  ntp?: string[];
  /** DNS domain handed out as option 15. */
  domain?: string;
  /** Binary for x86-64 UEFI clients: ipxe.efi (default; own drivers) or snponly.efi (firmware's network driver). */
  efiBinary?: string;
  /** Binary for arm64 UEFI clients (client-arch 11), when the TFTP root has one. */
  arm64Binary?: string | null;
  /** Binary for BIOS clients. Default undionly.kpxe. */
  biosBinary?: string;
  /** dnsmasq pings an address before offering it (default true); false renders `no-ping` (load tests). */
  pingCheck?: boolean;
  /** Log every DHCP exchange in detail (`log-dhcp`). Default false. */
  logDhcp?: boolean;
  /** DNS for node names (off by default: `port=0`). Names come from the reservations. */
  dnsServer?: { port?: number };
  /**
   * Send IPv6 router advertisements (RA only, no DHCPv6) on the interface, built from its
   * IPv6 prefix: iPXE otherwise waits ~13 s for IPv6 autoconfiguration after DHCPv4
   * (LAB-NOTES). Needs a ULA/global address on the interface. Default false.
   */
  routerAdvertisements?: boolean;
}

export interface DnsmasqConfigInput extends DnsmasqSettings {
  paths: DnsmasqFilePaths;
  /** User dnsmasq drops to after start-up (rendered only when given; the supervisor gives one when it runs as root). */
  user?: string | null;
  hosts: HostReservation[];
}

export interface DnsmasqConfig {
  /** The dnsmasq.conf text. */
  conf: string;
  /** dhcp-hostsdir content: file name → file text (empty in proxy mode). */
  hosts: Map<string, string>;
  /** DNS hostsdir content (empty unless dnsServer is set). */
  dnsHosts: Map<string, string>;
}

export const DEFAULT_LEASE_TIME = 600;
export const DEFAULT_BIOS_BINARY = 'undionly.kpxe';
export const DEFAULT_EFI_BINARY = 'ipxe.efi';

/** A file name dnsmasq may hand out over TFTP: no path, conservative characters. */
const BINARY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A path rendered into dnsmasq.conf: absolute, no ',' (dnsmasq's separator), no whitespace, no '..'. */
const CONF_PATH = /^\/[A-Za-z0-9_./@+-]{0,1023}$/;
/**
 * The boot script URL as it lands in dhcp-boot / pxe-service: http(s), a host
 * (IPv4 or name) with an optional port, a plain path. No ',' (dnsmasq's
 * separator), quotes, spaces or query string. At most 127 characters (the
 * BOOTP file field).
 */
const BOOT_URL = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~\/-]*)?$/;

/** dhcp-hostsdir file name of a MAC: aa-bb-cc-dd-ee-ff (no ':' in file names). */
export function hostFileName(mac: string): string {
  return mac.replace(/:/g, '-');
}

function problemsError(what: string, problems: string[]): FleetError {
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new FleetError('config.invalid', `${what}: ${problems[0]}${more}`, { problems });
}

interface CheckedNet {
  cidr: Cidr;
  netmask: string;
  range?: { start: number; end: number };
}

function checkIp(problems: string[], what: string, ip: string | undefined, net?: Cidr, inside = false): boolean {
  if (ip === undefined) return false;
  if (typeof ip !== 'string' || !isIPv4(ip)) {
    problems.push(`${what} ${show(String(ip))} is not an IPv4 address`);
    return false;
  }
  if (inside && net) {
    if (!cidrContains(net, ip)) {
      problems.push(`${what} ${ip} is outside the provisioning subnet ${net.address}/${net.prefix}`);
      return false;
    }
    const n = ipToInt(ip);
    if (net.prefix < 31 && (n === net.first || n === net.last)) {
      problems.push(`${what} ${ip} is the network or broadcast address of ${net.address}/${net.prefix}`);
      return false;
    }
  }
  return true;
}

function checkNet(problems: string[], s: DnsmasqSettings): CheckedNet | undefined {
  const cidr = parseCidr(String(s.subnet));
  if (typeof cidr === 'string') {
    problems.push(`subnet: ${cidr}`);
    return undefined;
  }
  const netmask = intToIp(cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0);
  const out: CheckedNet = { cidr, netmask };
  if (s.mode === 'authoritative') {
    const r = s.unknownRange;
    if (!r) {
      problems.push('authoritative mode needs the unknown range (networks.provisioning.unknown_range)');
    } else {
      const okStart = checkIp(problems, 'unknown range start', r.start, cidr, true);
      const okEnd = checkIp(problems, 'unknown range end', r.end, cidr, true);
      if (okStart && okEnd) {
        const start = ipToInt(r.start);
        const end = ipToInt(r.end);
        if (start > end) problems.push(`unknown range ${r.start}-${r.end} ends before it starts`);
        else out.range = { start, end };
      }
    }
  }
  return out;
}

/** Validates the settings; returns the problems (empty when fine). */
function checkSettings(s: DnsmasqSettings, problems: string[]): CheckedNet | undefined {
  if (s.mode !== 'authoritative' && s.mode !== 'proxy') problems.push(`mode ${show(String(s.mode))} is not authoritative or proxy`);
  if (typeof s.interface !== 'string' || !INTERFACE_NAME.test(s.interface)) {
    problems.push(`interface ${show(String(s.interface))} is not a valid interface name (^[A-Za-z0-9_.:-]{1,15}$)`);
  }
  const net = checkNet(problems, s);
  checkIp(problems, 'server address', s.serverAddress, net?.cidr, true);
  if (s.serverAddress === undefined) problems.push('server address is missing');
  if (s.gateway !== undefined) checkIp(problems, 'gateway', s.gateway, net?.cidr, true);
  for (const [i, ip] of (s.dns ?? []).entries()) checkIp(problems, `dns server ${i + 1}`, ip);
  for (const [i, ip] of (s.ntp ?? []).entries()) checkIp(problems, `ntp server ${i + 1}`, ip);
  if (s.domain !== undefined && (typeof s.domain !== 'string' || !isDomain(s.domain))) problems.push(`domain ${show(String(s.domain))} is not a DNS domain`);
  if (typeof s.bootScriptUrl !== 'string' || !BOOT_URL.test(s.bootScriptUrl) || s.bootScriptUrl.length > 127) {
    problems.push(
      `boot script URL ${show(String(s.bootScriptUrl))} must be http(s)://HOST[:PORT]/path with only [A-Za-z0-9._~/-] in the path and at most 127 characters`,
    );
  }
  for (const [what, v] of [
    ['efi binary', s.efiBinary],
    ['bios binary', s.biosBinary],
    ['arm64 binary', s.arm64Binary ?? undefined],
  ] as const) {
    if (v !== undefined && (typeof v !== 'string' || !BINARY_NAME.test(v))) problems.push(`${what} ${show(String(v))} is not a plain file name`);
  }
  if (s.leaseTime !== undefined && (!Number.isInteger(s.leaseTime) || s.leaseTime < 120 || s.leaseTime > 366 * 86400)) {
    problems.push(`lease time ${String(s.leaseTime)} must be an integer number of seconds between 120 and ${366 * 86400}`);
  }
  if (s.dnsServer) {
    const port = s.dnsServer.port ?? 53;
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`dns port ${String(port)} must be 1-65535`);
    if (s.domain === undefined) problems.push('DNS for node names needs the cluster domain');
  }
  return net;
}

function checkPaths(p: DnsmasqFilePaths, problems: string[]): void {
  const entries: [string, string | null][] = [
    ['hosts dir', p.hostsDir],
    ['dns hosts dir', p.dnsHostsDir],
    ['tftp root', p.tftpRoot],
    ['lease file', p.leaseFile],
    ['log file', p.logFile],
    ['pid file', p.pidFile],
    ['dhcp script', p.hookScript],
  ];
  for (const [what, v] of entries) {
    if (v === null && what === 'dhcp script') continue;
    if (typeof v !== 'string' || !CONF_PATH.test(v) || v.split('/').includes('..')) {
      problems.push(`${what} path ${show(String(v))} must be absolute, without '..', ',' or whitespace`);
    }
  }
}

/** Validated, canonical reservations: one entry per MAC, the IP only on the node's primary (first) MAC. */
export interface ReservationLine {
  mac: string;
  ip: string | null;
  name: string;
}

/**
 * Checks the known nodes against the subnet and the unknown range and
 * flattens them to one line per MAC. dnsmasq refuses two dhcp-host entries
 * with the same IP, so a node with several MACs gets its IP on its first
 * (primary) MAC; the others get its name only (a dynamic address).
 */
export function reservationLines(hosts: HostReservation[], net: { subnet: string; unknownRange?: IpRange }): ReservationLine[] {
  const problems: string[] = [];
  const cidr = parseCidr(String(net.subnet));
  const lines: ReservationLine[] = [];
  const macOwner = new Map<string, string>();
  const ipOwner = new Map<string, string>();
  const names = new Set<string>();
  const range =
    net.unknownRange && isIPv4(net.unknownRange.start) && isIPv4(net.unknownRange.end)
      ? { start: ipToInt(net.unknownRange.start), end: ipToInt(net.unknownRange.end) }
      : undefined;
  for (const h of hosts) {
    const name = String(h.name);
    if (!NODE_NAME.test(name)) {
      problems.push(`node name ${show(name)} is not a lower-case RFC 1123 label`);
      continue;
    }
    if (names.has(name)) problems.push(`node ${name} is given twice`);
    names.add(name);
    let ip: string | null = null;
    if (h.ip !== undefined && h.ip !== null) {
      if (checkIp(problems, `node ${name} ip`, h.ip, typeof cidr === 'string' ? undefined : cidr, true)) {
        const n = ipToInt(h.ip);
        if (range && n >= range.start && n <= range.end) problems.push(`node ${name} ip ${h.ip} is inside the unknown range`);
        const other = ipOwner.get(h.ip);
        if (other !== undefined) problems.push(`node ${name} ip ${h.ip} is already node ${other}'s`);
        ipOwner.set(h.ip, name);
        ip = h.ip;
      }
    }
    if (!Array.isArray(h.macs)) {
      problems.push(`node ${name} macs is not a list`);
      continue;
    }
    for (const [i, raw] of h.macs.entries()) {
      const mac = typeof raw === 'string' ? normalizeMac(raw) : undefined;
      if (!mac) {
        problems.push(`node ${name} mac ${show(String(raw))} is not a unicast MAC address`);
        continue;
      }
      const other = macOwner.get(mac);
      if (other !== undefined) {
        problems.push(`node ${name} mac ${mac} is already ${other === name ? 'listed' : `node ${other}'s`}`);
        continue;
      }
      macOwner.set(mac, name);
      lines.push({ mac, ip: i === 0 ? ip : null, name });
    }
  }
  if (problems.length > 0) throw problemsError('dnsmasq reservations', problems);
  return lines;
}

/** dhcp-hostsdir files: `aa-bb-cc-dd-ee-ff` → `aa:bb:cc:dd:ee:ff,10.10.1.1,thor`. */
export function renderHostFiles(lines: ReservationLine[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of lines) out.set(hostFileName(l.mac), `${[l.mac, ...(l.ip ? [l.ip] : []), l.name].join(',')}\n`);
  return out;
}

/** DNS hostsdir files (one per node with an IP): `thor` → `10.10.1.1 thor.cluster.local thor`. */
export function renderDnsHostFiles(lines: ReservationLine[], domain: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of lines) if (l.ip) out.set(l.name, `${l.ip} ${l.name}.${domain} ${l.name}\n`);
  return out;
}

/** Validates the settings and paths (throws FleetError config.invalid listing every problem). */
export function validateDnsmasqInput(input: DnsmasqConfigInput): CheckedNet {
  const problems: string[] = [];
  const net = checkSettings(input, problems);
  checkPaths(input.paths, problems);
  if (input.user !== undefined && input.user !== null && !POSIX_NAME.test(input.user)) problems.push(`user ${show(String(input.user))} is not a valid user name`);
  if (problems.length > 0 || !net) throw problemsError('dnsmasq config', problems.length > 0 ? problems : ['subnet is invalid']);
  return net;
}

/** Renders dnsmasq.conf and the reservation files. Throws FleetError('config.invalid') on any bad value. */
export function renderDnsmasqConfig(input: DnsmasqConfigInput): DnsmasqConfig {
  const net = validateDnsmasqInput(input);
  const lines = reservationLines(input.hosts, { subnet: input.subnet, unknownRange: input.unknownRange });
  const p = input.paths;
  const bios = input.biosBinary ?? DEFAULT_BIOS_BINARY;
  const efi = input.efiBinary ?? DEFAULT_EFI_BINARY;
  const arm64 = input.arm64Binary ?? null;
  const server = input.serverAddress;
  const url = input.bootScriptUrl;
  const out: string[] = [];
  const add = (...ls: string[]) => out.push(...ls);

  add(
    '# Generated by fleet (server/netboot/dnsmasq). Do not edit: fleet rewrites it at every start.',
    `# mode: ${input.mode}`,
    '',
    '# --- process',
    'keep-in-foreground',
    `pid-file=${p.pidFile}`,
    ...(input.user ? [`user=${input.user}`] : []),
    `log-facility=${p.logFile}`,
    ...(input.logDhcp ? ['log-dhcp'] : []),
    '',
    '# --- interfaces: only the provisioning NIC, never loopback',
    `interface=${input.interface}`,
    'except-interface=lo',
    'bind-dynamic',
    '',
  );

  if (input.dnsServer) {
    const domain = input.domain!;
    add(
      '# --- DNS: node names only (no upstream forwarding)',
      `port=${input.dnsServer.port ?? 53}`,
      'no-resolv',
      'no-hosts',
      'domain-needed',
      'bogus-priv',
      `domain=${domain}`,
      `local=/${domain}/`,
      `hostsdir=${p.dnsHostsDir}`,
      '',
    );
  } else {
    add('# --- DNS: off', 'port=0', '');
  }

  add('# --- DHCP');
  if (input.mode === 'authoritative') {
    const range = net.range!;
    const leaseTime = input.leaseTime ?? DEFAULT_LEASE_TIME;
    add(
      'dhcp-authoritative',
      `dhcp-range=${intToIp(range.start)},${intToIp(range.end)},${net.netmask},${leaseTime}`,
      // Every address of the subnet may be leased (reservations included); no more.
      `dhcp-lease-max=${Math.max(1, net.cidr.last - net.cidr.first - 1)}`,
      `dhcp-hostsdir=${p.hostsDir}`,
    );
    if (input.gateway) add(`dhcp-option=option:router,${input.gateway}`);
    if (input.dns && input.dns.length > 0) add(`dhcp-option=option:dns-server,${input.dns.join(',')}`);
    if (input.ntp && input.ntp.length > 0) add(`dhcp-option=option:ntp-server,${input.ntp.join(',')}`);
    if (input.domain) add(`dhcp-option=option:domain-name,${input.domain}`);
    if (input.pingCheck === false) add('no-ping');
  } else {
    add(`dhcp-range=${net.cidr.address},proxy,${net.netmask}`);
  }
  if (input.routerAdvertisements) add('enable-ra', `dhcp-range=::,constructor:${input.interface},ra-only`);
  add(`dhcp-leasefile=${p.leaseFile}`);
  if (p.hookScript) add(`dhcp-script=${p.hookScript}`, 'script-on-renewal');
  add('');

  add(
    '# --- PXE: tags from the client architecture (option 93) and iPXE (option 175 / user class)',
    'dhcp-match=set:ipxe,175',
    'dhcp-userclass=set:ipxe,iPXE',
    'dhcp-match=set:bios,option:client-arch,0',
    // 7 and 9 are x86-64 UEFI; 8 is treated the same way, as in the seed's dhcpd.conf.
    'dhcp-match=set:efi64,option:client-arch,7',
    'dhcp-match=set:efi64,option:client-arch,8',
    'dhcp-match=set:efi64,option:client-arch,9',
    'dhcp-match=set:arm64,option:client-arch,11',
  );
  if (input.mode === 'authoritative') {
    add(
      `dhcp-boot=tag:ipxe,${url},,${server}`,
      `dhcp-boot=tag:!ipxe,tag:bios,${bios},,${server}`,
      `dhcp-boot=tag:!ipxe,tag:efi64,${efi},,${server}`,
    );
    if (arm64) add(`dhcp-boot=tag:!ipxe,tag:arm64,${arm64},,${server}`);
  } else {
    // proxyDHCP: one service per client system type, so PXE boots it without a menu.
    const csas: [string, string][] = [
      ['x86PC', bios],
      ['x86-64_EFI', efi],
      ['BC_EFI', efi],
      ...(arm64 ? ([['ARM64_EFI', arm64]] as [string, string][]) : []),
    ];
    for (const [csa] of csas) add(`pxe-service=tag:ipxe,${csa},"fleet boot script",${url}`);
    for (const [csa, file] of csas) add(`pxe-service=tag:!ipxe,${csa},"fleet iPXE",${file},${server}`);
  }
  add(
    '',
    '# --- TFTP: the iPXE binaries only; tftp-secure serves only files owned by the dnsmasq user',
    'enable-tftp',
    `tftp-root=${p.tftpRoot}`,
    'tftp-secure',
    '',
  );

  return {
    conf: out.join('\n'),
    hosts: input.mode === 'authoritative' ? renderHostFiles(lines) : new Map(),
    dnsHosts: input.dnsServer ? renderDnsHostFiles(lines, input.domain!) : new Map(),
  };
}

/** Options the cluster file does not hold. */
export interface ClusterDnsmasqOptions {
  /** Base URL of the boot HTTP server as nodes reach it, e.g. http://10.10.0.1:8080. Default: http://MANAGEMENT_ADDRESS:PORT with the port of netboot.http.listen (else server.listen, else 8080). */
  serverUrl?: string;
  leaseTime?: number;
  efiBinary?: string;
  arm64Binary?: string | null;
  pingCheck?: boolean;
  logDhcp?: boolean;
  dnsServer?: { port?: number };
  routerAdvertisements?: boolean;
}

function listenPort(listen: string | undefined): number | undefined {
  const m = listen ? /:(\d{1,5})$/.exec(listen) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * Settings from a ClusterSpec: mode and interface from `netboot.dhcp`
 * (interface falls back to networks.provisioning.interface), subnet, unknown
 * range, gateway, DNS and NTP from networks.provisioning, domain and server
 * address from `cluster`. Missing interface → FleetError('config.invalid').
 * Nodes become reservations with reservationsOf().
 */
export function dnsmasqSettingsFromCluster(
  spec: Pick<ClusterSpec, 'cluster' | 'networks' | 'netboot' | 'server'>,
  opts: ClusterDnsmasqOptions = {},
): DnsmasqSettings {
  const prov = spec.networks.provisioning;
  const iface = spec.netboot?.dhcp?.interface ?? prov.interface;
  if (!iface) {
    throw new FleetError(
      'config.invalid',
      'dnsmasq needs the provisioning interface: set netboot.dhcp.interface or networks.provisioning.interface in fleet.yaml',
    );
  }
  const port = listenPort(spec.netboot?.http?.listen) ?? listenPort(spec.server?.listen) ?? 8080;
  const serverUrl = (opts.serverUrl ?? `http://${spec.cluster.managementAddress}:${port}`).replace(/\/+$/, '');
  const s: DnsmasqSettings = {
    mode: spec.netboot?.dhcp?.mode ?? 'authoritative',
    interface: iface,
    subnet: prov.subnet,
    unknownRange: prov.unknownRange,
    serverAddress: spec.cluster.managementAddress,
    bootScriptUrl: bootScriptUrl(serverUrl),
    dns: prov.dns,
    ntp: prov.ntp,
    domain: spec.cluster.domain,
  };
  if (prov.gateway !== undefined) s.gateway = prov.gateway;
  if (opts.leaseTime !== undefined) s.leaseTime = opts.leaseTime;
  if (opts.efiBinary !== undefined) s.efiBinary = opts.efiBinary;
  if (opts.arm64Binary !== undefined) s.arm64Binary = opts.arm64Binary;
  if (opts.pingCheck !== undefined) s.pingCheck = opts.pingCheck;
  if (opts.logDhcp !== undefined) s.logDhcp = opts.logDhcp;
  if (opts.dnsServer !== undefined) s.dnsServer = opts.dnsServer;
  const ra = opts.routerAdvertisements ?? spec.netboot?.dhcp?.routerAdvertisements;
  if (ra !== undefined) s.routerAdvertisements = ra;
  return s;
}

/** Known nodes (NodeSpec or NodeRecord) as reservations. */
export function reservationsOf(nodes: readonly { name: string; ip?: string | null; macs: string[] }[]): HostReservation[] {
  return nodes.map((n) => ({ name: n.name, ip: n.ip ?? null, macs: [...n.macs] }));
}

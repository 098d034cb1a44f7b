/**
 * fleet.yaml → ClusterSpec. Pure: text in, spec out, no I/O.
 *
 * Every problem is collected with its YAML path and position, and one
 * FleetError('config.invalid') listing them all is thrown at the end
 * (DESIGN.md §1, §7 "changesets"). docs/configuration.md is the reference
 * of every key.
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { parseLifecycleConfig, type LifecycleSettings } from '../lifecycle/settings.js';
import { FleetError } from '../../common/errors.js';
import type {
  BmcProtocol,
  RedfishAuth,
  ClusterInfo,
  ClusterSpec,
  CredentialSpec,
  GroupSpec,
  NetbootSpec,
  Networks,
  NfsExportSpec,
  NfsMountSpec,
  NodeBmcSpec,
  NodeSpec,
  ProfileSpec,
  RepoSpec,
  RolesSpec,
  ServerSpec,
  SlurmNodeRole,
  SlurmRoleSpec,
  UserSpec,
} from '../model.js';
import { ROTATED_PREFIX, type StoreSpec } from '../model.js';
import { checkStoreUrl } from '../store/url.js';
import { expandNodeSet, expandPattern } from '../nodeset/index.js';
import { installKernelArgs } from '../netboot/decide.js';
import { installCommandLine, MAX_KERNEL_CMDLINE } from '../netboot/render/ipxe.js';
import { kickstartUrl, treeKernelUrl } from '../netboot/render/urls.js';
import { configInvalid } from './issues.js';
import { checkImageName } from '../images/names.js';
import { EXPECT_FIELD_NAMES, parseExpectRule, type ExpectSpec } from '../../common/inventory/expect.js';
import {
  BMC_USERNAME,
  CHRONY_MAKESTEP,
  ENV_NAME,
  INTERFACE_NAME,
  MOUNT_OPTIONS,
  OBJECT_NAME,
  REPO_FILE_GLOB,
  checkAbsolutePath,
  checkCryptHash,
  checkFilePath,
  checkHttpUrl,
  checkId,
  checkKernelArg,
  checkListen,
  checkNfsSource,
  checkNodeName,
  checkPackageName,
  checkPartitionLine,
  checkPort,
  checkPosixName,
  checkRepoName,
  checkSshKey,
  checkTimezone,
  cidrContains,
  ipToInt,
  isDomain,
  isHostname,
  isIPv4,
  normalizeMac,
  parseCidr,
  show,
  type Cidr,
} from '../../common/patterns.js';
import { AliasBombError, Fields, Reader, closest } from './reader.js';
import { parseDiscovery } from './discovery.js';
import { parseGroupsSection } from './groups.js';

export interface ParseOptions {
  /** Name used in messages, e.g. the file name. Default 'fleet.yaml'. */
  source?: string;
  /**
   * Texts of the files fleet.yaml names (discovery rules' serials_file), by
   * the path as written: read by the caller (loadConfigFile, the CLI), so
   * that parsing reads nothing. A file named but not given is an error.
   */
  files?: Readonly<Record<string, string>>;
}

export const BMC_PROTOCOLS: readonly BmcProtocol[] = ['ipmi', 'redfish', 'ipmitool'];
export const DEFAULT_BMC_PORT: Record<BmcProtocol, number> = { ipmi: 623, ipmitool: 623, redfish: 443 };
export const REDFISH_AUTH_MODES: readonly RedfishAuth[] = ['auto', 'session', 'basic'];
/** Upper bound of bmc.power_wait, seconds: a BMC that takes longer is broken, and a caller waits this long per node. */
export const MAX_POWER_WAIT_SECONDS = 600;
/** A Redfish resource Id as fleet accepts it in bmc.system (the last segment of the member's @odata.id). */
const REDFISH_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** Most nodes one key (and one value range) may expand to. */
export const MAX_NODES_PER_KEY = 100_000;
/** Most nodes one fleet.yaml may declare in all (the default nodeset expansion limit). */
export const MAX_NODES = 100_000;
/** fleet.yaml larger than this is refused before parsing. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

const TOP_KEYS = ['version', 'cluster', 'networks', 'credentials', 'profiles', 'nodes', 'netboot', 'server', 'lifecycle', 'discovery', 'groups', 'groups_file', 'store'] as const;

/** Where a value was written, for cross-check issues. */
interface Loc {
  path: string;
  node: Node | undefined;
}

interface NodeDraft {
  name: string;
  profile?: string;
  ip?: string;
  macs: string[];
  bmc?: Partial<NodeBmcSpec>;
  pet: boolean;
  at: { key: Loc; ip?: Loc; macs: Loc[]; bmcAddress?: Loc; profile?: Loc; credentials?: Loc; bmcSystem?: Loc };
}

interface NetDraft {
  subnet?: Cidr;
  subnetText?: string;
  unknown?: { start: string; end: string };
  unknownAt?: Loc;
  bmcSubnet?: Cidr;
  bmcSubnetText?: string;
  gateway?: string;
  gatewayAt?: Loc;
  ntp: string[];
}

const ipCheck = (s: string): string | undefined => (isIPv4(s) ? undefined : `${show(s)} is not a valid IPv4 address`);
const hostOrIp = (s: string): string | undefined => (isIPv4(s) || isHostname(s) ? undefined : `${show(s)} is not a valid IPv4 address or host name`);
const objectName = (what: string) => (s: string) =>
  OBJECT_NAME.test(s) ? undefined : `${what} name ${show(s)} is not valid (letters, digits, '_', '.', '-'; starting with a letter or digit)`;
const patternCheck = (re: RegExp, what: string) => (s: string) => (re.test(s) ? undefined : `${show(s)} is not a valid ${what}`);

/** A repository's apt suite and components (repos role, Debian): one word each, nothing that could break the sources line. */
const APT_SUITE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const APT_COMPONENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Parses fleet.yaml text into a ClusterSpec.
 * @throws FleetError('config.invalid', '<source> has N errors', {source, errors: ConfigIssue[]})
 */
export function parseConfig(text: string, opts: ParseOptions = {}): ClusterSpec {
  const source = opts.source ?? 'fleet.yaml';
  if (text.length > MAX_CONFIG_BYTES || Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    throw configInvalid(source, [{ path: '', message: `${source} is larger than ${MAX_CONFIG_BYTES} bytes` }]);
  }
  const lc = new LineCounter();
  // uniqueKeys: false because yaml's check is quadratic in the keys of a mapping; the Reader finds repeated keys in one pass.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, schema: 'core', merge: false, strict: true });
  const r = new Reader(doc, lc);
  for (const key of r.duplicateKeys) {
    r.error('', key, 'YAML syntax error: Map keys must be unique');
  }

  if (doc.errors.length > 0 || r.issues.length > 0) {
    // The structure of a document with syntax errors cannot be trusted: report the syntax errors only.
    for (const e of doc.errors) {
      r.issues.push({ path: '', ...r.posOf(e.pos[0]), message: `YAML syntax error: ${e.message}` });
    }
    throw configInvalid(source, r.issues);
  }
  try {
    return parseTree(r, doc.contents, source, opts.files);
  } catch (e) {
    // An alias bomb: its one issue says so; whatever else was found is noise.
    if (e instanceof AliasBombError) throw configInvalid(source, [e.issue]);
    throw e;
  }
}

function parseTree(r: Reader, contents: unknown, source: string, files: ParseOptions['files']): ClusterSpec {

  const root = r.resolve(contents, '');
  if (root === undefined) {
    r.issues.push({ path: '', line: 1, column: 1, message: `${source} is empty` });
    throw configInvalid(source, r.issues);
  }
  // Top-level x-* keys are free (anchors for aliases and << merges), as in docker compose.
  const top = r.fields(root, '', TOP_KEYS, ['cluster', 'networks', 'profiles', 'nodes'], undefined, { extensions: true });
  if (!top) throw configInvalid(source, r.issues);

  if (top.get('version') !== undefined) {
    const v = top.int('version');
    if (v !== undefined && v !== 1) r.error('version', top.get('version'), `unsupported version ${v}; this fleet reads version 1`);
  }

  const { mgmtAt, ...cluster } = parseCluster(r, top);
  const net = { ntp: [] } as NetDraft;
  const networks = parseNetworks(r, top, net, cluster);
  // Names declared, valid or not: a node naming a broken profile gets no second, misleading error.
  const declaredCredentials = new Set<string>();
  const declaredProfiles = new Set<string>();
  const credentials = parseCredentials(r, top, declaredCredentials);
  const kernelArgsAt = new Map<string, Loc>();
  const slurmAt = new Map<string, Loc>();
  const profiles = parseProfiles(r, top, net, declaredProfiles, kernelArgsAt, slurmAt);
  const drafts = parseNodes(r, top);
  const netboot = parseNetboot(r, top);
  const server = parseServer(r, top);
  const store = parseStore(r, top);
  const lifecycle = parseLifecycle(r, top);
  const discovery = parseDiscovery(r, top, {
    declaredProfiles,
    declaredCredentials,
    ...(net.subnet ? { subnet: net.subnet, subnetText: net.subnetText! } : {}),
    ...(net.unknown ? { unknown: net.unknown } : {}),
    ...(net.bmcSubnet ? { bmcSubnet: net.bmcSubnet, bmcSubnetText: net.bmcSubnetText! } : {}),
    ...(cluster.managementAddress !== undefined ? { managementAddress: cluster.managementAddress } : {}),
    ...(cluster.managementName !== undefined ? { managementName: cluster.managementName } : {}),
    ...(net.gateway !== undefined ? { gateway: net.gateway } : {}),
    bmcProtocols: BMC_PROTOCOLS,
    defaultBmcPort: DEFAULT_BMC_PORT,
    ...(files ? { files } : {}),
    limit: MAX_NODES_PER_KEY,
  });

  const byProfile = new Map<string, string[]>([...declaredProfiles].map((p) => [p, []]));
  for (const d of drafts) if (d.profile !== undefined) byProfile.get(d.profile)?.push(d.name);
  const groups = parseGroupsSection(r, top, files, byProfile, MAX_NODES);

  crossCheck(r, { cluster, mgmtAt, net, declaredCredentials, declaredProfiles, drafts });
  checkCommandLines(r, profiles, drafts, kernelArgsAt);
  checkSlurm(r, profiles, drafts, slurmAt);

  if (r.issues.length > 0) throw configInvalid(source, r.issues);

  const spec: ClusterSpec = {
    cluster: cluster as ClusterInfo,
    networks: networks as Networks,
    credentials,
    profiles,
    nodes: drafts.map(finishNode),
  };
  if (netboot) spec.netboot = netboot;
  if (server) spec.server = server;
  if (store) spec.store = store;
  if (lifecycle) spec.lifecycle = lifecycle;
  if (discovery) spec.discovery = discovery;
  if (groups.groups) spec.groups = groups.groups;
  if (groups.groupsFile !== undefined) spec.groupsFile = groups.groupsFile;
  return spec;
}

/** `lifecycle:` (timeouts, retries): parsed by the lifecycle module, its issues reported at the section. */
function parseLifecycle(r: Reader, top: Fields): LifecycleSettings | undefined {
  const node = top.get('lifecycle');
  if (node === undefined) return undefined;
  const { settings, issues } = parseLifecycleConfig((node as { toJSON(): unknown }).toJSON());
  for (const i of issues) r.error(i.path, node, i.message);
  return settings;
}

function finishNode(d: NodeDraft): NodeSpec {
  const n: NodeSpec = { name: d.name, profile: d.profile!, macs: d.macs, pet: d.pet };
  if (d.ip !== undefined) n.ip = d.ip;
  if (d.bmc) n.bmc = d.bmc as NodeBmcSpec;
  return n;
}

// ---------------------------------------------------------------- cluster

type ClusterDraft = Partial<ClusterInfo> & { mgmtAt?: Loc };

function parseCluster(r: Reader, top: Fields): ClusterDraft {
  const f = r.fields(top.get('cluster'), 'cluster', ['name', 'domain', 'timezone', 'management_address', 'management_name'], ['name', 'domain', 'timezone', 'management_address'], top.keyNode('cluster'));
  if (!f) return {};
  const out: ClusterDraft = {};
  const name = f.string('name', (s) => (isDomain(s) && !s.includes('.') ? undefined : `cluster name ${show(s)} must be an RFC 1123 label (letters, digits, '-')`));
  if (name !== undefined) out.name = name;
  const domain = f.string('domain', (s) => (isDomain(s) ? undefined : `${show(s)} is not a valid DNS domain`));
  if (domain !== undefined) out.domain = domain;
  const tz = f.string('timezone', checkTimezone);
  if (tz !== undefined) out.timezone = tz;
  const mgmt = f.string('management_address', ipCheck);
  if (mgmt !== undefined) {
    out.managementAddress = mgmt;
    out.mgmtAt = { path: f.p('management_address'), node: f.get('management_address') };
  }
  const mname = f.string('management_name', checkNodeName);
  if (mname !== undefined) out.managementName = mname;
  return out;
}

// ---------------------------------------------------------------- networks

function parseNetworks(r: Reader, top: Fields, net: NetDraft, cluster: Partial<ClusterInfo>): Partial<Networks> {
  const f = r.fields(top.get('networks'), 'networks', ['provisioning', 'bmc'], ['provisioning'], top.keyNode('networks'));
  if (!f) return {};
  const out: Partial<Networks> = {};
  const p = r.fields(f.get('provisioning'), 'networks.provisioning', ['subnet', 'unknown_range', 'gateway', 'dns', 'ntp', 'interface'], ['subnet', 'unknown_range'], f.keyNode('provisioning'));
  if (p) {
    const subnetText = p.string('subnet');
    if (subnetText !== undefined) {
      const c = parseCidr(subnetText);
      if (typeof c === 'string') r.error(p.p('subnet'), p.get('subnet'), c);
      else {
        net.subnet = c;
        net.subnetText = subnetText;
      }
    }
    const unknownRange = parseRange(r, p.get('unknown_range'), p.p('unknown_range'));
    if (unknownRange) {
      net.unknown = unknownRange;
      net.unknownAt = { path: p.p('unknown_range'), node: p.get('unknown_range') };
    }
    const gateway = p.string('gateway', ipCheck);
    if (gateway !== undefined) {
      net.gateway = gateway;
      net.gatewayAt = { path: p.p('gateway'), node: p.get('gateway') };
    }
    const mgmtDefault = cluster.managementAddress ? [cluster.managementAddress] : [];
    const dns = p.has('dns') ? (p.stringList('dns', ipCheck) ?? []) : mgmtDefault;
    const ntp = p.has('ntp') ? (p.stringList('ntp', hostOrIp) ?? []) : mgmtDefault;
    net.ntp = ntp;
    const iface = p.string('interface', patternCheck(INTERFACE_NAME, 'interface name'));
    const prov: Networks['provisioning'] = {
      subnet: subnetText ?? '',
      unknownRange: unknownRange ?? { start: '', end: '' },
      dns,
      ntp,
    };
    if (gateway !== undefined) prov.gateway = gateway;
    if (iface !== undefined) prov.interface = iface;
    out.provisioning = prov;
  }
  if (f.get('bmc') !== undefined) {
    const b = r.fields(f.get('bmc'), 'networks.bmc', ['subnet', 'gateway'], ['subnet'], f.keyNode('bmc'));
    if (b) {
      const subnetText = b.string('subnet');
      if (subnetText !== undefined) {
        const c = parseCidr(subnetText);
        if (typeof c === 'string') r.error(b.p('subnet'), b.get('subnet'), c);
        else {
          net.bmcSubnet = c;
          net.bmcSubnetText = subnetText;
        }
      }
      const gw = b.string('gateway', ipCheck);
      if (gw !== undefined && net.bmcSubnet && !cidrContains(net.bmcSubnet, gw)) {
        r.error(b.p('gateway'), b.get('gateway'), `${gw} is outside ${net.bmcSubnetText}`);
      }
      out.bmc = { subnet: subnetText ?? '', ...(gw !== undefined ? { gateway: gw } : {}) };
    }
  }
  return out;
}

/** "A-B" or {start, end}. */
function parseRange(r: Reader, node: Node | undefined, path: string): { start: string; end: string } | undefined {
  if (node === undefined) return undefined;
  let start: string | undefined;
  let end: string | undefined;
  if (isScalar(node) && typeof node.value === 'string') {
    const m = /^\s*([^\s-]+)\s*-\s*([^\s-]+)\s*$/.exec(node.value);
    if (!m) {
      r.error(path, node, `${show(node.value)} is not a range; expected START-END, e.g. 10.10.254.1-10.10.254.254`);
      return undefined;
    }
    start = m[1];
    end = m[2];
    for (const ip of [start!, end!]) {
      if (!isIPv4(ip)) {
        r.error(path, node, `${show(ip)} is not a valid IPv4 address`);
        return undefined;
      }
    }
  } else {
    const f = r.fields(node, path, ['start', 'end'], ['start', 'end']);
    if (!f) return undefined;
    start = f.string('start', ipCheck);
    end = f.string('end', ipCheck);
    if (start === undefined || end === undefined) return undefined;
  }
  if (ipToInt(start!) > ipToInt(end!)) {
    r.error(path, node, `range ${start}-${end} is reversed: start is after end`);
    return undefined;
  }
  return { start: start!, end: end! };
}

// ---------------------------------------------------------------- credentials

function parseCredentials(r: Reader, top: Fields, declared: Set<string>): CredentialSpec[] {
  const node = top.get('credentials');
  if (node === undefined) return [];
  const entries = r.map(node, 'credentials');
  if (!entries) return [];
  const out: CredentialSpec[] = [];
  for (const e of entries) {
    declared.add(e.key);
    if (objectName('credential set')(e.key)) {
      r.error(e.path, e.keyNode, objectName('credential set')(e.key)!);
      continue;
    }
    if (e.key.startsWith(ROTATED_PREFIX)) {
      r.error(e.path, e.keyNode, `credential set names starting with '${ROTATED_PREFIX}' are fleet's own (fleet bmc rotate writes them): choose another name`);
      continue;
    }
    if (e.value === undefined) {
      r.error(e.path, e.keyNode, 'expected a mapping, got nothing');
      continue;
    }
    const f = r.fields(e.value, e.path, ['username', 'password_file', 'password_env', 'password'], ['username'], e.keyNode);
    if (!f) continue;
    if (f.has('password')) {
      // Never echo the value: this is a secret.
      r.error(f.p('password'), f.keyNode('password'), 'inline passwords are not allowed: secrets must come from a file (password_file) or an environment variable (password_env)');
      continue;
    }
    const username = f.string('username', patternCheck(BMC_USERNAME, 'BMC user name'));
    const file = f.string('password_file', checkFilePath);
    const env = f.string('password_env', (s) => (ENV_NAME.test(s) ? undefined : `${show(s)} is not a valid environment variable name`));
    const nSet = (f.has('password_file') ? 1 : 0) + (f.has('password_env') ? 1 : 0);
    if (nSet !== 1) {
      r.error(e.path, e.keyNode, nSet === 0 ? 'set one of password_file or password_env' : 'set exactly one of password_file or password_env, not both');
      continue;
    }
    if (username === undefined || (file === undefined && env === undefined)) continue;
    out.push({ name: e.key, username, ...(file !== undefined ? { passwordFile: file } : {}), ...(env !== undefined ? { passwordEnv: env } : {}) });
  }
  return out;
}

// ---------------------------------------------------------------- profiles

const PROFILE_KEYS = ['description', 'os', 'kernel_args', 'packages', 'root_password_hash', 'ssh_keys', 'partitioning', 'roles', 'expect'];
const ROLE_KEYS = ['repos', 'hosts', 'chrony', 'nfs', 'nfs_server', 'users', 'slurm', 'gpu', 'infiniband'];

/** exports(5) options: a comma list; no spaces, parentheses or '#' (they would break the exports line). */
const EXPORT_OPTIONS = /^[A-Za-z0-9_=.,:/@+-]+$/;
/** A wildcard host name of exports(5): labels with `*` and `?`. */
const EXPORT_WILDCARD = /^[A-Za-z0-9*?-]+(?:\.[A-Za-z0-9*?-]+)*$/;
export const DEFAULT_EXPORT_OPTIONS = 'rw,sync,no_subtree_check';

/** The client of an exports line: `*`, a CIDR, an IPv4 address, a host name or a wildcard host name. */
function checkExportClients(s: string): string | undefined {
  if (s === '*' || isIPv4(s) || isHostname(s)) return undefined;
  if (s.includes('/')) {
    const c = parseCidr(s);
    return typeof c === 'string' ? `NFS clients: ${c}` : undefined;
  }
  if (/[*?]/.test(s) && s.length <= 253 && EXPORT_WILDCARD.test(s)) return undefined;
  return `NFS clients ${show(s)} must be a host name, an IPv4 address, a CIDR (e.g. 10.10.0.0/16), '*' or a wildcard host name (e.g. *.cluster.local)`;
}

function checkExportOptions(s: string): string | undefined {
  if (!EXPORT_OPTIONS.test(s)) return `export options ${show(s)} must be a comma-separated list without spaces or parentheses, e.g. ${DEFAULT_EXPORT_OPTIONS}`;
  const opts = s.split(',');
  if (opts.includes('')) return `export options ${show(s)} have an empty entry`;
  if (opts.includes('rw') && opts.includes('ro')) return `export options ${show(s)} say both rw and ro`;
  return undefined;
}

/** `expect: {gpus: 8, memory_gib: ">= 512"}`: each field a count (exactly) or "OP N" (common/inventory/expect.ts). */
function parseExpect(r: Reader, f: Fields): ExpectSpec | undefined {
  const g = r.fields(f.get('expect'), f.p('expect'), EXPECT_FIELD_NAMES, [], f.keyNode('expect'));
  if (!g) return undefined;
  const out: ExpectSpec = {};
  for (const field of EXPECT_FIELD_NAMES) {
    const v = g.get(field);
    if (!g.has(field)) continue;
    // A mapping or a list is neither a count nor a comparison: parseExpectRule says what it takes.
    const value = isScalar(v) ? v.value : undefined;
    const rule = parseExpectRule(value);
    if (typeof rule === 'string') r.error(g.p(field), g.where(field), `${field}: ${rule}`);
    else out[field] = rule;
  }
  return out;
}

function parseProfiles(r: Reader, top: Fields, net: NetDraft, declared: Set<string>, kernelArgsAt: Map<string, Loc>, slurmAt?: Map<string, Loc>): ProfileSpec[] {
  const entries = r.map(top.get('profiles'), 'profiles', top.keyNode('profiles'));
  if (!entries) return [];
  const out: ProfileSpec[] = [];
  for (const e of entries) {
    declared.add(e.key);
    const badName = objectName('profile')(e.key);
    if (badName) {
      r.error(e.path, e.keyNode, badName);
      continue;
    }
    if (e.value === undefined) {
      r.error(e.path, e.keyNode, 'expected a mapping, got nothing');
      continue;
    }
    const f = r.fields(e.value, e.path, PROFILE_KEYS, ['os'], e.keyNode);
    if (!f) continue;
    const p: ProfileSpec = { name: e.key, os: { install: 'kickstart', tree: '' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };
    kernelArgsAt.set(e.key, f.has('kernel_args') ? { path: f.p('kernel_args'), node: f.where('kernel_args') } : { path: e.path, node: e.keyNode });
    const description = f.string('description', (s) => (/[\r\n]/.test(s) ? 'description must be one line' : undefined));
    if (description !== undefined) p.description = description;
    const osNode = f.get('os');
    // The method decides what else is required: kickstart a tree, image, stateless and diskless an image name.
    const method = isMap(osNode) ? osNode.get('install') : undefined;
    const byImage = method === 'image' || method === 'stateless' || method === 'diskless';
    const os = r.fields(osNode, f.p('os'), ['install', 'tree', 'image', 'root', 'nfs', 'scratch'], byImage ? ['image'] : ['tree'], f.keyNode('os'));
    if (os) {
      os.string('install', (s) =>
        s === 'kickstart' || s === 'image' || s === 'stateless' || s === 'diskless'
          ? undefined
          : `install method ${show(s)} is not supported; 'kickstart', 'image', 'stateless' and 'diskless' are`,
      );
      if (byImage) {
        p.os.install = method;
        if (os.has('tree')) r.error(os.p('tree'), os.where('tree'), `'tree' is for install: kickstart; install: ${method} takes 'image' (a name from fleet image list)`);
        const image = os.string('image', checkImageName);
        if (image !== undefined) p.os.image = image;
      } else if (os.has('image')) {
        r.error(os.p('image'), os.where('image'), "'image' needs install: image, stateless or diskless");
      }
      if (!byImage) p.os.tree = os.string('tree', checkHttpUrl) ?? '';
      if (os.has('root')) {
        if (method !== 'stateless') r.error(os.p('root'), os.where('root'), "'root' is for install: stateless (overlay or tmpfs)");
        else {
          const root = os.string('root', (s) => (s === 'overlay' || s === 'tmpfs' ? undefined : `root ${show(s)} must be overlay (the image read-only under a tmpfs) or tmpfs (the image copied into RAM)`));
          if (root === 'overlay' || root === 'tmpfs') p.os.root = root;
        }
      }
      for (const k of ['nfs', 'scratch'] as const) {
        if (os.has(k) && method !== 'diskless') r.error(os.p(k), os.where(k), `'${k}' is for install: diskless`);
      }
      if (method === 'diskless') {
        p.os.nfs = { server: 'management' };
        if (os.has('nfs')) {
          const nfs = r.fields(os.get('nfs'), os.p('nfs'), ['server'], [], os.keyNode('nfs'));
          nfs?.string('server', (s) =>
            s === 'management'
              ? undefined
              : `nfs server ${show(s)}: only 'management' (fleet's own NFS server) is implemented; a storage node serving the root is not yet (docs/diskless.md)`,
          );
        }
        if (os.has('scratch')) {
          const scratch = os.string('scratch', (s) =>
            s === 'none' || /^\/dev\/[A-Za-z0-9][A-Za-z0-9._:@+\/-]*$/.test(s) && !s.split('/').includes('..')
              ? undefined
              : `scratch ${show(s)} must be a local disk's path under /dev (e.g. /dev/sdb, /dev/disk/by-path/...) or none`,
          );
          if (scratch !== undefined && scratch !== 'none') p.os.scratch = scratch;
        }
      }
    }
    p.kernelArgs = parseKernelArgs(r, f);
    p.packages = f.stringList('packages', checkPackageName) ?? [];
    const hash = f.string('root_password_hash', checkCryptHash);
    if (hash !== undefined) p.rootPasswordHash = hash;
    p.sshKeys = f.stringList('ssh_keys', checkSshKey) ?? [];
    const parts = f.stringList('partitioning', checkPartitionLine);
    if (parts !== undefined) p.partitioning = parts;
    if (f.get('roles') !== undefined) p.roles = parseRoles(r, f.get('roles'), f.p('roles'), net, f.keyNode('roles'));
    if (f.has('expect')) {
      const ex = parseExpect(r, f);
      if (ex) p.expect = ex;
    }
    const rolesNode = f.get('roles');
    if (p.roles.slurm && isMap(rolesNode)) slurmAt?.set(p.name, { path: `${f.p('roles')}.slurm`, node: (rolesNode.get('slurm', true) as Node | undefined) ?? f.keyNode('roles') });
    out.push(p);
  }
  return out;
}

/** A space-separated string or a list of single tokens. */
function parseKernelArgs(r: Reader, f: Fields): string[] {
  const node = f.get('kernel_args');
  if (node === undefined) return [];
  const path = f.p('kernel_args');
  let items: { s: string; node: Node; path: string }[];
  if (isScalar(node) && typeof node.value === 'string') {
    items = node.value
      .split(' ')
      .filter((s) => s !== '')
      .map((s) => ({ s, node, path }));
  } else if (isSeq(node)) {
    items = [];
    for (const it of r.list(node, path) ?? []) {
      const s = r.string(it.node, it.path, node);
      if (s !== undefined) items.push({ s, node: it.node, path: it.path });
    }
  } else {
    r.error(path, node, `expected a string or a list, got ${r.describe(node)}`);
    return [];
  }
  const out: string[] = [];
  for (const it of items) {
    const bad = checkKernelArg(it.s);
    if (bad) r.error(it.path, it.node, bad);
    else out.push(it.s);
  }
  return out;
}

/** A role value: a mapping, `true` (defaults) or `false` (off). */
function roleFields(r: Reader, node: Node | undefined, path: string, known: string[], required: string[] = [], at?: Node): Fields | undefined | false {
  if (isScalar(node) && typeof node.value === 'boolean') {
    if (!node.value) return false;
    if (required.length > 0) {
      r.error(path, node, `role needs settings: ${required.join(', ')}`);
      return undefined;
    }
    return new Fields(r, path, node, new Map(), at);
  }
  // A role written as `hosts:` (empty): all defaults.
  if (node === undefined) return new Fields(r, path, at, new Map(), at);
  return r.fields(node, path, known, required, at);
}

function parseRoles(r: Reader, node: Node | undefined, path: string, net: NetDraft, at?: Node): RolesSpec {
  const f = r.fields(node, path, ROLE_KEYS, [], at);
  const roles: RolesSpec = {};
  if (!f) return roles;
  for (const role of ROLE_KEYS) {
    if (!f.has(role)) continue;
    const rp = f.p(role);
    const v = f.get(role);
    const kn = f.keyNode(role);
    switch (role) {
      case 'repos': {
        const g = roleFields(r, v, rp, ['repos', 'remove'], [], kn);
        if (!g) break;
        const repos: RepoSpec[] = [];
        const names = new Map<string, string>();
        for (const it of (g.get('repos') !== undefined ? r.list(g.get('repos'), g.p('repos')) : []) ?? []) {
          const rf = r.fields(it.node, it.path, ['name', 'baseurl', 'gpgcheck', 'enabled', 'suite', 'components', 'key'], ['name', 'baseurl'], g.get('repos'));
          if (!rf) continue;
          const name = rf.string('name', checkRepoName);
          const baseurl = rf.string('baseurl', checkHttpUrl);
          if (name !== undefined && names.has(name)) r.error(rf.p('name'), rf.get('name'), `repository ${name} is already defined at ${names.get(name)}`);
          // Debian repository shape (docs/repo.md): absent suite = a flat repository, as before.
          const suite = rf.string('suite', patternCheck(APT_SUITE, 'apt suite (letters, digits and ._-, e.g. bookworm)'));
          const components = rf.stringList('components', patternCheck(APT_COMPONENT, 'apt component (letters, digits and ._-, e.g. main)'));
          const key = rf.string('key', (s) => (s === 'fleet' ? undefined : `key ${show(s)} is not known: the only key is fleet (the fleet server's repository key)`));
          const gpgcheck = rf.bool('gpgcheck') ?? true;
          if (components !== undefined && suite === undefined) r.error(rf.p('components'), rf.get('components'), 'components need a suite (a flat repository has none)');
          if (components !== undefined && components.length === 0) r.error(rf.p('components'), rf.get('components'), 'components must name at least one component');
          if (key !== undefined && !gpgcheck) r.error(rf.p('key'), rf.get('key'), 'key fleet with gpgcheck: false: a repository is either checked with the key or explicitly trusted, not both');
          if (name === undefined || baseurl === undefined) continue;
          names.set(name, it.path);
          repos.push({
            name,
            baseurl,
            gpgcheck,
            enabled: rf.bool('enabled') ?? true,
            ...(suite !== undefined ? { suite, components: components?.length ? components : ['main'] } : {}),
            ...(key === 'fleet' ? { key } : {}),
          });
        }
        roles.repos = { repos, remove: g.stringList('remove', patternCheck(REPO_FILE_GLOB, 'repo file name or glob (no "/")')) ?? [] };
        break;
      }
      case 'hosts': {
        const g = roleFields(r, v, rp, ['enabled'], [], kn);
        if (g) roles.hosts = { enabled: g.bool('enabled') ?? true };
        break;
      }
      case 'chrony': {
        const g = roleFields(r, v, rp, ['servers', 'makestep'], [], kn);
        if (!g) break;
        const servers = g.has('servers') ? (g.stringList('servers', hostOrIp) ?? []) : net.ntp;
        const makestep = g.string('makestep', (s) => (CHRONY_MAKESTEP.test(s) ? undefined : `makestep ${show(s)} must be "THRESHOLD LIMIT", e.g. "1.0 3"`)) ?? '1.0 3';
        if (servers.length === 0 && !g.has('servers')) r.error(rp, v ?? kn, 'no NTP servers: set servers here or networks.provisioning.ntp');
        roles.chrony = { servers, makestep };
        break;
      }
      case 'nfs': {
        const g = roleFields(r, v, rp, ['mounts'], [], kn);
        if (!g) break;
        const mounts: NfsMountSpec[] = [];
        const targets = new Map<string, string>();
        for (const it of (g.get('mounts') !== undefined ? r.list(g.get('mounts'), g.p('mounts')) : []) ?? []) {
          const mf = r.fields(it.node, it.path, ['source', 'target', 'options'], ['source', 'target'], g.get('mounts'));
          if (!mf) continue;
          const source = mf.string('source', checkNfsSource);
          const target = mf.string('target', checkAbsolutePath);
          const options = mf.string('options', patternCheck(MOUNT_OPTIONS, 'mount option list (comma-separated, no spaces)')) ?? 'defaults';
          if (target !== undefined && targets.has(target)) r.error(mf.p('target'), mf.get('target'), `${target} is already mounted by ${targets.get(target)}`);
          if (source === undefined || target === undefined) continue;
          targets.set(target, it.path);
          mounts.push({ source, target, options });
        }
        roles.nfs = { mounts };
        break;
      }
      case 'nfs_server': {
        const g = roleFields(r, v, rp, ['exports'], [], kn);
        if (!g) break;
        const exports: NfsExportSpec[] = [];
        const seen = new Map<string, string>();
        for (const it of (g.get('exports') !== undefined ? r.list(g.get('exports'), g.p('exports')) : []) ?? []) {
          const ef = r.fields(it.node, it.path, ['path', 'clients', 'options'], ['path', 'clients'], g.get('exports'));
          if (!ef) continue;
          const epath = ef.string('path', checkAbsolutePath);
          const clients = ef.string('clients', checkExportClients);
          const options = ef.string('options', checkExportOptions) ?? DEFAULT_EXPORT_OPTIONS;
          if (epath === undefined || clients === undefined) continue;
          const key = `${epath} ${clients}`;
          if (seen.has(key)) {
            r.error(it.path, it.node, `${epath} is already exported to ${clients} by ${seen.get(key)}`);
            continue;
          }
          seen.set(key, it.path);
          exports.push({ path: epath, clients, options });
        }
        roles.nfsServer = { exports };
        break;
      }
      case 'users': {
        const g = roleFields(r, v, rp, ['groups', 'users'], [], kn);
        if (g) roles.users = parseUsers(r, g);
        break;
      }
      case 'gpu': {
        const g = roleFields(r, v, rp, ['vendor', 'packages', 'blacklist_nouveau'], [], kn);
        if (!g) break;
        g.string('vendor', (s) => (s === 'nvidia' ? undefined : `GPU vendor ${show(s)} is not supported; only 'nvidia' is`));
        roles.gpu = { vendor: 'nvidia', packages: g.stringList('packages', checkPackageName) ?? [], blacklistNouveau: g.bool('blacklist_nouveau') ?? true };
        break;
      }
      case 'infiniband': {
        const g = roleFields(r, v, rp, ['packages'], [], kn);
        if (g) roles.infiniband = { packages: g.has('packages') ? (g.stringList('packages', checkPackageName) ?? []) : ['@infiniband'] };
        break;
      }
      case 'slurm': {
        const slurm = parseSlurmRole(r, v, rp, kn);
        if (slurm) roles.slurm = slurm;
        break;
      }
    }
  }
  return roles;
}

/** Slurm's ClusterName: lower case (slurm folds it), short (it names the accounting tables). */
export const SLURM_CLUSTER_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
export const SLURM_PARTITION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SLURM_NODE_ROLES: readonly SlurmNodeRole[] = ['controller', 'compute', 'both'];

/** `slurm: {role, cluster_name?, partition?: NAME | {name?, default?}}` (role is required). */
function parseSlurmRole(r: Reader, v: Node | undefined, rp: string, kn: Node | undefined): SlurmRoleSpec | undefined {
  const g = roleFields(r, v, rp, ['role', 'cluster_name', 'partition'], ['role'], kn);
  if (!g) return undefined;
  const role = g.string('role', (s) => (SLURM_NODE_ROLES.includes(s as SlurmNodeRole) ? undefined : `slurm role ${show(s)} is not one of ${SLURM_NODE_ROLES.join(', ')}`));
  const clusterName =
    g.string('cluster_name', (s) => (SLURM_CLUSTER_NAME.test(s) ? undefined : `cluster_name ${show(s)} is not valid (lower-case letters, digits, '_', '-'; starting with a letter; at most 40)`)) ??
    'fleet';
  const partitionCheck = (s: string) => (SLURM_PARTITION_NAME.test(s) ? undefined : `partition name ${show(s)} is not valid (letters, digits, '_', '.', '-'; at most 64)`);
  let partition = 'batch';
  let partitionDefault = true;
  const pn = g.get('partition');
  if (pn !== undefined) {
    if (isScalar(pn) && typeof pn.value === 'string') {
      partition = g.string('partition', partitionCheck) ?? partition;
    } else {
      const pf = r.fields(pn, g.p('partition'), ['name', 'default'], [], g.keyNode('partition'));
      if (pf) {
        partition = pf.string('name', partitionCheck) ?? partition;
        partitionDefault = pf.bool('default') ?? true;
      }
    }
  }
  if (role === undefined) return undefined;
  return { role: role as SlurmNodeRole, clusterName, partition, partitionDefault };
}

/**
 * Slurm across the cluster, when any profile has the slurm role: exactly one
 * node runs slurmctld (uses a profile whose slurm role is controller or
 * both), every slurm profile names the same cluster, and at most one
 * partition is the default.
 */
function checkSlurm(r: Reader, profiles: readonly ProfileSpec[], drafts: readonly NodeDraft[], slurmAt: ReadonlyMap<string, Loc>): void {
  const slurmProfiles = profiles.filter((p) => p.roles.slurm);
  if (slurmProfiles.length === 0) return;
  const at = (p: ProfileSpec): Loc => slurmAt.get(p.name) ?? { path: `profiles.${p.name}.roles.slurm`, node: undefined };
  const first = slurmProfiles[0]!;
  const names = new Map<string, string>();
  for (const p of slurmProfiles) {
    const cn = p.roles.slurm!.clusterName;
    const other = [...names.entries()].find(([n]) => n !== cn);
    if (other) {
      const l = at(p);
      r.error(l.path, l.node, `slurm cluster_name ${show(cn)} differs from ${show(other[0])} of profile ${other[1]}: one cluster has one name`);
    }
    if (!names.has(cn)) names.set(cn, p.name);
  }
  const defaults = new Map<string, string>();
  for (const p of slurmProfiles) {
    const s = p.roles.slurm!;
    if (s.role === 'controller' || !s.partitionDefault) continue;
    const other = [...defaults.entries()].find(([n]) => n !== s.partition);
    if (other) {
      const l = at(p);
      r.error(l.path, l.node, `slurm partition ${show(s.partition)} is the default, and so is ${show(other[0])} of profile ${other[1]}: at most one partition may be (set partition.default: false)`);
    }
    if (!defaults.has(s.partition)) defaults.set(s.partition, p.name);
  }
  const controllerProfiles = new Set(slurmProfiles.filter((p) => p.roles.slurm!.role !== 'compute').map((p) => p.name));
  const controllers = drafts.filter((d) => d.profile !== undefined && controllerProfiles.has(d.profile));
  if (controllers.length === 1) return;
  if (controllers.length === 0) {
    const cp = slurmProfiles.find((p) => controllerProfiles.has(p.name));
    const l = at(cp ?? first);
    r.error(
      l.path,
      l.node,
      cp
        ? `slurm needs exactly one controller node: no node uses profile ${cp.name} (slurm role ${cp.roles.slurm!.role})`
        : `slurm needs exactly one controller node: no profile has slurm role controller or both (profiles with slurm: ${slurmProfiles.map((p) => p.name).join(', ')})`,
    );
    return;
  }
  const shown = controllers.slice(0, 5).map((d) => `${d.name} (profile ${d.profile})`);
  const cp = slurmProfiles.find((p) => controllerProfiles.has(p.name))!;
  const l = at(cp);
  r.error(
    l.path,
    l.node,
    `slurm needs exactly one controller node, and ${controllers.length} nodes use a profile with slurm role controller or both: ${shown.join(', ')}${controllers.length > 5 ? ', ...' : ''}; give the other nodes a compute profile`,
  );
}

function parseUsers(r: Reader, g: Fields): { groups: GroupSpec[]; users: UserSpec[] } {
  const groups: GroupSpec[] = [];
  const groupNames = new Map<string, GroupSpec>();
  const gids = new Map<number, string>();
  for (const it of (g.get('groups') !== undefined ? r.list(g.get('groups'), g.p('groups')) : []) ?? []) {
    const f = r.fields(it.node, it.path, ['name', 'gid'], ['name', 'gid'], g.get('groups'));
    if (!f) continue;
    const name = f.string('name', (s) => checkPosixName(s, 'group name'));
    const gid = f.int('gid');
    if (gid !== undefined && checkId(gid, 'gid')) r.error(f.p('gid'), f.get('gid'), checkId(gid, 'gid')!);
    if (name === undefined || gid === undefined || checkId(gid)) continue;
    if (groupNames.has(name)) {
      r.error(f.p('name'), f.get('name'), `group ${name} is defined twice`);
      continue;
    }
    if (gids.has(gid)) {
      r.error(f.p('gid'), f.get('gid'), `gid ${gid} is already used by group ${gids.get(gid)}`);
      continue;
    }
    const spec = { name, gid };
    groupNames.set(name, spec);
    gids.set(gid, name);
    groups.push(spec);
  }
  const users: UserSpec[] = [];
  const userNames = new Set<string>();
  const uids = new Map<number, string>();
  for (const it of (g.get('users') !== undefined ? r.list(g.get('users'), g.p('users')) : []) ?? []) {
    const f = r.fields(it.node, it.path, ['name', 'uid', 'gid', 'group', 'shell', 'home', 'ssh_keys'], ['name', 'uid'], g.get('users'));
    if (!f) continue;
    const name = f.string('name', (s) => checkPosixName(s, 'user name'));
    const uid = f.int('uid');
    if (uid !== undefined && checkId(uid, 'uid')) r.error(f.p('uid'), f.get('uid'), checkId(uid, 'uid')!);
    let gid = f.int('gid');
    if (gid !== undefined && checkId(gid, 'gid')) {
      r.error(f.p('gid'), f.get('gid'), checkId(gid, 'gid')!);
      gid = undefined;
    }
    const group = f.string('group', (s) => checkPosixName(s, 'group name'));
    if (group !== undefined) {
      const gs = groupNames.get(group);
      if (!gs) {
        const guess = closest(group, [...groupNames.keys()]);
        r.error(f.p('group'), f.get('group'), `unknown group ${show(group)}${guess ? ` (did you mean '${guess}'?)` : ''}; declare it under groups`);
      } else if (gid !== undefined && gid !== gs.gid) {
        r.error(f.p('gid'), f.get('gid'), `gid ${gid} does not match group ${group} (gid ${gs.gid})`);
      } else gid ??= gs.gid;
    } else if (!f.has('gid')) {
      f.missing('gid');
    }
    const shell = f.string('shell', checkAbsolutePath) ?? '/bin/bash';
    const home = f.string('home', checkAbsolutePath) ?? (name !== undefined ? `/home/${name}` : '');
    const sshKeys = f.stringList('ssh_keys', checkSshKey) ?? [];
    if (name === undefined || uid === undefined || gid === undefined || checkId(uid)) continue;
    if (userNames.has(name)) {
      r.error(f.p('name'), f.get('name'), `user ${name} is defined twice`);
      continue;
    }
    if (uids.has(uid)) {
      r.error(f.p('uid'), f.get('uid'), `uid ${uid} is already used by user ${uids.get(uid)}`);
      continue;
    }
    userNames.add(name);
    uids.set(uid, name);
    users.push({ name, uid, gid, ...(group !== undefined ? { group } : {}), shell, home, sshKeys });
  }
  return { groups, users };
}

// ---------------------------------------------------------------- nodes

const NODE_KEYS = ['profile', 'ip', 'mac', 'macs', 'bmc', 'pet'];
const BMC_KEYS = ['address', 'port', 'protocol', 'credentials', 'system', 'auth', 'power_wait'];
/** Keys of a node's bmc block that only a Redfish BMC understands. */
const REDFISH_ONLY_KEYS = ['system', 'auth', 'power_wait'];

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Expands a node key; undefined (with an issue) when it is not a valid nodeset of valid node names. */
function expandKey(r: Reader, key: string, keyNode: Node, path: string): string[] | undefined {
  if (!/^[A-Za-z0-9\-[\],]+$/.test(key)) {
    if (!/[[\],]/.test(key)) r.error(path, keyNode, checkNodeName(key) ?? `${show(key)} is not a valid node name`);
    else r.error(path, keyNode, `bad nodeset key ${show(key)}: only letters, digits, '-', ranges in [] and ',' are allowed, and node names must be RFC 1123 labels`);
    return undefined;
  }
  let names: string[];
  try {
    names = expandNodeSet(key, { limit: MAX_NODES_PER_KEY });
  } catch (e) {
    r.error(path, keyNode, `bad nodeset key ${show(key)}: ${errorMessage(e)}`);
    return undefined;
  }
  if (names.length === 0) {
    r.error(path, keyNode, `nodeset key ${show(key)} names no node`);
    return undefined;
  }
  const bad = names.map(checkNodeName).filter((m): m is string => m !== undefined);
  if (bad.length > 0) {
    r.error(path, keyNode, bad[0]! + (bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''));
    return undefined;
  }
  return names;
}

/** Expands one value pattern (10.10.3.[1-16]); a value without '[' is itself. */
function expandValue(r: Reader, value: string, path: string, node: Node | undefined): string[] | undefined {
  if (!value.includes('[')) return [value];
  try {
    return expandPattern(value, { limit: MAX_NODES_PER_KEY });
  } catch (e) {
    r.error(path, node, `bad range ${show(value)}: ${errorMessage(e)}`);
    return undefined;
  }
}

interface PerNodeOpts {
  /** e.g. 'ip', 'mac', 'BMC address' (for messages). */
  what: string;
  /** The value must differ between nodes (a single value on a multi-node key is an error). */
  unique: boolean;
  /** Validates (and may normalise) one value: returns [value] or an error string. */
  check: (v: string) => string | { ok: string };
  /** A YAML list gives one value per node. */
  allowList: boolean;
  /** Accept a YAML number (ports). */
  allowNumber?: boolean;
  example: string;
}

/**
 * Values of one field for the K nodes of a key (lockstep).
 * Returns undefined (with issues) when anything is wrong, or when K is unknown.
 */
interface Valued extends Loc {
  v: string;
}

function perNode(r: Reader, node: Node | undefined, path: string, k: number | undefined, o: PerNodeOpts): Valued[] | undefined {
  let raw: Valued[] | undefined;
  const single = !isSeq(node);
  if (isScalar(node) && (typeof node.value === 'string' || (o.allowNumber && typeof node.value === 'number'))) {
    const vals = expandValue(r, String(node.value), path, node);
    if (!vals) return undefined;
    raw = vals.map((v) => ({ v, node, path }));
  } else if (o.allowList && isSeq(node)) {
    raw = [];
    for (const it of r.list(node, path) ?? []) {
      if (isScalar(it.node) && (typeof it.node.value === 'string' || (o.allowNumber && typeof it.node.value === 'number'))) {
        raw.push({ v: String(it.node.value), node: it.node, path: it.path });
      } else {
        r.error(it.path, it.node ?? node, `expected a string, got ${r.describe(it.node)}`);
        return undefined;
      }
    }
  } else {
    r.error(path, node, `expected ${o.allowList ? 'a string, a range or a list' : o.allowNumber ? 'a number or a range' : 'a string or a range'}, got ${r.describe(node)}`);
    return undefined;
  }
  const values: Valued[] = [];
  const bad: { msg: string; at: Loc }[] = [];
  for (const x of raw) {
    const c = o.check(x.v);
    if (typeof c === 'string') bad.push({ msg: c, at: x });
    else values.push({ ...x, v: c.ok });
  }
  if (bad.length > 0) {
    // One issue per field: a range usually repeats the same mistake for every node.
    r.error(bad[0]!.at.path, bad[0]!.at.node, bad[0]!.msg + (bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''));
    return undefined;
  }
  if (k === undefined) return undefined;
  if (single && values.length === 1 && k > 1) {
    if (o.unique) {
      r.error(path, node, `a single ${o.what} cannot be shared by ${k} nodes; give a range such as ${o.example} or a list with one value per node`);
      return undefined;
    }
    return Array<Valued>(k).fill(values[0]!);
  }
  if (values.length !== k) {
    r.error(path, node, `nodeset/range length mismatch: ${k} node${k === 1 ? '' : 's'}, ${values.length} value${values.length === 1 ? '' : 's'}`);
    return undefined;
  }
  return values;
}

const ipValue = (v: string): string | { ok: string } => (isIPv4(v) ? { ok: v } : `${show(v)} is not a valid IPv4 address`);
const macValue = (v: string): string | { ok: string } => {
  const m = normalizeMac(v);
  return m ? { ok: m } : `${show(v)} is not a valid MAC address (expected six hex pairs like 08:00:27:18:68:bc, unicast)`;
};
const systemValue = (v: string): string | { ok: string } =>
  REDFISH_ID.test(v) ? { ok: v } : `${show(v)} is not a Redfish system Id (letters, digits, '.', '_', ':', '-'; at most 64; e.g. the Id of /redfish/v1/Systems/Blade1 is Blade1)`;
const portValue = (v: string): string | { ok: string } => {
  if (!/^\d{1,5}$/.test(v)) return `port ${show(v)} is not a number`;
  const bad = checkPort(Number(v));
  return bad ?? { ok: v };
};

function parseNodes(r: Reader, top: Fields): NodeDraft[] {
  const entries = r.map(top.get('nodes'), 'nodes', top.keyNode('nodes'));
  if (!entries) return [];
  const drafts: NodeDraft[] = [];
  const declaredBy = new Map<string, string>();
  for (const e of entries) {
    const names = expandKey(r, e.key, e.keyNode, e.path);
    if (names && declaredBy.size + names.length > MAX_NODES) {
      // Every node costs memory in the plan and the store: the rest of the file is not read.
      r.error(e.path, e.keyNode, `more than ${MAX_NODES} nodes are declared up to here, the most one fleet.yaml may declare`);
      break;
    }
    const duplicated = new Set<string>();
    if (names) {
      const dups = names.filter((n) => declaredBy.has(n));
      for (const n of dups) duplicated.add(n);
      if (dups.length > 0) {
        const first = dups[0]!;
        r.error(e.path, e.keyNode, `node ${first} is already declared by ${declaredBy.get(first)}${dups.length > 1 ? ` (and ${dups.length - 1} more nodes)` : ''}`);
      }
      for (const n of names) if (!declaredBy.has(n)) declaredBy.set(n, e.path);
    }
    const k = names?.length;
    if (e.value === undefined) {
      r.error(e.path, e.keyNode, "expected a mapping, got nothing (a node needs at least 'profile')");
      continue;
    }
    const f = r.fields(e.value, e.path, NODE_KEYS, ['profile'], e.keyNode);
    if (!f) continue;

    const profile = f.string('profile', objectName('profile'));
    const pet = f.bool('pet') ?? false;

    const ips = f.get('ip') !== undefined ? perNode(r, f.get('ip'), f.p('ip'), k, { what: 'ip', unique: true, check: ipValue, allowList: true, example: '10.10.3.[1-16]' }) : undefined;

    // MACs: `mac` (one per node) or `macs` (a list of NICs, each one value per node).
    let macs: Valued[][] | undefined;
    if (f.get('mac') !== undefined && f.get('macs') !== undefined) {
      r.error(f.p('macs'), f.keyNode('macs'), "use either 'mac' or 'macs', not both");
    } else if (f.get('mac') !== undefined) {
      const m = perNode(r, f.get('mac'), f.p('mac'), k, { what: 'mac', unique: true, check: macValue, allowList: true, example: '08:00:27:00:03:[01-16]' });
      if (m) macs = m.map((x) => [x]);
    } else if (f.get('macs') !== undefined) {
      const nics = r.list(f.get('macs'), f.p('macs'));
      if (nics && k !== undefined) {
        const cols: Valued[][] = [];
        let ok = true;
        for (const nic of nics) {
          // For a single-node key, each list item is one NIC of that node.
          const col = perNode(r, nic.node, nic.path, k, { what: 'mac', unique: true, check: macValue, allowList: true, example: '08:00:27:00:03:[01-16]' });
          if (col) cols.push(col);
          else ok = false;
        }
        if (ok) macs = Array.from({ length: k }, (_, i) => cols.map((c) => c[i]!));
      }
    }

    let bmc:
      | {
          address?: Valued[];
          port?: Valued[];
          protocol?: BmcProtocol;
          credentials?: string;
          system?: Valued[];
          /** bmc.system was written but is wrong (reported): skip the uniqueness check rather than cascade. */
          systemBad?: boolean;
          auth?: RedfishAuth;
          powerWait?: number;
        }
      | undefined;
    // `bmc: none`: the node has no BMC, power is manual (the same as no bmc block, said explicitly;
    // docs/decisions/0011-adoption-without-bmc.md). Any other scalar is a mistake, not a BMC.
    const bmcNode = f.get('bmc');
    let bmcNone = false;
    if (isScalar(bmcNode)) {
      if (bmcNode.value === 'none') bmcNone = true;
      else {
        const text = typeof bmcNode.value === 'string' ? bmcNode.value : String(bmcNode.value);
        const guess = typeof bmcNode.value === 'string' ? closest(bmcNode.value, ['none']) : undefined;
        r.error(
          f.p('bmc'),
          bmcNode,
          `bmc: ${show(text)} is neither a BMC nor 'none'${guess ? ` (did you mean 'none'?)` : ''}: write a mapping {address, credentials, protocol?, port?} or 'none' (no BMC: power by hand)`,
        );
        bmcNone = true; // reported: do not cascade into a "must be a mapping" error
      }
    }
    const bf = bmcNode !== undefined && !bmcNone ? r.fields(bmcNode, f.p('bmc'), BMC_KEYS, ['address', 'credentials'], f.keyNode('bmc')) : undefined;
    if (bf) {
      bmc = {};
      // Several BMCs may share one address on distinct ports (simulators, chassis managers):
      // uniqueness is checked on address:port below, not here.
      const address = bf.get('address') === undefined ? undefined : perNode(r, bf.get('address'), bf.p('address'), k, { what: 'BMC address', unique: false, check: ipValue, allowList: true, example: '10.10.103.[1-16]' });
      if (address) bmc.address = address;
      const protoText = bf.string('protocol');
      if (protoText !== undefined) {
        if ((BMC_PROTOCOLS as readonly string[]).includes(protoText)) bmc.protocol = protoText as BmcProtocol;
        else {
          const guess = closest(protoText, BMC_PROTOCOLS);
          r.error(bf.p('protocol'), bf.get('protocol'), `unknown BMC protocol ${show(protoText)}${guess ? ` (did you mean '${guess}'?)` : ''}; expected one of ${BMC_PROTOCOLS.join(', ')}`);
        }
      } else bmc.protocol = 'ipmi';
      if (bf.get('port') !== undefined) {
        const ports = perNode(r, bf.get('port'), bf.p('port'), k, { what: 'port', unique: false, check: portValue, allowList: true, allowNumber: true, example: '[9001-9016]' });
        if (ports) bmc.port = ports;
      } else if (bmc.protocol && k !== undefined) {
        bmc.port = Array<Valued>(k).fill({ v: String(DEFAULT_BMC_PORT[bmc.protocol]), path: bf.p('port'), node: undefined });
      }
      const cred = bf.string('credentials', objectName('credential set'));
      if (cred !== undefined) bmc.credentials = cred;
      // Redfish settings: refused on other protocols rather than silently ignored.
      if (bmc.protocol !== undefined && bmc.protocol !== 'redfish') {
        for (const key of REDFISH_ONLY_KEYS) {
          if (bf.get(key) !== undefined) r.error(bf.p(key), bf.get(key), `bmc.${key} is a Redfish setting; this BMC's protocol is ${bmc.protocol}`);
        }
      } else {
        if (bf.get('system') !== undefined) {
          // One system per node: a blade chassis names Blade[1-4] for valkyrie[01-04] on one address.
          const systems = perNode(r, bf.get('system'), bf.p('system'), k, { what: 'BMC system', unique: true, check: systemValue, allowList: true, example: 'Blade[1-16]' });
          if (systems) bmc.system = systems;
          else bmc.systemBad = true;
        }
        const auth = bf.string('auth', (s) =>
          (REDFISH_AUTH_MODES as readonly string[]).includes(s) ? undefined : `unknown Redfish auth ${show(s)}; expected one of ${REDFISH_AUTH_MODES.join(', ')}`,
        );
        if (auth !== undefined) bmc.auth = auth as RedfishAuth;
        const wait = bf.int('power_wait');
        if (wait !== undefined) {
          if (wait < 0 || wait > MAX_POWER_WAIT_SECONDS) r.error(bf.p('power_wait'), bf.get('power_wait'), `power_wait ${wait} must be 0-${MAX_POWER_WAIT_SECONDS} seconds`);
          else bmc.powerWait = wait;
        }
      }
    }

    if (!names) continue;
    names.forEach((name, i) => {
      if (duplicated.has(name)) return; // reported above; do not cascade into address/MAC clashes
      const nodeMacs = macs?.[i] ?? [];
      const d: NodeDraft = { name, pet, macs: nodeMacs.map((m) => m.v), at: { key: { path: e.path, node: e.keyNode }, macs: nodeMacs } };
      if (profile !== undefined) {
        d.profile = profile;
        d.at.profile = { path: f.p('profile'), node: f.get('profile') };
      }
      const ip = ips?.[i];
      if (ip) {
        d.ip = ip.v;
        d.at.ip = ip;
      }
      if (bmc && bf) {
        d.bmc = {
          ...(bmc.address ? { address: bmc.address[i]!.v } : {}),
          ...(bmc.port ? { port: Number(bmc.port[i]!.v) } : {}),
          ...(bmc.protocol ? { protocol: bmc.protocol } : {}),
          ...(bmc.credentials ? { credentials: bmc.credentials } : {}),
          ...(bmc.system ? { system: bmc.system[i]!.v } : {}),
          ...(bmc.auth ? { auth: bmc.auth } : {}),
          ...(bmc.powerWait !== undefined ? { powerWait: bmc.powerWait } : {}),
        };
        if (bmc.address && !bmc.systemBad) d.at.bmcAddress = bmc.address[i];
        if (bmc.system) d.at.bmcSystem = bmc.system[i];
        d.at.credentials = { path: bf.p('credentials'), node: bf.get('credentials') };
      }
      drafts.push(d);
    });
  }
  return drafts;
}

// ---------------------------------------------------------------- netboot, server

function parseNetboot(r: Reader, top: Fields): NetbootSpec | undefined {
  if (top.get('netboot') === undefined) return undefined;
  const f = r.fields(top.get('netboot'), 'netboot', ['dhcp', 'tftp_root', 'http'], [], top.keyNode('netboot'));
  if (!f) return undefined;
  const out: NetbootSpec = {};
  if (f.get('dhcp') !== undefined) {
    const d = r.fields(f.get('dhcp'), f.p('dhcp'), ['enabled', 'mode', 'interface', 'router_advertisements'], [], f.keyNode('dhcp'));
    if (d) {
      const mode = d.string('mode', (s) => (s === 'authoritative' || s === 'proxy' ? undefined : `DHCP mode ${show(s)} must be 'authoritative' or 'proxy'`));
      const iface = d.string('interface', patternCheck(INTERFACE_NAME, 'interface name'));
      const ra = d.bool('router_advertisements');
      out.dhcp = {
        enabled: d.bool('enabled') ?? true,
        mode: (mode as 'authoritative' | 'proxy' | undefined) ?? 'authoritative',
        ...(iface !== undefined ? { interface: iface } : {}),
        ...(ra !== undefined ? { routerAdvertisements: ra } : {}),
      };
    }
  }
  const tftp = f.string('tftp_root', checkFilePath);
  if (tftp !== undefined) out.tftpRoot = tftp;
  if (f.get('http') !== undefined) {
    const h = r.fields(f.get('http'), f.p('http'), ['listen'], [], f.keyNode('http'));
    if (h) {
      const listen = h.string('listen', checkListen);
      out.http = listen !== undefined ? { listen } : {};
    }
  }
  return out;
}

function parseServer(r: Reader, top: Fields): ServerSpec | undefined {
  if (top.get('server') === undefined) return undefined;
  const f = r.fields(top.get('server'), 'server', ['listen', 'grpc_listen', 'tls', 'data_dir'], [], top.keyNode('server'));
  if (!f) return undefined;
  const out: ServerSpec = {};
  const listen = f.string('listen', checkListen);
  if (listen !== undefined) out.listen = listen;
  const grpcListen = f.string('grpc_listen', checkListen);
  if (grpcListen !== undefined) out.grpcListen = grpcListen;
  const tls = parseServerTls(r, f);
  if (tls !== undefined) out.tls = tls;
  const dataDir = f.string('data_dir', checkFilePath);
  if (dataDir !== undefined) out.dataDir = dataDir;
  return out;
}

/**
 * `store: {url: postgres://USER@HOST:PORT/DB, password_file | password_env}`: the
 * PostgreSQL database instead of DATA/fleet.db (docs/decisions/0019). The password,
 * if the server asks for one, comes from a file or the environment as BMC
 * passwords do (or PGPASSWORD, ~/.pgpass); never inline, never in the URL.
 */
function parseStore(r: Reader, top: Fields): StoreSpec | undefined {
  if (top.get('store') === undefined) return undefined;
  const f = r.fields(top.get('store'), 'store', ['url', 'password_file', 'password_env', 'password'], ['url'], top.keyNode('store'));
  if (!f) return undefined;
  if (f.has('password')) {
    // Never echo the value: this is a secret.
    r.error(f.p('password'), f.keyNode('password'), 'inline passwords are not allowed: secrets must come from a file (password_file) or an environment variable (password_env)');
    return undefined;
  }
  // The message never repeats the URL: it may carry a password.
  const url = f.string('url', (s) => {
    const why = checkStoreUrl(s);
    return why === undefined ? undefined : `the store URL ${why}`;
  });
  const file = f.string('password_file', checkFilePath);
  const env = f.string('password_env', (s) => (ENV_NAME.test(s) ? undefined : `${show(s)} is not a valid environment variable name`));
  if (f.has('password_file') && f.has('password_env')) {
    r.error('store', top.keyNode('store'), 'set at most one of password_file or password_env, not both');
    return undefined;
  }
  if (url === undefined) return undefined;
  return { url, ...(file !== undefined ? { passwordFile: file } : {}), ...(env !== undefined ? { passwordEnv: env } : {}) };
}

/** `server.tls`: `fleet-ca` (a certificate issued by the fleet CA) or `{cert: FILE, key: FILE}`. */
function parseServerTls(r: Reader, f: Fields): ServerSpec['tls'] {
  const node = f.get('tls');
  if (node === undefined) return undefined;
  if (isScalar(node)) {
    if (node.value === 'fleet-ca') return 'fleet-ca';
    r.error(f.p('tls'), node, `expected 'fleet-ca' or a mapping {cert: FILE, key: FILE}`);
    return undefined;
  }
  const t = r.fields(node, f.p('tls'), ['cert', 'key'], ['cert', 'key'], f.keyNode('tls'));
  if (!t) return undefined;
  const cert = t.string('cert', checkFilePath);
  const key = t.string('key', checkFilePath);
  return cert !== undefined && key !== undefined ? { cert, key } : undefined;
}

// ---------------------------------------------------------------- cross-checks

interface CrossInput {
  cluster: Partial<ClusterInfo>;
  mgmtAt: Loc | undefined;
  net: NetDraft;
  declaredCredentials: Set<string>;
  declaredProfiles: Set<string>;
  drafts: NodeDraft[];
}

/** The longest server URL a node can be told (any IPv4 address, any port): the check holds whatever the server listens on. */
const LONGEST_SERVER_URL = 'http://255.255.255.255:65535';
/** An install token as the kickstart URL carries it (32 random bytes, base64url: server/store/repos/tokens.ts). */
const TOKEN_PLACEHOLDER = 'x'.repeat(43);

/**
 * Each node's installer command line must fit the kernel's 2047 bytes: found
 * here, at apply, rather than by a node that powers up into an installer
 * with a truncated command line. Built with the boot script's own functions
 * (installKernelArgs, installCommandLine), with the longest server URL and a
 * token of the real length; only the node name varies within a profile, so
 * each profile is checked with its longest node name.
 */
function checkCommandLines(r: Reader, profiles: readonly ProfileSpec[], drafts: readonly NodeDraft[], kernelArgsAt: ReadonlyMap<string, Loc>): void {
  const longest = new Map<string, NodeDraft>();
  for (const d of drafts) {
    if (d.profile === undefined) continue;
    const cur = longest.get(d.profile);
    if (!cur || d.name.length > cur.name.length) longest.set(d.profile, d);
  }
  for (const p of profiles) {
    const d = longest.get(p.name);
    if (!d || !p.os.tree) continue;
    const ks = `${kickstartUrl(LONGEST_SERVER_URL, d.name)}?token=${TOKEN_PLACEHOLDER}`;
    const args = installKernelArgs(p.os.tree, ks, d.macs[0] ?? '00:00:00:00:00:00', p.kernelArgs);
    const bytes = Buffer.byteLength(installCommandLine(treeKernelUrl(p.os.tree), args));
    if (bytes > MAX_KERNEL_CMDLINE) {
      const at = kernelArgsAt.get(p.name);
      r.error(
        at?.path ?? `profiles.${p.name}`,
        at?.node,
        `the installer kernel command line of node ${d.name} (profile ${p.name}) would be up to ${bytes} bytes, more than the ${MAX_KERNEL_CMDLINE} the kernel accepts: shorten kernel_args or the OS tree URL`,
      );
    }
  }
}

function crossCheck(r: Reader, x: CrossInput): void {
  const { net, cluster } = x;
  const inUnknown = (ip: string) => net.unknown !== undefined && ipToInt(ip) >= ipToInt(net.unknown.start) && ipToInt(ip) <= ipToInt(net.unknown.end);
  const unknownText = net.unknown ? `${net.unknown.start}-${net.unknown.end}` : '';

  // the unknown range and the gateway live in the provisioning subnet
  if (net.subnet && net.unknown && net.unknownAt) {
    for (const ip of [net.unknown.start, net.unknown.end]) {
      if (!cidrContains(net.subnet, ip)) {
        r.error(net.unknownAt.path, net.unknownAt.node, `unknown range ${unknownText} is outside ${net.subnetText}`);
        break;
      }
    }
  }
  if (net.subnet && net.gateway && net.gatewayAt && !cidrContains(net.subnet, net.gateway)) {
    r.error(net.gatewayAt.path, net.gatewayAt.node, `${net.gateway} is outside ${net.subnetText}`);
  }

  /** A static provisioning address: inside the subnet, not its network/broadcast address, not in the unknown range. */
  const checkStatic = (ip: string, loc: Loc): void => {
    if (!net.subnet) return;
    if (!cidrContains(net.subnet, ip)) {
      r.error(loc.path, loc.node, `${ip} is outside ${net.subnetText}`);
      return;
    }
    const n = ipToInt(ip);
    if (net.subnet.prefix <= 30 && (n === net.subnet.first || n === net.subnet.last)) {
      r.error(loc.path, loc.node, `${ip} is the ${n === net.subnet.first ? 'network' : 'broadcast'} address of ${net.subnetText}`);
      return;
    }
    if (inUnknown(ip)) r.error(loc.path, loc.node, `${ip} is inside the unknown range ${unknownText}, where undiscovered machines get leases`);
  };

  // every address is claimed once
  const claims = new Map<string, { owner: string; path: string }>();
  /** address:port → the nodes on that BMC (with the system each names, if any). */
  const bmcEndpoints = new Map<string, { owner: string; path: string; system?: string }[]>();
  const bmcAddresses = new Set<string>();
  const claim = (ip: string, owner: string, loc: Loc): void => {
    const prev = claims.get(ip);
    if (prev) r.error(loc.path, loc.node, `${ip} of ${owner} is already used by ${prev.owner} (${prev.path})`);
    else claims.set(ip, { owner, path: loc.path });
  };

  if (cluster.managementAddress && x.mgmtAt) {
    checkStatic(cluster.managementAddress, x.mgmtAt);
    claims.set(cluster.managementAddress, { owner: `the management node${cluster.managementName ? ` ${cluster.managementName}` : ''}`, path: x.mgmtAt.path });
  }
  if (net.gateway && net.gatewayAt && net.gateway !== cluster.managementAddress) claim(net.gateway, 'the gateway', net.gatewayAt);

  const profileNames = [...x.declaredProfiles];
  const credNames = [...x.declaredCredentials];
  const reportedProfile = new Set<string>();
  const reportedCred = new Set<string>();
  const macOwner = new Map<string, { owner: string; path: string }>();
  const mgmtName = cluster.managementName;

  for (const d of x.drafts) {
    if (mgmtName && d.name === mgmtName) r.error(d.at.key.path, d.at.key.node, `node ${d.name} has the name of the management node (cluster.management_name)`);
    if (d.profile !== undefined && d.at.profile && !profileNames.includes(d.profile)) {
      const key = `${d.at.profile.path}`;
      if (!reportedProfile.has(key)) {
        reportedProfile.add(key);
        const guess = closest(d.profile, profileNames);
        r.error(d.at.profile.path, d.at.profile.node, `unknown profile ${show(d.profile)}${guess ? ` (did you mean '${guess}'?)` : ''}; defined profiles: ${profileNames.join(', ') || 'none'}`);
      }
    }
    if (d.bmc?.credentials !== undefined && d.at.credentials && !credNames.includes(d.bmc.credentials)) {
      const key = d.at.credentials.path;
      if (!reportedCred.has(key)) {
        reportedCred.add(key);
        const guess = closest(d.bmc.credentials, credNames);
        r.error(key, d.at.credentials.node, `unknown credentials ${show(d.bmc.credentials)}${guess ? ` (did you mean '${guess}'?)` : ''}; defined credentials: ${credNames.join(', ') || 'none'}`);
      }
    }
    if (d.ip !== undefined && d.at.ip) {
      checkStatic(d.ip, d.at.ip);
      claim(d.ip, d.name, d.at.ip);
    }
    if (d.bmc?.address !== undefined && d.at.bmcAddress) {
      const a = d.bmc.address;
      const loc = d.at.bmcAddress;
      if (net.bmcSubnet) {
        if (!cidrContains(net.bmcSubnet, a)) r.error(loc.path, loc.node, `${a} is outside the BMC network ${net.bmcSubnetText}`);
      }
      if (net.subnet && cidrContains(net.subnet, a)) {
        if (inUnknown(a)) r.error(loc.path, loc.node, `${a} is inside the unknown range ${unknownText}, where undiscovered machines get leases`);
      }
      const endpoint = `${a}:${d.bmc.port}`;
      const sharing = bmcEndpoints.get(endpoint) ?? [];
      // One BMC drives several nodes only when each names its own system (a blade chassis): unique as address:port:system.
      const system = d.bmc.system;
      const clash = sharing.find((p) => system === undefined || p.system === undefined || p.system === system);
      if (clash) {
        const sysLoc = d.at.bmcSystem ?? loc;
        if (system !== undefined && clash.system === system) {
          r.error(sysLoc.path, sysLoc.node, `BMC ${endpoint} system ${system} of ${d.name} is already the system of ${clash.owner} (${clash.path}); give each node its own system`);
        } else {
          r.error(
            loc.path,
            loc.node,
            `BMC ${endpoint} of ${d.name} is already the BMC of ${clash.owner} (${clash.path}); give each node its own address or port, or, on a Redfish BMC that manages several systems, name each node's system (bmc.system)`,
          );
        }
      } else {
        // The address itself is claimed once, so it cannot also be a node's or another host's address.
        if (!bmcAddresses.has(a)) claim(a, `the BMC of ${d.name}`, loc);
        bmcAddresses.add(a);
        sharing.push({ owner: d.name, path: (d.at.bmcSystem ?? loc).path, ...(system !== undefined ? { system } : {}) });
        bmcEndpoints.set(endpoint, sharing);
      }
    }
    d.macs.forEach((mac, i) => {
      const loc = d.at.macs[i]!;
      const prev = macOwner.get(mac);
      if (prev) {
        r.error(loc.path, loc.node, prev.owner === d.name ? `MAC ${mac} is listed twice for ${d.name}` : `MAC ${mac} of ${d.name} is already used by ${prev.owner} (${prev.path})`);
      } else macOwner.set(mac, { owner: d.name, path: loc.path });
    });
  }
}

/** Whether `e` is the FleetError('config.invalid') parseConfig throws. */
export function isConfigInvalid(e: unknown): e is FleetError {
  return e instanceof FleetError && e.code === 'config.invalid';
}

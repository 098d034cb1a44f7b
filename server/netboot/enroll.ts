/**
 * Enrolment of a discovered machine: a node made from a machine seen on the
 * provisioning network (DHCP or an iPXE script fetch) that no node declares.
 * The node is not written to fleet.yaml (its origin is 'enroll'); the
 * machine is forgotten in the same transaction.
 */
import { checkNodeName, cidrContains, ipToInt, isIPv4, normalizeMac, parseCidr, show } from '../../common/patterns.js';
import { FleetError } from '../../common/errors.js';
import type { NodeBmcSpec } from '../model.js';
import type { NodeRecord, Store } from '../store/index.js';

export interface EnrollInput {
  mac: string;
  name: string;
  /** Default: the only declared profile. */
  profile?: string;
  /**
   * The node's address as a discovery rule planned it: kept as given (it
   * must be free). Absent: the discovered address, when it may be kept.
   */
  ip?: string;
  /** The node's BMC as a discovery rule planned it (its credential set must exist). */
  bmc?: NodeBmcSpec;
}

export interface EnrollOptions {
  /**
   * Enrolment through a discovery rule (server/discovery): the machine is
   * forgotten with a machine.accepted event carrying these details (rule,
   * what it gave) rather than silently, and node.added says `discover`.
   */
  accepted?: Record<string, unknown>;
  /** Cause of the events written (default 'enroll', or 'discover' with `accepted`). */
  cause?: string;
}

export interface EnrollResult {
  node: NodeRecord;
  /** Why the node was given no IP, when it was not. */
  ipNote?: string;
}

/**
 * The IP a node enrolled from a discovered machine keeps: its discovered
 * address only when it lies in the provisioning subnet, outside the range
 * for unknown machines (those leases are temporary) and is no other node's.
 */
async function enrolledIp(store: Store, discoveredIp: string | null): Promise<{ ip?: string; note?: string }> {
  if (discoveredIp === null) return { note: 'no address was seen for this machine' };
  if (!isIPv4(discoveredIp)) return { note: `the address seen (${show(discoveredIp)}) is not IPv4` };
  const settings = await store.settings.getCluster();
  const prov = settings?.networks?.provisioning;
  if (!prov) return { note: 'no provisioning network in the applied settings' };
  const cidr = parseCidr(prov.subnet);
  if (typeof cidr === 'string' || !cidrContains(cidr, discoveredIp)) return { note: `${discoveredIp} is outside the provisioning subnet ${prov.subnet}` };
  const n = ipToInt(discoveredIp);
  if (isIPv4(prov.unknownRange.start) && isIPv4(prov.unknownRange.end) && n >= ipToInt(prov.unknownRange.start) && n <= ipToInt(prov.unknownRange.end)) {
    return { note: `${discoveredIp} is in the range for unknown machines (${prov.unknownRange.start}-${prov.unknownRange.end}); give the node an IP in fleet.yaml` };
  }
  const owner = await store.nodes.findByIp(discoveredIp);
  if (owner) return { note: `${discoveredIp} belongs to node ${owner.name}` };
  return { ip: discoveredIp };
}

/** Creates a node from a discovered machine and forgets the machine, in one transaction. */
export async function enrollMachine(store: Store, req: EnrollInput, actor: string, opts: EnrollOptions = {}): Promise<EnrollResult> {
  const mac = normalizeMac(req.mac);
  if (mac === undefined) throw new FleetError('request.invalid', `${show(req.mac)} is not a unicast MAC address (aa:bb:cc:dd:ee:ff)`);
  const badName = checkNodeName(req.name);
  if (badName) throw new FleetError('request.invalid', badName);

  const profiles = (await store.profiles.list()).map((p) => p.name);
  let profile = req.profile;
  if (profile === undefined) {
    if (profiles.length !== 1) {
      throw new FleetError('request.invalid', `give the node a profile (${profiles.length ? `one of ${profiles.join(', ')}` : 'none is declared yet: run fleet apply'})`);
    }
    profile = profiles[0]!;
  } else if (!profiles.includes(profile)) {
    throw new FleetError('request.invalid', `no profile named ${show(profile)} (${profiles.length ? `profiles: ${profiles.join(', ')}` : 'none is declared yet'})`, { profile });
  }

  return store.transaction(async (tx) => {
    const machine = await tx.discovered.get(mac);
    if (!machine) throw new FleetError('not_found', `no discovered machine with MAC ${mac} (see fleet discovered)`, { mac });
    const owner = await tx.nodes.findByMac(mac);
    if (owner) throw new FleetError('conflict', `MAC ${mac} already belongs to node ${owner.name}`, { mac, node: owner.name });
    if (await tx.nodes.get(req.name)) throw new FleetError('conflict', `a node named ${req.name} already exists`, { node: req.name });
    let ip: string | undefined;
    let note: string | undefined;
    if (req.ip !== undefined) {
      if (!isIPv4(req.ip)) throw new FleetError('request.invalid', `${show(req.ip)} is not an IPv4 address`);
      const holder = await tx.nodes.findByIp(req.ip);
      if (holder) throw new FleetError('conflict', `${req.ip} belongs to node ${holder.name}`, { ip: req.ip, node: holder.name });
      ip = req.ip;
    } else {
      ({ ip, note } = await enrolledIp(tx, machine.ip));
    }
    if (req.bmc && !(await tx.credentials.get(req.bmc.credentials))) {
      throw new FleetError('request.invalid', `no credential set named ${show(req.bmc.credentials)} (fleet apply the fleet.yaml that declares it)`, { credentials: req.bmc.credentials });
    }
    const cause = opts.cause ?? (opts.accepted ? 'discover' : 'enroll');
    const res = await tx.nodes.upsert(
      { name: req.name, profile: profile!, macs: [mac], ...(ip !== undefined ? { ip } : {}), ...(req.bmc ? { bmc: req.bmc } : {}), pet: false },
      { actor, cause },
      { origin: 'enroll' },
    );
    if (opts.accepted) await tx.discovered.accepted(mac, req.name, opts.accepted, { actor, cause });
    else await tx.discovered.remove(mac);
    return { node: res.node, ...(note !== undefined ? { ipNote: note } : {}) };
  });
}

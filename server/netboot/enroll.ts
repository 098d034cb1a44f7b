/**
 * Enrolment of a discovered machine: a node made from a machine seen on the
 * provisioning network (DHCP or an iPXE script fetch) that no node declares.
 * The node is not written to fleet.yaml (its origin is 'enroll'); the
 * machine is forgotten in the same transaction.
 */
import { checkNodeName, cidrContains, ipToInt, isIPv4, normalizeMac, parseCidr, show } from '../../common/patterns.js';
import { FleetError } from '../../common/errors.js';
import type { NodeRecord, Store } from '../store/index.js';

export interface EnrollInput {
  mac: string;
  name: string;
  /** Default: the only declared profile. */
  profile?: string;
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
export async function enrollMachine(store: Store, req: EnrollInput, actor: string): Promise<EnrollResult> {
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
    const { ip, note } = await enrolledIp(tx, machine.ip);
    const res = await tx.nodes.upsert({ name: req.name, profile: profile!, macs: [mac], ...(ip !== undefined ? { ip } : {}), pet: false }, { actor, cause: 'enroll' }, { origin: 'enroll' });
    await tx.discovered.remove(mac);
    return { node: res.node, ...(note !== undefined ? { ipNote: note } : {}) };
  });
}

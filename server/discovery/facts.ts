/**
 * The plan's inputs from what the store holds. Pure.
 *
 * `factsOf(machine)`: a discovered machine is its boot MAC, the lease
 * address and the DHCP vendor class and architecture, plus what its last
 * inspection report said (serial, manufacturer, model, NICs, disks, its BMC).
 *
 * `candidatesOf(machines)`: the machines to plan. A BMC takes a DHCP lease
 * in the unknown range of its own, so it is a discovered "machine" too; once
 * an inspection names its MAC, that lease is the machine's BMC (its address
 * fills the BMC's, when the BMC did not say one) and not a machine to name.
 *
 * `takenBy(nodes, settings)`: the names, addresses and BMC endpoints that
 * existing nodes and the management node hold.
 */
import type { ClusterSettings, DiscoveredMachine, NodeRecord } from '../store/index.js';
import { inspectionFacts } from './inspection.js';
import type { Candidate, MachineFacts, Taken } from './types.js';

/** `bmcLeaseIp`: the address of the BMC's own lease (candidatesOf), used when the BMC reported none. */
export function factsOf(m: DiscoveredMachine, bmcLeaseIp?: string): MachineFacts {
  const facts: MachineFacts = {
    mac: m.mac,
    ...(m.ip !== null ? { ip: m.ip } : {}),
    ...(m.vendorClass !== null ? { vendorClass: m.vendorClass } : {}),
    ...(m.arch !== null ? { arch: m.arch } : {}),
  };
  if (m.inspection === null || m.inspectedAt === null) return facts;
  const f = inspectionFacts(m.inspection, m.mac);
  const bmc = f.bmc ?? (bmcLeaseIp !== undefined ? {} : undefined);
  if (bmc && bmc.ip === undefined && bmcLeaseIp !== undefined) bmc.ip = bmcLeaseIp;
  return {
    ...facts,
    inspectedAt: m.inspectedAt,
    macs: f.macs,
    nicCount: f.nicCount,
    diskCount: f.diskCount,
    ...(f.serial !== undefined ? { serial: f.serial } : {}),
    ...(f.manufacturer !== undefined ? { manufacturer: f.manufacturer } : {}),
    ...(f.model !== undefined ? { model: f.model } : {}),
    ...(bmc !== undefined ? { bmc } : {}),
    ...(f.lldp !== undefined ? { lldp: f.lldp } : {}),
  };
}

/** BMC MAC → the MAC of the machine whose inspection named it. */
export function bmcOwners(machines: readonly DiscoveredMachine[]): Map<string, string> {
  const owners = new Map<string, string>();
  for (const m of machines) {
    const mac = m.inspection && !('absent' in m.inspection.bmc) ? m.inspection.bmc.mac : undefined;
    if (mac !== undefined && mac !== m.mac) owners.set(mac, m.mac);
  }
  return owners;
}

/** The machines to plan: every discovered machine but the BMCs that inspections named (their leases go to their machines). */
export function candidatesOf(machines: readonly DiscoveredMachine[]): Candidate[] {
  const owners = bmcOwners(machines);
  const leaseOf = new Map<string, string>();
  for (const m of machines) {
    const owner = owners.get(m.mac);
    if (owner !== undefined && m.ip !== null) leaseOf.set(owner, m.ip);
  }
  return machines.filter((m) => !owners.has(m.mac)).map((m) => candidateOf(m, leaseOf.get(m.mac)));
}

export function candidateOf(m: DiscoveredMachine, bmcLeaseIp?: string): Candidate {
  return {
    facts: factsOf(m, bmcLeaseIp),
    firstSeen: m.firstSeen,
    ...(m.rejectedAt !== null ? { rejected: { at: m.rejectedAt, by: m.rejectedBy ?? 'unknown' } } : {}),
  };
}

export function takenBy(nodes: readonly Pick<NodeRecord, 'name' | 'ip' | 'bmc'>[], settings: Pick<ClusterSettings, 'cluster' | 'networks'> | null): Taken {
  const names = new Set<string>();
  const ips = new Map<string, string>();
  const bmcs = new Map<string, string>();
  const mgmt = settings?.cluster?.managementAddress;
  if (mgmt) ips.set(mgmt, `the management node${settings?.cluster?.managementName ? ` ${settings.cluster.managementName}` : ''}`);
  const gateway = settings?.networks?.provisioning?.gateway;
  if (gateway && !ips.has(gateway)) ips.set(gateway, 'the gateway');
  if (settings?.cluster?.managementName) names.add(settings.cluster.managementName);
  for (const n of nodes) {
    names.add(n.name);
    if (n.ip) ips.set(n.ip, `node ${n.name}`);
    if (n.bmc) bmcs.set(`${n.bmc.address}:${n.bmc.port}`, `node ${n.name}`);
  }
  return { names, ips, bmcs };
}

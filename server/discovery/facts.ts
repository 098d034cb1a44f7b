/**
 * The plan's inputs from what the store holds. Pure.
 *
 * `factsOf(machine)`: today a discovered machine is its boot MAC, the lease
 * address and the DHCP vendor class and architecture; an inspection report
 * (issue 13 item 1) will add serial, manufacturer, model, NICs, disks, BMC
 * and LLDP here, and the rules that need them start to match.
 *
 * `takenBy(nodes, settings)`: the names, addresses and BMC endpoints that
 * existing nodes and the management node hold.
 */
import type { ClusterSettings, DiscoveredMachine, NodeRecord } from '../store/index.js';
import type { Candidate, MachineFacts, Taken } from './types.js';

export function factsOf(m: DiscoveredMachine): MachineFacts {
  return {
    mac: m.mac,
    ...(m.ip !== null ? { ip: m.ip } : {}),
    ...(m.vendorClass !== null ? { vendorClass: m.vendorClass } : {}),
    ...(m.arch !== null ? { arch: m.arch } : {}),
  };
}

export function candidateOf(m: DiscoveredMachine): Candidate {
  return {
    facts: factsOf(m),
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

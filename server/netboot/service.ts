/**
 * The netboot service as `fleet server` runs it: TFTP root, dnsmasq under
 * supervision, and lease events flowing into discovery.
 *
 * Safe by default: DHCP is served only when fleet.yaml enables it, dnsmasq is
 * installed, and the configured interface really carries the management
 * address (authoritative) or an address in the provisioning subnet (proxy).
 * Otherwise the server says why in one line and runs without DHCP — it never
 * starts answering DHCP on a network it was not meant for.
 */
import { chmod } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { cidrContains, parseCidr } from '../../common/patterns.js';
import type { ClusterSpec } from '../model.js';
import type { Store } from '../store/index.js';
import { DiscoveryConsumer, DiscoveryListener } from './discovery/index.js';
import { findExecutable } from '../../common/executable.js';
import { DnsmasqSupervisor, dnsmasqPaths, dnsmasqSettingsFromCluster, reservationsOf, type NetbootLogger } from './dnsmasq/index.js';

export interface NetbootServiceOptions {
  store: Store;
  spec: ClusterSpec;
  dataDir: string;
  /** Base URL nodes reach the HTTP boot endpoints at. */
  serverUrl: string;
  say: (line: string) => void;
  logger: NetbootLogger;
  /** dnsmasq executable; default found on PATH or /usr/sbin. */
  binary?: string;
  /** Interfaces as seen by the server (tests inject). Default os.networkInterfaces(). */
  interfaces?: () => ReturnType<typeof networkInterfaces>;
  /** Told each time a lease event of an unknown machine is recorded (discovery policy auto looks at it). */
  onDiscovered?: (mac: string) => void;
  /** Told each lease event once applied, with what it came to (the server's metrics). */
  onLease?: (action: string, outcome: string) => void;
}

export interface NetbootService {
  /** Rewrites the DHCP reservations from the store (after apply or enroll). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
  supervisor: DnsmasqSupervisor;
}

/** Why DHCP must not start on this host, or null when it may. Pure. */
export function dhcpRefusal(spec: ClusterSpec, interfaces: ReturnType<typeof networkInterfaces>): string | null {
  const dhcp = spec.netboot?.dhcp;
  const iface = dhcp?.interface ?? spec.networks.provisioning.interface;
  if (!iface) return 'no interface named (set netboot.dhcp.interface in fleet.yaml)';
  const addrs = (interfaces[iface] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
  if (addrs.length === 0) return `interface ${iface} does not exist here or has no IPv4 address`;
  const mgmt = spec.cluster.managementAddress;
  if (dhcp?.mode === 'proxy') {
    const subnet = parseCidr(spec.networks.provisioning.subnet);
    if (typeof subnet === 'string' || !addrs.some((a) => cidrContains(subnet, a))) {
      return `interface ${iface} (${addrs.join(', ')}) has no address in ${spec.networks.provisioning.subnet}`;
    }
    return null;
  }
  if (!addrs.includes(mgmt)) return `interface ${iface} (${addrs.join(', ')}) does not carry the management address ${mgmt}`;
  return null;
}

export async function startNetboot(o: NetbootServiceOptions): Promise<NetbootService | null> {
  if (!o.spec.netboot?.dhcp?.enabled) {
    o.say('netboot: DHCP/TFTP off (netboot.dhcp.enabled is not true in fleet.yaml)');
    return null;
  }
  const binary = o.binary ?? findExecutable('dnsmasq');
  if (!binary) {
    o.say('netboot: DHCP/TFTP not started: dnsmasq is not installed (Debian: apt-get install dnsmasq-base)');
    return null;
  }
  const refusal = dhcpRefusal(o.spec, (o.interfaces ?? networkInterfaces)());
  if (refusal) {
    o.say(`netboot: DHCP/TFTP not started: ${refusal}; fleet serves DHCP only on the cluster NIC`);
    return null;
  }
  // dnsmasq drops root for its own user, which must pass through the data dir (files inside stay 0600).
  await chmod(o.dataDir, 0o711);
  const paths = dnsmasqPaths(o.dataDir);
  const settings = dnsmasqSettingsFromCluster(o.spec, { serverUrl: o.serverUrl });
  const onDiscovered = o.onDiscovered;
  const consumer = new DiscoveryConsumer({
    store: o.store,
    logger: o.logger,
    onApplied: (ev, outcome) => {
      o.onLease?.(ev.action, outcome.kind);
      if (outcome.kind === 'discovered') onDiscovered?.(ev.mac);
    },
  });
  const listener = new DiscoveryListener({ fifo: paths.eventsFifo, sink: consumer, logger: o.logger });
  await listener.start();
  const supervisor = new DnsmasqSupervisor({
    paths,
    settings,
    hosts: reservationsOf(await o.store.nodes.list()),
    hookEnv: listener.hookEnv(),
    binary,
    logger: o.logger,
  });
  try {
    await supervisor.start();
  } catch (e) {
    await listener.stop();
    await consumer.stop();
    throw e;
  }
  o.say(`netboot: dnsmasq serving ${settings.mode} DHCP and TFTP on ${settings.interface} (pid ${supervisor.status().pid ?? '?'})`);
  return {
    supervisor,
    async refresh() {
      await supervisor.updateHosts(reservationsOf(await o.store.nodes.list()));
    },
    async stop() {
      await supervisor.stop();
      await listener.stop();
      await consumer.stop();
    },
  };
}

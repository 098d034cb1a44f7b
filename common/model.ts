/**
 * The domain model shared by config (which produces it from fleet.yaml),
 * store (which persists it), everything that reads nodes, and the agent
 * (role settings). The server's ClusterSpec adds its lifecycle settings
 * (server/model.ts).
 *
 * These are plain data types: no behaviour, no I/O. A ClusterSpec is the
 * *desired* cluster as declared; the store adds runtime facts (state, armed
 * flag, last seen, events).
 */

import type { ExpectSpec } from './inventory/expect.js';

export type BmcProtocol = 'ipmi' | 'redfish' | 'ipmitool';

/** Redfish authentication: a session when the service offers a SessionService (auto), or always one of the two. */
export type RedfishAuth = 'session' | 'basic' | 'auto';

export interface ClusterInfo {
  name: string;
  /** DNS domain of the cluster network, e.g. cluster.local */
  domain: string;
  /** IANA timezone, e.g. Europe/Brussels */
  timezone: string;
  /** Address of the management node (odin) on the provisioning network. */
  managementAddress: string;
  /** Host name of the management node (e.g. odin), for /etc/hosts and DNS; optional. */
  managementName?: string;
}

export interface IpRange {
  start: string;
  end: string;
}

export interface ProvisioningNetwork {
  /** CIDR, e.g. 10.10.0.0/16 */
  subnet: string;
  /** Where machines fleet does not know yet get leases, e.g. 10.10.254.1-10.10.254.254 */
  unknownRange: IpRange;
  gateway?: string;
  dns: string[];
  ntp: string[];
  /** Host interface dnsmasq binds to (netboot issue). */
  interface?: string;
}

export interface BmcNetwork {
  subnet: string;
  gateway?: string;
}

export interface Networks {
  provisioning: ProvisioningNetwork;
  bmc?: BmcNetwork;
}

/** A BMC credential set: the secret is referenced, never inline. */
export interface CredentialSpec {
  name: string;
  username: string;
  /** Exactly one of passwordFile / passwordEnv is set. */
  passwordFile?: string;
  passwordEnv?: string;
}

export interface RepoSpec {
  /** Section/file name: [A-Za-z0-9_.-]+ */
  name: string;
  baseurl: string;
  gpgcheck: boolean;
  enabled: boolean;
  /**
   * Debian only: the suite (dists/SUITE) of a standard repository; absent:
   * a flat repository (`BASEURL ./`).
   */
  suite?: string;
  /** Debian only, with `suite`: its components (default ['main']). */
  components?: string[];
  /**
   * Debian only: 'fleet' = the repository is signed with the fleet server's
   * repository key (docs/repo.md); the agent writes it from the cluster
   * facts to /etc/apt/keyrings/fleet.gpg and names it with signed-by=.
   */
  key?: 'fleet';
}

export interface NfsMountSpec {
  /** server:/export */
  source: string;
  /** absolute mount point */
  target: string;
  options: string;
}

/** One line of an NFS server's exports (exports(5)). */
export interface NfsExportSpec {
  /** Absolute directory to export. */
  path: string;
  /** Who may mount it: a host name, an IPv4 address, a CIDR (10.10.0.0/16), `*`, or a wildcard host name (`*.cluster.local`). */
  clients: string;
  /** exports(5) options, comma-separated, no spaces; default rw,sync,no_subtree_check. */
  options: string;
}

export interface UserSpec {
  name: string;
  uid: number;
  gid: number;
  group?: string;
  shell: string;
  home: string;
  sshKeys: string[];
}

export interface GroupSpec {
  name: string;
  gid: number;
}

/** Agent roles and their settings; each role is optional. */
export interface RolesSpec {
  repos?: { repos: RepoSpec[]; remove: string[] };
  hosts?: { enabled: boolean };
  chrony?: { servers: string[]; makestep: string };
  nfs?: { mounts: NfsMountSpec[] };
  /** fleet.yaml `nfs_server`: this node exports directories over NFS. */
  nfsServer?: { exports: NfsExportSpec[] };
  users?: { groups: GroupSpec[]; users: UserSpec[] };
  gpu?: { vendor: 'nvidia'; packages: string[]; blacklistNouveau: boolean };
  infiniband?: { packages: string[] };
  slurm?: SlurmRoleSpec;
}

/** What a node does in the cluster's Slurm: slurmctld (controller), slurmd (compute), or both. */
export type SlurmNodeRole = 'controller' | 'compute' | 'both';

/**
 * The slurm role (docs/slurm.md). The server derives slurm.conf from the
 * cluster (the one controller node, the compute nodes with their reported
 * inventory) and delivers it with the munge key in cluster_json.
 */
export interface SlurmRoleSpec {
  role: SlurmNodeRole;
  /** ClusterName; the same in every profile (default 'fleet'). */
  clusterName: string;
  /** The partition this profile's compute nodes are in (default 'batch'). */
  partition: string;
  /** Whether that partition is the default one (Default=YES); default true. */
  partitionDefault: boolean;
}

export interface ProfileSpec {
  name: string;
  description?: string;
  os: {
    /**
     * Install method: kickstart (Anaconda from an OS tree) or image (a fleet
     * image, docs/images.md, written to the disk by the fleet boot
     * environment: docs/bootenv-protocol.md), or stateless (a fleet image
     * fetched into RAM at every boot: docs/stateless.md), or diskless (a
     * fleet image's tree served read-only over NFS at every boot, with a
     * per-node writable /var: docs/diskless.md).
     */
    install: 'kickstart' | 'image' | 'stateless' | 'diskless';
    /** kickstart: URL of the OS tree (kernel/initrd under images/pxeboot/), e.g. http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os; '' for image. */
    tree: string;
    /** image, stateless, diskless: the image's name (`fleet image list`). */
    image?: string;
    /**
     * stateless: the node's root in RAM: overlay (default; the squashfs read-only
     * under a tmpfs upper layer) or tmpfs (the tree copied into a tmpfs).
     */
    root?: 'overlay' | 'tmpfs';
    /**
     * diskless: who serves the root over NFS. `management`: fleet's own NFS
     * server (nfs-ganesha, supervised by `fleet server`; the only one
     * implemented: docs/diskless.md).
     */
    nfs?: { server: 'management' };
    /**
     * diskless: a local disk for /tmp (seed 004's scratch), formatted ext4
     * with the label fleet-scratch the first time it is found blank; a disk
     * holding anything else stops the boot rather than being formatted.
     * Absent: /tmp is in RAM.
     */
    scratch?: string;
  };
  kernelArgs: string[];
  packages: string[];
  /** crypt(3) SHA-512 hash ($6$...) */
  rootPasswordHash?: string;
  sshKeys: string[];
  /** Optional partitioning override (kickstart lines); default is clearpart + autopart plain ext4. */
  partitioning?: string[];
  roles: RolesSpec;
  /**
   * Hardware the profile's nodes must report (`expect:`, common/inventory/expect.ts):
   * a node whose inventory falls short is held out of `ready`.
   */
  expect?: ExpectSpec;
}

export interface NodeBmcSpec {
  address: string;
  /** Defaults: 623 for ipmi/ipmitool, 443 for redfish. */
  port: number;
  protocol: BmcProtocol;
  /** Name of a CredentialSpec. */
  credentials: string;
  /** Redfish: Id of the ComputerSystem this node is, on a BMC that manages several (blade chassis). */
  system?: string;
  /** Redfish: how to authenticate; absent means auto. */
  auth?: RedfishAuth;
  /** Redfish: how long to wait for PowerState to show a Reset's effect, seconds; absent means the default (30). */
  powerWait?: number;
}

export interface NodeSpec {
  name: string;
  profile: string;
  ip?: string;
  /** Boot/provisioning NIC MAC addresses, lower-case colon form. */
  macs: string[];
  bmc?: NodeBmcSpec;
  /** Pets need --force for destructive operations (reinstall). */
  pet: boolean;
}

/** fleet.yaml `netboot:` (optional; later issues extend it). */
export interface NetbootSpec {
  dhcp?: {
    enabled: boolean;
    /** authoritative: fleet's dnsmasq is the DHCP server; proxy: proxyDHCP next to the site's DHCP. */
    mode: 'authoritative' | 'proxy';
    interface?: string;
    /** Send IPv6 router advertisements (RA only) on the interface: iPXE otherwise waits ~13 s for IPv6 autoconfiguration. Needs an IPv6 address on it. Default false. */
    routerAdvertisements?: boolean;
  };
  /** Directory served over TFTP (iPXE binaries), as written in fleet.yaml. */
  tftpRoot?: string;
  http?: { listen?: string };
}

/** fleet.yaml `server:` (optional). */
export interface ServerSpec {
  /** "ADDR:PORT" of the admin API (default 127.0.0.1:8080; never the provisioning network unless said here). */
  listen?: string;
  /** "ADDR:PORT" of the gRPC agent service (default: the boot endpoints' address, port 50051). */
  grpcListen?: string;
  /** TLS for the admin API: a certificate issued by the fleet CA, or PEM files (paths as written in fleet.yaml). */
  tls?: 'fleet-ca' | { cert: string; key: string };
  /** State directory (SQLite, CA, tokens), as written in fleet.yaml. */
  dataDir?: string;
}

export interface ClusterSpec {
  cluster: ClusterInfo;
  networks: Networks;
  credentials: CredentialSpec[];
  profiles: ProfileSpec[];
  /** Expanded, one entry per node, in fleet.yaml order. */
  nodes: NodeSpec[];
  netboot?: NetbootSpec;
  server?: ServerSpec;
}

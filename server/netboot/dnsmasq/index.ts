/**
 * server/netboot/dnsmasq: fleet's DHCP/TFTP server (DESIGN §2): config
 * rendering (pure), the TFTP root, and the supervisor. Lease events reach
 * the store through server/netboot/discovery. See docs/decisions/0005-dnsmasq.md.
 */
export {
  renderDnsmasqConfig,
  validateDnsmasqInput,
  reservationLines,
  renderHostFiles,
  renderDnsHostFiles,
  hostFileName,
  dnsmasqSettingsFromCluster,
  reservationsOf,
  DEFAULT_LEASE_TIME,
  DEFAULT_BIOS_BINARY,
  DEFAULT_EFI_BINARY,
} from './config.js';
export type {
  DhcpMode,
  HostReservation,
  DnsmasqFilePaths,
  DnsmasqSettings,
  DnsmasqConfigInput,
  DnsmasqConfig,
  ReservationLine,
  ClusterDnsmasqOptions,
} from './config.js';
export { prepareTftpRoot, DEFAULT_IPXE_SOURCE, IPXE_BINARIES, ARM64_BINARIES } from './tftp.js';
export type { PrepareTftpOptions, TftpRootReport } from './tftp.js';
export { DnsmasqSupervisor, dnsmasqPaths } from './supervisor.js';
export type { DnsmasqPaths, DnsmasqStatus, DnsmasqExit, DnsmasqSupervisorOptions, HostsUpdate, SupervisorState } from './supervisor.js';
export { parseLeaseFile } from './leases.js';
export type { DnsmasqLease } from './leases.js';
export { lookupUser } from './system.js';
export type { NetbootLogger } from './logger.js';

/**
 * Where each face of the server listens (DESIGN §9), decided by a pure
 * function so the defaults are tested without sockets:
 *
 * - admin API: `--listen` > `server.listen` > 127.0.0.1:8080 (loopback: never
 *   the provisioning network unless the operator says so);
 * - boot endpoints: `--boot-listen` > `netboot.http.listen` > the management
 *   address on port 8080. That default is tried, not demanded: when the
 *   management address is not on this host (a laptop running the example
 *   cluster has no provisioning network) the boot endpoints are not served
 *   and a line says why;
 * - gRPC for agents: `--grpc-listen` > `server.grpc_listen` > the boot
 *   endpoints' address on port 50051 (when that address is not on this host,
 *   the admin address).
 *
 * Port 0 (tests) means "any free port"; the default boot and gRPC ports
 * follow an admin port 0 so that two test servers never collide.
 */
import { FleetError } from '../common/errors.js';
import { formatHostPort, isWildcard, parseListen, type HostPort } from '../common/listen.js';

export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:8080';
export const DEFAULT_BOOT_PORT = 8080;
export const DEFAULT_GRPC_PORT = 50051;

export interface ListenInputs {
  /** Flags (StartOptions) win over fleet.yaml. */
  flags: { listen?: string; bootListen?: string; grpcListen?: string };
  config: { listen?: string; bootListen?: string; grpcListen?: string };
  /** cluster.management_address: the address nodes are told to reach. */
  managementAddress: string;
}

export interface ListenPlan {
  admin: HostPort;
  boot: HostPort;
  /** The boot address is the default (the management address), not asked for: a host without it serves no boot endpoints. */
  bootImplicit: boolean;
  grpc: HostPort;
  /** Host that boot scripts and kickstarts name for the boot endpoints. */
  advertise: { boot: string };
  /** Things the admin should hear at start (e.g. the admin API is on the provisioning network). */
  warnings: string[];
}

/** The host nodes use to reach a listener on `host`: the listener's own address unless it is a wildcard. */
export function advertised(host: string, managementAddress: string): string {
  return isWildcard(host) ? managementAddress : host;
}

export function planListeners(i: ListenInputs): ListenPlan {
  const admin = parseListen(i.flags.listen ?? i.config.listen ?? DEFAULT_ADMIN_LISTEN);
  const follow = (port: number): number => (admin.port === 0 ? 0 : port);
  const warnings: string[] = [];

  const bootSetting = i.flags.bootListen ?? i.config.bootListen;
  const boot = bootSetting !== undefined ? parseListen(bootSetting) : { host: i.managementAddress, port: follow(DEFAULT_BOOT_PORT) };

  const grpcSetting = i.flags.grpcListen ?? i.config.grpcListen;
  const grpc = grpcSetting !== undefined ? parseListen(grpcSetting) : { host: boot.host, port: follow(DEFAULT_GRPC_PORT) };

  if (admin.port !== 0 && admin.port === boot.port && (isWildcard(admin.host) || isWildcard(boot.host) || admin.host === boot.host)) {
    throw new FleetError(
      'config.invalid',
      `the admin API (${formatHostPort(admin)}) and the boot endpoints (${formatHostPort(boot)}) cannot share one socket: give them different ports or addresses`,
    );
  }
  if (isWildcard(admin.host) || admin.host === i.managementAddress) {
    warnings.push(`the admin API listens on ${formatHostPort(admin)}, which the provisioning network can reach; prefer loopback or a management interface`);
  }

  return {
    admin,
    boot,
    bootImplicit: bootSetting === undefined,
    grpc,
    advertise: { boot: advertised(boot.host, i.managementAddress) },
    warnings,
  };
}

/**
 * Every URL the boot chain and the kickstart point at, built in one place so
 * that the HTTP routes (server/http, a later step) and the renderers agree.
 *
 * `server` is the fleet server's base URL as nodes reach it on the
 * provisioning network, e.g. http://10.10.0.1:8080 (no trailing '/').
 * These builders do not validate: the renderers check every URL they render.
 */

/** The install callbacks an installer makes (install-progress: the boot environment only). */
export type BootEvent = 'install-started' | 'install-failed' | 'install-finished' | 'install-progress';
export const BOOT_EVENTS: readonly BootEvent[] = ['install-started', 'install-failed', 'install-finished', 'install-progress'];

/** Entry script of the chain: what DHCP hands to iPXE (option 67 for user-class iPXE). */
export function bootScriptUrl(server: string): string {
  return `${server}/boot.ipxe`;
}

/**
 * Per-machine script, as boot.ipxe requests it. The MAC is in iPXE's
 * `${mac:hexhyp}` form (52-54-00-12-34-56); boot.ipxe adds serial, uuid, arch
 * and platform as query parameters.
 */
export function machineScriptUrl(server: string, macHexhyp: string): string {
  return `${server}/boot/${macHexhyp}.ipxe`;
}

/** The node's kickstart (inst.ks=). */
export function kickstartUrl(server: string, node: string): string {
  return `${server}/kickstart/${node}.ks`;
}

/** Install progress callback, POSTed from the installer. */
export function bootEventUrl(server: string, node: string, event: BootEvent, token: string): string {
  return `${server}/api/v1/boot-events/${node}/${event}?token=${token}`;
}

/** The agent executable the kickstart's %post downloads. */
export function agentDownloadUrl(server: string): string {
  return `${server}/agent/fleet-agent`;
}

/** Kernel and initrd of an OS tree (RHEL/AlmaLinux layout: images/pxeboot/). */
export function treeKernelUrl(tree: string): string {
  return `${stripSlash(tree)}/images/pxeboot/vmlinuz`;
}
export function treeInitrdUrl(tree: string): string {
  return `${stripSlash(tree)}/images/pxeboot/initrd.img`;
}

/** The fleet boot environment (served from DATA/bootenv/current/). */
export function bootenvKernelUrl(server: string): string {
  return `${server}/bootenv/vmlinuz`;
}
export function bootenvInitrdUrl(server: string): string {
  return `${server}/bootenv/initrd.img`;
}

/** The install plan the boot environment fetches (docs/bootenv-protocol.md). */
export function installPlanUrl(server: string, node: string): string {
  return `${server}/bootenv/${node}/plan`;
}

/** An image artefact in the image store, as the boot face serves it (DATA/images/sha256/<hex>/<file>). */
export function imageArtefactUrl(server: string, digestHex: string, file: string): string {
  return `${server}/images/sha256/${digestHex}/${file}`;
}

/** A stateless image's module layer (server/stateless): /stateless/<image hex>/<layer key>/modules.img on the boot face. */
export function statelessLayerUrl(server: string, digestHex: string, key: string): string {
  return `${server}/stateless/${digestHex}/${key}/modules.img`;
}

/** A stateless node's plan (stage 1 adds ?token=). */
export function statelessPlanUrl(server: string, node: string): string {
  return `${server}/stateless/${node}/plan`;
}

export function stripSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

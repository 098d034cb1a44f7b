/**
 * The boot decision: what a machine that netboots into iPXE is told to do.
 * A pure function of the machine's MAC, what fleet knows about the node and
 * the node's profile; the caller (the HTTP boot endpoint) looks those up,
 * renders the decision with render/ipxe.ts and writes any event.
 *
 * Order of checks (first match wins), in the manner of Tinkerbell smee:
 *
 *   1. The MAC must be a unicast MAC (aa:bb:.. or aa-bb-..), else
 *      FleetError('request.invalid'). It is used in canonical form from here on.
 *   2. No node declares this MAC                     -> `inspect` when
 *      `input.inspect` (the fleet boot environment is built and discovery
 *      inspects): the boot environment with fleet.job=inspect reports the
 *      machine's hardware and BMC (the caller adds the inspect token).
 *      Otherwise `discover`: the script shows the MAC, says it waits to be
 *      enrolled, sleeps and chains back to boot.ipxe. Either way the HTTP
 *      layer records the machine as discovered.
 *   3. The node's install method is diskless -> `not-implemented` with a
 *      clear message. Stateless (docs/stateless.md) -> `install` with
 *      `method: 'stateless'` in every state, armed or not: a stateless node
 *      boots its image from the network at every boot by design, so neither
 *      the armed flag nor the loop breaker applies. The image's kernel, the
 *      boot environment's initrd and the image's module layer, with
 *      fleet.job=stateless; the caller resolves the profile's image to its
 *      digest and layer first (`input.stateless`) and adds the token. An
 *      image that cannot be resolved (not in the store, no boot environment,
 *      no layer) -> `not-implemented` with that reason.
 *   4. The node is not armed                         -> `localboot` (the loop
 *      breaker of DESIGN §3: a network-first boot order is harmless).
 *      a. with `flag: 'boot-loop-suspect'` when the node should be booting
 *         from its disk by now: it is in a post-install state (installed,
 *         disk-armed, first-boot) or finished an install less than
 *         `loopWindowSeconds` ago — and this is not its first netboot since
 *         that install (`netbootedSinceInstall`: one pass through the network
 *         after an install is what a network-first boot order does; coming
 *         back is the loop). The caller writes the event; the node is
 *         never reinstalled for it.
 *      b. with `method: 'sanboot'` when the same node is back less than
 *         `bounceSeconds` after being told to `exit` (the firmware came straight
 *         back to the network instead of booting the disk) and the platform is
 *         not EFI; otherwise `method: 'exit'`.
 *   5. The node is armed but its state does not allow an install (only
 *      `installStates` do: pxe-armed, power-cycling, netbooting, installing)
 *      -> `localboot`: being armed alone never starts an install.
 *   6. Armed, install state, but the profile is missing or is not the node's
 *      -> FleetError('config.invalid') (the store keeps them consistent, so
 *      this is a bug or a race; the boot chain retries and then exits).
 *   7. The method is image                           -> `install` with
 *      `method: 'image'`: the fleet boot environment's kernel and initrd
 *      (/bootenv/vmlinuz, /bootenv/initrd.img on the boot face) and its
 *      command line (docs/bootenv-protocol.md); the caller adds the install
 *      token (fleet.token=) and answers a clear script instead when the boot
 *      environment is not built.
 *   8. Otherwise                                     -> `install`: kernel and
 *      initrd from the profile's OS tree (images/pxeboot/), the kickstart URL
 *      and the kernel arguments (fleet's first, the profile's last).
 *
 * The decision does not validate profile values (tree, kernel args); the
 * renderer checks every value it renders.
 */
import { FleetError } from '../../common/errors.js';
import { cmdlineArgs } from '../bootenv/spec.js';
import type { ProfileSpec } from '../model.js';
import { INSTALL_STATES, POST_INSTALL_STATES } from '../lifecycle/states.js';
import { checkMac, normalizeMac, show } from './render/values.js';
import { bootenvInitrdUrl, bootenvKernelUrl, imageArtefactUrl, kickstartUrl, statelessLayerUrl, stripSlash, treeInitrdUrl, treeKernelUrl } from './render/urls.js';

export type InstallMethod = 'kickstart' | 'image' | 'diskless' | 'stateless';

/** What the decision needs to know about a node (a NodeRecord plus a few derived facts). */
export interface BootNode {
  name: string;
  /** Lifecycle state name. */
  state: string;
  armed: boolean;
  /** Profile name. */
  profile: string;
  /** Overrides the profile's os.install (diskless is a placeholder for now). */
  installMethod?: InstallMethod;
  /** When the node's last install finished (install-finished callback), if known. ISO string or Date. */
  installedAt?: string | Date | null;
  /** When fleet last served this node a local-boot script, if known. ISO string or Date. */
  lastLocalbootAt?: string | Date | null;
  /**
   * Whether fleet already answered a netboot of this node (localboot) since
   * its last install finished: false for the first netboot after an install
   * (a firmware that keeps the network first, as UEFI does until the next
   * power cycle), which is expected and not flagged. Unknown (absent): treated
   * as a repeat.
   */
  netbootedSinceInstall?: boolean;
}

export interface BootOptions {
  /** States in which an armed node is given the installer. */
  installStates: readonly string[];
  /** States in which the node should boot from disk; netbooting then is a boot-loop suspect. */
  postInstallStates: readonly string[];
  /** A node back on the netboot path less than this after an install is a boot-loop suspect. */
  loopWindowSeconds: number;
  /** A node back less than this after a localboot `exit` gets `sanboot` instead (BIOS only). */
  bounceSeconds: number;
  /** How long an unknown machine waits before asking again. */
  discoverRetrySeconds: number;
}

export const DEFAULT_BOOT_OPTIONS: BootOptions = {
  installStates: INSTALL_STATES,
  postInstallStates: POST_INSTALL_STATES,
  loopWindowSeconds: 30 * 60,
  bounceSeconds: 120,
  discoverRetrySeconds: 30,
};

export interface BootInput {
  /** The node that declares this MAC; absent when no node does. */
  node?: BootNode;
  /** The MAC the machine booted from (iPXE ${mac:hexhyp} or colon form). */
  mac: string;
  /** The node's profile (needed for an install). */
  profile?: ProfileSpec;
  /** The fleet server's base URL as nodes reach it, e.g. http://10.10.0.1:8080. */
  server: string;
  /** iPXE ${platform}: pcbios or efi, when the request carried it. */
  platform?: string;
  /** An unknown machine is inspected (the boot environment is built and discovery inspects); else it gets the waiting script. */
  inspect?: boolean;
  /** How long the inspecting boot environment listens for LLDP on each linked NIC (discovery lldp_wait; 0 or absent: not at all). */
  lldpWaitSeconds?: number;
  /**
   * A stateless node's image, resolved by the caller (I/O): its digest and the
   * key of its module layer, or why it cannot be booted. Absent for other nodes.
   */
  stateless?: StatelessImage | { error: string };
  now?: Date;
  options?: Partial<BootOptions>;
}

/** What a stateless boot needs to know about the profile's image. */
export interface StatelessImage {
  /** The image's name (fleet image list). */
  name: string;
  /** sha256:<64 hex> */
  digest: string;
  /** The module layer's key (server/stateless/spec.ts layerKey). */
  layerKey: string;
}

export interface InstallDecision {
  kind: 'install';
  method: 'kickstart';
  node: string;
  profile: string;
  kernelUrl: string;
  initrdUrl: string;
  kickstartUrl: string;
  /** Kernel command line after the kernel URL, one token each. */
  kernelArgs: string[];
}

/** An image install: iPXE loads the fleet boot environment, which fetches the node's plan. */
export interface ImageInstallDecision {
  kind: 'install';
  method: 'image';
  node: string;
  profile: string;
  /** The image the profile names (resolved to a digest when the plan is served). */
  image: string;
  kernelUrl: string;
  initrdUrl: string;
  /** Kernel command line after the kernel URL, one token each; fleet.token= is added by the caller. */
  kernelArgs: string[];
}

/**
 * A stateless boot (docs/stateless.md): iPXE loads the image's kernel and two
 * initrds, the boot environment's initrd.img and the image's module layer;
 * stage 1 fetches the node's plan and the image into RAM.
 */
export interface StatelessBootDecision {
  kind: 'install';
  /** stateless: the image into RAM; diskless: the image over NFS (the same stage 1, told by its plan). */
  method: 'stateless' | 'diskless';
  node: string;
  profile: string;
  image: string;
  /** sha256:<64 hex> */
  digest: string;
  kernelUrl: string;
  /** In order: the boot environment's initrd, then the module layer the kernel unpacks over it. */
  initrdUrls: [string, string];
  /** Kernel command line after the kernel URL, one token each; fleet.token= is added by the caller. */
  kernelArgs: string[];
}

export interface LocalbootDecision {
  kind: 'localboot';
  node: string;
  /** One line for the console, e.g. "valkyrie01 is not armed for install (state ready)". */
  reason: string;
  /** exit: back to the firmware boot order; sanboot: iPXE boots BIOS drive 0x80 (then exits if that fails). */
  method: 'exit' | 'sanboot';
  /** Set when the node should not be on the netboot path at all; the caller writes the event. */
  flag?: 'boot-loop-suspect';
}

export interface DiscoverDecision {
  kind: 'discover';
  /** Canonical lower-case colon form. */
  mac: string;
  retrySeconds: number;
}

export interface NotImplementedDecision {
  kind: 'not-implemented';
  node: string;
  method: 'diskless' | 'stateless' | 'image';
  message: string;
}

/** An unknown machine boots the fleet boot environment in inspect mode: it reports its hardware and its BMC. */
export interface InspectDecision {
  kind: 'inspect';
  /** Canonical lower-case colon form. */
  mac: string;
  kernelUrl: string;
  initrdUrl: string;
  /** Kernel command line after the kernel URL, one token each; fleet.token= (the inspect token) is added by the caller. */
  kernelArgs: string[];
}

export type BootDecision = InstallDecision | ImageInstallDecision | StatelessBootDecision | LocalbootDecision | DiscoverDecision | InspectDecision | NotImplementedDecision;

const METHODS: readonly string[] = ['kickstart', 'image', 'diskless', 'stateless'];

function toMs(t: string | Date | null | undefined): number | undefined {
  if (t === undefined || t === null) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

function ago(seconds: number): string {
  if (seconds < 120) return `${Math.max(0, Math.round(seconds))} s`;
  return `${Math.round(seconds / 60)} min`;
}

/** Decides what the machine with `input.mac` boots. See the order of checks above. */
export function decideBoot(input: BootInput): BootDecision {
  const opts: BootOptions = { ...DEFAULT_BOOT_OPTIONS, ...input.options };
  const now = (input.now ?? new Date()).getTime();

  // 1. a usable MAC
  const mac = normalizeMac(input.mac);
  if (mac === undefined) throw new FleetError('request.invalid', `boot request: ${checkMac(input.mac)}`, { mac: input.mac });

  // 2. unknown machine
  const node = input.node;
  if (!node) {
    if (input.inspect) {
      return { kind: 'inspect', mac, kernelUrl: bootenvKernelUrl(input.server), initrdUrl: bootenvInitrdUrl(input.server), kernelArgs: inspectKernelArgs(input.server, mac, input.lldpWaitSeconds) };
    }
    return { kind: 'discover', mac, retrySeconds: opts.discoverRetrySeconds };
  }

  // 3. network-only boot methods: stateless boots its image at every boot; diskless is not implemented yet
  const method = node.installMethod ?? input.profile?.os.install ?? 'kickstart';
  if (!METHODS.includes(method)) {
    throw new FleetError('config.invalid', `node ${node.name}: unknown install method ${show(method)}`, { node: node.name });
  }
  if (method === 'stateless' || method === 'diskless') return decideStateless(input, node, mac, method);

  // 4. not armed: boot the local disk, flag a suspected loop
  if (!node.armed) {
    const decision: LocalbootDecision = {
      kind: 'localboot',
      node: node.name,
      reason: `${node.name} is not armed for install (state ${node.state})`,
      method: 'exit',
    };
    const installedAt = toMs(node.installedAt);
    const sinceInstall = installedAt === undefined ? undefined : (now - installedAt) / 1000;
    const postInstall = opts.postInstallStates.includes(node.state);
    const inWindow = sinceInstall !== undefined && sinceInstall >= 0 && sinceInstall < opts.loopWindowSeconds;
    if ((postInstall || inWindow) && node.netbootedSinceInstall === false) {
      decision.reason = `${node.name} netbooted ${postInstall ? `in state ${node.state}` : `${ago(sinceInstall!)}`} after its install, the first time since (a network-first boot order): boot the local disk, flagged boot-loop-suspect if it comes back`;
    } else if (postInstall) {
      decision.flag = 'boot-loop-suspect';
      decision.reason = `${node.name} is back on the network boot path in state ${node.state}: suspected boot loop, not reinstalling`;
    } else if (inWindow) {
      decision.flag = 'boot-loop-suspect';
      decision.reason = `${node.name} is back on the network boot path ${ago(sinceInstall!)} after its install: suspected boot loop, not reinstalling`;
    }
    const lastLocal = toMs(node.lastLocalbootAt);
    const sinceLocal = lastLocal === undefined ? undefined : (now - lastLocal) / 1000;
    if (sinceLocal !== undefined && sinceLocal >= 0 && sinceLocal < opts.bounceSeconds && input.platform !== 'efi') {
      decision.method = 'sanboot';
      decision.reason += ` (back ${ago(sinceLocal)} after exit to the firmware, trying BIOS disk 0x80)`;
    }
    return decision;
  }

  // 5. armed, but not in a state that installs
  if (!opts.installStates.includes(node.state)) {
    return {
      kind: 'localboot',
      node: node.name,
      reason: `${node.name} is armed but in state ${node.state}, which does not install`,
      method: 'exit',
    };
  }

  // 6. the profile must be there and be the node's
  const profile = input.profile;
  if (!profile) {
    throw new FleetError('config.invalid', `node ${node.name} is armed for install but its profile ${show(node.profile)} was not found`, {
      node: node.name,
      profile: node.profile,
    });
  }
  if (profile.name !== node.profile) {
    throw new FleetError('config.invalid', `node ${node.name} has profile ${show(node.profile)}, but profile ${show(profile.name)} was given`, {
      node: node.name,
      profile: node.profile,
    });
  }

  // 7. an image install: the fleet boot environment fetches the node's plan and writes the image
  if (method === 'image') {
    return {
      kind: 'install',
      method: 'image',
      node: node.name,
      profile: profile.name,
      image: profile.os.image ?? '',
      kernelUrl: bootenvKernelUrl(input.server),
      initrdUrl: bootenvInitrdUrl(input.server),
      kernelArgs: bootenvKernelArgs(input.server, node.name, mac),
    };
  }

  // 8. install
  const tree = stripSlash(profile.os.tree);
  const ks = kickstartUrl(input.server, node.name);
  return {
    kind: 'install',
    method: 'kickstart',
    node: node.name,
    profile: profile.name,
    kernelUrl: treeKernelUrl(tree),
    initrdUrl: treeInitrdUrl(tree),
    kickstartUrl: ks,
    kernelArgs: installKernelArgs(tree, ks, mac, profile.kernelArgs),
  };
}

/** Check 3 for a stateless node: its image's kernel, the two initrds, fleet.job=stateless. */
function decideStateless(input: BootInput, node: BootNode, mac: string, method: 'stateless' | 'diskless'): StatelessBootDecision | NotImplementedDecision {
  const cannot = (why: string): NotImplementedDecision => ({ kind: 'not-implemented', node: node.name, method, message: `${node.name} boots ${method}, but ${why}` });
  const profile = input.profile;
  if (!profile) return cannot(`its profile ${show(node.profile)} was not found`);
  if (profile.name !== node.profile) {
    throw new FleetError('config.invalid', `node ${node.name} has profile ${show(node.profile)}, but profile ${show(profile.name)} was given`, { node: node.name, profile: node.profile });
  }
  const image = input.stateless;
  if (!image) return cannot('its image was not resolved');
  if ('error' in image) return cannot(image.error);
  const hex = image.digest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex) || !/^[0-9a-f]{64}$/.test(image.layerKey)) {
    throw new FleetError('internal', `stateless image of ${node.name}: ${show(image.digest)} / ${show(image.layerKey)} is not a digest and a layer key`);
  }
  return {
    kind: 'install',
    method,
    node: node.name,
    profile: profile.name,
    image: image.name,
    digest: `sha256:${hex}`,
    kernelUrl: imageArtefactUrl(input.server, hex, 'vmlinuz'),
    initrdUrls: [bootenvInitrdUrl(input.server), statelessLayerUrl(input.server, hex, image.layerKey)],
    kernelArgs: statelessKernelArgs(input.server, node.name, mac, profile.kernelArgs, method),
  };
}

/**
 * A stateless boot's kernel arguments, without the token (withInstallToken
 * puts `fleet.token=T` after `fleet.node=`): one `initrd=` per initrd for
 * UEFI kernels (iPXE names each image after its URL's file name), fleet's
 * arguments, then the profile's (they reach the image's kernel, stage 2 too).
 */
export function statelessKernelArgs(server: string, node: string, mac: string, profileArgs: readonly string[], job: 'stateless' | 'diskless' = 'stateless'): string[] {
  return ['initrd=initrd.img', 'initrd=modules.img', ...cmdlineArgs({ server, node, mac, job }), ...profileArgs];
}

/**
 * The installer's kernel arguments: fleet's first, the profile's last. Also
 * used by the config check of the command line length (config/parse.ts), so
 * that the check and the boot script agree.
 */
export function installKernelArgs(tree: string, kickstart: string, mac: string, profileArgs: readonly string[]): string[] {
  const t = stripSlash(tree);
  return [
    // UEFI kernels find the initrd by this name (iPXE names the image after the URL's file name).
    'initrd=initrd.img',
    `inst.stage2=${t}`,
    `inst.repo=${t}`,
    `inst.ks=${kickstart}`,
    'ip=dhcp',
    // Only the NIC that booted: dracut and anaconda honour the pxelinux BOOTIF convention.
    `BOOTIF=01-${mac.replace(/:/g, '-')}`,
    ...profileArgs,
  ];
}

/**
 * The boot environment's kernel arguments (docs/bootenv-protocol.md), without
 * the install token: withInstallToken (scripts.ts) puts `fleet.token=T` after
 * `fleet.node=`. `initrd=initrd.img` comes first for UEFI kernels, as for the
 * installer.
 */
export function bootenvKernelArgs(server: string, node: string, mac: string): string[] {
  return ['initrd=initrd.img', ...cmdlineArgs({ server, node, mac, job: 'install' })];
}

/** The boot environment's kernel arguments for inspecting an unknown machine (no fleet.node; the caller adds fleet.token=). */
export function inspectKernelArgs(server: string, mac: string, lldpWait?: number): string[] {
  return ['initrd=initrd.img', ...cmdlineArgs({ server, mac, job: 'inspect', ...(lldpWait !== undefined ? { lldpWait } : {}) })];
}

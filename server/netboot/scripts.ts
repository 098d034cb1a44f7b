/**
 * The boot decision and the rendered scripts for a node, as the HTTP boot
 * endpoints serve them and as `fleet render` shows them.
 *
 * The boot service (boot-service.ts, behind server/http/routes/boot.ts) and
 * the inspection API (server/http/routes/netboot-api.ts) share this code so
 * that `fleet render` shows exactly what a node would be served: same facts
 * from the store, same decision, same templates. The only difference is the tokens: the endpoints
 * issue real ones, previews carry PLACEHOLDER_TOKEN and issue nothing.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bootenvPaths } from '../bootenv/spec.js';
import { FleetError } from '../../common/errors.js';
import type { ClusterInfo, ProfileSpec } from '../model.js';
import { decideBoot, type BootDecision, type BootInput, type BootNode, type ImageInstallDecision, type InspectDecision, type InstallDecision, type StatelessBootDecision } from './decide.js';
import { resolveStateless } from '../stateless/resolve.js';
import { lldpWaitOf, type DiscoverySpec } from '../discovery/types.js';
import {
  ipxeTemplateName,
  KICKSTART_TEMPLATE,
  loadTemplate,
  PLACEHOLDER_TOKEN,
  renderBootChain,
  renderIpxe,
  renderKickstart,
} from './render/index.js';
import type { NodeRecord, Store } from '../store/index.js';
import { EVENT } from '../../common/events.js';

/** Token purposes. The enrolment token uses the store's default purpose, which the gRPC Enroll consumes. */
export const INSTALL_TOKEN_PURPOSE = 'install';

export interface RenderDeps {
  store: Store;
  /** The fleet server's base URL as nodes reach it, e.g. http://10.10.0.1:8080. */
  serverUrl: string;
  /** Directory holding ipxe/ and kickstart/ (default: found from the installation). */
  templateRoot?: string;
  /** SHA-256 fingerprint of the fleet CA certificate (needed for kickstarts). */
  caFingerprint?: string;
  /** What the agent enrols with (HOST:PORT of the gRPC service); default serverUrl. */
  enrolServer?: string;
  /** Clock for the boot decision (tests pin it). */
  now?: () => Date;
  /** The data dir: DATA/bootenv/current/ (the boot environment) and DATA/images/ (the image store). */
  dataDir?: string;
}

/** The sentence an armed image node is shown while there is no boot environment. */
export const BOOTENV_MISSING = 'the fleet boot environment is not built: run fleet bootenv build';

/** Whether the boot environment is built (DATA/bootenv/current/vmlinuz); no data dir: not built. */
export async function bootenvBuilt(dataDir: string | undefined): Promise<boolean> {
  if (dataDir === undefined) return false;
  try {
    return (await stat(join(bootenvPaths(dataDir).current, 'vmlinuz'))).isFile();
  } catch {
    return false;
  }
}

function templateOpts(deps: RenderDeps): { root?: string } {
  return deps.templateRoot !== undefined ? { root: deps.templateRoot } : {};
}

/** The newest event of a node of one of these kinds, or undefined. */
async function lastEvent(store: Store, node: string, kinds: string[]) {
  const page = await store.events.list({ node, kinds, order: 'desc', limit: 1 });
  return page.events[0];
}

/**
 * What the decision needs to know about a node: its record plus when its
 * last install finished (the install.finished callback) and when it was last
 * told to `exit` to its firmware (the last script served was localboot exit).
 */
export async function bootNodeOf(store: Store, node: NodeRecord): Promise<BootNode> {
  const finished = await lastEvent(store, node.name, [EVENT.installFinished]);
  const served = await lastEvent(store, node.name, [EVENT.scriptFetched]);
  const d = (served?.details ?? {}) as { decision?: string; method?: string };
  return {
    name: node.name,
    state: node.state,
    armed: node.armed,
    profile: node.profile,
    installedAt: finished?.time ?? null,
    lastLocalbootAt: served && d.decision === 'localboot' && d.method === 'exit' ? served.time : null,
    // The last script served came after the install finished and was a localboot: this netboot is not the first since.
    ...(finished ? { netbootedSinceInstall: served !== undefined && served.id > finished.id && d.decision === 'localboot' } : {}),
  };
}

/** The boot decision for a machine booting from `mac`, owned by `node` (null: no node declares it). */
export async function decideFor(deps: RenderDeps, node: NodeRecord | null, mac: string, opts: { platform?: string } = {}): Promise<BootDecision> {
  let bootNode: BootNode | undefined;
  let profile: ProfileSpec | undefined;
  let inspect = false;
  let lldpWait = 0;
  let stateless: BootInput['stateless'];
  if (node) {
    bootNode = await bootNodeOf(deps.store, node);
    profile = (await deps.store.profiles.get(node.profile)) ?? undefined;
    // A stateless node boots its image at every boot: resolve it (and build its module layer once).
    if (profile?.os.install === 'stateless' || profile?.os.install === 'diskless') {
      const r = await resolveStateless({ dataDir: deps.dataDir, image: profile.os.image, bootenvBuilt: await bootenvBuilt(deps.dataDir) });
      stateless = 'error' in r ? r : r.image;
    }
  } else {
    // An unknown machine is inspected when the boot environment is built and discovery does not say `inspect: false`.
    const discovery = (await deps.store.settings.getCluster())?.discovery as DiscoverySpec | undefined;
    inspect = discovery?.inspect !== false && (await bootenvBuilt(deps.dataDir));
    lldpWait = lldpWaitOf(discovery);
  }
  const decision = decideBoot({
    ...(bootNode ? { node: bootNode } : {}),
    ...(profile ? { profile } : {}),
    inspect,
    ...(stateless ? { stateless } : {}),
    ...(lldpWait > 0 ? { lldpWaitSeconds: lldpWait } : {}),
    mac,
    server: deps.serverUrl,
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(deps.now ? { now: deps.now() } : {}),
  });
  // An image install boots the boot environment: without one the node is told how to build it.
  if (decision.kind === 'install' && decision.method === 'image' && !(await bootenvBuilt(deps.dataDir))) {
    return { kind: 'not-implemented', node: decision.node, method: 'image', message: `${BOOTENV_MISSING} (${decision.node} installs by image)` };
  }
  return decision;
}

/**
 * The install decision with its install token: on the kickstart URL (and in
 * the inst.ks= kernel argument), or for an image install as `fleet.token=T`
 * right after `fleet.node=` on the boot environment's command line (also a
 * stateless boot's stage 1).
 */
export function withInstallToken<D extends InstallDecision | ImageInstallDecision | StatelessBootDecision>(decision: D, token: string): D {
  if (decision.method !== 'kickstart') {
    const args = decision.kernelArgs.filter((a) => !a.startsWith('fleet.token='));
    const at = args.findIndex((a) => a.startsWith('fleet.node='));
    args.splice(at === -1 ? args.length : at + 1, 0, `fleet.token=${token}`);
    return { ...decision, kernelArgs: args };
  }
  return withKickstartToken(decision, token) as D;
}

/** The inspect decision with its inspect token as `fleet.token=T` before `fleet.mac=`. */
export function withInspectToken(decision: InspectDecision, token: string): InspectDecision {
  const args = decision.kernelArgs.filter((a) => !a.startsWith('fleet.token='));
  const at = args.findIndex((a) => a.startsWith('fleet.mac='));
  args.splice(at === -1 ? args.length : at, 0, `fleet.token=${token}`);
  return { ...decision, kernelArgs: args };
}

/** The install decision with `?token=TOKEN` on its kickstart URL (and in the inst.ks= kernel argument). */
export function withKickstartToken(decision: InstallDecision, token: string): InstallDecision {
  const url = `${decision.kickstartUrl}?token=${token}`;
  return {
    ...decision,
    kickstartUrl: url,
    kernelArgs: decision.kernelArgs.map((a) => (a === `inst.ks=${decision.kickstartUrl}` ? `inst.ks=${url}` : a)),
  };
}

/** Renders a decision with its template. */
export async function renderDecision(deps: RenderDeps, decision: BootDecision): Promise<string> {
  const template = await loadTemplate('ipxe', ipxeTemplateName(decision), templateOpts(deps));
  return renderIpxe(decision, template, { server: deps.serverUrl });
}

/** The entry script of the chain (boot.ipxe). */
export async function renderChain(deps: RenderDeps): Promise<string> {
  const template = await loadTemplate('ipxe', 'boot.ipxe', templateOpts(deps));
  return renderBootChain(template, { server: deps.serverUrl });
}

/** The cluster section of the applied settings; 'unavailable' before the first apply. */
export async function clusterInfo(store: Store): Promise<ClusterInfo> {
  const settings = await store.settings.getCluster();
  if (!settings?.cluster) throw new FleetError('unavailable', 'no cluster settings in the store yet: run fleet apply first');
  return settings.cluster;
}

/** The node's kickstart with the given tokens (real ones when served, PLACEHOLDER_TOKEN for a preview). */
export async function renderNodeKickstart(deps: RenderDeps, node: NodeRecord, tokens: { token: string; callbackToken?: string }): Promise<string> {
  const profile = await deps.store.profiles.get(node.profile);
  if (!profile) throw new FleetError('config.invalid', `node ${node.name}: its profile ${node.profile} is not in the store`, { node: node.name });
  const cluster = await clusterInfo(deps.store);
  if (deps.caFingerprint === undefined) {
    throw new FleetError('unavailable', 'the server has no CA fingerprint configured, so it cannot render kickstarts (the agent pins the CA with it)');
  }
  const template = await loadTemplate('kickstart', KICKSTART_TEMPLATE, templateOpts(deps));
  return renderKickstart(template, {
    node: { name: node.name },
    profile,
    cluster,
    server: deps.serverUrl,
    token: tokens.token,
    ...(tokens.callbackToken !== undefined ? { callbackToken: tokens.callbackToken } : {}),
    caFingerprint: deps.caFingerprint,
    ...(deps.enrolServer !== undefined ? { enrolServer: deps.enrolServer } : {}),
  });
}

/** Inspection: the iPXE script the node would get now if its primary MAC booted, tokens replaced by PLACEHOLDER_TOKEN. */
export async function previewIpxe(deps: RenderDeps, name: string, opts: { platform?: string } = {}): Promise<{ decision: BootDecision; text: string }> {
  const node = await deps.store.nodes.require(name);
  const mac = node.macs[0];
  if (mac === undefined) throw new FleetError('request.invalid', `node ${name} declares no MAC address, so it cannot boot from the network`, { node: name });
  let decision = await decideFor(deps, node, mac, opts);
  if (decision.kind === 'install') decision = withInstallToken(decision, PLACEHOLDER_TOKEN);
  return { decision, text: await renderDecision(deps, decision) };
}

/**
 * Inspection: the node's kickstart with PLACEHOLDER_TOKEN for every token.
 * Rendered whether or not the node is armed (it is served only while armed).
 */
export async function previewKickstart(deps: RenderDeps, name: string): Promise<string> {
  const node = await deps.store.nodes.require(name);
  return renderNodeKickstart(deps, node, { token: PLACEHOLDER_TOKEN });
}

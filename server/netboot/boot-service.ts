/**
 * The boot service: what the boot endpoints do for the machines on the
 * provisioning network while they netboot and install, without HTTP
 * (server/http/routes/boot.ts is its adapter):
 *
 *   chainScript()          the chain script (boot.ipxe, the same for every machine)
 *   machineScript(id, m)   the machine's iPXE script: the pure decision (decide.ts) on the
 *                          store's facts; an unknown MAC is recorded as discovered
 *   kickstart(node, t, ip) the node's kickstart, for its install token t
 *   installPlan(node, t, ip) an image install's plan (JSON) for the boot environment, for t
 *   statelessPlan(node, t, ip) a stateless boot's plan (JSON) for stage 1, for t
 *   installCallback(...)   install-started | install-failed | install-finished |
 *                          install-progress (an event row only, rate-limited), for t
 *
 * Every fact learnt here goes through the recorder (server/lifecycle/record.ts):
 * its event row is written, then the conductor is told. Errors are FleetErrors
 * for the adapter to answer (a refused token: auth.forbidden, after its
 * refusal row is written). Event details never carry a token.
 *
 * Tokens (DESIGN §4, docs/netboot.md "Install tokens"): a node has at most
 * one outstanding token of each kind, and every use records its source address.
 * - install token (purpose 'install'): handed out with the node's install
 *   script and put on the kickstart URL (inst.ks=...?token=T). It authorises
 *   the kickstart fetch and the install callbacks for that node only, until
 *   it expires (installTokenTtlMs). A repeated script fetch is served the
 *   same token again (store: tokens.current), never a second one. Fetches
 *   and callbacks do not use it up (installers retry); install-finished does,
 *   and revokes every other outstanding token of the node in the same
 *   transaction, so the copy of the kickstart left on the installed system
 *   carries dead tokens.
 * - enrolment token (the store's default purpose, which the gRPC Enroll
 *   consumes): handed out with the kickstart or the install plan (the same
 *   one again on a repeated fetch) and embedded in its %post for
 *   `fleet-agent enroll` (the plan's agent.enrolToken for an image install).
 *
 * Image installs (docs/bootenv-protocol.md): the boot environment is served
 * from DATA/bootenv/current/ (the routes' static files); while its kernel is
 * not there an armed image node is told so by a not-implemented script
 * ("the fleet boot environment is not built: run fleet bootenv build") and
 * no token is issued: the lifecycle times out as for any failed netboot.
 * - cancel, fail and a new reinstall revoke both (the conductor).
 */
import { bmcSetupFor, finishBmcSetup, parseBmcSetupReport, type BmcSetupAction, type BmcSetupDeps } from '../discovery/bmc-setup.js';
import { EVENT, type EventKind } from '../../common/events.js';
import { FleetError, isFleetError } from '../../common/errors.js';
import { MAC_INPUT, NODE_NAME, SERIAL_NUMBER, normalizeMac, show } from '../../common/patterns.js';
import type { Fact, FactRecorder } from '../lifecycle/record.js';
import type { NodeRecord, Store } from '../store/index.js';
import type { BootEvent } from './render/index.js';
import { bootenvPaths } from '../bootenv/spec.js';
import { showImage } from '../images/store.js';
import { acceptProgress, parseProgress, renderInstallPlan, renderStatelessPlan, type InstallPlan, type InstallPlanInput, type StatelessPlan } from './install-plan.js';
import { clusterInfo, decideFor, INSTALL_TOKEN_PURPOSE, renderChain, renderDecision, renderNodeKickstart, withInspectToken, withInstallToken, type RenderDeps } from './scripts.js';
import { parseInspectionReport } from '../discovery/inspection.js';
import { netRootOf, type NetRoot } from '../stateless/profile.js';
import type { DisklessMounts } from '../diskless/spec.js';
import type { DiscoverySpec } from '../discovery/types.js';

export const DEFAULT_TOKEN_TTL_MS = 2 * 60 * 60 * 1000;
/** How much of an install-failed log is kept in the event (its end). */
export const MAX_STORED_LOG = 16 * 1024;
const ACTOR = 'netboot';

export interface BootServiceDeps extends RenderDeps {
  /** The one way in for facts: event row, then the conductor. */
  recorder: FactRecorder;
  /** Life of the enrolment token embedded in a kickstart (default 2 h). */
  tokenTtlMs?: number;
  /** Life of the install token (kickstart fetch and callbacks; default tokenTtlMs). */
  installTokenTtlMs?: number;
  /** Told each time an unknown machine's script fetch is recorded (discovery policy auto looks at it). */
  onDiscovered?: (mac: string) => void;
  /** Told when an inspection report was kept (policy auto looks again: the rules may match now). */
  onInspected?: (mac: string) => void;
  /** Life of an inspect token (the report and the waiting machine's polls; default 24 h). */
  inspectTokenTtlMs?: number;
  /** What the in-band BMC set-up needs to verify, record and go on (server/discovery/bmc-setup.ts); absent: set-up reports are refused. */
  bmcSetup?: Omit<BmcSetupDeps, 'store'>;
  /** fleet's diskless service (server/diskless): what a diskless node mounts; absent: diskless plans are refused. */
  diskless?: { serve(node: string): Promise<DisklessMounts | { error: string }> };
}

/** An inspected machine may wait a day for an operator before its token runs out (it asks again when booted again). */
export const DEFAULT_INSPECT_TOKEN_TTL_MS = 24 * 3600_000;
/** How often a waiting inspected machine asks what comes next. */
export const INSPECT_POLL_SECONDS = 30;

/** What a waiting inspected machine does next (GET /inspection/MAC/next). */
export type InspectNext = { action: 'wait'; seconds: number; reason: string } | { action: 'poweroff'; reason: string } | BmcSetupAction;

/** Where the built boot environment is served from (a directory, or a symlink to one beside it). */
export function bootenvCurrentDir(dataDir: string): string {
  return bootenvPaths(dataDir).current;
}


/** What a booting machine says about itself (boot.ipxe's query) and where it asks from. */
export interface MachineFacts {
  /** The client address as recorded in events. */
  ip: string;
  serial?: string;
  uuid?: string;
  arch?: string;
  platform?: string;
}

export interface BootService {
  /** The entry script of the chain (boot.ipxe). */
  chainScript(): Promise<string>;
  /** The script for the machine `id` (a MAC, 52-54-00-12-34-56, or a node name): issues the install token when it installs. */
  machineScript(id: string, machine: MachineFacts): Promise<string>;
  /** The node's kickstart, for its install token; a refusal is recorded and thrown (auth.forbidden). */
  kickstart(node: string, token: string | undefined, ip: string): Promise<string>;
  /** The node's install plan (image installs), for its install token; a refusal is recorded and thrown. */
  installPlan(node: string, token: string | undefined, ip: string): Promise<InstallPlan>;
  /** A stateless node's plan (JSON) for stage 1, for t; armed or not (docs/stateless.md). */
  statelessPlan(node: string, token: string | undefined, ip: string): Promise<StatelessPlan>;
  /**
   * An install callback; `body` is the install-failed log (text, or JSON {log?, message?}) or the
   * install-progress report. A progress report too close to the last one is dropped (recorded: null).
   */
  installCallback(node: string, event: BootEvent, token: string | undefined, ip: string, body?: unknown): Promise<{ recorded: EventKind | null }>;
  /** An unknown machine's inspection report, for its inspect token: checked, kept, machine.inspected written; a refusal is recorded and thrown. */
  inspectionReport(mac: string, token: string | undefined, ip: string, body: unknown): Promise<{ mac: string; inspectedAt: string }>;
  /** What an inspected machine does next, for its inspect token. */
  inspectionNext(mac: string, token: string | undefined, ip: string): Promise<InspectNext>;
  /** The boot environment's report of the in-band BMC set-up (discovery bmc.setup), for its inspect token: verified out of band, then what it does next. */
  inspectionBmcReport(mac: string, token: string | undefined, ip: string, body: unknown): Promise<InspectNext>;
}

// Identity facts, recorded only when they look sane (SMBIOS serials can hold anything:
// a machine is never refused its boot script for an odd serial).
const UUID = /^[0-9A-Fa-f-]{1,36}$/;

const CALLBACK_KIND: Record<BootEvent, EventKind> = {
  'install-progress': EVENT.installProgress,
  'install-started': EVENT.installStarted,
  'install-failed': EVENT.installFailed,
  'install-finished': EVENT.installFinished,
};

/** The refusal of an inspected machine's request (report, poll, BMC set-up report): machine.inspection_refused with why, then auth.forbidden. */
function inspectRefuserOf(store: Store): (mac: string, ip: string, what: string, label: string) => (why: string) => Promise<never> {
  return (mac, ip, what, label) => async (why) => {
    await store.events.append({ node: null, kind: EVENT.inspectionRefused, actor: ACTOR, details: { mac, ip, what, reason: why } });
    throw new FleetError('auth.forbidden', `${label} for ${mac} refused: ${why}`, { mac });
  };
}

/** Why a token was refused, in words (never the token); undefined: not a token refusal. */
function refusal(e: unknown): string | undefined {
  if (!isFleetError(e)) return undefined;
  switch (e.code) {
    case 'auth.invalid':
      return 'unknown token';
    case 'token.wrong_node':
      return 'the token belongs to another node';
    case 'token.used':
      return 'the token was already used (the install finished)';
    case 'token.expired':
      return 'the token expired (arm the node again to reinstall)';
    case 'token.revoked':
      return `the token was revoked: ${String((e.details as { reason?: unknown } | undefined)?.reason ?? 'no reason recorded')}`;
    default:
      return undefined;
  }
}

/**
 * Checks an install token without using it up (installers retry kickstart
 * fetches and callbacks) and records the use's address on the token. Returns
 * the address of the previous use when it was another one (for the event).
 */
export async function verifyInstallToken(store: Store, token: string, node: string, ip: string): Promise<{ previousIp?: string }> {
  const use = await store.tokens.verify(token, { node, purpose: INSTALL_TOKEN_PURPOSE, ip });
  return use.previousIp !== null && use.previousIp !== ip ? { previousIp: use.previousIp } : {};
}

/** The install-failed body (text/plain log tail, or JSON {log?, message?}) as event details, its end kept. */
export function logDetails(body: unknown): Record<string, unknown> {
  let text = '';
  let message: string | undefined;
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body)) text = body.toString('utf8');
  else if (body && typeof body === 'object') {
    const b = body as { log?: unknown; message?: unknown };
    if (typeof b.log === 'string') text = b.log;
    if (typeof b.message === 'string') message = b.message.slice(0, 300);
  }
  const clean = text.replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  const truncated = clean.length > MAX_STORED_LOG;
  return {
    ...(message !== undefined ? { message } : {}),
    log: truncated ? clean.slice(clean.length - MAX_STORED_LOG) : clean,
    logBytes: Buffer.byteLength(text, 'utf8'),
    logTruncated: truncated,
  };
}

export function createBootService(deps: BootServiceDeps): BootService {
  const { store, recorder } = deps;
  const inspectRefuser = inspectRefuserOf(store);
  const tokenTtlMs = deps.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
  const installTtlMs = deps.installTokenTtlMs ?? tokenTtlMs;
  const inspectTtlMs = deps.inspectTokenTtlMs ?? DEFAULT_INSPECT_TOKEN_TTL_MS;
  const fact = (node: string, kind: EventKind, details: Record<string, unknown>): Fact => ({ node, kind, actor: ACTOR, details });
  /** The last kept progress report per node (the rate rule of install-plan.ts). */
  const lastProgress = new Map<string, { phase: string; at: number }>();
  const nowMs = () => (deps.now ? deps.now() : new Date()).getTime();

  /** Checks the install token for `name` (recording a refusal as `refusedKind`); returns the previous use's address. */
  async function checkToken(name: string, token: string | undefined, ip: string, refuse: (why: string) => Promise<never>): Promise<{ previousIp?: string }> {
    if (!token) return refuse('no token');
    try {
      return await verifyInstallToken(store, token, name, ip);
    } catch (e) {
      const why = refusal(e);
      if (why === undefined) throw e;
      return refuse(why);
    }
  }

  async function requireNode(name: string): Promise<NodeRecord> {
    const node = await store.nodes.get(name);
    if (!node) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
    return node;
  }

  /** The node the machine `id` is, and the MAC it boots from (null: no node declares the MAC). */
  async function machine(id: string): Promise<{ node: NodeRecord | null; mac: string }> {
    if (MAC_INPUT.test(id)) {
      const canonical = normalizeMac(id);
      return { node: canonical ? await store.nodes.findByMac(canonical) : null, mac: id }; // a bad MAC is refused by the decision
    }
    if (NODE_NAME.test(id)) {
      const node = await requireNode(id);
      const primary = node.macs[0];
      if (primary === undefined) throw new FleetError('request.invalid', `node ${id} declares no MAC address`, { node: id });
      return { node, mac: primary };
    }
    throw new FleetError('request.invalid', `${show(id)} is neither a MAC address (52-54-00-12-34-56) nor a node name`);
  }

  /**
   * What an image install's or a stateless boot's plan is made of, after the
   * install token was checked: refusals and what cannot be planned are events
   * and FleetErrors (auth.forbidden, conflict with the reason). `record` renders
   * the plan (a render error is a conflict too), writes the plan_fetched fact
   * and returns the plan.
   */
  async function planInput(
    name: string,
    token: string | undefined,
    ip: string,
    method: 'image' | NetRoot,
  ): Promise<{ input: InstallPlanInput; record: <P>(render: () => P) => Promise<P> }> {
    const node = await requireNode(name);
    const what = method === 'image' ? 'install plan' : `${method} plan`;
    // A stateless or diskless node's plan events say so (image installs' events stay as they were).
    const mark = method !== 'image' ? { method } : {};
    const refuse = async (why: string): Promise<never> => {
      await recorder.record(fact(name, EVENT.planRefused, { reason: why, ip, ...mark }));
      throw new FleetError('auth.forbidden', `${what} for ${name} refused: ${why}`, { node: name });
    };
    const use = await checkToken(name, token, ip, (why) =>
      refuse(why === 'no token' ? "no token (the boot environment takes it from fleet.token= on its command line)" : why),
    );
    // A stateless node boots its image at every boot, armed or not (decide.ts check 3).
    if (method === 'image' && !node.armed) return refuse(`${name} is not armed for install`);
    // What cannot be planned is said plainly (an event, a 409 with the reason); the boot
    // environment reports install-failed with it, which fails the node.
    const fail = async (why: string): Promise<never> => {
      await recorder.record(fact(name, EVENT.planRefused, { reason: why, ip, ...mark }));
      throw new FleetError('conflict', `${what} for ${name}: ${why}`, { node: name });
    };
    const profile = await store.profiles.get(node.profile);
    if (!profile) return fail(`its profile ${node.profile} is not in the store`);
    if (profile.os.install !== method || !profile.os.image) {
      return fail(`its profile ${profile.name} does not ${method === 'image' ? 'install by image' : `boot ${method}`} (os.install: ${profile.os.install})`);
    }
    if (deps.dataDir === undefined) return fail('the server has no data dir configured, so it has no image store');
    if (deps.caFingerprint === undefined) return fail('the server has no CA fingerprint configured (the agent pins the CA with it)');
    let image;
    try {
      image = await showImage(deps.dataDir, profile.os.image);
    } catch (e) {
      if (!isFleetError(e)) throw e;
      return fail(`image ${profile.os.image} of profile ${profile.name} is not in the image store (fleet image list): ${e.message}`);
    }
    const cluster = await clusterInfo(store);
    const settings = await store.settings.getCluster();
    const net = settings?.networks?.provisioning;
    if (!net) return fail('no provisioning network in the applied settings (fleet apply)');
    const mac = node.macs[0];
    if (mac === undefined) return fail(`node ${name} declares no MAC address`);
    // One outstanding enrolment token per node: a repeated fetch gets the same plan.
    const enrol = await store.tokens.current(name, { ttlMs: tokenTtlMs, actor: ACTOR, ip });
    const input: InstallPlanInput = {
      node: { name, ip: node.ip, mac },
      profile,
      image,
      cluster,
      network: net,
      server: deps.serverUrl,
      agent: { enrolToken: enrol.token, caFingerprint: deps.caFingerprint, server: deps.enrolServer ?? deps.serverUrl },
    };
    if (method === 'diskless') {
      // The image unpacked, the node's /var made, both exported to its address (server/diskless).
      if (!deps.diskless) return fail("this server does not serve diskless roots (fleet server's NFS service is not running)");
      const mounts = await deps.diskless.serve(name);
      if ('error' in mounts) return fail(mounts.error);
      input.diskless = mounts;
    }
    const record = async <P>(render: () => P): Promise<P> => {
      let plan: P;
      try {
        plan = render();
      } catch (e) {
        if (!isFleetError(e)) throw e;
        return fail(e.message);
      }
      await recorder.record(
        fact(name, EVENT.planFetched, {
          ip,
          ...use,
          ...mark,
          image: image.name,
          digest: image.digest,
          enrolToken: enrol.reused ? 'reused' : 'issued',
          enrolTokenExpiresAt: enrol.expiresAt,
        }),
      );
      return plan;
    };
    return { input, record };
  }

  return {
    chainScript: () => renderChain(deps),

    async machineScript(id, m) {
      const { node, mac } = await machine(id);
      const { ip } = m;
      let decision = await decideFor(deps, node, mac, m.platform ? { platform: m.platform } : {});
      const facts = {
        mac: normalizeMac(mac) ?? mac,
        ip,
        ...(m.arch ? { arch: m.arch } : {}),
        ...(m.platform ? { platform: m.platform } : {}),
        ...(m.serial && SERIAL_NUMBER.test(m.serial) ? { serial: m.serial } : {}),
        ...(m.uuid && UUID.test(m.uuid) ? { uuid: m.uuid } : {}),
      };

      if (decision.kind === 'discover' || decision.kind === 'inspect') {
        await store.discovered.record({ mac: decision.mac, ip, pxe: true, ...(m.arch ? { arch: m.arch } : {}) });
        // A new inspect token for each inspect script: this boot's report and polls carry it.
        if (decision.kind === 'inspect') decision = withInspectToken(decision, (await store.discovered.issueInspectToken(decision.mac, inspectTtlMs)).token);
        deps.onDiscovered?.(decision.mac);
        return renderDecision(deps, decision);
      }

      let installToken: Record<string, unknown> = {};
      if (decision.kind === 'install') {
        // One outstanding install token per node: a repeated fetch is served the live one again.
        const t = await store.tokens.current(decision.node, { ttlMs: installTtlMs, purpose: INSTALL_TOKEN_PURPOSE, actor: ACTOR, ip });
        decision = withInstallToken(decision, t.token);
        installToken = { installToken: t.reused ? 'reused' : 'issued', installTokenExpiresAt: t.expiresAt };
      }
      const script = await renderDecision(deps, decision);
      const details: Record<string, unknown> = {
        decision: decision.kind,
        ...(decision.kind === 'localboot' ? { reason: decision.reason, method: decision.method, ...(decision.flag ? { flag: decision.flag } : {}) } : {}),
        ...(decision.kind === 'not-implemented' ? { reason: decision.message } : {}),
        ...(decision.kind === 'install' ? { profile: decision.profile, method: decision.method, ...installToken } : {}),
        ...facts,
      };
      const fetched = fact(decision.node, EVENT.scriptFetched, details);
      if (decision.kind === 'localboot' && decision.flag === 'boot-loop-suspect') {
        // The suspicion's row follows the fetch's, and only the fetch is told to the
        // conductor (its fact table raises the flag from the fetch itself).
        await store.events.append(fetched);
        await store.events.append(fact(decision.node, EVENT.loopSuspect, { reason: decision.reason, state: node?.state ?? null, mac: facts.mac, ip }));
        await recorder.recorded(fetched);
      } else {
        await recorder.record(fetched);
      }
      return script;
    },

    async kickstart(name, token, ip) {
      const node = await requireNode(name);
      const refuse = async (why: string): Promise<never> => {
        await recorder.record(fact(name, EVENT.kickstartRefused, { reason: why, ip }));
        throw new FleetError('auth.forbidden', `kickstart for ${name} refused: ${why}`, { node: name });
      };
      if (!token) return refuse("no token (the URL comes from the node's iPXE install script: inst.ks=...?token=...)");
      let use: { previousIp?: string };
      try {
        use = await verifyInstallToken(store, token, name, ip);
      } catch (e) {
        const why = refusal(e);
        if (why === undefined) throw e;
        return refuse(why);
      }
      if (!node.armed) return refuse(`${name} is not armed for install`);

      if (deps.caFingerprint === undefined) {
        throw new FleetError('unavailable', 'the server has no CA fingerprint configured, so it cannot render kickstarts (the agent pins the CA with it)');
      }
      // One outstanding enrolment token per node: a repeated fetch gets the same kickstart.
      const enrol = await store.tokens.current(name, { ttlMs: tokenTtlMs, actor: ACTOR, ip });
      const ks = await renderNodeKickstart(deps, node, { token: enrol.token, callbackToken: token });
      await recorder.record(fact(name, EVENT.kickstartFetched, { ip, ...use, enrolToken: enrol.reused ? 'reused' : 'issued', enrolTokenExpiresAt: enrol.expiresAt }));
      return ks;
    },

    async installPlan(name, token, ip) {
      const { input, record } = await planInput(name, token, ip, 'image');
      return record(() => renderInstallPlan(input));
    },

    async statelessPlan(name, token, ip) {
      // One stage 1, one plan route: the profile says whether the root comes into RAM or over NFS.
      const node = await requireNode(name);
      const { input, record } = await planInput(name, token, ip, (await netRootOf(store, node.profile)) ?? 'stateless');
      return record(() => renderStatelessPlan(input));
    },

    async inspectionReport(rawMac, token, ip, body) {
      const mac = inspectMac(rawMac);
      const refuse = inspectRefuser(mac, ip, 'report', 'inspection report');
      if (!token) return refuse('no token (the boot environment takes it from fleet.token= on its command line)');
      // The token first: an unauthenticated body is never parsed.
      try {
        await store.discovered.checkInspectToken(mac, token);
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
        return refuse(e.message);
      }
      const inspection = parseInspectionReport(body);
      let machine;
      try {
        machine = await store.discovered.recordInspection(mac, token, inspection, ip);
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
        return refuse(e.message);
      }
      deps.onInspected?.(mac);
      return { mac, inspectedAt: machine.inspectedAt };
    },

    async inspectionNext(rawMac, token, ip) {
      const mac = inspectMac(rawMac);
      const refuse = inspectRefuser(mac, ip, 'next', 'inspection poll');
      if (!token) return refuse('no token');
      // Accepted with bmc.setup: the machine is no longer a discovered one; its token went with the set-up.
      let owner;
      try {
        owner = await store.bmc.checkSetupToken(mac, token);
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
        return refuse(e.message);
      }
      if (owner) {
        // The job, until it is reported; then what became of it.
        const setup = await bmcSetupFor(store, mac);
        if (setup) return setup;
        const rec = await store.bmc.setupByMac(mac);
        const why = rec?.state === 'failed' ? `the BMC set-up of ${owner.node} failed: ${rec.reason ?? 'no reason recorded'}` : `accepted as ${owner.node}, BMC set up: fleet takes the machine from here`;
        return { action: 'wait', seconds: INSPECT_POLL_SECONDS, reason: why };
      }
      let machine;
      try {
        machine = await store.discovered.checkInspectToken(mac, token);
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
        return refuse(e.message);
      }
      if (machine.tokenUsedAt === null) throw new FleetError('conflict', `no inspection report from ${mac} yet: report first`, { mac });
      const discovery = (await store.settings.getCluster())?.discovery as DiscoverySpec | undefined;
      if (discovery?.afterInspect === 'poweroff') return { action: 'poweroff', reason: 'discovery.after_inspect: poweroff' };
      const reason = machine.rejectedAt !== null ? `rejected by ${machine.rejectedBy ?? 'an operator'}` : 'waiting to be accepted (fleet discover --plan)';
      return { action: 'wait', seconds: INSPECT_POLL_SECONDS, reason };
    },

    async inspectionBmcReport(rawMac, token, ip, body) {
      const mac = inspectMac(rawMac);
      const refuse = inspectRefuser(mac, ip, 'bmc', 'BMC set-up report');
      if (!token) return refuse('no token');
      try {
        if (!(await store.bmc.checkSetupToken(mac, token))) return refuse('no BMC set-up is planned for this machine');
      } catch (e) {
        if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
        return refuse(e.message);
      }
      const report = parseBmcSetupReport(body);
      if (!deps.bmcSetup) throw new FleetError('not_implemented', 'this server cannot verify BMC set-ups (no BMC access)');
      const out = await finishBmcSetup({ store, ...deps.bmcSetup }, mac, report);
      return out.ok
        ? { action: 'wait', seconds: INSPECT_POLL_SECONDS, reason: `BMC of ${out.node} set up and verified${out.warning ? ` (${out.warning})` : ''}: fleet takes the machine from here` }
        : { action: 'wait', seconds: INSPECT_POLL_SECONDS, reason: `BMC set-up of ${out.node} failed: ${out.reason}` };
    },

    async installCallback(name, event, token, ip, body) {
      const node = await requireNode(name);
      const kind = CALLBACK_KIND[event];
      // A stateless node's stage 1 posts the same callbacks; the lifecycle tells them apart by this mark.
      const netRoot = await netRootOf(store, node.profile);
      const mark = netRoot ? { method: netRoot } : {};
      if (event === 'install-progress') {
        const refuse = async (why: string): Promise<never> => {
          await recorder.record(fact(name, EVENT.callbackRefused, { event, reason: why, ip }));
          throw new FleetError('auth.forbidden', `${event} callback for ${name} refused: ${why}`, { node: name });
        };
        await checkToken(name, token, ip, refuse);
        const progress = parseProgress(body);
        const at = nowMs();
        if (!acceptProgress(lastProgress.get(name), progress, at)) return { recorded: null };
        lastProgress.set(name, { phase: progress.phase, at });
        // An event row only: install.progress is not a lifecycle fact, so nobody is signalled.
        await recorder.record(fact(name, kind, { ip, ...mark, ...progress }));
        return { recorded: kind };
      }
      const details: Record<string, unknown> = { ip, ...mark };
      if (event === 'install-failed') Object.assign(details, logDetails(body));
      const refuse = async (why: string): Promise<never> => {
        await recorder.record(fact(name, EVENT.callbackRefused, { event, reason: why, ip }));
        throw new FleetError('auth.forbidden', `${event} callback for ${name} refused: ${why}`, { node: name });
      };
      if (!token) return refuse('no token');
      try {
        if (event === 'install-finished') {
          // The install is over: the install token is used up, every other token of the node
          // (the enrolment token of the kickstart copy left on disk) revoked, and the event
          // written, in one transaction; then the conductor is told.
          await store.transaction(async (tx) => {
            const use = await tx.tokens.consume(token, { node: name, purpose: INSTALL_TOKEN_PURPOSE, actor: ACTOR, ip });
            if (use.previousIp !== null && use.previousIp !== ip) details.previousIp = use.previousIp;
            await tx.tokens.revokeAll(name, { actor: ACTOR, cause: kind, reason: 'install-finished' });
            await tx.events.append(fact(name, kind, details));
          });
          await recorder.recorded(fact(name, kind, details));
        } else {
          Object.assign(details, await verifyInstallToken(store, token, name, ip));
          await recorder.record(fact(name, kind, details));
        }
      } catch (e) {
        const why = refusal(e);
        if (why === undefined) throw e;
        return refuse(why);
      }
      return { recorded: kind };
    },
  };
}

/** The MAC of an inspection route, canonical; request.invalid otherwise. */
function inspectMac(raw: string): string {
  const mac = MAC_INPUT.test(raw) ? normalizeMac(raw) : undefined;
  if (mac === undefined) throw new FleetError('request.invalid', `${show(raw)} is not a MAC address (52-54-00-12-34-56 or 52:54:00:12:34:56)`);
  return mac;
}

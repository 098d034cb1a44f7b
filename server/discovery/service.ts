/**
 * Discovery's thin I/O shell: the plan from what the store holds, and the
 * two commands that change it.
 *
 *   currentPlan(store)           the applied rules, the discovered machines and the nodes → planDiscovery
 *   acceptMachines(deps, req)    planned machines → nodes (the enroll path), then the reinstall lifecycle for on_accept: install
 *   rejectMachines(store, macs)  machines set aside: plans skip them
 *
 * The decisions are the pure functions of plan.ts and rules.ts; this file
 * reads their inputs and writes their outcome.
 */
import { FleetError, toFleetError } from '../../common/errors.js';
import { generateBmcPassword } from '../bmc/ipmi/users.js';
import type { BmcSetupJob } from '../store/repos/bmc.js';
import { planBmcSetup } from './bmc-setup.js';
import { normalizeMac, show } from '../../common/patterns.js';
import type { Finding } from '../doctor/checks.js';
import { formatFinding } from '../doctor/checks.js';
import type { Conductor } from '../lifecycle/index.js';
import type { NodeActionResult } from '../lifecycle/types.js';
import type { ProfileSpec } from '../model.js';
import { enrollMachine } from '../netboot/enroll.js';
import type { Store } from '../store/index.js';
import { candidatesOf, takenBy } from './facts.js';
import { planDiscovery } from './plan.js';
import type { DiscoveryPlan, DiscoveryPolicy, DiscoverySpec, PlannedMachine, UnplannedMachine } from './types.js';

export interface DiscoveryDeps {
  store: Store;
  /** Starts the reinstall lifecycle of `on_accept: install` machines; absent: accepting them is refused (not_implemented). */
  conductor?: Pick<Conductor, 'reinstall'>;
  /** The doctor's checks a reinstall depends on (as for fleet reinstall): the failed findings for these profiles. */
  preflight?: (profiles: ProfileSpec[]) => Promise<Finding[]>;
  /** After nodes were created (DHCP reservations follow). */
  onNodesChanged?: () => Promise<void>;
}

export interface CurrentPlan {
  policy: DiscoveryPolicy;
  /** Rule names, in order; empty when fleet.yaml has no discovery rules. */
  rules: string[];
  plan: DiscoveryPlan;
}

/** The plan for the machines discovered now (those no node declares), against the nodes the store holds. */
export async function currentPlan(store: Store): Promise<CurrentPlan> {
  const settings = await store.settings.getCluster();
  const spec = (settings?.discovery as DiscoverySpec | undefined) ?? null;
  const [machines, nodes] = [await store.discovered.list({ unknownOnly: true }), await store.nodes.list()];
  const rules = spec?.rules ?? [];
  return {
    policy: spec?.policy ?? 'manual',
    rules: rules.map((r) => r.name),
    plan: planDiscovery(rules, candidatesOf(machines), takenBy(nodes, settings)),
  };
}

export interface AcceptRequest {
  /** The machines to accept, by MAC; absent: every planned machine. */
  macs?: string[];
  /** MAC → the name the caller was shown: refused (nothing changed) when the plan now gives another. */
  expect?: Record<string, string>;
  /** Accept even when a check the install profiles depend on fails (as fleet reinstall --force). */
  force?: boolean;
  /** Install starts: at most `count` nodes per `intervalMs` (as fleet reinstall --stagger). */
  stagger?: { count: number; intervalMs: number };
  actor: string;
  /** Who decided: an operator's command, or policy auto when the machine was seen. */
  via: 'command' | 'policy';
}

export interface AcceptedMachine extends PlannedMachine {
  /** on_accept install: how starting the reinstall went (as fleet reinstall reports it); null for inventory-only, or while the BMC is set up first. */
  install: NodeActionResult | null;
  /** bmc.setup: the job waits for the machine's boot environment (the install, if any, starts once the new BMC account is verified). */
  bmcSetup?: { state: 'pending'; account: string; slot: number; address: string };
}

export interface AcceptResult {
  accepted: AcceptedMachine[];
}

/** The planned machines a request names (all, when it names none); a MAC that is not planned refuses the request. */
function select(current: CurrentPlan, req: AcceptRequest): PlannedMachine[] {
  if (req.macs === undefined) return current.plan.planned;
  const planned = new Map(current.plan.planned.map((p) => [p.mac, p]));
  const unplanned = new Map<string, UnplannedMachine>(current.plan.unplanned.map((u) => [u.mac, u]));
  const rejected = new Set(current.plan.rejected.map((r) => r.mac));
  const out: PlannedMachine[] = [];
  const refused: { mac: string; reason: string }[] = [];
  const seen = new Set<string>();
  for (const raw of req.macs) {
    const mac = normalizeMac(raw);
    if (mac === undefined) throw new FleetError('request.invalid', `${show(raw)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    if (seen.has(mac)) continue;
    seen.add(mac);
    const p = planned.get(mac);
    if (p) out.push(p);
    else if (unplanned.has(mac)) refused.push({ mac, reason: `${unplanned.get(mac)!.status}: ${unplanned.get(mac)!.reason}` });
    else if (rejected.has(mac)) refused.push({ mac, reason: 'rejected (fleet discover --reject)' });
    else refused.push({ mac, reason: 'not a discovered machine (fleet discovered)' });
  }
  if (refused.length > 0) {
    throw new FleetError(
      'conflict',
      `${refused.length === 1 ? `${refused[0]!.mac} is` : `${refused.length} machines are`} not in the plan; nothing was accepted`,
      { errors: refused.map((r) => `${r.mac}: ${r.reason}`) },
    );
  }
  return out;
}

const same = (a: PlannedMachine, b: PlannedMachine): boolean =>
  a.name === b.name && a.ip === b.ip && a.profile === b.profile && a.onAccept === b.onAccept && JSON.stringify(a.bmc) === JSON.stringify(b.bmc);

/**
 * Accepts planned machines: each becomes the node its rule plans (name,
 * profile, IP, BMC) through the enroll path, so that apply keeps it, in one
 * transaction; then, for `on_accept: install`, the reinstall lifecycle
 * starts as `fleet reinstall` starts it (the doctor's checks first, unless
 * forced). Refused as a whole, with nothing changed, when a named machine
 * is not planned, the plan changed from what the caller was shown, or a
 * check an install profile depends on fails.
 */
export async function acceptMachines(deps: DiscoveryDeps, req: AcceptRequest): Promise<AcceptResult> {
  const { store } = deps;
  const chosen = select(await currentPlan(store), req);
  if (req.expect) {
    const moved = chosen.filter((p) => req.expect![p.mac] !== undefined && req.expect![p.mac] !== p.name);
    if (moved.length > 0) {
      throw new FleetError('conflict', 'the plan changed since it was shown; nothing was accepted (run fleet discover --plan again)', {
        errors: moved.map((p) => `${p.mac}: now ${p.name}, shown ${req.expect![p.mac]}`),
      });
    }
  }
  if (chosen.length === 0) return { accepted: [] };

  // A machine whose BMC is set up first starts its install only once the new account is verified (bmc-setup.ts).
  const installs = chosen.filter((p) => p.onAccept === 'install' && !p.bmc?.setup);
  const setups = new Map<string, BmcSetupJob>();
  if (installs.length > 0 && !deps.conductor) throw new FleetError('not_implemented', 'this server runs without the lifecycle conductor: on_accept install cannot start');
  const checked = chosen.filter((p) => p.onAccept === 'install');
  if (checked.length > 0 && deps.preflight && !req.force) {
    const wanted = new Set(checked.map((p) => p.profile));
    const profiles = (await store.profiles.list()).filter((p) => wanted.has(p.name));
    const failed = profiles.length ? await deps.preflight(profiles) : [];
    if (failed.length > 0) {
      throw new FleetError(
        'precondition.failed',
        `accept refused: ${failed.length} check${failed.length === 1 ? '' : 's'} that profile${profiles.length === 1 ? '' : 's'} ${profiles.map((p) => p.name).join(', ')} depend${profiles.length === 1 ? 's' : ''} on fail${failed.length === 1 ? 's' : ''} (fleet doctor), and on_accept install would reinstall; nothing was changed; fix them, or pass force`,
        { errors: failed.map(formatFinding), findings: failed },
      );
    }
  }

  const cause = req.via === 'policy' ? 'discovery policy auto' : 'fleet discover --accept';
  await store.transaction(async (tx) => {
    // Planned again under the write lock: what is written is what was checked.
    const now = new Map((await currentPlan(tx)).plan.planned.map((p) => [p.mac, p]));
    const changed = chosen.filter((p) => !now.has(p.mac) || !same(p, now.get(p.mac)!));
    if (changed.length > 0) {
      throw new FleetError('conflict', 'the store changed while accepting; nothing was accepted (plan again)', { errors: changed.map((p) => `${p.mac}: was planned as ${p.name}`) });
    }
    for (const p of chosen) {
      // Read before enrolling: the enroll path takes the machine off the discovered list.
      const inspection = p.bmc?.setup ? ((await tx.discovered.get(p.mac))?.inspection ?? null) : null;
      // The boot environment keeps polling with its inspect token: carried over to the set-up.
      const inspectToken = p.bmc?.setup ? await tx.discovered.inspectTokenOf(p.mac) : null;
      await enrollMachine(
        tx,
        {
          mac: p.mac,
          name: p.name,
          profile: p.profile,
          ...(p.ip !== null ? { ip: p.ip } : {}),
          ...(p.bmc ? { bmc: { address: p.bmc.address, port: p.bmc.port, protocol: p.bmc.protocol, credentials: p.bmc.credentials } } : {}),
        },
        req.actor,
        {
          accepted: {
            ...(p.bmc?.setup ? { bmcSetup: true } : {}),
            rule: p.rule,
            via: req.via,
            profile: p.profile,
            ip: p.ip,
            bmc: p.bmc ? `${p.bmc.address}:${p.bmc.port}` : null,
            onAccept: p.onAccept,
            ...(p.serial !== null ? { serial: p.serial } : {}),
            ...(p.alsoMatched.length ? { alsoMatched: p.alsoMatched } : {}),
          },
          cause,
        },
      );
      if (p.bmc?.setup) {
        const settings = await tx.settings.getCluster();
        const factory = await tx.credentials.get(p.bmc.credentials);
        if (!factory) throw new FleetError('precondition.failed', `${p.mac}: credential set ${p.bmc.credentials} is not in the store (fleet apply)`);
        let job: BmcSetupJob;
        try {
          job = planBmcSetup({
            inspection,
            bmc: p.bmc,
            factoryUser: factory.username,
            bmcNetwork: settings?.networks?.bmc,
            install: p.onAccept === 'install',
          });
        } catch (e) {
          const fe = toFleetError(e);
          throw new FleetError(fe.code, `${p.mac} (${p.name}): ${fe.message}; nothing was accepted`, { mac: p.mac }, { cause: fe });
        }
        await tx.bmc.createSetup(p.name, p.mac, job, generateBmcPassword(job.passwordLength), inspectToken, { actor: req.actor, cause });
        setups.set(p.mac, job);
      }
    }
  });
  await deps.onNodesChanged?.();

  const results = new Map<string, NodeActionResult>();
  if (installs.length > 0) {
    const started = await deps.conductor!.reinstall(
      installs.map((p) => p.name),
      { actor: req.actor, force: false, ...(req.stagger ? { stagger: req.stagger } : {}) },
    );
    for (const r of started) results.set(r.node, r);
  }
  return {
    accepted: chosen.map((p) => ({
      ...p,
      install:
        p.onAccept === 'install' && !setups.has(p.mac) ? (results.get(p.name) ?? { node: p.name, ok: false, error: { code: 'internal', message: 'the conductor gave no result' } }) : null,
      ...(setups.has(p.mac) ? { bmcSetup: { state: 'pending' as const, account: setups.get(p.mac)!.account, slot: setups.get(p.mac)!.slot, address: setups.get(p.mac)!.address } } : {}),
    })),
  };
}

export interface RejectedResult {
  mac: string;
  rejectedAt: string;
  /** It was rejected before (nothing changed). */
  already: boolean;
}

/** Sets machines aside (plans skip them and list them as rejected); refuses, with nothing changed, a MAC that is not a discovered machine. */
export async function rejectMachines(store: Store, macs: readonly string[], actor: string): Promise<RejectedResult[]> {
  if (macs.length === 0) throw new FleetError('request.invalid', 'reject which machines? give their MACs');
  return store.discovered.reject(canonicalMacs(macs), { actor, cause: 'fleet discover --reject' });
}

/** Takes rejected machines back (fleet discover --unreject): plans consider them again. All or nothing, as reject. */
export async function unrejectMachines(store: Store, macs: readonly string[], actor: string): Promise<{ mac: string; already: boolean }[]> {
  if (macs.length === 0) throw new FleetError('request.invalid', 'take back which machines? give their MACs');
  return store.discovered.unreject(canonicalMacs(macs), { actor, cause: 'fleet discover --unreject' });
}

function canonicalMacs(macs: readonly string[]): string[] {
  const canonical = macs.map((raw) => {
    const mac = normalizeMac(raw);
    if (mac === undefined) throw new FleetError('request.invalid', `${show(raw)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    return mac;
  });
  return [...new Set(canonical)];
}

/**
 * BMC set-up on accept (issue 13 item 3, discovery rule `bmc.setup: true`).
 *
 *   accept          planBmcSetup (pure): from the inspection (channel, user
 *                   slots), the rule's BMC plan and the BMC network: the job;
 *                   the store keeps it with a generated password (sealed)
 *   inspect poll    the waiting boot environment gets the job (action
 *                   bmc-setup) and runs it IN BAND with ipmitool over KCS:
 *                   static address, the fleet account, LAN access
 *   its report      finishBmcSetup: fleet opens a session with the new
 *                   account OUT OF BAND at the planned address; only when it
 *                   answers is the credential recorded (rotated.NODE, sealed)
 *                   and then the factory account disabled, with the new one;
 *                   on_accept install starts the reinstall after that
 *
 * A set-up that fails (in band, or the BMC does not answer the new account
 * out of band) fails the node with the reason and leaves the factory
 * credential in use and enabled: fleet never touched it.
 */
import { FleetError, toFleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import { intToIp, parseCidr } from '../../common/patterns.js';
import { createIpmiDriver } from '../bmc/ipmi/driver.js';
import { generateBmcPassword, planRotation, type UserSlot } from '../bmc/ipmi/users.js';
import type { ProviderContext } from '../bmc/registry.js';
import { retireAccount } from '../bmc/rotate.js';
import type { Conductor } from '../lifecycle/index.js';
import { E } from '../lifecycle/states.js';
import type { Store } from '../store/index.js';
import type { BmcSetupJob } from '../store/repos/bmc.js';
import type { Inspection } from './inspection.js';
import type { PlannedBmc } from './types.js';

/** The actor of what the set-up does on its own. */
const ACTOR = 'discovery';

/** IPMI user ids an inspection's user list covers at least (it lists named users only). */
const MIN_SLOTS = 16;

/**
 * The in-band job for an accepted machine, or why there can be none. Pure.
 * Needs an inspection that read the BMC in band (its channel and users),
 * and the BMC network's subnet (for the netmask).
 */
export function planBmcSetup(input: {
  inspection: Inspection | null;
  bmc: PlannedBmc;
  /** The user name of the rule's credential set (the factory account). */
  factoryUser: string;
  bmcNetwork: { subnet: string; gateway?: string } | undefined;
  install: boolean;
}): BmcSetupJob {
  const { inspection, bmc } = input;
  if (!bmc.setup) throw new FleetError('internal', 'planBmcSetup without bmc.setup');
  if (!inspection) throw new FleetError('precondition.failed', 'bmc.setup needs an inspection report (boot the machine into the fleet boot environment first)');
  if ('absent' in inspection.bmc) throw new FleetError('precondition.failed', `bmc.setup: the inspection found no BMC in band (${inspection.bmc.absent})`);
  if (!input.bmcNetwork) throw new FleetError('precondition.failed', 'bmc.setup needs networks.bmc in fleet.yaml (the subnet gives the netmask)');
  const cidr = parseCidr(input.bmcNetwork.subnet);
  if (typeof cidr === 'string') throw new FleetError('precondition.failed', `networks.bmc.subnet: ${cidr}`);
  const netmask = intToIp(cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0);
  const seen = inspection.bmc.users;
  const top = Math.max(MIN_SLOTS, ...seen.map((u) => u.id + 1));
  const slots: UserSlot[] = Array.from({ length: top }, (_, i) => {
    const u = seen.find((x) => x.id === i + 1);
    return { id: i + 1, name: u?.name ?? '', enabled: null, privilege: 0x0f };
  });
  const plan = planRotation(slots, input.factoryUser);
  return {
    channel: inspection.bmc.channel,
    slot: plan.slot,
    account: plan.name,
    passwordLength: bmc.setup.passwordLength,
    address: bmc.address,
    netmask,
    gateway: input.bmcNetwork.gateway ?? null,
    retire: plan.retire,
    install: input.install,
  };
}

/** What GET /inspection/MAC/next answers when the machine's BMC is to be set up. */
export interface BmcSetupAction {
  action: 'bmc-setup';
  reason: string;
  job: BmcSetupJob & { password: string };
}

/**
 * The job for the machine with `mac`, when its node has a set-up pending or
 * already sent (a boot environment that lost the answer asks again); null
 * otherwise. Marks it sent.
 */
export async function bmcSetupFor(store: Store, mac: string): Promise<BmcSetupAction | null> {
  const rec = await store.bmc.setupByMac(mac);
  if (!rec || (rec.state !== 'pending' && rec.state !== 'sent')) return null;
  await store.bmc.markSetup(rec.node, ['pending'], 'sent', null);
  return {
    action: 'bmc-setup',
    reason: `accepted as ${rec.node}: set the BMC up in band (${rec.job.address}, account ${rec.job.account})`,
    job: { ...rec.job, password: rec.password },
  };
}

/** The boot environment's report of the in-band set-up (POST /inspection/MAC/bmc). */
export interface BmcSetupReport {
  ok: boolean;
  /** The ipmitool lines it ran and their answers (no password: the script never prints it). */
  log: string;
}

export function parseBmcSetupReport(body: unknown): BmcSetupReport {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new FleetError('request.invalid', 'the BMC set-up report must be a JSON object {ok, log}');
  const b = body as { ok?: unknown; log?: unknown };
  if (typeof b.ok !== 'boolean') throw new FleetError('request.invalid', 'the BMC set-up report needs ok: true|false');
  if (b.log !== undefined && typeof b.log !== 'string') throw new FleetError('request.invalid', 'the BMC set-up report: log must be a string');
  return { ok: b.ok, log: (b.log ?? '').slice(-4000) };
}

export interface BmcSetupDeps {
  store: Store;
  providers?: ProviderContext;
  conductor?: Pick<Conductor, 'reinstall' | 'fire'>;
  /** How long the BMC may take to answer the new account at its new address (it may be applying it); default 60 s. */
  verifyWithinMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export type BmcSetupOutcome = { ok: true; node: string; warning?: string } | { ok: false; node: string; reason: string };

/**
 * The boot environment's report: verify the new account out of band,
 * record it, disable the factory account, start the install; or fail the
 * node with why. Only a set-up that was sent is finished, once.
 */
export async function finishBmcSetup(deps: BmcSetupDeps, mac: string, report: BmcSetupReport): Promise<BmcSetupOutcome> {
  const { store } = deps;
  const rec = await store.bmc.setupByMac(mac);
  if (!rec) throw new FleetError('not_found', `no BMC set-up is planned for ${mac}`, { mac });
  if (rec.state !== 'sent' && rec.state !== 'pending') throw new FleetError('conflict', `the BMC set-up of ${rec.node} is already ${rec.state}`, { node: rec.node });
  if (!(await store.bmc.markSetup(rec.node, ['sent', 'pending'], 'sent', null))) throw new FleetError('conflict', `the BMC set-up of ${rec.node} moved meanwhile`);
  const node = rec.node;
  await store.events.append({ node, kind: EVENT.bmcSetupReported, actor: 'bootenv', details: { ok: report.ok, log: report.log.slice(-1500) } });
  const bmc = await store.bmc.get(node);
  const factory = bmc?.rotatedCredentials ?? bmc?.credentials ?? '?';

  const fail = async (reason: string): Promise<BmcSetupOutcome> => {
    const full = `${reason}; the factory credential (${factory}) is unchanged`;
    if (!(await store.bmc.markSetup(node, ['sent'], 'failed', full))) return { ok: false, node, reason: full };
    await store.events.append({ node, kind: EVENT.bmcSetupFailed, actor: ACTOR, details: { reason: full } });
    if (deps.conductor) {
      await deps.conductor.fire(node, E.fail, { actor: ACTOR, cause: 'bmc set-up failed', details: { reason: full } }).catch(() => undefined);
    }
    return { ok: false, node, reason: full };
  };

  if (!report.ok) return fail(`the boot environment could not set the BMC up in band: ${lastLine(report.log)}`);
  if (!bmc) return fail('the node has no BMC endpoint');
  if (!deps.providers) return fail('this server runs without BMC access: the new account cannot be verified');
  const job = rec.job;
  const target = { address: bmc.address, port: bmc.port, username: job.account, password: rec.password };
  const driver = createIpmiDriver(deps.providers.ipmiTransport, target, deps.providers.ipmi);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const until = Date.now() + (deps.verifyWithinMs ?? 60_000);
  let last: FleetError | undefined;
  try {
    // Out of band, as fleet will use it: a session of its own at administrator privilege, then a read.
    for (;;) {
      try {
        await driver.powerStatus();
        last = undefined;
        break;
      } catch (e) {
        last = toFleetError(e);
        // A wrong password does not get better by waiting (and retrying locks accounts).
        if (last.code === 'bmc.auth_failed' || Date.now() > until) break;
        await sleep(3000);
      }
    }
    if (last) return fail(`the BMC at ${bmc.address}:${bmc.port} did not answer the new account ${job.account} out of band: ${last.message}`);
    try {
      await store.bmc.commitRotation(
        node,
        factory,
        { username: job.account, secret: rec.password, details: { via: 'bmc set-up on accept (in band)', account: job.account, slot: job.slot, channel: job.channel, retires: job.retire?.name ?? null } },
        { actor: ACTOR, cause: 'discovery bmc.setup' },
      );
    } catch (e) {
      return fail(`recording the new account failed: ${toFleetError(e).message}`);
    }
    let warning: string | undefined;
    if (job.retire && job.retire.id !== job.slot) {
      warning = await retireAccount(store, driver, { node, channel: job.channel, retire: job.retire, actor: ACTOR, what: 'the factory account' });
    }
    await store.bmc.markSetup(node, ['sent'], 'done', warning ?? null);
  } finally {
    await driver.close().catch(() => undefined);
  }
  if (job.install && deps.conductor) {
    const [r] = await deps.conductor.reinstall([node], { actor: ACTOR, force: false });
    if (r && !r.ok) return { ok: true, node, warning: `the BMC is set up, but the install did not start: ${r.error?.message ?? 'unknown'}` };
  }
  return { ok: true, node };
}

function lastLine(log: string): string {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines.at(-1) ?? 'no log').slice(0, 300);
}

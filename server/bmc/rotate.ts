/**
 * `fleet bmc rotate NODESET`: a new BMC account for each node, verified
 * before it is trusted (issue 13 item 3).
 *
 * Per node, over IPMI with the credential in use now:
 *   1. read the user slots of the LAN channel; planRotation picks the slot of
 *      the fleet account not in use (fleet-a / fleet-b);
 *   2. write that account: name, a generated password (generateBmcPassword,
 *      never logged), administrator on the LAN channel, enabled;
 *   3. verify it OUT OF BAND: a new RMCP+ session of its own at administrator
 *      privilege and a chassis status read;
 *   4. record it (store.bmc.commitRotation: sealed per-node set rotated.NODE,
 *      bmc.credential_rotated);
 *   5. only then disable the account used before (the factory one the first time).
 * Any failure before 4 disables the half-made account (best effort) and
 * leaves the credential in use as it was: the node's BMC answers as before,
 * and bmc.rotate_failed says why. A failure at 5 keeps the new credential (it
 * is recorded and works) and says the old account is still enabled.
 *
 * Redfish BMCs (AccountService) are not rotated yet: a clear not_implemented.
 */
import { FleetError, toFleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import type { Store } from '../store/index.js';
import { runFanout } from './fanout.js';
import { createIpmiDriver, type IpmiDriver } from './ipmi/driver.js';
import { generateBmcPassword, planRotation, type PasswordSize } from './ipmi/users.js';
import { bmcKey } from './queue.js';
import type { ProviderContext } from './registry.js';
import type { BmcTarget } from './types.js';
import { bmcCredentialNames, RevealedSecrets } from './credentials.js';

export interface RotateOptions {
  actor: string;
  providers: ProviderContext;
  /** Password length: 20 (IPMI 2.0's maximum, default) or 16 for BMCs that authenticate only 16 bytes (ipmi_sim). */
  passwordSize?: PasswordSize;
  /** Per node, everything included; default 60 s (a BMC with 63 slots takes ~130 requests to read). */
  timeoutMs?: number;
  concurrency?: number;
  cause?: string;
}

export interface RotateResult {
  node: string;
  ok: boolean;
  /** The account now in use, its slot, and the one it replaced. */
  account?: string;
  slot?: number;
  /** The account disabled after the new one was recorded; `stillEnabled`: disabling it failed (why in `warning`). */
  retired?: { id: number; name: string; stillEnabled: boolean } | null;
  warning?: string;
  /** Where it stopped and why; the credential in use is then unchanged. */
  error?: { code: string; message: string; stage: Stage };
  durationMs: number;
}

type Stage = 'prepare' | 'read' | 'write' | 'verify' | 'record';

class StageError extends FleetError {
  constructor(
    readonly stage: Stage,
    e: unknown,
  ) {
    const fe = toFleetError(e);
    super(fe.code, fe.message, { stage }, { cause: fe });
  }
}

async function at<T>(stage: Stage, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw e instanceof StageError ? e : new StageError(stage, e);
  }
}

export async function rotateBmcCredentials(store: Store, names: string[], opts: RotateOptions): Promise<RotateResult[]> {
  const size = opts.passwordSize ?? 20;
  const records = new Map((await store.nodes.list({ names })).map((n) => [n.name, n]));
  const credentials = await bmcCredentialNames(store, [...records.values()]);
  const results = new Map<string, RotateResult>();
  const ready: { node: string; key: string; target: BmcTarget; credential: string }[] = [];
  const secrets = new RevealedSecrets(store);

  for (const name of names) {
    const node = records.get(name);
    const fail = (code: string, message: string): void => void results.set(name, { node: name, ok: false, error: { code, message, stage: 'prepare' }, durationMs: 0 });
    if (!node) fail('node.not_found', 'not in the store');
    else if (!node.bmc) fail('bmc.unsupported', `${name} has no BMC (bmc: none): nothing to rotate`);
    else if (node.bmc.protocol === 'redfish') fail('not_implemented', `${name}: rotating a Redfish BMC's account (AccountService) is not implemented; rotate it by hand and update its credential set`);
    else {
      const credential = credentials.get(name) ?? node.bmc.credentials;
      const secret = await secrets.get(credential);
      ready.push({
        node: name,
        key: bmcKey(node.bmc.address, node.bmc.port),
        credential,
        target: { address: node.bmc.address, port: node.bmc.port, username: secret.username, password: secret.secret },
      });
    }
  }
  const failed = async (r: RotateResult, kept: string | null): Promise<void> => {
    if (r.error?.code === 'node.not_found') return;
    await store.events.append({
      node: r.node,
      kind: EVENT.bmcRotateFailed,
      actor: opts.actor,
      ...(opts.cause ? { cause: opts.cause } : {}),
      details: { stage: r.error!.stage, error: { code: r.error!.code, message: r.error!.message }, kept },
    });
  };
  for (const r of results.values()) await failed(r, null);

  const byNode = new Map(ready.map((r) => [r.node, r]));
  await runFanout(
    ready.map((r) => ({ node: r.node, bmcKey: r.key })),
    async (t, ctx) => {
      const r = byNode.get(t.node)!;
      return { value: await rotateOne(store, r, size, opts, ctx.signal), provider: 'ipmi' };
    },
    {
      concurrency: opts.concurrency ?? 16,
      timeoutMs: opts.timeoutMs ?? 60_000,
      // Never repeated by the fan-out: a rotation run again starts from what the store says.
      retries: 0,
      ...(opts.providers.queue ? { queue: opts.providers.queue } : {}),
      onResult: async (nr) => {
        const r = byNode.get(nr.node)!;
        if (nr.ok) {
          results.set(nr.node, { ...(nr.value as Omit<RotateResult, 'durationMs'>), durationMs: nr.durationMs });
          return;
        }
        const stage = (nr.error?.details as { stage?: Stage } | undefined)?.stage ?? 'read';
        const res: RotateResult = { node: nr.node, ok: false, error: { code: nr.error!.code, message: nr.error!.message, stage }, durationMs: nr.durationMs };
        results.set(nr.node, res);
        await failed(res, r.credential);
      },
    },
  );
  return names.map((n) => results.get(n)!);
}

async function rotateOne(
  store: Store,
  r: { node: string; target: BmcTarget; credential: string },
  size: PasswordSize,
  opts: RotateOptions,
  signal: AbortSignal,
): Promise<Omit<RotateResult, 'durationMs'>> {
  const drivers: IpmiDriver[] = [];
  const open = (target: BmcTarget): IpmiDriver => {
    const d = createIpmiDriver(opts.providers.ipmiTransport, target, opts.providers.ipmi);
    drivers.push(d);
    return d;
  };
  const onAbort = (): void => drivers.forEach((d) => void d.close().catch(() => undefined));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const old = open(r.target);
    const channel = await at('read', () => old.lanChannel());
    const slots = await at('read', () => old.listUsers(channel));
    const plan = await at('read', async () => planRotation(slots, r.target.username));
    const password = generateBmcPassword(size);
    // From here a half-made account may exist: every failure before the record takes it away again.
    const undo = async (e: unknown, stage: Stage): Promise<never> => {
      const fe = toFleetError(e);
      let cleanup = '';
      try {
        await old.disableAccount(channel, plan.slot);
      } catch (ce) {
        cleanup = `; disabling the unverified account ${plan.name} (slot ${plan.slot}) failed too: ${toFleetError(ce).message}`;
      }
      throw new FleetError(fe.code, `${stageText(stage, plan.name, plan.slot)}: ${fe.message}${cleanup}; the credential in use (${r.credential}) is unchanged`, { stage }, { cause: fe });
    };
    try {
      await old.writeAccount(channel, plan.slot, plan.name, password, size);
    } catch (e) {
      return await undo(e, 'write');
    }
    const fresh = open({ ...r.target, username: plan.name, password });
    try {
      // A session of its own at administrator privilege, then a read: the account works out of band.
      await fresh.powerStatus();
    } catch (e) {
      return await undo(e, 'verify');
    }
    try {
      await store.bmc.commitRotation(
        r.node,
        r.credential,
        { username: plan.name, secret: password, details: { account: plan.name, slot: plan.slot, why: plan.why, channel, retires: plan.retire?.name ?? null } },
        { actor: opts.actor, ...(opts.cause ? { cause: opts.cause } : {}) },
      );
    } catch (e) {
      return await undo(e, 'record');
    }
    let retired: RotateResult['retired'] = null;
    let warning: string | undefined;
    if (plan.retire && plan.retire.id !== plan.slot) {
      warning = await retireAccount(store, fresh, { node: r.node, channel, retire: plan.retire, actor: opts.actor, what: 'the new account is recorded and works, but the old account' });
      retired = { ...plan.retire, stillEnabled: warning !== undefined };
    } else if (!plan.retire) {
      warning = `no user slot is named ${r.target.username}: the account used before was not found, so it was not disabled`;
    }
    return { node: r.node, ok: true, account: plan.name, slot: plan.slot, retired, ...(warning ? { warning } : {}) };
  } finally {
    signal.removeEventListener('abort', onAbort);
    for (const d of drivers) await d.close().catch(() => undefined);
  }
}

/**
 * Disables the account used before, with the new one (the last step of a
 * rotation and of the set-up on accept). A failure is said, not thrown: the
 * new credential is recorded and works. Returns the warning, or undefined.
 */
export async function retireAccount(
  store: Store,
  driver: IpmiDriver,
  o: { node: string; channel: number; retire: { id: number; name: string }; actor: string; what: string },
): Promise<string | undefined> {
  try {
    await driver.disableAccount(o.channel, o.retire.id);
    return undefined;
  } catch (e) {
    const fe = toFleetError(e);
    const warning = `${o.what} ${o.retire.name} (slot ${o.retire.id}) is still enabled: ${fe.message}`;
    await store.events.append({ node: o.node, kind: EVENT.bmcRotateFailed, actor: o.actor, details: { stage: 'retire', error: { code: fe.code, message: warning }, kept: null } });
    return warning;
  }
}

function stageText(stage: Stage, account: string, slot: number): string {
  switch (stage) {
    case 'write':
      return `writing the new account ${account} (slot ${slot}) failed`;
    case 'verify':
      return `the new account ${account} (slot ${slot}) did not open a session of its own`;
    case 'record':
      return `recording the new account ${account} failed`;
    default:
      return 'rotation failed';
  }
}

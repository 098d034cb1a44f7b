/**
 * BMC operations on a set of nodes: power, boot device, identity. Reads the
 * nodes' BMC endpoints and secrets from the store, runs the fan-out, and
 * writes one audit event per node (actor, operation, outcome, provider) as
 * each node's result lands — the drivers themselves never touch the store.
 *
 * Retries and provider fallbacks follow retry.ts's one rule for the
 * operation's action (a timed-out reset is never sent again), and every BMC
 * is driven through the server's per-BMC queue when the provider context has
 * one (shared with the lifecycle).
 */
import { runFanout, type FanoutOptions, type NodeResult } from './fanout.js';
import { bmcKey } from './queue.js';
import { FALLBACKS, withBmc, type ProviderContext } from './registry.js';
import { DEFAULT_POWER_WAIT_MS } from './redfish/driver.js';
import { mayRetry, unconfirmedOf, type BmcAction } from './retry.js';
import type { BmcDriver, BmcIdentity, BootDevice, BootMode, BmcTarget, BootSetReport, PowerState } from './types.js';
import { FleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import type { BmcProtocol, NodeBmcSpec } from '../model.js';
import { DEFAULT_BMC_PORT } from '../config/index.js';
import type { Store } from '../store/index.js';
import { bmcCredentialNames, RevealedSecrets } from './credentials.js';

export const POWER_OPS = ['status', 'on', 'off', 'soft', 'cycle', 'reset'] as const;
export type PowerOp = (typeof POWER_OPS)[number];
export const BOOT_DEVICES = ['pxe', 'disk', 'cdrom', 'bios'] as const;

export type BmcOperation =
  | { kind: 'power'; op: PowerOp }
  | { kind: 'bootdev'; device: Exclude<BootDevice, 'none'>; persistent: boolean; mode: BootMode }
  | { kind: 'info' };

export interface BmcOpResult {
  node: string;
  ok: boolean;
  /** power: the state after the operation (status reads it; on/off imply it); info: the identity. */
  power?: PowerState;
  identity?: BmcIdentity;
  /** bootdev: what was asked, and (drivers that read it back: Redfish) what the BMC stored and the quirks seen. */
  bootdev?: { device: string; persistent: boolean; stored?: BootSetReport['stored']; quirks?: string[] };
  provider?: string;
  /** details: what the driver attached (e.g. notRun: the action provably did not run), for the retry rule. */
  error?: { code: string; message: string; details?: unknown };
  /**
   * A once-only action (off, soft, cycle, reset) was sent, got no answer and
   * was not sent again: it may or may not have run. `power` is what the BMC
   * showed when read back afterwards (null: unreadable).
   */
  unconfirmed?: { power: PowerState | null };
  bmc?: string;
  attempts: NodeResult<unknown>['attempts'];
  durationMs: number;
}

/**
 * The fan-out's per-node time limit: a Redfish power action waits for PowerState up to power_wait after each
 * Reset (twice for a ForceOff+On cycle), so the limit is raised to cover that (plus the requests); the limit
 * must never cut a wait short, or a Reset that landed would be reported as a timeout.
 */
export function operationTimeoutMs(op: BmcOperation, targets: readonly BmcTarget[], base: number | undefined): number | undefined {
  if (op.kind !== 'power' || op.op === 'status' || op.op === 'soft') return base;
  const waits = targets.filter((t) => t.redfish !== undefined).map((t) => t.redfish?.powerWaitMs ?? DEFAULT_POWER_WAIT_MS);
  if (waits.length === 0) return base;
  return Math.max(base ?? 20_000, 2 * Math.max(...waits) + 20_000);
}

/** The Redfish settings of a node's bmc block, as the driver takes them. */
function redfishTarget(bmc: NodeBmcSpec): NonNullable<BmcTarget['redfish']> {
  return {
    ...(bmc.system !== undefined ? { system: bmc.system } : {}),
    ...(bmc.auth !== undefined ? { auth: bmc.auth } : {}),
    ...(bmc.powerWait !== undefined ? { powerWaitMs: bmc.powerWait * 1000 } : {}),
  };
}

async function perform(op: BmcOperation, d: BmcDriver): Promise<Partial<BmcOpResult>> {
  switch (op.kind) {
    case 'power':
      switch (op.op) {
        case 'status':
          return { power: await d.powerStatus() };
        case 'on':
          await d.powerOn();
          return { power: 'on' };
        case 'off':
          await d.powerOff();
          return { power: 'off' };
        case 'soft':
          await d.powerSoft();
          return {};
        case 'cycle':
          await d.powerCycle();
          return { power: 'on' };
        case 'reset':
          await d.powerReset();
          return { power: 'on' };
      }
      break;
    case 'bootdev':
    {
      const report = await d.setBootDevice(op.device, { persistent: op.persistent, mode: op.mode });
      return { bootdev: { device: op.device, persistent: op.persistent, ...(report ? { stored: report.stored, quirks: report.quirks } : {}) } };
    }
    case 'info':
      return { identity: await d.identity() };
  }
  throw new FleetError('internal', 'unknown BMC operation');
}

const SHORT_REASON: Partial<Record<string, string>> = {
  'bmc.auth_failed': 'authentication failed',
  'bmc.timeout': 'no answer',
  'bmc.protocol': 'unreadable answer',
  'bmc.command_failed': 'command refused',
  'bmc.unsupported': 'not supported',
  'bmc.tls': 'TLS certificate not trusted',
};

/** "authentication failed (bmc 10.10.103.2, ipmi): <driver detail>" */
export function reasonLine(e: FleetError, label: string): string {
  const short = unconfirmedOf(e) ? 'sent once, unconfirmed' : (SHORT_REASON[e.code] ?? 'failed');
  return `${short} (${label}): ${e.message}`;
}

/** The action an operation performs, for the retry rule. */
export function actionOf(op: BmcOperation): BmcAction {
  if (op.kind === 'power') return op.op === 'status' ? 'power.status' : `power.${op.op}`;
  if (op.kind === 'bootdev') return 'bootdev.set';
  return 'info';
}

function describe(op: BmcOperation): string {
  if (op.kind === 'power') return `power ${op.op}`;
  if (op.kind === 'bootdev') return `bootdev ${op.device}${op.persistent ? ' persistent' : ' once'}${op.mode === 'auto' ? '' : ' ' + op.mode}`;
  return 'bmc info';
}

export interface RunBmcOptions extends Omit<FanoutOptions, 'retryable' | 'queue' | 'onResult'> {
  actor: string;
  providers: ProviderContext;
}

/**
 * Runs `op` on `names` (already expanded). Nodes not in the store or without
 * a BMC fail alone with a clear reason. Results come back in `names` order.
 */
export async function runBmcOperation(store: Store, names: string[], op: BmcOperation, opts: RunBmcOptions): Promise<BmcOpResult[]> {
  const prepared = new Map<string, { target: BmcTarget; protocol: BmcProtocol; label: string } | { error: FleetError }>();
  const secrets = new RevealedSecrets(store);
  const records = new Map((await store.nodes.list({ names })).map((n) => [n.name, n]));
  const credentials = await bmcCredentialNames(store, [...records.values()]);
  for (const name of names) {
    const node = records.get(name);
    if (!node) {
      prepared.set(name, { error: new FleetError('node.not_found', 'not in the store') });
      continue;
    }
    if (!node.bmc) {
      // bmc: none (or no bmc block): nothing is sent; the answer says why (docs/decisions/0011).
      prepared.set(name, { error: new FleetError('bmc.unsupported', `${name} has no BMC (bmc: none in fleet.yaml): power is manual; power it by hand`, { node: name, power: 'manual' }) });
      continue;
    }
    const cred = await secrets.get(credentials.get(name) ?? node.bmc.credentials);
    // Only Redfish pins a certificate (trust on first use); IPMI needs no endpoint lookup.
    const fingerprint = node.bmc.protocol === 'redfish' ? ((await store.bmc.get(name))?.tlsFingerprint ?? undefined) : undefined;
    prepared.set(name, {
      protocol: node.bmc.protocol,
      label: `bmc ${node.bmc.address}${node.bmc.port === DEFAULT_BMC_PORT[node.bmc.protocol] ? '' : ':' + node.bmc.port}${node.bmc.system ? ' system ' + node.bmc.system : ''}, ${node.bmc.protocol}`,
      target: {
        address: node.bmc.address,
        port: node.bmc.port,
        username: cred.username,
        password: cred.secret,
        ...(fingerprint ? { tls: { fingerprint } } : {}),
        ...(node.bmc.protocol === 'redfish' ? { redfish: redfishTarget(node.bmc) } : {}),
      },
    });
  }

  const action = actionOf(op);
  // Status reads and info are not actions: only power and boot-device changes are audited.
  const audited = op.kind === 'bootdev' || (op.kind === 'power' && op.op !== 'status');
  const toResult = (name: string, r: NodeResult<unknown>): BmcOpResult => {
    const p = prepared.get(name) as { target: BmcTarget };
    const provider = r.attempts.at(-1)?.provider;
    const readBack = r.ok ? undefined : unconfirmedOf(new FleetError(r.error!.code, r.error!.message, r.error!.details));
    return {
      node: name,
      ok: r.ok,
      bmc: `${p.target.address}:${p.target.port}`,
      ...(provider && provider !== '-' ? { provider } : {}),
      ...(r.ok ? (r.value as Partial<BmcOpResult>) : { error: r.error! }),
      ...(readBack ? { unconfirmed: { power: readBack.power } } : {}),
      attempts: r.attempts,
      durationMs: r.durationMs,
    };
  };
  const audit = async (r: BmcOpResult): Promise<void> => {
    await store.transaction(async (tx) => {
      if (r.ok && r.provider) await tx.bmc.recordAnswer(r.node, r.provider);
      if (!audited || r.error?.code === 'node.not_found') return;
      await tx.events.append({
        node: r.node,
        kind: op.kind === 'power' ? EVENT.bmcPower : EVENT.bmcBootdev,
        actor: opts.actor,
        details: {
          operation: describe(op),
          outcome: r.ok ? 'ok' : r.unconfirmed ? 'unconfirmed' : 'failed',
          ...(r.provider ? { provider: r.provider } : {}),
          ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
          ...(r.unconfirmed ? { powerReadBack: r.unconfirmed.power } : {}),
          // What the BMC really stored, and quirks of this BMC seen on the read-back (e.g. Once stored as Continuous).
          ...(r.bootdev?.stored ? { stored: r.bootdev.stored, quirks: r.bootdev.quirks ?? [] } : {}),
          attempts: r.attempts.length,
          durationMs: r.durationMs,
        },
      });
    });
  };

  // One sample per node whose BMC was driven (nodes that never reached one are not BMC latency).
  const observe = (r: BmcOpResult): void => {
    if (!opts.providers.onOperation) return;
    const p = prepared.get(r.node) as { protocol: BmcProtocol };
    const outcome = r.ok ? 'ok' : r.unconfirmed ? 'unconfirmed' : (r.error?.code ?? 'failed').replace(/^bmc\./, '');
    try {
      opts.providers.onOperation({ protocol: r.provider ?? p.protocol, operation: action, outcome, seconds: r.durationMs / 1000 });
    } catch {
      // Metrics never fail an operation.
    }
  };

  const results = new Map<string, BmcOpResult>();
  // Nodes that cannot be reached fail alone, audited before any BMC is touched.
  for (const name of names) {
    const p = prepared.get(name)!;
    if (!('error' in p)) continue;
    const r: BmcOpResult = { node: name, ok: false, error: { code: p.error.code, message: p.error.message }, attempts: [], durationMs: 0 };
    results.set(name, r);
    await audit(r);
  }

  const runnable = names.filter((n) => !('error' in prepared.get(n)!));
  const timeoutMs = operationTimeoutMs(
    op,
    runnable.map((n) => (prepared.get(n) as { target: BmcTarget }).target),
    opts.timeoutMs,
  );
  await runFanout(
    runnable.map((node) => {
      const p = prepared.get(node) as { target: BmcTarget };
      return { node, bmcKey: bmcKey(p.target.address, p.target.port) };
    }),
    async (t, ctx) => {
      const p = prepared.get(t.node) as { target: BmcTarget; protocol: BmcProtocol; label: string };
      try {
        const call = await withBmc([p.protocol, ...FALLBACKS[p.protocol]], p.target, opts.providers, (d) => perform(op, d), {
          action,
          signal: ctx.signal,
          onFirstContact: (fp) => void store.bmc.trustFingerprint(t.node, fp, { actor: opts.actor, cause: 'first contact' }),
        });
        return { value: call.value, provider: call.provider, inner: call.inner };
      } catch (e) {
        // The reason as admins read it: "authentication failed (bmc 10.10.103.2, ipmi): <what the driver saw>".
        if (e instanceof FleetError) {
          const wrapped = new FleetError(e.code, reasonLine(e, p.label), e.details, { cause: e });
          Object.assign(wrapped, { provider: (e as { provider?: string }).provider, attempts: (e as { attempts?: unknown }).attempts });
          throw wrapped;
        }
        throw e;
      }
    },
    {
      ...opts,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      retryable: (e) => mayRetry(action, e),
      ...(opts.providers.queue ? { queue: opts.providers.queue } : {}),
      // Each node's bookkeeping and audit event are written as its result lands, not after the whole fan-out.
      onResult: async (r) => {
        const result = toResult(r.node, r);
        results.set(r.node, result);
        observe(result);
        await audit(result);
      },
    },
  );
  return names.map((n) => results.get(n)!);
}

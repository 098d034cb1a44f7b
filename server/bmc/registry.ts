/**
 * The provider registry (after bmclib): a static map from protocol to a
 * driver factory, and `withBmc`, which tries a node's providers in order
 * (its configured protocol, then the fallbacks), records every attempt, and
 * always closes the driver.
 *
 * Fallback happens only for errors another provider could fix (the BMC
 * speaks the protocol oddly, or not at all); a wrong password or a BMC that
 * does not answer is reported at once, since another client on the same BMC
 * would fail the same way and cost the full timeout again. And it happens
 * only where retry.ts allows sending the action again: a cycle whose answer
 * was unreadable may have landed, so ipmitool does not send it a second time.
 */
import { FleetError, toFleetError, type ErrorCode } from '../../common/errors.js';
import type { BmcProtocol } from '../model.js';
import type { AttemptRecord } from './fanout.js';
import { createIpmiDriver, type IpmiDriverOptions } from './ipmi/driver.js';
import type { IpmiTransport } from './ipmi/transport.js';
import type { BmcQueue } from './queue.js';
import { mayFallBack, type BmcAction } from './retry.js';
import { createIpmitoolDriver, type IpmitoolDriverOptions } from './ipmitool/driver.js';
import { RedfishDriver, type RedfishDriverOptions } from './redfish/driver.js';
import type { BmcDriver, BmcTarget } from './types.js';

export interface ProviderContext {
  /** The server's one IPMI UDP socket, shared by every IPMI session. */
  ipmiTransport: IpmiTransport;
  /** The server's per-BMC queue, shared by the fan-out and the lifecycle (one caller per BMC at a time). */
  queue?: BmcQueue;
  ipmi?: IpmiDriverOptions;
  ipmitool?: IpmitoolDriverOptions;
  redfish?: RedfishDriverOptions;
  /**
   * Told each node's BMC operation as its result lands (runBmcOperation):
   * the server's metrics (server/metrics). Must be cheap; what it throws is dropped.
   */
  onOperation?: (sample: { protocol: string; operation: string; outcome: string; seconds: number }) => void;
}

export interface ProviderInfo {
  name: BmcProtocol;
  protocol: 'IPMI 2.0 (RMCP+)' | 'Redfish' | 'IPMI 2.0 via ipmitool';
  create(target: BmcTarget, ctx: ProviderContext, extra?: { onFirstContact?: (fp: string) => void }): BmcDriver;
}

export const PROVIDERS: Readonly<Record<BmcProtocol, ProviderInfo>> = {
  ipmi: { name: 'ipmi', protocol: 'IPMI 2.0 (RMCP+)', create: (t, ctx) => createIpmiDriver(ctx.ipmiTransport, t, ctx.ipmi) },
  ipmitool: { name: 'ipmitool', protocol: 'IPMI 2.0 via ipmitool', create: (t, ctx) => createIpmitoolDriver(t, ctx.ipmitool) },
  redfish: {
    name: 'redfish',
    protocol: 'Redfish',
    create: (t, ctx, extra) =>
      new RedfishDriver(t, {
        ...ctx.redfish,
        // Trust on first use unless a CA or a pinned fingerprint is configured (DESIGN §2).
        tls: { trustOnFirstUse: !t.tls?.fingerprint && !t.tls?.ca, ...ctx.redfish?.tls },
        onFirstContact: extra?.onFirstContact,
      }),
  },
};

/** Default fallback order after a node's configured protocol. */
export const FALLBACKS: Readonly<Record<BmcProtocol, BmcProtocol[]>> = {
  ipmi: ['ipmitool'],
  ipmitool: [],
  redfish: [],
};

export interface BmcCall<T> {
  value: T;
  provider: BmcProtocol;
  inner: AttemptRecord[];
}

/** An error that carries the provider attempts made before it. */
export class BmcCallError extends FleetError {
  constructor(
    base: FleetError,
    readonly provider: BmcProtocol,
    readonly attempts: AttemptRecord[],
  ) {
    super(base.code, base.message, base.details, { cause: base });
  }
}

/**
 * Runs `fn` with a driver for the node's BMC, trying `[protocol, ...fallbacks]`.
 * `signal` (from the fan-out's timeout) closes the driver in use, which ends
 * its pending requests. `action` says what `fn` does, for the fallback rule;
 * without it the action is taken to be once-only (no fallback after it may
 * have landed).
 */
export async function withBmc<T>(
  protocols: readonly BmcProtocol[],
  target: BmcTarget,
  ctx: ProviderContext,
  fn: (driver: BmcDriver) => Promise<T>,
  opts: { action?: BmcAction; signal?: AbortSignal; onFirstContact?: (fp: string) => void; now?: () => number } = {},
): Promise<BmcCall<T>> {
  const now = opts.now ?? Date.now;
  const inner: AttemptRecord[] = [];
  if (protocols.length === 0) throw new FleetError('bmc.unsupported', 'no BMC provider to try');
  for (let i = 0; i < protocols.length; i++) {
    const name = protocols[i]!;
    const t0 = now();
    const driver = PROVIDERS[name].create(target, ctx, { onFirstContact: opts.onFirstContact });
    const onAbort = (): void => void driver.close().catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const value = await fn(driver);
      return { value, provider: name, inner };
    } catch (e) {
      const fe = toFleetError(e);
      const last = i === protocols.length - 1;
      if (last || !mayFallBack(opts.action ?? 'power.cycle', fe)) throw new BmcCallError(fe, name, inner);
      inner.push({ provider: name, durationMs: now() - t0, outcome: fe.code, message: fe.message });
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      await driver.close().catch(() => undefined);
    }
  }
  /* c8 ignore next */
  throw new FleetError('internal', 'unreachable');
}

/**
 * The side effects of the lifecycle, behind one small interface the
 * conductor is given (so the simulator and tests inject doubles). Steps do
 * BMC work only; the armed flag and every state change are written by the
 * conductor, in the transaction of the transition they belong to.
 *
 * Errors are FleetErrors from the catalogue, with the driver's details kept
 * (notRun, unconfirmed): the conductor asks retry.ts's `mayRetry` for the
 * step's action, the one rule the fan-out and the registry use too.
 */
import type { ProviderContext } from '../bmc/registry.js';
import type { BootMode, PowerState } from '../bmc/types.js';
import { markNotRun } from '../bmc/retry.js';
import { FleetError, isFleetError, type ErrorCode } from '../../common/errors.js';
import { runBmcOperation, type BmcOperation, type BmcOpResult } from '../bmc/operation.js';
import type { Store } from '../store/index.js';

export interface Steps {
  /**
   * Boot from the network on the next boot only (one-time override, loop
   * breaker layer 1), or for good with `persistent` (a stateless node, whose
   * every boot is a netboot). Idempotent.
   */
  armPxe(node: string, opts?: { persistent?: boolean }): Promise<void>;
  /**
   * Power-cycles the node, or powers it on when it is off; says which. Not
   * idempotent: after a crash the conductor reads the power state instead of
   * repeating it.
   */
  powerCycle(node: string): Promise<'cycle' | 'on'>;
  /** Powers the node on (completes a cycle interrupted after its "off"). */
  powerOn(node: string): Promise<void>;
  powerStatus(node: string): Promise<PowerState>;
  /** Boot from the disk, persistently (loop breaker layer 3). Idempotent. */
  flipToDisk(node: string): Promise<void>;
  /**
   * Whether the node has no BMC (fleet.yaml `bmc: none`): power is manual,
   * and the steps call none of the above for it (steps/manual.ts). Absent:
   * every node has a BMC.
   */
  powerIsManual?(node: string): Promise<boolean>;
}

export interface BmcStepsOptions {
  providers: ProviderContext;
  /** Actor of the BMC audit events. Default 'lifecycle'. */
  actor?: string;
  /** Per BMC call. Default 20 s. */
  timeoutMs?: number;
  /** Boot mode for boot-device changes. Default auto. */
  bootMode?: BootMode;
}

/** The real steps: one BMC operation each through runBmcOperation (audited per node). */
export class BmcSteps implements Steps {
  private readonly actor: string;

  constructor(
    private readonly store: Store,
    private readonly opts: BmcStepsOptions,
  ) {
    this.actor = opts.actor ?? 'lifecycle';
  }

  private async one(node: string, op: BmcOperation, retries: number): Promise<BmcOpResult> {
    const [r] = await runBmcOperation(this.store, [node], op, {
      actor: this.actor,
      providers: this.opts.providers,
      concurrency: 1,
      timeoutMs: this.opts.timeoutMs,
      // Retried below the conductor only where retry.ts allows (never a power action that may have landed).
      retries,
    });
    if (!r) throw new FleetError('internal', `no BMC result for ${node}`);
    if (!r.ok) {
      const d = r.error?.details;
      const extra = d !== null && typeof d === 'object' && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
      throw new FleetError((r.error?.code as ErrorCode | undefined) ?? 'internal', r.error?.message ?? 'BMC operation failed', { ...extra, node });
    }
    return r;
  }

  async powerIsManual(node: string): Promise<boolean> {
    const rec = await this.store.nodes.get(node);
    return rec !== null && rec !== undefined && !rec.bmc;
  }

  async armPxe(node: string, opts: { persistent?: boolean } = {}): Promise<void> {
    await this.one(node, { kind: 'bootdev', device: 'pxe', persistent: opts.persistent === true, mode: this.opts.bootMode ?? 'auto' }, 2);
  }

  async powerCycle(node: string): Promise<'cycle' | 'on'> {
    // Many BMCs refuse "cycle" on a node that is off: read first (a read is harmless), then act once.
    // A failed read means nothing was sent: the conductor may try the step again.
    const power = await this.powerStatus(node).catch((e: unknown) => {
      throw isFleetError(e) ? markNotRun(e) : e;
    });
    if (power === 'off') {
      await this.one(node, { kind: 'power', op: 'on' }, 0);
      return 'on';
    }
    await this.one(node, { kind: 'power', op: 'cycle' }, 0);
    return 'cycle';
  }

  async powerOn(node: string): Promise<void> {
    await this.one(node, { kind: 'power', op: 'on' }, 0);
  }

  async powerStatus(node: string): Promise<PowerState> {
    const r = await this.one(node, { kind: 'power', op: 'status' }, 2);
    if (r.power !== 'on' && r.power !== 'off') throw new FleetError('bmc.protocol', `the BMC of ${node} gave no power state`, { node });
    return r.power;
  }

  async flipToDisk(node: string): Promise<void> {
    await this.one(node, { kind: 'bootdev', device: 'disk', persistent: true, mode: this.opts.bootMode ?? 'auto' }, 2);
  }
}

/**
 * Policy auto: a machine that a rule plans is accepted when it is seen, with
 * no command. The hook is thin: the places that record a sighting (the
 * lease-event consumer, the boot service's iPXE fetch) call `seen(mac)`; the
 * MACs are gathered and, one batch at a time, planned and accepted through
 * acceptMachines (the same path as `fleet discover --accept`). The decision
 * is the pure `autoAcceptable(plan, macs)`: only planned machines go; one
 * that waits for a fact (or matches no rule, or is refused) stays
 * discovered and is looked at again the next time it is seen.
 *
 * Under policy manual nothing happens here. A batch that cannot be accepted
 * (a check an install profile depends on fails, the store changed) is
 * logged and left: the machines are seen again (leases renew, iPXE asks
 * again) and retried then.
 */
import { toFleetError } from '../../common/errors.js';
import { autoAcceptable } from './plan.js';
import { acceptMachines, currentPlan, type DiscoveryDeps } from './service.js';
import type { DiscoverySpec } from './types.js';

export interface AutoAcceptLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const AUTO_ACTOR = 'discovery-auto';

export class AutoAccept {
  private readonly pending = new Set<string>();
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly deps: DiscoveryDeps & { log?: AutoAcceptLogger },
  ) {}

  /** A discovered machine was seen (first time or again): look at it soon. Never throws. */
  seen(mac: string): void {
    if (this.stopped) return;
    this.pending.add(mac.toLowerCase());
    this.kick();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = this.drain().finally(() => {
      this.running = null;
      // A machine seen after the loop's last look and before this: go again.
      if (this.pending.size > 0) this.kick();
    });
  }

  /** Resolves when every machine seen so far has been looked at. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Takes no more machines; waits for the batch in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending.clear();
    await this.idle();
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0 && !this.stopped) {
      const macs = new Set(this.pending);
      this.pending.clear();
      try {
        await this.once(macs);
      } catch (e) {
        const fe = toFleetError(e);
        this.deps.log?.warn({ err: fe.message, code: fe.code, details: fe.details, macs: [...macs] }, 'discovery: policy auto could not accept; the machines wait and are tried again when seen');
      }
    }
  }

  private async once(macs: ReadonlySet<string>): Promise<void> {
    // The policy before the plan: planning reads and plans every discovered machine, which under
    // policy manual (the default) would be spent on each sighting for nothing (bench/discovery-inspection.ts).
    if (((await this.deps.store.settings.getCluster())?.discovery as DiscoverySpec | undefined)?.policy !== 'auto') return;
    const current = await currentPlan(this.deps.store);
    if (current.policy !== 'auto') return;
    const go = autoAcceptable(current.plan, macs);
    if (go.length === 0) return;
    const res = await acceptMachines(this.deps, { macs: go.map((p) => p.mac), expect: Object.fromEntries(go.map((p) => [p.mac, p.name])), actor: AUTO_ACTOR, via: 'policy' });
    for (const a of res.accepted) {
      this.deps.log?.info(
        { mac: a.mac, node: a.name, rule: a.rule, install: a.install ? (a.install.ok ? a.install.state : a.install.error?.message) : null },
        'discovery: policy auto accepted a machine',
      );
    }
  }
}

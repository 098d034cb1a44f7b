/**
 * What the agent reports: its inventory, the outcome of a config apply and
 * how the node booted. Each report is stored (the store writes its event row
 * with the data, in one transaction), the node is marked seen, and the facts
 * the lifecycle acts on (agent.boot, agent.applied / agent.apply_failed) are
 * then told to the conductor through the recorder.
 */
import {
  Inventory,
  RoleOutcome,
  type ReportApplyRequest,
  type ReportApplyResponse,
  type ReportBootRequest,
  type ReportBootResponse,
  type ReportInventoryRequest,
  type ReportInventoryResponse,
} from '../../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../../common/errors.js';
import { assessReport } from '../../common/inventory/diff.js';
import { assessExpect, type ExpectAssessment } from '../../common/inventory/expect.js';
import type { Inventory as InventoryView } from '../../common/inventory/types.js';
import { inventoryFromProto, inventoryFromStored } from '../../common/inventory/proto.js';
import { EVENT } from '../../common/events.js';
import { assessBoot } from './boot.js';
import { isoFromMs, MAX_FIELD, MAX_TEXT, short } from './bounds.js';
import type { AgentDeps } from './types.js';

/** Kernel command lines may carry secrets (a kickstart URL with a token, a password): keep the key, drop the value. */
export function redactCmdline(cmdline: string): string {
  return cmdline.replace(/([\w.-]*(?:token|passw(?:or)?d|secret|key|pass|pw)[\w.-]*)=([^\s&]+)/gi, '$1=<redacted>');
}

/** A role outcome as stored in the apply report ('ok', 'changed', 'failed', 'unspecified'). */
export function outcomeName(o: RoleOutcome): string {
  switch (o) {
    case RoleOutcome.ROLE_OUTCOME_OK:
      return 'ok';
    case RoleOutcome.ROLE_OUTCOME_CHANGED:
      return 'changed';
    case RoleOutcome.ROLE_OUTCOME_FAILED:
      return 'failed';
    default:
      return 'unspecified';
  }
}

export interface Reports {
  reportInventory(node: string, req: ReportInventoryRequest): Promise<ReportInventoryResponse>;
  reportApply(node: string, req: ReportApplyRequest): Promise<ReportApplyResponse>;
  reportBoot(node: string, req: ReportBootRequest): Promise<ReportBootResponse>;
}

export function createReports(deps: Pick<AgentDeps, 'store' | 'recorder' | 'limits'> & Partial<Pick<AgentDeps, 'log' | 'afterInventory'>>): Reports {
  const { store, recorder } = deps;
  const { maxApplyResults } = deps.limits;

  /** The node's latest report (or `inv`) against its profile's expect:; null when the profile expects nothing. */
  async function expectOfReport(node: string, inv?: InventoryView): Promise<ExpectAssessment | null> {
    const rec = await store.nodes.get(node);
    const profile = rec ? await store.profiles.get(rec.profile) : null;
    if (!profile?.expect) return null;
    let report = inv;
    if (!report) {
      const latest = await store.inventory.latest(node);
      if (!latest) return { status: 'unknown', reason: 'cannot check the profile\'s expect: no inventory reported yet' };
      report = inventoryFromStored(latest.inventory);
    }
    return assessExpect(profile.expect, report);
  }

  return {
    async reportInventory(node, req) {
      if (!req.inventory) throw new FleetError('request.invalid', 'the report carries no inventory');
      const inv = req.inventory;
      const now = inventoryFromProto(inv);
      // Judged against the profile's expect: here, so that the event row (and a replay of it) carries the verdict.
      const expect = await expectOfReport(node, now);
      // The event says whether the hardware changed: never against a partial report (see assessReport).
      const rec = await store.inventory.record(node, Inventory.toJSON(inv) as object, {
        actor: `node:${node}`,
        collectedAt: isoFromMs(inv.collectedAtMs),
        assess: (previous) => ({ ...assessReport(previous === null ? null : inventoryFromStored(previous), now), ...(expect ? { expect } : {}) }),
      });
      await store.nodes.markSeen(node);
      // A node in service whose hardware falls short is held (and released when it meets the profile again).
      if (expect) await recorder.recorded({ node, kind: EVENT.agentInventory, details: { id: rec.id, expect } });
      // Reconciliation with the node's BMC runs in the background: never on this call's path, never its failure.
      try {
        deps.afterInventory?.(node);
      } catch (e) {
        deps.log?.warn({ node, err: e instanceof Error ? e.message : String(e) }, 'after-inventory hook failed');
      }
      return { recordedAtMs: Date.parse(rec.reportedAt) };
    },

    async reportApply(node, req) {
      if (req.configVersion === '' || req.configVersion.length > MAX_FIELD) throw new FleetError('request.invalid', 'the apply report names no config version');
      if (req.results.length > maxApplyResults) throw new FleetError('request.invalid', `at most ${maxApplyResults} role results per report`);
      const results = req.results.map((r) => ({
        role: short(r.role, 64),
        outcome: outcomeName(r.outcome),
        message: short(r.message, MAX_TEXT),
        durationMs: r.durationMs,
      }));
      const failed = results.filter((r) => r.outcome === 'failed').map((r) => r.role);
      // The verdict on the hardware travels with a successful apply (its event row, which check-applied
      // reads, and the fact): configuring ends held when the inventory falls short of the profile's expect.
      const expect = failed.length ? null : await expectOfReport(node);
      await store.agents.recordApply(
        node,
        req.configVersion,
        failed.length > 0,
        { results, failed, startedAt: isoFromMs(req.startedAtMs), durationMs: req.durationMs, ...(expect ? { expect } : {}) },
        { actor: `node:${node}` },
      );
      await store.nodes.markSeen(node);
      // The conductor hears the roles as reported (not cut to 64 characters, as the event row has them).
      const failedRoles = req.results.filter((r) => r.outcome === RoleOutcome.ROLE_OUTCOME_FAILED).map((r) => r.role);
      await recorder.recorded({
        node,
        kind: failedRoles.length ? EVENT.agentApplyFailed : EVENT.agentApplied,
        details: { version: req.configVersion, failed: failedRoles, ...(expect ? { expect } : {}) },
      });
      return {};
    },

    async reportBoot(node, req) {
      if (!/^[A-Za-z0-9-]{1,64}$/.test(req.bootId)) throw new FleetError('request.invalid', 'the boot report carries no valid boot id');
      if (req.efi && (req.efi.bootOrder.length > 256 || req.efi.entries.length > 256)) throw new FleetError('request.invalid', 'too many EFI boot entries');
      const report: ReportBootRequest = { ...req, kernelCmdline: redactCmdline(short(req.kernelCmdline, MAX_TEXT)) };
      const assessment = assessBoot(report);
      // The image the node says it runs (its /etc/fleet/image.json): kept only when it looks like one.
      const image =
        req.image && /^sha256:[0-9a-f]{64}$/.test(req.image.digest) && /^(image|stateless|diskless)$/.test(req.image.install)
          ? { name: short(req.image.name, 64), digest: req.image.digest, install: req.image.install }
          : null;
      const isNewBoot = await store.agents.recordBoot(
        node,
        report.bootId,
        {
          uptimeMs: report.uptimeMs,
          kernel: short(report.kernel),
          kernelCmdline: report.kernelCmdline,
          rootOnLocalDisk: report.rootOnLocalDisk,
          rootSource: short(report.rootSource),
          rootFstype: short(report.rootFstype, 64),
          efi: report.efi
            ? {
                bootCurrent: short(report.efi.bootCurrent, 8),
                bootOrder: report.efi.bootOrder.map((s) => short(s, 8)),
                bootNext: short(report.efi.bootNext, 8),
                entries: report.efi.entries.map((e) => ({ id: short(e.id, 8), label: short(e.label), active: e.active })),
              }
            : null,
          assessment,
          agentVersion: short(report.agentVersion, 64),
          ...(image ? { image } : {}),
        },
        { actor: `node:${node}` },
      );
      await store.nodes.markSeen(node);
      // The fourth layer of the loop breaker: the agent says how the node booted. A repeated
      // report (same boot id, no new row) is told too, with isNewBoot false (the rules ignore it).
      await recorder.recorded({ node, kind: EVENT.agentBoot, details: { bootId: report.bootId, assessment, isNewBoot, ...(image ? { image } : {}) } });
      return {};
    },
  };
}

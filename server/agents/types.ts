/** What the agent services are built from (server/agents/index.ts). */
import type { FleetCa } from '../pki/index.js';
import type { Store } from '../store/index.js';
import type { FactRecorder } from '../lifecycle/record.js';

/** pino-compatible subset. */
export interface AgentLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AgentLimits {
  /** Refused enrolments per peer address per minute before Enroll answers rate_limited. */
  enrollFailuresPerMinute: number;
  /** Most role results per apply report. */
  maxApplyResults: number;
}

export interface AgentDeps {
  store: Store;
  ca: FleetCa;
  /** The one way in for facts: boot and apply reports tell the conductor through it. */
  recorder: FactRecorder;
  log: AgentLogger;
  /** Clock for certificate issuance and checks, and the server time answered. */
  clock: () => Date;
  limits: AgentLimits;
  /** Validity of node certificates; the PKI's default when absent. */
  nodeCertValidityDays?: number;
  /**
   * Told after each inventory report is stored (the server reconciles it with
   * the node's BMC, server/inventory/reconcile-run.ts). Must return at once
   * and never throw: the report's answer does not wait for it.
   */
  afterInventory?: (node: string) => void;
}

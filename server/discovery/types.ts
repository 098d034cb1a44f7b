/**
 * Discovery rules and plans (fleet.yaml `discovery:`, docs/discovery.md):
 * the data the pure functions of rules.ts and plan.ts take and give. No
 * behaviour here.
 *
 *   fleet.yaml discovery: ──parse──▶ DiscoverySpec (stored with the cluster settings at apply)
 *   store.discovered     ──factsOf──▶ MachineFacts ─┐
 *   store.nodes           ──takenBy──▶ Taken ────────┼─▶ planDiscovery ─▶ DiscoveryPlan
 *   DiscoverySpec.rules ─────────────────────────────┘
 */
import type { ExpectRule } from '../../common/inventory/expect.js';
import type { BmcProtocol } from '../../common/model.js';

/** manual: the operator accepts (`fleet discover --accept`); auto: a machine a rule plans is accepted when it is seen. */
export type DiscoveryPolicy = 'manual' | 'auto';
export const DISCOVERY_POLICIES: readonly DiscoveryPolicy[] = ['manual', 'auto'];

/** What accepting a machine does after the node is created: start the reinstall lifecycle, or nothing. */
export type OnAccept = 'install' | 'inventory-only';
export const ON_ACCEPT: readonly OnAccept[] = ['install', 'inventory-only'];

/**
 * What a rule matches on; every criterion given must hold (an absent match
 * matches every machine). Strings compare case-insensitively; manufacturer,
 * model and the LLDP fields take `*` and `?` globs.
 */
export interface RuleMatch {
  /**
   * Serial numbers in rack order (`serial:` or the lines of `serials_file:`):
   * the k-th serial gets the k-th name, IP and BMC address of the rule.
   */
  serials?: string[];
  /** `serials_file:` as written (relative to fleet.yaml); `serials` holds its serials. */
  serialsFile?: string;
  /** MAC prefixes, lower-case colon form, whole octets (e.g. 0c:c4:7a); any of the machine's MACs may match any of them. */
  macPrefixes?: string[];
  manufacturer?: string;
  model?: string;
  /** NIC and disk counts: a number (exactly) or a comparison (">= 2"), as in a profile's `expect:`. */
  nics?: ExpectRule;
  disks?: ExpectRule;
  /** The machine's BMC address lies in this CIDR. */
  bmcSubnet?: string;
  /** The switch and port the machine's NIC is cabled to (LLDP). */
  lldp?: { switch?: string; port?: string };
}

/** The BMC a rule plans for its machines: addresses in lockstep with the names. */
export interface RuleBmcPlan {
  addresses: string[];
  port: number;
  protocol: BmcProtocol;
  /** Name of a credential set (fleet.yaml credentials). */
  credentials: string;
  /**
   * bmc.setup: on accept the boot environment sets the BMC up in band (the
   * planned address, a fleet account with a generated password), fleet
   * verifies it out of band and only then drops `credentials` (the factory one).
   */
  setup?: { passwordLength: 16 | 20 };
}

export interface DiscoveryRule {
  name: string;
  match: RuleMatch;
  /** The names nodeset, expanded in nodeset order: consumed in order. */
  names: string[];
  /** The names nodeset as written (messages). */
  namesText: string;
  profile: string;
  /** Provisioning addresses in lockstep with `names` (the k-th name gets the k-th address); absent: the enroll path's rule. */
  ips?: string[];
  bmc?: RuleBmcPlan;
  onAccept: OnAccept;
}

/** What an inspected machine does once its report is in: wait powered on (polling the server), or power off. */
export type AfterInspect = 'wait' | 'poweroff';
export const AFTER_INSPECT: readonly AfterInspect[] = ['wait', 'poweroff'];

/** fleet.yaml `discovery:`. */
export interface DiscoverySpec {
  policy: DiscoveryPolicy;
  /** Unknown machines that netboot get the fleet boot environment in inspect mode (default true; false: the waiting script). */
  inspect?: boolean;
  /** After its report (default wait). */
  afterInspect?: AfterInspect;
  /** Seconds the inspecting boot environment listens for an LLDP frame on each linked NIC (lldp_wait; default: lldpWaitOf). */
  lldpWaitSeconds?: number;
  /** In order: the first rule that matches a machine wins. */
  rules: DiscoveryRule[];
}

/** Switches send LLDP every 30 s by default (802.1AB msgTxInterval): listening a little longer hears one. */
export const DEFAULT_LLDP_WAIT_SECONDS = 35;
export const MAX_LLDP_WAIT_SECONDS = 300;

/**
 * How long inspection listens for LLDP: discovery.lldp_wait when set; else
 * DEFAULT_LLDP_WAIT_SECONDS when a rule matches on LLDP (it needs the
 * neighbour), else 0 (not listened for: inspection is not slowed for a fact
 * nothing asks for).
 */
export function lldpWaitOf(spec: DiscoverySpec | undefined): number {
  if (spec === undefined) return 0;
  if (spec.lldpWaitSeconds !== undefined) return spec.lldpWaitSeconds;
  return spec.rules.some((r) => r.match.lldp !== undefined) ? DEFAULT_LLDP_WAIT_SECONDS : 0;
}

/**
 * What fleet knows of a discovered machine. Today the store has the boot
 * MAC, the lease address and the DHCP vendor class; an inspection report
 * (issue 13 item 1) adds the rest. A rule that needs a fact the machine
 * lacks does not match it, and the plan says which fact is missing.
 */
export interface MachineFacts {
  /** The boot MAC: the discovered machine's key. */
  mac: string;
  /** Every NIC's MAC, when inspected. */
  macs?: string[];
  /** The address of its lease on the provisioning network. */
  ip?: string;
  vendorClass?: string;
  arch?: string;
  /** When an inspection report was received; absent: none yet (missing facts are then "no inspection report yet"). */
  inspectedAt?: string;
  serial?: string;
  manufacturer?: string;
  model?: string;
  nicCount?: number;
  diskCount?: number;
  bmc?: { mac?: string; ip?: string };
  lldp?: { switch?: string; port?: string };
}

/** One machine to plan: its facts, when it was first seen (the plan's order), and whether an operator rejected it. */
export interface Candidate {
  facts: MachineFacts;
  firstSeen: string;
  rejected?: { at: string; by: string };
}

/** What existing nodes (and the management node) already hold: planned slots that collide are skipped. */
export interface Taken {
  names: ReadonlySet<string>;
  /** Provisioning address → who holds it, in words: "node thor", "the management node". */
  ips: ReadonlyMap<string, string>;
  /** BMC endpoint (address:port) → who holds it, in words: "node thor". */
  bmcs: ReadonlyMap<string, string>;
}

/** The outcome of one rule on one machine. */
export type MatchResult =
  | {
      kind: 'match';
      /** For a rule with serials: the machine's serial's position (0-based), which decides its name. */
      serialIndex?: number;
    }
  | { kind: 'no'; reason: string }
  /** No criterion fails, but some need a fact the machine lacks: undecided until that fact is known. */
  | { kind: 'unknown'; missing: string[]; reason: string };

export interface PlannedBmc {
  address: string;
  port: number;
  protocol: BmcProtocol;
  credentials: string;
  setup?: { passwordLength: 16 | 20 };
}

export interface PlannedMachine {
  mac: string;
  /** The rule that gives the name (the first that matches). */
  rule: string;
  /** Later rules that match too (the first wins). */
  alsoMatched: string[];
  name: string;
  ip: string | null;
  bmc: PlannedBmc | null;
  profile: string;
  onAccept: OnAccept;
  serial: string | null;
  /** Slots skipped on the way (an address another node holds), one line each. */
  notes: string[];
}

/**
 * unmatched: every rule says no. waiting: a rule that comes first needs a
 * fact the machine lacks (decided once it is known). refused: a rule matches
 * but gives nothing (names exhausted, its slot taken, a serial seen twice).
 */
export type UnplannedStatus = 'unmatched' | 'waiting' | 'refused';

export interface UnplannedMachine {
  mac: string;
  status: UnplannedStatus;
  /** One line: why. */
  reason: string;
  /** The rule it matched (refused) or waits on (waiting); null when unmatched. */
  rule: string | null;
}

export interface RejectedMachine {
  mac: string;
  rejectedAt: string;
  rejectedBy: string;
}

/** Per machine, in the plan's order (first seen, then MAC). */
export interface DiscoveryPlan {
  planned: PlannedMachine[];
  unplanned: UnplannedMachine[];
  rejected: RejectedMachine[];
}

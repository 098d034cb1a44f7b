/**
 * fleet's Prometheus metrics (docs/operations.md "Monitoring",
 * docs/decisions/0016): one prom-client registry per server, fed at the
 * seams that already see everything, never by code sprinkled through the
 * modules:
 *
 * - the event log: the store tells `observeEvents` the rows of every
 *   committed transaction (store.events.observe), from which come the
 *   transitions, failures by step, time in each state, install durations,
 *   discovery events, boot-loop suspects, inventory reports, and a count per
 *   event kind;
 * - the BMC operation (`server/bmc/operation.ts`): one sample per node and
 *   operation as its result lands (`observeBmc`, through the provider
 *   context every caller shares);
 * - the DHCP lease consumer (`observeLease`, netboot/service.ts);
 * - the boot face: an onSend/onResponse hook counts requests and body bytes
 *   per tree (`instrumentBootApp`);
 * - at scrape time (`exposition`), gauges read from the store with grouped
 *   counts (nodes by state and profile, nodes past their state's deadline,
 *   node flags, the event log's rows, the database size) and from the gRPC
 *   service (agents with an open Watch stream).
 *
 * Pure label rules live in labels.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { EVENT } from '../../common/events.js';
import { RESTING_STATES, S, TRANSIENT_STATES } from '../lifecycle/states.js';
import type { CommittedEvent, Store } from '../store/index.js';
import { bodyBytes, bootTreeOf, codeLabel, kindLabel, nameLabel, OTHER, stateLabel } from './labels.js';

/** One BMC operation on one node, as it landed. */
export interface BmcSample {
  /** The provider that answered last (ipmi, redfish, ipmitool), else the node's protocol. */
  protocol: string;
  /** The action (retry.ts): power.on, power.status, bootdev.set, info, ... */
  operation: string;
  /** ok, unconfirmed, or the error code without its `bmc.` prefix (auth_failed, timeout, ...). */
  outcome: string;
  seconds: number;
}

/** What a DHCP lease event came to (netboot/discovery/consumer.ts). */
export interface LeaseSample {
  action: string;
  outcome: string;
}

const DISCOVERY_KINDS: ReadonlySet<string> = new Set([
  EVENT.machineDiscovered,
  EVENT.machineAccepted,
  EVENT.machineRejected,
  EVENT.machineUnrejected,
  EVENT.machineInspected,
  EVENT.inspectionRefused,
  EVENT.bmcDiscovered,
  EVENT.bmcScanned,
]);

const PROTOCOLS: ReadonlySet<string> = new Set(['ipmi', 'redfish', 'ipmitool']);
const LEASE_ACTIONS: ReadonlySet<string> = new Set(['add', 'old', 'del']);
const LEASE_OUTCOMES: ReadonlySet<string> = new Set(['known', 'discovered', 'skipped', 'failed']);

/** Seconds: a state can last from a second (a step) to weeks (ready). */
export const STATE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400, 604800];
/** Seconds from a reinstall request to the node's next resting state. */
export const INSTALL_BUCKETS = [60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400];
/** Seconds of one BMC operation (retries and provider fallbacks included). */
export const BMC_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

function detailsOf(row: CommittedEvent): Record<string, unknown> {
  if (row.details === null) return {};
  try {
    const d = JSON.parse(row.details) as unknown;
    return d !== null && typeof d === 'object' && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function millisOf(iso: string): number | undefined {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
}

export interface ScrapeSources {
  /** Nodes whose agent holds a Watch stream open (grpc.watching()). */
  agentsConnected?: () => number;
}

export interface FleetMetricsOptions {
  /** The clock of the deadline check (tests pin it). Default: the system clock. */
  clock?: () => Date;
  /** Node.js process metrics (CPU, memory, event loop lag, ...). Default true. */
  processMetrics?: boolean;
}

export class FleetMetrics {
  readonly registry = new Registry();
  private readonly clock: () => Date;
  private sources: ScrapeSources = {};
  /** Per node: the state it is in and since when (ms), to time it when it leaves. */
  private readonly inState = new Map<string, { state: string; since: number }>();
  /** Per node: when its current reinstall began (it entered pxe-armed), ms. */
  private readonly installStart = new Map<string, number>();

  private readonly nodes: Gauge<'state' | 'profile'>;
  private readonly overdue: Gauge<'state'>;
  private readonly flags: Gauge<'flag'>;
  private readonly eventRows: Gauge;
  private readonly dbBytes: Gauge;
  private readonly agents: Gauge;
  private readonly transitions: Counter<'from' | 'to'>;
  private readonly failures: Counter<'state' | 'step'>;
  private readonly stepFailures: Counter<'step' | 'code'>;
  private readonly stateSeconds: Histogram<'state'>;
  private readonly installSeconds: Histogram<'outcome'>;
  private readonly bmcSeconds: Histogram<'protocol' | 'operation' | 'outcome'>;
  private readonly leases: Counter<'action' | 'outcome'>;
  private readonly discovery: Counter<'kind'>;
  private readonly loopSuspects: Counter;
  private readonly inventoryReports: Counter;
  private readonly events: Counter<'kind'>;
  private readonly bootRequests: Counter<'tree' | 'code'>;
  private readonly bootBytes: Counter<'tree'>;

  constructor(opts: FleetMetricsOptions = {}) {
    this.clock = opts.clock ?? (() => new Date());
    const registers = [this.registry];
    this.nodes = new Gauge({ name: 'fleet_nodes', help: 'Nodes by lifecycle state and profile.', labelNames: ['state', 'profile'], registers });
    this.overdue = new Gauge({
      name: 'fleet_nodes_overdue',
      help: "Nodes still in a state whose deadline has passed (the conductor's timer should have failed them).",
      labelNames: ['state'],
      registers,
    });
    this.flags = new Gauge({ name: 'fleet_node_flags', help: 'Nodes carrying each flag (bmc-mismatch, ...).', labelNames: ['flag'], registers });
    this.eventRows = new Gauge({ name: 'fleet_store_event_rows', help: 'Rows in the event log (append-only).', registers });
    this.dbBytes = new Gauge({ name: 'fleet_store_database_bytes', help: 'Size of the SQLite database file in bytes, without its WAL.', registers });
    this.agents = new Gauge({ name: 'fleet_agents_connected', help: 'Agents holding their Watch stream open.', registers });
    this.transitions = new Counter({ name: 'fleet_lifecycle_transitions_total', help: 'Lifecycle state changes by state left and state entered.', labelNames: ['from', 'to'], registers });
    this.failures = new Counter({
      name: 'fleet_lifecycle_failures_total',
      help: 'Nodes moved to failed, by the state they failed in and the step (or install, configure, a timed-out state) that failed.',
      labelNames: ['state', 'step'],
      registers,
    });
    this.stepFailures = new Counter({
      name: 'fleet_lifecycle_step_failures_total',
      help: 'Failed attempts of lifecycle steps (retried or not), by step and error code.',
      labelNames: ['step', 'code'],
      registers,
    });
    this.stateSeconds = new Histogram({
      name: 'fleet_lifecycle_state_duration_seconds',
      help: 'Time nodes spent in a lifecycle state, observed when they leave it.',
      labelNames: ['state'],
      buckets: STATE_BUCKETS,
      registers,
    });
    this.installSeconds = new Histogram({
      name: 'fleet_install_duration_seconds',
      help: "Time from a reinstall request (pxe-armed) to the node's next resting state, by that state (ready, failed, held, enrolled: cancelled).",
      labelNames: ['outcome'],
      buckets: INSTALL_BUCKETS,
      registers,
    });
    this.bmcSeconds = new Histogram({
      name: 'fleet_bmc_operation_duration_seconds',
      help: 'BMC operations per node (retries and fallbacks included), by protocol, operation and outcome (ok, unconfirmed, or the error: auth_failed, timeout, ...).',
      labelNames: ['protocol', 'operation', 'outcome'],
      buckets: BMC_BUCKETS,
      registers,
    });
    this.leases = new Counter({ name: 'fleet_dhcp_lease_events_total', help: "dnsmasq lease events by action (add, old, del) and what fleet made of them.", labelNames: ['action', 'outcome'], registers });
    this.discovery = new Counter({ name: 'fleet_discovery_events_total', help: 'Discovery events (machines seen, accepted, rejected, inspected; BMCs found by scan).', labelNames: ['kind'], registers });
    this.loopSuspects = new Counter({ name: 'fleet_boot_loop_suspects_total', help: 'Nodes that came back to the netboot path after their install (boot.loop_suspect).', registers });
    this.inventoryReports = new Counter({ name: 'fleet_agent_inventory_reports_total', help: 'Inventory reports agents sent that were kept.', registers });
    this.events = new Counter({ name: 'fleet_events_total', help: 'Rows appended to the event log, by kind.', labelNames: ['kind'], registers });
    this.bootRequests = new Counter({ name: 'fleet_boot_http_requests_total', help: 'Requests to the boot face by tree (static trees, script, kickstart, ...) and status code.', labelNames: ['tree', 'code'], registers });
    this.bootBytes = new Counter({ name: 'fleet_boot_http_response_bytes_total', help: 'Body bytes of boot face answers written whole, by tree.', labelNames: ['tree'], registers });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Where the scrape-time gauges that are not in the store come from (set once the services run). */
  setSources(sources: ScrapeSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** Starts following the store's event log; returns the function that stops it. */
  async attach(store: Store): Promise<() => void> {
    const stop = store.events.observe((rows) => this.observeEvents(rows));
    // The states nodes are in now, so the first change of each after a restart is timed too.
    for (const n of await store.metrics.statesSince()) {
      const since = millisOf(n.since);
      if (since !== undefined && !this.inState.has(n.name)) this.inState.set(n.name, { state: n.state, since });
    }
    return stop;
  }

  /** The committed event rows of one transaction. */
  observeEvents(rows: readonly CommittedEvent[]): void {
    for (const row of rows) this.observeEvent(row);
  }

  private observeEvent(row: CommittedEvent): void {
    this.events.inc({ kind: kindLabel(row.kind) });
    if (DISCOVERY_KINDS.has(row.kind)) this.discovery.inc({ kind: row.kind });
    const at = millisOf(row.time);
    switch (row.kind) {
      case EVENT.stateChanged:
        this.observeTransition(row, at);
        break;
      case EVENT.nodeAdded:
        if (row.node !== null && at !== undefined) this.inState.set(row.node, { state: row.to_state ?? S.enrolled, since: at });
        break;
      case EVENT.nodeRemoved:
        if (row.node !== null) {
          this.inState.delete(row.node);
          this.installStart.delete(row.node);
        }
        break;
      case EVENT.stepFailed: {
        const d = detailsOf(row);
        this.stepFailures.inc({ step: nameLabel(d['step']), code: codeLabel(d['code']) });
        break;
      }
      case EVENT.loopSuspect:
        this.loopSuspects.inc();
        break;
      case EVENT.agentInventory:
        this.inventoryReports.inc();
        break;
    }
  }

  private observeTransition(row: CommittedEvent, at: number | undefined): void {
    const from = stateLabel(row.from_state);
    const to = stateLabel(row.to_state);
    this.transitions.inc({ from, to });
    if (to === S.failed) {
      const step = detailsOf(row)['step'];
      this.failures.inc({ state: from, step: step === undefined ? OTHER : nameLabel(step) });
    }
    if (row.node === null || at === undefined) return;
    const was = this.inState.get(row.node);
    if (was && was.state === row.from_state) this.stateSeconds.observe({ state: from }, Math.max(0, at - was.since) / 1000);
    this.inState.set(row.node, { state: row.to_state ?? OTHER, since: at });
    if (to === S.pxeArmed) this.installStart.set(row.node, at);
    else if ((RESTING_STATES as readonly string[]).includes(to)) {
      const start = this.installStart.get(row.node);
      if (start !== undefined) {
        this.installSeconds.observe({ outcome: to }, Math.max(0, at - start) / 1000);
        this.installStart.delete(row.node);
      }
    }
  }

  observeBmc(s: BmcSample): void {
    this.bmcSeconds.observe(
      { protocol: PROTOCOLS.has(s.protocol) ? s.protocol : OTHER, operation: nameLabel(s.operation), outcome: nameLabel(s.outcome) },
      Math.max(0, s.seconds),
    );
  }

  observeLease(s: LeaseSample): void {
    this.leases.inc({ action: LEASE_ACTIONS.has(s.action) ? s.action : OTHER, outcome: LEASE_OUTCOMES.has(s.outcome) ? s.outcome : OTHER });
  }

  /** Counts every request of the boot face and its body bytes, by tree. Call before its routes are registered. */
  instrumentBootApp(app: FastifyInstance): void {
    const sent = new WeakMap<FastifyRequest, number>();
    app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      sent.set(req, bodyBytes(req.method, payload, reply.getHeader('content-length')));
      return payload;
    });
    app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
      const tree = bootTreeOf(req.routeOptions.url);
      this.bootRequests.inc({ tree, code: String(reply.statusCode) });
      // Bytes of answers written whole: a stream cut by a client that went away mid-file is not counted.
      const bytes = sent.get(req) ?? 0;
      if (bytes > 0 && reply.raw.writableEnded) this.bootBytes.inc({ tree }, bytes);
    });
  }

  /** Reads the scrape-time gauges, then renders the registry in the Prometheus text format. */
  async exposition(store: Store): Promise<string> {
    const [byState, overdue, flags, rows, bytes] = await Promise.all([
      store.metrics.nodesByStateProfile(),
      store.metrics.overdueByState(this.clock().toISOString()),
      store.metrics.flagsByName(),
      store.metrics.eventRows(),
      store.metrics.databaseBytes(),
    ]);
    this.nodes.reset();
    for (const r of byState) this.nodes.inc({ state: stateLabel(r.state), profile: r.profile }, r.count);
    this.overdue.reset();
    for (const s of TRANSIENT_STATES) this.overdue.set({ state: s }, 0);
    for (const r of overdue) this.overdue.inc({ state: stateLabel(r.state) }, r.count);
    this.flags.reset();
    for (const r of flags) this.flags.inc({ flag: nameLabel(r.flag) }, r.count);
    this.eventRows.set(rows);
    this.dbBytes.set(bytes);
    this.agents.set(this.sources.agentsConnected?.() ?? 0);
    return this.registry.metrics();
  }
}

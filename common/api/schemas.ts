/**
 * The REST contract (/api/v1): one TypeBox definition per request body,
 * query string and response. Each is plain JSON Schema at run time (the
 * server hands it to fastify: ajv validates requests with it, the response
 * serializer keeps only the fields it lists, @fastify/swagger publishes it)
 * and a TypeScript type through `Static` (the server's handlers return it,
 * the CLI reads it). Nothing here carries a secret.
 *
 * Response objects marked open (`additionalProperties: true`) pass every
 * field through, as they always did; their listed fields are the ones
 * clients may rely on.
 */
import Type, { type Static, type TSchema } from 'typebox';
import type { BmcProtocol, NodeBmcSpec } from '../model.js';
import type { Inventory, InventoryChange, InventorySection } from '../inventory/types.js';
import { BOOT_DEVICES, BOOT_MODES, POWER_OPS } from './values.js';

// ------------------------------------------------------------------ helpers

/** `{type: [T, 'null']}`: the serializer writes it directly, where an anyOf is checked value by value. */
function Nullable<T extends TSchema & { type: string }>(t: T) {
  return Type.Unsafe<Static<T> | null>({ ...t, type: [t.type, 'null'] });
}

/** A string of a fixed set: `{type: 'string', enum}` (TypeBox's own union is an anyOf of consts). */
function StringEnum<const V extends readonly string[]>(values: V, options: { default?: V[number]; description?: string } = {}) {
  return Type.Unsafe<V[number]>({ type: 'string', enum: [...values], ...options });
}

/** A string whose values a common/ type names (no enum at run time: the schema is what it always was). */
function StringOf<T extends string>(options: { description?: string } = {}) {
  return Type.Unsafe<T>({ type: 'string', ...options });
}

/** An object whose unlisted fields pass through. */
function Open<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties, { additionalProperties: true });
}

const Str = Type.String();
const NullableStr = Nullable(Type.String());
const Strings = Type.Array(Type.String());

// ------------------------------------------------------------------ shared parts

/** The longest nodeset expression a request may carry. */
const Nodeset = Type.String({ minLength: 1, maxLength: 65536 });

export const NodesetQuery = Type.Object(
  { nodeset: Type.Optional(Type.String({ minLength: 1, maxLength: 65536, description: 'clustershell nodeset, e.g. valkyrie[01-02]' })) },
  { additionalProperties: false },
);
export type NodesetQuery = Static<typeof NodesetQuery>;

export const NodeParams = Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }) });
export type NodeParams = Static<typeof NodeParams>;

/** Per-node results of an action on a nodeset. */
const Summary = Type.Object({ total: Type.Integer(), ok: Type.Integer(), failed: Type.Integer() });

// ------------------------------------------------------------------ nodes, events

export const ApiNode = Type.Object({
  name: Str,
  profile: Str,
  ip: NullableStr,
  macs: Strings,
  bmc: Type.Union([
    Type.Object({
      address: Str,
      port: Type.Integer(),
      protocol: StringOf<BmcProtocol>(),
      credentials: Type.String({ description: 'name of the credential set (never the secret)' }),
    }),
    Type.Null(),
  ]),
  pet: Type.Boolean(),
  origin: StringEnum(['config', 'enroll'], { description: 'config: declared in fleet.yaml; enroll: fleet enroll (apply never removes it)' }),
  state: Str,
  stateSince: Str,
  armed: Type.Boolean(),
  lastSeen: NullableStr,
  createdAt: Str,
  updatedAt: Str,
  /** Conditions to look at, each with its reason, e.g. bmc-mismatch (fleet inventory reconcile); absent from older servers. */
  flags: Type.Optional(Type.Array(Type.Object({ flag: Str, reason: Str, since: Str }))),
});
export type ApiNode = Static<typeof ApiNode>;

export const NodesResponse = Type.Object({
  nodes: Type.Array(ApiNode),
  /** Names of the requested nodeset that are not in the store. */
  missing: Strings,
  missingFolded: Str,
});
export type NodesResponse = Static<typeof NodesResponse>;

export const EventsQuery = Type.Object(
  {
    nodeset: Type.Optional(Nodeset),
    order: Type.Optional(
      StringEnum(['asc', 'desc'], { default: 'asc', description: 'asc: oldest first, page on with after; desc: newest first ("tail"), page on with before' }),
    ),
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'cursor for order=asc: the nextAfter of the previous page' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'cursor for order=desc: the nextBefore of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuery>;

export const ApiEvent = Type.Object({
  id: Type.Integer(),
  time: Str,
  node: NullableStr,
  kind: Str,
  fromState: NullableStr,
  toState: NullableStr,
  actor: Str,
  details: Type.Unsafe<Record<string, unknown> | null>({ type: ['object', 'null'], additionalProperties: true }),
});
export type ApiEvent = Static<typeof ApiEvent>;

export const EventsResponse = Type.Object({
  events: Type.Array(ApiEvent),
  /** order=asc: pass as ?after= to get the next page; null when this page is the last (always null with order=desc). */
  nextAfter: Nullable(Type.Integer()),
  /** order=desc: pass as ?before= to get the next (older) page; null when this page is the last (always null with order=asc). */
  nextBefore: Nullable(Type.Integer()),
});
export type EventsResponse = Static<typeof EventsResponse>;

// ------------------------------------------------------------------ apply

export const ApplyRequest = Type.Object(
  {
    yaml: Type.String({ maxLength: 16 * 1024 * 1024, description: 'the fleet.yaml text' }),
    source: Type.Optional(Type.String({ maxLength: 4096, description: 'file name used in error messages' })),
    secrets: Type.Unsafe<Record<string, string>>({
      type: 'object',
      additionalProperties: Type.String({ maxLength: 4096 }),
      description: 'credential set name -> secret, read by the client from the files/env the YAML names',
    }),
    dryRun: Type.Optional(Type.Boolean({ default: false })),
    prune: Type.Optional(Type.Boolean({ default: false, description: 'also remove pets and nodes that are mid-operation' })),
    confirmRemovals: Type.Optional(
      Type.Array(Type.String({ maxLength: 253 }), {
        maxItems: 100000,
        description: 'the nodes the client confirmed to remove; a plan removing any other node is refused',
      }),
    ),
    files: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        maxProperties: 1000,
        additionalProperties: Type.String({ maxLength: 4 * 1024 * 1024 }),
        description: 'the files the YAML names (discovery serials_file), path as written -> text, read by the client relative to fleet.yaml',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ApplyRequest = Static<typeof ApplyRequest>;

const Change = <T extends TSchema>(t: T) => Type.Object({ from: t, to: t });

/** The plan as the API returns it: names and field changes, no keyed secret digests. */
export const ApplyPlan = Open({
  settings: Open({ changed: Type.Boolean(), sections: Strings }),
  credentials: Open({
    added: Strings,
    changed: Type.Array(Open({ name: Str, secretChanged: Type.Boolean(), username: Type.Optional(Change(Str)) })),
    removed: Strings,
  }),
  profiles: Open({ added: Strings, changed: Type.Array(Open({ name: Str, fields: Strings })), removed: Strings, kept: Strings }),
  nodes: Open({
    added: Strings,
    changed: Type.Array(
      Open({
        name: Str,
        changes: Open({
          profile: Type.Optional(Change(Str)),
          ip: Type.Optional(Change(NullableStr)),
          macs: Type.Optional(Change(Strings)),
          bmc: Type.Optional(Change(Type.Unsafe<NodeBmcSpec | null>({ type: ['object', 'null'], additionalProperties: true }))),
          pet: Type.Optional(Change(Type.Boolean())),
        }),
      }),
    ),
    removed: Strings,
    unchanged: Type.Integer(),
    /** Gone from fleet.yaml but pets or mid-operation: removed only with prune. */
    held: Type.Array(Open({ name: Str, state: Str, pet: Type.Boolean(), reasons: Type.Array(StringEnum(['pet', 'busy'])) })),
    /** Not declared in fleet.yaml (enrolled): left alone. */
    kept: Strings,
    /** Enrolled nodes fleet.yaml now declares. */
    adopted: Strings,
  }),
});
export type ApplyPlan = Static<typeof ApplyPlan>;

export const ApplyResponse = Type.Object({
  changed: Type.Boolean(),
  applied: Type.Boolean(),
  /** Human diff. */
  text: Str,
  plan: ApplyPlan,
});
export type ApplyResponse = Static<typeof ApplyResponse>;

// ------------------------------------------------------------------ BMC

export { POWER_OPS, BOOT_DEVICES, BOOT_MODES };
export type PowerOp = (typeof POWER_OPS)[number];
export type BootDeviceName = (typeof BOOT_DEVICES)[number];

const BmcCommon = {
  nodeset: Nodeset,
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
};

export const PowerRequest = Type.Object(
  { ...BmcCommon, op: StringEnum(POWER_OPS), stagger: Type.Optional(Type.String({ maxLength: 32 })) },
  { additionalProperties: false },
);
export type PowerRequest = Static<typeof PowerRequest>;

export const BootdevRequest = Type.Object(
  {
    ...BmcCommon,
    device: StringEnum(BOOT_DEVICES),
    persistent: Type.Optional(Type.Boolean({ default: false })),
    mode: Type.Optional(StringEnum(BOOT_MODES, { default: 'auto' })),
  },
  { additionalProperties: false },
);
export type BootdevRequest = Static<typeof BootdevRequest>;

export const BmcInfoRequest = Type.Object(BmcCommon, { additionalProperties: false });
export type BmcInfoRequest = Static<typeof BmcInfoRequest>;

/** fleet bmc rotate: a new BMC account per node, verified out of band before it is recorded. */
export const BmcRotateRequest = Type.Object(
  {
    nodeset: Nodeset,
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 600_000 })),
    passwordLength: Type.Optional(Type.Integer({ minimum: 16, maximum: 20, description: '20 (IPMI 2.0 maximum, default) or 16 for BMCs that authenticate only 16 bytes; nothing between' })),
  },
  { additionalProperties: false },
);
export type BmcRotateRequest = Static<typeof BmcRotateRequest>;

export const BmcRotateResult = Open({
  node: Str,
  ok: Type.Boolean(),
  account: Type.Optional(Str),
  slot: Type.Optional(Type.Integer()),
  retired: Type.Optional(Type.Union([Type.Null(), Open({ id: Type.Integer(), name: Str, stillEnabled: Type.Boolean() })])),
  warning: Type.Optional(Str),
  error: Type.Optional(Open({ code: Str, message: Str, stage: Str })),
  durationMs: Type.Number(),
});
export type BmcRotateResult = Static<typeof BmcRotateResult>;
export const BmcRotateResponse = Type.Object({ results: Type.Array(BmcRotateResult), summary: Summary });
export type BmcRotateResponse = Static<typeof BmcRotateResponse>;

const PowerState = StringEnum(['on', 'off']);

/** One node's outcome of a BMC operation. */
export const BmcResult = Open({
  node: Str,
  ok: Type.Boolean(),
  /** power: the state after the operation (status reads it; on/off imply it). */
  power: Type.Optional(PowerState),
  /** info: the BMC's identity. */
  identity: Type.Optional(
    Open({
      manufacturer: Type.Optional(Str),
      model: Type.Optional(Str),
      serial: Type.Optional(Str),
      uuid: Type.Optional(Str),
      bmcFirmware: Type.Optional(Str),
      macs: Strings,
      /** What could not be read and why (e.g. a FRU that does not parse). */
      notes: Type.Optional(Strings),
    }),
  ),
  /** bootdev: what was asked, and (drivers that read it back) what the BMC stored and the quirks seen. */
  bootdev: Type.Optional(
    Open({
      device: Str,
      persistent: Type.Boolean(),
      stored: Type.Optional(Open({ target: Type.Optional(Str), enabled: Type.Optional(Str), mode: Type.Optional(Str) })),
      quirks: Type.Optional(Strings),
    }),
  ),
  provider: Type.Optional(Str),
  error: Type.Optional(Open({ code: Str, message: Str, details: Type.Optional(Type.Unknown()) })),
  /** A once-only action got no answer and was not sent again: `power` is what was read back (null: unreadable). */
  unconfirmed: Type.Optional(Open({ power: Type.Union([PowerState, Type.Null()]) })),
  bmc: Type.Optional(Str),
  /** Per attempt: which provider answered or failed, how long it took, ok or the error code. */
  attempts: Type.Array(Open({ provider: Str, durationMs: Type.Number(), outcome: Str, message: Type.Optional(Str) })),
  durationMs: Type.Number(),
});
export type BmcResult = Static<typeof BmcResult>;

export const BmcResponse = Type.Object({ results: Type.Array(BmcResult), summary: Summary });
export type BmcResponse = Static<typeof BmcResponse>;

// ------------------------------------------------------------------ lifecycle

export const ReinstallRequest = Type.Object(
  {
    nodeset: Nodeset,
    profile: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    stagger: Type.Optional(Type.String({ maxLength: 32, description: 'at most N nodes start per interval: "10/30s", "10/30" (seconds)' })),
    force: Type.Optional(Type.Boolean({ default: false, description: 'also reinstall pets, and reinstall even when a check the profile depends on fails (fleet doctor)' })),
  },
  { additionalProperties: false },
);
export type ReinstallRequest = Static<typeof ReinstallRequest>;

export const CancelRequest = Type.Object({ nodeset: Nodeset }, { additionalProperties: false });
export type CancelRequest = Static<typeof CancelRequest>;

/** One node's outcome of reinstall or cancel. */
export const NodeActionResult = Open({
  node: Str,
  ok: Type.Boolean(),
  /** State after the action. */
  state: Type.Optional(Str),
  from: Type.Optional(Str),
  /** Stagger: the step starts no earlier than this (ISO). */
  notBefore: Type.Optional(Str),
  /** Something the operator must know (a node without a BMC: power is manual, PXE-boot it by hand). */
  note: Type.Optional(Str),
  error: Type.Optional(Open({ code: Str, message: Str })),
});
export type NodeActionResult = Static<typeof NodeActionResult>;

export const LifecycleActionResponse = Type.Object({ results: Type.Array(NodeActionResult), summary: Summary });
export type LifecycleActionResponse = Static<typeof LifecycleActionResponse>;

/** `POST /api/v1/nodes/:name/adopt` (fleet adopt): the one line to run as root on the machine. */
export const AdoptResponse = Type.Object({
  node: Str,
  /** State after the adoption (adopting) and before it. */
  state: Str,
  from: Str,
  /** The line to paste as root on the machine; it holds the one-time token, shown only here, once. */
  line: Str,
  /** When the token (and the wait in adopting) expires (ISO). */
  expiresAt: Str,
  /** Where the script is served, its sha256 (in the line) and the agent bundle's (in the script). */
  scriptUrl: Str,
  scriptSha256: Str,
  agentSha256: Str,
});
export type AdoptResponse = Static<typeof AdoptResponse>;

export const StatusQuery = Type.Object({ nodeset: Type.Optional(Nodeset) }, { additionalProperties: false });
export type StatusQuery = Static<typeof StatusQuery>;

export const NodeStatus = Open({
  name: Str,
  profile: Str,
  pet: Type.Boolean(),
  state: Str,
  /** When the node entered its state (ISO). */
  since: Str,
  inStateSeconds: Type.Number(),
  armed: Type.Boolean(),
  /** When the state times out (ISO), null: no timer. */
  deadline: NullableStr,
  /** Seconds until the timeout (negative: overdue), null: no timer. */
  timeoutInSeconds: Nullable(Type.Number()),
  /** What a node in a transient state waits for. */
  waitingFor: NullableStr,
  /** When the current (or last) reinstall started. */
  runStartedAt: NullableStr,
  lastEvent: Nullable(Open({ id: Type.Integer(), time: Str, kind: Str, fromState: NullableStr, toState: NullableStr, actor: Str })),
  /** For failed nodes: which step and why. */
  failure: Nullable(Open({ step: Str, reason: Str, time: Str })),
  /** e.g. boot-loop-suspect: the node came back to the netboot path after its install. */
  flags: Strings,
  flagReasons: Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: true }),
  /** The profile's install method: kickstart, image or stateless. */
  install: Type.Optional(Str),
  /** The fleet image the node's agent last reported it runs (its /etc/fleet/image.json), with when; null: none reported. */
  image: Type.Optional(Nullable(Open({ name: Str, digest: Str, install: Str, reportedAt: Str }))),
});
export type NodeStatus = Static<typeof NodeStatus>;

export const StatusResponse = Type.Object({
  nodes: Type.Array(NodeStatus),
  missing: Strings,
  missingFolded: Str,
  summary: Open({
    total: Type.Integer(),
    byState: Type.Unsafe<Record<string, number>>({ type: 'object', additionalProperties: true }),
    failed: Type.Integer(),
    flagged: Type.Integer(),
  }),
});
export type StatusResponse = Static<typeof StatusResponse>;

/** The longest life of one event stream, seconds (clients reconnect). */
export const MAX_STREAM_SECONDS = 3600;

export const EventStreamQuery = Type.Object(
  {
    nodeset: Type.Optional(Nodeset),
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'start after this event id (default: now; or the Last-Event-ID header)' })),
    kinds: Type.Optional(Type.String({ maxLength: 2048, description: 'comma-separated event kinds' })),
    maxEvents: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    maxSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STREAM_SECONDS })),
  },
  { additionalProperties: false },
);
export type EventStreamQuery = Static<typeof EventStreamQuery>;

// ------------------------------------------------------------------ inventory

/** An agent's report, in the agent's own shape (common/inventory/types.ts), passed through. */
const InventoryObject = Type.Unsafe<Inventory>({ type: 'object', additionalProperties: true });

export const InventoryRow = Type.Object({ node: Str, reportedAt: NullableStr, inventory: Type.Union([InventoryObject, Type.Null()]) });
export type InventoryRow = Static<typeof InventoryRow>;

export const InventoryResponse = Type.Object({
  /** Every node of the nodeset (all nodes without one) that the store knows, in name order; inventory null when it never reported. */
  nodes: Type.Array(InventoryRow),
  /** Names of the nodeset the store does not know. */
  missing: Strings,
  missingFolded: Str,
});
export type InventoryResponse = Static<typeof InventoryResponse>;

/** How many reports a history answer holds by default, and at most (the store keeps its own in step: see the route). */
export const DEFAULT_INVENTORY_HISTORY = 20;
export const MAX_INVENTORY_HISTORY = 500;

export const InventoryHistoryQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_INVENTORY_HISTORY, default: DEFAULT_INVENTORY_HISTORY })) },
  { additionalProperties: false },
);
export type InventoryHistoryQuery = Static<typeof InventoryHistoryQuery>;

export const InventoryHistoryResponse = Type.Object({
  node: Str,
  reports: Type.Array(Open({ id: Type.Integer(), reportedAt: Str, collectedAt: NullableStr, digest: Str, inventory: InventoryObject })),
});
export type InventoryHistoryResponse = Static<typeof InventoryHistoryResponse>;

const ReportRef = Type.Union([Type.Object({ id: Type.Integer(), reportedAt: Str }), Type.Null()]);

export const InventoryDiffResponse = Type.Object({
  node: Str,
  /** The older of the two reports compared (null: fewer than two reports). */
  before: ReportRef,
  after: ReportRef,
  /** Why the two were not compared, e.g. "baseline is partial (memory unknown): no comparison"; null when they were (or there are fewer than two). */
  refused: NullableStr,
  /** Sections the newer report does not know (a probe failed there): not compared, not changes. */
  notCompared: Type.Array(Type.Object({ section: StringOf<InventorySection>(), reason: Str })),
  changes: Type.Array(
    Type.Object({
      kind: StringOf<InventoryChange['kind']>(),
      subject: Str,
      before: Type.Optional(Str),
      after: Type.Optional(Str),
      message: Str,
    }),
  ),
});
export type InventoryDiffResponse = Static<typeof InventoryDiffResponse>;

// ------------------------------------------------------------------ netboot: render, export, discovery, enroll

const TEXT_ANSWER = 'with Accept: application/json; otherwise the text itself as text/plain';

export const RenderIpxeQuery = Type.Object({ platform: Type.Optional(StringEnum(['pcbios', 'efi'])) }, { additionalProperties: false });
export type RenderIpxeQuery = Static<typeof RenderIpxeQuery>;

export const RenderResponse = Type.Object(
  {
    node: Str,
    kind: StringEnum(['ipxe', 'kickstart']),
    /** For ipxe: the decision's kind (install, localboot, discover, not-implemented). */
    decision: Type.Optional(Str),
    text: Str,
  },
  { description: TEXT_ANSWER },
);
export type RenderResponse = Static<typeof RenderResponse>;

export const EXPORT_FORMATS = ['hosts', 'dnsmasq', 'ansible-inventory', 'clustershell-groups'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const ExportParams = Type.Object({ format: StringEnum(EXPORT_FORMATS) });
export type ExportParams = Static<typeof ExportParams>;

export const ExportResponse = Type.Object({ format: Str, text: Str }, { description: TEXT_ANSWER });
export type ExportResponse = Static<typeof ExportResponse>;

export const ApiDiscovered = Type.Object({
  mac: Str,
  ip: NullableStr,
  hostname: NullableStr,
  vendorClass: NullableStr,
  arch: NullableStr,
  pxe: Type.Boolean(),
  firstSeen: Str,
  lastSeen: Str,
  /** When the last inspection report came (fleet boot environment, inspect mode); null: never inspected. */
  inspectedAt: NullableStr,
  /** The last inspection report (server/discovery/inspection.ts Inspection): SMBIOS, CPUs, memory, disks, NICs, the BMC. */
  inspection: Type.Unknown(),
  /** This MAC is the BMC of that inspected machine (its own DHCP lease), not a machine to name. */
  bmcOf: NullableStr,
});
export type ApiDiscovered = Static<typeof ApiDiscovered>;

export const DiscoveredResponse = Type.Object({ machines: Type.Array(ApiDiscovered) });
export type DiscoveredResponse = Static<typeof DiscoveredResponse>;

export const EnrollRequest = Type.Object(
  {
    mac: Type.String({ maxLength: 64 }),
    name: Type.String({ maxLength: 253 }),
    profile: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type EnrollRequest = Static<typeof EnrollRequest>;

export const EnrollResponse = Type.Object({
  node: ApiNode,
  /** Why the discovered address was not kept as the node's IP, when it was not. */
  ipNote: Type.Optional(Str),
});
export type EnrollResponse = Static<typeof EnrollResponse>;

// ------------------------------------------------------------------ discovery rules (fleet discover, docs/discovery.md)

/** What a discovery rule gives a machine. */
export const ApiPlannedMachine = Type.Object({
  mac: Str,
  /** The rule that gives the name: the first that matches. */
  rule: Str,
  /** Later rules that match too (the first wins). */
  alsoMatched: Strings,
  name: Str,
  ip: NullableStr,
  bmc: Type.Union([Type.Object({ address: Str, port: Type.Integer(), protocol: StringOf<BmcProtocol>(), credentials: Str }), Type.Null()]),
  profile: Str,
  onAccept: StringEnum(['install', 'inventory-only'] as const),
  serial: NullableStr,
  /** Slots skipped on the way (an address another node holds). */
  notes: Strings,
});
export type ApiPlannedMachine = Static<typeof ApiPlannedMachine>;

/** A machine the plan names nothing: no rule matches, a rule waits for a fact, or a matching rule cannot give a name. */
export const ApiUnplannedMachine = Type.Object({
  mac: Str,
  status: StringEnum(['unmatched', 'waiting', 'refused'] as const),
  reason: Str,
  rule: NullableStr,
});
export type ApiUnplannedMachine = Static<typeof ApiUnplannedMachine>;

/** GET /api/v1/discover/plan */
export const DiscoverPlanResponse = Type.Object({
  policy: StringEnum(['manual', 'auto'] as const),
  /** Rule names in order; empty when fleet.yaml has no discovery rules. */
  rules: Strings,
  planned: Type.Array(ApiPlannedMachine),
  unplanned: Type.Array(ApiUnplannedMachine),
  rejected: Type.Array(Type.Object({ mac: Str, rejectedAt: Str, rejectedBy: Str })),
});
export type DiscoverPlanResponse = Static<typeof DiscoverPlanResponse>;

/** POST /api/v1/discover/accept */
export const DiscoverAcceptRequest = Type.Object(
  {
    macs: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100000, description: 'the machines to accept; absent: every planned machine' })),
    expect: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        maxProperties: 100000,
        additionalProperties: Type.String({ maxLength: 253 }),
        description: 'MAC -> the name the client was shown: refused, nothing changed, when the plan now gives another',
      }),
    ),
    force: Type.Optional(Type.Boolean({ default: false, description: 'accept even when a check an install profile depends on fails (fleet doctor)' })),
    stagger: Type.Optional(Type.String({ maxLength: 32, description: 'install starts: at most N nodes per interval, "10/30s"' })),
  },
  { additionalProperties: false },
);
export type DiscoverAcceptRequest = Static<typeof DiscoverAcceptRequest>;

export const DiscoverAcceptResponse = Type.Object({
  accepted: Type.Array(
    Type.Object({
      ...ApiPlannedMachine.properties,
      /** on_accept install: the reinstall's start, as fleet reinstall reports it; null for inventory-only, or while the BMC is set up first. */
      install: Type.Union([NodeActionResult, Type.Null()]),
      /** bmc.setup: the in-band set-up waits for the machine's boot environment; the install (if any) starts once the new account is verified. */
      bmcSetup: Type.Optional(Type.Object({ state: StringEnum(['pending'] as const), account: Str, slot: Type.Integer(), address: Str })),
    }),
  ),
  /** ok: accepted and, for install, the reinstall started. */
  summary: Summary,
});
export type DiscoverAcceptResponse = Static<typeof DiscoverAcceptResponse>;

/** POST /api/v1/discover/reject */
export const DiscoverRejectRequest = Type.Object({ macs: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 100000 }) }, { additionalProperties: false });
export type DiscoverRejectRequest = Static<typeof DiscoverRejectRequest>;

export const DiscoverRejectResponse = Type.Object({
  /** already: it was rejected before (nothing changed). */
  rejected: Type.Array(Type.Object({ mac: Str, rejectedAt: Str, already: Type.Boolean() })),
});
export type DiscoverRejectResponse = Static<typeof DiscoverRejectResponse>;

/** POST /discover/unreject (the body is DiscoverRejectRequest's). */
export const DiscoverUnrejectResponse = Type.Object({
  /** already: it was not rejected (nothing changed). */
  unrejected: Type.Array(Type.Object({ mac: Str, already: Type.Boolean() })),
});
export type DiscoverUnrejectResponse = Static<typeof DiscoverUnrejectResponse>;

// ------------------------------------------------------------------ BMC discovery by scan (server/discovery/scan*.ts)

/**
 * POST /discover/bmc. Ranges and limits are checked by the scan's planner
 * (server/discovery/scan-input.ts), which says why a value is refused: an
 * IPv4 CIDR with host bits zero or one address; at most a /16 unless
 * `force` (never more than a /12); ports 1-65535; concurrency 1-1024;
 * timeoutMs 100-60000.
 */
export const BmcScanRequest = Type.Object(
  {
    subnet: Type.String({ minLength: 1, maxLength: 64, description: 'IPv4 CIDR, e.g. 10.10.100.0/24, or one address' }),
    protocol: Type.Optional(StringEnum(['ipmi', 'redfish', 'both'], { description: 'default both' })),
    ipmiPort: Type.Optional(Type.Integer({ description: 'UDP port of RMCP, default 623' })),
    redfishPort: Type.Optional(Type.Integer({ description: 'TCP port of HTTPS, default 443' })),
    concurrency: Type.Optional(Type.Integer({ description: 'addresses probed at a time, default 64' })),
    timeoutMs: Type.Optional(Type.Integer({ description: 'per address and protocol, default 3000' })),
    force: Type.Optional(Type.Boolean({ description: 'scan more than a /16 (up to a /12)' })),
  },
  { additionalProperties: false },
);
export type BmcScanRequest = Static<typeof BmcScanRequest>;

const NullableBool = Nullable(Type.Boolean());
const NullableInt = Nullable(Type.Integer());

/** What IPMI said before any session (the presence pong, Get Channel Auth Caps). */
const IpmiFindingFields = {
  port: Type.Integer(),
  notes: Strings,
  pong: Type.Union([Open({ iana: Type.Integer(), oem: Type.Integer(), ipmi: Type.Boolean(), entities: Type.Integer(), interactions: Type.Integer() }), Type.Null()]),
  versions: Strings,
  authTypes: Strings,
  channel: NullableInt,
  anonymousLogin: NullableBool,
  nullUsernames: NullableBool,
  kgSet: NullableBool,
  perMessageAuthDisabled: NullableBool,
  userLevelAuthDisabled: NullableBool,
  oemId: NullableInt,
  enterprise: NullableStr,
};

/** What the anonymous Redfish service root said; the certificate's SHA-256 was seen, not trusted. */
const RedfishFindingFields = {
  port: Type.Integer(),
  notes: Strings,
  fingerprint: NullableStr,
  rootRead: Type.Boolean(),
  uuid: NullableStr,
  vendor: NullableStr,
  product: NullableStr,
  redfishVersion: NullableStr,
  name: NullableStr,
};

const SCAN_VERDICTS = ['bmc', 'other', 'silent'] as const;

export const BmcScanHost = Type.Object({
  address: Str,
  /** bmc: answered as a BMC; other: answered, not as a BMC (see the notes). */
  verdict: StringEnum(SCAN_VERDICTS),
  /** A BMC this scan found for the first time (a bmc.discovered event was written). */
  new: Type.Boolean(),
  ipmi: Type.Union([Open({ verdict: StringEnum(SCAN_VERDICTS), ...IpmiFindingFields }), Type.Null()]),
  redfish: Type.Union([Open({ verdict: StringEnum(SCAN_VERDICTS), ...RedfishFindingFields }), Type.Null()]),
});
export type BmcScanHost = Static<typeof BmcScanHost>;

export const BmcScanResponse = Type.Object({
  subnet: Str,
  /** e.g. ["ipmi/623", "redfish/443"] */
  protocols: Strings,
  concurrency: Type.Integer(),
  timeoutMs: Type.Integer(),
  retries: Type.Integer(),
  /** The longest this scan could have taken. */
  boundMs: Type.Integer(),
  startedAt: Str,
  durationMs: Type.Integer(),
  summary: Type.Object({
    addresses: Type.Integer(),
    answered: Type.Integer(),
    silent: Type.Integer(),
    bmcs: Type.Integer(),
    other: Type.Integer(),
    new: Type.Integer(),
  }),
  /** Every address that answered (BMCs and others), in address order. */
  hosts: Type.Array(BmcScanHost),
  /** Silent addresses as ranges: ["10.0.0.2-10.0.0.6"]. */
  silent: Strings,
  /** Addresses not probed because the server stopped during the scan. */
  notScanned: Strings,
});
export type BmcScanResponse = Static<typeof BmcScanResponse>;

export const ApiDiscoveredBmc = Type.Object({
  address: Str,
  ipmi: Type.Union([Open(IpmiFindingFields), Type.Null()]),
  redfish: Type.Union([Open(RedfishFindingFields), Type.Null()]),
  uuid: NullableStr,
  vendor: NullableStr,
  product: NullableStr,
  tlsFingerprint: NullableStr,
  firstSeen: Str,
  lastSeen: Str,
  /** Nodes whose BMC is at this address (fleet.yaml). */
  nodes: Strings,
});
export type ApiDiscoveredBmc = Static<typeof ApiDiscoveredBmc>;

export const DiscoveredBmcsResponse = Type.Object({ bmcs: Type.Array(ApiDiscoveredBmc) });
export type DiscoveredBmcsResponse = Static<typeof DiscoveredBmcsResponse>;

// ------------------------------------------------------------------ inventory reconciliation with the BMC

/** POST /api/v1/inventory/reconcile: the nodeset, and the same fan-out limits as the other BMC operations. */
export const ReconcileRequest = Type.Object(BmcCommon, { additionalProperties: false });
export type ReconcileRequest = Static<typeof ReconcileRequest>;

export const RECONCILE_STATUSES = ['match', 'mismatch', 'unknown'] as const;

export const ReconcileCheck = Open({
  field: StringEnum(['uuid', 'serial', 'macs']),
  /** Canonical values; null: unknown on that side (absent, a placeholder, a section the agent could not read). */
  agent: NullableStr,
  bmc: NullableStr,
  result: StringEnum(RECONCILE_STATUSES),
  note: Type.Optional(Str),
});
export type ReconcileCheck = Static<typeof ReconcileCheck>;

export const ReconcileResult = Open({
  node: Str,
  /** match: the BMC is this machine's; mismatch: it describes another machine (the node is flagged bmc-mismatch); unknown: nothing decisive to compare. */
  status: StringEnum(RECONCILE_STATUSES),
  reason: Str,
  checks: Type.Array(ReconcileCheck),
  provider: Type.Optional(Str),
  /** What the BMC said. */
  bmc: Type.Optional(
    Open({
      manufacturer: Type.Optional(Str),
      model: Type.Optional(Str),
      serial: Type.Optional(Str),
      uuid: Type.Optional(Str),
      macs: Strings,
      notes: Type.Optional(Strings),
    }),
  ),
  /** Why the BMC was not read (status unknown). */
  error: Type.Optional(Open({ code: Str, message: Str })),
  /** What happened to the node's bmc-mismatch flag. */
  flag: StringEnum(['raised', 'updated', 'cleared', 'unchanged']),
  /** The agent report compared (its time); null: none yet. */
  reportedAt: NullableStr,
});
export type ReconcileResult = Static<typeof ReconcileResult>;

export const ReconcileResponse = Type.Object({
  results: Type.Array(ReconcileResult),
  summary: Type.Object({ total: Type.Integer(), match: Type.Integer(), mismatch: Type.Integer(), unknown: Type.Integer(), failed: Type.Integer() }),
  /** Names of the nodeset the store does not know (not reconciled). */
  missing: Strings,
  missingFolded: Str,
});
export type ReconcileResponse = Static<typeof ReconcileResponse>;

/** A node flag as the node API shows it (e.g. bmc-mismatch, with its reason). */
export type ApiNodeFlag = NonNullable<ApiNode['flags']>[number];

// ------------------------------------------------------------------ slurm

/** POST /slurm/rotate-key: a new munge key is stored; the key itself is never in an answer. */
export const SlurmRotateKeyResponse = Type.Object({
  /** The store's name of the secret (slurm.munge-key). */
  secret: Str,
  rotatedAt: Str,
  /** The nodes whose profile has the slurm role: each receives the new key at its next config fetch. */
  nodes: Type.Array(Str),
  nodesFolded: Str,
});
export type SlurmRotateKeyResponse = Static<typeof SlurmRotateKeyResponse>;

/** GET /groups: the node groups `@name` and `@profile:NAME` resolve to now. */
export const GroupsResponse = Type.Object({
  groups: Type.Array(
    Type.Object({
      /** What follows '@': `compute`, `profile:compute`. */
      name: Str,
      /** `fleet` (fleet.yaml groups: and groups_file) or `profile`. */
      source: Str,
      /** The nodeset as written (a profile's: its nodes). */
      definition: Str,
      nodes: Str,
      count: Type.Integer(),
    }),
  ),
});
export type GroupsResponse = Static<typeof GroupsResponse>;
// ------------------------------------------------------------------ users (issue 17)

/** The roles of API users, weakest first (server/auth/roles.ts). */
export const USER_ROLES = ['read-only', 'operator', 'admin'] as const;

export const UserParams = Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }) });
export type UserParams = Static<typeof UserParams>;

/** A token as listings show it: its id (first 8 hex digits of its SHA-256) and times, never the token. */
export const UserTokenInfo = Type.Object({
  id: Str,
  createdAt: Str,
  lastUsedAt: Nullable(Type.String()),
  expiresAt: Nullable(Type.String()),
});
export type UserTokenInfo = Static<typeof UserTokenInfo>;

export const ApiUser = Type.Object({
  name: Str,
  role: StringEnum(USER_ROLES),
  disabled: Type.Boolean(),
  createdAt: Str,
  tokens: Type.Array(UserTokenInfo),
});
export type ApiUser = Static<typeof ApiUser>;

/** GET /users */
export const UsersResponse = Type.Object({ users: Type.Array(ApiUser) });
export type UsersResponse = Static<typeof UsersResponse>;

/** POST /users: a user and its first token. expires: a duration (30m, 12h, 90d, 4w) or an ISO date; absent: never. */
export const UserAddRequest = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    role: StringEnum(USER_ROLES),
    expires: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);
export type UserAddRequest = Static<typeof UserAddRequest>;

/** POST /users/:name/tokens: a new token; revokeOthers deletes the user's other tokens in the same step. */
export const UserTokenRequest = Type.Object(
  {
    revokeOthers: Type.Optional(Type.Boolean()),
    expires: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);
export type UserTokenRequest = Static<typeof UserTokenRequest>;

/** POST /users and POST /users/:name/tokens: the token, in this answer only (the server keeps its SHA-256). */
export const UserTokenResponse = Type.Object({
  user: Str,
  role: StringEnum(USER_ROLES),
  token: Str,
  tokenId: Str,
  expiresAt: Nullable(Type.String()),
  /** How many of the user's other tokens were revoked. */
  revoked: Type.Integer(),
});
export type UserTokenResponse = Static<typeof UserTokenResponse>;

/** DELETE /users/:name */
export const UserRemoveResponse = Type.Object({ removed: Str });
export type UserRemoveResponse = Static<typeof UserRemoveResponse>;

/** POST /users/:name/disable, /enable */
export const UserDisableResponse = Type.Object({ user: Str, disabled: Type.Boolean(), changed: Type.Boolean() });
export type UserDisableResponse = Static<typeof UserDisableResponse>;

// ------------------------------------------------------------------ timeline

/** GET /timeline: the reinstall timeline (the dashboard's /ui/timeline picture; `fleet timeline`). */
export const TimelineQuery = Type.Object(
  {
    nodeset: Type.Optional(Nodeset),
    since: Type.Optional(Type.String({ maxLength: 40, description: 'fit (default: the span of the last 24 h of transitions), a duration back from now (2h, 7d), or an ISO time' })),
    until: Type.Optional(Type.String({ maxLength: 40, description: 'a duration back from now, or an ISO time (default now)' })),
  },
  { additionalProperties: false },
);
export type TimelineQuery = Static<typeof TimelineQuery>;

export const TimelineResponse = Type.Object({
  /** The picture, an SVG document (no XML declaration). */
  svg: Str,
  nodes: Type.Integer({ minimum: 0 }),
  failures: Type.Integer({ minimum: 0 }),
  /** The window drawn (ISO). */
  since: Str,
  until: Str,
  /** More transitions than one picture reads: it stops early. */
  truncated: Type.Boolean(),
});
export type TimelineResponse = Static<typeof TimelineResponse>;

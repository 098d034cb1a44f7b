/**
 * Public record types of the store: what the API and CLI show. None of them
 * carries a secret.
 */
import type { BmcProtocol, ClusterSpec, NodeBmcSpec, RedfishAuth } from '../model.js';
import type { EventKind as CatalogueKind } from '../../common/events.js';
import type { Inspection } from '../discovery/inspection.js';

/**
 * A lifecycle state name. The closed set and the transition table belong to
 * server/lifecycle; the store records whatever the conductor decides.
 */
export type NodeState = string;

/**
 * Where a node came from: `config` (declared in fleet.yaml and applied) or
 * `enroll` (`fleet enroll` of a discovered machine; not in fleet.yaml).
 * Apply removes only `config` nodes; declaring an enrolled node in fleet.yaml
 * adopts it (its origin becomes `config`).
 */
export type NodeOrigin = 'config' | 'enroll';
export const NODE_ORIGINS: readonly NodeOrigin[] = ['config', 'enroll'];

export interface NodeRecord {
  name: string;
  profile: string;
  ip: string | null;
  /** Boot NICs, primary first. */
  macs: string[];
  bmc?: NodeBmcSpec;
  pet: boolean;
  state: NodeState;
  stateSince: string;
  /** When the current state times out (conductor timer); null: none. */
  stateDeadline: string | null;
  armed: boolean;
  lastSeen: string | null;
  /** Optimistic-concurrency counter, bumped by every change except lastSeen. */
  generation: number;
  /** Where the node came from; apply removes only `config` nodes. */
  origin: NodeOrigin;
  createdAt: string;
  updatedAt: string;
}

export interface FieldChange<T> {
  from: T;
  to: T;
}

/** Field-level difference between two NodeSpecs (only changed fields are present). */
export interface NodeChanges {
  profile?: FieldChange<string>;
  ip?: FieldChange<string | null>;
  macs?: FieldChange<string[]>;
  bmc?: FieldChange<NodeBmcSpec | null>;
  pet?: FieldChange<boolean>;
}

/**
 * Every kind fleet writes is in the catalogue (common/events.ts); the store
 * itself accepts any non-empty kind (it is the log, not the vocabulary).
 */
export type EventKind = CatalogueKind | (string & {});

export interface EventRecord {
  id: number;
  /** ISO-8601 UTC with milliseconds. */
  time: string;
  node: string | null;
  kind: EventKind;
  fromState: string | null;
  toState: string | null;
  actor: string;
  cause: string | null;
  /** Secret-free structured details. */
  details: unknown;
}

export interface NewEvent {
  node?: string | null;
  kind: EventKind;
  fromState?: string | null;
  toState?: string | null;
  actor: string;
  cause?: string | null;
  details?: unknown;
}

export interface EventQuery {
  /** One node's events. */
  node?: string;
  /** Events of any of these nodes (the caller expands nodesets). */
  nodes?: string[];
  kinds?: string[];
  /** ISO time, inclusive. */
  since?: string;
  /** Cursor for order 'asc': events with id > afterId. */
  afterId?: number;
  /** Cursor for order 'desc': events with id < beforeId. */
  beforeId?: number;
  /** Default 100, at most 1000. */
  limit?: number;
  /** 'asc' (default): oldest first, for tailing. 'desc': newest first, for "recent history". */
  order?: 'asc' | 'desc';
}

export interface EventPage {
  events: EventRecord[];
  /** Pass as afterId ('asc') or beforeId ('desc') for the next page; null when this page is the last. */
  nextCursor: number | null;
}

export interface CredentialInfo {
  name: string;
  username: string;
  createdAt: string;
  updatedAt: string;
}

export interface RevealedCredential {
  name: string;
  username: string;
  secret: string;
}

export interface BmcEndpointRecord {
  node: string;
  address: string;
  port: number;
  protocol: BmcProtocol;
  credentials: string;
  /** Pinned SHA-256 certificate fingerprint (trust on first use), if any. */
  tlsFingerprint: string | null;
  /** Redfish: the ComputerSystem Id named in fleet.yaml (blade chassis); null: the BMC's only system. */
  system: string | null;
  /** Redfish auth mode; null: auto. */
  auth: RedfishAuth | null;
  /** Redfish: seconds to wait for PowerState after a Reset; null: the default. */
  powerWait: number | null;
  /** After fleet bmc rotate: the per-node credential set the BMC logs in with (rotated.NODE); null: `credentials`. */
  rotatedCredentials: string | null;
  /** Provider that answered last (e.g. 'ipmi', 'ipmitool'). */
  lastProvider: string | null;
  lastAnswerAt: string | null;
}

export interface DiscoveredMachine {
  mac: string;
  ip: string | null;
  hostname: string | null;
  vendorClass: string | null;
  arch: string | null;
  pxe: boolean;
  firstSeen: string;
  lastSeen: string;
  /** Node that declares this MAC, if any. */
  node: string | null;
  /** When an operator rejected it (fleet discover --reject) and who; null: not rejected. */
  rejectedAt: string | null;
  rejectedBy: string | null;
  /** The last inspection report (fleet boot environment, inspect mode) and when it came; null: never inspected. */
  inspection: Inspection | null;
  inspectedAt: string | null;
}

export interface DiscoveryObservation {
  mac: string;
  ip?: string | null;
  hostname?: string | null;
  vendorClass?: string | null;
  arch?: string | null;
  pxe?: boolean;
}

export interface LockRecord {
  node: string;
  owner: string;
  acquiredAt: string;
  expiresAt: string;
}

export interface IssuedToken {
  /** The plaintext token (stored only hashed, and sealed with the data dir key). */
  token: string;
  node: string;
  purpose: string;
  expiresAt: string;
}

/**
 * Cluster-level settings as applied: the ClusterSpec without its nodes,
 * profiles and credentials (those have their own tables). Sections added to
 * ClusterSpec later (netboot, server, ...) are kept as they come.
 */
export type ClusterSettings = Omit<ClusterSpec, 'nodes' | 'profiles' | 'credentials'> & Record<string, unknown>;

/** Who did it and why, on every write. */
export interface WriteContext {
  actor: string;
  cause?: string;
}

/**
 * JSON shapes of the REST API (/api/v1), shared by the server routes and the
 * CLI. They never carry secrets.
 */
import type { BmcProtocol } from '../model.js';
import type { NodeChanges } from '../store/types.js';

export interface ApiNode {
  name: string;
  profile: string;
  ip: string | null;
  macs: string[];
  bmc: { address: string; port: number; protocol: BmcProtocol; credentials: string } | null;
  pet: boolean;
  /** Where the node came from: config (fleet.yaml) or enroll (fleet enroll; apply never removes it). */
  origin: 'config' | 'enroll';
  state: string;
  stateSince: string;
  armed: boolean;
  lastSeen: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NodesResponse {
  nodes: ApiNode[];
  /** Names of the requested nodeset that are not in the store. */
  missing: string[];
  missingFolded: string;
}

export interface ApiEvent {
  id: number;
  time: string;
  node: string | null;
  kind: string;
  fromState: string | null;
  toState: string | null;
  actor: string;
  details: Record<string, unknown> | null;
}

export interface EventsResponse {
  events: ApiEvent[];
  /** Pass as ?after= to get the next page; null when this page is the last. */
  nextAfter: number | null;
}

export interface ApplyRequest {
  yaml: string;
  source?: string;
  /** Credential name -> secret, read by the CLI from the files/env named in the YAML. */
  secrets: Record<string, string>;
  dryRun: boolean;
  /** Also remove pets and nodes that are mid-operation (without it such a plan is refused). */
  prune?: boolean;
  /** The nodes the client confirmed to remove: a plan that removes any other node is refused. */
  confirmRemovals?: string[];
}

export interface ApplyResponse {
  changed: boolean;
  applied: boolean;
  /** Human diff. */
  text: string;
  plan: {
    settings: { changed: boolean; sections: string[] };
    credentials: { added: string[]; changed: { name: string; secretChanged: boolean; username?: { from: string; to: string } }[]; removed: string[] };
    profiles: { added: string[]; changed: { name: string; fields: string[] }[]; removed: string[]; kept: string[] };
    nodes: {
      added: string[];
      changed: { name: string; changes: NodeChanges }[];
      removed: string[];
      unchanged: number;
      /** Gone from fleet.yaml but pets or mid-operation: removed only with prune. */
      held: { name: string; state: string; pet: boolean; reasons: ('pet' | 'busy')[] }[];
      /** Not declared in fleet.yaml (enrolled): left alone. */
      kept: string[];
      /** Enrolled nodes fleet.yaml now declares. */
      adopted: string[];
    };
  };
}

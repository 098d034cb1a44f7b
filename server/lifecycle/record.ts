/**
 * The one way in for facts. A service that learns something about a node
 * (the boot endpoints: a script or kickstart fetch, an install callback; the
 * agent service: a boot or apply report) calls `record(fact)`: the fact's
 * event row is written, then the conductor is told (facts.ts says what the
 * fact means in the node's state). The write's failure is the caller's; the
 * conductor's failure is logged, never answered to the node: the event row
 * is already there, and the conductor replays the log's facts when it
 * recovers the node (at its next start).
 *
 * Some facts are stored by the store in the same transaction as the data
 * they carry (the agent's boot id, its apply report); their services call
 * `recorded(fact)` after that write, which only tells the conductor.
 */
import type { EventKind } from '../../common/events.js';
import type { Store } from '../store/index.js';
import { isFactKind, type Details } from './facts.js';

export interface Fact {
  node: string;
  kind: EventKind;
  details: Details;
  /** Who reported it (e.g. 'netboot', 'agent'); written on the event row. */
  actor: string;
  cause?: string;
}

/** What the conductor offers the recorder (Conductor.signal). */
export interface FactListener {
  signal(node: string, kind: string, details: Details): Promise<unknown>;
}

export interface RecorderLogger {
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface FactRecorder {
  /** Writes the fact's event row, then tells the conductor when the kind is a fact. */
  record(fact: Fact): Promise<void>;
  /** The row was written with its data by the store: only tell the conductor. */
  recorded(fact: Pick<Fact, 'node' | 'kind' | 'details'>): Promise<void>;
}

export function createRecorder(deps: { store: Store; listener?: FactListener; logger?: RecorderLogger }): FactRecorder {
  const tell = async (f: Pick<Fact, 'node' | 'kind' | 'details'>): Promise<void> => {
    if (!deps.listener || !isFactKind(f.kind)) return;
    try {
      await deps.listener.signal(f.node, f.kind, f.details);
    } catch (err) {
      deps.logger?.error({ err, node: f.node, kind: f.kind }, 'the conductor failed on a fact; its event row stays and is replayed at the next recovery');
    }
  };
  return {
    async record(f) {
      await deps.store.events.append({ node: f.node, kind: f.kind, actor: f.actor, ...(f.cause ? { cause: f.cause } : {}), details: f.details });
      await tell(f);
    },
    recorded: tell,
  };
}

/**
 * Reads of a node's event log that the conductor decides by: where the
 * current state and run began, and what came after. The log, not memory, is
 * what a restarted conductor knows (DESIGN §6).
 */
import type { EventRecord, Store } from '../store/index.js';
import { RUN_START_STATES } from './states.js';
import { EVENT } from '../../common/events.js';

/** The event that put the node in its current state. */
export async function lastStateChange(store: Store, name: string): Promise<EventRecord | undefined> {
  return (await store.events.newest({ node: name, kinds: [EVENT.stateChanged] }))[0];
}

/** Events of the node after id (oldest first; at most 1000: a state collects far fewer). */
export async function eventsAfter(store: Store, name: string, afterId: number): Promise<EventRecord[]> {
  return (await store.events.list({ node: name, afterId, limit: 1000 })).events;
}

/** The reinstall or adoption that started the node's current run: the last entry into pxe-armed or adopting. */
export async function runStart(store: Store, name: string): Promise<EventRecord | undefined> {
  return (await store.events.newest({ node: name, kinds: [EVENT.stateChanged], toStates: [...RUN_START_STATES] }))[0];
}

/** The stagger slot a state change recorded (ms), or 0 when it has none. Pure. */
export function notBeforeOf(entry: EventRecord | undefined): number {
  const nb = (entry?.details as { notBefore?: unknown } | null)?.notBefore;
  const ms = typeof nb === 'string' ? Date.parse(nb) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}

import type { Store } from '../../server/store/index.js';

/**
 * Puts nodes where the kickstart's %post finds them when it enrols the agent:
 * `installing` and armed (an agent enrols only during an install, see
 * server/agents/enroll-policy.ts). Written straight to the store, as the
 * conductor would have.
 */
export async function inInstall(store: Store, ...nodes: string[]): Promise<void> {
  for (const node of nodes) {
    await store.nodes.setState(node, 'installing', { actor: 'test' });
    await store.nodes.setArmed(node, true, { actor: 'test' });
  }
}

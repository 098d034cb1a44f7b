/**
 * server/netboot/discovery: dnsmasq lease events → the store.
 * hook (server/netboot/hook) → FIFO → DiscoveryListener → DiscoveryConsumer → store.
 */
export { DiscoveryListener } from './listener.js';
export type { DiscoveryListenerOptions, DiscoveryListenerStats } from './listener.js';
export { DiscoveryConsumer } from './consumer.js';
export type { DiscoveryConsumerOptions, DiscoveryConsumerStats, DiscoveryOutcome, DiscoverySink } from './consumer.js';
export { parseHookLine, archOf } from './protocol.js';
export type { LeaseEvent, LeaseAction, ClientArch, ParseResult } from './protocol.js';

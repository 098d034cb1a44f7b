/**
 * The pure IPMI v2.0 / RMCP+ codecs in one import. No I/O here: see
 * transport.ts (UDP), session.ts (RAKP state machine) and client.ts (commands).
 */
export * from './reader.js';
export * from './crypto.js';
export * from './packet.js';
export * from './message.js';
export * from './rakp.js';
export * from './commands.js';
export * from './fru.js';

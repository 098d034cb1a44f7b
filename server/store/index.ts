/**
 * server/store: the only place fleet writes SQL (DESIGN §1, §6).
 * See docs/decisions/0001-store-sqlite-kysely.md.
 */
export { openStore, openDataDir, DB_FILE } from './store.js';
export { lockDataDir, describeOwner, LOCK_FILE, LOCK_OWNER_FILE } from './lock.js';
export type { DataDirLock, LockOwner } from './lock.js';
export { storageFailure, mapStorageError } from './sqlite.js';
export type { Store, StoreOptions, StoreLocation, DataDir } from './store.js';
export { loadOrCreateSecretKey, SECRET_KEY_FILE, SECRET_KEY_BYTES } from './crypto.js';
export { MIGRATIONS } from './migrations.js';
export { canonicalJson } from './json.js';
export { diffNodeSpec, hasChanges, normalizeNodeSpec, nodeSpecOf, sameBmc } from './spec.js';
export { clusterSettingsOf, settingsSectionChanges, CLUSTER_SETTINGS_KEY } from './repos/settings.js';
export { profileFieldChanges } from './repos/profiles.js';
export { DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT } from './repos/events.js';
export type { NodeRepository, NodeFilter, UpsertResult, SetStateOptions, SetArmedOptions } from './repos/nodes.js';
export type { ProfileRepository, ProfileUpsertResult } from './repos/profiles.js';
export type { CredentialRepository, CredentialUpsertResult } from './repos/credentials.js';
export type { EventRepository } from './repos/events.js';
export type { SettingsRepository } from './repos/settings.js';
export type { BmcRepository } from './repos/bmc.js';
export type { DiscoveredRepository } from './repos/discovered.js';
export type { DiscoveredBmcRepository, DiscoveredBmc } from './repos/discovered-bmcs.js';
export type { TokenRepository } from './repos/tokens.js';
export type { UserRepository, UserRecord, UserTokenInfo, TokenCandidate, TokenDigest } from './repos/users.js';
export { USER_NAME } from './repos/users.js';
export type { LockRepository } from './repos/locks.js';
export type { SecretRepository } from './repos/secrets.js';
export type { AgentRepository, AgentRecord, AgentIdentity, Enrolment } from './repos/agents.js';
export type { InventoryRepository, InventoryReport } from './repos/inventory.js';
export { DEFAULT_INVENTORY_HISTORY, MAX_INVENTORY_HISTORY } from './repos/inventory.js';
export type { NodeFlagRepository, NodeFlag, NodeFlagName, ReconcileRecord, FlagChange } from './repos/flags.js';
export { NODE_FLAG } from './repos/flags.js';
export type { MetricsRepository, StateProfileCount, StateCount, NodeStateSince } from './repos/metrics.js';
export type { CommittedEvent, EventObserver } from './context.js';
export type * from './types.js';
export { NODE_ORIGINS } from './types.js';
export type { EngineInfo } from './store.js';
export type { SqliteEngineInfo } from './sqlite.js';
export type { PostgresEngineInfo, PostgresLocation } from './postgres.js';
export { checkStoreUrl, redactStoreUrl } from './url.js';
export type { Engine } from './context.js';

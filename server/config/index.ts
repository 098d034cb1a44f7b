/**
 * server/config — fleet.yaml schema, pure parser and file loader.
 * Reference of every key: docs/configuration.md.
 */
export { parseConfig, isConfigInvalid, BMC_PROTOCOLS, DEFAULT_BMC_PORT, type ParseOptions } from './parse.js';
export { formatConfigIssues, configIssuesOf, type ConfigIssue, type ConfigInvalidDetails } from './issues.js';
export { loadConfigFile, resolveSecret, resolveSecretDetailed, MAX_CONFIG_BYTES, MAX_SECRET_BYTES, type LoadedConfig, type ResolvedSecret } from './load.js';
export * as patterns from '../../common/patterns.js';

/**
 * server/grpc: the agent service (proto/fleet/v1/agent.proto) over TLS.
 * See docs/agent.md and docs/decisions/0004-agent-credentials.md.
 */
export { startGrpcServer, defaultServerNames, redactCmdline, DEFAULT_AGENT_PORT, DEFAULT_GRPC_LIMITS } from './server.js';
export type { AgentGrpcServer, AgentCommandKind, AgentHooks, GrpcLimits, GrpcLogger, GrpcServerOptions } from './server.js';
export { toGrpcError } from './errors.js';
export { errorCodeOf, ERROR_CODE_TRAILER } from '../../common/wire.js';
export { nodeConfig, ROLE_ORDER, ROLES_SCHEMA } from './config.js';
export type { NodeConfig } from './config.js';
export { assessBoot } from './boot.js';
export type { BootAssessment, FirmwareVia } from './boot.js';
export { agentServerCredentials } from './credentials.js';

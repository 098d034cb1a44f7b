/**
 * server/grpc: the agent service (proto/fleet/v1/agent.proto) over TLS, an
 * adapter over server/agents. See docs/agent.md and
 * docs/decisions/0004-agent-credentials.md.
 */
export { startGrpcServer, defaultServerNames, DEFAULT_AGENT_PORT, DEFAULT_GRPC_LIMITS } from './server.js';
export type { AgentGrpcServer, AgentCommandKind, GrpcLimits, GrpcLogger, GrpcServerOptions } from './server.js';
export { toGrpcError } from './errors.js';
export { errorCodeOf, ERROR_CODE_TRAILER } from '../../common/wire.js';
export { agentServerCredentials } from './credentials.js';

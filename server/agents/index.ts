/**
 * server/agents: what the agent service does, without the wire (issue 10:
 * edges are adapters). Enrolment, reports, config, heartbeats and the
 * command stream take decoded proto messages and plain values (the node an
 * authenticated call comes from, the peer address), answer proto messages,
 * and throw FleetErrors from the one catalogue; server/grpc decodes,
 * authenticates the TLS peer, maps errors to gRPC status and binds.
 * See docs/agent.md and docs/decisions/0004-agent-credentials.md.
 */
import { createRecorder } from '../lifecycle/record.js';
import { createAuthenticator } from './auth.js';
import { createCommands, type Commands } from './commands.js';
import { createConfigService, type ConfigService } from './config.js';
import { createEnrolment, type Enrolment } from './enrol.js';
import { createReports, type Reports } from './reports.js';
import type { AgentDeps, AgentLimits, AgentLogger } from './types.js';

export interface AgentServices extends Enrolment, Reports, ConfigService {
  /** The node a peer certificate (DER) authenticates: it must be the node's current one. */
  authenticate(certDer: Uint8Array | undefined): Promise<string>;
  commands: Commands;
}

export const DEFAULT_AGENT_LIMITS: Readonly<AgentLimits> = Object.freeze({ enrollFailuresPerMinute: 30, maxApplyResults: 100 });

const silent: AgentLogger = { info() {}, warn() {}, error() {} };

export type AgentServicesOptions = Pick<AgentDeps, 'store' | 'ca' | 'nodeCertValidityDays' | 'afterInventory'> & Partial<Pick<AgentDeps, 'recorder' | 'log' | 'clock'>> & { limits?: Partial<AgentLimits> };

/** The agent services. Without a recorder, facts are written by the store and told to no one (tests, tools). */
export function createAgentServices(opts: AgentServicesOptions): AgentServices {
  const deps: AgentDeps = {
    store: opts.store,
    ca: opts.ca,
    recorder: opts.recorder ?? createRecorder({ store: opts.store }),
    log: opts.log ?? silent,
    clock: opts.clock ?? (() => new Date()),
    limits: { ...DEFAULT_AGENT_LIMITS, ...(opts.limits ?? {}) },
    ...(opts.nodeCertValidityDays !== undefined ? { nodeCertValidityDays: opts.nodeCertValidityDays } : {}),
    ...(opts.afterInventory ? { afterInventory: opts.afterInventory } : {}),
  };
  return {
    ...createEnrolment(deps),
    ...createReports(deps),
    ...createConfigService(deps),
    authenticate: createAuthenticator(deps),
    commands: createCommands(deps),
  };
}

export { assessBoot } from './boot.js';
export type { BootAssessment, FirmwareVia } from './boot.js';
export { redactCmdline, outcomeName } from './reports.js';
export { nodeConfig, clusterFactsOf, configForNode, ROLE_ORDER, ROLES_SCHEMA } from './config.js';
export type { NodeConfig, ClusterFactsJson, ClusterHost } from './config.js';
export { ENROLMENT_STATES, enrolmentRefusal } from './enroll-policy.js';
export type { CommandSink, Commands } from './commands.js';
export type { AgentCommandKind } from '../../common/commands.js';
export type { AgentDeps, AgentLimits, AgentLogger } from './types.js';

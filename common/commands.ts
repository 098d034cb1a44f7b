/**
 * The catalogue of agent commands (what the server may push down the
 * command stream), spelled once, with their wire form. The server pushes
 * them (`fleet agent ...`, the lifecycle), the agent runs them.
 */
import { CommandKind } from '../proto/gen/fleet/v1/agent.js';

export const AGENT_COMMAND = {
  applyConfig: 'apply_config',
  collectInventory: 'collect_inventory',
  reboot: 'reboot',
} as const;
export type AgentCommandKind = (typeof AGENT_COMMAND)[keyof typeof AGENT_COMMAND];

const TO_WIRE: Record<AgentCommandKind, CommandKind> = {
  [AGENT_COMMAND.applyConfig]: CommandKind.COMMAND_KIND_APPLY_CONFIG,
  [AGENT_COMMAND.collectInventory]: CommandKind.COMMAND_KIND_COLLECT_INVENTORY,
  [AGENT_COMMAND.reboot]: CommandKind.COMMAND_KIND_REBOOT,
};

export function commandToWire(kind: AgentCommandKind): CommandKind {
  return TO_WIRE[kind];
}

/** The command a wire kind names; undefined for one this build does not know (an older agent, a newer server). */
export function commandFromWire(kind: CommandKind): AgentCommandKind | undefined {
  return (Object.keys(TO_WIRE) as AgentCommandKind[]).find((k) => TO_WIRE[k] === kind);
}

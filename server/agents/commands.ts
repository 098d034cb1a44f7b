/**
 * The command stream: each node's agent keeps one Watch stream open, and the
 * server (`fleet agent ...`, the lifecycle) pushes commands down it. A node
 * has at most one stream: a new one (the agent reconnected) replaces and
 * ends the old. A command for a node without a stream is not kept: push says
 * it was not delivered and the caller decides whether to retry. Every push
 * is an `agent.command` event with its actor and outcome.
 */
import crypto from 'node:crypto';
import { Command } from '../../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import { commandToWire, type AgentCommandKind } from '../../common/commands.js';
import type { WriteContext } from '../store/index.js';
import { MAX_TEXT, short } from './bounds.js';
import type { AgentDeps } from './types.js';

/** Where a node's commands go (the edge's server stream). */
export interface CommandSink {
  readonly cancelled: boolean;
  /** Queues the command (under back-pressure too). */
  write(command: Command): void;
  end(): void;
}

export interface Commands {
  /** Marks the node seen as it opens its stream. */
  watch(node: string): Promise<void>;
  /** The node's stream is `sink` from now on (the previous one is ended); call the returned function when it closes. */
  attach(node: string, sink: CommandSink): () => void;
  /** Sends a command down the node's stream; delivered is false when it has none. Writes agent.command. */
  push(node: string, command: { kind: AgentCommandKind; reason?: string }, wc?: WriteContext): Promise<{ id: string; delivered: boolean }>;
  /** Nodes with an open stream, sorted. */
  watching(): string[];
  /** Ends every stream. */
  endAll(): void;
}

export function createCommands(deps: Pick<AgentDeps, 'store' | 'clock'>): Commands {
  const { store, clock } = deps;
  const sinks = new Map<string, CommandSink>();
  return {
    async watch(node) {
      await store.nodes.markSeen(node);
    },
    attach(node, sink) {
      const previous = sinks.get(node);
      sinks.set(node, sink);
      if (previous && previous !== sink) previous.end();
      return () => {
        if (sinks.get(node) === sink) sinks.delete(node);
      };
    },
    async push(node, command, wc = { actor: 'server' }) {
      const kind = commandToWire(command.kind);
      if (kind === undefined) throw new FleetError('request.invalid', `unknown agent command ${String(command.kind)}`);
      const id = crypto.randomUUID();
      const sink = sinks.get(node);
      let delivered = false;
      if (sink && !sink.cancelled) {
        // write() queues under back-pressure; the command is on its way either way.
        sink.write(Command.fromPartial({ id, kind, reason: short(command.reason ?? '', MAX_TEXT), issuedAtMs: clock().getTime() }));
        delivered = true;
      }
      await store.events.append({
        node,
        kind: EVENT.agentCommand,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: { id, command: command.kind, reason: command.reason ?? null, delivered },
      });
      return { id, delivered };
    },
    watching() {
      return [...sinks.keys()].sort();
    },
    endAll() {
      for (const s of sinks.values()) s.end();
      sinks.clear();
    },
  };
}

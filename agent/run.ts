/**
 * `fleet-agent run`: the enrolled agent's loop. Three independent tasks on
 * one channel (grpc-js reconnects it by itself):
 *  - boot report: once per boot, retried until the server took it;
 *  - heartbeat: every heartbeatMs; a changed config version queues an apply;
 *  - watch: the server's command stream, reopened after it ends or fails.
 * A server that is away only delays them (backoff with jitter); nothing
 * blocks on it. Commands run one at a time, in order.
 */
import os from 'node:os';
import type { Metadata } from '@grpc/grpc-js';
import { Command, CommandKind, type ReportBootRequest } from '../proto/gen/fleet/v1/agent.js';
import type { AgentServiceClient } from '../proto/gen/fleet/v1/agent.js';
import type { FleetError } from '../server/errors.js';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { collectBootFacts } from './boot.js';
import { callUnary, fromGrpcError, makeClient } from './client.js';
import { loadCredential } from './state.js';
import { AGENT_VERSION } from './version.js';

export type AgentCommandKind = 'apply_config' | 'collect_inventory' | 'reboot';

export interface CommandContext {
  id: string;
  kind: AgentCommandKind;
  reason: string;
  /** For apply_config queued by a heartbeat: the config version the server announced. */
  configVersion?: string;
  node: string;
  client: AgentServiceClient;
  callTimeoutMs: number;
}

export interface AgentHandlers {
  applyConfig?(ctx: CommandContext): Promise<void>;
  collectInventory?(ctx: CommandContext): Promise<void>;
  reboot?(ctx: CommandContext): Promise<void>;
}

export type AgentEvent =
  | { type: 'boot-reported'; bootId: string }
  | { type: 'heartbeat'; configVersion: string }
  | { type: 'watch-open' }
  | { type: 'watch-closed'; error?: FleetError }
  | { type: 'command'; id: string; kind: AgentCommandKind | 'unknown' }
  | { type: 'error'; task: 'boot' | 'heartbeat' | 'command'; error: FleetError };

export interface RunOptions {
  stateDir: string;
  /** Stops the loop (SIGTERM in main). */
  signal: AbortSignal;
  /** Default 60 s. */
  heartbeatMs?: number;
  /** Deadline of each unary call. Default 15 s. */
  callTimeoutMs?: number;
  backoff?: BackoffOptions;
  log?: (line: string) => void;
  /** Default: read /proc and efivarfs. */
  collectBoot?: () => Promise<ReportBootRequest>;
  handlers?: AgentHandlers;
  /** Observes what the loop does (tests, status output). */
  onEvent?: (e: AgentEvent) => void;
}

const KINDS: Partial<Record<CommandKind, AgentCommandKind>> = {
  [CommandKind.COMMAND_KIND_APPLY_CONFIG]: 'apply_config',
  [CommandKind.COMMAND_KIND_COLLECT_INVENTORY]: 'collect_inventory',
  [CommandKind.COMMAND_KIND_REBOOT]: 'reboot',
};

/** Runs until opts.signal aborts. Throws only when the credential cannot be loaded. */
export async function runAgent(opts: RunOptions): Promise<void> {
  const cred = await loadCredential(opts.stateDir);
  const log = opts.log ?? (() => {});
  const emit = opts.onEvent ?? (() => {});
  const heartbeatMs = opts.heartbeatMs ?? 60_000;
  const callTimeoutMs = opts.callTimeoutMs ?? 15_000;
  const handlers = opts.handlers ?? {};
  const { signal } = opts;
  const client = makeClient(cred.server, { caPem: cred.caPem, keyPem: cred.keyPem, certPem: cred.certPem });
  log(`running as ${cred.node} against ${cred.server}`);

  // Commands, one at a time.
  let queue: Promise<void> = Promise.resolve();
  let bootId = '';
  /** The config version last applied without error (reported in heartbeats). */
  let appliedVersion = '';
  const enqueue = (id: string, kind: AgentCommandKind, reason: string, configVersion?: string) => {
    emit({ type: 'command', id, kind });
    queue = queue.then(async () => {
      if (signal.aborted) return;
      const handler = kind === 'apply_config' ? handlers.applyConfig : kind === 'collect_inventory' ? handlers.collectInventory : handlers.reboot;
      if (!handler) {
        log(`command ${kind} (${id}): not implemented in this agent yet`);
        return;
      }
      try {
        log(`command ${kind} (${id})${reason ? `: ${reason}` : ''}`);
        await handler({ id, kind, reason, node: cred.node, client, callTimeoutMs, ...(configVersion !== undefined ? { configVersion } : {}) });
        if (kind === 'apply_config' && configVersion !== undefined) appliedVersion = configVersion;
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'command', error: fe });
        log(`command ${kind} (${id}) failed: ${fe.message}`);
      }
    });
  };

  async function bootTask(): Promise<void> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const facts = await (opts.collectBoot ?? collectBootFacts)();
        bootId = facts.bootId;
        await callUnary(client, client.reportBoot, facts, callTimeoutMs);
        emit({ type: 'boot-reported', bootId: facts.bootId });
        log(`boot ${facts.bootId} reported`);
        return;
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'boot', error: fe });
        log(`boot report failed: ${fe.message}`);
      }
      await sleep(backoffDelay(attempt, opts.backoff), signal);
    }
  }

  async function heartbeatTask(): Promise<void> {
    let failures = 0;
    let knownVersion = '';
    while (!signal.aborted) {
      try {
        const res = await callUnary(
          client,
          client.heartbeat,
          { uptimeMs: Math.round(os.uptime() * 1000), configVersion: appliedVersion, agentVersion: AGENT_VERSION, bootId },
          callTimeoutMs,
        );
        failures = 0;
        emit({ type: 'heartbeat', configVersion: res.configVersion });
        if (res.configVersion !== '' && res.configVersion !== knownVersion) {
          knownVersion = res.configVersion;
          enqueue(`config-${res.configVersion.slice(7, 19)}`, 'apply_config', `config version ${res.configVersion}`, res.configVersion);
        }
      } catch (e) {
        failures++;
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'heartbeat', error: fe });
        if (failures === 1 || failures % 10 === 0) log(`heartbeat failed (${failures}x): ${fe.message}`);
      }
      await sleep(failures > 0 ? Math.min(heartbeatMs, backoffDelay(failures - 1, opts.backoff)) : heartbeatMs, signal);
    }
  }

  async function watchTask(): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      const opened = Date.now();
      let useful = false;
      const error = await new Promise<FleetError | undefined>((resolve) => {
        const stream = client.watch({ agentVersion: AGENT_VERSION });
        let settled = false;
        const finish = (err?: FleetError) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve(err);
        };
        const onAbort = () => stream.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        stream.on('metadata', (_md: Metadata) => {
          useful = true;
          emit({ type: 'watch-open' });
        });
        stream.on('data', (cmd: Command) => {
          useful = true;
          const kind = KINDS[cmd.kind];
          if (!kind) {
            emit({ type: 'command', id: cmd.id, kind: 'unknown' });
            log(`ignoring unknown command ${cmd.kind} (${cmd.id})`);
            return;
          }
          enqueue(cmd.id, kind, cmd.reason);
        });
        stream.on('error', (e: unknown) => finish(fromGrpcError(e)));
        stream.on('status', () => finish());
        stream.on('end', () => finish());
      });
      emit(error ? { type: 'watch-closed', error } : { type: 'watch-closed' });
      if (signal.aborted) break;
      if (error) log(`watch stream closed: ${error.message}`);
      if (useful && Date.now() - opened > 5_000) attempt = 0;
      await sleep(backoffDelay(attempt++, opts.backoff), signal);
    }
  }

  try {
    await Promise.all([bootTask(), heartbeatTask(), watchTask()]);
    await queue;
  } finally {
    client.close();
  }
}

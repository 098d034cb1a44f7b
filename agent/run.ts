/**
 * `fleet-agent run`: the enrolled agent's loop. Independent tasks on one
 * channel (grpc-js reconnects it by itself):
 *  - boot report: once per boot, retried until the server took it; then
 *    the inventory report, retried the same way (with `work`);
 *  - heartbeat: every heartbeatMs; a config version other than the one
 *    applied queues an apply;
 *  - watch: the server's command stream, reopened after it ends or fails;
 *  - apply reports: an apply whose report could not be sent is retried in
 *    the background (with `work`).
 * A server that is away only delays them (backoff with jitter); nothing
 * blocks on it. Commands run one at a time, in order.
 *
 * With `work` (what `fleet-agent run` passes), the agent also does the work:
 * at start it applies the config cached in the state directory (if any)
 * without waiting for the server — a node whose server is away still gets
 * its last known configuration at boot —; apply_config fetches the config
 * (GetConfig, cached 0600 in the state dir; the cache when the server is
 * away), runs the roles and reports each role's outcome (ReportApply);
 * collect_inventory collects and reports; reboot runs `systemctl reboot`
 * through the exec wrapper, and only when the server commands it.
 *
 * `runCycle` does all of it once, one attempt per call, and returns what
 * happened (tests, `fleet-agent run --once`).
 */
import os from 'node:os';
import type { Metadata } from '@grpc/grpc-js';
import {
  Command,
  RoleOutcome,
  type AgentServiceClient,
  type ReportApplyRequest,
  type ReportBootRequest,
} from '../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../common/errors.js';
import { backoffDelay, sleep, type BackoffOptions } from '../common/backoff.js';
import { collectBootFacts } from './boot.js';
import { configFromResponse, loadCachedConfig, saveCachedConfig, type CachedConfig } from './cache.js';
import { callUnary, fromGrpcError, isTransient, makeClient } from './client.js';
import { describeFailure, systemRunner, type Runner } from './exec.js';
import { collectInventory, retryTimeout } from './inventory/index.js';
import { inventoryToProto } from '../common/inventory/proto.js';
import type { Inventory } from '../common/inventory/types.js';
import { makeRoleContext, rolesFor, runRoles } from './roles/index.js';
import type { RoleResult, RoleSettings } from './roles/types.js';
import { loadCredential } from './state.js';
import { AGENT_VERSION } from './version.js';
import { AGENT_COMMAND, commandFromWire, type AgentCommandKind } from '../common/commands.js';

export type { AgentCommandKind } from '../common/commands.js';

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
  /** May say which config version it applied (reported in heartbeats); without it, the announced version counts as applied. */
  applyConfig?(ctx: CommandContext): Promise<void | { appliedVersion?: string }>;
  collectInventory?(ctx: CommandContext): Promise<void>;
  reboot?(ctx: CommandContext): Promise<void>;
}

/** What the agent does on the node (the real thing in `fleet-agent run`; tests point it at a temp root). */
export interface AgentWork {
  /** Where the roles apply; default '/'. */
  root?: string;
  /** Runs the roles' commands and `systemctl reboot`; default the real one. */
  runner?: Runner;
  /**
   * Default: collectInventory() from agent/inventory. `retry` counts the
   * collections of this boot before this one (0 = the first); a collector
   * gives later ones more time (retryTimeout).
   */
  collectInventory?: (retry: number) => Promise<Inventory>;
  /** Default: makeRoleContext({root, runner, settings}) and runRoles(rolesFor(settings.roles)). */
  applyRoles?: (settings: RoleSettings) => Promise<RoleResult[]>;
}

export type ConfigSource = 'fetched' | 'unchanged' | 'cached';

export type AgentEvent =
  | { type: 'boot-reported'; bootId: string }
  | { type: 'heartbeat'; configVersion: string }
  | { type: 'watch-open' }
  | { type: 'watch-closed'; error?: FleetError }
  | { type: 'command'; id: string; kind: AgentCommandKind | 'unknown' }
  | { type: 'inventory-reported' }
  | { type: 'config'; source: ConfigSource; version: string }
  | { type: 'applied'; version: string; results: RoleResult[] }
  | { type: 'apply-reported'; version: string }
  | { type: 'error'; task: 'boot' | 'heartbeat' | 'command' | 'inventory' | 'config' | 'apply-report'; error: FleetError };

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
  /** Per command kind, replaces what `work` would do. */
  handlers?: AgentHandlers;
  /** Inventory, config and roles; without it the agent only reports boots, heartbeats and hands commands to `handlers`. */
  work?: AgentWork;
  /** Observes what the loop does (tests, status output). */
  onEvent?: (e: AgentEvent) => void;
  /**
   * While this boot's inventory has unknown sections: wait this long, collect
   * again with doubled budgets, and report it when it knows more. One entry
   * per retry; default INVENTORY_RETRY_MS.
   */
  inventoryRetryMs?: readonly number[];
}


/**
 * A probe that timed out at boot (a node still starting its services, an
 * emulated CPU) is asked again: after 30 s with twice the budgets, after 1 min
 * with 4x, 2 min with 8x, 4 min with 16x; then the report stays partial until
 * the next boot or `collect-inventory` command.
 */
export const INVENTORY_RETRY_MS: readonly number[] = [30_000, 60_000, 120_000, 240_000];

/** Most apply reports kept while the server is away (the oldest are dropped). */
const MAX_PENDING_REPORTS = 10;

// ------------------------------------------------------------------ the work, shared by the loop and runCycle

const OUTCOMES: Record<RoleResult['status'], RoleOutcome> = {
  ok: RoleOutcome.ROLE_OUTCOME_OK,
  changed: RoleOutcome.ROLE_OUTCOME_CHANGED,
  // The wire has no "needs reboot": the changes were made; the message says a reboot is due.
  'needs-reboot': RoleOutcome.ROLE_OUTCOME_CHANGED,
  failed: RoleOutcome.ROLE_OUTCOME_FAILED,
  // Nor "skipped" (a role the node's OS family does not support): nothing failed and nothing was changed; the message says it was skipped.
  skipped: RoleOutcome.ROLE_OUTCOME_OK,
};

const MESSAGE_PREFIX: Partial<Record<RoleResult['status'], string>> = { 'needs-reboot': 'needs reboot: ', skipped: 'skipped: ' };

/** The ReportApply request for one apply. Pure. */
export function applyReport(version: string, results: RoleResult[], startedAtMs: number, durationMs: number): ReportApplyRequest {
  return {
    configVersion: version,
    results: results.map((r) => ({
      role: r.role,
      outcome: OUTCOMES[r.status],
      message: `${MESSAGE_PREFIX[r.status] ?? ''}${r.message}`.slice(0, 4000),
      durationMs: Math.max(0, Math.round(r.durationMs)),
    })),
    startedAtMs,
    durationMs: Math.max(0, Math.round(durationMs)),
  };
}

interface Worker {
  collect(retry?: number): Promise<Inventory>;
  apply(cfg: CachedConfig): Promise<{ results: RoleResult[]; report: ReportApplyRequest }>;
  reboot(): Promise<void>;
}

function makeWorker(work: AgentWork, log: (line: string) => void): Worker {
  const runner = work.runner ?? systemRunner;
  const applyRoles =
    work.applyRoles ??
    (async (settings: RoleSettings) => {
      const ctx = await makeRoleContext({ root: work.root ?? '/', settings, runner, log });
      return runRoles(rolesFor(settings.roles), ctx, { dryRun: false });
    });
  return {
    collect: (retry = 0) => (work.collectInventory ? work.collectInventory(retry) : collectInventory({ runner, timeout: retryTimeout(undefined, retry) })),
    async apply(cfg) {
      const t0 = Date.now();
      let results: RoleResult[];
      try {
        results = await applyRoles(cfg.settings);
      } catch (e) {
        // No role ran (e.g. an OS family the roles do not know): one failed result says why.
        results = [{ role: 'agent', status: 'failed', message: e instanceof Error ? e.message : String(e), durationMs: Date.now() - t0, changes: [] }];
      }
      const summary = results.map((r) => `${r.role}=${r.status}`).join(' ');
      log(`applied config ${cfg.version.slice(0, 19)}: ${summary || 'no roles'}`);
      return { results, report: applyReport(cfg.version, results, t0, Date.now() - t0) };
    },
    async reboot() {
      const r = await runner.run('systemctl', ['reboot'], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new FleetError('unavailable', `cannot reboot: ${describeFailure('systemctl', ['reboot'], r)}`);
    },
  };
}

async function reportInventory(client: AgentServiceClient, inv: Inventory, timeoutMs: number): Promise<void> {
  await callUnary(client, client.reportInventory, { inventory: inventoryToProto(inv) }, timeoutMs);
}

/**
 * The config to apply: GetConfig (sending the cached version, so an
 * unchanged config costs no body), saved to the cache; the cache when the
 * server cannot be reached. Throws when there is neither, or when the server
 * refused (not transient).
 */
async function obtainConfig(
  client: AgentServiceClient,
  stateDir: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<{ cfg: CachedConfig; source: ConfigSource; error?: FleetError }> {
  let cached: CachedConfig | null = null;
  try {
    cached = await loadCachedConfig(stateDir);
  } catch (e) {
    log(`ignoring the config cache: ${(e as Error).message}`);
  }
  try {
    const res = await callUnary(client, client.getConfig, { knownVersion: cached?.version ?? '' }, timeoutMs);
    if (res.unchanged && cached && cached.version === res.version) return { cfg: cached, source: 'unchanged' };
    if (res.unchanged) throw new FleetError('internal', 'the server answered unchanged for a config this agent does not have');
    const cfg = configFromResponse(res);
    try {
      await saveCachedConfig(stateDir, cfg);
    } catch (e) {
      log(`cannot cache the config: ${(e as Error).message}`);
    }
    return { cfg, source: 'fetched' };
  } catch (e) {
    const fe = fromGrpcError(e);
    if (cached && isTransient(fe)) return { cfg: cached, source: 'cached', error: fe };
    throw fe;
  }
}

// ------------------------------------------------------------------ one cycle

export interface CycleOptions {
  stateDir: string;
  work: AgentWork;
  callTimeoutMs?: number;
  collectBoot?: () => Promise<ReportBootRequest>;
  log?: (line: string) => void;
}

export interface CycleResult {
  node: string;
  bootReported: boolean;
  inventoryReported: boolean;
  /** Where the applied config came from; 'none' when there was none to apply. */
  config: ConfigSource | 'none';
  configVersion: string;
  results: RoleResult[];
  applyReported: boolean;
  /** What failed along the way, one line each. */
  errors: string[];
}

/**
 * One pass: boot report, inventory report, config (server or cache), roles,
 * apply report — each tried once. Never throws for a server that is away;
 * throws only when the agent is not enrolled.
 */
export async function runCycle(opts: CycleOptions): Promise<CycleResult> {
  const cred = await loadCredential(opts.stateDir);
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.callTimeoutMs ?? 15_000;
  const worker = makeWorker(opts.work, log);
  const client = makeClient(cred.server, { caPem: cred.caPem, keyPem: cred.keyPem, certPem: cred.certPem });
  const out: CycleResult = { node: cred.node, bootReported: false, inventoryReported: false, config: 'none', configVersion: '', results: [], applyReported: false, errors: [] };
  const fail = (what: string, e: unknown) => {
    const line = `${what}: ${fromGrpcError(e).message}`;
    out.errors.push(line);
    log(line);
  };
  try {
    try {
      await callUnary(client, client.reportBoot, await (opts.collectBoot ?? collectBootFacts)(), timeoutMs);
      out.bootReported = true;
    } catch (e) {
      fail('boot report', e);
    }
    try {
      await reportInventory(client, await worker.collect(), timeoutMs);
      out.inventoryReported = true;
    } catch (e) {
      fail('inventory report', e);
    }
    let cfg: CachedConfig | undefined;
    try {
      const got = await obtainConfig(client, opts.stateDir, timeoutMs, log);
      cfg = got.cfg;
      out.config = got.source;
      out.configVersion = got.cfg.version;
      if (got.error) fail('config (applying the cached one)', got.error);
    } catch (e) {
      fail('config', e);
    }
    if (cfg) {
      const applied = await worker.apply(cfg);
      out.results = applied.results;
      try {
        await callUnary(client, client.reportApply, applied.report, timeoutMs);
        out.applyReported = true;
      } catch (e) {
        fail('apply report', e);
      }
    }
  } finally {
    client.close();
  }
  return out;
}

// ------------------------------------------------------------------ the loop

/** Runs until opts.signal aborts. Throws only when the credential cannot be loaded. */
export async function runAgent(opts: RunOptions): Promise<void> {
  const cred = await loadCredential(opts.stateDir);
  const log = opts.log ?? (() => {});
  const emit = opts.onEvent ?? (() => {});
  const heartbeatMs = opts.heartbeatMs ?? 60_000;
  const callTimeoutMs = opts.callTimeoutMs ?? 15_000;
  const { signal } = opts;
  const client = makeClient(cred.server, { caPem: cred.caPem, keyPem: cred.keyPem, certPem: cred.certPem });
  const worker = opts.work ? makeWorker(opts.work, log) : undefined;
  log(`running as ${cred.node} against ${cred.server}`);

  // ----------------------------------------------------------- apply reports, retried in the background
  const pendingReports: ReportApplyRequest[] = [];
  let wakeReporter: (() => void) | undefined;
  const queueReport = (r: ReportApplyRequest) => {
    pendingReports.push(r);
    if (pendingReports.length > MAX_PENDING_REPORTS) pendingReports.splice(0, pendingReports.length - MAX_PENDING_REPORTS);
    wakeReporter?.();
  };

  async function reportTask(): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      const next = pendingReports[0];
      if (!next) {
        await new Promise<void>((resolve) => {
          const done = () => {
            signal.removeEventListener('abort', done);
            wakeReporter = undefined;
            resolve();
          };
          wakeReporter = done;
          signal.addEventListener('abort', done, { once: true });
        });
        continue;
      }
      try {
        await callUnary(client, client.reportApply, next, callTimeoutMs);
        if (pendingReports[0] === next) pendingReports.shift();
        attempt = 0;
        emit({ type: 'apply-reported', version: next.configVersion });
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'apply-report', error: fe });
        if (!isTransient(fe)) {
          log(`apply report refused, dropped: ${fe.message}`);
          if (pendingReports[0] === next) pendingReports.shift();
          continue;
        }
        if (attempt === 0) log(`apply report failed (retrying in the background): ${fe.message}`);
        await sleep(backoffDelay(attempt++, opts.backoff), signal);
      }
    }
  }

  // ----------------------------------------------------------- what the commands do with `work`
  const workHandlers: AgentHandlers = worker
    ? {
        async applyConfig() {
          const got = await obtainConfig(client, opts.stateDir, callTimeoutMs, log);
          emit({ type: 'config', source: got.source, version: got.cfg.version });
          if (got.error) {
            emit({ type: 'error', task: 'config', error: got.error });
            log(`server unavailable (${got.error.message}): applying the cached config`);
          }
          const applied = await worker.apply(got.cfg);
          emit({ type: 'applied', version: got.cfg.version, results: applied.results });
          queueReport(applied.report);
          return { appliedVersion: got.cfg.version };
        },
        async collectInventory(ctx) {
          await reportInventory(client, await worker.collect(), ctx.callTimeoutMs);
          emit({ type: 'inventory-reported' });
          log('inventory reported');
        },
        async reboot() {
          await worker.reboot();
        },
      }
    : {};
  const handlers: AgentHandlers = { ...workHandlers, ...(opts.handlers ?? {}) };

  // ----------------------------------------------------------- commands, one at a time
  let queue: Promise<void> = Promise.resolve();
  let bootId = '';
  /** The config version last applied (reported in heartbeats). */
  let appliedVersion = '';
  /** The config version an apply is queued or running for. */
  let queuedVersion = '';
  const enqueue = (id: string, kind: AgentCommandKind, reason: string, configVersion?: string, job?: () => Promise<void>) => {
    emit({ type: 'command', id, kind });
    queue = queue.then(async () => {
      if (signal.aborted) return;
      if (job) {
        try {
          await job();
        } catch (e) {
          log(`${kind} (${id}) failed: ${(e as Error).message}`);
        }
        return;
      }
      const handler = kind === AGENT_COMMAND.applyConfig ? handlers.applyConfig : kind === AGENT_COMMAND.collectInventory ? handlers.collectInventory : handlers.reboot;
      if (!handler) {
        log(`command ${kind} (${id}): not implemented in this agent yet`);
        return;
      }
      try {
        log(`command ${kind} (${id})${reason ? `: ${reason}` : ''}`);
        const res = await handler({ id, kind, reason, node: cred.node, client, callTimeoutMs, ...(configVersion !== undefined ? { configVersion } : {}) });
        if (kind === AGENT_COMMAND.applyConfig) {
          const v = res && typeof res === 'object' && 'appliedVersion' in res ? res.appliedVersion : configVersion;
          if (v !== undefined) appliedVersion = v;
        }
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'command', error: fe });
        log(`command ${kind} (${id}) failed: ${fe.message}`);
      } finally {
        // A heartbeat may queue this version again if it was not applied.
        if (kind === AGENT_COMMAND.applyConfig && configVersion !== undefined && queuedVersion === configVersion) queuedVersion = '';
      }
    });
  };

  // ----------------------------------------------------------- at start: the cached config, without the server
  if (worker) {
    let cached: CachedConfig | null = null;
    try {
      cached = await loadCachedConfig(opts.stateDir);
    } catch (e) {
      log(`ignoring the config cache: ${(e as Error).message}`);
    }
    if (cached) {
      const cfg = cached;
      queuedVersion = cfg.version;
      enqueue('cached-config', AGENT_COMMAND.applyConfig, 'the cached config, at start', cfg.version, async () => {
        try {
          emit({ type: 'config', source: 'cached', version: cfg.version });
          const applied = await worker.apply(cfg);
          emit({ type: 'applied', version: cfg.version, results: applied.results });
          appliedVersion = cfg.version;
          queueReport(applied.report);
        } finally {
          if (queuedVersion === cfg.version) queuedVersion = '';
        }
      });
    }
  }

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

  /**
   * After the boot report: this boot's inventory, sent until the server takes
   * it. While it has unknown sections it is collected again (inventoryRetryMs,
   * with more time each round) and sent again whenever it knows more.
   */
  async function inventoryTask(): Promise<void> {
    if (!worker || signal.aborted) return;
    const retries = opts.inventoryRetryMs ?? INVENTORY_RETRY_MS;
    let sent: Inventory | undefined;
    for (let retry = 0; retry <= retries.length && !signal.aborted; retry++) {
      if (retry > 0) await sleep(retries[retry - 1]!, signal);
      if (signal.aborted) return;
      let inv: Inventory;
      try {
        inv = await worker.collect(retry);
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'inventory', error: fe });
        log(`inventory collection failed: ${fe.message}`);
        return;
      }
      if (sent && inv.unknown.length >= sent.unknown.length) {
        log(`inventory still partial (${inv.unknown.map((u) => u.section).join(', ')} unknown)`);
      } else {
        if (!(await sendInventory(inv))) return;
        sent = inv;
      }
      if (sent.unknown.length === 0) return;
      if (retry < retries.length) {
        log(`inventory partial (${sent.unknown.map((u) => `${u.section}: ${u.reason}`).join('; ')}): probing again in ${Math.round(retries[retry]! / 1000)} s with ${2 ** (retry + 1)}x the time`);
      }
    }
  }

  /** Sends one inventory until the server takes it; false when it refused it or the agent is stopping. */
  async function sendInventory(inv: Inventory): Promise<boolean> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await reportInventory(client, inv, callTimeoutMs);
        emit({ type: 'inventory-reported' });
        log(inv.unknown.length === 0 ? 'inventory reported' : `inventory reported (partial: ${inv.unknown.map((u) => u.section).join(', ')} unknown)`);
        return true;
      } catch (e) {
        const fe = fromGrpcError(e);
        emit({ type: 'error', task: 'inventory', error: fe });
        if (!isTransient(fe)) {
          log(`inventory report refused: ${fe.message}`);
          return false;
        }
        if (attempt === 0) log(`inventory report failed (retrying): ${fe.message}`);
      }
      await sleep(backoffDelay(attempt, opts.backoff), signal);
    }
    return false;
  }

  async function heartbeatTask(): Promise<void> {
    let failures = 0;
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
        if (res.configVersion !== '' && res.configVersion !== appliedVersion && res.configVersion !== queuedVersion) {
          queuedVersion = res.configVersion;
          enqueue(`config-${res.configVersion.slice(7, 19)}`, AGENT_COMMAND.applyConfig, `config version ${res.configVersion}`, res.configVersion);
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
          const kind = commandFromWire(cmd.kind);
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
    await Promise.all([
      (async () => {
        await bootTask();
        await inventoryTask();
      })(),
      heartbeatTask(),
      watchTask(),
      worker ? reportTask() : Promise.resolve(),
    ]);
    await queue;
  } finally {
    client.close();
  }
}

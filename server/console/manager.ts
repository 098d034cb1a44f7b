/**
 * The server's serial consoles (issue 14, item 3). BMC secrets stay here:
 * `fleet console NODE` talks to the server, the server to the BMC.
 *
 * One line per node at most (the BMC allows one SOL anyway), with at most one
 * interactive user; a second attach gets `conflict` naming who holds it and
 * since when, unless it forces (the holder is told and detached). Everything
 * the line prints is also appended to DATA/console/NODE.log (log.ts).
 *
 * Backends by the node's BMC protocol:
 *   ipmi      native SOL (server/bmc/ipmi/sol-console.ts)
 *   ipmitool  `ipmitool -I lanplus sol activate` (ipmitool-sol.ts)
 *   redfish   not supported: Redfish offers the serial console over SSH
 *             (SerialConsole.SSH), which fleet does not speak → bmc.unsupported
 */
import { EVENT } from '../../common/events.js';
import { FleetError, toFleetError } from '../../common/errors.js';
import { SolConsole } from '../bmc/ipmi/sol-console.js';
import type { ProviderContext } from '../bmc/registry.js';
import type { BmcTarget } from '../bmc/types.js';
import { INSTALL_STATES, POST_INSTALL_STATES, S } from '../lifecycle/states.js';
import type { Store } from '../store/index.js';
import { IpmitoolSol } from './ipmitool-sol.js';
import { ConsoleLog } from './log.js';
import { bmcCredentialNames } from '../bmc/credentials.js';

/** What a backend gives: characters in, characters out, a way to end. */
export interface ConsoleBackend {
  readonly provider: 'ipmi' | 'ipmitool';
  write(data: Uint8Array): void;
  sendBreak(): void;
  close(): Promise<void>;
}

export interface BackendHandlers {
  onData(data: Buffer): void;
  onEnd(reason: FleetError): void;
}

export interface ConsoleSink {
  /** Characters from the node. */
  data(chunk: Buffer): void;
  /** The console ended (BMC gone, taken over, server stopping); the sink should close. */
  end(reason: FleetError): void;
}

export interface ConsoleHolder {
  actor: string;
  since: string;
}

export interface ConsoleAttachment {
  node: string;
  provider: 'ipmi' | 'ipmitool';
  logFile: string | null;
  write(data: Uint8Array): void;
  sendBreak(): void;
  /** Detach (Deactivate Payload, Close Session). Safe to call twice. */
  detach(): Promise<void>;
}

export interface ConsoleManagerOptions {
  store: Store;
  providers: ProviderContext;
  /** DATA/console; absent: no log files. */
  logDir?: string;
  logBytes?: number;
  timeoutMs?: number;
  /** Opens a backend (tests can count opens); default: by protocol as above. */
  openBackend?: (protocol: string, target: BmcTarget, force: boolean, h: BackendHandlers) => Promise<ConsoleBackend>;
  onLogError?: (node: string, e: Error) => void;
  /** The watcher could not open a node's console (it tries again later). */
  onWatchError?: (node: string, e: FleetError) => void;
}

interface Line {
  node: string;
  backend: ConsoleBackend;
  log: ConsoleLog | null;
  user: (ConsoleHolder & { sink: ConsoleSink }) | null;
  closing: boolean;
  /** Opened (or kept) by the watcher: the node is in an install or boot phase; stays open without a user. */
  watched: boolean;
}

/** States in which the server logs a node's console without anyone attached: the install and boot phases, up to the agent's first report. */
export const LOGGED_STATES: ReadonlySet<string> = new Set<string>([...INSTALL_STATES, ...POST_INSTALL_STATES, S.imageBooting]);

/** Pure: which lines the watcher opens and which it lets go, from the nodes' states now. */
export function watchPlan(
  nodes: readonly { name: string; state: string; protocol: string | null }[],
  watched: ReadonlySet<string>,
  retryAfter: ReadonlyMap<string, number>,
  now: number,
): { open: string[]; release: string[] } {
  const want = new Set(nodes.filter((n) => LOGGED_STATES.has(n.state) && (n.protocol === 'ipmi' || n.protocol === 'ipmitool')).map((n) => n.name));
  const open = [...want].filter((n) => !watched.has(n) && (retryAfter.get(n) ?? 0) <= now);
  const release = [...watched].filter((n) => !want.has(n));
  return { open, release };
}

export class ConsoleManager {
  private readonly lines = new Map<string, Line>();
  /** Nodes with an attach in progress (so two simultaneous attaches cannot both open). */
  private readonly opening = new Map<string, ConsoleHolder>();
  private stopped = false;
  private watchTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  /** Nodes the watcher failed to open, and when it may try again. */
  private readonly retryAfter = new Map<string, number>();
  /** Lines being closed (Deactivate Payload in flight): a new open of the node waits for it, or the BMC would still say busy. */
  private readonly closing = new Map<string, Promise<void>>();

  constructor(private readonly o: ConsoleManagerOptions) {}

  /** Who holds NODE's console, if anyone. */
  holder(node: string): ConsoleHolder | null {
    const line = this.lines.get(node);
    if (line?.user) return { actor: line.user.actor, since: line.user.since };
    return this.opening.get(node) ?? null;
  }

  async attach(node: string, actor: string, sink: ConsoleSink, opts: { force?: boolean } = {}): Promise<ConsoleAttachment> {
    if (this.stopped) throw new FleetError('unavailable', 'the server is stopping');
    const busy = this.holder(node);
    if (busy && !opts.force) {
      throw new FleetError(
        'conflict',
        `console busy: ${node}'s console is held by ${busy.actor} since ${busy.since}; try again when they detach, or take it over with --force`,
        { node, holder: busy.actor, since: busy.since },
      );
    }
    if (busy && this.opening.has(node)) throw new FleetError('conflict', `console busy: ${busy.actor} is attaching to ${node}'s console right now`, { node, holder: busy.actor, since: busy.since });
    const since = new Date().toISOString();
    const prior = this.lines.get(node);
    if (prior?.user) {
      const taken = new FleetError('conflict', `console taken over by ${actor} (--force)`, { node, holder: actor, since });
      prior.log?.mark(`${prior.user.actor} detached: taken over by ${actor}`);
      prior.user.sink.end(taken);
      prior.user = null;
    }
    this.opening.set(node, { actor, since });
    let line: Line;
    try {
      line = prior && !prior.closing ? prior : await this.open(node, !!opts.force);
    } finally {
      this.opening.delete(node);
    }
    if (this.stopped) {
      await this.closeLine(line);
      throw new FleetError('unavailable', 'the server is stopping');
    }
    line.user = { actor, since, sink };
    line.log?.mark(`${actor} attached`);
    const user = line.user;
    const record = (kind: typeof EVENT.consoleAttached | typeof EVENT.consoleDetached, details: Record<string, unknown>): void =>
      void this.o.store.events.append({ node, kind, actor, details: { provider: line.backend.provider, ...details } }).catch(() => undefined);
    record(EVENT.consoleAttached, { force: Boolean(opts.force), ...(line.log ? { file: line.log.file } : {}) });
    return {
      node,
      provider: line.backend.provider,
      logFile: line.log?.file ?? null,
      write: (d) => {
        if (line.user === user) line.backend.write(d);
      },
      sendBreak: () => {
        if (line.user === user) line.backend.sendBreak();
      },
      detach: async () => {
        if (line.user !== user) return;
        line.user = null;
        line.log?.mark(`${actor} detached`);
        record(EVENT.consoleDetached, {});
        // A watched line (install/boot phase) keeps logging after the user leaves.
        if (!line.watched) await this.closeLine(line);
      },
    };
  }

  /**
   * Logs the console of every node in an install or boot phase (LOGGED_STATES)
   * whose BMC speaks IPMI, checking the store every `intervalMs`; a node that
   * leaves those states is let go (unless someone is attached). A console that
   * cannot be opened (BMC busy with someone else's SOL, unreachable) is tried
   * again after `retryMs`. One console.logging event per line opened points at its file.
   */
  startWatching(opts: { intervalMs?: number; retryMs?: number } = {}): void {
    if (this.watchTimer || this.stopped || !this.o.logDir) return;
    this.watchTimer = setInterval(() => {
      this.sweeping ??= this.sweep(opts.retryMs ?? 60_000)
        .catch((e: unknown) => this.o.onWatchError?.('*', toFleetError(e)))
        .finally(() => (this.sweeping = null));
    }, opts.intervalMs ?? 5000);
    this.watchTimer.unref();
  }

  /** One pass of the watcher (exported for tests through startWatching's timer, or called directly). */
  async sweep(retryMs = 60_000): Promise<void> {
    if (this.stopped) return;
    const nodes = (await this.o.store.nodes.list()).map((n) => ({ name: n.name, state: n.state, protocol: n.bmc?.protocol ?? null }));
    const watched = new Set([...this.lines.values()].filter((l) => l.watched).map((l) => l.node));
    const plan = watchPlan(nodes, watched, this.retryAfter, Date.now());
    const states = new Map(nodes.map((n) => [n.name, n.state]));
    for (const node of plan.release) {
      const line = this.lines.get(node);
      if (!line) continue;
      line.watched = false;
      line.log?.mark(`install/boot phase over (${states.get(node) ?? 'removed'}): logging stops`);
      if (!line.user) await this.closeLine(line);
    }
    for (const node of plan.open) {
      if (this.stopped) return;
      const existing = this.lines.get(node);
      if (existing && !existing.closing) {
        existing.watched = true;
        continue;
      }
      if (this.opening.has(node)) continue;
      this.opening.set(node, { actor: 'fleet (console log)', since: new Date().toISOString() });
      try {
        const line = await this.open(node, false);
        line.watched = true;
        line.log?.mark(`logging the console: the node is ${states.get(node)}`);
        this.retryAfter.delete(node);
        await this.o.store.events
          .append({ node, kind: EVENT.consoleLogging, actor: 'fleet', details: { file: line.log?.file ?? null, state: states.get(node) ?? null, provider: line.backend.provider } })
          .catch(() => undefined);
        if (this.stopped) await this.closeLine(line);
      } catch (e) {
        this.retryAfter.set(node, Date.now() + retryMs);
        this.o.onWatchError?.(node, toFleetError(e));
      } finally {
        this.opening.delete(node);
      }
    }
  }

  /** Ends every console (server stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
    await this.sweeping?.catch(() => undefined);
    const reason = new FleetError('unavailable', 'the fleet server is stopping');
    await Promise.all(
      [...this.lines.values()].map(async (l) => {
        l.user?.sink.end(reason);
        l.user = null;
        await this.closeLine(l);
      }),
    );
  }

  private async closeLine(line: Line): Promise<void> {
    if (line.closing) return this.closing.get(line.node);
    line.closing = true;
    if (this.lines.get(line.node) === line) this.lines.delete(line.node);
    const done = line.backend.close().catch(() => undefined);
    this.closing.set(line.node, done);
    await done;
    if (this.closing.get(line.node) === done) this.closing.delete(line.node);
  }

  private async open(node: string, force: boolean): Promise<Line> {
    await this.closing.get(node);
    const target = await this.target(node);
    const log = this.o.logDir ? new ConsoleLog(this.o.logDir, node, this.o.logBytes, (e) => this.o.onLogError?.(node, e)) : null;
    const line: Line = { node, backend: undefined as unknown as ConsoleBackend, log, user: null, closing: false, watched: false };
    const handlers: BackendHandlers = {
      onData: (d) => {
        line.log?.append(d);
        line.user?.sink.data(d);
      },
      onEnd: (reason) => {
        line.log?.mark(`console ended: ${reason.message}`);
        line.user?.sink.end(reason);
        line.user = null;
        void this.closeLine(line);
      },
    };
    line.backend = await (this.o.openBackend ?? this.defaultBackend.bind(this))(target.protocol, target.target, force, handlers);
    this.lines.set(node, line);
    return line;
  }

  private async defaultBackend(protocol: string, target: BmcTarget, force: boolean, h: BackendHandlers): Promise<ConsoleBackend> {
    const timeoutMs = this.o.timeoutMs ?? 10_000;
    if (protocol === 'ipmi') {
      const c = await SolConsole.open(
        this.o.providers.ipmiTransport,
        target,
        { force, timeoutMs, ...(this.o.providers.ipmi?.cipherSuite ? { cipherSuite: this.o.providers.ipmi.cipherSuite } : {}) },
        h,
      );
      return { provider: 'ipmi', write: (d) => c.write(d), sendBreak: () => c.sendBreak(), close: () => c.close() };
    }
    if (protocol === 'ipmitool') return IpmitoolSol.open(target, { ...this.o.providers.ipmitool, force, timeoutMs }, h);
    if (protocol === 'redfish') {
      throw new FleetError(
        'bmc.unsupported',
        "serial console: not supported through fleet for a Redfish BMC: Redfish only advertises its serial console (Manager SerialConsole: SSH, Telnet, IPMI), which fleet's Redfish driver does not open; where ConnectTypesSupported lists IPMI, give the node bmc.protocol ipmi (SOL on port 623), else use the BMC's own SSH or web console",
      );
    }
    throw new FleetError('bmc.unsupported', `serial console: no console for BMC protocol ${protocol}`);
  }

  private async target(node: string): Promise<{ protocol: string; target: BmcTarget }> {
    const rec = await this.o.store.nodes.require(node);
    if (!rec.bmc) throw new FleetError('bmc.unsupported', `${node} has no BMC (bmc: none in fleet.yaml): no serial console through fleet`, { node });
    let cred;
    try {
      // Its own set after a rotation or an in-band set-up, as every BMC caller (server/bmc/credentials.ts).
      const credName = (await bmcCredentialNames(this.o.store, [rec])).get(node) ?? rec.bmc.credentials;
      cred = await this.o.store.credentials.revealSecret(credName);
    } catch (e) {
      throw toFleetError(e);
    }
    return {
      protocol: rec.bmc.protocol,
      target: { address: rec.bmc.address, port: rec.bmc.port, username: cred.username, password: cred.secret },
    };
  }
}

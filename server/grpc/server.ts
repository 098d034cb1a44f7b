/**
 * The agent service (proto/fleet/v1/agent.proto) over grpc-js, TLS only.
 *
 * - Enroll needs no client certificate: a one-time token bound to a node,
 *   checked against the machine's identity, buys a node certificate for the
 *   agent's own key (CSR), and only while the node is in an install phase
 *   (enroll-policy.ts). Every refusal is an `agent.enroll_refused` event
 *   (reason = catalogue code; never the token); the token's use is a
 *   `token.used` event with the peer address.
 * - Every other method requires the node certificate: verified in the
 *   handshake against the fleet CA, then here (issuer, validity, clientAuth,
 *   CN) and against the store (it must be the node's *current* certificate:
 *   re-enrolment and node removal revoke). The node is the certificate's CN,
 *   never a request field.
 * - Message sizes: one server-wide limit (grpc-js answers RESOURCE_EXHAUSTED
 *   before any handler runs) and a smaller one for Enroll (checked on the raw
 *   bytes before decoding). Bytes that do not decode are INVALID_ARGUMENT,
 *   not grpc-js's INTERNAL.
 * - Errors reach the wire through toGrpcError only.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import {
  Metadata,
  Server,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  AgentServiceService,
  Command,
  Inventory,
  RoleOutcome,
  type EnrollRequest,
  type EnrollResponse,
  type GetConfigRequest,
  type GetConfigResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type ReportApplyRequest,
  type ReportApplyResponse,
  type ReportBootRequest,
  type ReportBootResponse,
  type ReportInventoryRequest,
  type ReportInventoryResponse,
  type WatchRequest,
} from '../../proto/gen/fleet/v1/agent.js';
import { FleetError, isFleetError, toFleetError } from '../../common/errors.js';
import { issueServerCert, parseCsr, issueNodeCert, verifyNodeCertificate, type FleetCa } from '../pki/index.js';
import type { AgentIdentity, AgentRecord, Store, WriteContext } from '../store/index.js';
import { assessBoot, type BootAssessment } from './boot.js';
import { enrolmentRefusal } from './enroll-policy.js';
import { agentServerCredentials } from './credentials.js';
import { configForNode } from './config.js';
import { toGrpcError } from './errors.js';
import { parseListen } from '../../common/listen.js';
import { MAC_CANONICAL } from '../../common/patterns.js';
import { EVENT } from '../../common/events.js';
import { commandToWire, type AgentCommandKind } from '../../common/commands.js';

/** What every grpc-js server call has (grpc-js does not export ServerSurfaceCall). */
type ServerSurfaceCall = Pick<ServerUnaryCall<unknown, unknown>, 'getPeer' | 'getAuthContext'>;

export const DEFAULT_AGENT_PORT = 50051;

export interface GrpcLimits {
  /** Largest request any method accepts (grpc.max_receive_message_length). Default 4 MiB. */
  maxMessageBytes: number;
  /** Largest Enroll request. Default 64 KiB (a token, an identity and a CSR are a few KiB). */
  maxEnrollBytes: number;
  /** HTTP/2 streams per connection. Default 100. */
  maxConcurrentStreams: number;
  /** Server keepalive pings on idle connections (keeps Watch streams honest). Default 60 s. */
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** Refused enrolments per peer address per minute before Enroll answers rate_limited. Default 30. */
  enrollFailuresPerMinute: number;
  /** Most inventory reports kept per call (a report's lists are bounded by the message size). */
  maxApplyResults: number;
}

export const DEFAULT_GRPC_LIMITS: Readonly<GrpcLimits> = Object.freeze({
  maxMessageBytes: 4 * 1024 * 1024,
  maxEnrollBytes: 64 * 1024,
  maxConcurrentStreams: 100,
  keepaliveMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  enrollFailuresPerMinute: 30,
  maxApplyResults: 100,
});

/** pino-compatible subset. */
export interface GrpcLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: GrpcLogger = { info() {}, warn() {}, error() {} };

/** Called after the store recorded the report (the lifecycle plugs in here). Errors are logged, not returned to the agent. */
export interface AgentHooks {
  enrolled?(node: string): void | Promise<void>;
  boot?(node: string, report: ReportBootRequest, assessment: BootAssessment, isNewBoot: boolean): void | Promise<void>;
  applied?(node: string, report: ReportApplyRequest): void | Promise<void>;
  inventory?(node: string, inventory: Inventory): void | Promise<void>;
}

export interface GrpcServerOptions {
  store: Store;
  ca: FleetCa;
  /** 'ADDR:PORT' ('0.0.0.0:50051', '[::]:50051', '127.0.0.1:0' for a random port). */
  listen: string;
  /** Certificate chain (leaf + CA) and key to present; issued from `ca` for serverNames when absent. */
  serverCert?: { certPem: string; keyPem: string };
  /** Names for a certificate issued at start. Default: localhost, this host's name, 127.0.0.1, ::1 and the listen address. */
  serverNames?: { dnsNames: string[]; ips: string[] };
  limits?: Partial<GrpcLimits>;
  log?: GrpcLogger;
  hooks?: AgentHooks;
  /** Clock for certificate issuance and checks. Default: the system clock. */
  clock?: () => Date;
  /** Validity of node certificates. Default 1825 days. */
  nodeCertValidityDays?: number;
}

export type { AgentCommandKind } from '../../common/commands.js';

export interface AgentGrpcServer {
  readonly port: number;
  /** host:port as bound. */
  readonly address: string;
  /** The certificate chain the server presents (leaf + CA). */
  readonly certPem: string;
  /**
   * Sends a command to the node's open Watch stream. delivered is false when
   * the node has none (the caller decides whether to retry). Writes
   * agent.command with actor and outcome.
   */
  push(node: string, command: { kind: AgentCommandKind; reason?: string }, wc?: WriteContext): Promise<{ id: string; delivered: boolean }>;
  /** Nodes with an open Watch stream. */
  watching(): string[];
  /** Calls that reached a handler, per method (refused ones included). */
  stats(): { calls: Record<string, number> };
  /** Ends Watch streams, lets running calls finish for up to graceMs (default 2000), then forces. */
  close(graceMs?: number): Promise<void>;
}

/** A request that never decoded: carried to the handler so it is answered (and, for Enroll, logged) like any refusal. */
class BadRequest {
  constructor(readonly error: FleetError) {}
}

type Req<T> = T | BadRequest;

const TOKEN_RE = /^[A-Za-z0-9_-]{16,256}$/;
const MAX_MACS = 64;
const MAX_FIELD = 256;
const MAX_TEXT = 4096;

function short(s: string, max = MAX_FIELD): string {
  return s.length > max ? s.slice(0, max) : s;
}

/** Kernel command lines may carry secrets (a kickstart URL with a token, a password): keep the key, drop the value. */
export function redactCmdline(cmdline: string): string {
  return cmdline.replace(/([\w.-]*(?:token|passw(?:or)?d|secret|key|pass|pw)[\w.-]*)=([^\s&]+)/gi, '$1=<redacted>');
}

function peerAddress(call: ServerSurfaceCall): string {
  const peer = call.getPeer();
  const i = peer.lastIndexOf(':');
  return (i > 0 ? peer.slice(0, i) : peer).replace(/^\[|\]$/g, '');
}

function isoFromMs(ms: number): string | null {
  if (!Number.isFinite(ms) || ms <= 0 || ms > 8.64e15) return null;
  return new Date(ms).toISOString();
}

function checkIdentity(id: EnrollRequest['identity']): AgentIdentity {
  if (!id) throw new FleetError('request.invalid', 'the enrolment carries no machine identity');
  if (id.macs.length > MAX_MACS) throw new FleetError('request.invalid', `at most ${MAX_MACS} MAC addresses`);
  const macs = [...new Set(id.macs.map((m) => m.trim().toLowerCase().replace(/-/g, ':')))];
  const bad = macs.filter((m) => !MAC_CANONICAL.test(m));
  if (bad.length > 0) throw new FleetError('request.invalid', `not MAC addresses: ${bad.slice(0, 3).map((m) => JSON.stringify(short(m, 40))).join(', ')}`);
  for (const [k, v] of [
    ['serial', id.serial],
    ['uuid', id.uuid],
    ['hostname', id.hostname],
  ] as const) {
    if (v.length > MAX_FIELD) throw new FleetError('request.invalid', `identity ${k} is longer than ${MAX_FIELD} characters`);
  }
  return { serial: id.serial.trim(), uuid: id.uuid.trim().toLowerCase(), macs, hostname: id.hostname.trim() };
}

/** Failed enrolments per peer address, in one-minute windows; bounded memory. */
class EnrollLimiter {
  private readonly windows = new Map<string, { start: number; failures: number; reported: boolean }>();
  constructor(
    private readonly limit: number,
    private readonly now: () => number,
  ) {}
  private window(peer: string) {
    const t = this.now();
    let w = this.windows.get(peer);
    if (!w || t - w.start >= 60_000) {
      if (this.windows.size > 10_000) {
        for (const [k, v] of this.windows) if (t - v.start >= 60_000) this.windows.delete(k);
      }
      w = { start: t, failures: 0, reported: false };
      this.windows.set(peer, w);
    }
    return w;
  }
  /** 'ok', 'blocked' or 'blocked-first' (the first refusal of this window, to be logged once). */
  check(peer: string): 'ok' | 'blocked' | 'blocked-first' {
    const w = this.window(peer);
    if (w.failures < this.limit) return 'ok';
    if (w.reported) return 'blocked';
    w.reported = true;
    return 'blocked-first';
  }
  fail(peer: string): void {
    this.window(peer).failures++;
  }
}

function outcomeName(o: RoleOutcome): string {
  switch (o) {
    case RoleOutcome.ROLE_OUTCOME_OK:
      return 'ok';
    case RoleOutcome.ROLE_OUTCOME_CHANGED:
      return 'changed';
    case RoleOutcome.ROLE_OUTCOME_FAILED:
      return 'failed';
    default:
      return 'unspecified';
  }
}

/**
 * Names for a server certificate issued at start: localhost and this host's
 * name; the listen address when it is a specific IP, else every address of
 * this host (agents connect to the management address, whichever it is).
 */
export function defaultServerNames(listenHost: string): { dnsNames: string[]; ips: string[] } {
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || net.isIP(listenHost) === 0;
  const ips = new Set<string>(['127.0.0.1', '::1']);
  if (!wildcard) ips.add(listenHost);
  else {
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (!a.address.startsWith('fe80:')) ips.add(a.address.replace(/%.*$/, ''));
    }
  }
  const dnsNames = [...new Set(['localhost', os.hostname(), ...(net.isIP(listenHost) === 0 ? [listenHost] : [])])].filter((n) =>
    /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(n),
  );
  return { dnsNames, ips: [...ips] };
}

/** Starts the agent service; resolves once it listens. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<AgentGrpcServer> {
  const { store, ca } = opts;
  const limits: GrpcLimits = { ...DEFAULT_GRPC_LIMITS, ...(opts.limits ?? {}) };
  const log = opts.log ?? silent;
  const hooks = opts.hooks ?? {};
  const clock = opts.clock ?? (() => new Date());
  const { host, port } = parseListen(opts.listen);

  let serverCert = opts.serverCert;
  if (!serverCert) {
    const names = opts.serverNames ?? defaultServerNames(host);
    serverCert = await issueServerCert(ca, { ...names, now: clock });
  }

  const calls: Record<string, number> = {};
  const streams = new Map<string, ServerWritableStream<Req<WatchRequest>, Command>>();
  const limiter = new EnrollLimiter(limits.enrollFailuresPerMinute, () => Date.now());

  // ----------------------------------------------------------- plumbing

  /** The service definition with decoding guarded: size limits per method, undecodable bytes → BadRequest. */
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(AgentServiceService)) {
    const max = name === 'enroll' ? limits.maxEnrollBytes : limits.maxMessageBytes;
    const decode = method.requestDeserialize as (b: Buffer) => unknown;
    definition[name] = {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        if (buf.length > max) return new BadRequest(new FleetError('request.too_large', `the ${name} request is ${buf.length} bytes; at most ${max} are accepted`));
        try {
          return decode(buf);
        } catch {
          return new BadRequest(new FleetError('request.invalid', `the ${name} request is not a valid protobuf message`));
        }
      },
    } as ServiceDefinition[string];
  }

  function logFailure(method: string, e: FleetError, extra: object = {}): void {
    if (e.code === 'internal') log.error({ method, err: e.cause ?? e, ...extra }, `agent ${method} failed`);
    else log.info({ method, code: e.code, ...extra }, `agent ${method} refused: ${e.message}`);
  }

  async function authenticate(call: ServerSurfaceCall): Promise<string> {
    const raw = call.getAuthContext().sslPeerCertificate?.raw;
    if (!raw) throw new FleetError('auth.missing', 'this call needs a valid node certificate (enrol first)');
    const { node, fingerprint } = verifyNodeCertificate(ca, raw, clock());
    const agent = await store.agents.get(node);
    if (!agent || agent.certFingerprint !== fingerprint) {
      throw new FleetError('auth.invalid', `the certificate is not the current credential of node ${node}`, { node });
    }
    return node;
  }

  /** A unary handler for an authenticated method. */
  function unary<Q, R>(name: string, fn: (req: Q, node: string, call: ServerUnaryCall<Req<Q>, R>) => Promise<R>): handleUnaryCall<Req<Q>, R> {
    return (call: ServerUnaryCall<Req<Q>, R>, callback: sendUnaryData<R>) => {
      calls[name] = (calls[name] ?? 0) + 1;
      void (async () => {
        let node: string | undefined;
        try {
          node = await authenticate(call);
          if (call.request instanceof BadRequest) throw call.request.error;
          callback(null, await fn(call.request, node, call));
        } catch (e) {
          const fe = toFleetError(e);
          logFailure(name, fe, { node, peer: peerAddress(call) });
          callback(toGrpcError(fe));
        }
      })();
    };
  }

  async function runHook(name: string, node: string, fn: (() => void | Promise<void>) | undefined): Promise<void> {
    if (!fn) return;
    try {
      await fn();
    } catch (e) {
      log.error({ hook: name, node, err: e }, `agent hook ${name} failed`);
    }
  }

  // ----------------------------------------------------------- Enroll

  async function enrollRefused(fe: FleetError, node: string | null, peer: string, identity: unknown): Promise<void> {
    try {
      await store.events.append({
        node,
        kind: EVENT.agentEnrollRefused,
        actor: 'agent',
        cause: fe.code,
        details: { reason: fe.code, message: fe.message, peer, identity },
      });
    } catch (e) {
      log.error({ err: e, node, peer }, 'cannot record a refused enrolment');
    }
  }

  async function doEnroll(req: Req<EnrollRequest>, peer: string): Promise<EnrollResponse> {
    let claimed: string | undefined;
    let tokenNode: string | undefined;
    let identity: AgentIdentity | undefined;
    const gate = limiter.check(peer);
    if (gate !== 'ok') {
      const fe = new FleetError('rate_limited', 'too many refused enrolments from this address; wait a minute');
      if (gate === 'blocked-first') await enrollRefused(fe, null, peer, null);
      throw fe;
    }
    try {
      if (req instanceof BadRequest) throw req.error;
      if (req.token === '') throw new FleetError('auth.missing', 'the enrolment carries no token');
      if (!TOKEN_RE.test(req.token)) throw new FleetError('auth.invalid', 'the enrolment token is malformed');
      identity = checkIdentity(req.identity);
      const csr = await parseCsr(req.csrPem);
      // The node the machine is, by its MACs (fleet.yaml declares boot MACs).
      const owners = new Set<string>();
      for (const mac of identity.macs) {
        const n = await store.nodes.findByMac(mac);
        if (n) owners.add(n.name);
      }
      if (owners.size > 1) {
        throw new FleetError('auth.forbidden', `the reported MAC addresses belong to several nodes (${[...owners].sort().join(', ')})`);
      }
      claimed = owners.values().next().value;
      const agentVersion = short(req.agentVersion, 64);
      const id = identity;
      const res = await store.transaction(async (tx) => {
        // Refused outside an install phase; thrown inside the transaction, so the token is not used up.
        const inInstall = async (name: string) => {
          const n = await tx.nodes.require(name);
          const refused = enrolmentRefusal(n);
          if (refused) throw refused;
          return n;
        };
        let consumed: { node: string };
        try {
          consumed = await tx.tokens.consume(req.token, { ...(claimed !== undefined ? { node: claimed } : {}), actor: 'agent', ip: peer });
        } catch (e) {
          // A retried Enroll (the answer was lost) with the same key gets the same certificate back.
          if (isFleetError(e) && e.code === 'token.used') {
            const n = (e.details as { node?: string } | undefined)?.node;
            const agent = n !== undefined ? await tx.agents.get(n) : null;
            if (agent && agent.keySha256 === csr.keySha256) {
              await inInstall(agent.node);
              return { agent, repeated: true };
            }
          }
          throw e;
        }
        tokenNode = consumed.node;
        const node = await inInstall(consumed.node);
        if (claimed === undefined && node.macs.length > 0) {
          throw new FleetError('auth.forbidden', `none of the reported MAC addresses is one of node ${node.name}'s`, { node: node.name });
        }
        const cert = await issueNodeCert(ca, node.name, csr, {
          now: clock,
          ...(opts.nodeCertValidityDays !== undefined ? { validityDays: opts.nodeCertValidityDays } : {}),
        });
        const agent = await tx.agents.recordEnrolment(
          node.name,
          {
            certSerial: cert.serial,
            certFingerprint: cert.fingerprint,
            certPem: cert.certPem,
            certNotAfter: cert.notAfter.toISOString(),
            keySha256: csr.keySha256,
            identity: id,
            agentVersion: agentVersion || null,
            details: { peer, macsKnown: claimed !== undefined },
          },
          { actor: `node:${node.name}`, cause: 'enroll' },
        );
        return { agent, repeated: false };
      });
      if (!res.repeated) await runHook('enrolled', res.agent.node, hooks.enrolled && (() => hooks.enrolled!(res.agent.node)));
      log.info({ node: res.agent.node, peer, repeated: res.repeated }, 'agent enrolled');
      return enrollResponse(res.agent);
    } catch (e) {
      const fe = toFleetError(e);
      limiter.fail(peer);
      const detailNode = (fe.details as { node?: unknown } | undefined)?.node;
      const node = tokenNode ?? (typeof detailNode === 'string' ? detailNode : undefined) ?? claimed ?? null;
      await enrollRefused(fe, node, peer, identity ?? null);
      throw fe;
    }
  }

  function enrollResponse(agent: AgentRecord): EnrollResponse {
    return {
      nodeName: agent.node,
      certificatePem: agent.certPem,
      caCertificatePem: ca.certPem,
      notAfterMs: Date.parse(agent.certNotAfter),
    };
  }

  const enroll: handleUnaryCall<Req<EnrollRequest>, EnrollResponse> = (call, callback) => {
    calls.enroll = (calls.enroll ?? 0) + 1;
    const peer = peerAddress(call);
    doEnroll(call.request, peer).then(
      (res) => callback(null, res),
      (e: unknown) => {
        const fe = toFleetError(e);
        logFailure('enroll', fe, { peer });
        callback(toGrpcError(fe));
      },
    );
  };

  // ----------------------------------------------------------- the rest

  const reportInventory = unary<ReportInventoryRequest, ReportInventoryResponse>('reportInventory', async (req, node) => {
    if (!req.inventory) throw new FleetError('request.invalid', 'the report carries no inventory');
    const inv = req.inventory;
    const rec = await store.inventory.record(node, Inventory.toJSON(inv) as object, {
      actor: `node:${node}`,
      collectedAt: isoFromMs(inv.collectedAtMs),
    });
    await store.nodes.markSeen(node);
    await runHook('inventory', node, hooks.inventory && (() => hooks.inventory!(node, inv)));
    return { recordedAtMs: Date.parse(rec.reportedAt) };
  });

  const configOf = (node: string) => configForNode(store, node);

  const getConfig = unary<GetConfigRequest, GetConfigResponse>('getConfig', async (req, node) => {
    const cfg = await configOf(node);
    await store.nodes.markSeen(node);
    const unchanged = req.knownVersion !== '' && req.knownVersion === cfg.version;
    return {
      version: cfg.version,
      unchanged,
      profile: cfg.profile,
      roles: cfg.roles,
      rolesJson: unchanged ? '' : cfg.rolesJson,
      schema: cfg.schema,
      clusterJson: unchanged ? '' : cfg.clusterJson,
    };
  });

  const reportApply = unary<ReportApplyRequest, ReportApplyResponse>('reportApply', async (req, node) => {
    if (req.configVersion === '' || req.configVersion.length > MAX_FIELD) throw new FleetError('request.invalid', 'the apply report names no config version');
    if (req.results.length > limits.maxApplyResults) throw new FleetError('request.invalid', `at most ${limits.maxApplyResults} role results per report`);
    const results = req.results.map((r) => ({
      role: short(r.role, 64),
      outcome: outcomeName(r.outcome),
      message: short(r.message, MAX_TEXT),
      durationMs: r.durationMs,
    }));
    const failed = results.filter((r) => r.outcome === 'failed').map((r) => r.role);
    await store.agents.recordApply(
      node,
      req.configVersion,
      failed.length > 0,
      { results, failed, startedAt: isoFromMs(req.startedAtMs), durationMs: req.durationMs },
      { actor: `node:${node}` },
    );
    await store.nodes.markSeen(node);
    await runHook('applied', node, hooks.applied && (() => hooks.applied!(node, req)));
    return {};
  });

  const reportBoot = unary<ReportBootRequest, ReportBootResponse>('reportBoot', async (req, node) => {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(req.bootId)) throw new FleetError('request.invalid', 'the boot report carries no valid boot id');
    if (req.efi && (req.efi.bootOrder.length > 256 || req.efi.entries.length > 256)) throw new FleetError('request.invalid', 'too many EFI boot entries');
    const report: ReportBootRequest = { ...req, kernelCmdline: redactCmdline(short(req.kernelCmdline, MAX_TEXT)) };
    const assessment = assessBoot(report);
    const fresh = await store.agents.recordBoot(
      node,
      report.bootId,
      {
        uptimeMs: report.uptimeMs,
        kernel: short(report.kernel),
        kernelCmdline: report.kernelCmdline,
        rootOnLocalDisk: report.rootOnLocalDisk,
        rootSource: short(report.rootSource),
        rootFstype: short(report.rootFstype, 64),
        efi: report.efi
          ? {
              bootCurrent: short(report.efi.bootCurrent, 8),
              bootOrder: report.efi.bootOrder.map((s) => short(s, 8)),
              bootNext: short(report.efi.bootNext, 8),
              entries: report.efi.entries.map((e) => ({ id: short(e.id, 8), label: short(e.label), active: e.active })),
            }
          : null,
        assessment,
        agentVersion: short(report.agentVersion, 64),
      },
      { actor: `node:${node}` },
    );
    await store.nodes.markSeen(node);
    await runHook('boot', node, hooks.boot && (() => hooks.boot!(node, report, assessment, fresh)));
    return {};
  });

  const heartbeat = unary<HeartbeatRequest, HeartbeatResponse>('heartbeat', async (req, node) => {
    await store.nodes.markSeen(node);
    if (req.agentVersion !== '') await store.agents.noteVersion(node, short(req.agentVersion, 64));
    let configVersion = '';
    try {
      configVersion = (await configOf(node)).version;
    } catch (e) {
      if (!isFleetError(e) || e.code !== 'not_found') throw e;
    }
    return { serverTimeMs: clock().getTime(), configVersion };
  });

  const watch: handleServerStreamingCall<Req<WatchRequest>, Command> = (call) => {
    calls.watch = (calls.watch ?? 0) + 1;
    void (async () => {
      let node: string | undefined;
      try {
        node = await authenticate(call);
        if (call.request instanceof BadRequest) throw call.request.error;
        await store.nodes.markSeen(node);
      } catch (e) {
        const fe = toFleetError(e);
        logFailure('watch', fe, { node, peer: peerAddress(call) });
        call.emit('error', toGrpcError(fe));
        return;
      }
      if (call.cancelled) return;
      const name = node;
      const previous = streams.get(name);
      streams.set(name, call);
      // One stream per node: a new one (the agent reconnected) replaces the old.
      if (previous && previous !== call) previous.end();
      const done = () => {
        if (streams.get(name) === call) streams.delete(name);
      };
      call.on('cancelled', done);
      call.on('close', done);
      call.on('finish', done);
      call.on('error', done);
      // Headers now, so the agent knows the stream is up before the first command.
      call.sendMetadata(new Metadata());
    })();
  };

  const implementation: UntypedServiceImplementation = { enroll, reportInventory, getConfig, reportApply, reportBoot, heartbeat, watch };

  // ----------------------------------------------------------- listen

  const server = new Server({
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    'grpc.max_send_message_length': limits.maxMessageBytes,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.keepalive_time_ms': limits.keepaliveMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
  });
  server.addService(definition as ServiceDefinition, implementation);
  const creds = agentServerCredentials(ca.certPem, serverCert.certPem, serverCert.keyPem);
  const bindHost = host.includes(':') ? `[${host}]` : host;
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${port}`, creds, (err, p) => {
      if (err) reject(new FleetError('unavailable', `cannot listen on ${opts.listen}: ${err.message}`, undefined, { cause: err }));
      else resolve(p);
    });
  });
  log.info({ listen: `${bindHost}:${boundPort}` }, 'agent gRPC service listening');

  let closed = false;
  return {
    port: boundPort,
    address: `${bindHost}:${boundPort}`,
    certPem: serverCert.certPem,
    async push(node, command, wc = { actor: 'server' }) {
      const kind = commandToWire(command.kind);
      if (kind === undefined) throw new FleetError('request.invalid', `unknown agent command ${String(command.kind)}`);
      const id = crypto.randomUUID();
      const stream = streams.get(node);
      let delivered = false;
      if (stream && !stream.cancelled) {
        // write() queues under back-pressure; the command is on its way either way.
        stream.write(Command.fromPartial({ id, kind, reason: short(command.reason ?? '', MAX_TEXT), issuedAtMs: clock().getTime() }));
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
      return [...streams.keys()].sort();
    },
    stats() {
      return { calls: { ...calls } };
    },
    async close(graceMs = 2000) {
      if (closed) return;
      closed = true;
      for (const s of streams.values()) s.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/**
 * The agent service (proto/fleet/v1/agent.proto) over grpc-js, TLS only: an
 * adapter. What each method does is server/agents' (createAgentServices);
 * here: decoding, the TLS peer, call counts, the Watch stream, errors to
 * gRPC status, bind and close.
 *
 * - Enroll needs no client certificate (agents/enrol.ts); every other method
 *   requires the node certificate: verified in the handshake against the
 *   fleet CA (credentials.ts), then by agents/auth.ts.
 * - Message sizes: one server-wide limit (grpc-js answers RESOURCE_EXHAUSTED
 *   before any handler runs) and a smaller one for Enroll (checked on the raw
 *   bytes before decoding). Bytes that do not decode are INVALID_ARGUMENT,
 *   not grpc-js's INTERNAL.
 * - Errors reach the wire through toGrpcError only.
 */
import net from 'node:net';
import os from 'node:os';
import {
  Metadata,
  Server,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { AgentServiceService, type Command, type EnrollRequest, type EnrollResponse, type WatchRequest } from '../../proto/gen/fleet/v1/agent.js';
import { FleetError, toFleetError } from '../../common/errors.js';
import { issueServerCert, type FleetCa } from '../pki/index.js';
import type { Store, WriteContext } from '../store/index.js';
import type { FactRecorder } from '../lifecycle/record.js';
import { createAgentServices, DEFAULT_AGENT_LIMITS, type AgentCommandKind, type AgentLogger } from '../agents/index.js';
import { agentServerCredentials } from './credentials.js';
import { toGrpcError } from './errors.js';
import { parseListen } from '../../common/listen.js';

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
  /** Most role results per apply report. Default 100. */
  maxApplyResults: number;
}

export const DEFAULT_GRPC_LIMITS: Readonly<GrpcLimits> = Object.freeze({
  maxMessageBytes: 4 * 1024 * 1024,
  maxEnrollBytes: 64 * 1024,
  maxConcurrentStreams: 100,
  keepaliveMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  ...DEFAULT_AGENT_LIMITS,
});

/** pino-compatible subset. */
export type GrpcLogger = AgentLogger;

const silent: GrpcLogger = { info() {}, warn() {}, error() {} };

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
  /** The one way in for facts: boot and apply reports are told to the conductor through it. Default: one that tells no one. */
  recorder?: FactRecorder;
  /** Clock for certificate issuance and checks. Default: the system clock. */
  clock?: () => Date;
  /** Validity of node certificates. Default 1825 days. */
  nodeCertValidityDays?: number;
  /** Told after each stored inventory report (the server's reconciliation with the BMC); must not block or throw. */
  afterInventory?: (node: string) => void;
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

/** A request as a handler gets it: decoded, or the error its bytes gave (answered, and for Enroll counted, like any refusal). */
type Req<T> = T | FleetError;

function peerAddress(call: ServerSurfaceCall): string {
  const peer = call.getPeer();
  const i = peer.lastIndexOf(':');
  return (i > 0 ? peer.slice(0, i) : peer).replace(/^\[|\]$/g, '');
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
  const { ca } = opts;
  const limits: GrpcLimits = { ...DEFAULT_GRPC_LIMITS, ...(opts.limits ?? {}) };
  const log = opts.log ?? silent;
  const clock = opts.clock ?? (() => new Date());
  const { host, port } = parseListen(opts.listen);
  const services = createAgentServices({
    store: opts.store,
    ca,
    log,
    clock,
    limits: { enrollFailuresPerMinute: limits.enrollFailuresPerMinute, maxApplyResults: limits.maxApplyResults },
    ...(opts.recorder ? { recorder: opts.recorder } : {}),
    ...(opts.nodeCertValidityDays !== undefined ? { nodeCertValidityDays: opts.nodeCertValidityDays } : {}),
    ...(opts.afterInventory ? { afterInventory: opts.afterInventory } : {}),
  });

  let serverCert = opts.serverCert;
  if (!serverCert) {
    const names = opts.serverNames ?? defaultServerNames(host);
    serverCert = await issueServerCert(ca, { ...names, now: clock });
  }

  const calls: Record<string, number> = {};
  const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);

  /** The service definition with decoding guarded: size limits per method, undecodable bytes → a FleetError as the request. */
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(AgentServiceService)) {
    const max = name === 'enroll' ? limits.maxEnrollBytes : limits.maxMessageBytes;
    const decode = method.requestDeserialize as (b: Buffer) => unknown;
    definition[name] = {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        if (buf.length > max) return new FleetError('request.too_large', `the ${name} request is ${buf.length} bytes; at most ${max} are accepted`);
        try {
          return decode(buf);
        } catch {
          return new FleetError('request.invalid', `the ${name} request is not a valid protobuf message`);
        }
      },
    } as ServiceDefinition[string];
  }

  function logFailure(method: string, e: FleetError, extra: object = {}): void {
    if (e.code === 'internal') log.error({ method, err: e.cause ?? e, ...extra }, `agent ${method} failed`);
    else log.info({ method, code: e.code, ...extra }, `agent ${method} refused: ${e.message}`);
  }

  const authenticate = (call: ServerSurfaceCall): Promise<string> => services.authenticate(call.getAuthContext().sslPeerCertificate?.raw);

  /** A unary handler for an authenticated method. */
  function unary<Q, R>(name: string, fn: (node: string, req: Q) => Promise<R>): handleUnaryCall<Req<Q>, R> {
    return (call: ServerUnaryCall<Req<Q>, R>, callback: sendUnaryData<R>) => {
      count(name);
      void (async () => {
        let node: string | undefined;
        try {
          node = await authenticate(call);
          if (call.request instanceof FleetError) throw call.request;
          callback(null, await fn(node, call.request));
        } catch (e) {
          const fe = toFleetError(e);
          logFailure(name, fe, { node, peer: peerAddress(call) });
          callback(toGrpcError(fe));
        }
      })();
    };
  }

  const enroll: handleUnaryCall<Req<EnrollRequest>, EnrollResponse> = (call, callback) => {
    count('enroll');
    const peer = peerAddress(call);
    services.enroll(call.request, peer).then(
      (res) => callback(null, res),
      (e: unknown) => {
        const fe = toFleetError(e);
        logFailure('enroll', fe, { peer });
        callback(toGrpcError(fe));
      },
    );
  };

  const watch: handleServerStreamingCall<Req<WatchRequest>, Command> = (call) => {
    count('watch');
    void (async () => {
      let node: string | undefined;
      try {
        node = await authenticate(call);
        if (call.request instanceof FleetError) throw call.request;
        await services.commands.watch(node);
      } catch (e) {
        const fe = toFleetError(e);
        logFailure('watch', fe, { node, peer: peerAddress(call) });
        call.emit('error', toGrpcError(fe));
        return;
      }
      if (call.cancelled) return;
      // One stream per node: a new one (the agent reconnected) replaces the old.
      const done = services.commands.attach(node, call);
      call.on('cancelled', done);
      call.on('close', done);
      call.on('finish', done);
      call.on('error', done);
      // Headers now, so the agent knows the stream is up before the first command.
      call.sendMetadata(new Metadata());
    })();
  };

  const implementation: UntypedServiceImplementation = {
    enroll,
    reportInventory: unary('reportInventory', services.reportInventory),
    getConfig: unary('getConfig', services.getConfig),
    reportApply: unary('reportApply', services.reportApply),
    reportBoot: unary('reportBoot', services.reportBoot),
    heartbeat: unary('heartbeat', services.heartbeat),
    watch,
  };

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
    push: (node, command, wc) => services.commands.push(node, command, wc),
    watching: () => services.commands.watching(),
    stats() {
      return { calls: { ...calls } };
    },
    async close(graceMs = 2000) {
      if (closed) return;
      closed = true;
      services.commands.endAll();
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

/**
 * `fleet server`: load fleet.yaml, open the data dir, apply the file (it is
 * the source of truth for the declared cluster), build the HTTP app and
 * listen. Each start-up fact is one line, so an admin sees at once what
 * listens where and what is missing.
 */
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadOrCreateApiToken } from './auth/api-token.js';
import { loadConfigFile, resolveSecretDetailed } from './config/index.js';
import { FleetError } from './errors.js';
import { buildApp } from './http/app.js';
import { IpmiTransport } from './bmc/ipmi/transport.js';
import type { ProviderContext } from './bmc/registry.js';
import { applyConfig } from './ops/apply-config.js';
import { openDataDir, type Store } from './store/index.js';
import { caFingerprint, loadOrCreateCa, loadOrCreateServerCert } from './pki/index.js';
import { startGrpcServer, type AgentGrpcServer } from './grpc/index.js';
import { join } from 'node:path';
import { startNetboot, type NetbootService } from './netboot/service.js';
import { BmcSteps, Conductor, resolveLifecycleSettings } from './lifecycle/index.js';
import { RoleOutcome } from '../proto/gen/fleet/v1/agent.js';
import { createServer } from 'node:net';

export const DEFAULT_LISTEN = '127.0.0.1:8080';
export const DEFAULT_DATA_DIR = 'fleet-data';

export interface StartOptions {
  configPath: string;
  /** Overrides fleet.yaml server.data_dir; default ./fleet-data */
  dataDir?: string;
  /** Overrides fleet.yaml server.listen; default 127.0.0.1:8080 */
  listen?: string;
  /** gRPC agent service; default the HTTP host on port 50051 (port 0 when the HTTP port is 0). */
  grpcListen?: string;
  logLevel?: string;
  logStream?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** One line for the admin per start-up fact. */
  say?: (line: string) => void;
  /** Provider settings merged over the defaults (tests point Redfish at http doubles, ipmitool at a path). */
  bmcProviders?: Omit<ProviderContext, 'ipmiTransport'>;
  /** Fan-out defaults for BMC operations. */
  bmc?: { concurrency?: number; timeoutMs?: number; retries?: number };
  /** dnsmasq executable (tests); default from PATH. */
  dnsmasqBinary?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  store: Store;
  grpc: AgentGrpcServer;
  conductor: Conductor;
  /** null when DHCP/TFTP is off or refused (the start-up lines say why). */
  netboot: NetbootService | null;
  /** The address actually bound, e.g. http://127.0.0.1:8080 */
  url: string;
  dataDir: string;
  tokenPath: string;
  close(): Promise<void>;
}

/** "ADDR:PORT", "[v6]:PORT" or ":PORT" → host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new FleetError('usage.invalid', `bad listen address '${listen}' (expected ADDR:PORT, e.g. 127.0.0.1:8080)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** A TCP port that is free on `host` right now (the kernel picks it). */
export async function pickFreePort(host: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((res, rej) => probe.once('error', rej).listen(0, host, res));
  const addr = probe.address();
  await new Promise<void>((res) => probe.close(() => res()));
  if (!addr || typeof addr === 'string') throw new FleetError('internal', 'could not pick a free port');
  return addr.port;
}

/** Port 0 means "any free port": pick one now, because boot scripts must name the port before listen(). */
async function concretePort(host: string, port: number): Promise<number> {
  return port === 0 ? pickFreePort(host) : port;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const say = opts.say ?? (() => {});
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const configPath = resolve(cwd, opts.configPath);

  const loaded = await loadConfigFile(configPath);
  const spec = loaded.spec;
  const dataDir = resolve(cwd, opts.dataDir ?? spec.server?.dataDir ?? DEFAULT_DATA_DIR);
  const listen = parseListen(opts.listen ?? spec.server?.listen ?? DEFAULT_LISTEN);
  const host = listen.host;
  const port = await concretePort(host, listen.port);

  const secrets: Record<string, string> = {};
  for (const cred of spec.credentials) {
    const r = await resolveSecretDetailed(cred, env, loaded.baseDir);
    for (const w of r.warnings) say(`warning: ${w}`);
    secrets[cred.name] = r.secret;
  }

  const { store } = await openDataDir(dataDir);
  let app: FastifyInstance | undefined;
  let ipmiTransport: IpmiTransport | undefined;
  let grpc: AgentGrpcServer | undefined;
  let netboot: NetbootService | null = null;
  let conductor: Conductor | undefined;
  try {
    const token = await loadOrCreateApiToken(dataDir);
    say(`data dir: ${dataDir} (SQLite ${store.file})`);
    say(token.created ? `API token created: ${token.path} (mode 0600)` : `API token: ${token.path}`);

    // Nodes gone from the file that are pets or mid-operation stay (fleet apply --prune removes them); enrolled nodes are never removed.
    const applied = await applyConfig(store, spec, secrets, { actor: 'fleet-server', dryRun: false, held: 'keep' });
    const n = applied.plan.nodes;
    for (const h of n.held) say(`warning: ${h.name} is no longer in ${configPath} but is ${h.reasons.map((r) => (r === 'pet' ? 'a pet' : h.state)).join(' and ')}: kept (fleet apply --prune removes it)`);
    say(
      applied.changed
        ? `config ${configPath} applied: ${n.added.length} added, ${n.changed.length} changed, ${n.removed.length} removed, ${n.unchanged} unchanged nodes`
        : `config ${configPath}: no changes (${n.unchanged} nodes)`,
    );

    // One UDP socket for every IPMI session of this server (DESIGN §2).
    ipmiTransport = await IpmiTransport.open();
    const providers: ProviderContext = { ...opts.bmcProviders, ipmiTransport };
    // The fleet CA: the agent pins its fingerprint (carried in the kickstart) before sending its token.
    const mgmt = spec.cluster.managementAddress;
    const ca = await loadOrCreateCa(dataDir);
    const names = [spec.cluster.managementName, spec.cluster.managementName && `${spec.cluster.managementName}.${spec.cluster.domain}`, 'localhost'];
    const ips = [...new Set([mgmt, '127.0.0.1', ...(/^\d+\.\d+\.\d+\.\d+$/.test(host) && host !== '0.0.0.0' ? [host] : [])])];
    const serverCert = await loadOrCreateServerCert(ca, dataDir, { dnsNames: names.filter((n): n is string => Boolean(n)), ips });
    const grpcListen = opts.grpcListen ?? `${host.includes(':') ? `[${host}]` : host}:${listen.port === 0 ? 0 : 50051}`;
    // The lifecycle: one conductor per server; BMC steps go through the same providers as `fleet power`.
    const lifecycle = new Conductor({
      store,
      steps: new BmcSteps(store, { providers, ...(opts.bmc?.timeoutMs ? { timeoutMs: opts.bmc.timeoutMs } : {}) }),
      settings: resolveLifecycleSettings(spec.lifecycle),
    });
    conductor = lifecycle;
    const signal = (node: string, kind: string, details: Record<string, unknown>): Promise<void> => lifecycle.signal(node, kind, details).then(() => undefined);
    grpc = await startGrpcServer({
      store,
      ca,
      listen: grpcListen,
      serverCert,
      hooks: {
        // The fourth layer of the loop breaker: the agent says how the node booted.
        boot: (node, report, assessment, isNewBoot) => signal(node, 'agent.boot', { bootId: report.bootId, assessment, isNewBoot }),
        applied: (node, r) => {
          const failed = r.results.filter((x) => x.outcome === RoleOutcome.ROLE_OUTCOME_FAILED).map((x) => x.role);
          return signal(node, failed.length ? 'agent.apply_failed' : 'agent.applied', { version: r.configVersion, failed });
        },
      },
    });
    say(`gRPC agent service (TLS) listening on port ${grpc.port}; CA fingerprint ${caFingerprint(ca)}`);

    const www = join(dataDir, 'www');
    app = await buildApp({
      store,
      apiToken: token.token,
      logLevel: opts.logLevel ?? 'info',
      logStream: opts.logStream,
      bmc: { providers, ...opts.bmc },
      netboot: {
        serverUrl: `http://${mgmt}:${port}`,
        caFingerprint: caFingerprint(ca),
        enrolServer: `${mgmt}:${grpc.port}`,
        staticRoots: { repo: join(www, 'repo'), images: join(www, 'images') },
        agentDir: join(www, 'agent'),
        // Script fetches, kickstart fetches and install callbacks move nodes along.
        onSignal: (sig) => signal(sig.node, sig.kind, sig.details),
      },
      // DHCP reservations follow the store's nodes.
      onNodesChanged: async () => netboot?.refresh(),
      conductor: lifecycle,
    });
    lifecycle.setLogger(app.log);
    const recovered = await lifecycle.start();
    say(`lifecycle: conductor running; ${recovered.nodes} node(s) found mid-operation and recovered`);
    await app.listen({ host, port });
    const addr = app.server.address();
    const boundPort = typeof addr === 'object' && addr ? addr.port : port;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
    say(`HTTP API listening on ${url} (OpenAPI at ${url}/api/v1/openapi.json)`);
    say(`boot endpoints for nodes at http://${mgmt}:${boundPort}/boot.ipxe; static trees under ${www}/{repo,images,agent}`);
    netboot = await startNetboot({
      store,
      spec,
      dataDir,
      serverUrl: `http://${mgmt}:${boundPort}`,
      say,
      logger: app.log,
      ...(opts.dnsmasqBinary ? { binary: opts.dnsmasqBinary } : {}),
    });

    const running = app;
    const transport = ipmiTransport;
    const agentService = grpc;
    const dhcp = netboot;
    const theConductor = lifecycle;
    let closed = false;
    return {
      app: running,
      store,
      grpc: agentService,
      netboot: dhcp,
      conductor: theConductor,
      url,
      dataDir,
      tokenPath: token.path,
      async close() {
        if (closed) return;
        closed = true;
        await theConductor.stop();
        await dhcp?.stop();
        await running.close();
        await agentService.close();
        await transport.close();
        await store.close();
      },
    };
  } catch (e) {
    await conductor?.stop();
    await netboot?.stop();
    await app?.close();
    await grpc?.close();
    await ipmiTransport?.close();
    await store.close();
    throw e;
  }
}

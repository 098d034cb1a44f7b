/**
 * `fleet server`: load fleet.yaml, open the data dir, apply the file (it is
 * the source of truth for the declared cluster), build the HTTP app and
 * listen. Each start-up fact is one line, so an admin sees at once what
 * listens where and what is missing.
 */
import { DisklessService } from './diskless/service.js';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadOrCreateApiToken } from './auth/api-token.js';
import { adoptApiToken, BOOTSTRAP_ADMIN } from './auth/users.js';
import { loadConfigFile, resolveSecretDetailed } from './config/index.js';
import { resolveStorePassword } from './config/load.js';
import { FleetError } from '../common/errors.js';
import { buildAdminApp, buildBootApp } from './http/app.js';
import { formatHostPort, isLoopback } from '../common/listen.js';
import { DEFAULT_ADMIN_LISTEN, advertised, planListeners } from './listeners.js';
import type { ClusterSpec, ProfileSpec, ServerSpec } from './model.js';
import { IpmiTransport } from './bmc/ipmi/transport.js';
import { BmcQueue } from './bmc/queue.js';
import type { ProviderContext } from './bmc/registry.js';
import { applyConfig } from './apply/config.js';
import { checkStoreUrl, openDataDir, redactStoreUrl, type PostgresLocation, type Store } from './store/index.js';
import { caFingerprint, loadOrCreateCa, loadOrCreateServerCert, type FleetCa, type ServerCertOptions } from './pki/index.js';
import { startGrpcServer, type AgentGrpcServer } from './grpc/index.js';
import { startNetboot, type NetbootService } from './netboot/service.js';
import { BmcSteps, Conductor, createRecorder, resolveLifecycleSettings } from './lifecycle/index.js';
import { createAutoReconciler, type AutoReconciler } from './inventory/reconcile-run.js';
import { createServer } from 'node:net';
import { blockingFindings, formatFinding, summarize } from './doctor/checks.js';
import { runDoctor, type BootFacts, type GatherOptions } from './doctor/gather.js';
import type { Finding } from './doctor/checks.js';
import { AutoAccept } from './discovery/index.js';
import { FleetMetrics } from './metrics/index.js';
import { ConsoleManager } from './console/manager.js';

export const DEFAULT_LISTEN = DEFAULT_ADMIN_LISTEN;
export const DEFAULT_DATA_DIR = 'fleet-data';

export interface StartOptions {
  configPath: string;
  /** Overrides fleet.yaml server.data_dir; default defaultDataDir, else ./fleet-data */
  dataDir?: string;
  /** Where the data goes when neither dataDir nor fleet.yaml says: $STATE_DIRECTORY under systemd (fleet server). Default ./fleet-data */
  defaultDataDir?: string;
  /** Admin API; overrides fleet.yaml server.listen; default 127.0.0.1:8080 */
  listen?: string;
  /** Boot endpoints; overrides fleet.yaml netboot.http.listen; default the management address, port 8080. */
  bootListen?: string;
  /** gRPC agent service; overrides fleet.yaml server.grpc_listen; default the boot address, port 50051 (port 0 when the admin port is 0). */
  grpcListen?: string;
  /** A PostgreSQL store, postgres://USER@HOST:PORT/DB; overrides fleet.yaml store.url (its password settings still apply). Default: DATA/fleet.db. */
  store?: string;
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
  /** ganesha.nfsd executable (tests); default from PATH. */
  ganeshaBinary?: string;
  /** Where the doctor looks (tests): programs and the iPXE source directory (server/doctor/gather.ts). */
  doctor?: Pick<GatherOptions, 'ip' | 'timedatectl' | 'dnsmasq' | 'ipxeSourceDir'>;
}

export interface RunningServer {
  /** The admin face (REST API). */
  app: FastifyInstance;
  /** The boot face (iPXE scripts, kickstarts, install callbacks, static trees); null when not served. */
  bootApp: FastifyInstance | null;
  store: Store;
  grpc: AgentGrpcServer;
  conductor: Conductor;
  /** null when DHCP/TFTP is off or refused (the start-up lines say why). */
  netboot: NetbootService | null;
  /** The admin API's address actually bound, e.g. http://127.0.0.1:8080 (https:// with server.tls). */
  url: string;
  /** The boot endpoints' address as nodes are told it, e.g. http://10.10.0.1:8080; null when not served. */
  bootUrl: string | null;
  dataDir: string;
  tokenPath: string;
  close(): Promise<void>;
}

/** A TCP port that is free on `host` right now, below the ephemeral range when it can (else the kernel picks one). */
export async function pickFreePort(host: string): Promise<number> {
  // Below the kernel's ephemeral range: a port listen(0) hands out there can be taken, between this probe
  // and the real listen(), as the local port of any outgoing connection on the host (CI saw EADDRINUSE with
  // many loopback clients). Random ports under the range are only ever taken by another listen().
  const low = ephemeralLow();
  if (low > 11_000) {
    for (let i = 0; i < 20; i++) {
      const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
      if (await canListen(host, port)) return port;
    }
  }
  const probe = createServer();
  await new Promise<void>((res, rej) => probe.once('error', rej).listen(0, host, res));
  const addr = probe.address();
  await new Promise<void>((res) => probe.close(() => res()));
  if (!addr || typeof addr === 'string') throw new FleetError('internal', 'could not pick a free port');
  return addr.port;
}

/** The first port of the kernel's ephemeral range (Linux's default 32768 when it cannot be read). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether a listener can take host:port now; a host that is not this host's is an error (EADDRNOTAVAIL). */
async function canListen(host: string, port: number): Promise<boolean> {
  const probe = createServer();
  try {
    await new Promise<void>((res, rej) => probe.once('error', rej).listen(port, host, res));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') return false;
    throw e;
  }
  await new Promise<void>((res) => probe.close(() => res()));
  return true;
}

/** Whether `host` is an address of this host (in this network namespace): a socket can be bound to it. */
async function hostIsLocal(host: string): Promise<boolean> {
  try {
    await pickFreePort(host);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') return false;
    throw e;
  }
}

/** Port 0 means "any free port": pick one now, because boot scripts must name the port before listen(). */
async function concretePort(host: string, port: number): Promise<number> {
  return port === 0 ? pickFreePort(host) : port;
}

/** The admin API's TLS certificate: PEM files named in fleet.yaml, or one issued by the fleet CA. */
async function adminTls(
  tls: NonNullable<ServerSpec['tls']>,
  ca: FleetCa,
  dataDir: string,
  baseDir: string,
  names: ServerCertOptions,
): Promise<{ cert: string; key: string; source: string }> {
  if (tls === 'fleet-ca') {
    const issued = await loadOrCreateServerCert(ca, dataDir, names, { certFile: 'admin.crt', keyFile: 'admin.key' });
    return { cert: issued.certPem, key: issued.keyPem, source: `issued by the fleet CA (${join(dataDir, 'pki', 'admin.crt')})` };
  }
  const read = async (file: string): Promise<string> => {
    const p = resolve(baseDir, file);
    try {
      return await readFile(p, 'utf8');
    } catch (e) {
      throw new FleetError('config.unreadable', `server.tls: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  return { cert: await read(tls.cert), key: await read(tls.key), source: `${resolve(baseDir, tls.cert)}` };
}

/**
 * The PostgreSQL store fleet.yaml's `store:` or --store names, its password read
 * (store.password_file / password_env); undefined: SQLite in the data directory.
 */
async function storeLocation(spec: ClusterSpec, flag: string | undefined, env: NodeJS.ProcessEnv, baseDir: string, say: (line: string) => void): Promise<PostgresLocation | undefined> {
  const configured = flag !== undefined ? { ...spec.store, url: flag } : spec.store;
  if (!configured) return undefined;
  const why = checkStoreUrl(configured.url);
  // Never the URL itself in the message: it may carry a password.
  if (why) throw new FleetError('usage.invalid', `${flag !== undefined ? '--store' : 'store.url'}: the store URL ${why}`);
  const password = await resolveStorePassword(configured, env, baseDir);
  for (const w of password?.warnings ?? []) say(`warning: ${w}`);
  return { url: configured.url, ...(password ? { password: password.secret } : {}) };
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const say = opts.say ?? (() => {});
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const configPath = resolve(cwd, opts.configPath);

  const loaded = await loadConfigFile(configPath);
  const spec = loaded.spec;
  const dataDir = resolve(cwd, opts.dataDir ?? spec.server?.dataDir ?? opts.defaultDataDir ?? DEFAULT_DATA_DIR);
  const mgmt = spec.cluster.managementAddress;
  const plan = planListeners({
    flags: { listen: opts.listen, bootListen: opts.bootListen, grpcListen: opts.grpcListen },
    config: { listen: spec.server?.listen, bootListen: spec.netboot?.http?.listen, grpcListen: spec.server?.grpcListen },
    managementAddress: mgmt,
  });
  // The default boot address is tried, not demanded (server/listeners.ts).
  const bootServed = !plan.bootImplicit || (await hostIsLocal(plan.boot.host));
  const grpcHost = bootServed || opts.grpcListen !== undefined || spec.server?.grpcListen !== undefined ? plan.grpc.host : plan.admin.host;
  const admin = { host: plan.admin.host, port: await concretePort(plan.admin.host, plan.admin.port) };
  const boot = bootServed ? { host: plan.boot.host, port: await concretePort(plan.boot.host, plan.boot.port) } : null;

  const secrets: Record<string, string> = {};
  for (const cred of spec.credentials) {
    const r = await resolveSecretDetailed(cred, env, loaded.baseDir);
    for (const w of r.warnings) say(`warning: ${w}`);
    secrets[cred.name] = r.secret;
  }

  const postgres = await storeLocation(spec, opts.store, env, loaded.baseDir, say);
  const { store } = await openDataDir(dataDir, postgres ? { postgres } : {});
  let app: FastifyInstance | undefined;
  let bootApp: FastifyInstance | undefined;
  let ipmiTransport: IpmiTransport | undefined;
  let grpc: AgentGrpcServer | undefined;
  let netboot: NetbootService | null = null;
  let diskless: DisklessService | undefined;
  let conductor: Conductor | undefined;
  let reconciler: AutoReconciler | undefined;
  let autoAccept: AutoAccept | undefined;
  let stopMetrics: (() => void) | undefined;
  let consoleManager: ConsoleManager | undefined;
  try {
    // Prometheus metrics (/metrics): they follow the event log from before the config is applied.
    const metrics = new FleetMetrics();
    stopMetrics = await metrics.attach(store);
    const token = await loadOrCreateApiToken(dataDir);
    say(`data dir: ${dataDir} (${postgres ? `PostgreSQL ${redactStoreUrl(postgres.url)}` : `SQLite ${store.file}`})`);
    say(token.created ? `API token created: ${token.path} (mode 0600)` : `API token: ${token.path}`);
    const owner = await adoptApiToken(store.users, token.token, token.created);
    if (owner === 'bootstrapped') say(`API users: ${token.path} is the token of user ${BOOTSTRAP_ADMIN} (role admin); fleet user add NAME --role ROLE adds others`);
    if (owner === 'reissued') say(`API users: the new ${token.path} is a token of user ${BOOTSTRAP_ADMIN}`);
    if (owner === 'unowned') say(`warning: ${token.path} belongs to no user (there is no user ${BOOTSTRAP_ADMIN}); the server refuses it`);
    for (const w of plan.warnings) say(`warning: ${w}`);

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
    // ... and one per-BMC queue: `fleet power` and the lifecycle never drive one BMC at the same time.
    const providers: ProviderContext = { ...opts.bmcProviders, ipmiTransport, queue: new BmcQueue(), onOperation: (sample) => metrics.observeBmc(sample) };
    // The fleet CA: the agent pins its fingerprint (carried in the kickstart) before sending its token.
    const ca = await loadOrCreateCa(dataDir);
    const certNames = (hosts: string[]): ServerCertOptions => {
      const names = [spec.cluster.managementName, spec.cluster.managementName && `${spec.cluster.managementName}.${spec.cluster.domain}`, 'localhost'];
      const ips = [...new Set([mgmt, '127.0.0.1', ...hosts.filter((h) => /^\d+\.\d+\.\d+\.\d+$/.test(h) && h !== '0.0.0.0')])];
      return { dnsNames: names.filter((x): x is string => Boolean(x)), ips };
    };
    const serverCert = await loadOrCreateServerCert(ca, dataDir, certNames([grpcHost]));
    // The lifecycle: one conductor per server; BMC steps go through the same providers as `fleet power`.
    const lifecycle = new Conductor({
      store,
      steps: new BmcSteps(store, { providers, ...(opts.bmc?.timeoutMs ? { timeoutMs: opts.bmc.timeoutMs } : {}) }),
      settings: resolveLifecycleSettings(spec.lifecycle),
    });
    conductor = lifecycle;
    // The one way in for facts: services record them (event row, then the conductor).
    const recorder = createRecorder({ store, listener: lifecycle, logger: { error: (o, msg) => app?.log.error(o, msg) } });
    // After each agent inventory report: reconcile it with the node's BMC, in the background (bmc-mismatch flag).
    reconciler = createAutoReconciler({
      store,
      providers,
      ...(opts.bmc?.timeoutMs !== undefined ? { timeoutMs: opts.bmc.timeoutMs } : {}),
      ...(opts.bmc?.retries !== undefined ? { retries: opts.bmc.retries } : {}),
      log: { warn: (o, msg) => app?.log.warn(o, msg) },
    });
    const autoReconcile = reconciler;
    grpc = await startGrpcServer({
      store,
      ca,
      afterInventory: (node) => autoReconcile.schedule(node),
      listen: formatHostPort({ host: grpcHost, port: plan.grpc.port }),
      serverCert,
      // Boot and apply reports reach the conductor through the recorder (server/agents/reports.ts).
      recorder,
    });
    const agentStreams = grpc;
    metrics.setSources({ agentsConnected: () => agentStreams.watching().length });
    say(`gRPC agent service (TLS) listening on ${formatHostPort({ host: grpcHost, port: grpc.port })}; CA fingerprint ${caFingerprint(ca)}`);

    const www = join(dataDir, 'www');
    const bootUrl = boot ? `http://${formatHostPort({ host: plan.advertise.boot, port: boot.port })}` : null;
    // What the renderers need, on both faces: the boot face serves it, the admin face renders it (`fleet render`).
    const netbootDeps = {
      serverUrl: bootUrl ?? `http://${formatHostPort({ host: mgmt, port: plan.boot.port || 8080 })}`,
      caFingerprint: caFingerprint(ca),
      enrolServer: formatHostPort({ host: advertised(grpcHost, mgmt), port: grpc.port }),
      staticRoots: { repo: join(www, 'repo'), images: join(www, 'images') },
      agentDir: join(www, 'agent'),
      // The boot environment (DATA/bootenv/current/) and the image store (DATA/images/) for image installs.
      dataDir,
    };
    // Diskless nodes (docs/diskless.md): their image trees, /var directories and NFS exports, served by
    // fleet's NFS server on the management address; nothing runs while no profile is diskless.
    const bootHost = new URL(netbootDeps.serverUrl).hostname;
    diskless = new DisklessService({
      store,
      dataDir,
      bind: bootHost,
      ...(opts.ganeshaBinary ? { binary: opts.ganeshaBinary } : {}),
      log: (level, msg) => (level === 'warn' ? app?.log.warn(msg) : app?.log.info(msg)),
    });
    const disklessService = diskless;
    const nodesChanged = async (): Promise<void> => {
      await netboot?.refresh();
      // The refresh logs its own failures; a diskless node's plan says them again at its boot.
      await disklessService.refresh().catch((e: Error) => app?.log.warn({ err: e.message }, 'diskless: cannot bring the NFS exports in step'));
    };
    // The doctor (server/doctor): what nodes are told is netbootDeps.serverUrl, whether or not the boot face is served.
    const bootFacts: BootFacts = {
      listenHost: boot?.host ?? plan.boot.host,
      listenPort: boot?.port ?? (plan.boot.port || 8080),
      implicit: plan.bootImplicit,
      advertisedUrl: netbootDeps.serverUrl,
    };
    const doctor = { spec, dataDir, boot: bootFacts, ...(opts.dnsmasqBinary ? { dnsmasq: opts.dnsmasqBinary } : {}), ...(opts.doctor ?? {}) };
    // A reinstall is refused when a check its profiles depend on fails (unless forced); the profiles are the store's, read at each request.
    const preflight = async (profiles: ProfileSpec[]): Promise<Finding[]> => blockingFindings(await runDoctor({ ...doctor, profiles, bmc: false }), profiles);
    const tls = spec.server?.tls ? await adminTls(spec.server.tls, ca, dataDir, loaded.baseDir, certNames([admin.host])) : undefined;
    // Serial consoles; nodes in an install or boot phase get theirs logged without anyone attached.
    const consoles = (consoleManager = new ConsoleManager({
      store,
      providers,
      logDir: join(dataDir, 'console'),
      onWatchError: (node, e) => app?.log.warn({ node, err: e.message }, 'console log: cannot open the serial console (trying again later)'),
      onLogError: (node, e) => app?.log.warn({ node, err: e.message }, 'console log: cannot write the log file; logging stops for this node'),
    }));
    consoles.startWatching();
    app = await buildAdminApp({
      store,
      apiToken: token.token,
      logLevel: opts.logLevel ?? 'info',
      logStream: opts.logStream,
      bmc: { providers, ...opts.bmc },
      // Serial consoles through the BMCs; their output is kept in DATA/console/NODE.log.
      consoles,
      consoleLogDir: join(dataDir, 'console'),
      netboot: netbootDeps,
      // DHCP reservations follow the store's nodes.
      onNodesChanged: async () => nodesChanged(),
      conductor: lifecycle,
      preflight,
      metrics,
      ...(tls ? { https: { cert: tls.cert, key: tls.key } } : {}),
    });
    // Discovery policy auto: a machine a rule plans is accepted when it is seen (lease event or iPXE fetch); under manual nothing happens.
    const auto = new AutoAccept({
      store,
      conductor: lifecycle,
      preflight,
      onNodesChanged: async () => nodesChanged(),
      log: { info: (o, msg) => app?.log.info(o, msg), warn: (o, msg) => app?.log.warn(o, msg) },
    });
    autoAccept = auto;
    const onDiscovered = (mac: string): void => auto.seen(mac);
    // Script fetches, kickstart fetches and install callbacks are facts: the recorder writes them and moves nodes along.
    if (boot) bootApp = await buildBootApp({ store, ...netbootDeps, diskless: disklessService, recorder, onDiscovered, onInspected: onDiscovered, bmcSetup: { providers, conductor: lifecycle }, metrics, logLevel: opts.logLevel ?? 'info', logStream: opts.logStream });
    lifecycle.setLogger(app.log);
    const recovered = await lifecycle.start();
    say(`lifecycle: conductor running; ${recovered.nodes} node(s) found mid-operation and recovered`);
    await app.listen({ host: admin.host, port: admin.port });
    const url = `${tls ? 'https' : 'http'}://${formatHostPort({ host: admin.host, port: boundPort(app, admin.port) })}`;
    say(`HTTP API listening on ${url} (OpenAPI at ${url}/api/v1/openapi.json)${tls ? `; TLS certificate ${tls.source}` : ''}`);
    if (!isLoopback(admin.host) && !tls) say(`warning: the admin API is served without TLS on ${url}; set server.tls`);
    if (bootApp && boot) {
      await bootApp.listen({ host: boot.host, port: boot.port });
      say(`boot endpoints listening on ${formatHostPort(boot)}: nodes fetch ${bootUrl}/boot.ipxe; static trees under ${www}/{repo,images,agent}`);
    } else {
      say(`boot endpoints not served: the management address ${mgmt} is not on this host (set netboot.http.listen or --boot-listen)`);
    }
    // The doctor's findings, one line per warning or failure; they never stop the server.
    try {
      const findings = await runDoctor(doctor);
      for (const f of findings.filter((x) => x.status !== 'ok')) say(`doctor: ${formatFinding(f)}`);
      const n = summarize(findings);
      say(`doctor: ${n.ok} ok, ${n.warn} warn, ${n.fail} fail${n.fail ? '; fleet reinstall refuses profiles that depend on a failed check (fleet doctor --config FILE)' : ''}`);
    } catch (e) {
      say(`doctor: could not run the checks: ${e instanceof Error ? e.message : String(e)}`);
    }
    netboot = await startNetboot({
      store,
      spec,
      dataDir,
      serverUrl: netbootDeps.serverUrl,
      say,
      logger: app.log,
      onDiscovered,
      onLease: (action, outcome) => metrics.observeLease({ action, outcome }),
      ...(opts.dnsmasqBinary ? { binary: opts.dnsmasqBinary } : {}),
    });
    try {
      const st = await disklessService.refresh();
      if (st.exports.length) say(`diskless: NFS (ganesha) exports ${st.exports.length} trees on ${bootHost}: ${st.served.size} node(s) served${st.unserved.size ? `, ${st.unserved.size} not (${[...st.unserved.values()][0]})` : ''}`);
    } catch (e) {
      say(`diskless: cannot serve diskless roots: ${e instanceof Error ? e.message : String(e)} (diskless nodes' plans will say so)`);
    }

    const running = app;
    const bootFace = bootApp ?? null;
    const transport = ipmiTransport;
    const agentService = grpc;
    const dhcp = netboot;
    const theConductor = lifecycle;
    let closed = false;
    return {
      app: running,
      bootApp: bootFace,
      store,
      grpc: agentService,
      netboot: dhcp,
      conductor: theConductor,
      url,
      bootUrl,
      dataDir,
      tokenPath: token.path,
      async close() {
        if (closed) return;
        closed = true;
        // No new acceptances: the batch in progress ends before the conductor it hands installs to.
        await auto.stop();
        await theConductor.stop();
        await dhcp?.stop();
        await disklessService.stop();
        await bootFace?.close();
        await running.close();
        await agentService.close();
        // No new reports now: end the reconciliations in progress before the socket and the store go.
        autoReconcile.stop();
        await autoReconcile.idle();
        await transport.close();
        stopMetrics?.();
        await store.close();
      },
    };
  } catch (e) {
    await consoleManager?.stop();
    await autoAccept?.stop();
    await conductor?.stop();
    await netboot?.stop();
    await diskless?.stop();
    await bootApp?.close();
    await app?.close();
    await grpc?.close();
    reconciler?.stop();
    await reconciler?.idle();
    await ipmiTransport?.close();
    stopMetrics?.();
    await store.close();
    throw e;
  }
}

function boundPort(app: FastifyInstance, fallback: number): number {
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : fallback;
}

/**
 * A stateful Redfish BMC double for tests. It speaks the real wire format
 * over HTTPS (or plain HTTP) on 127.0.0.1 and serves one of the DMTF mockups
 * in ../shared/redfish-mockups (read only, never written) with state on top:
 * sessions, basic auth, ComputerSystem.Reset → PowerState, Boot PATCH
 * (validated against AllowableValues, ETags / If-Match), and switches for the
 * vendor quirks and faults fleet must survive.
 *
 *   const bmc = await RedfishDouble.start({ mockup: 'public-rackmount1', tls: pki.server });
 *   ... bmc.requests, bmc.liveSessions, bmc.switches.fail500 = ['/redfish/v1/Systems/*'] ...
 *   await bmc.close();
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** ../shared/redfish-mockups relative to the repository root; FLEET_REDFISH_MOCKUPS overrides it (a git worktree elsewhere). */
export const MOCKUPS_DIR = process.env['FLEET_REDFISH_MOCKUPS'] ?? resolve(REPO_ROOT, '..', 'shared', 'redfish-mockups');

/** A path matcher: exact path (trailing slash ignored), a prefix when it ends with '*', or a RegExp. */
export type PathMatch = string | RegExp;

export interface RedfishDoubleSwitches {
  /** BootSourceOverrideEnabled=Once is accepted (204) and silently ignored: the override does not change. */
  onceIgnored?: boolean;
  /** BootSourceOverrideEnabled=Once is accepted (204) and stored as Continuous (the override stays after the boot). */
  onceAsContinuous?: boolean;
  /** A Boot PATCH without BootSourceOverrideMode gets 400. */
  modeRequired?: boolean;
  /** A Boot PATCH with BootSourceOverrideMode=UEFI gets 400. */
  uefiRejected?: boolean;
  /** Reset answers 204 at once but PowerState changes only this many ms later. */
  powerDelayMs?: number;
  /** These paths (any method) answer 500 with a Redfish error body. */
  fail500?: PathMatch[];
  /** The ExtendedInfo message of fail500 answers. */
  fail500Message?: string;
  /** Wait this long before answering (paths: slowPaths, default all). */
  slowMs?: number;
  slowPaths?: PathMatch[];
  /** These paths answer 200 with a body that is not JSON. */
  garbage?: PathMatch[];
  /** Live sessions allowed; more POSTs get 503 (SessionLimitExceeded). */
  maxSessions?: number;
  /** Accept HTTP basic auth (default true). */
  basicAuth?: boolean;
  /** A session login (POST to Sessions) answers this status with an error body instead of creating a session. */
  sessionLoginStatus?: number;
  /** The service root answers without credentials (default true, as DSP0266 requires); false: 401 like any resource. */
  anonymousRoot?: boolean;
  /** Replaces ResetType@Redfish.AllowableValues of every system. */
  resetTypes?: string[];
  /** The next N PATCHes carrying If-Match get 412 as if the resource had changed underneath (counts down). */
  staleEtagPatches?: number;
  /** Replaces BootSourceOverrideMode@Redfish.AllowableValues (absent in the mockups). */
  bootModes?: string[];
}

export interface RedfishDoubleOptions extends RedfishDoubleSwitches {
  /** A folder name under MOCKUPS_DIR or an absolute path. Default 'public-rackmount1'. */
  mockup?: string;
  /**
   * A service without a SessionService (default true: the mockup's): when false the service root has no
   * SessionService nor Links.Sessions, /redfish/v1/SessionService answers 404 and a session login is refused;
   * only HTTP Basic authenticates.
   */
  sessionService?: boolean;
  /**
   * A multi-system BMC (blade chassis): these ComputerSystem Ids replace the mockup's systems, each a copy
   * of the mockup's first system with its own state (PowerState, Boot, Reset target, SerialNumber).
   */
  systems?: string[];
  /** Default 'admin'. */
  username?: string;
  /** Default 'fleet-test-password'. */
  password?: string;
  /** Certificate and key (PEM) for HTTPS. Without it, scheme must be 'http'. */
  tls?: { cert: string; key: string };
  scheme?: 'https' | 'http';
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  chunked: boolean;
  contentLength?: number;
  status?: number;
}

export interface BootRecord {
  system: string;
  /** BootSourceOverrideTarget in force for this boot ('None' when no override). */
  target: string;
  enabled: string;
  mode?: string;
}

interface SystemState {
  path: string;
  json: Record<string, unknown>;
  resetTarget?: string;
}

interface SessionRec {
  id: string;
  token: string;
  path: string;
  user: string;
}

type Json = Record<string, unknown>;

const ENABLED_VALUES = ['Disabled', 'Once', 'Continuous'];
const MODE_VALUES = ['UEFI', 'Legacy'];
const OPEN_PATHS = new Set(['/redfish', '/redfish/v1', '/redfish/v1/odata', '/redfish/v1/$metadata']);

function trimPath(p: string): string {
  const noQuery = p.split('?')[0] ?? '';
  return noQuery.length > 1 ? noQuery.replace(/\/+$/, '') : noQuery;
}

export function pathMatches(m: PathMatch, path: string): boolean {
  if (m instanceof RegExp) return m.test(path);
  if (m.endsWith('*')) return path.startsWith(m.slice(0, -1));
  return trimPath(m) === trimPath(path);
}

export class RedfishDouble {
  readonly address = '127.0.0.1';
  readonly scheme: 'https' | 'http';
  readonly username: string;
  readonly password: string;
  readonly mockupDir: string;
  /** Switches may be changed while the double runs. */
  switches: RedfishDoubleSwitches;
  readonly requests: RecordedRequest[] = [];
  readonly boots: BootRecord[] = [];
  readonly resets: { system: string; resetType: string }[] = [];
  sessionsCreated = 0;
  sessionsDeleted = 0;
  /** TCP connections accepted (keep-alive reuse shows as few connections for many requests). */
  connections = 0;

  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sessions = new Map<string, SessionRec>();
  private readonly systems = new Map<string, SystemState>();
  private sessionsPath = '/redfish/v1/SessionService/Sessions';
  private readonly sessionService: boolean;
  private readonly systemIds: string[] | undefined;
  private _port = 0;

  private constructor(opts: RedfishDoubleOptions) {
    const { mockup, username, password, tls, scheme, sessionService, systems, ...switches } = opts;
    this.sessionService = sessionService ?? true;
    this.systemIds = systems;
    this.mockupDir = mockup === undefined ? join(MOCKUPS_DIR, 'public-rackmount1') : mockup.startsWith('/') ? mockup : join(MOCKUPS_DIR, mockup);
    if (!existsSync(join(this.mockupDir, 'index.json'))) throw new Error(`no Redfish mockup at ${this.mockupDir}`);
    this.username = username ?? 'admin';
    this.password = password ?? 'fleet-test-password';
    this.scheme = scheme ?? (tls ? 'https' : 'http');
    if (this.scheme === 'https' && !tls) throw new Error('RedfishDouble: https needs tls { cert, key }');
    this.switches = { basicAuth: true, ...switches };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.send(res, 500, errorBody('InternalError', `double failed: ${String(e)}`));
      });
    };
    this.server = this.scheme === 'https' ? createHttpsServer({ cert: tls!.cert, key: tls!.key }, handler) : createHttpServer(handler);
    this.server.keepAliveTimeout = 30_000;
    this.server.on(this.scheme === 'https' ? 'secureConnection' : 'connection', () => this.connections++);
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('tlsClientError', () => undefined);
    this.loadState();
  }

  static async start(opts: RedfishDoubleOptions = {}): Promise<RedfishDouble> {
    const d = new RedfishDouble(opts);
    await new Promise<void>((ok, fail) => {
      d.server.once('error', fail);
      d.server.listen(0, '127.0.0.1', () => ok());
    });
    d._port = (d.server.address() as AddressInfo).port;
    return d;
  }

  get port(): number {
    return this._port;
  }
  get url(): string {
    return `${this.scheme}://127.0.0.1:${this._port}`;
  }
  get liveSessions(): number {
    return this.sessions.size;
  }
  /** @odata.id of every ComputerSystem. */
  get systemPaths(): string[] {
    return [...this.systems.keys()];
  }
  /** Live state of a system (first one by default; a path or, for `systems`, an Id): PowerState, Boot, ... */
  system(path?: string): Json {
    const key = path === undefined ? undefined : path.startsWith('/') ? trimPath(path) : `/redfish/v1/Systems/${path}`;
    const s = key ? this.systems.get(key) : this.systems.values().next().value;
    if (!s) throw new Error(`no system ${path}`);
    return s.json;
  }
  setPowerState(state: 'On' | 'Off', path?: string): void {
    this.system(path)['PowerState'] = state;
  }
  /** Tokens of live sessions (so tests can check none leaks into messages). */
  get liveTokens(): string[] {
    return [...this.sessions.values()].map((s) => s.token);
  }
  /** Every token ever issued. */
  readonly issuedTokens: string[] = [];

  /** Presents another certificate from the next connection on, and drops the open ones. */
  rotateCertificate(tls: { cert: string; key: string }): void {
    if (this.scheme !== 'https') throw new Error('rotateCertificate needs https');
    (this.server as unknown as { setSecureContext(o: { cert: string; key: string }): void }).setSecureContext(tls);
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closed = new Promise<void>((ok) => this.server.close(() => ok()));
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  // --- state

  private readMockup(path: string): Json | undefined {
    const rel = trimPath(path).replace(/^\/redfish\/v1/, '');
    const segs = rel.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    if (segs.some((s) => s === '..' || s === '.' || s.includes('\0') || s.includes('/') || s.includes('\\'))) return undefined;
    const file = join(this.mockupDir, ...segs, 'index.json');
    if (!file.startsWith(this.mockupDir + '/') || !existsSync(file)) return undefined;
    return JSON.parse(readFileSync(file, 'utf8')) as Json;
  }

  private loadState(): void {
    const root = this.readMockup('/redfish/v1/')!;
    const sessions = ((root['Links'] as Json | undefined)?.['Sessions'] as Json | undefined)?.['@odata.id'];
    if (typeof sessions === 'string') this.sessionsPath = trimPath(sessions);
    const sysColl = this.readMockup('/redfish/v1/Systems');
    if (this.systemIds) {
      const first = trimPath(String(((sysColl?.['Members'] as Json[] | undefined) ?? [])[0]?.['@odata.id']));
      const template = this.readMockup(first);
      if (!template) throw new Error(`mockup ${this.mockupDir} has no system to copy`);
      for (const id of this.systemIds) {
        const path = `/redfish/v1/Systems/${id}`;
        const json = structuredClone(template);
        json['@odata.id'] = path;
        json['Id'] = id;
        json['Name'] = `Blade ${id}`;
        json['SerialNumber'] = `${String(template['SerialNumber'] ?? 'SN')}-${id}`;
        const reset = (json['Actions'] as Json | undefined)?.['#ComputerSystem.Reset'] as Json | undefined;
        if (reset) reset['target'] = `${path}/Actions/ComputerSystem.Reset`;
        this.systems.set(path, { path, json, ...(reset ? { resetTarget: `${path}/Actions/ComputerSystem.Reset` } : {}) });
      }
      return;
    }
    for (const m of (sysColl?.['Members'] as Json[] | undefined) ?? []) {
      const path = trimPath(String(m['@odata.id']));
      const json = this.readMockup(path);
      if (!json) continue;
      const reset = ((json['Actions'] as Json | undefined)?.['#ComputerSystem.Reset'] as Json | undefined)?.['target'];
      this.systems.set(path, { path, json, ...(typeof reset === 'string' ? { resetTarget: trimPath(reset) } : {}) });
    }
  }

  /** The system as served: the live JSON with switch overrides applied. */
  private view(s: SystemState): Json {
    const out = structuredClone(s.json);
    const reset = (out['Actions'] as Json | undefined)?.['#ComputerSystem.Reset'] as Json | undefined;
    if (reset && this.switches.resetTypes) reset['ResetType@Redfish.AllowableValues'] = [...this.switches.resetTypes];
    const boot = out['Boot'] as Json | undefined;
    if (boot && this.switches.bootModes) boot['BootSourceOverrideMode@Redfish.AllowableValues'] = [...this.switches.bootModes];
    return out;
  }

  private etagOf(json: Json): string {
    return `W/"${createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 16)}"`;
  }

  // --- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const method = req.method ?? 'GET';
    const path = trimPath(req.url ?? '/');
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const rec: RecordedRequest = {
      method,
      path,
      headers: { ...req.headers },
      body,
      chunked: typeof te === 'string' && te.toLowerCase().includes('chunked'),
      ...(cl !== undefined ? { contentLength: Number(cl) } : {}),
    };
    this.requests.push(rec);
    const sw = this.switches;

    if (sw.slowMs && (!sw.slowPaths || sw.slowPaths.some((m) => pathMatches(m, path)))) {
      await new Promise<void>((ok) => {
        const t = setTimeout(() => {
          this.timers.delete(t);
          ok();
        }, sw.slowMs);
        this.timers.add(t);
      });
      if (res.destroyed || req.socket.destroyed) return;
    }
    const reply = (status: number, json?: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      this.send(res, status, json, headers);
    };

    if (sw.garbage?.some((m) => pathMatches(m, path))) {
      rec.status = 200;
      const text = '<html><body>Service Unavailable: BMC web server restarting</body></html>';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (sw.fail500?.some((m) => pathMatches(m, path))) {
      return reply(500, errorBody('InternalError', sw.fail500Message ?? `The request failed due to an internal service error (simulated on ${path}).`));
    }

    // Sessions: login is the one unauthenticated POST. A service without SessionService has no such resource.
    if (!this.sessionService && (path === '/redfish/v1/SessionService' || path.startsWith('/redfish/v1/SessionService/'))) {
      return reply(404, errorBody('ResourceMissingAtURI', `The resource at the URI ${path} was not found.`));
    }
    if (method === 'POST' && path === this.sessionsPath && sw.sessionLoginStatus !== undefined) {
      return reply(sw.sessionLoginStatus, errorBody('OperationNotAllowed', `The HTTP method POST is not allowed on ${path}.`));
    }
    if (method === 'POST' && path === this.sessionsPath) return this.login(body, reply);
    const open = method === 'GET' && OPEN_PATHS.has(path) && !(sw.anonymousRoot === false && path === '/redfish/v1');
    if (!open) {
      if (!this.authorised(req)) {
        return reply(401, errorBody('NoValidSession', 'There is no valid session established with the implementation.'), {
          'www-authenticate': 'Basic realm="fleet-double"',
        });
      }
    }

    if (method === 'GET') return this.get(path, reply);
    if (method === 'DELETE' && path.startsWith(this.sessionsPath + '/')) {
      const s = [...this.sessions.values()].find((x) => x.path === path);
      if (!s) return reply(404, errorBody('ResourceMissingAtURI', `The resource at the URI ${path} was not found.`));
      this.sessions.delete(s.token);
      this.sessionsDeleted++;
      return reply(204);
    }
    const sys = [...this.systems.values()].find((s) => s.resetTarget === path);
    if (method === 'POST' && sys) return this.reset(sys, body, reply);
    const target = this.systems.get(path);
    if (method === 'PATCH' && target) return this.patchSystem(target, req, body, reply);
    if (this.readMockup(path) || this.systems.has(path)) {
      return reply(405, errorBody('OperationNotAllowed', `The HTTP method ${method} is not allowed on ${path}.`));
    }
    return reply(404, errorBody('ResourceMissingAtURI', `The resource at the URI ${path} was not found.`));
  }

  private send(res: ServerResponse, status: number, json?: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    if (json === undefined) {
      res.writeHead(status, { 'odata-version': '4.0', ...headers });
      res.end();
      return;
    }
    const text = JSON.stringify(json);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'odata-version': '4.0',
      ...headers,
    });
    res.end(text);
  }

  private authorised(req: IncomingMessage): boolean {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && this.sessions.has(token)) return true;
    const auth = req.headers['authorization'];
    if (typeof auth === 'string' && auth.startsWith('Basic ') && this.switches.basicAuth !== false) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      return u === this.username && rest.join(':') === this.password;
    }
    return false;
  }

  private login(body: string, reply: (s: number, j?: unknown, h?: Record<string, string>) => void): void {
    let creds: Json;
    try {
      creds = JSON.parse(body) as Json;
    } catch {
      return reply(400, errorBody('MalformedJSON', 'The request body submitted was malformed JSON.'));
    }
    if (creds['UserName'] !== this.username || creds['Password'] !== this.password) {
      return reply(401, errorBody('ResourceAtUriUnauthorized', 'While accessing the resource, the service received an authorization error.'));
    }
    if (this.switches.maxSessions !== undefined && this.sessions.size >= this.switches.maxSessions) {
      return reply(503, errorBody('SessionLimitExceeded', 'The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.'));
    }
    const id = randomBytes(8).toString('hex').toUpperCase();
    const token = randomBytes(24).toString('hex');
    const path = `${this.sessionsPath}/${id}`;
    this.sessions.set(token, { id, token, path, user: this.username });
    this.issuedTokens.push(token);
    this.sessionsCreated++;
    reply(
      201,
      { '@odata.type': '#Session.v1_8_0.Session', '@odata.id': path, Id: id, Name: 'User Session', UserName: this.username },
      { 'x-auth-token': token, location: path },
    );
  }

  private get(path: string, reply: (s: number, j?: unknown, h?: Record<string, string>) => void): void {
    if (path === '/redfish') return reply(200, { v1: '/redfish/v1/' });
    let json: Json | undefined;
    const sys = this.systems.get(path);
    if (sys) json = this.view(sys);
    else if (path === this.sessionsPath) {
      json = {
        '@odata.type': '#SessionCollection.SessionCollection',
        '@odata.id': this.sessionsPath,
        Name: 'Session Collection',
        'Members@odata.count': this.sessions.size,
        Members: [...this.sessions.values()].map((s) => ({ '@odata.id': s.path })),
      };
    } else if (path.startsWith(this.sessionsPath + '/')) {
      const s = [...this.sessions.values()].find((x) => x.path === path);
      if (s) json = { '@odata.type': '#Session.v1_8_0.Session', '@odata.id': s.path, Id: s.id, UserName: s.user };
    } else if (path === '/redfish/v1/Systems' && this.systemIds) {
      json = {
        '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection',
        '@odata.id': '/redfish/v1/Systems',
        Name: 'Computer System Collection',
        'Members@odata.count': this.systems.size,
        Members: [...this.systems.keys()].map((p) => ({ '@odata.id': p })),
      };
    } else {
      json = this.readMockup(path === '/redfish/v1' ? '/redfish/v1/' : path);
      if (json && path === '/redfish/v1' && !this.sessionService) {
        delete json['SessionService'];
        const links = json['Links'] as Json | undefined;
        if (links) delete links['Sessions'];
      }
    }
    if (!json) return reply(404, errorBody('ResourceMissingAtURI', `The resource at the URI ${path} was not found.`));
    reply(200, json, { etag: this.etagOf(json) });
  }

  private reset(sys: SystemState, body: string, reply: (s: number, j?: unknown) => void): void {
    let rt: unknown;
    try {
      rt = (JSON.parse(body) as Json)['ResetType'];
    } catch {
      return reply(400, errorBody('MalformedJSON', 'The request body submitted was malformed JSON.'));
    }
    const action = (this.view(sys)['Actions'] as Json)['#ComputerSystem.Reset'] as Json;
    const allowed = (action['ResetType@Redfish.AllowableValues'] as string[] | undefined) ?? [];
    if (typeof rt !== 'string' || !allowed.includes(rt)) {
      return reply(400, errorBody('ActionParameterNotSupported', `The parameter ResetType=${String(rt)} is not supported by the action ComputerSystem.Reset.`));
    }
    this.resets.push({ system: sys.path, resetType: rt });
    const apply = () => {
      const on = sys.json['PowerState'] === 'On';
      switch (rt) {
        case 'On':
        case 'ForceOn':
          if (!on) this.powerOn(sys);
          break;
        case 'ForceOff':
        case 'GracefulShutdown':
          sys.json['PowerState'] = 'Off';
          break;
        case 'PushPowerButton':
          if (on) sys.json['PowerState'] = 'Off';
          else this.powerOn(sys);
          break;
        case 'ForceRestart':
        case 'GracefulRestart':
        case 'PowerCycle':
          this.powerOn(sys);
          break;
        default:
          break; // Nmi
      }
    };
    const delay = this.switches.powerDelayMs ?? 0;
    if (delay > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        apply();
      }, delay);
      this.timers.add(t);
    } else {
      apply();
    }
    reply(204);
  }

  /** A boot: records which override was used and consumes a Once override. */
  private powerOn(sys: SystemState): void {
    sys.json['PowerState'] = 'On';
    const boot = (sys.json['Boot'] as Json | undefined) ?? {};
    const enabled = String(boot['BootSourceOverrideEnabled'] ?? 'Disabled');
    this.boots.push({
      system: sys.path,
      target: enabled === 'Disabled' ? 'None' : String(boot['BootSourceOverrideTarget'] ?? 'None'),
      enabled,
      ...(typeof boot['BootSourceOverrideMode'] === 'string' ? { mode: boot['BootSourceOverrideMode'] } : {}),
    });
    if (enabled === 'Once') boot['BootSourceOverrideEnabled'] = 'Disabled';
  }

  private patchSystem(sys: SystemState, req: IncomingMessage, body: string, reply: (s: number, j?: unknown) => void): void {
    let patch: Json;
    try {
      patch = JSON.parse(body) as Json;
    } catch {
      return reply(400, errorBody('MalformedJSON', 'The request body submitted was malformed JSON.'));
    }
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
      return reply(400, errorBody('MalformedJSON', 'The request body submitted was malformed JSON.'));
    }
    const ifMatch = req.headers['if-match'];
    if (typeof ifMatch === 'string' && (this.switches.staleEtagPatches ?? 0) > 0) {
      this.switches.staleEtagPatches = (this.switches.staleEtagPatches ?? 0) - 1;
      return reply(412, errorBody('PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.'));
    }
    if (typeof ifMatch === 'string' && ifMatch !== '*' && ifMatch !== this.etagOf(this.view(sys))) {
      return reply(412, errorBody('PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.'));
    }
    for (const k of Object.keys(patch)) {
      if (k !== 'Boot') return reply(400, errorBody('PropertyNotWritable', `The property ${k} is a read only property and cannot be assigned a value.`));
    }
    const b = patch['Boot'];
    if (typeof b !== 'object' || b === null || Array.isArray(b)) {
      return reply(400, errorBody('PropertyValueTypeError', 'The value for the property Boot is of a different type than the property can accept.'));
    }
    const bp = b as Json;
    const view = this.view(sys)['Boot'] as Json;
    const allowedTargets = (view['BootSourceOverrideTarget@Redfish.AllowableValues'] as string[] | undefined) ?? [];
    const allowedModes = (view['BootSourceOverrideMode@Redfish.AllowableValues'] as string[] | undefined) ?? MODE_VALUES;
    const allowedEnabled = (view['BootSourceOverrideEnabled@Redfish.AllowableValues'] as string[] | undefined) ?? ENABLED_VALUES;
    const known = ['BootSourceOverrideTarget', 'BootSourceOverrideEnabled', 'BootSourceOverrideMode'];
    for (const k of Object.keys(bp)) {
      if (!known.includes(k)) return reply(400, errorBody('PropertyNotWritable', `The property ${k} is a read only property and cannot be assigned a value.`));
    }
    const bad = (prop: string, v: unknown) =>
      reply(400, errorBody('PropertyValueNotInList', `The value ${JSON.stringify(v)} for the property ${prop} is not in the list of acceptable values.`));
    if ('BootSourceOverrideTarget' in bp && !allowedTargets.includes(bp['BootSourceOverrideTarget'] as string)) {
      return bad('BootSourceOverrideTarget', bp['BootSourceOverrideTarget']);
    }
    if ('BootSourceOverrideEnabled' in bp && !allowedEnabled.includes(bp['BootSourceOverrideEnabled'] as string)) {
      return bad('BootSourceOverrideEnabled', bp['BootSourceOverrideEnabled']);
    }
    if ('BootSourceOverrideMode' in bp && !allowedModes.includes(bp['BootSourceOverrideMode'] as string)) {
      return bad('BootSourceOverrideMode', bp['BootSourceOverrideMode']);
    }
    if (this.switches.modeRequired && !('BootSourceOverrideMode' in bp)) {
      return reply(400, errorBody('PropertyMissing', 'The property BootSourceOverrideMode is a required property and must be included in the request.'));
    }
    if (this.switches.uefiRejected && bp['BootSourceOverrideMode'] === 'UEFI') {
      return bad('BootSourceOverrideMode', 'UEFI');
    }
    if (this.switches.onceIgnored && bp['BootSourceOverrideEnabled'] === 'Once') {
      return reply(204); // accepted, and ignored
    }
    const boot = (sys.json['Boot'] as Json | undefined) ?? {};
    for (const k of known) if (k in bp) boot[k] = bp[k];
    if (this.switches.onceAsContinuous && bp['BootSourceOverrideEnabled'] === 'Once') boot['BootSourceOverrideEnabled'] = 'Continuous';
    sys.json['Boot'] = boot;
    reply(204);
  }
}

function errorBody(id: string, message: string): Json {
  return {
    error: {
      code: `Base.1.5.0.${id}`,
      message,
      '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: `Base.1.5.0.${id}`, Message: message, Severity: 'Warning' }],
    },
  };
}

// --- test PKI

export interface TestPki {
  dir: string;
  /** CA that signed the server certificate. */
  caPem: string;
  /** A CA that signed nothing the double presents. */
  otherCaPem: string;
  server: { cert: string; key: string };
  /** SHA-256 fingerprint of server.cert, upper-case colon form. */
  fingerprint: string;
  /** A second server certificate (same CA) with its own fingerprint. */
  server2: { cert: string; key: string };
  fingerprint2: string;
}

/** Generates a CA, another CA and two server certificates for 127.0.0.1 with the openssl CLI into dir. */
export function makeTestPki(dir: string): TestPki {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    run('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=fleet test ${ca}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  }
  writeFileSync(join(dir, 'server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const s of ['server', 'server2']) {
    run('req', ...ec, '-keyout', `${s}.key`, '-out', `${s}.csr`, '-subj', '/CN=127.0.0.1');
    run('x509', '-req', '-in', `${s}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${s}.pem`, '-days', '2', '-extfile', 'server.ext');
  }
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256.toUpperCase();
  return {
    dir,
    caPem: read('ca.pem'),
    otherCaPem: read('other-ca.pem'),
    server: { cert: read('server.pem'), key: read('server.key') },
    fingerprint: fp(read('server.pem')),
    server2: { cert: read('server2.pem'), key: read('server2.key') },
    fingerprint2: fp(read('server2.pem')),
  };
}

/**
 * A small Redfish client on undici (ADR 0003).
 *
 *  - one keep-alive Pool per BMC, few connections (BMCs are small);
 *  - service root discovery, links followed by `@odata.id`, never guessed;
 *  - auth: a Redfish session (POST SessionService/Sessions → X-Auth-Token +
 *    Location, DELETEd by close(), also after errors) or HTTP basic auth;
 *    'auto' (the default) reads the service root (open to anyone, DSP0266)
 *    and uses a session when the service offers a SessionService, else Basic
 *    (decideAuth in decide.ts);
 *  - one deadline per request covering connect, headers and body → bmc.timeout;
 *  - bodies always sent with Content-Length (never chunked);
 *  - TLS trust per tls.ts (CA, pinned fingerprint, trust on first use);
 *  - errors: 401/403 → bmc.auth_failed, other 4xx/5xx → bmc.command_failed with
 *    the Redfish ExtendedInfo message, anything unparsable → bmc.protocol.
 * Messages never contain the password or the session token.
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { FleetError, isFleetError } from '../../../common/errors.js';
import { decideAuth, type AuthDecision } from './decide.js';
import { extractRedfishError, isObject, linkOf, linksOf, obj, resolveLink, str, type JsonObject } from './parse.js';
import { trustingConnector, type RedfishTlsOptions, type TrustState } from './tls.js';

/** How the client authenticates; 'auto': a session when the service offers a SessionService, else Basic. */
export type RedfishAuthMode = 'session' | 'basic' | 'auto';

export interface RedfishClientOptions {
  address: string;
  /** Default 443. */
  port?: number;
  username: string;
  password: string;
  /** Default 'auto'. */
  auth?: RedfishAuthMode;
  /** Default 'https'. 'insecure-http' sends credentials in clear text: labs and tests only. */
  scheme?: 'https' | 'insecure-http';
  tls?: RedfishTlsOptions;
  /** Trust on first use: called once with the SHA-256 fingerprint of the accepted certificate (the caller records it). */
  onFirstContact?: (fingerprint: string) => void;
  /** Deadline of one request (connect + headers + body), ms. Default 10000. */
  timeoutMs?: number;
  /** Largest response body accepted, bytes. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Parallel connections to the BMC. Default 2. */
  connections?: number;
}

export interface RedfishResponse {
  status: number;
  headers: Record<string, string>;
  etag?: string;
  /** Parsed JSON body, undefined when the body was empty. */
  body: unknown;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as If-Match. */
  etag?: string;
  /** Send no credentials (service root, session login). */
  anonymous?: boolean;
}

const SERVICE_ROOT = '/redfish/v1/';

interface Session {
  token: string;
  path: string;
}

class TimeoutMarker extends Error {}

/** A socket error that may come from a keep-alive connection the BMC closed; carries the mapped error. */
class StaleSocketError extends Error {
  constructor(readonly mapped: FleetError) {
    super(mapped.message);
  }
}

export class RedfishClient {
  readonly address: string;
  readonly port: number;
  /** As configured ('auto' until decided; see authInUse). */
  readonly auth: RedfishAuthMode;
  private decided: AuthDecision | undefined;
  private readonly username: string;
  private readonly password: string;
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly pool: Pool;
  private readonly trust: TrustState = {};
  private readonly where: string;
  private session: Session | undefined;
  private loginPromise: Promise<Session> | undefined;
  private root: JsonObject | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: RedfishClientOptions) {
    this.address = opts.address;
    this.port = opts.port ?? 443;
    this.auth = opts.auth ?? 'auto';
    if (this.auth !== 'auto') this.decided = { mode: this.auth, reason: 'configured' };
    this.username = opts.username;
    this.password = opts.password;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
    this.where = `${this.address}:${this.port}`;
    const scheme = opts.scheme ?? 'https';
    const host = this.address.includes(':') && !this.address.startsWith('[') ? `[${this.address}]` : this.address;
    const origin = `${scheme === 'https' ? 'https' : 'http'}://${host}:${this.port}`;
    this.pool = new Pool(origin, {
      connections: opts.connections ?? 2,
      pipelining: 1,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      keepAliveTimeout: 10_000,
      connect:
        scheme === 'https'
          ? trustingConnector({
              address: this.address,
              port: this.port,
              tls: opts.tls ?? {},
              timeoutMs: this.timeoutMs,
              state: this.trust,
              ...(opts.onFirstContact ? { onFirstContact: opts.onFirstContact } : {}),
            })
          : { timeout: this.timeoutMs },
    });
  }

  /** SHA-256 fingerprint of the last certificate seen (upper-case colon form); undefined before the first TLS connection. */
  get seenFingerprint(): string | undefined {
    return this.trust.lastSeen;
  }

  /** The authentication in use: 'session' or 'basic' once decided (auto decides on the first request). */
  get authInUse(): AuthDecision | undefined {
    return this.decided;
  }

  /** Decides auto from the service root (read without credentials). */
  private async authMode(): Promise<'session' | 'basic'> {
    if (this.decided) return this.decided.mode;
    const root = await this.serviceRoot();
    if (!this.decided) this.decided = decideAuth('auto', root);
    return this.decided.mode;
  }

  /** True while a Redfish session is held (it will be DELETEd by close()). */
  get hasSession(): boolean {
    return this.session !== undefined;
  }

  // --- discovery

  /** GET /redfish/v1/ (cached). */
  async serviceRoot(): Promise<JsonObject> {
    // The root is readable without credentials (DSP0266); Basic sends them only where Basic is the choice.
    if (this.root) return this.root;
    try {
      this.root = (await this.getJson(SERVICE_ROOT, { anonymous: this.decided?.mode !== 'basic' })).body;
    } catch (e) {
      // auto: a root that wants credentials says nothing about sessions; Basic is the one way left.
      if (this.decided || !isFleetError(e) || e.code !== 'bmc.auth_failed') throw e;
      this.decided = { mode: 'basic', reason: 'the service root refuses anonymous reads' };
      this.root = (await this.getJson(SERVICE_ROOT)).body;
    }
    return this.root;
  }

  /** Resolves a link of the service root (Systems, Managers, SessionService). */
  async rootLink(name: string): Promise<string> {
    const id = linkOf(await this.serviceRoot(), name);
    if (id === undefined) throw new FleetError('bmc.protocol', `Redfish service root of BMC ${this.where} has no ${name} link`);
    return resolveLink(id);
  }

  /** Member paths of a collection, following Members@odata.nextLink. */
  async members(collectionPath: string): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = collectionPath;
    for (let page = 0; next !== undefined && page < 100; page++) {
      const { body }: { body: JsonObject } = await this.getJson(next);
      if (!Array.isArray(body['Members'])) {
        throw new FleetError('bmc.protocol', `Redfish collection ${next} of BMC ${this.where} has no Members array`);
      }
      for (const m of linksOf(body, 'Members')) out.push(resolveLink(m));
      const nl = str(body, 'Members@odata.nextLink');
      next = nl !== undefined ? resolveLink(nl) : undefined;
    }
    return out;
  }

  // --- verbs

  async getJson(path: string, opts: RequestOptions = {}): Promise<{ body: JsonObject; etag?: string }> {
    const res = await this.request('GET', path, opts);
    if (!isObject(res.body)) {
      throw new FleetError('bmc.protocol', `BMC ${this.where} answered GET ${path} with ${res.body === undefined ? 'an empty body' : 'JSON that is not an object'}`);
    }
    const etag = res.etag ?? str(res.body, '@odata.etag');
    return { body: res.body, ...(etag !== undefined ? { etag } : {}) };
  }

  post(path: string, body: unknown): Promise<RedfishResponse> {
    return this.request('POST', path, { body });
  }

  patch(path: string, body: unknown, etag?: string): Promise<RedfishResponse> {
    return this.request('PATCH', path, { body, ...(etag !== undefined ? { etag } : {}) });
  }

  delete(path: string): Promise<RedfishResponse> {
    return this.request('DELETE', path);
  }

  /** One request with auth, one re-login on a 401 of an expired session, and error mapping. */
  async request(method: Dispatcher.HttpMethod, path: string, opts: RequestOptions = {}): Promise<RedfishResponse> {
    if (this.closed) throw new FleetError('internal', `Redfish client for BMC ${this.where} is closed`);
    const p = resolveLink(path);
    let usedToken: string | undefined;
    const mode = opts.anonymous && !this.decided ? undefined : await this.authMode();
    const attempt = async (): Promise<RedfishResponse> => {
      const headers: Record<string, string> = {};
      if (mode === 'basic') {
        headers['authorization'] = 'Basic ' + Buffer.from(`${this.username}:${this.password}`, 'utf8').toString('base64');
      } else if (!opts.anonymous) {
        const s = await this.login();
        usedToken = s.token;
        headers['x-auth-token'] = s.token;
      }
      if (opts.etag !== undefined) headers['if-match'] = opts.etag;
      return this.send(method, p, headers, opts.body);
    };
    let res: RedfishResponse;
    try {
      res = await attempt();
    } catch (e) {
      // auto: a SessionService that is advertised but refuses logins it does not implement (404/405/501) → Basic.
      const status = isFleetError(e) ? (e.details as { status?: number } | undefined)?.status : undefined;
      if (this.auth !== 'auto' || mode !== 'session' || (status !== 404 && status !== 405 && status !== 501)) throw e;
      this.decided = { mode: 'basic', reason: `the session login answered HTTP ${status}` };
      return this.request(method, path, opts);
    }
    if (res.status === 401 && mode === 'session' && !this.closed) {
      // Anonymous request refused, or the session expired: log in (again) once.
      if (usedToken !== undefined && this.session?.token === usedToken) this.session = undefined;
      opts = { ...opts, anonymous: false };
      res = await attempt();
    }
    return this.check(method, p, res);
  }

  // --- session

  private login(): Promise<Session> {
    if (this.session) return Promise.resolve(this.session);
    if (!this.loginPromise) {
      this.loginPromise = this.createSession().finally(() => {
        this.loginPromise = undefined;
      });
    }
    return this.loginPromise;
  }

  private async createSession(): Promise<Session> {
    const root = await this.serviceRoot();
    let sessionsPath = linkOf(obj(root, 'Links'), 'Sessions');
    if (sessionsPath === undefined) {
      const svc = linkOf(root, 'SessionService');
      if (svc === undefined) {
        throw new FleetError(
          'bmc.unsupported',
          `Redfish service of BMC ${this.where} offers no SessionService, and bmc.auth is session; use auth basic or auto (Basic authentication)`,
        );
      }
      const { body } = await this.getJson(svc, { anonymous: true });
      sessionsPath = linkOf(body, 'Sessions');
      if (sessionsPath === undefined) throw new FleetError('bmc.protocol', `Redfish SessionService of BMC ${this.where} has no Sessions link`);
    }
    const path = resolveLink(sessionsPath);
    const res = await this.send('POST', path, {}, { UserName: this.username, Password: this.password });
    if (res.status === 401 || res.status === 403) {
      throw new FleetError('bmc.auth_failed', `BMC ${this.where} refused the session login of user ${JSON.stringify(this.username)} (HTTP ${res.status})`);
    }
    this.check('POST', path, res);
    const token = res.headers['x-auth-token'];
    const location = res.headers['location'] ?? str(res.body, '@odata.id');
    if (!token) throw new FleetError('bmc.protocol', `BMC ${this.where} created a session without an X-Auth-Token`);
    if (!location) {
      // We cannot delete a session without its URI; log it out by token is not in the standard.
      throw new FleetError('bmc.protocol', `BMC ${this.where} created a session without a Location`);
    }
    if (this.closed) {
      // close() raced the login: do not keep the session.
      await this.send('DELETE', resolveLink(location), { 'x-auth-token': token }).catch(() => undefined);
      throw new FleetError('internal', `Redfish client for BMC ${this.where} is closed`);
    }
    this.session = { token, path: resolveLink(location) };
    return this.session;
  }

  /**
   * Deletes the session (when one is held) and closes the sockets. Never
   * throws; safe to call twice. Errors of the DELETE are kept in lastCloseError.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        try {
          await this.loginPromise?.catch(() => undefined);
          const s = this.session;
          this.session = undefined;
          if (s) {
            const res = await this.send('DELETE', s.path, { 'x-auth-token': s.token });
            if (res.status >= 300 && res.status !== 404) {
              this.lastCloseError = new FleetError('bmc.command_failed', `BMC ${this.where} refused to delete the session (HTTP ${res.status})`);
            }
          }
        } catch (e) {
          this.lastCloseError = isFleetError(e) ? e : new FleetError('bmc.command_failed', this.redact(String(e)));
        } finally {
          await this.pool.destroy().catch(() => undefined);
        }
      })();
    }
    return this.closing;
  }

  /** Why the session DELETE of close() failed, if it did. */
  lastCloseError: FleetError | undefined;

  // --- wire

  /**
   * One exchange. A GET or DELETE that fails because the BMC closed an idle
   * keep-alive socket under us is sent once more on a fresh connection.
   */
  private async send(method: Dispatcher.HttpMethod, path: string, extra: Record<string, string>, body?: unknown): Promise<RedfishResponse> {
    try {
      return await this.sendOnce(method, path, extra, body);
    } catch (e) {
      if (!(e instanceof StaleSocketError)) throw e;
      if (method !== 'GET' && method !== 'DELETE') throw e.mapped;
    }
    try {
      return await this.sendOnce(method, path, extra, body);
    } catch (e) {
      throw e instanceof StaleSocketError ? e.mapped : e;
    }
  }

  private async sendOnce(method: Dispatcher.HttpMethod, path: string, extra: Record<string, string>, body?: unknown): Promise<RedfishResponse> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'odata-version': '4.0',
      ...extra,
    };
    let payload: Buffer | undefined;
    if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body), 'utf8');
      headers['content-type'] = 'application/json; charset=utf-8';
      headers['content-length'] = String(payload.length);
    } else if (method === 'POST' || method === 'PATCH' || method === 'PUT') {
      headers['content-length'] = '0';
    }
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new TimeoutMarker('deadline'));
    }, this.timeoutMs);
    try {
      const res = await this.pool.request({
        method,
        path,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        signal: ac.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      const text = await this.readBody(res.body, method, path);
      const hdrs: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined) hdrs[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
      }
      let parsed: unknown;
      if (text.trim().length > 0) {
        try {
          parsed = JSON.parse(text);
        } catch {
          if (res.statusCode >= 200 && res.statusCode < 300) {
            throw new FleetError('bmc.protocol', `BMC ${this.where} answered ${method} ${path} with HTTP ${res.statusCode} and a body that is not JSON`);
          }
          parsed = undefined; // error bodies may be HTML; the status decides
        }
      }
      return { status: res.statusCode, headers: hdrs, ...(hdrs['etag'] ? { etag: hdrs['etag'] } : {}), body: parsed };
    } catch (e) {
      const mapped = this.mapError(e, timedOut, method, path);
      const code = (e as { code?: unknown }).code;
      if (!timedOut && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE')) throw new StaleSocketError(mapped);
      throw mapped;
    } finally {
      clearTimeout(timer);
    }
  }

  private async readBody(body: Dispatcher.ResponseData['body'], method: string, path: string): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += b.length;
      if (size > this.maxBodyBytes) {
        body.destroy();
        throw new FleetError('bmc.protocol', `BMC ${this.where} answered ${method} ${path} with more than ${this.maxBodyBytes} bytes`);
      }
      chunks.push(b);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private check(method: string, path: string, res: RedfishResponse): RedfishResponse {
    const s = res.status;
    if (s >= 200 && s < 300) return res;
    const reason = this.redact(extractRedfishError(res.body) ?? '');
    const tail = reason ? `: ${reason}` : '';
    if (s === 401 || s === 403) {
      throw new FleetError('bmc.auth_failed', `BMC ${this.where} refused ${method} ${path} (HTTP ${s})${tail}`, { status: s });
    }
    if (s === 405 || s === 501) {
      throw new FleetError('bmc.unsupported', `BMC ${this.where} does not support ${method} ${path} (HTTP ${s})${tail}`, { status: s });
    }
    if (s >= 400) {
      throw new FleetError('bmc.command_failed', `BMC ${this.where} rejected ${method} ${path} (HTTP ${s})${tail}`, {
        status: s,
        ...(reason ? { reason } : {}),
      });
    }
    throw new FleetError('bmc.protocol', `BMC ${this.where} answered ${method} ${path} with unexpected HTTP ${s}`, { status: s });
  }

  private mapError(e: unknown, timedOut: boolean, method: string, path: string): FleetError {
    if (isFleetError(e)) return e;
    const err = e as { code?: unknown; message?: unknown; cause?: unknown };
    if (isFleetError(err.cause)) return err.cause;
    const code = typeof err.code === 'string' ? err.code : '';
    const msg = this.redact(typeof err.message === 'string' ? err.message : String(e));
    if (
      timedOut ||
      e instanceof TimeoutMarker ||
      err.cause instanceof TimeoutMarker ||
      e instanceof undiciErrors.ConnectTimeoutError ||
      e instanceof undiciErrors.HeadersTimeoutError ||
      e instanceof undiciErrors.BodyTimeoutError
    ) {
      return new FleetError('bmc.timeout', `BMC ${this.where} did not answer ${method} ${path} within ${this.timeoutMs} ms`, {
        timeoutMs: this.timeoutMs,
      });
    }
    if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /certificate|ssl|tls/i.test(msg)) {
      return new FleetError('bmc.tls', `TLS handshake with BMC ${this.where} failed: ${msg}`);
    }
    if (code.startsWith('HPE_') || e instanceof undiciErrors.ResponseContentLengthMismatchError) {
      return new FleetError('bmc.protocol', `BMC ${this.where} answered ${method} ${path} with invalid HTTP: ${msg}`);
    }
    if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET'].includes(code)) {
      return new FleetError('bmc.timeout', `BMC ${this.where} unreachable on ${method} ${path}: ${code}`, { cause: code });
    }
    return new FleetError('bmc.protocol', `Redfish ${method} ${path} to BMC ${this.where} failed: ${msg}`);
  }

  /** Removes the password and the session token from text that came from elsewhere. */
  redact(text: string): string {
    let out = text;
    for (const secret of [this.password, this.session?.token, this.loginSecretB64()]) {
      if (secret && secret.length >= 3) out = out.split(secret).join('***');
    }
    return out;
  }

  private loginSecretB64(): string {
    return Buffer.from(`${this.username}:${this.password}`, 'utf8').toString('base64');
  }
}

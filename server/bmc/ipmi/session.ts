/**
 * One RMCP+ session with one BMC (IPMI v2.0 §13.15–13.23):
 *   Get Channel Authentication Capabilities → Open Session → RAKP 1/2 →
 *   RAKP 3/4 → Set Session Privilege Level → commands → Close Session.
 * Session messages are always authenticated (HMAC-SHA1-96 / HMAC-SHA256-128)
 * and encrypted (AES-CBC-128): cipher suites 3 and 17.
 */
import { randomBytes } from 'node:crypto';
import { FleetError } from '../../../common/errors.js';
import { type CommandSpec, closeSession, getChannelAuthCaps, parseChannelAuthCaps, setSessionPrivilege } from './commands.js';
import {
  type CipherSuite,
  type RakpContext,
  type SessionKeys,
  cipherSuite,
  decryptAesCbc128,
  deriveSessionKeys,
  encryptAesCbc128,
  rakp2AuthCode,
  rakp3AuthCode,
  rakp4Icv,
  safeEqual,
} from './crypto.js';
import { type IpmiResponse, completionCodeText, decodeIpmiResponse, encodeIpmiRequest } from './message.js';
import { type Ipmi20Packet, PayloadType, encodeIpmi15Packet, encodeIpmi20Packet, verifyIpmi20Integrity } from './packet.js';
import {
  NAME_ONLY_LOOKUP,
  Privilege,
  RmcpStatus,
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeRakp4,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRakp3,
  rmcpStatusText,
} from './rakp.js';
import { protocolError } from './reader.js';
import { type Endpoint, type IpmiTransport, presessionKey, remoteKeyOf, sessionKey, sessionlessKey } from './transport.js';

export type PrivilegeName = 'user' | 'operator' | 'administrator';

export const PRIVILEGE_LEVEL: Readonly<Record<PrivilegeName, number>> = {
  user: Privilege.USER,
  operator: Privilege.OPERATOR,
  administrator: Privilege.ADMINISTRATOR,
};

export interface SessionOpenOptions {
  username: string;
  password: string;
  /** 3 (default): RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128; 17: the SHA-256 variants. */
  cipherSuite?: 3 | 17;
  privilege?: PrivilegeName;
  /** BMC key Kg; default: none (Kg = Kuid, the usual configuration). */
  kg?: Uint8Array;
  /** Absolute deadline for the whole handshake. */
  deadline: number;
  retransmitMs?: number[];
}

export interface CommandOptions {
  deadline: number;
  retransmitMs?: number[];
  /** Send a single time, never retransmit (Chassis Control actions that must not run twice). */
  once?: boolean;
}

const AUTH_STATUSES: ReadonlySet<number> = new Set([
  RmcpStatus.INVALID_ROLE,
  RmcpStatus.UNAUTHORIZED_ROLE,
  RmcpStatus.INVALID_NAME_LENGTH,
  RmcpStatus.UNAUTHORIZED_NAME,
  RmcpStatus.UNAUTHORIZED_GUID,
  RmcpStatus.INVALID_INTEGRITY_CHECK,
]);
const SUITE_STATUSES: ReadonlySet<number> = new Set([
  RmcpStatus.INVALID_AUTH_ALG,
  RmcpStatus.INVALID_INTEGRITY_ALG,
  RmcpStatus.NO_MATCHING_AUTH_PAYLOAD,
  RmcpStatus.NO_MATCHING_INTEGRITY_PAYLOAD,
  RmcpStatus.INVALID_CONF_ALG,
  RmcpStatus.NO_CIPHER_SUITE_MATCH,
]);

function statusError(step: string, status: number, label: string, suite: number): FleetError {
  const text = `${rmcpStatusText(status)} (0x${status.toString(16).padStart(2, '0')})`;
  if (AUTH_STATUSES.has(status)) return new FleetError('bmc.auth_failed', `IPMI ${step} to ${label}: BMC refused the credentials: ${text}`);
  if (SUITE_STATUSES.has(status)) return new FleetError('bmc.unsupported', `IPMI ${step} to ${label}: BMC does not accept cipher suite ${suite}: ${text}`);
  return new FleetError('bmc.command_failed', `IPMI ${step} to ${label}: ${text}`);
}

/** A message tag for Open Session / RAKP requests, unique among this BMC's pending ones. */
function nextTag(t: IpmiTransport, remoteKey: string, payloadType: number): number {
  return t.nextCounter(`tag|${remoteKey}`, 256, (v) => t.isPending(presessionKey(remoteKey, payloadType, v)));
}

export class IpmiSession {
  private outSeq = 0;
  private closed = false;
  private solHandler: ((payload: Buffer) => void) | undefined;
  readonly remoteKey: string;

  private constructor(
    private readonly transport: IpmiTransport,
    readonly remote: Endpoint,
    readonly suite: CipherSuite,
    readonly consoleSessionId: number,
    readonly bmcSessionId: number,
    private readonly keys: SessionKeys,
  ) {
    this.remoteKey = remoteKeyOf(remote.address, remote.port);
    transport.registerSession(consoleSessionId, {
      remoteKey: this.remoteKey,
      unwrap: (pkt) => this.unwrap(pkt),
      onSol: (pkt) => {
        // A SOL packet that does not verify is dropped (not ours, or forged): it must not end the console.
        if (!this.solHandler || !pkt.authenticated || !pkt.encrypted) return;
        let plain: Buffer;
        try {
          verifyIpmi20Integrity(pkt, this.suite, this.keys.k1);
          plain = decryptAesCbc128(this.keys.k2, pkt.payload);
        } catch {
          return;
        }
        this.solHandler(plain);
      },
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  static async open(transport: IpmiTransport, remote: Endpoint, o: SessionOpenOptions): Promise<IpmiSession> {
    const suite = cipherSuite(o.cipherSuite ?? 3);
    const privilege = PRIVILEGE_LEVEL[o.privilege ?? 'administrator'];
    const label = remoteKeyOf(remote.address, remote.port);
    const username = Buffer.from(o.username, 'utf8');
    const kuid = Buffer.from(o.password, 'utf8');
    if (username.length > 16) throw new FleetError('bmc.auth_failed', `IPMI user name for ${label} is longer than 16 bytes`);
    if (kuid.length > 20) throw new FleetError('bmc.auth_failed', `IPMI password for ${label} is longer than 20 bytes`);
    const base = { remote, deadline: o.deadline, ...(o.retransmitMs ? { retransmitMs: o.retransmitMs } : {}) };

    // 1. Get Channel Authentication Capabilities (IPMI v1.5 framing, no session).
    const capsSeq = transport.nextCounter(`sl|${label}`, 64, (v) => transport.isPending(sessionlessKey(label, v)));
    const capsSpec = getChannelAuthCaps(privilege);
    const capsReply = await transport.request({
      ...base,
      key: sessionlessKey(label, capsSeq),
      what: 'Get Channel Authentication Capabilities',
      encode: () => encodeIpmi15Packet({ payload: encodeIpmiRequest({ ...capsSpec, rqSeq: capsSeq }) }),
      accept: (r) => r.response?.cmd === capsSpec.cmd,
    });
    const capsRes = capsReply.response!;
    if (capsRes.completionCode !== 0) {
      throw new FleetError('bmc.unsupported', `IPMI: ${label} does not support IPMI v2.0 (Get Channel Auth Caps: ${completionCodeText(capsRes.completionCode)})`);
    }
    const caps = parseChannelAuthCaps(capsRes.data);
    if (!caps.ipmi20) throw new FleetError('bmc.unsupported', `IPMI: ${label} does not offer IPMI v2.0 / RMCP+ sessions`);

    // 2. Open Session.
    const consoleSessionId = transport.allocConsoleSessionId();
    const openTag = nextTag(transport, label, PayloadType.OPEN_SESSION_RESPONSE);
    const openPayload = encodeOpenSessionRequest({
      tag: openTag,
      maxPrivilege: privilege,
      consoleSessionId,
      authAlg: suite.authAlg,
      integrityAlg: suite.integrityAlg,
      confAlg: suite.confAlg,
    });
    const openReply = await transport.request({
      ...base,
      key: presessionKey(label, PayloadType.OPEN_SESSION_RESPONSE, openTag),
      what: 'Open Session',
      encode: () => encodeIpmi20Packet({ payloadType: PayloadType.OPEN_SESSION_REQUEST, sessionId: 0, sessionSeq: 0, payload: openPayload }),
    });
    const open = decodeOpenSessionResponse(payloadOf(openReply.packet));
    if (open.status !== 0) throw statusError('Open Session', open.status, label, suite.id);
    if (open.consoleSessionId !== consoleSessionId) throw protocolError(`IPMI Open Session: ${label} answered for another session`);
    if (open.authAlg !== suite.authAlg || open.integrityAlg !== suite.integrityAlg || open.confAlg !== suite.confAlg) {
      throw new FleetError('bmc.unsupported', `IPMI Open Session: ${label} chose algorithms other than cipher suite ${suite.id}`);
    }
    const bmcSessionId = open.bmcSessionId!;

    // 3. RAKP 1 → RAKP 2: check the BMC knows the same password.
    const consoleRandom = randomBytes(16);
    const role = privilege | NAME_ONLY_LOOKUP;
    const rakp1Tag = nextTag(transport, label, PayloadType.RAKP2);
    const rakp1 = encodeRakp1({ tag: rakp1Tag, bmcSessionId, consoleRandom, role, username });
    const rakp2Reply = await transport.request({
      ...base,
      key: presessionKey(label, PayloadType.RAKP2, rakp1Tag),
      what: 'RAKP 1',
      encode: () => encodeIpmi20Packet({ payloadType: PayloadType.RAKP1, sessionId: 0, sessionSeq: 0, payload: rakp1 }),
    });
    const rakp2 = decodeRakp2(payloadOf(rakp2Reply.packet), suite.rakpAuthCodeLength);
    if (rakp2.status !== 0) throw statusError('RAKP 2', rakp2.status, label, suite.id);
    if (rakp2.consoleSessionId !== consoleSessionId) throw protocolError(`IPMI RAKP 2: ${label} answered for another session`);
    const ctx: RakpContext = {
      consoleSessionId,
      bmcSessionId,
      consoleRandom,
      bmcRandom: rakp2.bmcRandom!,
      bmcGuid: rakp2.bmcGuid!,
      role,
      username,
    };
    const rakp3Tag = nextTag(transport, label, PayloadType.RAKP4);
    if (!safeEqual(rakp2AuthCode(suite, kuid, ctx), rakp2.authCode!)) {
      // Tell the BMC to drop the half-open session, then fail without waiting.
      const bye = encodeRakp3({ tag: rakp3Tag, status: RmcpStatus.INVALID_INTEGRITY_CHECK, bmcSessionId, authCode: Buffer.alloc(0) });
      transport.sendOnce(remote, encodeIpmi20Packet({ payloadType: PayloadType.RAKP3, sessionId: 0, sessionSeq: 0, payload: bye }));
      throw new FleetError('bmc.auth_failed', `IPMI RAKP 2 from ${label}: key exchange code does not verify: the password of user '${o.username}' does not match`);
    }

    // 4. RAKP 3 → RAKP 4: prove we know it too; check the session keys agree.
    const keys = deriveSessionKeys(suite, o.kg && o.kg.some((b) => b !== 0) ? o.kg : kuid, ctx);
    const rakp3 = encodeRakp3({ tag: rakp3Tag, status: 0, bmcSessionId, authCode: rakp3AuthCode(suite, kuid, ctx) });
    const rakp4Reply = await transport.request({
      ...base,
      key: presessionKey(label, PayloadType.RAKP4, rakp3Tag),
      what: 'RAKP 3',
      encode: () => encodeIpmi20Packet({ payloadType: PayloadType.RAKP3, sessionId: 0, sessionSeq: 0, payload: rakp3 }),
    });
    const rakp4 = decodeRakp4(payloadOf(rakp4Reply.packet), suite.rakp4IcvLength);
    if (rakp4.status !== 0) throw statusError('RAKP 4', rakp4.status, label, suite.id);
    if (!safeEqual(rakp4Icv(suite, keys.sik, ctx), rakp4.integrityCheckValue)) {
      throw new FleetError('bmc.auth_failed', `IPMI RAKP 4 from ${label}: integrity check value does not verify (BMC key Kg set?)`);
    }

    // 5. Raise the session to the requested privilege.
    const session = new IpmiSession(transport, remote, suite, consoleSessionId, bmcSessionId, keys);
    try {
      const res = await session.command(setSessionPrivilege(privilege), base);
      if (res.completionCode !== 0) {
        throw new FleetError('bmc.auth_failed', `IPMI: ${label} refused privilege level ${o.privilege ?? 'administrator'} (${completionCodeText(res.completionCode)})`);
      }
    } catch (e) {
      session.forget();
      throw e;
    }
    return session;
  }

  /** Sends one command in the session and returns the response (any completion code). */
  command(spec: CommandSpec, o: CommandOptions): Promise<IpmiResponse> {
    if (this.closed) return Promise.reject(new FleetError('internal', `IPMI session to ${this.remoteKey} is closed`));
    const t = this.transport;
    const scope = `s|${this.consoleSessionId}`;
    const rqSeq = t.nextCounter(scope, 64, (v) => t.isPending(sessionKey(this.remoteKey, this.consoleSessionId, v)));
    const message = encodeIpmiRequest({ ...spec, rqSeq });
    // Built once: a retransmit is the same datagram (same session sequence number, same rqSeq, same
    // IV), so a BMC that tracks sequence numbers can recognise it as a duplicate and not run it twice.
    let datagram: Buffer | undefined;
    return t
      .request({
        remote: this.remote,
        key: sessionKey(this.remoteKey, this.consoleSessionId, rqSeq),
        what: commandName(spec),
        deadline: o.deadline,
        ...(o.retransmitMs ? { retransmitMs: o.retransmitMs } : {}),
        ...(o.once ? { once: true } : {}),
        encode: () =>
          (datagram ??= encodeIpmi20Packet({
            payloadType: PayloadType.IPMI,
            sessionId: this.bmcSessionId,
            sessionSeq: this.nextSeq(),
            payload: encryptAesCbc128(this.keys.k2, message),
            encrypted: true,
            integrity: { suite: this.suite, k1: this.keys.k1 },
          })),
        accept: (r) => r.response?.cmd === spec.cmd && r.response.netFn === spec.netFn + 1,
      })
      .then((r) => r.response!);
  }

  /** Receives the decrypted SOL payloads of this session (one handler; undefined removes it). */
  onSolPayload(handler: ((payload: Buffer) => void) | undefined): void {
    this.solHandler = handler;
  }

  /** Sends one SOL payload (encrypted and authenticated, the next session sequence number), no reply awaited. */
  sendSolPayload(payload: Buffer): void {
    if (this.closed) throw new FleetError('internal', `IPMI session to ${this.remoteKey} is closed`);
    this.transport.sendOnce(
      this.remote,
      encodeIpmi20Packet({
        payloadType: PayloadType.SOL,
        sessionId: this.bmcSessionId,
        sessionSeq: this.nextSeq(),
        payload: encryptAesCbc128(this.keys.k2, payload),
        encrypted: true,
        integrity: { suite: this.suite, k1: this.keys.k1 },
      }),
    );
  }

  /** Close Session; the session is forgotten whatever the BMC answers. */
  async close(o: CommandOptions): Promise<void> {
    if (this.closed) return;
    try {
      await this.command(closeSession(this.bmcSessionId), o);
    } finally {
      this.forget();
    }
  }

  /** Drops the session locally without telling the BMC (it will time it out). */
  forget(): void {
    this.closed = true;
    this.transport.unregisterSession(this.consoleSessionId);
  }

  private nextSeq(): number {
    this.outSeq = this.outSeq >= 0xffffffff ? 1 : this.outSeq + 1;
    return this.outSeq;
  }

  private unwrap(pkt: Ipmi20Packet): IpmiResponse {
    if (!pkt.authenticated || !pkt.encrypted) throw protocolError('session packet is not authenticated and encrypted');
    verifyIpmi20Integrity(pkt, this.suite, this.keys.k1);
    return decodeIpmiResponse(decryptAesCbc128(this.keys.k2, pkt.payload));
  }
}

function payloadOf(packet: { kind: string; payload?: Buffer }): Buffer {
  if (packet.kind !== 'ipmi20' || !packet.payload) throw protocolError('expected an RMCP+ payload');
  return packet.payload;
}

const NAMES: Record<string, string> = {
  '6:59': 'Set Session Privilege Level',
  '6:60': 'Close Session',
  '6:72': 'Activate Payload',
  '6:73': 'Deactivate Payload',
  '6:75': 'Get Payload Instance Info',
  '6:1': 'Get Device ID',
  '6:55': 'Get System GUID',
  '0:1': 'Get Chassis Status',
  '0:2': 'Chassis Control',
  '0:8': 'Set System Boot Options',
  '0:9': 'Get System Boot Options',
  '10:16': 'Get FRU Inventory Area Info',
  '10:17': 'Read FRU Data',
  '6:56': 'Get Channel Authentication Capabilities',
  '6:66': 'Get Channel Info',
  '6:67': 'Set User Access',
  '6:68': 'Get User Access',
  '6:69': 'Set User Name',
  '6:70': 'Get User Name',
  '6:71': 'Set User Password',
};

export function commandName(spec: { netFn: number; cmd: number }): string {
  return NAMES[`${spec.netFn}:${spec.cmd}`] ?? `command netFn 0x${spec.netFn.toString(16)} cmd 0x${spec.cmd.toString(16)}`;
}

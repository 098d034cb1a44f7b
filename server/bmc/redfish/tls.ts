/**
 * TLS trust for BMC connections (ADR 0003).
 *
 * One connector for every mode: the handshake runs with Node's own verifier
 * switched to "report" (rejectUnauthorized false) and this module decides,
 * before undici may write a single byte (so before any credential leaves):
 *  - fingerprint: the leaf certificate's SHA-256 must equal the pinned one;
 *  - ca: the chain must verify against the configured CA bundle, and the
 *    certificate must name the address (unless verifyHostname is false);
 *  - both: both must hold;
 *  - neither, trustOnFirstUse: the first certificate seen is accepted, reported
 *    through onFirstContact and pinned for the life of the client;
 *  - neither, no TOFU: Node's default CA store (a self-signed BMC fails, and
 *    the error shows the fingerprint to pin).
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { FleetError } from '../../../common/errors.js';

export interface RedfishTlsOptions {
  /** CA bundle (PEM) the BMC certificate must chain to. */
  ca?: string;
  /** Pinned SHA-256 fingerprint of the BMC's leaf certificate (hex, colons and case optional, "sha256:" prefix allowed). */
  fingerprint?: string;
  /** With neither ca nor fingerprint: accept the first certificate seen and report it (onFirstContact). */
  trustOnFirstUse?: boolean;
  /** CA mode: check that the certificate names the address (default true). */
  verifyHostname?: boolean;
}

/** Upper-case colon form (AB:CD:...), as Node prints fingerprint256. Throws config.invalid on anything else. */
export function normaliseFingerprint(fp: string): string {
  const hex = fp.trim().replace(/^sha-?256[:=\s]*/i, '').replace(/[:\s-]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new FleetError('config.invalid', 'TLS fingerprint must be a SHA-256 digest: 64 hex digits, colons optional');
  }
  return hex.match(/../g)!.join(':');
}

/** SHA-256 fingerprint of a PEM certificate, in the same form. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.toUpperCase();
}

export interface TrustState {
  /** Fingerprint accepted on first use, pinned from then on. */
  tofuPinned?: string;
  /** The last certificate fingerprint seen on a connection. */
  lastSeen?: string;
}

export interface ConnectorParams {
  address: string;
  port: number;
  tls: RedfishTlsOptions;
  timeoutMs: number;
  state: TrustState;
  onFirstContact?: (fingerprint: string) => void;
}

type Callback = (...args: [null, Socket | TLSSocket] | [Error, null]) => void;
type ConnectOptions = Parameters<ReturnType<typeof buildConnector>>[0];

/** A connector for undici that applies the trust policy above. */
export function trustingConnector(p: ConnectorParams): (opts: ConnectOptions, cb: Callback) => void {
  const pinned = p.tls.fingerprint !== undefined ? normaliseFingerprint(p.tls.fingerprint) : undefined;
  const ca = p.tls.ca;
  const inner = buildConnector({
    rejectUnauthorized: false,
    ...(ca !== undefined ? { ca } : {}),
    timeout: p.timeoutMs,
    // Resumed sessions must still be checked against a fresh certificate.
    maxCachedSessions: 0,
  });
  const where = `${p.address}:${p.port}`;

  return (opts, cb) => {
    inner(opts, (err, socket) => {
      if (err || !socket) {
        cb(err ?? new Error('connect failed'), null);
        return;
      }
      const tlsSocket = socket as TLSSocket;
      let failure: FleetError | undefined;
      try {
        failure = check(tlsSocket);
      } catch (e) {
        failure = new FleetError('bmc.tls', `TLS check of BMC ${where} failed: ${(e as Error).message}`);
      }
      if (failure) {
        socket.destroy();
        cb(failure, null);
        return;
      }
      cb(null, socket);
    });
  };

  function check(s: TLSSocket): FleetError | undefined {
    if (typeof s.getPeerCertificate !== 'function') {
      return new FleetError('bmc.tls', `BMC ${where} did not negotiate TLS`);
    }
    const cert = s.getPeerCertificate(false) as PeerCertificate | undefined;
    if (!cert || !cert.fingerprint256) {
      return new FleetError('bmc.tls', `BMC ${where} presented no certificate`);
    }
    const seen = cert.fingerprint256.toUpperCase();
    p.state.lastSeen = seen;

    if (pinned !== undefined && seen !== pinned) {
      return new FleetError(
        'bmc.tls',
        `BMC ${where} certificate fingerprint mismatch: expected SHA-256 ${pinned}, seen ${seen}`,
        { expected: pinned, seen },
      );
    }
    if (ca !== undefined) {
      if (!s.authorized) {
        return new FleetError(
          'bmc.tls',
          `BMC ${where} certificate is not trusted by the configured CA (${String(s.authorizationError)}); seen SHA-256 ${seen}`,
          { seen, reason: String(s.authorizationError) },
        );
      }
      if (p.tls.verifyHostname !== false) {
        const bad = checkServerIdentity(p.address, cert);
        if (bad) {
          return new FleetError('bmc.tls', `BMC ${where} certificate does not name ${p.address} (${bad.message}); seen SHA-256 ${seen}`, {
            seen,
          });
        }
      }
    }
    if (pinned !== undefined || ca !== undefined) return undefined;

    if (p.tls.trustOnFirstUse) {
      if (p.state.tofuPinned === undefined) {
        p.state.tofuPinned = seen;
        p.onFirstContact?.(seen);
        return undefined;
      }
      if (seen !== p.state.tofuPinned) {
        return new FleetError(
          'bmc.tls',
          `BMC ${where} certificate changed during the session: expected SHA-256 ${p.state.tofuPinned}, seen ${seen}`,
          { expected: p.state.tofuPinned, seen },
        );
      }
      return undefined;
    }
    // No trust configured: Node's default CA store decides (rejectUnauthorized was off, so check here).
    if (!s.authorized) {
      return new FleetError(
        'bmc.tls',
        `BMC ${where} certificate is not trusted (${String(s.authorizationError)}) and no CA or fingerprint is configured; seen SHA-256 ${seen}`,
        { seen },
      );
    }
    const bad = p.tls.verifyHostname === false ? undefined : checkServerIdentity(p.address, cert);
    if (bad) return new FleetError('bmc.tls', `BMC ${where} certificate does not name ${p.address} (${bad.message}); seen SHA-256 ${seen}`);
    return undefined;
  }
}

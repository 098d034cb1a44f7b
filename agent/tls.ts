/**
 * Checking the server before anything is sent (DESIGN §4): the kickstart
 * gives the agent the SHA-256 fingerprint of the fleet CA. One TLS handshake
 * (no application data) fetches the chain the server presents; the agent
 * accepts it only when a certificate in it is a CA with that fingerprint and
 * the server's certificate is issued and signed by it for serverAuth. That CA
 * then becomes the only root of the gRPC channel, so the channel that
 * carries the token verifies the server against the pinned CA again.
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls, { type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import { FleetError } from '../common/errors.js';
import { normaliseFingerprint } from '../common/fingerprint.js';

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

export interface ServerAddress {
  host: string;
  port: number;
  /** host:port as grpc-js wants it ([v6]:port). */
  target: string;
}

export const DEFAULT_SERVER_PORT = 50051;

/** Parses HOST[:PORT] (IPv6 in brackets); port defaults to 50051. */
export function parseServerAddress(s: string): ServerAddress {
  const v = s.trim();
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(v);
  if (!m) throw new FleetError('usage.invalid', `server address ${JSON.stringify(s)} is not HOST:PORT`);
  const host = m[1]!;
  const port = m[2] !== undefined ? Number(m[2]) : DEFAULT_SERVER_PORT;
  if (port < 1 || port > 65535) throw new FleetError('usage.invalid', `server port ${port} is not 1-65535`);
  if (v.startsWith('[') && net.isIPv6(host) === false) throw new FleetError('usage.invalid', `${host} is not an IPv6 address`);
  return { host, port, target: net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}` };
}

function chainOf(leaf: DetailedPeerCertificate): PeerCertificate[] {
  const out: PeerCertificate[] = [leaf];
  let c = leaf;
  while (c.issuerCertificate && c.issuerCertificate !== c && out.length < 10) {
    if (out.some((x) => x.fingerprint256 === c.issuerCertificate.fingerprint256)) break;
    c = c.issuerCertificate;
    out.push(c);
  }
  return out;
}

/**
 * Pure part of the check: given the DER chain the server presented (leaf
 * first) and the pinned fingerprint, returns the CA certificate (PEM) or
 * throws FleetError auth.invalid saying why.
 */
export function pickPinnedCa(chainDer: Uint8Array[], pinnedFingerprint: string): string {
  const want = normaliseFingerprint(pinnedFingerprint);
  const certs = chainDer.map((d) => new X509Certificate(Buffer.from(d)));
  const leaf = certs[0];
  if (!leaf) throw new FleetError('auth.invalid', 'the server presented no certificate');
  const ca = certs.find((c) => c.fingerprint256.toUpperCase() === want);
  if (!ca) {
    const seen = certs.map((c) => c.fingerprint256.toUpperCase()).join(', ');
    throw new FleetError('auth.invalid', `the server's certificates (${seen}) do not include the CA ${want}; refusing to talk to it`);
  }
  if (!ca.ca) throw new FleetError('auth.invalid', 'the certificate with the pinned fingerprint is not a CA certificate');
  if (leaf !== ca) {
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
      throw new FleetError('auth.invalid', 'the server certificate is not signed by the pinned CA; refusing to talk to it');
    }
    if (!(leaf.keyUsage ?? []).includes(EKU_SERVER_AUTH)) throw new FleetError('auth.invalid', 'the server certificate is not for server authentication');
  }
  return ca.toString();
}

/**
 * One TLS handshake to HOST:PORT, closed before any application data;
 * returns the pinned CA's PEM (see pickPinnedCa). Connection problems are
 * FleetError unavailable (retryable); a wrong chain is auth.invalid (not).
 */
export function fetchPinnedCa(addr: ServerAddress, pinnedFingerprint: string, timeoutMs = 10_000): Promise<string> {
  const want = normaliseFingerprint(pinnedFingerprint);
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host: addr.host,
      port: addr.port,
      ...(net.isIP(addr.host) === 0 ? { servername: addr.host } : {}),
      // The chain is judged below against the pinned fingerprint, not against the system roots.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      timeout: timeoutMs,
    });
    const done = (err: Error | null, pem?: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(pem!);
    };
    socket.once('secureConnect', () => {
      try {
        const chain = chainOf(socket.getPeerCertificate(true)).map((c) => c.raw);
        done(null, pickPinnedCa(chain, want));
      } catch (e) {
        done(e instanceof FleetError ? e : new FleetError('auth.invalid', `cannot read the server's certificates: ${(e as Error).message}`));
      }
    });
    socket.once('timeout', () => done(new FleetError('unavailable', `no TLS handshake with ${addr.target} within ${timeoutMs} ms`)));
    socket.once('error', (e) => done(new FleetError('unavailable', `cannot reach ${addr.target}: ${e.message}`, undefined, { cause: e })));
  });
}

/**
 * Server identity check for the gRPC channel: Node's hostname check plus
 * serverAuth, so a node certificate (same CA, clientAuth) cannot pose as
 * the server.
 */
export function checkServerIdentity(hostname: string, cert: PeerCertificate): Error | undefined {
  const err = tls.checkServerIdentity(hostname, cert);
  if (err) return err;
  if (!(cert.ext_key_usage ?? []).includes(EKU_SERVER_AUTH)) return new Error('the server certificate is not for server authentication');
  return undefined;
}

/**
 * TLS for the agent service: one port, server certificate from the fleet CA,
 * client certificates *requested but optional*.
 *
 * Why not `ServerCredentials.createSsl(ca, pairs, checkClientCertificate)`:
 * with `false` grpc-js does not even ask for a client certificate
 * (requestCert false), so a node could never present its credential; with
 * `true` a client without a certificate is refused in the handshake, so Enroll
 * (which has none yet) could not be called. grpc-js's
 * `experimental.createCertificateProviderServerCredentials(identity, ca,
 * requireClientCertificate=false)` gives exactly requestCert: true,
 * rejectUnauthorized: false: the client certificate is verified against the
 * CA during the handshake, and an unverified or absent one leaves the
 * connection up but without an authenticated peer (grpc-js's auth context
 * carries the certificate only when it verified). Every method but Enroll
 * then requires it (server/agents/auth.ts).
 */
import { experimental, type ServerCredentials } from '@grpc/grpc-js';

type Provider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdListener = experimental.IdentityCertificateUpdateListener;

/**
 * A certificate provider whose certificates never change. Listeners are
 * called on the next microtask, not synchronously: grpc-js registers its
 * secure-context watcher only after it has added these listeners, so a
 * synchronous update would be lost (and every handshake dropped).
 */
class StaticCertificateProvider implements Provider {
  constructor(
    private readonly ca: Buffer,
    private readonly certificate: Buffer,
    private readonly privateKey: Buffer,
  ) {}
  addCaCertificateListener(listener: CaListener): void {
    queueMicrotask(() => listener({ caCertificate: this.ca }));
  }
  removeCaCertificateListener(_listener: CaListener): void {}
  addIdentityCertificateListener(listener: IdListener): void {
    queueMicrotask(() => listener({ certificate: this.certificate, privateKey: this.privateKey }));
  }
  removeIdentityCertificateListener(_listener: IdListener): void {}
}

/**
 * Server credentials: presents certChainPem (leaf + CA) with keyPem,
 * requests a client certificate and verifies it against caPem without
 * requiring one.
 */
export function agentServerCredentials(caPem: string, certChainPem: string, keyPem: string): ServerCredentials {
  const provider = new StaticCertificateProvider(Buffer.from(caPem), Buffer.from(certChainPem), Buffer.from(keyPem));
  return experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

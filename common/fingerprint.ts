/**
 * SHA-256 certificate fingerprints, in one canonical form: upper-case hex in
 * colon-separated pairs (`AB:CD:...`, 95 characters), which is what Node's
 * `X509Certificate.fingerprint256` and `openssl x509 -fingerprint -sha256`
 * print. Input is accepted in any case, with or without colons, spaces or
 * dashes, and with an optional `sha256:` / `SHA256=` prefix.
 *
 * Pure; shared by the server (server/pki) and the agent (agent/).
 */
import crypto, { X509Certificate } from 'node:crypto';
import { FleetError } from './errors.js';

/** Canonical form (AB:CD:...) of a SHA-256 fingerprint; FleetError usage.invalid when it is not 64 hex digits. */
export function normaliseFingerprint(fp: string): string {
  const hex = String(fp)
    .trim()
    .replace(/^sha-?256\s*[:=]?\s*/i, '')
    .replace(/[:\s-]/g, '')
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new FleetError('usage.invalid', 'a certificate fingerprint must be a SHA-256 digest: 64 hex digits, colons optional');
  }
  return hex.match(/../g)!.join(':');
}

/** Whether two fingerprints (any accepted form) are the same; false when either is malformed. */
export function sameFingerprint(a: string, b: string): boolean {
  try {
    return normaliseFingerprint(a) === normaliseFingerprint(b);
  } catch {
    return false;
  }
}

/** SHA-256 fingerprint of a DER certificate, in canonical form. */
export function fingerprintOfDer(der: Uint8Array): string {
  return crypto.createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/** SHA-256 fingerprint of the first certificate of a PEM text, in canonical form. */
export function fingerprintOfPem(pem: string): string {
  return fingerprintOfDer(new X509Certificate(pem).raw);
}

/**
 * `fleet-agent enroll`: exchange the one-time token for a node certificate.
 *
 * 1. The agent makes its own ECDSA P-256 key pair and a CSR; the private key
 *    never leaves the node. The same key is used for every retry, so a
 *    retried Enroll whose answer was lost gets the same certificate back.
 * 2. Before sending anything, one TLS handshake fetches the server's chain
 *    and checks the pinned CA fingerprint (agent/tls.ts). A mismatch ends the
 *    enrolment at once; the token is never sent.
 * 3. Enroll goes over a gRPC channel whose only root is that CA.
 * 4. The answer is checked (certificate for our key, issued by the pinned CA,
 *    CN = the node name given) and written to the state directory, 0600.
 * Server away, slow or busy: retried with backoff, a bounded number of times.
 */
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { EnrollResponse, MachineIdentity } from '../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../common/errors.js';
import { normaliseFingerprint } from '../common/fingerprint.js';
import { backoffDelay, sleep, type BackoffOptions } from '../common/backoff.js';
import { callUnary, isTransient, makeClient } from './client.js';
import { collectIdentity } from './identity.js';
import { readStateInfo, saveCredential, type AgentCredential } from './state.js';
import { fetchPinnedCa, parseServerAddress } from './tls.js';
import { AGENT_VERSION } from './version.js';

const wc = webcrypto as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1] & typeof webcrypto;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface EnrollOptions {
  /** HOST:PORT of the fleet server. */
  server: string;
  token: string;
  /** SHA-256 fingerprint of the fleet CA (from the kickstart). */
  caFingerprint: string;
  stateDir: string;
  /** Enrol again over an existing credential. */
  force?: boolean;
  /** Default: read from this machine. */
  identity?: MachineIdentity;
  /** Attempts in all (default 10) and the backoff between them. */
  attempts?: number;
  backoff?: BackoffOptions;
  /** Deadline of each attempt's handshake and call. Default 20 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface EnrollResult {
  node: string;
  stateDir: string;
  certNotAfter: string;
}

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
  /** The public key, SPKI DER. */
  spki: Buffer;
}

/** A fresh ECDSA P-256 key pair and a CSR for it (subject CN = hostname; the server overrides it). */
export async function makeKeyAndCsr(commonName: string): Promise<KeyAndCsr> {
  const keys = (await wc.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cn = /^[A-Za-z0-9._-]{1,64}$/.test(commonName) ? commonName : 'fleet-agent';
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [cn] }], keys, signingAlgorithm: ECDSA_P256 }, wc);
  const pkcs8 = await wc.subtle.exportKey('pkcs8', keys.privateKey);
  const spki = Buffer.from(await wc.subtle.exportKey('spki', keys.publicKey));
  return { keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem'), spki };
}

/** Checks the Enroll answer against what we sent and what we pinned; returns the canonical CA fingerprint. */
export function checkEnrollResponse(res: EnrollResponse, key: KeyAndCsr, pinnedCaPem: string, pinned: string): void {
  if (!res.nodeName || !res.certificatePem) throw new FleetError('internal', 'the server answered Enroll without a node name or certificate');
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(res.certificatePem);
    ca = new X509Certificate(res.caCertificatePem || pinnedCaPem);
  } catch (e) {
    throw new FleetError('internal', `the server answered Enroll with an unreadable certificate: ${(e as Error).message}`);
  }
  if (ca.fingerprint256.toUpperCase() !== pinned) throw new FleetError('auth.invalid', 'the server answered Enroll with another CA than the pinned one');
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new FleetError('auth.invalid', 'the node certificate is not issued by the pinned CA');
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(key.spki)) {
    throw new FleetError('auth.invalid', 'the node certificate is not for the key this agent generated');
  }
  if (!cert.subject.split('\n').includes(`CN=${res.nodeName}`)) throw new FleetError('auth.invalid', `the node certificate does not name ${res.nodeName}`);
}

export async function enroll(opts: EnrollOptions): Promise<EnrollResult> {
  const log = opts.log ?? (() => {});
  const addr = parseServerAddress(opts.server);
  const pinned = normaliseFingerprint(opts.caFingerprint);
  const token = opts.token.trim();
  if (token === '') throw new FleetError('usage.invalid', 'the enrolment token is empty');
  const existing = await readStateInfo(opts.stateDir);
  if (existing && !opts.force) {
    throw new FleetError('conflict', `already enrolled as ${existing.node} (${opts.stateDir}); use --force to enrol again`, { node: existing.node });
  }
  const attempts = Math.max(1, opts.attempts ?? 10);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const identity = opts.identity ?? (await collectIdentity());
  const key = await makeKeyAndCsr(identity.hostname);

  let last: FleetError | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) {
      const delay = backoffDelay(attempt - 1, opts.backoff);
      log(`enrol: attempt ${attempt} failed (${last?.message}); retrying in ${delay} ms`);
      if (!(await sleep(delay, opts.signal))) throw new FleetError('unavailable', 'enrolment cancelled');
    }
    if (opts.signal?.aborted) throw new FleetError('unavailable', 'enrolment cancelled');
    let caPem: string;
    try {
      caPem = await fetchPinnedCa(addr, pinned, timeoutMs);
    } catch (e) {
      const fe = e instanceof FleetError ? e : new FleetError('unavailable', String(e));
      if (!isTransient(fe)) throw fe; // wrong CA: never send the token
      last = fe;
      continue;
    }
    const client = makeClient(addr.target, { caPem });
    try {
      const res = await callUnary(
        client,
        client.enroll,
        { token, identity, csrPem: key.csrPem, agentVersion: AGENT_VERSION },
        timeoutMs,
      );
      checkEnrollResponse(res, key, caPem, pinned);
      const cred: AgentCredential = {
        version: 1,
        server: addr.target,
        node: res.nodeName,
        caFingerprint: pinned,
        enrolledAt: new Date().toISOString(),
        certNotAfter: new Date(res.notAfterMs).toISOString(),
        keyPem: key.keyPem,
        certPem: res.certificatePem,
        caPem,
      };
      await saveCredential(opts.stateDir, cred);
      log(`enrolled as ${res.nodeName}; credential in ${opts.stateDir}`);
      return { node: res.nodeName, stateDir: opts.stateDir, certNotAfter: cred.certNotAfter };
    } catch (e) {
      const fe = e instanceof FleetError ? e : new FleetError('internal', String(e));
      if (!isTransient(fe)) throw fe;
      last = fe;
    } finally {
      client.close();
    }
  }
  throw new FleetError(last?.code ?? 'unavailable', `enrolment failed after ${attempts} attempts: ${last?.message ?? 'unknown error'}`, last?.details, { cause: last });
}


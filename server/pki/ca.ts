/**
 * The fleet CA: one ECDSA P-256 key pair per data directory, kept in
 * DATA/pki/ (directory 0700, ca.key 0600, ca.crt 0644). It signs the gRPC
 * server certificate (serverAuth) and the node certificates agents receive
 * when they enrol (clientAuth, CN = node name). See
 * docs/decisions/0004-agent-credentials.md.
 *
 * Node's crypto cannot issue certificates; @peculiar/x509 builds them on
 * Node's WebCrypto. Verification of presented certificates uses Node's own
 * X509Certificate.
 */
import crypto, { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { FleetError } from '../../common/errors.js';
import { fingerprintOfDer } from '../../common/fingerprint.js';
import { mapStorageError } from '../store/storage-errors.js';

/** WebCrypto as @peculiar/x509 types it (the DOM Crypto, structurally Node's webcrypto). */
const wc = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1] & typeof webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

function validTo(cert: NodeX509): Date {
  return new Date(cert.validTo);
}
function validFrom(cert: NodeX509): Date {
  return new Date(cert.validFrom);
}

export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const PKI_DIR = 'pki';
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const SERVER_CERT_FILE = 'server.crt';
export const SERVER_KEY_FILE = 'server.key';

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const DEFAULT_SERVER_VALIDITY_DAYS = 825;
export const DEFAULT_NODE_VALIDITY_DAYS = 1825;
/** loadOrCreateServerCert issues a new server certificate when the old one has less than this left. */
export const SERVER_RENEW_BEFORE_DAYS = 30;
/** Largest CSR (PEM) issueNodeCert accepts. */
export const MAX_CSR_PEM_BYTES = 8 * 1024;

const DAY_MS = 86_400_000;
/** Certificates start a little in the past: nodes' clocks are not always right at first boot. */
const BACKDATE_MS = 60 * 60 * 1000;

export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface FleetCa {
  /** The CA certificate, PEM. */
  readonly certPem: string;
  /** The CA certificate, parsed by Node (for verifying presented certificates). */
  readonly cert: NodeX509;
  /** SHA-256 of the DER certificate, upper-case colon hex (see caFingerprint). */
  readonly fingerprint: string;
  /** The CA's signing key (non-extractable once loaded). */
  readonly privateKey: CryptoKey;
  /** DATA/pki, or null for a CA that only lives in memory (tests). */
  readonly dir: string | null;
}

export interface IssuedCert {
  /** The certificate, PEM; for server certificates followed by the CA certificate (the chain to present). */
  certPem: string;
  /** PKCS#8 PEM; absent for node certificates (the node keeps its key). */
  keyPem?: string;
  /** Upper-case hex serial number. */
  serial: string;
  /** Fingerprint of the leaf certificate (canonical form). */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CaOptions {
  commonName?: string;
  validityDays?: number;
  /** Clock (tests). */
  now?: () => Date;
}

/** `caFingerprint(ca)`: SHA-256 of the CA's DER certificate, upper-case hex pairs joined by colons (AB:CD:...). */
export function caFingerprint(ca: Pick<FleetCa, 'cert'>): string {
  return fingerprintOfDer(ca.cert.raw);
}

function randomSerial(): string {
  const b = crypto.randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive and without a leading zero octet
  return b.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label);
}

function pemBody(pem: string, label: string): Buffer {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`);
  const m = re.exec(pem);
  if (!m) throw new FleetError('config.unreadable', `not a PEM ${label.toLowerCase()}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  return wc.subtle.importKey('pkcs8', pemBody(keyPem, 'PRIVATE KEY'), ECDSA_P256, false, ['sign']);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await wc.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Creates a CA that lives in memory only (tests, or the first step of loadOrCreateCa). */
export async function createCa(opts: CaOptions = {}): Promise<FleetCa & { keyPem: string }> {
  const now = (opts.now ?? (() => new Date()))();
  const keys = (await wc.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [opts.commonName ?? 'fleet CA'] }, { O: ['fleet'] }],
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + (opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS) * DAY_MS),
      keys,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, wc),
      ],
    },
    wc,
  );
  const certPem = cert.toString('pem');
  const keyPem = await exportKeyPem(keys.privateKey);
  const nodeCert = new NodeX509(certPem);
  return { certPem, cert: nodeCert, fingerprint: fingerprintOfDer(nodeCert.raw), privateKey: keys.privateKey, dir: null, keyPem };
}

/** Builds a FleetCa from its PEM files' contents; checks that the key belongs to the certificate. */
export async function caFromPem(certPem: string, keyPem: string, dir: string | null = null): Promise<FleetCa> {
  let cert: NodeX509;
  try {
    cert = new NodeX509(certPem);
  } catch (e) {
    throw new FleetError('config.unreadable', `the CA certificate cannot be parsed: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (!cert.ca) throw new FleetError('config.unreadable', 'the CA certificate is not a CA certificate (basicConstraints CA:FALSE)');
  let privateKey: CryptoKey;
  try {
    privateKey = await importSigningKey(keyPem);
    const nodeKey = crypto.createPrivateKey(keyPem);
    if (!crypto.createPublicKey(nodeKey).equals(cert.publicKey)) throw new Error('the key does not belong to the certificate');
  } catch (e) {
    throw new FleetError('config.unreadable', `the CA key cannot be used: ${(e as Error).message}`, undefined, { cause: e });
  }
  return { certPem, cert, fingerprint: fingerprintOfDer(cert.raw), privateKey, dir };
}

/** The name a pair member is staged under before it is renamed into place. */
export const PENDING_SUFFIX = '.new';

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeDurable(file: string, data: string, mode: number): Promise<void> {
  const fh = await fs.promises.open(file, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes a key and its certificate so that a crash never leaves a pair that
 * does not belong together: both are written to `*.new` and fsynced, then
 * the key is renamed into place, then the certificate, and the directory is
 * fsynced. The one state a crash can leave between the renames (the new
 * key in place, its certificate still `.new`) is completed by
 * completePendingPair; `.new` files alone were never in use and are dropped.
 */
async function writePairAtomic(dir: string, keyFile: string, keyPem: string, certFile: string, certPem: string): Promise<void> {
  const pendingKey = keyFile + PENDING_SUFFIX;
  const pendingCert = certFile + PENDING_SUFFIX;
  await fs.promises.rm(pendingKey, { force: true });
  await fs.promises.rm(pendingCert, { force: true });
  try {
    await writeDurable(pendingKey, keyPem, 0o600);
    await writeDurable(pendingCert, certPem, 0o644);
    await fsyncDir(dir);
    await fs.promises.rename(pendingKey, keyFile);
    await fs.promises.rename(pendingCert, certFile);
    await fsyncDir(dir);
  } catch (e) {
    await fs.promises.rm(pendingKey, { force: true });
    await fs.promises.rm(pendingCert, { force: true });
    throw mapStorageError(e, `cannot write ${certFile} and ${keyFile}`);
  }
}

/** True when this private key (PEM) belongs to this certificate (PEM). */
function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    return crypto.createPublicKey(crypto.createPrivateKey(keyPem)).equals(new NodeX509(certPem).publicKey);
  } catch {
    return false;
  }
}

/**
 * Finishes a pair write a crash interrupted between its two renames: the key
 * is in place and its certificate is still pending. Only a certificate that
 * the key belongs to is moved into place. Returns true when it did so.
 */
async function completePendingPair(dir: string, keyFile: string, certFile: string): Promise<boolean> {
  const pendingCert = certFile + PENDING_SUFFIX;
  if (!(await exists(keyFile)) || (await exists(certFile)) || !(await exists(pendingCert))) return false;
  const [keyPem, certPem] = await Promise.all([fs.promises.readFile(keyFile, 'utf8'), fs.promises.readFile(pendingCert, 'utf8')]);
  if (!keyMatchesCert(keyPem, certPem)) return false;
  await fs.promises.rename(pendingCert, certFile);
  await fsyncDir(dir);
  return true;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.promises.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a private key file that others may read (like sshd does). */
async function checkKeyFileMode(file: string): Promise<void> {
  const st = await fs.promises.stat(file);
  if ((st.mode & 0o077) !== 0) {
    throw new FleetError(
      'config.unreadable',
      `${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
    );
  }
}

async function ensurePkiDir(dataDir: string): Promise<string> {
  const dir = path.join(path.resolve(dataDir), PKI_DIR);
  try {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new FleetError('config.unreadable', `cannot create ${dir}: ${(e as Error).message}`, undefined, { cause: e });
  }
  return dir;
}

/**
 * Loads the fleet CA from DATA/pki/, creating it on first start. Key and
 * certificate are written together (writePairAtomic); a crash between their
 * renames is completed at the next load. A directory with only one of
 * ca.crt / ca.key otherwise, or a key that does not belong to the
 * certificate, is an error, never silently replaced: a new CA would orphan
 * every enrolled node.
 */
export async function loadOrCreateCa(dataDir: string, opts: CaOptions = {}): Promise<FleetCa> {
  const dir = await ensurePkiDir(dataDir);
  const certFile = path.join(dir, CA_CERT_FILE);
  const keyFile = path.join(dir, CA_KEY_FILE);
  await completePendingPair(dir, keyFile, certFile);
  const [haveCert, haveKey] = await Promise.all([exists(certFile), exists(keyFile)]);
  if (haveCert !== haveKey) {
    throw new FleetError(
      'config.unreadable',
      `${haveCert ? keyFile : certFile} is missing while ${haveCert ? certFile : keyFile} exists; restore it from a backup ` +
        '(creating a new CA would invalidate every enrolled node)',
    );
  }
  if (haveCert) {
    await checkKeyFileMode(keyFile);
    const [certPem, keyPem] = await Promise.all([fs.promises.readFile(certFile, 'utf8'), fs.promises.readFile(keyFile, 'utf8')]);
    if (!keyMatchesCert(keyPem, certPem)) {
      throw new FleetError(
        'config.unreadable',
        `${keyFile} does not belong to ${certFile}: a mismatched CA pair; restore both files from the same backup ` +
          '(creating a new CA would invalidate every enrolled node)',
      );
    }
    return caFromPem(certPem, keyPem, dir);
  }
  const created = await createCa(opts);
  await writePairAtomic(dir, keyFile, created.keyPem, certFile, created.certPem);
  const { keyPem: _keyPem, ...ca } = created;
  return { ...ca, dir, privateKey: await importSigningKey(created.keyPem) };
}

export interface ServerCertOptions {
  dnsNames: string[];
  ips: string[];
  validityDays?: number;
  now?: () => Date;
}

function checkNames(opts: ServerCertOptions): void {
  if (opts.dnsNames.length + opts.ips.length === 0) {
    throw new FleetError('config.invalid', 'the server certificate needs at least one DNS name or IP address');
  }
  for (const ip of opts.ips) {
    if (net.isIP(ip) === 0) throw new FleetError('config.invalid', `server certificate: ${ip} is not an IP address`);
  }
  for (const name of opts.dnsNames) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(name) || name.length > 253) {
      throw new FleetError('config.invalid', `server certificate: ${name} is not a DNS name`);
    }
  }
}

/** The CA's subject as a DER-faithful Name (Node's X509Certificate.subject is a display string, not a DN to re-encode). */
function caSubject(ca: FleetCa): x509.Name {
  return new x509.X509Certificate(ca.cert.raw).subjectName;
}

async function authorityKeyId(ca: FleetCa): Promise<x509.AuthorityKeyIdentifierExtension> {
  return x509.AuthorityKeyIdentifierExtension.create(new Uint8Array(ca.cert.publicKey.export({ type: 'spki', format: 'der' })), false, wc);
}

/**
 * Issues the gRPC server's certificate (serverAuth, SANs = dnsNames + ips,
 * CN = first name) with a fresh key. certPem is the chain to present: leaf,
 * then the CA certificate, so agents can check the CA fingerprint from the
 * handshake alone.
 */
export async function issueServerCert(ca: FleetCa, opts: ServerCertOptions): Promise<IssuedCert & { keyPem: string }> {
  checkNames(opts);
  const now = (opts.now ?? (() => new Date()))();
  const keys = (await wc.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(Math.min(now.getTime() + (opts.validityDays ?? DEFAULT_SERVER_VALIDITY_DAYS) * DAY_MS, validTo(ca.cert).getTime()));
  const names: x509.JsonGeneralName[] = [
    ...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...opts.ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [opts.dnsNames[0] ?? opts.ips[0]!] }, { O: ['fleet'] }],
      issuer: caSubject(ca),
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, wc),
        await authorityKeyId(ca),
      ],
    },
    wc,
  );
  return {
    certPem: `${cert.toString('pem')}\n${ca.certPem.trim()}\n`,
    keyPem: await exportKeyPem(keys.privateKey),
    serial: cert.serialNumber.toUpperCase(),
    fingerprint: fingerprintOfDer(new Uint8Array(cert.rawData)),
    notBefore,
    notAfter,
  };
}

function sameNames(cert: NodeX509, opts: ServerCertOptions): boolean {
  const san = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s !== '')
    .map((s) => s.replace(/^IP Address:/, 'IP:'))
    .sort();
  const want = [...opts.dnsNames.map((n) => `DNS:${n}`), ...opts.ips.map((ip) => `IP:${ip}`)].sort();
  return san.length === want.length && san.every((s, i) => s.toLowerCase() === want[i]!.toLowerCase());
}

/**
 * DATA/pki/server.crt + server.key, reused while they were issued by this CA,
 * name exactly these DNS names and IPs and have more than 30 days left;
 * issued anew otherwise.
 */
export async function loadOrCreateServerCert(
  ca: FleetCa,
  dataDir: string,
  opts: ServerCertOptions,
  files: { certFile: string; keyFile: string } = { certFile: SERVER_CERT_FILE, keyFile: SERVER_KEY_FILE },
): Promise<IssuedCert & { keyPem: string }> {
  checkNames(opts);
  const dir = await ensurePkiDir(dataDir);
  const certFile = path.join(dir, files.certFile);
  const keyFile = path.join(dir, files.keyFile);
  const now = (opts.now ?? (() => new Date()))();
  await completePendingPair(dir, keyFile, certFile);
  if ((await exists(certFile)) && (await exists(keyFile))) {
    try {
      await checkKeyFileMode(keyFile);
      const [certPem, keyPem] = await Promise.all([fs.promises.readFile(certFile, 'utf8'), fs.promises.readFile(keyFile, 'utf8')]);
      const leaf = new NodeX509(certPem);
      const keyMatches = crypto.createPublicKey(crypto.createPrivateKey(keyPem)).equals(leaf.publicKey);
      const fresh = validTo(leaf).getTime() - now.getTime() > SERVER_RENEW_BEFORE_DAYS * DAY_MS;
      if (keyMatches && fresh && leaf.checkIssued(ca.cert) && leaf.verify(ca.cert.publicKey) && sameNames(leaf, opts)) {
        return {
          certPem,
          keyPem,
          serial: leaf.serialNumber.toUpperCase(),
          fingerprint: fingerprintOfDer(leaf.raw),
          notBefore: validFrom(leaf),
          notAfter: validTo(leaf),
        };
      }
    } catch (e) {
      if (e instanceof FleetError) throw e;
      // Unreadable or foreign files: issue anew below.
    }
  }
  const issued = await issueServerCert(ca, opts);
  await writePairAtomic(dir, keyFile, issued.keyPem, certFile, issued.certPem);
  return issued;
}

export interface CsrInfo {
  /** The CSR's public key, SPKI DER. */
  spki: Uint8Array;
  /** SHA-256 (hex) of the SPKI: identifies the node's key pair. */
  keySha256: string;
  /** The subject the node asked for (ignored for the certificate; informative). */
  subject: string;
}

/**
 * Parses and checks a PKCS#10 CSR (PEM): size, signature (proof the sender
 * holds the private key) and key type (ECDSA P-256 or P-384).
 * FleetError request.invalid otherwise.
 */
export async function parseCsr(csrPem: string): Promise<CsrInfo> {
  if (typeof csrPem !== 'string' || csrPem.trim() === '') throw new FleetError('request.invalid', 'the CSR is empty');
  if (Buffer.byteLength(csrPem) > MAX_CSR_PEM_BYTES) throw new FleetError('request.invalid', `the CSR is larger than ${MAX_CSR_PEM_BYTES} bytes`);
  if (!/^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(csrPem)) throw new FleetError('request.invalid', 'the CSR is not a PEM certificate request');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    throw new FleetError('request.invalid', 'the CSR cannot be parsed', undefined, { cause: e });
  }
  const spki = new Uint8Array(csr.publicKey.rawData);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new FleetError('request.invalid', 'the CSR public key cannot be read', undefined, { cause: e });
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || (curve !== 'prime256v1' && curve !== 'secp384r1')) {
    throw new FleetError('request.invalid', 'the CSR key must be ECDSA P-256 or P-384');
  }
  let ok = false;
  try {
    ok = await csr.verify(wc);
  } catch {
    ok = false;
  }
  if (!ok) throw new FleetError('request.invalid', 'the CSR signature does not verify');
  return { spki, keySha256: crypto.createHash('sha256').update(spki).digest('hex'), subject: csr.subject };
}

export interface NodeCertOptions {
  validityDays?: number;
  now?: () => Date;
}

/**
 * Issues a node's client certificate (clientAuth only, CN = node name, no
 * SANs) for the public key of its CSR. The subject the CSR asks for is
 * ignored. Accepts the CSR as PEM or as already parsed by parseCsr.
 */
export async function issueNodeCert(ca: FleetCa, nodeName: string, csr: string | CsrInfo, opts: NodeCertOptions = {}): Promise<IssuedCert> {
  if (typeof nodeName !== 'string' || nodeName === '' || nodeName.length > 64) {
    throw new FleetError('request.invalid', 'a node certificate needs a node name of 1-64 characters');
  }
  const info = typeof csr === 'string' ? await parseCsr(csr) : csr;
  const now = (opts.now ?? (() => new Date()))();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(Math.min(now.getTime() + (opts.validityDays ?? DEFAULT_NODE_VALIDITY_DAYS) * DAY_MS, validTo(ca.cert).getTime()));
  const publicKey = new x509.PublicKey(info.spki);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [nodeName] }, { O: ['fleet nodes'] }],
      issuer: caSubject(ca),
      notBefore,
      notAfter,
      publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, wc),
        await authorityKeyId(ca),
      ],
    },
    wc,
  );
  return {
    certPem: cert.toString('pem') + '\n',
    serial: cert.serialNumber.toUpperCase(),
    fingerprint: fingerprintOfDer(new Uint8Array(cert.rawData)),
    notBefore,
    notAfter,
  };
}

/** The CN of a certificate subject as Node prints it ("CN=node1\nO=fleet nodes"); null when absent or repeated. */
export function commonName(cert: NodeX509): string | null {
  const cns = cert.subject
    .split('\n')
    .filter((l) => l.startsWith('CN='))
    .map((l) => l.slice(3));
  return cns.length === 1 ? cns[0]! : null;
}

/**
 * Checks a certificate a node presented: issued and signed by this CA, inside
 * its validity period, clientAuth, not a CA, one CN. Returns the CN (the node
 * name); FleetError auth.invalid otherwise. Whether it is still the node's
 * current certificate is for the caller (the store) to decide.
 */
export function verifyNodeCertificate(ca: FleetCa, der: Uint8Array, now: Date = new Date()): { node: string; fingerprint: string; cert: NodeX509 } {
  let cert: NodeX509;
  try {
    cert = new NodeX509(Buffer.from(der));
  } catch {
    throw new FleetError('auth.invalid', 'the client certificate cannot be parsed');
  }
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) throw new FleetError('auth.invalid', 'the client certificate is not issued by the fleet CA');
  if (now < validFrom(cert) || now > validTo(cert)) throw new FleetError('auth.invalid', 'the client certificate is not valid at this time');
  if (cert.ca) throw new FleetError('auth.invalid', 'the client certificate is a CA certificate');
  if (!(cert.keyUsage ?? []).includes(EKU_CLIENT_AUTH)) throw new FleetError('auth.invalid', 'the client certificate is not for client authentication');
  const node = commonName(cert);
  if (node === null || node === '') throw new FleetError('auth.invalid', 'the client certificate names no node');
  return { node, fingerprint: fingerprintOfDer(cert.raw), cert };
}

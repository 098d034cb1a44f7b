/**
 * server/pki: the fleet CA, server and node certificates. Cross-checked with
 * the openssl CLI where it is installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto, { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeKeyAndCsr } from '../../../agent/enroll.js';
import { FleetError } from '../../../common/errors.js';
import {
  caFingerprint,
  createCa,
  EKU_CLIENT_AUTH,
  EKU_SERVER_AUTH,
  issueNodeCert,
  issueServerCert,
  loadOrCreateCa,
  loadOrCreateServerCert,
  normaliseFingerprint,
  parseCsr,
  sameFingerprint,
  verifyNodeCertificate,
} from '../../../server/pki/index.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-pki-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof FleetError ? e.code : 'not-a-FleetError';
  }
  return undefined;
}

async function codeAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof FleetError ? e.code : 'not-a-FleetError';
  }
  return undefined;
}

describe('fingerprints', () => {
  it('normalises any accepted form to upper-case colon hex and refuses the rest', () => {
    const hex = 'ab'.repeat(32);
    const want = 'AB:'.repeat(31) + 'AB';
    expect(normaliseFingerprint(hex)).toBe(want);
    expect(normaliseFingerprint(`sha256:${hex.toUpperCase()}`)).toBe(want);
    expect(normaliseFingerprint(`SHA256 Fingerprint=${want}`.replace('SHA256 Fingerprint=', 'SHA256='))).toBe(want);
    expect(normaliseFingerprint(` ${want.toLowerCase()} `)).toBe(want);
    expect(code(() => normaliseFingerprint('ab'.repeat(31)))).toBe('usage.invalid');
    expect(code(() => normaliseFingerprint('zz'.repeat(32)))).toBe('usage.invalid');
    expect(sameFingerprint(hex, want)).toBe(true);
    expect(sameFingerprint(hex, 'nonsense')).toBe(false);
  });
});

describe('the CA', () => {
  it('is created on first use in DATA/pki (dir 0700, key 0600) and loaded the same afterwards', async () => {
    const data = tmp();
    const a = await loadOrCreateCa(data);
    const pki = path.join(data, 'pki');
    expect(fs.statSync(pki).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(pki, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(a.cert.ca).toBe(true);
    expect(a.cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const b = await loadOrCreateCa(data);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(caFingerprint(b)).toBe(a.fingerprint);
    expect(a.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // Both load the same key: a certificate issued by one verifies under the other.
    const leaf = await issueServerCert(b, { dnsNames: ['x'], ips: [] });
    expect(new X509Certificate(leaf.certPem).verify(a.cert.publicKey)).toBe(true);
  });

  it.skipIf(!haveOpenssl)('its fingerprint is what openssl prints', async () => {
    const data = tmp();
    const ca = await loadOrCreateCa(data);
    const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', path.join(data, 'pki/ca.crt')]).toString();
    expect(normaliseFingerprint(out.split('=')[1]!)).toBe(ca.fingerprint);
  });

  it('refuses a half-present CA and a key others can read', async () => {
    const data = tmp();
    await loadOrCreateCa(data);
    const keyFile = path.join(data, 'pki/ca.key');
    fs.chmodSync(keyFile, 0o644);
    expect(await codeAsync(loadOrCreateCa(data))).toBe('config.unreadable');
    fs.chmodSync(keyFile, 0o600);
    fs.rmSync(path.join(data, 'pki/ca.crt'));
    const e = await loadOrCreateCa(data).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).message).toMatch(/ca\.crt is missing/);
    expect(fs.existsSync(path.join(data, 'pki/ca.crt'))).toBe(false);
  });

  it('refuses a key that does not belong to the certificate, saying so', async () => {
    const data = tmp();
    await loadOrCreateCa(data);
    const other = await createCa();
    fs.writeFileSync(path.join(data, 'pki/ca.key'), other.keyPem, { mode: 0o600 });
    const e = await loadOrCreateCa(data).catch((x: unknown) => x);
    expect((e as FleetError).code).toBe('config.unreadable');
    expect((e as FleetError).message).toMatch(/ca\.key does not belong to .*ca\.crt: a mismatched CA pair; restore both files from the same backup/);
  });

  it('writes key and certificate as a pair: no temporary files are left, and no state a crash can leave is a mismatch', async () => {
    const data = tmp();
    const a = await loadOrCreateCa(data);
    const pki = path.join(data, 'pki');
    expect(fs.readdirSync(pki).filter((f) => f.startsWith('ca.')).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(fs.statSync(path.join(pki, 'ca.crt')).mode & 0o777).toBe(0o644);

    // Crash after both were staged, before any rename: never in use, so a fresh CA replaces them.
    const staged = tmp();
    const s = await createCa();
    fs.mkdirSync(path.join(staged, 'pki'), { mode: 0o700 });
    fs.writeFileSync(path.join(staged, 'pki/ca.key.new'), s.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(staged, 'pki/ca.crt.new'), s.certPem);
    const fresh = await loadOrCreateCa(staged);
    expect(fs.readdirSync(path.join(staged, 'pki')).sort()).toEqual(['ca.crt', 'ca.key']);
    const reloaded = await loadOrCreateCa(staged);
    expect(reloaded.fingerprint).toBe(fresh.fingerprint);

    // Crash between the renames: the key is in place, its certificate still staged. The next load completes the pair.
    const half = tmp();
    const h = await createCa();
    fs.mkdirSync(path.join(half, 'pki'), { mode: 0o700 });
    fs.writeFileSync(path.join(half, 'pki/ca.key'), h.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(half, 'pki/ca.crt.new'), h.certPem);
    const completed = await loadOrCreateCa(half);
    expect(completed.fingerprint).toBe(h.fingerprint);
    expect(fs.readdirSync(path.join(half, 'pki')).sort()).toEqual(['ca.crt', 'ca.key']);

    // A staged certificate of another key is not taken: the half-present CA is reported, nothing replaced.
    const foreign = tmp();
    fs.mkdirSync(path.join(foreign, 'pki'), { mode: 0o700 });
    fs.writeFileSync(path.join(foreign, 'pki/ca.key'), h.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(foreign, 'pki/ca.crt.new'), a.certPem);
    const e = await loadOrCreateCa(foreign).catch((x: unknown) => x);
    expect((e as FleetError).message).toMatch(/ca\.crt is missing/);
    expect(fs.existsSync(path.join(foreign, 'pki/ca.crt'))).toBe(false);
  });
});

describe('server certificates', () => {
  it('name the DNS names and IPs, are for serverAuth, and come with the CA in the chain', async () => {
    const ca = await createCa();
    const s = await issueServerCert(ca, { dnsNames: ['fleet.example', 'localhost'], ips: ['10.0.0.1', '::1'] });
    const certs = s.certPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
    expect(certs).toHaveLength(2);
    const leaf = new X509Certificate(certs[0]!);
    expect(new X509Certificate(certs[1]!).fingerprint256).toBe(ca.cert.fingerprint256);
    expect(leaf.checkIssued(ca.cert)).toBe(true);
    expect(leaf.verify(ca.cert.publicKey)).toBe(true);
    expect(leaf.keyUsage).toEqual([EKU_SERVER_AUTH]);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkHost('fleet.example')).toBe('fleet.example');
    expect(leaf.checkIP('10.0.0.1')).toBe('10.0.0.1');
    expect(leaf.checkIP('10.0.0.2')).toBeUndefined();
    expect(crypto.createPublicKey(crypto.createPrivateKey(s.keyPem)).equals(leaf.publicKey)).toBe(true);
    expect(await codeAsync(issueServerCert(ca, { dnsNames: [], ips: [] }))).toBe('config.invalid');
    expect(await codeAsync(issueServerCert(ca, { dnsNames: ['bad name'], ips: [] }))).toBe('config.invalid');
    expect(await codeAsync(issueServerCert(ca, { dnsNames: [], ips: ['10.0.0.300'] }))).toBe('config.invalid');
  });

  it.skipIf(!haveOpenssl)('verify with openssl against the CA, for the purpose sslserver', async () => {
    const ca = await createCa();
    const s = await issueServerCert(ca, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const d = tmp();
    fs.writeFileSync(path.join(d, 'ca.pem'), ca.certPem);
    fs.writeFileSync(path.join(d, 'leaf.pem'), s.certPem.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]!);
    const out = execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', path.join(d, 'ca.pem'), path.join(d, 'leaf.pem')]).toString();
    expect(out).toMatch(/OK/);
    const r = spawnSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', path.join(d, 'ca.pem'), path.join(d, 'leaf.pem')]);
    expect(r.status).not.toBe(0);
  });

  it('loadOrCreateServerCert reuses the files while the names match, reissues when they change', async () => {
    const data = tmp();
    const ca = await loadOrCreateCa(data);
    const a = await loadOrCreateServerCert(ca, data, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    expect(fs.statSync(path.join(data, 'pki/server.key')).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateServerCert(ca, data, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    expect(b.fingerprint).toBe(a.fingerprint);
    const c = await loadOrCreateServerCert(ca, data, { dnsNames: ['localhost'], ips: ['127.0.0.1', '10.0.0.1'] });
    expect(c.fingerprint).not.toBe(a.fingerprint);
    // Near expiry: reissued.
    const later = new Date(Date.now() + 900 * 86_400_000);
    const d = await loadOrCreateServerCert(ca, data, { dnsNames: ['localhost'], ips: ['127.0.0.1', '10.0.0.1'], now: () => later });
    expect(d.fingerprint).not.toBe(c.fingerprint);
  });
});

describe('node certificates', () => {
  it('are issued for the CSR key with CN = node name, clientAuth only; the CSR subject is ignored', async () => {
    const ca = await createCa();
    const key = await makeKeyAndCsr('evil-admin');
    const cert = await issueNodeCert(ca, 'node7', key.csrPem);
    const x = new X509Certificate(cert.certPem);
    expect(x.subject.split('\n')).toContain('CN=node7');
    expect(x.subject).not.toContain('evil-admin');
    expect(x.keyUsage).toEqual([EKU_CLIENT_AUTH]);
    expect(x.ca).toBe(false);
    expect(x.subjectAltName).toBeUndefined();
    expect(x.publicKey.export({ type: 'spki', format: 'der' }).equals(key.spki)).toBe(true);
    expect(verifyNodeCertificate(ca, x.raw)).toMatchObject({ node: 'node7', fingerprint: cert.fingerprint });
    expect(cert.serial).toBe(x.serialNumber.toUpperCase());
  });

  it('refuse CSRs that are not PEM, do not verify, or carry another key type', async () => {
    const ca = await createCa();
    expect(await codeAsync(parseCsr(''))).toBe('request.invalid');
    expect(await codeAsync(parseCsr('hello'))).toBe('request.invalid');
    expect(await codeAsync(parseCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----'))).toBe('request.invalid');
    expect(await codeAsync(parseCsr('-----BEGIN CERTIFICATE REQUEST-----\n' + 'A'.repeat(9000)))).toBe('request.invalid');
    // A valid CSR with one signature byte changed.
    const key = await makeKeyAndCsr('n');
    const der = Buffer.from(key.csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 3] = der[der.length - 3]! ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await codeAsync(issueNodeCert(ca, 'n', tampered))).toBe('request.invalid');
    expect(await codeAsync(issueNodeCert(ca, '', key.csrPem))).toBe('request.invalid');
  });

  it.skipIf(!haveOpenssl)('refuse an RSA CSR made by openssl', async () => {
    const d = tmp();
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=x', '-keyout', path.join(d, 'k'), '-out', path.join(d, 'csr')], { stdio: 'pipe' });
    const e = await parseCsr(fs.readFileSync(path.join(d, 'csr'), 'utf8')).catch((x: unknown) => x);
    expect((e as FleetError).message).toMatch(/ECDSA P-256 or P-384/);
  });

  it.skipIf(!haveOpenssl)('accept a P-384 CSR made by openssl and verify with openssl as sslclient', async () => {
    const ca = await createCa();
    const d = tmp();
    execFileSync(
      'openssl',
      ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-subj', '/CN=x', '-keyout', path.join(d, 'k'), '-out', path.join(d, 'csr')],
      { stdio: 'pipe' },
    );
    const cert = await issueNodeCert(ca, 'node9', fs.readFileSync(path.join(d, 'csr'), 'utf8'));
    fs.writeFileSync(path.join(d, 'ca.pem'), ca.certPem);
    fs.writeFileSync(path.join(d, 'leaf.pem'), cert.certPem);
    expect(execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', path.join(d, 'ca.pem'), path.join(d, 'leaf.pem')]).toString()).toMatch(/OK/);
  });

  it('verifyNodeCertificate refuses server certificates, other CAs, and certificates out of their validity', async () => {
    const ca = await createCa();
    const other = await createCa();
    const key = await makeKeyAndCsr('n');
    const mine = new X509Certificate((await issueNodeCert(ca, 'node1', key.csrPem)).certPem);
    const theirs = new X509Certificate((await issueNodeCert(other, 'node1', key.csrPem)).certPem);
    const server = new X509Certificate((await issueServerCert(ca, { dnsNames: ['node1'], ips: [] })).certPem);
    expect(code(() => verifyNodeCertificate(ca, theirs.raw))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, server.raw))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, ca.cert.raw))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, mine.raw, new Date(Date.now() + 2000 * 86_400_000)))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, mine.raw, new Date(Date.now() - 86_400_000)))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, Buffer.from('junk')))).toBe('auth.invalid');
    expect(code(() => verifyNodeCertificate(ca, mine.raw))).toBeUndefined();
  });
});

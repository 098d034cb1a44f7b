/**
 * agent/: address parsing, backoff, the pinned-CA check, EFI/mount/sysfs
 * readers on fixture trees, the credential files, and the CLI's edges.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backoffDelay, sleep } from '../../../common/backoff.js';
import { collectBootFacts, parseImageRecord, parseEfiBootOrder, parseEfiLoadOption, parseEfiUint16, parseRootMount, readEfiBoot, EFI_GLOBAL_GUID } from '../../../agent/boot.js';
import { makeKeyAndCsr, checkEnrollResponse } from '../../../agent/enroll.js';
import { cleanDmi, collectIdentity } from '../../../agent/identity.js';
import { main } from '../../../agent/main.js';
import { loadCredential, readStateInfo, saveCredential } from '../../../agent/state.js';
import { checkServerIdentity, parseServerAddress, pickPinnedCa } from '../../../agent/tls.js';
import { FleetError } from '../../../common/errors.js';
import { createCa, issueNodeCert, issueServerCert } from '../../../server/pki/index.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-agent-unit-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function write(root: string, rel: string, data: string | Buffer): void {
  const f = path.join(root, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, data);
}

function efiVar(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x07, 0, 0, 0]), payload]);
}
function u16(...ns: number[]): Buffer {
  const b = Buffer.alloc(ns.length * 2);
  ns.forEach((n, i) => b.writeUInt16LE(n, i * 2));
  return b;
}
function loadOption(label: string, active: boolean): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32LE(active ? 1 : 0, 0);
  head.writeUInt16LE(4, 4);
  return efiVar(Buffer.concat([head, Buffer.from(label + '\0', 'utf16le'), Buffer.from([0x7f, 0xff, 0x04, 0x00])]));
}

function der(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}
function split(chain: string): string[] {
  return chain.split(/(?=-----BEGIN CERTIFICATE-----)/);
}

describe('server address', () => {
  it('parses HOST[:PORT], IPv6 in brackets, default port 50051', () => {
    expect(parseServerAddress('10.0.0.1:6000')).toEqual({ host: '10.0.0.1', port: 6000, target: '10.0.0.1:6000' });
    expect(parseServerAddress('odin')).toEqual({ host: 'odin', port: 50051, target: 'odin:50051' });
    expect(parseServerAddress('[fd00::1]:7')).toEqual({ host: 'fd00::1', port: 7, target: '[fd00::1]:7' });
    for (const bad of ['', 'a b:1', 'h:0', 'h:70000', 'fd00::1:7', 'http://h:1']) {
      expect(() => parseServerAddress(bad), bad).toThrow(FleetError);
    }
  });
});

describe('backoff', () => {
  it('grows exponentially with jitter in [d/2, d], capped', () => {
    expect(backoffDelay(0, { initialMs: 100, random: () => 0 })).toBe(50);
    expect(backoffDelay(0, { initialMs: 100, random: () => 1 })).toBe(100);
    expect(backoffDelay(3, { initialMs: 100, random: () => 1 })).toBe(800);
    expect(backoffDelay(30, { initialMs: 100, maxMs: 5000, random: () => 1 })).toBe(5000);
  });
  it('sleep ends early when aborted', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 10);
    expect(await sleep(10_000, ac.signal)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('the pinned CA check', () => {
  it('accepts the chain of the pinned CA and returns its certificate', async () => {
    const ca = await createCa();
    const s = await issueServerCert(ca, { dnsNames: ['localhost'], ips: [] });
    const chain = split(s.certPem).map(der);
    expect(new X509Certificate(pickPinnedCa(chain, ca.fingerprint.replace(/:/g, '').toLowerCase())).fingerprint256).toBe(ca.cert.fingerprint256);
  });

  it('refuses another CA, a man in the middle showing the pinned CA with its own leaf, and a node certificate posing as server', async () => {
    const ca = await createCa();
    const evil = await createCa();
    const evilLeaf = await issueServerCert(evil, { dnsNames: ['localhost'], ips: [] });
    const genuine = await issueServerCert(ca, { dnsNames: ['localhost'], ips: [] });
    const msg = (fn: () => unknown) => {
      try {
        fn();
        return 'accepted';
      } catch (e) {
        return e instanceof FleetError ? `${e.code}: ${e.message}` : String(e);
      }
    };
    expect(msg(() => pickPinnedCa(split(genuine.certPem).map(der), evil.fingerprint))).toMatch(/^auth.invalid: .*do not include the CA/);
    // The attacker can copy the public CA certificate, not sign with its key.
    const mitm = [der(split(evilLeaf.certPem)[0]!), der(ca.certPem)];
    expect(msg(() => pickPinnedCa(mitm, ca.fingerprint))).toMatch(/^auth.invalid: .*not signed by the pinned CA/);
    const key = await makeKeyAndCsr('x');
    const nodeCert = await issueNodeCert(ca, 'node1', key.csrPem);
    expect(msg(() => pickPinnedCa([der(nodeCert.certPem), der(ca.certPem)], ca.fingerprint))).toMatch(/not for server authentication/);
    expect(msg(() => pickPinnedCa([], ca.fingerprint))).toMatch(/no certificate/);
  });

  it('checkServerIdentity wants the name and serverAuth', async () => {
    const ca = await createCa();
    const s = await issueServerCert(ca, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const peer = (pem: string) => {
      const x = new X509Certificate(pem);
      return { subject: { CN: 'x' }, subjectaltname: x.subjectAltName, ext_key_usage: x.keyUsage, raw: x.raw } as never;
    };
    expect(checkServerIdentity('127.0.0.1', peer(split(s.certPem)[0]!))).toBeUndefined();
    expect(checkServerIdentity('10.9.9.9', peer(split(s.certPem)[0]!))).toBeInstanceOf(Error);
    const key = await makeKeyAndCsr('x');
    const n = await issueNodeCert(ca, 'localhost', key.csrPem);
    const x = new X509Certificate(n.certPem);
    expect(checkServerIdentity('localhost', { subject: { CN: 'localhost' }, subjectaltname: 'DNS:localhost', ext_key_usage: x.keyUsage, raw: x.raw } as never)).toBeInstanceOf(Error);
  });

  it('checkEnrollResponse refuses a certificate for another key or another CA', async () => {
    const ca = await createCa();
    const mine = await makeKeyAndCsr('a');
    const theirs = await makeKeyAndCsr('b');
    const good = await issueNodeCert(ca, 'node1', mine.csrPem);
    const res = { nodeName: 'node1', certificatePem: good.certPem, caCertificatePem: ca.certPem, notAfterMs: 0 };
    expect(() => checkEnrollResponse(res, mine, ca.certPem, ca.fingerprint)).not.toThrow();
    expect(() => checkEnrollResponse(res, theirs, ca.certPem, ca.fingerprint)).toThrow(/not for the key/);
    expect(() => checkEnrollResponse({ ...res, nodeName: 'node2' }, mine, ca.certPem, ca.fingerprint)).toThrow(/does not name node2/);
    const other = await createCa();
    const foreign = await issueNodeCert(other, 'node1', mine.csrPem);
    expect(() => checkEnrollResponse({ ...res, certificatePem: foreign.certPem }, mine, ca.certPem, ca.fingerprint)).toThrow(/not issued by the pinned CA/);
    expect(() => checkEnrollResponse({ ...res, caCertificatePem: other.certPem }, mine, ca.certPem, ca.fingerprint)).toThrow(/another CA/);
  });
});

describe('boot facts', () => {
  it('parse EFI variables', () => {
    expect(parseEfiUint16(efiVar(u16(0x0003)))).toBe('0003');
    expect(parseEfiUint16(Buffer.from([7, 0, 0, 0]))).toBeNull();
    expect(parseEfiBootOrder(efiVar(u16(0x0003, 0x0001, 0x00ab)))).toEqual(['0003', '0001', '00AB']);
    expect(parseEfiLoadOption(loadOption('UEFI PXEv4', true))).toEqual({ active: true, label: 'UEFI PXEv4' });
    expect(parseEfiLoadOption(loadOption('disk', false))).toEqual({ active: false, label: 'disk' });
    expect(parseEfiLoadOption(Buffer.alloc(3))).toBeNull();
  });

  it('tell a local root from NFS, tmpfs, overlay and loop devices (last / wins)', () => {
    expect(parseRootMount('rootfs / rootfs rw 0 0\n/dev/mapper/alma-root / xfs rw 0 0\nproc /proc proc rw 0 0\n')).toEqual({ source: '/dev/mapper/alma-root', fstype: 'xfs', local: true });
    expect(parseRootMount('10.0.0.1:/export/root / nfs4 ro 0 0\n').local).toBe(false);
    expect(parseRootMount('tmpfs / tmpfs rw 0 0\n').local).toBe(false);
    expect(parseRootMount('overlay / overlay rw 0 0\n').local).toBe(false);
    expect(parseRootMount('/dev/loop0 / squashfs ro 0 0\n').local).toBe(false);
    expect(parseRootMount('/dev/nvme0n1p2 / ext4 rw 0 0\n').local).toBe(true);
    expect(parseRootMount('').local).toBe(false);
  });

  it('are read from /proc and efivarfs under a root', async () => {
    const root = tmp();
    write(root, 'proc/sys/kernel/random/boot_id', 'c0ffee00-1111-2222-3333-444455556666\n');
    write(root, 'proc/uptime', '123.45 678.90\n');
    write(root, 'proc/cmdline', 'BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro\n');
    write(root, 'proc/self/mounts', '/dev/sda2 / xfs rw 0 0\n');
    const v = `sys/firmware/efi/efivars`;
    write(root, `${v}/BootCurrent-${EFI_GLOBAL_GUID}`, efiVar(u16(2)));
    write(root, `${v}/BootOrder-${EFI_GLOBAL_GUID}`, efiVar(u16(1, 2)));
    write(root, `${v}/Boot0001-${EFI_GLOBAL_GUID}`, loadOption('UEFI PXEv4', true));
    write(root, `${v}/Boot0002-${EFI_GLOBAL_GUID}`, loadOption('AlmaLinux', true));
    write(root, `${v}/Boot0002-00000000-0000-0000-0000-000000000000`, loadOption('other vendor', true));
    const facts = await collectBootFacts(root);
    expect(facts).toMatchObject({
      bootId: 'c0ffee00-1111-2222-3333-444455556666',
      uptimeMs: 123_450,
      kernelCmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro',
      rootOnLocalDisk: true,
      rootSource: '/dev/sda2',
      rootFstype: 'xfs',
    });
    expect(facts.efi).toEqual({
      bootCurrent: '0002',
      bootOrder: ['0001', '0002'],
      bootNext: '',
      entries: [
        { id: '0001', label: 'UEFI PXEv4', active: true },
        { id: '0002', label: 'AlmaLinux', active: true },
      ],
    });
    const legacy = tmp();
    expect(await readEfiBoot(legacy)).toBeUndefined();
    expect(facts.image).toBeUndefined();
  });

  it('name the fleet image from /etc/fleet/image.json: a stateless boot\'s and an image install\'s (no install key: image); nothing when absent or not JSON', async () => {
    const root = tmp();
    const digest = `sha256:${'ab'.repeat(32)}`;
    write(root, 'etc/fleet/image.json', JSON.stringify({ name: 'lab', digest, squashfsSha256: 'x', node: 'n1', install: 'stateless', root: 'overlay' }));
    expect((await collectBootFacts(root)).image).toEqual({ name: 'lab', digest, install: 'stateless' });
    expect(parseImageRecord(JSON.stringify({ name: 'lab', digest, rootfsSha256: 'y', node: 'n1' }))).toEqual({ name: 'lab', digest, install: 'image' });
    expect(parseImageRecord('{not json')).toBeUndefined();
    expect(parseImageRecord(JSON.stringify({ digest }))).toBeUndefined();
  });
});

describe('machine identity', () => {
  it('reads DMI and the MACs of physical Ethernet NICs (bond slaves by permanent address; no IB, no virtual)', async () => {
    const root = tmp();
    write(root, 'sys/class/dmi/id/product_serial', 'ABC123\n');
    write(root, 'sys/class/dmi/id/product_uuid', '4C4C4544-0000-1000-8000-000000000001\n');
    const nic = (name: string, mac: string, type = '1', physical = true, perm?: string) => {
      write(root, `sys/class/net/${name}/address`, mac + '\n');
      write(root, `sys/class/net/${name}/type`, type + '\n');
      if (physical) fs.mkdirSync(path.join(root, `sys/class/net/${name}/device`), { recursive: true });
      if (perm) write(root, `sys/class/net/${name}/bonding_slave/perm_hwaddr`, perm + '\n');
    };
    nic('eno1', '52:54:00:AA:00:01');
    nic('eno2', '52:54:00:aa:00:01', '1', true, '52:54:00:aa:00:02'); // bond slave wearing eno1's MAC
    nic('bond0', '52:54:00:aa:00:01', '1', false);
    nic('lo', '00:00:00:00:00:00', '772', false);
    nic('ib0', '80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:0b:0c', '32');
    const id = await collectIdentity(root);
    expect(id.serial).toBe('ABC123');
    expect(id.uuid).toBe('4c4c4544-0000-1000-8000-000000000001');
    expect(id.macs).toEqual(['52:54:00:aa:00:01', '52:54:00:aa:00:02']);
    expect(id.hostname).toBe(os.hostname());
  });

  it('drops firmware placeholders', () => {
    for (const v of ['To Be Filled By O.E.M.', 'Not Specified', '0', 'System Serial Number', '03000200-0400-0500-0006-000700080009']) expect(cleanDmi(v), v).toBe('');
    expect(cleanDmi(' J1234 ')).toBe('J1234');
  });
});

describe('credential files', () => {
  it('are written 0600 in a 0700 dir and read back; a half-written state is not an enrolment', async () => {
    const dir = path.join(tmp(), 'state');
    const cred = {
      version: 1 as const,
      server: '127.0.0.1:50051',
      node: 'node1',
      caFingerprint: 'AA',
      enrolledAt: '2024-01-01T00:00:00.000Z',
      certNotAfter: '2029-01-01T00:00:00.000Z',
      keyPem: 'k',
      certPem: 'c',
      caPem: 'a',
    };
    await saveCredential(dir, cred);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
    expect(await loadCredential(dir)).toEqual(cred);
    fs.rmSync(path.join(dir, 'agent.json'));
    expect(await readStateInfo(dir)).toBeNull();
    await expect(loadCredential(dir)).rejects.toMatchObject({ code: 'config.unreadable' });
    fs.writeFileSync(path.join(dir, 'agent.json'), '{"version":2}');
    await expect(readStateInfo(dir)).rejects.toMatchObject({ code: 'config.unreadable' });
  });
});

describe('fleet-agent CLI', () => {
  async function run(...args: string[]) {
    let out = '';
    let err = '';
    const code = await main(['node', 'fleet-agent', ...args], { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
    return { code, out, err };
  }

  it('plan without a cached config or --config is a configuration error (exit 2)', async () => {
    const r = await run('plan', '--state-dir', path.join(tmp(), 'none'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no cached config/);
  });

  it('usage errors exit 2 before touching the network', async () => {
    const dir = tmp();
    expect((await run('enroll', '--server', '127.0.0.1:1', '--token', 't')).code).toBe(2); // no fingerprint
    const t0 = Date.now();
    const bad = await run('enroll', '--server', '127.0.0.1:1', '--token', 'tok', '--ca-fingerprint', 'abc', '--state-dir', dir);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/fingerprint/);
    const noToken = await run('enroll', '--server', '127.0.0.1:1', '--ca-fingerprint', 'ab'.repeat(32), '--state-dir', dir);
    expect(noToken.code).toBe(2);
    expect(noToken.err).toMatch(/token/);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await run('--help')).code).toBe(0);
    expect((await run('bogus')).code).toBe(2);
  });

  it('run without an enrolment is a configuration error', async () => {
    const r = await run('run', '--state-dir', path.join(tmp(), 'none'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not enrolled/);
  });

  it('enroll refuses to overwrite an existing credential without --force', async () => {
    const dir = path.join(tmp(), 'state');
    await saveCredential(dir, { version: 1, server: 's:1', node: 'node1', caFingerprint: 'AA', enrolledAt: '', certNotAfter: '', keyPem: 'k', certPem: 'c', caPem: 'a' });
    const r = await run('enroll', '--server', '127.0.0.1:1', '--token', 'tok', '--ca-fingerprint', 'ab'.repeat(32), '--state-dir', dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already enrolled as node1/);
  });
});

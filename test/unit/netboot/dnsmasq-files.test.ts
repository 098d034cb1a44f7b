/** The small pieces around dnsmasq: lease file parser, TFTP root preparation, user and path checks. */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lookupUser, parseLeaseFile, prepareTftpRoot } from '../../../server/netboot/dnsmasq/index.js';
import { unreachableReason } from '../../../server/netboot/dnsmasq/system.js';

describe('parseLeaseFile', () => {
  it('reads IPv4 leases and skips DHCPv6 and junk', () => {
    const text = [
      '1795242392 00:0c:01:02:03:c9 10.77.0.202 * 01:00:0c:01:02:03:c9',
      '0 52:54:00:aa:00:01 10.77.0.11 known1 *',
      'duid 00:01:00:01:2c:1f:aa:bb:52:54:00:aa:00:01',
      '1795242392 1234 fd00::5 * 00:01:00:01',
      'garbage',
      '',
    ].join('\n');
    expect(parseLeaseFile(text)).toEqual([
      { expires: 1795242392, mac: '00:0c:01:02:03:c9', ip: '10.77.0.202', hostname: null, clientId: '01:00:0c:01:02:03:c9' },
      { expires: 0, mac: '52:54:00:aa:00:01', ip: '10.77.0.11', hostname: 'known1', clientId: null },
    ]);
  });
});

describe('prepareTftpRoot', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-tftp-'));
    await fs.mkdir(path.join(dir, 'src'));
    await fs.writeFile(path.join(dir, 'src', 'undionly.kpxe'), 'bios\n');
    await fs.writeFile(path.join(dir, 'real-efi'), 'efi\n');
    await fs.symlink(path.join(dir, 'real-efi'), path.join(dir, 'src', 'ipxe.efi')); // like /usr/lib/ipxe/ipxe.efi -> /boot
    await fs.writeFile(path.join(dir, 'src', 'snponly-arm64.efi'), 'arm\n');
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('copies (never links) what the source has, 0444; warns about what it lacks, naming the package', async () => {
    const root = path.join(dir, 'tftp');
    const r = await prepareTftpRoot({ dir: root, sourceDir: path.join(dir, 'src') });
    expect(r.present).toEqual(['undionly.kpxe', 'ipxe.efi', 'snponly-arm64.efi']);
    expect(r.missing).toEqual(['snponly.efi']);
    expect(r.arm64).toBe('snponly-arm64.efi');
    expect(r.warnings).toEqual([expect.stringMatching(/snponly\.efi not found in .*install the Debian package `ipxe`/)]);
    const efi = await fs.lstat(path.join(root, 'ipxe.efi'));
    expect(efi.isFile()).toBe(true);
    expect(efi.mode & 0o777).toBe(0o444);
    expect(await fs.readFile(path.join(root, 'ipxe.efi'), 'utf8')).toBe('efi\n');
    expect((await fs.stat(root)).mode & 0o777).toBe(0o755);

    // a second run copies nothing; a changed source is copied again; a symlink in the root is called out
    expect((await prepareTftpRoot({ dir: root, sourceDir: path.join(dir, 'src') })).copied).toEqual([]);
    await fs.writeFile(path.join(dir, 'real-efi'), 'efi v2\n');
    await fs.symlink('/etc/passwd', path.join(root, 'evil'));
    const again = await prepareTftpRoot({ dir: root, sourceDir: path.join(dir, 'src') });
    expect(again.copied).toEqual(['ipxe.efi']);
    expect(again.warnings.join('\n')).toMatch(/evil is a symlink/);
    expect((await fs.readdir(root)).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});

describe('users and reachability', () => {
  it('lookupUser reads /etc/passwd', () => {
    expect(lookupUser('root')).toEqual({ name: 'root', uid: 0, gid: 0 });
    expect(lookupUser('no-such-user-here')).toBeNull();
  });

  it('unreachableReason names the directory that blocks a user', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-reach-'));
    try {
      await fs.mkdir(path.join(dir, 'a', 'b'), { recursive: true });
      const nobody = { name: 'nobody', uid: 65534, gid: 65534 };
      await fs.chmod(dir, 0o711);
      await fs.chmod(path.join(dir, 'a'), 0o711);
      await fs.chmod(path.join(dir, 'a', 'b'), 0o755);
      expect(await unreachableReason(path.join(dir, 'a', 'b'), nobody)).toBeNull();
      await fs.chmod(path.join(dir, 'a'), 0o700);
      expect(await unreachableReason(path.join(dir, 'a', 'b'), nobody)).toMatch(/\/a \(mode 0700, owner uid \d+\) does not let user nobody traverse it/);
      await fs.chmod(path.join(dir, 'a'), 0o711);
      await fs.chmod(path.join(dir, 'a', 'b'), 0o711);
      expect(await unreachableReason(path.join(dir, 'a', 'b'), nobody)).toMatch(/read and search it/);
      expect(await unreachableReason(path.join(dir, 'missing'), nobody)).toMatch(/does not exist/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

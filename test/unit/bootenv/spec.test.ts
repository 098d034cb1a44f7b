import { describe, expect, it } from 'vitest';
import {
  BOOTENV_ASSETS,
  BOOTENV_MODULES,
  BOOTENV_TOOLS,
  GRUB_PLATFORMS,
  bootenvKey,
  mergeModuleOrder,
  parseCmdline,
  parseDpkgVersions,
  parseLdd,
  parseShowDepends,
  renderCmdline,
  renderInit,
} from '../../../server/bootenv/spec.js';

const KVER = '6.1.0-57-amd64';

describe('bootenv: module order', () => {
  it('reads insmod lines of --show-depends in order, relative to /lib/modules/KVER, skipping builtins', () => {
    const text = [
      `insmod /lib/modules/${KVER}/kernel/lib/crc16.ko `,
      `insmod /lib/modules/${KVER}/kernel/fs/mbcache.ko `,
      `insmod /lib/modules/${KVER}/kernel/fs/jbd2/jbd2.ko `,
      'builtin crc32c',
      `insmod /usr/lib/modules/${KVER}/kernel/fs/ext4/ext4.ko `,
    ].join('\n');
    expect(parseShowDepends(text, KVER)).toEqual(['kernel/lib/crc16.ko', 'kernel/fs/mbcache.ko', 'kernel/fs/jbd2/jbd2.ko', 'kernel/fs/ext4/ext4.ko']);
  });
  it('refuses compressed modules (busybox insmod takes plain .ko)', () => {
    expect(() => parseShowDepends(`insmod /lib/modules/${KVER}/kernel/fs/ext4/ext4.ko.xz`, KVER)).toThrow(/compressed/);
  });
  it('merges per-root orders keeping first positions, so dependencies stay first', () => {
    expect(mergeModuleOrder([['a.ko', 'b.ko'], ['a.ko', 'c.ko'], ['b.ko', 'd.ko']])).toEqual(['a.ko', 'b.ko', 'c.ko', 'd.ko']);
  });
});

describe('bootenv: what goes in', () => {
  it('carries the NIC, disk, filesystem and BMC modules and both GRUB platforms', () => {
    for (const m of ['virtio_net', 'e1000', 'virtio_blk', 'virtio_scsi', 'ahci', 'nvme', 'sd_mod', 'ext4', 'vfat', 'efivarfs', 'ipmi_si', 'ipmi_devintf']) expect(BOOTENV_MODULES).toContain(m);
    expect([...GRUB_PLATFORMS]).toEqual(['i386-pc', 'x86_64-efi']);
  });
  it('carries the real tools the install needs, each with its Debian package and a unique destination', () => {
    const names = BOOTENV_TOOLS.map((t) => t.name);
    for (const n of ['sfdisk', 'mke2fs', 'mkfs.fat', 'blkid', 'grub-install', 'zstd', 'curl', 'tar', 'jq', 'ipmitool']) expect(names).toContain(n);
    const dests = BOOTENV_TOOLS.map((t) => t.dest);
    expect(new Set(dests).size).toBe(dests.length);
    for (const t of BOOTENV_TOOLS) {
      expect(t.dest).toMatch(/^usr\/s?bin\/[a-z0-9.-]+$/);
      expect(t.pkg).toMatch(/^[a-z0-9.+-]+$/);
    }
    expect(BOOTENV_TOOLS.find((t) => t.name === 'mke2fs')?.aliases).toContain('mkfs.ext4');
    expect(BOOTENV_TOOLS.find((t) => t.name === 'mkfs.fat')?.aliases).toContain('mkfs.vfat');
    expect(BOOTENV_ASSETS.find((a) => a.dest === 'init')?.mode).toBe(0o755);
  });
  it('reads shared libraries from ldd output, the loader included', () => {
    const text = '\tlinux-vdso.so.1 (0x00007ffc)\n\tlibzstd.so.1 => /lib/x86_64-linux-gnu/libzstd.so.1 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n';
    expect(parseLdd(text)).toEqual(['/lib/x86_64-linux-gnu/libzstd.so.1', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  });
  it('reads dpkg-query versions', () => {
    expect(parseDpkgVersions('zstd 1.5.4+dfsg2-5\ncurl 7.88.1-10\n\n')).toEqual({ zstd: '1.5.4+dfsg2-5', curl: '7.88.1-10' });
  });
});

describe('bootenv: command line', () => {
  const line = renderCmdline({ server: 'http://10.77.0.1:8080', node: 'valkyrie01', token: 'tok123', mac: '52:54:00:77:00:01', job: 'install' });
  it('renders the contract command line', () => {
    expect(line).toBe('console=tty0 console=ttyS0 fleet.server=http://10.77.0.1:8080 fleet.node=valkyrie01 fleet.token=tok123 fleet.mac=52:54:00:77:00:01 fleet.job=install');
  });
  it('is what the server puts on the boot script for an armed image node (decide + the install token)', async () => {
    const { bootenvKernelArgs } = await import('../../../server/netboot/decide.js');
    const { withInstallToken } = await import('../../../server/netboot/scripts.js');
    const decision = { kind: 'install', method: 'image', kernelArgs: bootenvKernelArgs('http://10.77.0.1:8080', 'valkyrie01', '52:54:00:77:00:01') } as unknown as Parameters<typeof withInstallToken>[0];
    expect(withInstallToken(decision, 'tok123').kernelArgs.join(' ')).toBe(`initrd=initrd.img ${line}`);
  });
  it('parses fleet.* back, ignoring other words; the last of a key wins', () => {
    expect(parseCmdline(`BOOT_IMAGE=vmlinuz ${line} quiet fleet.job=wipe`)).toEqual({ server: 'http://10.77.0.1:8080', node: 'valkyrie01', token: 'tok123', mac: '52:54:00:77:00:01', job: 'wipe' });
  });
});

describe('bootenv: /init and the build key', () => {
  it('fills the build-time values and refuses leftovers and odd values', () => {
    expect(renderInit("KVER='@@KVER@@' B='@@BUILD@@'", { kernelVersion: KVER, build: 'abc' })).toBe(`KVER='${KVER}' B='abc'`);
    expect(() => renderInit('@@OTHER@@', { kernelVersion: KVER, build: 'abc' })).toThrow(/OTHER/);
    expect(() => renderInit('@@KVER@@', { kernelVersion: "x'; rm -rf /", build: 'abc' })).toThrow(/plain word/);
  });
  it('changes when any input changes and only then', () => {
    const base = { kernelVersion: KVER, packages: { zstd: '1', curl: '2' }, modules: ['a.ko'], assets: { 'init.sh': 'x' } };
    const k = bootenvKey(base);
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(bootenvKey({ ...base, packages: { curl: '2', zstd: '1' } })).toBe(k);
    expect(bootenvKey({ ...base, kernelVersion: '6.1.0-58-amd64' })).not.toBe(k);
    expect(bootenvKey({ ...base, packages: { zstd: '1', curl: '3' } })).not.toBe(k);
    expect(bootenvKey({ ...base, modules: ['a.ko', 'b.ko'] })).not.toBe(k);
    expect(bootenvKey({ ...base, assets: { 'init.sh': 'y' } })).not.toBe(k);
  });
});

/**
 * The stateless module layer's pure parts (server/stateless/spec.ts): load
 * order from modules.dep lines as Debian's depmod writes them, builtins,
 * what a kernel lacks, and the refusals (compressed modules, loops, a
 * dependency with no line).
 */
import { describe, expect, it } from 'vitest';
import { STATELESS_MODULES, layerKey, moduleName, parseModulesDep, resolveModules, statelessLayerDir } from '../../../server/stateless/spec.js';

// Lines from Debian 12's 6.1.0-57-amd64 modules.dep (the lab image's kernel).
const DEP = [
  'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko',
  'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
  'kernel/net/core/failover.ko:',
  'kernel/fs/squashfs/squashfs.ko:',
  'kernel/fs/overlayfs/overlay.ko:',
  'kernel/drivers/block/loop.ko:',
  'kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko: kernel/drivers/ptp/ptp.ko kernel/drivers/pps/pps_core.ko',
  'kernel/drivers/ptp/ptp.ko: kernel/drivers/pps/pps_core.ko',
  'kernel/drivers/pps/pps_core.ko:',
  'kernel/drivers/nvme/host/nvme-core.ko:',
  'kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko',
  '',
].join('\n');
const BUILTIN = 'kernel/net/packet/af_packet.ko\nkernel/drivers/virtio/virtio_pci.ko\n';

describe('stateless module layer: the load order', () => {
  it('each module after its dependencies, each file once; builtins and absent modules said apart', () => {
    const plan = resolveModules(DEP, BUILTIN, ['virtio_pci', 'virtio_net', 'e1000e', 'nvme', 'loop', 'squashfs', 'overlay', 'igb']);
    expect(plan.order).toEqual([
      'kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/drivers/pps/pps_core.ko',
      'kernel/drivers/ptp/ptp.ko',
      'kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko',
      'kernel/drivers/nvme/host/nvme-core.ko',
      'kernel/drivers/nvme/host/nvme.ko',
      'kernel/drivers/block/loop.ko',
      'kernel/fs/squashfs/squashfs.ko',
      'kernel/fs/overlayfs/overlay.ko',
    ]);
    expect(plan.builtin).toEqual(['virtio_pci']);
    expect(plan.missing).toEqual(['igb']);
  });

  it('module names: dashes are underscores, compression suffixes go', () => {
    expect(moduleName('kernel/drivers/nvme/host/nvme-core.ko')).toBe('nvme_core');
    expect(moduleName('kernel/fs/overlayfs/overlay.ko.zst')).toBe('overlay');
    expect(parseModulesDep(DEP).get('nvme_core')).toEqual({ path: 'kernel/drivers/nvme/host/nvme-core.ko', deps: [] });
  });

  it('refuses compressed modules, dependency loops and dependencies without a line', () => {
    expect(() => resolveModules('kernel/a.ko.xz:\n', '', ['a'])).toThrow(/kernel\/a\.ko\.xz is compressed; stage 1 needs plain \.ko modules/);
    expect(() => resolveModules('kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n', '', ['a'])).toThrow('modules.dep has a dependency loop: kernel/a.ko -> kernel/b.ko -> kernel/a.ko');
    expect(() => resolveModules('kernel/a.ko: kernel/gone.ko\n', '', ['a'])).toThrow('modules.dep names kernel/gone.ko as a dependency but has no line for it');
  });

  it('stage 1 wants the NIC and disk drivers, loop, squashfs and overlay; no IPMI', () => {
    expect(STATELESS_MODULES).toEqual(expect.arrayContaining(['virtio_net', 'e1000e', 'igb', 'nvme', 'loop', 'squashfs', 'overlay']));
    expect(STATELESS_MODULES.some((m) => m.startsWith('ipmi'))).toBe(false);
  });

  it('the key changes with the image, the kernel and the order; the directory refuses what is not a digest', () => {
    const k = layerKey({ imageDigest: `sha256:${'a'.repeat(64)}`, kernelVersion: '6.1.0-57-amd64', order: ['kernel/fs/squashfs/squashfs.ko'] });
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(layerKey({ imageDigest: `sha256:${'b'.repeat(64)}`, kernelVersion: '6.1.0-57-amd64', order: ['kernel/fs/squashfs/squashfs.ko'] })).not.toBe(k);
    expect(layerKey({ imageDigest: `sha256:${'a'.repeat(64)}`, kernelVersion: '6.1.0-58-amd64', order: ['kernel/fs/squashfs/squashfs.ko'] })).not.toBe(k);
    expect(layerKey({ imageDigest: `sha256:${'a'.repeat(64)}`, kernelVersion: '6.1.0-57-amd64', order: [] })).not.toBe(k);
    expect(statelessLayerDir('/data', `sha256:${'a'.repeat(64)}`, k)).toBe(`/data/stateless/${'a'.repeat(64)}/${k}`);
    expect(() => statelessLayerDir('/data', 'sha256:../../etc', k)).toThrow(/not a sha256 digest/);
    expect(() => statelessLayerDir('/data', `sha256:${'a'.repeat(64)}`, '../x')).toThrow(/not a layer key/);
  });
});

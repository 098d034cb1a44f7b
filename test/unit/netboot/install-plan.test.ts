/**
 * The image install's plan and progress reports (server/netboot/install-plan.ts), pure.
 */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import type { ImageManifest } from '../../../server/images/manifest.js';
import { acceptProgress, cidrPrefix, parseProgress, PROGRESS_MIN_INTERVAL_MS, renderInstallPlan, type InstallPlanInput } from '../../../server/netboot/install-plan.js';
import { CA_FP, CLUSTER, PROFILES, ROOT_HASH, SERVER, SSH_KEY, TOKEN } from '../../helpers/golden.js';

const HEX = 'ab'.repeat(32);
const ROOTFS_SHA = 'cd'.repeat(32);
const image: ImageManifest & { name: string } = {
  name: 'debian12',
  schema: 1,
  digest: `sha256:${HEX}`,
  from: 'debian:bookworm',
  arch: 'amd64',
  created: '2026-03-01T10:00:00.000Z',
  buildKey: 'k',
  origin: { kind: 'import', file: 'x.tar', format: 'tar', sha256: ROOTFS_SHA },
  kernelVersion: '6.1.0-18-amd64',
  agent: true,
  packageCount: 0,
  packages: [],
  artefacts: { rootfs: { file: 'rootfs.tar.zst', size: 123456, sha256: ROOTFS_SHA }, squashfs: { file: 'rootfs.squashfs', size: 1, sha256: ROOTFS_SHA }, kernel: null, initrd: null },
};
const profile = { ...PROFILES.compute, os: { install: 'image' as const, tree: '', image: 'debian12' }, rootPasswordHash: ROOT_HASH, sshKeys: [SSH_KEY] };

function input(extra: Partial<InstallPlanInput> = {}): InstallPlanInput {
  return {
    node: { name: 'valkyrie01', ip: '10.10.3.1', mac: '52-54-00-12-34-56' },
    profile,
    image,
    cluster: CLUSTER,
    network: { subnet: '10.10.0.0/16', gateway: '10.10.0.1', dns: ['10.10.0.1'] },
    server: SERVER,
    agent: { enrolToken: TOKEN, caFingerprint: CA_FP, server: '10.10.0.1:50051' },
    ...extra,
  };
}

function thrown(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

describe('renderInstallPlan', () => {
  it('renders the plan of the contract (docs/bootenv-protocol.md)', () => {
    expect(renderInstallPlan(input())).toEqual({
      node: 'valkyrie01',
      hostname: 'valkyrie01.cluster.local',
      image: {
        name: 'debian12',
        digest: `sha256:${HEX}`,
        rootfs: { url: `${SERVER}/images/sha256/${HEX}/rootfs.tar.zst`, sha256: ROOTFS_SHA, size: 123456 },
        kernel: 'boot/vmlinuz-6.1.0-18-amd64',
      },
      storage: { disk: 'auto', fs: 'ext4', swapMiB: 0 },
      network: { mac: '52:54:00:12:34:56', ip: '10.10.3.1', prefix: 16, gateway: '10.10.0.1', dns: ['10.10.0.1'], domain: 'cluster.local' },
      rootPasswordHash: ROOT_HASH,
      sshKeys: [SSH_KEY],
      agent: { enrolToken: TOKEN, caFingerprint: `sha256:${CA_FP}`, server: '10.10.0.1:50051' },
    });
  });

  it('no gateway, no root password, no kernel version: nulls', () => {
    const plan = renderInstallPlan(
      input({ network: { subnet: '10.77.0.0/24', dns: [] }, profile: { ...profile, rootPasswordHash: undefined }, image: { ...image, kernelVersion: null } }),
    );
    expect(plan.network).toMatchObject({ prefix: 24, gateway: null, dns: [] });
    expect(plan.rootPasswordHash).toBeNull();
    expect(plan.image.kernel).toBeNull();
  });

  it('a colon-separated CA fingerprint is sent as sha256:<hex>', () => {
    const colons = CA_FP.toUpperCase().match(/../g)!.join(':');
    expect(renderInstallPlan(input({ agent: { enrolToken: TOKEN, caFingerprint: colons, server: SERVER } })).agent.caFingerprint).toBe(`sha256:${CA_FP}`);
  });

  it('every bad value is refused, never passed on', () => {
    const e = thrown(() =>
      renderInstallPlan(
        input({
          node: { name: 'valkyrie01', ip: null, mac: 'ff:ff:ff:ff:ff:ff' },
          network: { subnet: '10.10.0.0', gateway: '10.10.0.1; reboot', dns: ['x'] },
          profile: { ...profile, sshKeys: ['ssh-ed25519 AAAA\nrm -rf /'] },
          agent: { enrolToken: 'short', caFingerprint: 'nope', server: 'a b:1' },
        }),
      ),
    );
    expect(e.code).toBe('config.invalid');
    expect(e.message).toMatch(/^install plan for "?valkyrie01"?: /);
    const problems = (e.details as { problems: string[] }).problems.join('\n');
    for (const what of ['MAC', 'has no IP address', 'not an IPv4 CIDR', 'gateway', 'DNS server 1', 'ssh key 1', 'enrolment token', 'CA fingerprint', 'enrolment server']) expect(problems).toContain(what);
  });

  it('a bad image digest or rootfs size is refused', () => {
    const e = thrown(() => renderInstallPlan(input({ image: { ...image, digest: 'sha256:xyz', artefacts: { ...image.artefacts, rootfs: { ...image.artefacts.rootfs, size: 0 } } } })));
    expect((e.details as { problems: string[] }).problems.join('\n')).toMatch(/digest[\s\S]*size 0/);
  });

  it('cidrPrefix', () => {
    expect(cidrPrefix('10.10.0.0/16')).toBe(16);
    expect(cidrPrefix('10.10.0.0/33')).toBeUndefined();
    expect(cidrPrefix('fd00::/64')).toBeUndefined();
  });
});

describe('install progress', () => {
  it('takes the contract body', () => {
    expect(parseProgress({ phase: 'write', bytes: 1024, total: 4096, percent: 25 })).toEqual({ phase: 'write', bytes: 1024, total: 4096, percent: 25 });
    expect(parseProgress({ phase: 'partition' })).toEqual({ phase: 'partition' });
    expect(parseProgress({ phase: 'write', percent: 33.333 })).toEqual({ phase: 'write', percent: 33.3 });
  });

  it.each([
    ['not an object', 'write', /JSON object/],
    ['an array', [], /JSON object/],
    ['no phase', { bytes: 1 }, /phase must be one of partition, write, bootloader, identity, agent/],
    ['an unknown phase', { phase: 'reboot' }, /phase must be/],
    ['an unknown field', { phase: 'write', log: 'x' }, /unknown field/],
    ['negative bytes', { phase: 'write', bytes: -1 }, /bytes must be an integer/],
    ['fractional bytes', { phase: 'write', bytes: 1.5 }, /bytes must be an integer/],
    ['huge total', { phase: 'write', total: 2 ** 60 }, /total must be an integer/],
    ['bytes as a string', { phase: 'write', bytes: '12' }, /bytes must be an integer/],
    ['percent over 100', { phase: 'write', percent: 101 }, /percent must be/],
    ['percent NaN-ish', { phase: 'write', percent: 'NaN' }, /percent must be/],
    ['bytes over total', { phase: 'write', bytes: 10, total: 5 }, /more than total/],
  ])('refuses %s', (_name, body, re) => {
    const e = thrown(() => parseProgress(body));
    expect(e.code).toBe('request.invalid');
    expect(e.message).toMatch(re);
  });

  it('keeps a node’s first report, every phase change, and at most one per interval otherwise', () => {
    const w = { phase: 'write' as const };
    expect(acceptProgress(undefined, w, 1000)).toBe(true);
    expect(acceptProgress({ phase: 'write', at: 1000 }, w, 1000 + PROGRESS_MIN_INTERVAL_MS - 1)).toBe(false);
    expect(acceptProgress({ phase: 'write', at: 1000 }, w, 1000 + PROGRESS_MIN_INTERVAL_MS)).toBe(true);
    expect(acceptProgress({ phase: 'partition', at: 1000 }, w, 1001)).toBe(true);
    expect(acceptProgress({ phase: 'write', at: 5000 }, w, 1000)).toBe(true); // the clock went back
  });
});

import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import type { ProfileSpec } from '../../../server/model.js';
import { decideBoot, DEFAULT_BOOT_OPTIONS, type BootDecision, type BootInput, type BootNode } from '../../../server/netboot/decide.js';

const SERVER = 'http://10.10.0.1:8080';
const TREE = 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os';
const MAC = '08:00:27:18:67:bc';
const NOW = new Date('2025-03-01T12:00:00.000Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

const compute: ProfileSpec = {
  name: 'compute',
  os: { install: 'kickstart', tree: TREE },
  kernelArgs: ['nomodeset', 'console=ttyS0,115200n8'],
  packages: ['@core'],
  sshKeys: [],
  roles: {},
};

const HEX = 'a'.repeat(64);
const KEY = 'b'.repeat(64);
const STATELESS_IMAGE = { name: 'debian12', digest: `sha256:${HEX}`, layerKey: KEY };

function node(extra: Partial<BootNode> = {}): BootNode {
  return { name: 'valkyrie01', state: 'ready', armed: false, profile: 'compute', ...extra };
}

function decide(extra: Partial<BootInput> = {}): BootDecision {
  return decideBoot({ mac: MAC, server: SERVER, profile: compute, now: NOW, ...extra });
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

describe('decideBoot: the decision table', () => {
  // [case, input, expected subset]
  const table: [string, Partial<BootInput>, Record<string, unknown>][] = [
    ['unknown MAC -> discover', { node: undefined }, { kind: 'discover', mac: MAC, retrySeconds: 30 }],
    ['unknown MAC in iPXE hexhyp upper case -> discover, canonical MAC', { node: undefined, mac: '08-00-27-18-67-BC' }, { kind: 'discover', mac: MAC }],
    [
      'unknown MAC, inspect -> the boot environment in inspect mode (no fleet.node, the caller adds the token)',
      { node: undefined, inspect: true },
      {
        kind: 'inspect',
        mac: MAC,
        kernelUrl: 'http://10.10.0.1:8080/bootenv/vmlinuz',
        initrdUrl: 'http://10.10.0.1:8080/bootenv/initrd.img',
        kernelArgs: ['initrd=initrd.img', 'console=tty0', 'console=ttyS0', 'fleet.server=http://10.10.0.1:8080', `fleet.mac=${MAC}`, 'fleet.job=inspect'],
      },
    ],
    ['a known node is never inspected', { node: node(), inspect: true }, { kind: 'localboot' }],
    ['known, not armed, ready -> localboot exit', { node: node() }, { kind: 'localboot', method: 'exit', reason: 'valkyrie01 is not armed for install (state ready)' }],
    ['known, not armed, enrolled -> localboot', { node: node({ state: 'enrolled' }) }, { kind: 'localboot', method: 'exit' }],
    ['not armed even in an install state -> localboot (the armed flag rules)', { node: node({ state: 'netbooting' }) }, { kind: 'localboot', method: 'exit' }],
    ['not armed, state installed -> localboot + boot-loop-suspect', { node: node({ state: 'installed' }) }, { kind: 'localboot', flag: 'boot-loop-suspect' }],
    ['not armed, state disk-armed -> boot-loop-suspect', { node: node({ state: 'disk-armed' }) }, { kind: 'localboot', flag: 'boot-loop-suspect' }],
    ['not armed, state first-boot -> boot-loop-suspect', { node: node({ state: 'first-boot' }) }, { kind: 'localboot', flag: 'boot-loop-suspect' }],
    [
      'not armed, ready, installed 5 min ago -> boot-loop-suspect',
      { node: node({ installedAt: minutesAgo(5) }) },
      { kind: 'localboot', flag: 'boot-loop-suspect', reason: 'valkyrie01 is back on the network boot path 5 min after its install: suspected boot loop, not reinstalling' },
    ],
    ['not armed, ready, installed 2 h ago -> plain localboot', { node: node({ installedAt: minutesAgo(120) }) }, { kind: 'localboot', flag: undefined }],
    [
      'disk-armed, the first netboot since its install (UEFI keeps the NIC first) -> localboot, no flag',
      { node: node({ state: 'disk-armed', installedAt: secondsAgo(20), netbootedSinceInstall: false }) },
      { kind: 'localboot', method: 'exit', flag: undefined, reason: 'valkyrie01 netbooted in state disk-armed after its install, the first time since (a network-first boot order): boot the local disk, flagged boot-loop-suspect if it comes back' },
    ],
    ['disk-armed, back again after a localboot since its install -> boot-loop-suspect', { node: node({ state: 'disk-armed', installedAt: secondsAgo(90), netbootedSinceInstall: true }) }, { kind: 'localboot', flag: 'boot-loop-suspect' }],
    ['ready, installed 5 min ago, first netboot since -> no flag', { node: node({ installedAt: minutesAgo(5), netbootedSinceInstall: false }) }, { kind: 'localboot', flag: undefined }],
    ['ready, installed 5 min ago, a second netboot since -> boot-loop-suspect', { node: node({ installedAt: minutesAgo(5), netbootedSinceInstall: true }) }, { kind: 'localboot', flag: 'boot-loop-suspect' }],
    ['installedAt in the future (clock skew) -> no flag', { node: node({ installedAt: minutesAgo(-5) }) }, { kind: 'localboot', flag: undefined }],
    ['installedAt unparsable -> no flag', { node: node({ installedAt: 'yesterday' }) }, { kind: 'localboot', flag: undefined }],
    [
      'not armed, back 30 s after exit on BIOS -> sanboot',
      { node: node({ lastLocalbootAt: secondsAgo(30) }), platform: 'pcbios' },
      { kind: 'localboot', method: 'sanboot', reason: 'valkyrie01 is not armed for install (state ready) (back 30 s after exit to the firmware, trying BIOS disk 0x80)' },
    ],
    ['back 30 s after exit, platform unknown -> sanboot', { node: node({ lastLocalbootAt: secondsAgo(30) }) }, { kind: 'localboot', method: 'sanboot' }],
    ['back 30 s after exit on EFI -> still exit (no BIOS drive on EFI)', { node: node({ lastLocalbootAt: secondsAgo(30) }), platform: 'efi' }, { kind: 'localboot', method: 'exit' }],
    ['back 10 min after exit -> exit', { node: node({ lastLocalbootAt: minutesAgo(10) }) }, { kind: 'localboot', method: 'exit' }],
    [
      'loop suspect and bounce together',
      { node: node({ state: 'installed', lastLocalbootAt: secondsAgo(10) }) },
      { kind: 'localboot', method: 'sanboot', flag: 'boot-loop-suspect' },
    ],
    ['armed, pxe-armed -> install', { node: node({ armed: true, state: 'pxe-armed' }) }, { kind: 'install', node: 'valkyrie01', profile: 'compute' }],
    ['armed, power-cycling -> install', { node: node({ armed: true, state: 'power-cycling' }) }, { kind: 'install' }],
    ['armed, netbooting -> install', { node: node({ armed: true, state: 'netbooting' }) }, { kind: 'install' }],
    ['armed, installing (installer restarted) -> install', { node: node({ armed: true, state: 'installing' }) }, { kind: 'install' }],
    [
      'armed but ready -> localboot, never install',
      { node: node({ armed: true, state: 'ready' }) },
      { kind: 'localboot', method: 'exit', reason: 'valkyrie01 is armed but in state ready, which does not install', flag: undefined },
    ],
    ['armed but failed -> localboot', { node: node({ armed: true, state: 'failed' }) }, { kind: 'localboot' }],
    [
      'diskless, not armed, ready (a reboot) -> the same stage 1 with fleet.job=diskless (its plan says NFS), no flag',
      { node: node({ installMethod: 'diskless', installedAt: minutesAgo(3), netbootedSinceInstall: true }), stateless: STATELESS_IMAGE },
      {
        kind: 'install',
        method: 'diskless',
        flag: undefined,
        initrdUrls: [`${SERVER}/bootenv/initrd.img`, `${SERVER}/stateless/${HEX}/${KEY}/modules.img`],
        kernelArgs: ['initrd=initrd.img', 'initrd=modules.img', 'console=tty0', 'console=ttyS0', `fleet.server=${SERVER}`, 'fleet.node=valkyrie01', `fleet.mac=${MAC}`, 'fleet.job=diskless', 'nomodeset', 'console=ttyS0,115200n8'],
      },
    ],
    ['diskless, not resolved by the caller -> says so', { node: node({ installMethod: 'diskless' }) }, { kind: 'not-implemented', method: 'diskless', message: 'valkyrie01 boots diskless, but its image was not resolved' }],
    [
      'stateless, armed, power-cycling -> the image\'s kernel, stage 1 and the module layer (the caller adds the token)',
      { node: node({ installMethod: 'stateless', armed: true, state: 'power-cycling' }), stateless: STATELESS_IMAGE },
      {
        kind: 'install',
        method: 'stateless',
        image: 'debian12',
        digest: `sha256:${HEX}`,
        kernelUrl: `${SERVER}/images/sha256/${HEX}/vmlinuz`,
        initrdUrls: [`${SERVER}/bootenv/initrd.img`, `${SERVER}/stateless/${HEX}/${KEY}/modules.img`],
        kernelArgs: ['initrd=initrd.img', 'initrd=modules.img', 'console=tty0', 'console=ttyS0', `fleet.server=${SERVER}`, 'fleet.node=valkyrie01', `fleet.mac=${MAC}`, 'fleet.job=stateless', 'nomodeset', 'console=ttyS0,115200n8'],
      },
    ],
    // Every boot of a stateless node is a netboot: not armed, ready, a reboot minutes after its last boot; never a loop suspect.
    ['stateless, not armed, ready (a reboot) -> boots its image again, no flag', { node: node({ installMethod: 'stateless', installedAt: minutesAgo(3), netbootedSinceInstall: true }), stateless: STATELESS_IMAGE }, { kind: 'install', method: 'stateless', flag: undefined }],
    ['stateless, failed -> boots its image (the image may be fixed)', { node: node({ installMethod: 'stateless', state: 'failed' }), stateless: STATELESS_IMAGE }, { kind: 'install', method: 'stateless' }],
    [
      'stateless, its image cannot be resolved -> says why, boots nothing',
      { node: node({ installMethod: 'stateless' }), stateless: { error: 'its image debian12 is not in the image store (fleet image list)' } },
      { kind: 'not-implemented', method: 'stateless', message: 'valkyrie01 boots stateless, but its image debian12 is not in the image store (fleet image list)' },
    ],
    ['stateless, not resolved by the caller -> says so', { node: node({ installMethod: 'stateless' }) }, { kind: 'not-implemented', method: 'stateless', message: 'valkyrie01 boots stateless, but its image was not resolved' }],
    ['image, not armed -> localboot (boots its disk like any node)', { node: node({ installMethod: 'image' }) }, { kind: 'localboot', method: 'exit' }],
    [
      'image, armed -> install by the fleet boot environment',
      { node: node({ installMethod: 'image', armed: true, state: 'pxe-armed' }) },
      {
        kind: 'install',
        method: 'image',
        kernelUrl: `${SERVER}/bootenv/vmlinuz`,
        initrdUrl: `${SERVER}/bootenv/initrd.img`,
        kernelArgs: ['initrd=initrd.img', 'console=tty0', 'console=ttyS0', `fleet.server=${SERVER}`, 'fleet.node=valkyrie01', `fleet.mac=${MAC}`, 'fleet.job=install'],
      },
    ],
    ['image, armed but ready -> localboot (armed alone never installs)', { node: node({ installMethod: 'image', armed: true, state: 'ready' }) }, { kind: 'localboot', method: 'exit' }],
    [
      'image, armed, installing (boot environment restarted) -> install by image, the image named',
      { node: node({ armed: true, state: 'installing' }), profile: { ...compute, os: { install: 'image', tree: '', image: 'debian12' } } },
      { kind: 'install', method: 'image', image: 'debian12', profile: 'compute' },
    ],
    ['custom install states', { node: node({ armed: true, state: 'ready' }), options: { installStates: ['ready'] } }, { kind: 'install' }],
    ['custom discover retry', { node: undefined, options: { discoverRetrySeconds: 7 } }, { kind: 'discover', retrySeconds: 7 }],
  ];

  it.each(table)('%s', (_name, input, expected) => {
    const d = decide(input);
    for (const [k, v] of Object.entries(expected)) expect((d as unknown as Record<string, unknown>)[k], k).toEqual(v);
  });

  it('covers every decision kind', () => {
    const kinds = new Set(table.map(([, input]) => decide(input).kind));
    expect([...kinds].sort()).toEqual(['discover', 'inspect', 'install', 'localboot', 'not-implemented']);
  });
});

describe('decideBoot: install', () => {
  it('takes kernel and initrd from the OS tree and builds the kernel command line', () => {
    const d = decide({ node: node({ armed: true, state: 'pxe-armed' }) });
    expect(d).toEqual({
      kind: 'install',
      method: 'kickstart',
      node: 'valkyrie01',
      profile: 'compute',
      kernelUrl: `${TREE}/images/pxeboot/vmlinuz`,
      initrdUrl: `${TREE}/images/pxeboot/initrd.img`,
      kickstartUrl: `${SERVER}/kickstart/valkyrie01.ks`,
      kernelArgs: [
        'initrd=initrd.img',
        `inst.stage2=${TREE}`,
        `inst.repo=${TREE}`,
        `inst.ks=${SERVER}/kickstart/valkyrie01.ks`,
        'ip=dhcp',
        'BOOTIF=01-08-00-27-18-67-bc',
        'nomodeset',
        'console=ttyS0,115200n8',
      ],
    });
  });

  it('strips a trailing slash from the tree', () => {
    const d = decide({ node: node({ armed: true, state: 'pxe-armed' }), profile: { ...compute, os: { install: 'kickstart', tree: `${TREE}/` } } });
    expect(d.kind === 'install' && d.kernelUrl).toBe(`${TREE}/images/pxeboot/vmlinuz`);
  });

  it('BOOTIF names the MAC that booted, whatever form it came in', () => {
    const d = decide({ node: node({ armed: true, state: 'pxe-armed' }), mac: '08-00-27-18-69-BC' });
    expect(d.kind === 'install' && d.kernelArgs).toContain('BOOTIF=01-08-00-27-18-69-bc');
  });

  it('an armed node whose profile is missing is a config error, not a silent boot', () => {
    const e = thrown(() => decide({ node: node({ armed: true, state: 'pxe-armed' }), profile: undefined }));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toBe('node valkyrie01 is armed for install but its profile compute was not found');
  });

  it('a profile that is not the node’s is refused', () => {
    const e = thrown(() => decide({ node: node({ armed: true, state: 'pxe-armed' }), profile: { ...compute, name: 'storage' } }));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toContain('has profile compute, but profile storage was given');
  });

  it('a missing profile does not matter for a node that is not armed', () => {
    expect(decide({ node: node(), profile: undefined }).kind).toBe('localboot');
  });
});

describe('decideBoot: input checks and defaults', () => {
  it.each(['', 'zz:00:27:18:67:bc', '08:00:27:18:67', '01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '08:00:27:18:67:bc\n', '${mac}'])('refuses MAC %j', (mac) => {
    const e = thrown(() => decide({ mac, node: undefined }));
    expect(e.code).toBe('request.invalid');
    expect(e.message).toMatch(/^boot request: .* is not a unicast MAC address$/);
  });

  it('refuses an unknown install method', () => {
    const e = thrown(() => decide({ node: node({ installMethod: 'nfsroot' as never }) }));
    expect(e.code).toBe('config.invalid');
  });

  it('defaults now to the current time', () => {
    const d = decideBoot({ mac: MAC, server: SERVER, node: node({ installedAt: new Date() }) });
    expect(d.kind === 'localboot' && d.flag).toBe('boot-loop-suspect');
  });

  it('documents its defaults', () => {
    expect(DEFAULT_BOOT_OPTIONS.installStates).toEqual(['pxe-armed', 'power-cycling', 'netbooting', 'installing']);
    expect(DEFAULT_BOOT_OPTIONS.postInstallStates).toEqual(['installed', 'disk-armed', 'first-boot']);
  });
});

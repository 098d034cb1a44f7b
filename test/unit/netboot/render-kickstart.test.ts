import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import type { ProfileSpec } from '../../../server/model.js';
import { loadTemplate, PLACEHOLDER_TOKEN, renderKickstart, type KickstartInput } from '../../../server/netboot/render/index.js';
import { CA_FP, CLUSTER, expectGolden, GPU_ARGS, NODE_OF, PROFILES, SERVER, SSH_KEY, TOKEN } from '../../helpers/golden.js';
import { assertKickstart, checkKickstart } from '../../helpers/kscheck.js';

const template = await loadTemplate('kickstart', 'base.ks');

/** Commands an unattended RHEL 9 install of fleet's needs. */
const REQUIRED = ['text', 'keyboard', 'lang', 'timezone', 'rootpw', 'network', 'selinux', 'firewall', 'bootloader', 'reboot'];

function input(profile: keyof typeof PROFILES, patch: Partial<KickstartInput> = {}): KickstartInput {
  return { node: { name: NODE_OF[profile] }, profile: PROFILES[profile], cluster: CLUSTER, server: SERVER, token: TOKEN, caFingerprint: CA_FP, ...patch };
}

function render(profile: keyof typeof PROFILES, patch: Partial<KickstartInput> = {}): string {
  return renderKickstart(template, input(profile, patch));
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

const lines = (ks: string) => ks.split('\n');

describe('kickstart: golden files, each passing the RHEL 9 syntax check', () => {
  it.each(Object.keys(PROFILES) as (keyof typeof PROFILES)[])('%s', (profile) => {
    const ks = render(profile);
    assertKickstart(ks, { shell: true, require: REQUIRED });
    expectGolden(`${profile}.ks`, ks);
  });
});

describe('kickstart: content', () => {
  it('commands from node, profile and cluster', () => {
    const ks = lines(render('compute'));
    for (const l of [
      'text',
      'keyboard --vckeymap=us --xlayouts=us',
      'lang en_US.UTF-8',
      'timezone Europe/Brussels --utc',
      `rootpw --iscrypted ${PROFILES.compute.rootPasswordHash}`,
      'network --bootproto=dhcp --hostname=valkyrie01.cluster.local --activate',
      'selinux --enforcing',
      'firewall --disabled',
      'bootloader --location=mbr',
      'clearpart --all --initlabel',
      'autopart --type=plain --fstype=ext4 --nohome',
      'reboot',
    ]) {
      expect(ks, l).toContain(l);
    }
  });

  it('keyboard and lang can be set', () => {
    const ks = lines(render('compute', { keyboard: 'be-oss', lang: 'fr_BE.UTF-8' }));
    expect(ks).toContain('keyboard --vckeymap=be-oss --xlayouts=be-oss');
    expect(ks).toContain('lang fr_BE.UTF-8');
  });

  it('GPU profile: nomodeset and the nouveau blacklist go to the installed boot loader', () => {
    expect(lines(render('compute_gpu'))).toContain(`bootloader --append="${GPU_ARGS.join(' ')}" --location=mbr`);
  });

  it('no root password hash: the root account is locked', () => {
    const ks = render('login');
    expect(lines(ks)).toContain('rootpw --lock');
    expect(ks).not.toContain('--iscrypted');
  });

  it('partitioning lines replace the default', () => {
    const ks = lines(render('storage'));
    for (const l of PROFILES.storage.partitioning!) expect(ks).toContain(l);
    expect(ks).not.toContain('autopart --type=plain --fstype=ext4 --nohome');
    expect(ks.filter((l) => l.startsWith('clearpart'))).toEqual(['clearpart --all --initlabel --drives=sda']);
  });

  it('a bootloader line in partitioning replaces fleet’s and still gets the kernel args', () => {
    const profile: ProfileSpec = { ...PROFILES.compute_gpu, partitioning: ['bootloader --location=mbr --boot-drive=sda', 'autopart --type=lvm'] };
    const ks = renderKickstart(template, input('compute_gpu', { profile }));
    expect(lines(ks).filter((l) => l.startsWith('bootloader'))).toEqual([`bootloader --location=mbr --boot-drive=sda --append="${GPU_ARGS.join(' ')}"`]);
    assertKickstart(ks, { require: REQUIRED });
  });

  it('%packages: @core and curl first, then the profile’s, without duplicates', () => {
    const ks = render('login');
    const pkgs = ks.slice(ks.indexOf('%packages\n') + 10, ks.indexOf('%end', ks.indexOf('%packages\n'))).trim().split('\n');
    expect(pkgs).toEqual(['@core', 'curl', 'vim-enhanced', 'tmux', '@development']);
  });

  it('ssh keys go to root’s authorized_keys in a quoted heredoc', () => {
    const ks = render('login');
    expect(ks).toContain(`cat >> /root/.ssh/authorized_keys <<'FLEET_SSH_KEYS'\n${SSH_KEY}\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDx admin@odin\nFLEET_SSH_KEYS\n`);
    const none = renderKickstart(template, input('compute', { profile: { ...PROFILES.compute, sshKeys: [] } }));
    expect(none).toContain("<<'FLEET_SSH_KEYS'\n# fleet: profile compute declares no ssh keys\nFLEET_SSH_KEYS\n");
  });

  it('callbacks: %pre install-started, %onerror install-failed with log tails, last %post install-finished', () => {
    const ks = render('compute');
    const url = (e: string) => `${SERVER}/api/v1/boot-events/valkyrie01/${e}?token=${TOKEN}`;
    const pre = ks.indexOf('%pre ');
    const onerror = ks.indexOf('%onerror');
    const finished = ks.lastIndexOf('%post --nochroot');
    expect(pre).toBeGreaterThan(0);
    expect(ks.slice(pre)).toMatch(new RegExp(`^%pre [^\\n]*\\ncurl -fsS -m 10 --retry 3 -X POST "${escape(url('install-started'))}"`));
    expect(ks.slice(onerror, ks.indexOf('%end', onerror))).toContain('tail -n 100 /tmp/anaconda.log');
    expect(ks.slice(onerror, ks.indexOf('%end', onerror))).toContain('tail -n 100 /tmp/program.log');
    expect(ks.slice(onerror, ks.indexOf('%end', onerror))).toContain(`--data-binary @- "${url('install-failed')}"`);
    expect(ks.slice(finished)).toContain(`-X POST "${url('install-finished')}"`);
    // install-finished is the last section of the file
    expect(ks.indexOf('%post', finished + 1)).toBe(-1);
  });

  it('%post downloads the agent and enrols with the token and the CA fingerprint', () => {
    const ks = render('compute');
    expect(ks).toContain('%post --interpreter=/bin/bash --log=/root/fleet-post.log --erroronfail\n');
    expect(ks).toContain(`curl -fsS -m 120 --retry 5 --retry-delay 2 -o /usr/local/bin/fleet-agent "${SERVER}/agent/fleet-agent"`);
    expect(ks).toContain(`/usr/local/bin/fleet-agent enroll --server "${SERVER}" --token "${TOKEN}" --ca-fingerprint "${CA_FP}"`);
  });

  it('separate callback token, enrolment endpoint and agent URL', () => {
    const ks = render('compute', { callbackToken: 'cb-token-0123456789abcdef', enrolServer: '10.10.0.1:50051', agentUrl: 'http://10.10.0.1/agent/fleet-agent-x86_64' });
    expect(ks).toContain('/install-started?token=cb-token-0123456789abcdef"');
    expect(ks).toContain('--server "10.10.0.1:50051" --token "' + TOKEN + '"');
    expect(ks).toContain('-o /usr/local/bin/fleet-agent "http://10.10.0.1/agent/fleet-agent-x86_64"');
  });

  it('fleet render can use the placeholder token', () => {
    expect(render('compute', { token: PLACEHOLDER_TOKEN })).toContain(`--token "${PLACEHOLDER_TOKEN}"`);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('kickstart: hostile values are refused with a clear message, never escaped', () => {
  const p = PROFILES.compute;
  const cases: [string, Partial<KickstartInput>, string][] = [
    ['hostname x;reboot', { node: { name: 'x;reboot' } }, 'kickstart for "x;reboot": node name: "x;reboot" is not a valid node name'],
    ['kernel arg with a newline', { profile: { ...p, kernelArgs: ['nomodeset', 'a\nb'] } }, 'kickstart for valkyrie01: profile compute kernel arg 2: kernel argument "a\\nb" contains a newline'],
    ['kernel arg with ${', { profile: { ...p, kernelArgs: ['x=${y}'] } }, 'profile compute kernel arg 1: kernel argument "x=${y}" contains a shell metacharacter ($)'],
    ['kernel arg with a quote (breaks --append="...")', { profile: { ...p, kernelArgs: ['a"b'] } }, 'kernel argument "a\\"b" contains a quote or backtick'],
    ['package foo bar', { profile: { ...p, packages: ['foo bar'] } }, 'profile compute package 1: "foo bar" is not a valid package name'],
    ['package %end', { profile: { ...p, packages: ['%end'] } }, 'profile compute package 1: "%end" is not a valid package name'],
    ['server URL with a quote', { server: 'http://10.10.0.1:8080/"; reboot; "' }, 'server URL: URL "http://10.10.0.1:8080/\\"; reboot; \\"" contains whitespace'],
    ['server URL with $( )', { server: 'http://10.10.0.1/$(id)' }, 'server URL: URL "http://10.10.0.1/$(id)" contains a shell metacharacter ($)'],
    ['agent URL with a backtick', { agentUrl: 'http://10.10.0.1/`id`' }, 'agent URL: URL "http://10.10.0.1/`id`" contains a quote or backtick'],
    ['ssh key with a newline', { profile: { ...p, sshKeys: [`${SSH_KEY}\nFLEET_SSH_KEYS\nreboot`] } }, 'profile compute ssh key 1: ssh key must be on one line'],
    ['ssh key with a shell comment', { profile: { ...p, sshKeys: [`${SSH_KEY} $(reboot)`] } }, 'profile compute ssh key 1: ssh key comment "root@odin.cluster.local $(reboot)" has forbidden characters'],
    ['token with &', { token: 'abcdefghijklmnop&reboot' }, 'enrolment token: token must be base64url'],
    ['token with a newline', { token: 'abcdefghijklmnop\nreboot' }, 'enrolment token: token contains a newline'],
    ['callback token with ?', { callbackToken: 'abcdefghijklmnop?x=1' }, 'callback token: token must be base64url'],
    ['fingerprint not hex', { caFingerprint: 'zz'.repeat(32) }, 'CA fingerprint: CA fingerprint zzzz'],
    ['fingerprint too short', { caFingerprint: 'ab12' }, 'must be a SHA-256 digest in hex'],
    ['domain with a space', { cluster: { domain: 'cluster local', timezone: 'UTC' } }, 'cluster domain: "cluster local" is not a valid DNS domain'],
    ['timezone with a newline', { cluster: { domain: 'cluster.local', timezone: 'UTC\nreboot' } }, 'timezone: "UTC\\nreboot" is not a timezone name'],
    ['unknown timezone', { cluster: { domain: 'cluster.local', timezone: 'Mars/Olympus' } }, 'unknown timezone Mars/Olympus'],
    ['md5 root hash', { profile: { ...p, rootPasswordHash: '$1$abc$def' } }, 'profile compute root password hash: root password hash uses MD5 crypt'],
    ['plain root password', { profile: { ...p, rootPasswordHash: 'hunter2' } }, 'root password hash must be a crypt(3) string'],
    ['partitioning with ;', { profile: { ...p, partitioning: ['part / --size=1; reboot'] } }, 'profile compute partitioning line 1: partitioning line "part / --size=1; reboot" has forbidden characters'],
    ['partitioning command not allowed', { profile: { ...p, partitioning: ['%post'] } }, 'partitioning line must start with one of'],
    ['btrfs', { profile: { ...p, partitioning: ['btrfs / --data=0 btrfs.01'] } }, 'btrfs is not supported by the RHEL 9 installer'],
    ['autopart btrfs', { profile: { ...p, partitioning: ['autopart --type=btrfs'] } }, 'btrfs is not supported by the RHEL 9 installer'],
    [
      'bootloader --append together with kernel args',
      { profile: { ...p, kernelArgs: ['nomodeset'], partitioning: ['bootloader --append=quiet'] } },
      'set kernel arguments in kernel_args, not with bootloader --append',
    ],
    ['keyboard with a space', { keyboard: 'us --xlayouts=fr' }, 'keyboard: keyboard layout "us --xlayouts=fr"'],
    ['lang with a newline', { lang: 'en_US.UTF-8\nreboot' }, 'lang: language "en_US.UTF-8\\nreboot"'],
    ['enrolment server with a space', { enrolServer: '10.10.0.1:50051 --insecure' }, 'enrolment server: "10.10.0.1:50051 --insecure" must be a URL'],
  ];

  it.each(cases)('%s', (_name, patch, message) => {
    const e = thrown(() => renderKickstart(template, input('compute', patch)));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toContain(message);
    if (!('node' in patch)) expect(e.message).toMatch(/^kickstart for valkyrie01: /);
  });

  it('lists every problem in details', () => {
    const e = thrown(() => renderKickstart(template, input('compute', { token: 'x&y', profile: { ...p, packages: ['a b', 'ok', '-x'] } })));
    const problems = (e.details as { problems: string[] }).problems;
    expect(problems).toHaveLength(3);
    expect(e.message).toMatch(/\(and 2 more\)$/);
  });

  it('a template with an unknown placeholder fails', () => {
    const bad = template.replace('{{lang}}', '{{language}}');
    const e = thrown(() => renderKickstart(bad, input('compute')));
    expect(e.message).toMatch(/^template base\.ks: unknown placeholder \{\{language\}\} on line \d+/);
  });

  it('a template missing a placeholder fails', () => {
    const bad = template.replace('{{token}}', 'TOKEN');
    expect(thrown(() => renderKickstart(bad, input('compute'))).message).toBe('template base.ks: values never used by the template: token');
  });
});

describe('kickstart: the checker catches what a broken template would produce', () => {
  it('a rendered kickstart with a section left open fails the check', () => {
    const ks = render('compute').replace(/%end\n\n# Last step/, '\n# Last step');
    expect(checkKickstart(ks).map((i) => i.message).join('\n')).toMatch(/sections cannot nest/);
  });
});

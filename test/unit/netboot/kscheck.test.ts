import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkKickstart, shlexSplit } from '../../helpers/kscheck.js';

/** The seed's minimal kickstart (seeds/000 §5.6.5), which RHEL 9 installs: the checker must accept it. */
const SEED_KS = `##### General settings

# Do not use GUI
text

# Run the Setup Agent on first boot
firstboot --enable

# System keyboard layout
keyboard --vckeymap=us --xlayouts=us

# System language
lang en_US.UTF-8

# System timezone
timezone Europe/Brussels --isUtc

# Reboot after installation
reboot

# Root password (sha512)
rootpw --iscrypted $6$7zvrwimYcypA8JWc$5GWYVF7zrI5eorsPN8IUT1n/Gmjpkic7h2cCbFVxbkqJeG0/kmJsYw6EN9oX3NQ34duwW7qAmOI13Y/0v5oHn.

# Network settings
network --bootproto=dhcp --ipv6=auto --activate
network --hostname=localhost.localdomain

# SELinux
selinux --enforcing

# Firwalld
firewall --disabled

# Bootloader configuration
bootloader --append="" --location=mbr

# Partitioning
clearpart --all --initlabel
autopart --type=plain --fstype=ext4 --nohome

%packages
@core
%end

# Main post, ssh keys
%post --interpreter /bin/bash --log /root/main_post-install.log

# Add ssh keys from ssh_keys list
mkdir /root/.ssh
cat << xxEOFxx >> /root/.ssh/authorized_keys
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl root@odin.cluster.local
xxEOFxx
# Ensure SELinux configuration is ok
restorecon -R -v /root/.ssh

%end
`;

const messages = (ks: string, shell = false) => checkKickstart(ks, { shell }).map((i) => `${i.line}: ${i.message}`);

describe('kscheck accepts valid RHEL 9 kickstarts', () => {
  it('the seed kickstart (options with spaces, --isUtc, two network lines)', () => {
    expect(messages(SEED_KS, true)).toEqual([]);
  });

  const seedFile = new URL('../../../../shared/seeds/000_9f45f248524cb9ba.txt', import.meta.url);
  it.skipIf(!existsSync(seedFile))('the seed kickstart is really in the seed (where ../shared is checked out)', () => {
    const seed = readFileSync(seedFile, 'utf8');
    for (const line of ['firstboot --enable', 'timezone Europe/Brussels --isUtc', '%post --interpreter /bin/bash --log /root/main_post-install.log']) {
      expect(seed).toContain(line);
    }
  });

  it('manual partitioning, LVM, RAID, repos, users, services, %include', () => {
    const ks = [
      'cmdline',
      'zerombr',
      'ignoredisk --only-use=sda,sdb',
      'clearpart --all --initlabel --disklabel=gpt',
      'reqpart --add-boot',
      'part raid.01 --size=10000 --ondisk=sda',
      'part raid.02 --size=10000 --ondisk=sdb',
      'raid pv.01 --level=1 --device=md0 raid.01 raid.02',
      'volgroup vg0 pv.01',
      'logvol / --vgname=vg0 --name=root --size=8000 --fstype=xfs',
      "logvol swap --vgname=vg0 --name=swap --recommended",
      'repo --name=AppStream --baseurl=http://10.10.0.1/os/AppStream',
      'url --url=http://10.10.0.1/os',
      'user --name=admin --groups=wheel --iscrypted --password=$6$a$b',
      'sshkey --username=admin "ssh-ed25519 AAAA admin@odin"',
      'services --enabled=chronyd,sshd --disabled=kdump',
      'skipx',
      'poweroff',
      'rootpw --lock',
      '%include /tmp/part-include',
      '%post --nochroot --erroronfail',
      'echo ok',
      '%end',
      '%packages --excludedocs --ignoremissing',
      '@^minimal-environment',
      '@development --optional',
      '-plymouth',
      '@nodejs:20/common',
      'kernel-devel',
      '%end',
    ].join('\n');
    expect(messages(ks, true)).toEqual([]);
  });
});

describe('kscheck refuses what the RHEL 9 installer refuses', () => {
  const cases: [string, string, string][] = [
    ['unknown command', 'text\nfoo --bar\n', '2: unknown command "foo"'],
    ['command RHEL 9 dropped (auth)', 'auth --enableshadow\n', 'unknown command "auth"'],
    ['command RHEL 9 dropped (btrfs)', 'btrfs / --data=0 btrfs.01\n', 'unknown command "btrfs"'],
    ['missing %end', 'text\n%post\necho hi\n', '2: %post is not closed by %end'],
    ['nested sections', '%pre\necho a\n%post\necho b\n%end\n', '3: %post inside %pre (opened on line 1): sections cannot nest'],
    ['stray %end', 'text\n%end\n', '2: %end without an open section'],
    ['unknown section', '%postinstall\n%end\n', 'unknown section %postinstall'],
    ['bad option', 'selinux --enforce\n', '1: selinux: unknown option --enforce'],
    ['flag given a value', 'autopart --nohome=yes\n', 'autopart: option --nohome takes no value'],
    ['value option without a value', 'network --hostname\n', 'network: option --hostname needs a value'],
    ['bad enumerated value', 'bootloader --location=disk\n', 'bootloader --location=disk: expected one of mbr, partition, none, boot'],
    ['autopart btrfs', 'autopart --type=btrfs\n', 'autopart --type=btrfs: expected one of lvm, plain, thinp'],
    ['%nochroot on %pre', '%pre --nochroot\n%end\n', '%pre: unknown option --nochroot'],
    ['%packages option that RHEL 9 removed', '%packages --nobase\n%end\n', '%packages: unknown option --nobase'],
    ['duplicate single-use command', 'rootpw --lock\nrootpw --lock\n', '2: rootpw may appear only once (first on line 1)'],
    ['two finish commands', 'reboot\npoweroff\n', 'reboot and poweroff are mutually exclusive'],
    ['two display modes', 'text\ngraphical\n', 'text and graphical are mutually exclusive'],
    ['autopart with part', 'autopart\npart / --size=1000\n', 'autopart cannot be combined with part'],
    ['unbalanced quote', 'bootloader --append="nomodeset --location=mbr\n', '1: No closing quotation'],
    ['missing positional', 'lang\n', 'lang needs 1 argument(s), got 0'],
    ['extra positional', 'timezone Europe/Brussels UTC\n', 'timezone: unexpected argument "UTC"'],
    ['rootpw without password or --lock', 'rootpw --iscrypted\n', 'rootpw needs a password or --lock'],
    ['two selinux modes', 'selinux --enforcing --disabled\n', 'selinux takes one of'],
    ['package with a space', '%packages\nfoo bar\n%end\n', '%packages: unexpected "bar" after foo'],
    ['package with a quote', '%packages\n"foo;reboot"\n%end\n', '%packages: "foo;reboot" is not a package'],
    ['%end with arguments', '%post\n%end now\n', '%end takes no arguments'],
  ];
  it.each(cases)('%s', (_name, ks, expected) => {
    expect(messages(ks).join('\n')).toContain(expected);
  });

  it('shell syntax errors in scripts when asked (bash -n)', () => {
    const ks = '%post --interpreter=/bin/bash\nif true; then\n  echo broken\n%end\n';
    expect(messages(ks)).toEqual([]);
    expect(messages(ks, true).join('\n')).toMatch(/^1: %post script: bash -n: .*syntax error/);
  });

  it('skips bash -n for other interpreters', () => {
    expect(messages('%post --interpreter=/usr/bin/python3\nif True:\n  pass\n%end\n', true)).toEqual([]);
  });

  it('required commands', () => {
    const issues = checkKickstart('text\n', { require: ['text', 'rootpw'] });
    expect(issues).toEqual([{ line: 0, message: 'required command rootpw is missing' }]);
  });
});

describe('shlexSplit (pykickstart splits command lines with shlex, comments on)', () => {
  it.each([
    ['a b  c', ['a', 'b', 'c']],
    ['bootloader --append="a b" --location=mbr', ['bootloader', '--append=a b', '--location=mbr']],
    ["x 'a \"b' c", ['x', 'a "b', 'c']],
    ['x "a \\" b"', ['x', 'a " b']],
    ['x a\\ b', ['x', 'a b']],
    ['rootpw --iscrypted $6$a$b # comment', ['rootpw', '--iscrypted', '$6$a$b']],
    ['x a#b', ['x', 'a']],
    ['x ""', ['x', '']],
  ])('%j', (line, words) => {
    expect(shlexSplit(line)).toEqual({ words });
  });
  it('reports an unclosed quote and a trailing backslash', () => {
    expect(shlexSplit('x "a')).toEqual({ error: 'No closing quotation' });
    expect(shlexSplit("x 'a")).toEqual({ error: 'No closing quotation' });
    expect(shlexSplit('x a\\')).toEqual({ error: 'No escaped character' });
  });
});

/**
 * The configuration roles against a temporary root.
 *
 * Each test seeds a root (fs.mkdtemp) with the files of a freshly installed
 * AlmaLinux 9 (or Debian 12) node and runs the roles with a "fake system"
 * runner: it records every argv and plays the part of the commands that
 * change files (groupadd/useradd edit /etc/group and /etc/passwd, mount adds
 * to /proc/self/mounts), so a second apply sees what the first one did.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordingRunner, type RunResult } from '../../../agent/exec.js';
import {
  chronyRole,
  gpuRole,
  hostsRole,
  infinibandRole,
  makeRoleContext,
  nfsRole,
  nfsServerRole,
  reposRole,
  rolesFor,
  runRoles,
  unifiedDiff,
  usersRole,
  osFamilyOf,
  clusterFacts,
  ROLE_ORDER,
  detectOs,
} from '../../../agent/roles/index.js';
import { applyReport } from '../../../agent/run.js';
import { RoleOutcome } from '../../../proto/gen/fleet/v1/agent.js';
import { ROLE_ORDER as SERVER_ROLE_ORDER } from '../../../server/agents/config.js';
import type { RoleContext, RoleSettings } from '../../../agent/roles/types.js';
import type { RolesSpec } from '../../../server/model.js';

// ------------------------------------------------------------------ the lab

const ALMA_OS_RELEASE = `NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
ANSI_COLOR="0;34"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
`;

const DEBIAN_OS_RELEASE = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`;

const STOCK_HOSTS = `127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4
::1         localhost localhost.localdomain localhost6 localhost6.localdomain6
`;

const STOCK_CHRONY = `# Use public servers from the pool.ntp.org project.
# Please consider joining the pool (https://www.pool.ntp.org/join.html).
pool 2.almalinux.pool.ntp.org iburst

# Use NTP servers from DHCP.
sourcedir /run/chrony-dhcp

# Record the rate at which the system clock gains/losses time.
driftfile /var/lib/chrony/drift

# Allow the system clock to be stepped in the first three updates
# if its offset is larger than 1 second.
makestep 1.0 3

# Enable kernel synchronization of the real-time clock (RTC).
rtcsync

# Specify directory for log files.
logdir /var/log/chrony
`;

const STOCK_FSTAB = `
#
# /etc/fstab
# Created by anaconda on Tue May 14 10:02:11 2024
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
UUID=4b1c2f3e-7a8d-4c1e-9f0a-1b2c3d4e5f60 /                       xfs     defaults        0 0
UUID=9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4 /boot                   xfs     defaults        0 0
/dev/mapper/almalinux-swap none                    swap    defaults        0 0
`;

const STOCK_PASSWD = `root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
sshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin
chrony:x:992:987:chrony system user:/var/lib/chrony:/sbin/nologin
carol:x:1500:1500::/home/carol:/bin/bash
eve:x:2004:2004::/home/eve:/bin/bash
`;

const STOCK_GROUP = `root:x:0:
bin:x:1:
daemon:x:2:
wheel:x:10:
nobody:x:65534:
sshd:x:74:
chrony:x:987:
carol:x:1500:
eve:x:2004:
`;

const ALMA_REPOS: Record<string, string> = {
  'almalinux-baseos.repo': '[baseos]\nname=AlmaLinux $releasever - BaseOS\nmirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos\nenabled=1\ngpgcheck=1\n',
  'almalinux-appstream.repo': '[appstream]\nname=AlmaLinux $releasever - AppStream\nmirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/appstream\nenabled=1\ngpgcheck=1\n',
  'epel.repo': '[epel]\nname=Extra Packages for Enterprise Linux 9 - $basearch\nmetalink=https://mirrors.fedoraproject.org/metalink?repo=epel-9&arch=$basearch\nenabled=1\ngpgcheck=1\n',
};

const PROC_MOUNTS = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/mapper/almalinux-root / xfs rw,seclabel,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
/dev/vda1 /boot xfs rw,seclabel,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
`;

const CLUSTER = {
  domain: 'cluster.local',
  managementAddress: '10.10.0.1',
  managementName: 'odin',
  hosts: [
    { name: 'odin', address: '10.10.0.1' },
    { name: 'thor', address: '10.10.1.1' },
    { name: 'heimdall', address: '10.10.2.1' },
    { name: 'valkyrie01', address: '10.10.3.1' },
    { name: 'valkyrie02', address: '10.10.3.2' },
  ],
};

interface Lab {
  root: string;
  file(p: string): string;
  write(p: string, content: string, mode?: number): void;
  exists(p: string): boolean;
  rm(p: string): void;
  /** Every file and link under the root with content/target and mode: for "nothing written". */
  snapshot(): Record<string, string>;
  cleanup(): void;
}

function makeLab(flavour: 'alma' | 'debian' = 'alma'): Lab {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-roles-'));
  const abs = (p: string): string => path.join(root, p);
  const lab: Lab = {
    root,
    file: (p) => fs.readFileSync(abs(p), 'utf8'),
    write: (p, content, mode = 0o644) => {
      fs.mkdirSync(path.dirname(abs(p)), { recursive: true });
      fs.writeFileSync(abs(p), content, { mode });
      fs.chmodSync(abs(p), mode);
    },
    exists: (p) => {
      try {
        fs.lstatSync(abs(p));
        return true;
      } catch {
        return false;
      }
    },
    rm: (p) => fs.rmSync(abs(p), { recursive: true, force: true }),
    snapshot: () => {
      const out: Record<string, string> = {};
      const walk = (dir: string): void => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const full = path.join(dir, e.name);
          const rel = path.relative(root, full);
          const st = fs.lstatSync(full);
          if (e.isSymbolicLink()) out[rel] = `link -> ${fs.readlinkSync(full)}`;
          else if (e.isDirectory()) {
            out[`${rel}/`] = `dir ${(st.mode & 0o7777).toString(8)}`;
            walk(full);
          } else out[rel] = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${fs.readFileSync(full, 'utf8')}`;
        }
      };
      walk(root);
      return out;
    },
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
  if (flavour === 'alma') {
    lab.write('etc/os-release', ALMA_OS_RELEASE);
    lab.write('etc/chrony.conf', STOCK_CHRONY);
    for (const [f, c] of Object.entries(ALMA_REPOS)) lab.write(`etc/yum.repos.d/${f}`, c);
  } else {
    lab.write('etc/os-release', DEBIAN_OS_RELEASE);
    lab.write('etc/chrony/chrony.conf', 'pool 2.debian.pool.ntp.org iburst\nkeyfile /etc/chrony/chrony.keys\ndriftfile /var/lib/chrony/chrony.drift\n');
    lab.write('etc/apt/sources.list.d/debian.sources', 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n');
  }
  lab.write('etc/hosts', STOCK_HOSTS);
  lab.write('etc/fstab', STOCK_FSTAB);
  lab.write('etc/passwd', STOCK_PASSWD);
  lab.write('etc/group', STOCK_GROUP);
  lab.write('proc/self/mounts', PROC_MOUNTS, 0o444);
  lab.write('proc/modules', 'xfs 2183168 2 - Live 0x0000000000000000\nvirtio_net 65536 0 - Live 0x0000000000000000\n', 0o444);
  fs.mkdirSync(abs('home/alice'), { recursive: true });
  return lab;
}

interface FakeSystem {
  runner: RecordingRunner;
  /** Mount targets whose `mount` fails (exit 32, like mount.nfs). */
  failMounts: Set<string>;
  /** Extra answers, tried first. */
  answers: Array<(cmd: string, args: string[]) => Partial<RunResult> | undefined>;
}

/** A recording runner that also does what groupadd/useradd/usermod/mount would do to the lab's files. */
function fakeSystem(lab: Lab): FakeSystem {
  const failMounts = new Set<string>();
  const installed = new Set<string>();
  const answers: FakeSystem['answers'] = [];
  const append = (p: string, line: string): void => fs.appendFileSync(path.join(lab.root, p), `${line}\n`);
  const runner = new RecordingRunner((cmd, args) => {
    for (const a of answers) {
      const r = a(cmd, args);
      if (r) return r;
    }
    const opt = (flag: string): string => args[args.indexOf(flag) + 1]!;
    const last = args[args.length - 1]!;
    switch (cmd) {
      case 'groupadd':
        append('etc/group', `${last}:x:${opt('-g')}:`);
        return {};
      case 'useradd':
        append('etc/passwd', `${last}:x:${opt('-u')}:${opt('-g')}::${opt('-d')}:${opt('-s')}`);
        return {};
      case 'dpkg-query': {
        // Debian: only what apt-get installed here (or an answer above) is installed.
        const names = args.filter((a) => !a.startsWith('-'));
        return { code: names.every((n) => installed.has(n)) ? 0 : 1, stdout: names.filter((n) => installed.has(n)).map((n) => `${n}\tinstall ok installed\n`).join('') };
      }
      case 'apt-get':
        if (args[0] === 'install') for (const p of args.slice(1).filter((a) => !a.startsWith('-'))) installed.add(p);
        return {};
      case 'mount':
        if (failMounts.has(last)) return { code: 32, stderr: `mount.nfs: Connection timed out for ${last}\n` };
        append('proc/self/mounts', `server:${last} ${last} nfs4 rw,relatime 0 0`);
        return {};
      default:
        return {};
    }
  });
  return { runner, failMounts, answers };
}

async function ctxFor(lab: Lab, roles: RolesSpec, runner: RecordingRunner, log: string[] = [], nfsMountRetryMs: number[] = []): Promise<RoleContext> {
  const settings: RoleSettings = { roles, cluster: structuredClone(CLUSTER) };
  // No waits between mount tries unless a test asks for them (the nfs role's default is minutes).
  return makeRoleContext({ root: lab.root, settings, runner, log: (l) => log.push(l), retryDelaysMs: { nfsMount: nfsMountRetryMs } });
}

// ------------------------------------------------------------------ fixtures of the profile

const SEED_REPOS: RolesSpec['repos'] = {
  repos: [
    { name: 'BaseOS', baseurl: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS', gpgcheck: false, enabled: true },
    { name: 'AppStream', baseurl: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/AppStream', gpgcheck: false, enabled: true },
    { name: 'Extra', baseurl: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/extra', gpgcheck: false, enabled: true },
  ],
  remove: ['almalinux-*.repo'],
};

const HOSTS_BLOCK = `# BEGIN fleet managed
10.10.0.1  odin.cluster.local odin
10.10.1.1  thor.cluster.local thor
10.10.2.1  heimdall.cluster.local heimdall
10.10.3.1  valkyrie01.cluster.local valkyrie01
10.10.3.2  valkyrie02.cluster.local valkyrie02
# END fleet managed
`;

const CHRONY_RHEL = `# Managed by fleet: local changes are overwritten.
# Time sources
server 10.10.0.1 iburst

# Record the rate at which the system clock gains/losses time.
driftfile /var/lib/chrony/drift

# Allow the system clock to be stepped in the first 3 updates
# if its offset is larger than 1.0 second(s).
makestep 1.0 3

# Enable kernel synchronization of the real-time clock (RTC).
rtcsync

# Specify directory for log files.
logdir /var/log/chrony
`;

const KEY_A1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd0ZmxlZXRhbGljZTEAAAAAAAAAAAAAAAAAAAAAAAA alice@laptop';
const KEY_A2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd0ZmxlZXRhbGljZTIAAAAAAAAAAAAAAAAAAAAAAAA alice@desk';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd0ZmxlZXRib2IAAAAAAAAAAAAAAAAAAAAAAAAA bob@laptop';

const NFS: RolesSpec['nfs'] = {
  mounts: [
    { source: 'thor:/home', target: '/home', options: 'rw,rsize=32768,wsize=32768,intr,nfsvers=4,bg' },
    { source: 'thor:/software', target: '/software', options: 'ro,intr,nfsvers=4,bg' },
    { source: 'thor:/scratch', target: '/scratch', options: 'rw,nfsvers=4,bg' },
  ],
};

const GRUBBY_INFO = (extra = ''): string => `index=0
kernel="/boot/vmlinuz-5.14.0-427.13.1.el9_4.x86_64"
args="ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/almalinux-swap rd.lvm.lv=almalinux/root${extra}"
root="/dev/mapper/almalinux-root"
initrd="/boot/initramfs-5.14.0-427.13.1.el9_4.x86_64.img"
title="AlmaLinux (5.14.0-427.13.1.el9_4.x86_64) 9.4 (Seafoam Ocelot)"
id="3f1c0a2b4d5e6f708192a3b4c5d6e7f8-5.14.0-427.13.1.el9_4.x86_64"
index=1
kernel="/boot/vmlinuz-0-rescue-3f1c0a2b4d5e6f708192a3b4c5d6e7f8"
args="ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/almalinux-swap rd.lvm.lv=almalinux/root${extra}"
root="/dev/mapper/almalinux-root"
initrd="/boot/initramfs-0-rescue-3f1c0a2b4d5e6f708192a3b4c5d6e7f8.img"
title="AlmaLinux (0-rescue-3f1c0a2b4d5e6f708192a3b4c5d6e7f8) 9.4 (Seafoam Ocelot)"
id="3f1c0a2b4d5e6f708192a3b4c5d6e7f8-0-rescue"
`;

/** Commands that change something (everything but the read-only queries). */
const QUERY = (argv: string[]): boolean =>
  (argv[0] === 'rpm' && argv[1] === '-q') ||
  argv[0] === 'dpkg-query' ||
  (argv[0] === 'grubby' && argv[1] === '--info=ALL') ||
  (argv[0] === 'nvidia-smi' && argv[1] === '-L') ||
  (argv[0] === 'systemctl' && (argv[1] === 'is-enabled' || argv[1] === 'is-active')) ||
  (argv[0] === 'dnf' && argv[1] === '-q' && argv[3] === 'list');
const mutating = (r: RecordingRunner): string[][] => r.argvs.filter((a) => !QUERY(a));

let labs: Lab[] = [];
function newLab(flavour: 'alma' | 'debian' = 'alma'): Lab {
  const l = makeLab(flavour);
  labs.push(l);
  return l;
}
afterEach(() => {
  for (const l of labs) l.cleanup();
  labs = [];
});

const asRoot = process.getuid?.() === 0;

// ------------------------------------------------------------------ repos

describe('repos role', () => {
  it('writes fleet-NAME.repo files, removes the globbed ones with a backup, then cleans the dnf cache', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { repos: SEED_REPOS }, sys.runner);
    const res = await reposRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(lab.file('etc/yum.repos.d/fleet-BaseOS.repo')).toBe(
      '# Managed by fleet: local changes are overwritten.\n[BaseOS]\nname=BaseOS\nbaseurl=http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS\ngpgcheck=0\nenabled=1\n',
    );
    expect(lab.file('etc/yum.repos.d/fleet-Extra.repo')).toContain('baseurl=http://10.10.0.1/repositories/AlmaLinux/9/x86_64/extra\n');
    expect(fs.statSync(path.join(lab.root, 'etc/yum.repos.d/fleet-AppStream.repo')).mode & 0o777).toBe(0o644);
    // removed, backed up, and epel.repo (not matched) left alone
    expect(lab.exists('etc/yum.repos.d/almalinux-baseos.repo')).toBe(false);
    expect(lab.exists('etc/yum.repos.d/almalinux-appstream.repo')).toBe(false);
    expect(lab.file('var/lib/fleet-agent/backup/etc/yum.repos.d/almalinux-baseos.repo')).toBe(ALMA_REPOS['almalinux-baseos.repo']);
    expect(lab.file('etc/yum.repos.d/epel.repo')).toBe(ALMA_REPOS['epel.repo']);
    expect(sys.runner.argvs).toEqual([['dnf', 'clean', 'all']]);
    expect(res.changes.map((c) => [c.action, c.path ?? c.command?.join(' ')])).toEqual([
      ['delete', '/etc/yum.repos.d/almalinux-appstream.repo'],
      ['delete', '/etc/yum.repos.d/almalinux-baseos.repo'],
      ['create', '/etc/yum.repos.d/fleet-BaseOS.repo'],
      ['create', '/etc/yum.repos.d/fleet-AppStream.repo'],
      ['create', '/etc/yum.repos.d/fleet-Extra.repo'],
      ['run', 'dnf clean all'],
    ]);

    sys.runner.clear();
    const again = await reposRole.apply(ctx);
    expect(again).toMatchObject({ status: 'ok', changes: [] });
    expect(sys.runner.argvs).toEqual([]);
  });

  it('never removes its own files through a glob, and drops fleet files of repositories no longer declared', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    lab.write('etc/yum.repos.d/fleet-Old.repo', '[Old]\nbaseurl=http://x/\n');
    const ctx = await ctxFor(lab, { repos: { repos: [SEED_REPOS!.repos[0]!], remove: ['*'] } }, sys.runner);
    const res = await reposRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(fs.readdirSync(path.join(lab.root, 'etc/yum.repos.d'))).toEqual(['fleet-BaseOS.repo']);
    // a backup of the fleet file is not needed but harmless; the others are kept
    expect(lab.file('var/lib/fleet-agent/backup/etc/yum.repos.d/epel.repo')).toBe(ALMA_REPOS['epel.repo']);
  });

  it('rewrites a fleet repo file changed by hand, and leaves unchanged content unwritten', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { repos: { repos: SEED_REPOS!.repos, remove: [] } }, sys.runner);
    await reposRole.apply(ctx);
    const extra = path.join(lab.root, 'etc/yum.repos.d/fleet-Extra.repo');
    const inode = fs.statSync(extra).ino;
    lab.write('etc/yum.repos.d/fleet-BaseOS.repo', '[BaseOS]\nbaseurl=http://elsewhere/\n');
    const plan = await reposRole.plan(ctx);
    expect(plan).toHaveLength(2);
    expect(plan[0]).toMatchObject({ action: 'update', path: '/etc/yum.repos.d/fleet-BaseOS.repo' });
    expect(plan[0]!.diff).toContain('-baseurl=http://elsewhere/\n');
    expect(plan[0]!.diff).toContain('+baseurl=http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os/BaseOS\n');
    await reposRole.apply(ctx);
    expect(fs.statSync(extra).ino).toBe(inode); // not rewritten
  });

  it('writes apt sources on Debian and runs apt-get update', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { repos: { repos: [{ name: 'site', baseurl: 'http://10.10.0.1/debian/site', gpgcheck: false, enabled: true }], remove: [] } }, sys.runner);
    expect(ctx.osFamily).toBe('debian');
    const res = await reposRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(lab.file('etc/apt/sources.list.d/fleet-site.list')).toBe('# Managed by fleet: local changes are overwritten.\n# site\ndeb [trusted=yes] http://10.10.0.1/debian/site ./\n');
    expect(lab.exists('etc/apt/sources.list.d/debian.sources')).toBe(true);
    expect(sys.runner.argvs).toEqual([['apt-get', 'update']]);
  });

  it('writes a suite and components on Debian; the fleet key to /etc/apt/keyrings/fleet.gpg, byte for byte, once', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const key = Buffer.from([0x98, 0x33, 0x04, 0xff, 0x00, 0x80, 0xc3, 0x28, 0x0a, 0xe9]); // not UTF-8: compared as bytes
    const repos = [
      { name: 'fleet', baseurl: 'http://10.10.0.1:8080/repo/debian', gpgcheck: true, enabled: true, suite: 'bookworm', components: ['main'], key: 'fleet' as const },
      { name: 'site', baseurl: 'http://10.10.0.1/site', gpgcheck: false, enabled: true, suite: 'bookworm', components: ['main', 'contrib'] },
    ];
    const ctx = await ctxFor(lab, { repos: { repos, remove: [] } }, sys.runner);
    ctx.settings.cluster.repoKey = key.toString('base64');
    const res = await reposRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(lab.file('etc/apt/sources.list.d/fleet-fleet.list')).toBe(
      '# Managed by fleet: local changes are overwritten.\n# fleet\ndeb [signed-by=/etc/apt/keyrings/fleet.gpg] http://10.10.0.1:8080/repo/debian bookworm main\n',
    );
    expect(lab.file('etc/apt/sources.list.d/fleet-site.list')).toContain('deb [trusted=yes] http://10.10.0.1/site bookworm main contrib\n');
    const written = path.join(lab.root, 'etc/apt/keyrings/fleet.gpg');
    expect(fs.readFileSync(written).equals(key)).toBe(true);
    expect(fs.statSync(written).mode & 0o777).toBe(0o644);
    expect(sys.runner.argvs).toEqual([['apt-get', 'update']]);
    // idempotent: nothing to do, no command
    expect(await reposRole.plan(ctx)).toEqual([]);
    // a new server key is an update of the keyring only
    ctx.settings.cluster.repoKey = Buffer.from([1, 2, 3]).toString('base64');
    expect((await reposRole.plan(ctx)).map((c) => [c.action, c.path])).toEqual([['update', '/etc/apt/keyrings/fleet.gpg'], ['run', undefined]]);
  });

  it('fails clearly, and leaves the keyed repository alone, when the server sent no key', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const repos = [
      { name: 'fleet', baseurl: 'http://10.10.0.1:8080/repo/debian', gpgcheck: true, enabled: true, suite: 'bookworm', components: ['main'], key: 'fleet' as const },
      { name: 'site', baseurl: 'http://10.10.0.1/site', gpgcheck: false, enabled: true },
    ];
    const ctx = await ctxFor(lab, { repos: { repos, remove: [] } }, sys.runner);
    const res = await reposRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/repository fleet uses key: fleet, but the server sent no repository key/);
    expect(lab.exists('etc/apt/sources.list.d/fleet-fleet.list')).toBe(false);
    expect(lab.file('etc/apt/sources.list.d/fleet-site.list')).toContain('deb [trusted=yes] http://10.10.0.1/site ./\n');
  });

  it('keeps the rhel branch as it was (no suite, no key there)', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { repos: { repos: [{ name: 'x', baseurl: 'http://10.10.0.1/x', gpgcheck: true, enabled: true }], remove: [] } }, sys.runner);
    await reposRole.apply(ctx);
    expect(lab.file('etc/yum.repos.d/fleet-x.repo')).toBe('# Managed by fleet: local changes are overwritten.\n[x]\nname=x\nbaseurl=http://10.10.0.1/x\ngpgcheck=1\nenabled=1\n');
  });
});

// ------------------------------------------------------------------ hosts

describe('hosts role', () => {
  it('adds a managed block, keeps the lines outside it, and backs up the original once', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { hosts: { enabled: true } }, sys.runner);
    const res = await hostsRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(lab.file('etc/hosts')).toBe(`${STOCK_HOSTS}\n${HOSTS_BLOCK}`);
    expect(lab.file('var/lib/fleet-agent/backup/etc/hosts')).toBe(STOCK_HOSTS);
    expect(sys.runner.argvs).toEqual([]);

    // someone adds a line after the block; the cluster gains a node
    lab.write('etc/hosts', `${lab.file('etc/hosts')}192.168.1.50 printer\n`);
    ctx.settings.cluster.hosts.push({ name: 'valkyrie03', address: '10.10.3.3' });
    const res2 = await hostsRole.apply(ctx);
    expect(res2.status).toBe('changed');
    expect(res2.changes[0]!.diff).toBe(
      '--- a/etc/hosts\n+++ b/etc/hosts\n@@ -7,5 +7,6 @@\n 10.10.2.1  heimdall.cluster.local heimdall\n 10.10.3.1  valkyrie01.cluster.local valkyrie01\n 10.10.3.2  valkyrie02.cluster.local valkyrie02\n+10.10.3.3  valkyrie03.cluster.local valkyrie03\n # END fleet managed\n 192.168.1.50 printer\n',
    );
    expect(lab.file('etc/hosts')).toBe(
      `${STOCK_HOSTS}\n${HOSTS_BLOCK.replace('# END', '10.10.3.3  valkyrie03.cluster.local valkyrie03\n# END')}192.168.1.50 printer\n`,
    );
    // the backup is still the very first original
    expect(lab.file('var/lib/fleet-agent/backup/etc/hosts')).toBe(STOCK_HOSTS);

    expect(await hostsRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
  });

  it('removes the block when disabled', async () => {
    const lab = newLab();
    lab.write('etc/hosts', `${STOCK_HOSTS}\n${HOSTS_BLOCK}10.0.0.9 other\n`);
    const ctx = await ctxFor(lab, { hosts: { enabled: false } }, fakeSystem(lab).runner);
    expect((await hostsRole.apply(ctx)).status).toBe('changed');
    expect(lab.file('etc/hosts')).toBe(`${STOCK_HOSTS}\n10.0.0.9 other\n`);
  });

  it('fails on malformed markers instead of guessing', async () => {
    const lab = newLab();
    lab.write('etc/hosts', `${STOCK_HOSTS}# BEGIN fleet managed\n10.0.0.1 x\n`);
    const ctx = await ctxFor(lab, { hosts: { enabled: true } }, fakeSystem(lab).runner);
    const res = await hostsRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/markers are malformed/);
    expect(lab.file('etc/hosts')).toBe(`${STOCK_HOSTS}# BEGIN fleet managed\n10.0.0.1 x\n`);
  });

  it('refuses a symlink that leads out of the root, without touching the host', async () => {
    const lab = newLab();
    const before = fs.readFileSync('/etc/hosts', 'utf8');
    const mtime = fs.statSync('/etc/hosts').mtimeMs;
    lab.rm('etc/hosts');
    fs.symlinkSync('/etc/hosts', path.join(lab.root, 'etc/hosts'));
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { hosts: { enabled: true } }, sys.runner);
    await expect(hostsRole.plan(ctx)).rejects.toThrow(/symbolic link out of the root/);
    const res = await hostsRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/\/etc\/hosts is a symbolic link out of the root \(-> \/etc\/hosts\)/);
    expect(fs.readFileSync('/etc/hosts', 'utf8')).toBe(before);
    expect(fs.statSync('/etc/hosts').mtimeMs).toBe(mtime);
    expect(lab.exists('var/lib/fleet-agent/backup/etc/hosts')).toBe(false);
    expect(fs.readlinkSync(path.join(lab.root, 'etc/hosts'))).toBe('/etc/hosts');
  });

  it('refuses a directory link out of the root too, and follows links that stay inside', async () => {
    const lab = newLab();
    // ROOT/etc/hosts -> hosts.real (inside): written through, link kept
    lab.write('etc/hosts.real', STOCK_HOSTS);
    lab.rm('etc/hosts');
    fs.symlinkSync('hosts.real', path.join(lab.root, 'etc/hosts'));
    const ctx = await ctxFor(lab, { hosts: { enabled: true } }, fakeSystem(lab).runner);
    expect((await hostsRole.apply(ctx)).status).toBe('changed');
    expect(fs.readlinkSync(path.join(lab.root, 'etc/hosts'))).toBe('hosts.real');
    expect(lab.file('etc/hosts.real')).toBe(`${STOCK_HOSTS}\n${HOSTS_BLOCK}`);

    // ROOT/etc/chrony.conf inside a linked-out directory
    const lab2 = newLab();
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-outside-'));
    try {
      fs.writeFileSync(path.join(outside, 'hosts'), 'untouched\n');
      fs.renameSync(path.join(lab2.root, 'etc'), path.join(lab2.root, 'etc.real'));
      fs.symlinkSync(outside, path.join(lab2.root, 'etc'));
      const ctx2 = await makeRoleContext({ root: lab2.root, osFamily: 'rhel', settings: { roles: { hosts: { enabled: true } }, cluster: CLUSTER }, runner: new RecordingRunner() });
      const res = await hostsRole.apply(ctx2);
      expect(res.status).toBe('failed');
      expect(res.message).toMatch(/\/etc is a symbolic link out of the root/);
      expect(fs.readFileSync(path.join(outside, 'hosts'), 'utf8')).toBe('untouched\n');
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ chrony

describe('chrony role', () => {
  it('writes the seed client config and restarts chronyd only when it changed', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { chrony: { servers: ['10.10.0.1'], makestep: '1.0 3' } }, sys.runner);
    const res = await chronyRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(lab.file('etc/chrony.conf')).toBe(CHRONY_RHEL);
    expect(lab.file('var/lib/fleet-agent/backup/etc/chrony.conf')).toBe(STOCK_CHRONY);
    expect(sys.runner.argvs[0], 'the package is queried first').toEqual(['rpm', '-q', 'chrony']);
    expect(mutating(sys.runner)).toEqual([
      ['systemctl', 'restart', 'chronyd'],
      ['systemctl', 'enable', '--now', 'chronyd'],
    ]);
    // enabled now (a link to a unit file outside the test root, as on a real system)
    fs.mkdirSync(path.join(lab.root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    fs.symlinkSync('/usr/lib/systemd/system/chronyd.service', path.join(lab.root, 'etc/systemd/system/multi-user.target.wants/chronyd.service'));
    sys.runner.clear();
    expect(await chronyRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(sys.runner)).toEqual([]);

    ctx.settings.roles.chrony = { servers: ['10.10.0.1', '10.10.0.2'], makestep: '1.0 3' };
    const res3 = await chronyRole.apply(ctx);
    expect(res3.status).toBe('changed');
    expect(lab.file('etc/chrony.conf')).toBe(CHRONY_RHEL.replace('server 10.10.0.1 iburst\n', 'server 10.10.0.1 iburst\nserver 10.10.0.2 iburst\n'));
    expect(mutating(sys.runner)).toEqual([['systemctl', 'restart', 'chronyd']]);
  });

  it('uses /etc/chrony/chrony.conf and the chrony service on Debian, installing chrony first when a minimal image lacks it', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { chrony: { servers: ['10.10.0.1'], makestep: '1 3' } }, sys.runner);
    expect((await chronyRole.apply(ctx)).status).toBe('changed');
    const conf = lab.file('etc/chrony/chrony.conf');
    expect(conf).toContain('server 10.10.0.1 iburst\n');
    expect(conf).toContain('driftfile /var/lib/chrony/chrony.drift\n');
    expect(conf).toContain('makestep 1 3\n');
    expect(mutating(sys.runner)).toEqual([
      ['apt-get', 'install', '-y', 'chrony'],
      ['systemctl', 'restart', 'chrony'],
      ['systemctl', 'enable', '--now', 'chrony'],
    ]);
    // installed and enabled (the package's wants link): a new server list only restarts it
    fs.mkdirSync(path.join(lab.root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    fs.symlinkSync('/lib/systemd/system/chrony.service', path.join(lab.root, 'etc/systemd/system/multi-user.target.wants/chrony.service'));
    sys.runner.clear();
    ctx.settings.roles.chrony = { servers: ['10.10.0.2'], makestep: '1 3' };
    expect((await chronyRole.apply(ctx)).status).toBe('changed');
    expect(mutating(sys.runner)).toEqual([['systemctl', 'restart', 'chrony']]);
  });

  it('a failed install of chrony writes nothing and restarts nothing, naming the command', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    sys.answers.push((cmd, args) => (cmd === 'apt-get' && args[0] === 'install' ? { code: 100, stderr: 'E: Unable to locate package chrony\n' } : undefined));
    const ctx = await ctxFor(lab, { chrony: { servers: ['10.10.0.1'], makestep: '1 3' } }, sys.runner);
    const before = lab.file('etc/chrony/chrony.conf');
    const res = await chronyRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/install chrony failed: .*apt-get install -y chrony.*exit 100: E: Unable to locate package chrony/);
    expect(lab.file('etc/chrony/chrony.conf')).toBe(before);
    expect(mutating(sys.runner)).toEqual([['apt-get', 'install', '-y', 'chrony']]);
  });

  it('does not restart when the write failed', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    lab.rm('etc/chrony.conf');
    fs.mkdirSync(path.join(lab.root, 'etc/chrony.conf')); // a directory where the file should be
    const ctx = await ctxFor(lab, { chrony: { servers: ['10.10.0.1'], makestep: '1.0 3' } }, sys.runner);
    const res = await chronyRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/not a regular file/);
    expect(sys.runner.argvs.filter((a) => a[1] === 'restart')).toEqual([]);
  });
});

// ------------------------------------------------------------------ nfs

describe('nfs role', () => {
  it('manages fstab lines by mount point, creates mount points, mounts what is not mounted, and reports a failed mount while the others proceed', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const oldSoftware = 'thor:/software  /software  nfs  ro  0 0';
    lab.write('etc/fstab', `${STOCK_FSTAB}${oldSoftware}\n# local scratch disk\n/dev/sdb1 /data xfs defaults 0 0\n`);
    fs.mkdirSync(path.join(lab.root, 'software'));
    sys.failMounts.add('/software');
    const ctx = await ctxFor(lab, { nfs: NFS }, sys.runner);
    const res = await nfsRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(lab.file('etc/fstab')).toBe(
      `${STOCK_FSTAB}thor:/software /software nfs ro,intr,nfsvers=4,bg 0 0\n# local scratch disk\n/dev/sdb1 /data xfs defaults 0 0\n` +
        'thor:/home /home nfs rw,rsize=32768,wsize=32768,intr,nfsvers=4,bg 0 0\nthor:/scratch /scratch nfs rw,nfsvers=4,bg 0 0\n',
    );
    expect(fs.statSync(path.join(lab.root, 'scratch')).isDirectory()).toBe(true);
    const real = fs.realpathSync(lab.root);
    const mount = (t: string): string[] => ['mount', '--fstab', `${real}/etc/fstab`, '--target-prefix', real, t];
    expect(sys.runner.argvs[0], 'mount.nfs is checked for first').toEqual(['rpm', '-q', 'nfs-utils']);
    expect(mutating(sys.runner)).toEqual([mount('/home'), mount('/software'), mount('/scratch')]);
    expect(res.message).toContain('mount /software failed: mount --fstab');
    expect(res.message).toContain('exit 32: mount.nfs: Connection timed out for /software');
    expect(res.changes.map((c) => c.summary)).toEqual(['update /etc/fstab', 'mount /home', 'mkdir /scratch', 'mount /scratch']);

    // the server is back: only the failed one is retried
    sys.failMounts.clear();
    sys.runner.clear();
    const res2 = await nfsRole.apply(ctx);
    expect(res2.status).toBe('changed');
    expect(mutating(sys.runner)).toEqual([mount('/software')]);
    sys.runner.clear();
    expect(await nfsRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('installs the mount helper first on Debian (nfs-common); a failed install leaves the mounts undone, saying why', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    let aptFails = true;
    sys.answers.push((cmd, args) => (cmd === 'apt-get' && args[0] === 'install' && aptFails ? { code: 100, stderr: 'E: Unable to locate package nfs-common\n' } : undefined));
    const ctx = await ctxFor(lab, { nfs: NFS }, sys.runner);
    const res = await nfsRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/install nfs-common failed: .*exit 100/);
    expect(res.message).toContain('mount /home failed: not mounted: nfs-common (mount.nfs) could not be installed');
    expect(mutating(sys.runner)).toEqual([['apt-get', 'install', '-y', 'nfs-common']]);
    aptFails = false;
    sys.runner.clear();
    const res2 = await nfsRole.apply(ctx);
    expect(res2.status, res2.message).toBe('changed');
    const real = fs.realpathSync(lab.root);
    const mount = (t: string): string[] => ['mount', '--fstab', `${real}/etc/fstab`, '--target-prefix', real, t];
    expect(mutating(sys.runner)).toEqual([['apt-get', 'install', '-y', 'nfs-common'], mount('/home'), mount('/software'), mount('/scratch')]);
    sys.runner.clear();
    expect(await nfsRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
  });

  it('waits for its storage: a mount the server refuses at first (not exported yet) is tried again, a bounded number of times', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    let refusals = 2;
    sys.answers.push((cmd, args) => {
      if (cmd !== 'mount' || args[args.length - 1] !== '/home' || refusals === 0) return undefined;
      refusals--;
      return { code: 32, stderr: 'mount.nfs: access denied by server while mounting thor:/home\n' };
    });
    const log: string[] = [];
    const ctx = await ctxFor(lab, { nfs: { mounts: [NFS!.mounts[0]!] } }, sys.runner, log, [1, 1, 1]);
    const res = await nfsRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(mutating(sys.runner).filter((a) => a[0] === 'mount')).toHaveLength(3);
    expect(log.filter((l) => /nfs: mount \/home failed .*access denied by server.*trying again in 0 s \([12] of 3\)/.test(l))).toHaveLength(2);
    // Refused every time: failed after the last try, saying how many.
    const lab2 = newLab();
    const sys2 = fakeSystem(lab2);
    sys2.failMounts.add('/home');
    const res2 = await nfsRole.apply(await ctxFor(lab2, { nfs: { mounts: [NFS!.mounts[0]!] } }, sys2.runner, [], [1, 1]));
    expect(res2.status).toBe('failed');
    expect(res2.message).toMatch(/mount \/home failed: .*Connection timed out for \/home.* \(after 3 tries\)/);
    expect(mutating(sys2.runner).filter((a) => a[0] === 'mount')).toHaveLength(3);
  });

  it('uses a plain `mount TARGET` on the live root', async () => {
    // Only the argv shape: the plan is computed for root '/' with a recording runner and nothing applied.
    const runner = new RecordingRunner();
    const ctx = await makeRoleContext({ root: '/', osFamily: 'rhel', settings: { roles: { nfs: { mounts: [{ source: 'thor:/fleet-test-nonexistent', target: '/fleet-test-nonexistent-mnt', options: 'ro' }] } }, cluster: CLUSTER }, runner });
    const plan = await nfsRole.plan(ctx);
    expect(plan.find((c) => c.action === 'run')?.command).toEqual(['mount', '/fleet-test-nonexistent-mnt']);
    expect(mutating(runner)).toEqual([]);
    expect(fs.existsSync('/fleet-test-nonexistent-mnt')).toBe(false);
  });
});

// ------------------------------------------------------------------ users

describe('users role', () => {
  const USERS: RolesSpec['users'] = {
    groups: [{ name: 'hpc', gid: 3000 }],
    users: [
      { name: 'alice', uid: 2001, gid: 3000, group: 'hpc', shell: '/bin/bash', home: '/home/alice', sshKeys: [KEY_A1, KEY_A2] },
      { name: 'bob', uid: 2002, gid: 2002, shell: '/bin/bash', home: '/home/bob', sshKeys: [KEY_B] },
    ],
  };

  it('adds groups and users with fixed ids, writes authorized_keys, and a second apply does nothing', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    lab.write('home/alice/.ssh/authorized_keys', 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 alice-own-key\n', 0o644);
    const ctx = await ctxFor(lab, { users: USERS, nfs: NFS }, sys.runner);
    const res = await usersRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(sys.runner.argvs).toEqual([
      ['groupadd', '-g', '3000', 'hpc'],
      ['useradd', '-u', '2001', '-g', '3000', '-s', '/bin/bash', '-d', '/home/alice', '-M', 'alice'],
      ['groupadd', '-g', '2002', 'bob'],
      ['useradd', '-u', '2002', '-g', '2002', '-s', '/bin/bash', '-d', '/home/bob', '-M', 'bob'],
    ]);
    expect(lab.file('home/alice/.ssh/authorized_keys')).toBe(
      `ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 alice-own-key\n\n# BEGIN fleet managed\n${KEY_A1}\n${KEY_A2}\n# END fleet managed\n`,
    );
    const dirSt = fs.statSync(path.join(lab.root, 'home/alice/.ssh'));
    const keySt = fs.statSync(path.join(lab.root, 'home/alice/.ssh/authorized_keys'));
    expect(dirSt.mode & 0o777).toBe(0o700);
    expect(keySt.mode & 0o777).toBe(0o600);
    if (asRoot) {
      expect([dirSt.uid, dirSt.gid, keySt.uid, keySt.gid]).toEqual([2001, 3000, 2001, 3000]);
    }
    // bob's home is on NFS, not mounted yet: deferred, not failed
    expect(res.message).toContain('SSH keys of bob deferred: /home/bob does not exist yet');
    expect(lab.file('etc/passwd')).toContain('alice:x:2001:3000::/home/alice:/bin/bash\n');

    sys.runner.clear();
    const again = await usersRole.apply(ctx);
    expect(again.status).toBe('ok');
    expect(again.changes).toEqual([]);
    expect(sys.runner.argvs).toEqual([]);

    // once /home/bob exists, bob's keys are written
    fs.mkdirSync(path.join(lab.root, 'home/bob'));
    const third = await usersRole.apply(ctx);
    expect(third.status).toBe('changed');
    expect(lab.file('home/bob/.ssh/authorized_keys')).toBe(`# BEGIN fleet managed\n${KEY_B}\n# END fleet managed\n`);
    expect(sys.runner.argvs).toEqual([]);
  });

  it('reports a uid that differs or is taken, never renumbers, and still handles the other users', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const passwdBefore = lab.file('etc/passwd');
    const spec: RolesSpec['users'] = {
      groups: [],
      users: [
        { name: 'carol', uid: 2003, gid: 1500, shell: '/bin/bash', home: '/home/carol', sshKeys: [] },
        { name: 'dave', uid: 2004, gid: 2004, shell: '/bin/bash', home: '/home/dave', sshKeys: [] },
        { name: 'frank', uid: 2006, gid: 2006, shell: '/bin/zsh', home: '/home/frank', sshKeys: [] },
      ],
    };
    const ctx = await ctxFor(lab, { users: spec }, sys.runner);
    const res = await usersRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toContain('user carol has uid 1500 here, the profile says 2003: not renumbered, fix by hand');
    expect(res.message).toContain('user dave: uid 2004 is already used by user eve');
    expect(sys.runner.argvs).toEqual([
      ['groupadd', '-g', '2006', 'frank'],
      ['useradd', '-u', '2006', '-g', '2006', '-s', '/bin/zsh', '-d', '/home/frank', '-M', 'frank'],
    ]);
    expect(lab.file('etc/passwd').startsWith(passwdBefore)).toBe(true);
    expect(sys.runner.argvs.some((a) => a.includes('carol') || a.includes('eve') || a.includes('dave'))).toBe(false);
  });

  it('aligns shell and home of an existing user with the right uid, and never touches users the profile does not name', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { users: { groups: [], users: [{ name: 'carol', uid: 1500, gid: 1500, shell: '/bin/zsh', home: '/home/carol', sshKeys: [] }] } }, sys.runner);
    expect((await usersRole.apply(ctx)).status).toBe('changed');
    expect(sys.runner.argvs).toEqual([['usermod', '-s', '/bin/zsh', 'carol']]);
  });

  it('refuses to follow a symlink inside a home (e.g. ~/.ssh -> /etc)', async () => {
    const lab = newLab();
    fs.mkdirSync(path.join(lab.root, 'home/mallory'));
    fs.symlinkSync('../../etc', path.join(lab.root, 'home/mallory/.ssh'));
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { users: { groups: [], users: [{ name: 'mallory', uid: 2007, gid: 2007, shell: '/bin/bash', home: '/home/mallory', sshKeys: [KEY_B] }] } }, sys.runner);
    const res = await usersRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/\/home\/mallory\/\.ssh is a symbolic link; refusing to follow it/);
    expect(lab.exists('etc/authorized_keys')).toBe(false);
    expect(sys.runner.argvs).toEqual([]);
  });

  it('makes the homes on the node that exports them (0700, the user\'s), with the keys inside; never on an NFS client', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const exportsHome: RolesSpec['nfsServer'] = { exports: [{ path: '/home', clients: '10.10.0.0/16', options: 'rw,sync,no_root_squash' }] };
    const ctx = await ctxFor(lab, { users: USERS, nfsServer: exportsHome }, sys.runner);
    const res = await usersRole.apply(ctx);
    expect(res.status, res.message).toBe('changed');
    expect(res.changes.map((c) => c.summary), JSON.stringify(res.changes.map((c) => c.summary))).toContain('mkdir /home/bob (0700, owner 2002:2002; this node exports /home)');
    expect(res.changes.some((c) => c.summary?.startsWith('mkdir /home/alice ')), 'an existing home is left as it is').toBe(false);
    const st = fs.statSync(path.join(lab.root, 'home/bob'));
    expect(st.mode & 0o7777).toBe(0o700);
    if (asRoot) expect([st.uid, st.gid]).toEqual([2002, 2002]);
    expect(lab.file('home/bob/.ssh/authorized_keys')).toContain(KEY_B);
    sys.runner.clear();
    expect(await usersRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    // The same users on an NFS client of that export: nothing is made under the mount point.
    const client = newLab('debian');
    const cctx = await ctxFor(client, { users: USERS, nfs: NFS }, fakeSystem(client).runner);
    const cres = await usersRole.apply(cctx);
    expect(cres.changes.some((c) => c.summary?.startsWith('mkdir /home/bob'))).toBe(false);
    expect(fs.existsSync(path.join(client.root, 'home/bob'))).toBe(false);
  });

  it('fails on a missing home outside any NFS mount', async () => {
    const lab = newLab();
    const ctx = await ctxFor(lab, { users: { groups: [], users: [{ name: 'gina', uid: 2008, gid: 2008, shell: '/bin/bash', home: '/srv/gina', sshKeys: [KEY_B] }] } }, fakeSystem(lab).runner);
    const res = await usersRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toContain('SSH keys of gina: home /srv/gina does not exist');
  });
});

// ------------------------------------------------------------------ gpu

describe('gpu role', () => {
  const GPU: RolesSpec['gpu'] = { vendor: 'nvidia', packages: ['nvidia-driver', 'nvidia-driver-cuda'], blacklistNouveau: true };

  it('blacklists nouveau, sets kernel args, installs the driver, then asks for a reboot; after the reboot nvidia-smi -L makes it ok', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    lab.write('proc/modules', 'nouveau 2887680 0 - Live 0x0000000000000000\nxfs 2183168 2 - Live 0x0000000000000000\n', 0o444);
    let installed = false;
    sys.answers.push((cmd, args) => {
      if (cmd === 'grubby' && args[0] === '--info=ALL') return { stdout: GRUBBY_INFO(installed ? ' nomodeset modprobe.blacklist=nouveau' : '') };
      if (cmd === 'rpm') return installed ? { stdout: 'nvidia-driver-550.54.15-1.el9.x86_64\nnvidia-driver-cuda-550.54.15-1.el9.x86_64\n' } : { code: 2, stdout: 'package nvidia-driver is not installed\npackage nvidia-driver-cuda is not installed\n' };
      if (cmd === 'nvidia-smi') return { stdout: 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-3b8d2f4e-8c1a-6f0e-2b7d-91c4a5e6f701)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-7a1e9c02-4d3b-1e8f-5a6c-02b3d4e5f602)\n' };
      return undefined;
    });
    const ctx = await ctxFor(lab, { gpu: GPU }, sys.runner);
    const res = await gpuRole.apply(ctx);
    expect(res.status).toBe('needs-reboot');
    expect(res.message).toMatch(/^nouveau is loaded: reboot to load the nvidia driver/);
    expect(lab.file('etc/modprobe.d/fleet-blacklist-nouveau.conf')).toBe('# Managed by fleet\nblacklist nouveau\noptions nouveau modeset=0\n');
    expect(sys.runner.argvs).toEqual([
      ['grubby', '--info=ALL'],
      ['rpm', '-q', 'nvidia-driver', 'nvidia-driver-cuda'],
      ['grubby', '--update-kernel=ALL', '--args=nomodeset modprobe.blacklist=nouveau'],
      ['dnf', 'install', '-y', 'nvidia-driver', 'nvidia-driver-cuda'],
    ]);

    // "reboot": packages in, args set, nvidia loaded instead of nouveau
    installed = true;
    lab.write('proc/modules', 'nvidia_uvm 1740800 0 - Live 0x0\nnvidia 8634368 1 nvidia_uvm, Live 0x0\nxfs 2183168 2 - Live 0x0\n', 0o444);
    sys.runner.clear();
    const after = await gpuRole.apply(ctx);
    expect(after).toMatchObject({ status: 'ok', changes: [], message: 'nvidia-smi sees 2 GPUs' });
    expect(sys.runner.argvs).toEqual([['grubby', '--info=ALL'], ['rpm', '-q', 'nvidia-driver', 'nvidia-driver-cuda'], ['nvidia-smi', '-L']]);
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('needs a reboot while the nvidia driver is not loaded, fails when nvidia-smi fails, and fails without any NVIDIA device', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    sys.answers.push((cmd) => (cmd === 'grubby' ? { stdout: GRUBBY_INFO(' nomodeset modprobe.blacklist=nouveau') } : cmd === 'rpm' ? { stdout: '' } : undefined));
    lab.write('etc/modprobe.d/fleet-blacklist-nouveau.conf', '# Managed by fleet\nblacklist nouveau\noptions nouveau modeset=0\n');
    lab.write('sys/bus/pci/devices/0000:3b:00.0/vendor', '0x10de\n');
    lab.write('sys/bus/pci/devices/0000:3b:00.0/class', '0x030200\n');
    const ctx = await ctxFor(lab, { gpu: GPU }, sys.runner);
    expect(await gpuRole.apply(ctx)).toMatchObject({ status: 'needs-reboot', message: 'the nvidia driver is not loaded: reboot to load it' });

    lab.write('proc/modules', 'nvidia 8634368 0 - Live 0x0\n', 0o444);
    sys.answers.unshift((cmd) => (cmd === 'nvidia-smi' ? { code: 9, stdout: 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.\n' } : undefined));
    const bad = await gpuRole.apply(ctx);
    expect(bad.status).toBe('failed');
    expect(bad.message).toMatch(/nvidia-smi -L: exit 9: NVIDIA-SMI has failed/);

    lab.write('proc/modules', 'xfs 1 0 - Live 0x0\n', 0o444);
    lab.write('sys/bus/pci/devices/0000:3b:00.0/vendor', '0x8086\n');
    expect(await gpuRole.apply(ctx)).toMatchObject({ status: 'failed', message: 'no NVIDIA GPU found on PCI' });
  });

  it('uses grub.d, update-grub, dpkg-query and apt-get on Debian', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    sys.answers.push((cmd) => (cmd === 'dpkg-query' ? { code: 1, stdout: 'nvidia-driver\tunknown ok not-installed\n', stderr: 'dpkg-query: no packages found matching firmware-misc-nonfree\n' } : undefined));
    const ctx = await ctxFor(lab, { gpu: { vendor: 'nvidia', packages: ['nvidia-driver', 'firmware-misc-nonfree'], blacklistNouveau: true } }, sys.runner);
    const res = await gpuRole.apply(ctx);
    expect(res.status).toBe('needs-reboot');
    expect(lab.file('etc/default/grub.d/fleet-gpu.cfg')).toBe('# Managed by fleet\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX nomodeset modprobe.blacklist=nouveau"\n');
    expect(sys.runner.argvs).toEqual([
      ['dpkg-query', '-W', '--showformat=${Package}\\t${Status}\\n', 'nvidia-driver', 'firmware-misc-nonfree'],
      ['update-grub'],
      ['apt-get', 'install', '-y', 'nvidia-driver', 'firmware-misc-nonfree'],
    ]);
    expect(sys.runner.calls[2]!.opts.env).toEqual({ DEBIAN_FRONTEND: 'noninteractive' });
  });

  it('reports a failed install as failed, with the reason', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    sys.answers.push((cmd, args) =>
      cmd === 'grubby' ? { stdout: GRUBBY_INFO(' nomodeset modprobe.blacklist=nouveau') } : cmd === 'rpm' ? { code: 1, stdout: `package ${args[1]} is not installed\n` } : cmd === 'dnf' ? { code: 1, stderr: 'Error: Unable to find a match: nvidia-driver\n' } : undefined,
    );
    const ctx = await ctxFor(lab, { gpu: { vendor: 'nvidia', packages: ['nvidia-driver'], blacklistNouveau: true } }, sys.runner);
    const res = await gpuRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toContain('install nvidia-driver failed: dnf install -y nvidia-driver: exit 1: Error: Unable to find a match: nvidia-driver');
  });
});

// ------------------------------------------------------------------ infiniband

describe('infiniband role', () => {
  it('installs the group and enables rdma, then does nothing', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    let done = false;
    sys.answers.push((cmd, args) => {
      if (cmd === 'dnf' && args[1] === 'group') return { stdout: done ? 'Installed Groups:\n   Infiniband Support (infiniband)\n   Headless Management (headless-management)\n' : 'Installed Groups:\n   Headless Management (headless-management)\n' };
      if (cmd === 'systemctl' && args[0] === 'is-enabled') return done ? { stdout: 'enabled\n' } : { code: 1, stdout: 'disabled\n' };
      if (cmd === 'systemctl' && args[0] === 'is-active') return done ? { stdout: 'active\n' } : { code: 3, stdout: 'inactive\n' };
      return undefined;
    });
    const ctx = await ctxFor(lab, { infiniband: { packages: ['@infiniband', 'infiniband-diags'] } }, sys.runner);
    const res = await infinibandRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(mutating(sys.runner)).toEqual([
      ['dnf', 'install', '-y', '@infiniband'],
      ['systemctl', 'enable', '--now', 'rdma'],
    ]);
    expect(sys.runner.argvs.slice(0, 2)).toEqual([
      ['rpm', '-q', 'infiniband-diags'],
      ['dnf', '-q', 'group', 'list', '--installed', '--ids'],
    ]);
    done = true;
    sys.runner.clear();
    expect(await infinibandRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('refuses package groups on Debian', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, { infiniband: { packages: ['@infiniband'] } }, sys.runner);
    const res = await infinibandRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/@infiniband is RHEL-only/);
    expect(mutating(sys.runner)).toEqual([]);
  });
});

// ------------------------------------------------------------------ nfsServer

const THOR_EXPORTS: RolesSpec['nfsServer'] = {
  exports: [
    { path: '/home', clients: '10.10.0.0/16', options: 'rw,sync,no_root_squash' },
    { path: '/software', clients: '10.10.0.0/16', options: 'ro,sync' },
  ],
};

const THOR_EXPORTS_FILE = `# Managed by fleet (the profile's nfs_server role): local changes are overwritten.
# Exports of your own belong in /etc/exports or another file of /etc/exports.d.
/home 10.10.0.0/16(rw,sync,no_root_squash)
/software 10.10.0.0/16(ro,sync)
`;

interface NfsServerFake {
  installed: boolean;
  running: boolean;
  /** exportfs -ra's answer when it fails. */
  exportfsFails?: Partial<RunResult>;
}

/**
 * Plays an NFS server's commands on the lab: the package is installed once
 * dnf/apt-get installed it, `exportfs -ra` writes /var/lib/nfs/etab from
 * fleet's exports file (as exportfs does from its exports), systemctl
 * enable --now makes the service enabled and active.
 */
function nfsServerFake(lab: Lab, sys: FakeSystem, st: NfsServerFake): void {
  const pkg = /nfs-utils|nfs-kernel-server/;
  sys.answers.push((cmd, args) => {
    if (cmd === 'rpm' && args[0] === '-q') return st.installed ? { stdout: `${args[1]}-2.5.4-25.el9.x86_64\n` } : { code: 1, stdout: `package ${args[1]} is not installed\n` };
    if (cmd === 'dpkg-query') {
      const name = args[args.length - 1]!;
      return st.installed ? { stdout: `${name}\tinstall ok installed\n` } : { code: 1, stderr: `dpkg-query: no packages found matching ${name}\n` };
    }
    if ((cmd === 'dnf' || cmd === 'apt-get') && args[0] === 'install' && pkg.test(args.join(' '))) {
      st.installed = true;
      return {};
    }
    if (cmd === 'exportfs') {
      if (st.exportfsFails) return st.exportfsFails;
      const lines = lab.exists('etc/exports.d/fleet.exports') ? lab.file('etc/exports.d/fleet.exports').split('\n').filter((l) => l && !l.startsWith('#')) : [];
      lab.write('var/lib/nfs/etab', lines.map((l) => l.replace(' ', '\t').replace(/\(.*\)$/, '(rw,sync,wdelay,hide,nocrossmnt,secure,no_root_squash,no_all_squash)')).join('\n') + (lines.length ? '\n' : ''));
      return {};
    }
    if (cmd === 'systemctl' && args[args.length - 1] === 'nfs-server') {
      if (args[0] === 'is-enabled') return st.running ? { stdout: 'enabled\n' } : { code: 1, stdout: 'disabled\n' };
      if (args[0] === 'is-active') return st.running ? { stdout: 'active\n' } : { code: 3, stdout: 'inactive\n' };
      if (args[0] === 'enable') st.running = true;
      return {};
    }
    return undefined;
  });
}

describe('nfsServer role', () => {
  it('installs nfs-utils, makes the directories, writes the exports, reloads and starts the server (RHEL), then does nothing', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: false, running: false });
    const ctx = await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner);

    const before = lab.snapshot();
    const plan = await nfsServerRole.plan(ctx);
    expect(plan.map((c) => c.summary)).toEqual(['install nfs-utils', 'mkdir /software', 'create /etc/exports.d/fleet.exports', 'exportfs -ra', 'systemctl enable --now nfs-server']);
    expect(lab.snapshot()).toEqual(before);
    expect(mutating(sys.runner)).toEqual([]);

    sys.runner.clear();
    const res = await nfsServerRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(res.message).toBe('5 changes: install nfs-utils; mkdir /software; create /etc/exports.d/fleet.exports; exportfs -ra; systemctl enable --now nfs-server');
    expect(sys.runner.argvs).toEqual([
      ['rpm', '-q', 'nfs-utils'],
      ['systemctl', 'is-enabled', 'nfs-server'],
      ['systemctl', 'is-active', 'nfs-server'],
      ['dnf', 'install', '-y', 'nfs-utils'],
      ['exportfs', '-ra'],
      ['systemctl', 'enable', '--now', 'nfs-server'],
    ]);
    expect(lab.file('etc/exports.d/fleet.exports')).toBe(THOR_EXPORTS_FILE);
    expect(fs.statSync(path.join(lab.root, 'etc/exports.d/fleet.exports')).mode & 0o7777).toBe(0o644);
    expect(fs.statSync(path.join(lab.root, 'software')).isDirectory()).toBe(true);
    expect(fs.statSync(path.join(lab.root, 'software')).mode & 0o7777).toBe(0o755);
    expect(lab.exists('home/alice')).toBe(true); // an existing directory is left as it is

    sys.runner.clear();
    expect(await nfsServerRole.plan(ctx)).toEqual([]);
    expect(await nfsServerRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [], message: 'already as declared' });
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('uses nfs-kernel-server, dpkg-query and apt-get on Debian, and the same nfs-server unit', async () => {
    const lab = newLab('debian');
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: false, running: false });
    const ctx = await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner);
    expect((await nfsServerRole.apply(ctx)).status).toBe('changed');
    expect(sys.runner.argvs[0]).toEqual(['dpkg-query', '-W', '--showformat=${Package}\\t${Status}\\n', 'nfs-kernel-server']);
    expect(mutating(sys.runner)).toEqual([
      ['apt-get', 'install', '-y', 'nfs-kernel-server'],
      ['exportfs', '-ra'],
      ['systemctl', 'enable', '--now', 'nfs-server'],
    ]);
    expect(sys.runner.calls.find((c) => c.cmd === 'apt-get')!.opts.env).toEqual({ DEBIAN_FRONTEND: 'noninteractive' });
    expect(lab.file('etc/exports.d/fleet.exports')).toBe(THOR_EXPORTS_FILE);
    sys.runner.clear();
    expect(await nfsServerRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('reloads after a change to the file only; a running, enabled server is not touched', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: true, running: true });
    const ctx = await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner);
    await nfsServerRole.apply(ctx);
    expect(mutating(sys.runner)).toEqual([['exportfs', '-ra']]);

    lab.write('etc/exports.d/fleet.exports', '/home *(rw,no_root_squash)\n');
    sys.runner.clear();
    const res = await nfsServerRole.apply(ctx);
    expect(res.status).toBe('changed');
    expect(res.changes[0]!.diff).toContain('-/home *(rw,no_root_squash)\n');
    expect(mutating(sys.runner)).toEqual([['exportfs', '-ra']]);
    expect(lab.file('etc/exports.d/fleet.exports')).toBe(THOR_EXPORTS_FILE);
    expect(lab.file('var/lib/fleet-agent/backup/etc/exports.d/fleet.exports')).toBe('/home *(rw,no_root_squash)\n');
  });

  it('reports a failed exportfs with its command and reason, and reloads again on the next apply', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const st: NfsServerFake = { installed: true, running: false, exportfsFails: { code: 1, stderr: 'exportfs: /software does not support NFS export\n' } };
    nfsServerFake(lab, sys, st);
    const ctx = await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner);
    const res = await nfsServerRole.apply(ctx);
    expect(res.status).toBe('failed');
    expect(res.message).toMatch(/^exportfs -ra failed: exportfs -ra: exit 1: exportfs: \/software does not support NFS export; /);
    // the rest of the group is skipped: no server started on exports that did not load
    expect(mutating(sys.runner)).toEqual([['exportfs', '-ra']]);
    expect(res.changes.map((c) => c.summary)).toEqual(['mkdir /software', 'create /etc/exports.d/fleet.exports']);

    // The file is in place, but etab says the exports never loaded: reload again.
    delete st.exportfsFails;
    sys.runner.clear();
    const again = await nfsServerRole.apply(ctx);
    expect(again.status).toBe('changed');
    expect(mutating(sys.runner)).toEqual([
      ['exportfs', '-ra'],
      ['systemctl', 'enable', '--now', 'nfs-server'],
    ]);
    sys.runner.clear();
    expect((await nfsServerRole.apply(ctx)).status).toBe('ok');
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('removes its file (and reloads) when the exports are gone, and installs nothing for them', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: true, running: true });
    await nfsServerRole.apply(await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner));
    lab.write('etc/exports', '/srv/site 10.10.0.0/16(ro)\n');
    sys.runner.clear();
    const ctx = await ctxFor(lab, { nfsServer: { exports: [] } }, sys.runner);
    const res = await nfsServerRole.apply(ctx);
    expect(res).toMatchObject({ status: 'changed', message: '2 changes: delete /etc/exports.d/fleet.exports; exportfs -ra' });
    expect(sys.runner.argvs).toEqual([['exportfs', '-ra']]);
    expect(lab.exists('etc/exports.d/fleet.exports')).toBe(false);
    expect(lab.file('etc/exports')).toBe('/srv/site 10.10.0.0/16(ro)\n');
    expect(lab.exists('var/lib/nfs/etab') && lab.file('var/lib/nfs/etab')).toBe('');
    sys.runner.clear();
    expect(await nfsServerRole.apply(ctx)).toMatchObject({ status: 'ok', changes: [] });
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('fails on an export path that is a file, and writes no exports line for it', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: true, running: true });
    lab.write('software', 'not a directory\n');
    const res = await nfsServerRole.apply(await ctxFor(lab, { nfsServer: THOR_EXPORTS }, sys.runner));
    expect(res).toMatchObject({ status: 'failed', message: '/software exists and is not a directory: not exported' });
    expect(lab.exists('etc/exports.d/fleet.exports')).toBe(false);
    expect(mutating(sys.runner)).toEqual([]);
  });
});

// ------------------------------------------------------------------ plan, dry run, driver

describe('plan and runRoles', () => {
  const FILE_ROLES: RolesSpec = {
    repos: SEED_REPOS!,
    hosts: { enabled: true },
    chrony: { servers: ['10.10.0.1'], makestep: '1.0 3' },
    nfs: NFS!,
    users: { groups: [{ name: 'hpc', gid: 3000 }], users: [{ name: 'alice', uid: 2001, gid: 3000, shell: '/bin/bash', home: '/home/alice', sshKeys: [KEY_A1] }] },
  };

  it('plan shows the diffs and writes nothing, runs nothing', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    const ctx = await ctxFor(lab, FILE_ROLES, sys.runner);
    const before = lab.snapshot();
    const plan = await hostsRole.plan(ctx);
    expect(plan).toEqual([
      {
        path: '/etc/hosts',
        action: 'update',
        summary: 'update /etc/hosts',
        diff: `--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1,2 +1,10 @@\n${STOCK_HOSTS.split('\n').filter((l) => l).map((l) => ` ${l}\n`).join('')}+\n${HOSTS_BLOCK.split('\n').filter((l) => l).map((l) => `+${l}\n`).join('')}`,
      },
    ]);
    const chrony = await chronyRole.plan(ctx);
    expect(chrony[0]!.diff).toContain('-pool 2.almalinux.pool.ntp.org iburst\n');
    expect(chrony[0]!.diff).toContain('+server 10.10.0.1 iburst\n');
    expect(chrony.slice(1).map((c) => c.command)).toEqual([
      ['systemctl', 'restart', 'chronyd'],
      ['systemctl', 'enable', '--now', 'chronyd'],
    ]);
    for (const r of [reposRole, nfsRole, usersRole]) expect((await r.plan(ctx)).length).toBeGreaterThan(0);
    expect(lab.snapshot()).toEqual(before);
    expect(mutating(sys.runner)).toEqual([]);
  });

  it('runs the roles in the fixed order, goes on after a failure, and a dry run changes nothing', async () => {
    const lab = newLab();
    const sys = fakeSystem(lab);
    lab.rm('etc/hosts');
    fs.symlinkSync('/etc/hosts', path.join(lab.root, 'etc/hosts'));
    const ctx = await ctxFor(lab, FILE_ROLES, sys.runner);
    const before = lab.snapshot();

    const dry = await runRoles([usersRole, nfsRole, chronyRole, hostsRole, reposRole], ctx, { dryRun: true });
    expect(dry.map((r) => [r.role, r.status, r.dryRun])).toEqual([
      ['repos', 'changed', true],
      ['hosts', 'failed', true],
      ['chrony', 'changed', true],
      ['users', 'changed', true],
      ['nfs', 'changed', true],
    ]);
    expect(dry[2]!.message).toMatch(/^would make 3 changes: update \/etc\/chrony.conf; systemctl restart chronyd; systemctl enable --now chronyd/);
    expect(lab.snapshot()).toEqual(before);
    expect(mutating(sys.runner)).toEqual([]);

    const results = await runRoles(rolesFor(FILE_ROLES).reverse(), ctx);
    expect(results.map((r) => [r.role, r.status])).toEqual([
      ['repos', 'changed'],
      ['hosts', 'failed'],
      ['chrony', 'changed'],
      ['users', 'changed'],
      ['nfs', 'changed'],
    ]);
    expect(results[1]!.message).toMatch(/symbolic link out of the root/);
    expect(mutating(sys.runner).map((a) => a[0])).toEqual(['dnf', 'systemctl', 'systemctl', 'groupadd', 'useradd', 'mount', 'mount', 'mount']);

    sys.runner.clear();
    const again = await runRoles(rolesFor(FILE_ROLES), ctx);
    expect(again.map((r) => r.status)).toEqual(['ok', 'failed', 'changed', 'ok', 'ok']); // chrony: enable again (the fake systemctl makes no link)
    expect(mutating(sys.runner)).toEqual([['systemctl', 'enable', '--now', 'chronyd']]);
  });

  it('orders an NFS server after users and before NFS mounts, as the server does', () => {
    const spec: RolesSpec = { gpu: { vendor: 'nvidia', packages: [], blacklistNouveau: true }, nfs: NFS!, nfsServer: THOR_EXPORTS!, users: { groups: [], users: [] }, hosts: { enabled: true } };
    expect(rolesFor(spec).map((r) => r.name)).toEqual(['hosts', 'users', 'nfsServer', 'nfs', 'gpu']);
    expect([...ROLE_ORDER]).toEqual([...SERVER_ROLE_ORDER]);
  });

  it('turns a role that throws into a failed result', async () => {
    const lab = newLab();
    const ctx = await ctxFor(lab, {}, new RecordingRunner());
    const boom = { name: 'boom', plan: async () => [], apply: async () => Promise.reject(new Error('kaput')) };
    const res = await runRoles([boom, hostsRole], ctx);
    expect(res.map((r) => [r.role, r.status])).toEqual([
      ['hosts', 'ok'],
      ['boom', 'failed'],
    ]);
    expect(res[1]!.message).toBe('kaput');
  });
});

describe('context', () => {
  it('detects the OS family from os-release; another is unknown, not refused', async () => {
    expect(osFamilyOf(ALMA_OS_RELEASE)).toBe('rhel');
    expect(osFamilyOf(DEBIAN_OS_RELEASE)).toBe('debian');
    expect(osFamilyOf('ID=ubuntu\nID_LIKE=debian\n')).toBe('debian');
    expect(osFamilyOf('ID="rocky"\nID_LIKE="rhel centos fedora"\n')).toBe('rhel');
    expect(osFamilyOf('ID=alpine\n')).toBeUndefined();
    const lab = newLab();
    expect(await detectOs(lab.root)).toEqual({ family: 'rhel', source: 'ID=almalinux ID_LIKE="rhel centos fedora" in /etc/os-release' });
    lab.write('etc/os-release', 'ID=alpine\n');
    const ctx = await makeRoleContext({ root: lab.root, settings: { roles: {}, cluster: CLUSTER } });
    expect([ctx.osFamily, ctx.osSource]).toEqual(['unknown', 'ID=alpine in /etc/os-release']);
    lab.rm('etc/os-release');
    lab.write('usr/lib/os-release', 'NAME=Plan 9\n');
    expect(await detectOs(lab.root)).toEqual({ family: 'unknown', source: 'no ID in /usr/lib/os-release' });
    lab.rm('usr/lib/os-release');
    expect(await detectOs(lab.root)).toEqual({ family: 'unknown', source: 'no /etc/os-release or /usr/lib/os-release' });
  });

  it('on an unknown OS family applies the family-neutral roles and reports the others skipped, naming the family', async () => {
    const lab = newLab();
    lab.write('etc/os-release', 'NAME="Plan 9 from Bell Labs"\nID=plan9\n');
    const sys = fakeSystem(lab);
    nfsServerFake(lab, sys, { installed: false, running: false });
    const roles: RolesSpec = {
      repos: SEED_REPOS!,
      hosts: { enabled: true },
      chrony: { servers: ['10.10.0.1'], makestep: '1.0 3' },
      users: { groups: [{ name: 'hpc', gid: 3000 }], users: [{ name: 'alice', uid: 2001, gid: 3000, shell: '/bin/bash', home: '/home/alice', sshKeys: [KEY_A1] }] },
      nfsServer: THOR_EXPORTS!,
      nfs: NFS!,
      infiniband: { packages: ['@infiniband'] },
      gpu: { vendor: 'nvidia', packages: ['nvidia-driver'], blacklistNouveau: true },
    };
    const ctx = await ctxFor(lab, roles, sys.runner);
    expect(ctx.osFamily).toBe('unknown');
    const why = (role: string): string => `OS family unknown (ID=plan9 in /etc/os-release); ${role} needs rhel or debian`;

    const before = lab.snapshot();
    const dry = await runRoles(rolesFor(roles), ctx, { dryRun: true });
    expect(dry.map((r) => [r.role, r.status, r.dryRun])).toEqual([
      ['repos', 'skipped', true],
      ['hosts', 'changed', true],
      ['chrony', 'skipped', true],
      ['users', 'changed', true],
      ['nfsServer', 'skipped', true],
      ['nfs', 'changed', true],
      ['infiniband', 'skipped', true],
      ['gpu', 'skipped', true],
    ]);
    expect(lab.snapshot()).toEqual(before);
    expect(sys.runner.argvs).toEqual([]);

    const results = await runRoles(rolesFor(roles), ctx);
    expect(results.map((r) => [r.role, r.status, r.status === 'skipped' ? r.message : ''])).toEqual([
      ['repos', 'skipped', why('repos')],
      ['hosts', 'changed', ''],
      ['chrony', 'skipped', why('chrony')],
      ['users', 'changed', ''],
      ['nfsServer', 'skipped', why('nfsServer')],
      ['nfs', 'changed', ''],
      ['infiniband', 'skipped', why('infiniband')],
      ['gpu', 'skipped', why('gpu')],
    ]);
    // Only the neutral roles ran a command or wrote a file; no package manager was asked anything.
    expect(sys.runner.argvs.map((a) => a[0])).toEqual(['groupadd', 'useradd', 'mount', 'mount', 'mount']);
    expect(lab.file('etc/hosts')).toContain('10.10.1.1  thor.cluster.local thor\n');
    expect(lab.file('etc/yum.repos.d/almalinux-baseos.repo')).toBe(ALMA_REPOS['almalinux-baseos.repo']);
    expect(lab.file('etc/chrony.conf')).toBe(STOCK_CHRONY);
    expect(lab.exists('etc/exports.d/fleet.exports')).toBe(false);
    expect(lab.exists('etc/modprobe.d/fleet-blacklist-nouveau.conf')).toBe(false);

    // A role called directly says the same; plan has nothing to do.
    expect(await gpuRole.apply(ctx)).toMatchObject({ status: 'skipped', message: why('gpu'), changes: [] });
    expect(await chronyRole.check!(ctx)).toMatchObject({ status: 'skipped', dryRun: true });
    expect(await reposRole.plan(ctx)).toEqual([]);

    // On the wire: OK, with the reason after "skipped: ".
    const report = applyReport('v1', results, 0, 1);
    expect(report.results.filter((r) => r.role === 'gpu')).toEqual([{ role: 'gpu', outcome: RoleOutcome.ROLE_OUTCOME_OK, message: `skipped: ${why('gpu')}`, durationMs: expect.any(Number) }]);
    expect(report.results.find((r) => r.role === 'hosts')!.outcome).toBe(RoleOutcome.ROLE_OUTCOME_CHANGED);
  });

  it('skips a role written for other families on a known one, and a role without families runs everywhere', async () => {
    const lab = newLab('debian');
    const ctx = await ctxFor(lab, {}, new RecordingRunner());
    const rhelOnly = { name: 'rhel-only', families: ['rhel'] as const, plan: async () => [], apply: async () => Promise.reject(new Error('must not run')) };
    const anywhere = { name: 'anywhere', plan: async () => [], apply: async () => ({ role: 'anywhere', status: 'ok' as const, message: '', durationMs: 0, changes: [] }) };
    const res = await runRoles([rhelOnly, anywhere], ctx);
    expect(res.map((r) => [r.role, r.status, r.message])).toEqual([
      ['rhel-only', 'skipped', 'OS family debian; rhel-only needs rhel'],
      ['anywhere', 'ok', ''],
    ]);
  });

  it('builds cluster facts from the cluster spec', () => {
    const facts = clusterFacts({
      cluster: { name: 'lab', domain: 'cluster.local', timezone: 'UTC', managementAddress: '10.10.0.1', managementName: 'odin' },
      nodes: [
        { name: 'thor', profile: 'p', ip: '10.10.1.1', macs: [], pet: false },
        { name: 'nameless', profile: 'p', macs: [], pet: false },
      ],
    });
    expect(facts).toEqual({ domain: 'cluster.local', managementAddress: '10.10.0.1', managementName: 'odin', hosts: [{ name: 'odin', address: '10.10.0.1' }, { name: 'thor', address: '10.10.1.1' }] });
  });
});

describe('unifiedDiff', () => {
  it('shows additions, removals and context with hunk headers', () => {
    const a = 'a\nb\nc\nd\ne\nf\ng\nh\n';
    const b = 'a\nb\nc\nD\ne\nf\ng\nh\ni\n';
    expect(unifiedDiff('/x', a, b)).toBe('--- a/x\n+++ b/x\n@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n');
    expect(unifiedDiff('/x', undefined, 'new\n')).toBe('--- /dev/null\n+++ b/x\n@@ -0,0 +1,1 @@\n+new\n');
    expect(unifiedDiff('/x', 'same\n', 'same\n')).toBe('');
  });
});

import { describe, expect, it } from 'vitest';
import {
  checkAbsolutePath,
  checkCryptHash,
  checkHttpUrl,
  checkKernelArg,
  checkListen,
  checkNfsSource,
  checkNodeName,
  checkPackageName,
  checkPartitionLine,
  checkSshKey,
  checkTimezone,
  cidrContains,
  intToIp,
  ipToInt,
  isDomain,
  isIPv4,
  normalizeMac,
  parseCidr,
  show,
} from '../../../common/patterns.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqpyyh44Hz3gvhISaIE9yJ/ao8fBLNo7qwPJcYjQdIl';

describe('config patterns (shared with the netboot renderers)', () => {
  it('node names are lower-case RFC 1123 labels', () => {
    for (const ok of ['odin', 'valkyrie01', 'n-1', '0', 'a'.repeat(63)]) expect(checkNodeName(ok), ok).toBeUndefined();
    for (const bad of ['x;reboot', 'Thor', '-a', 'a-', 'a.b', '', 'a b', 'a'.repeat(64), 'a\nb', 'a_b']) expect(checkNodeName(bad), bad).toBeDefined();
  });

  it('domains are dot-separated labels', () => {
    expect(isDomain('cluster.local')).toBe(true);
    expect(isDomain('cluster..local')).toBe(false);
    expect(isDomain('cluster.local;')).toBe(false);
  });

  it('kernel args are single safe tokens', () => {
    for (const ok of ['nomodeset', 'modprobe.blacklist=nouveau', 'console=ttyS0,115200n8', 'inst.ks=http://10.10.0.1/ks.cfg', 'crashkernel=1G-4G:192M']) {
      expect(checkKernelArg(ok), ok).toBeUndefined();
    }
    for (const bad of ['a b', 'a\nb', 'a"b', "a'b", 'a;b', 'a$b', 'a`b', 'a&b', 'a|b', 'a#b', '', 'a\\b']) expect(checkKernelArg(bad), bad).toBeDefined();
  });

  it('package names: plain, groups, module streams; no option injection', () => {
    for (const ok of ['vim', 'gcc-c++', '@core', '@^minimal-environment', '@nodejs:20', 'python3.11']) expect(checkPackageName(ok), ok).toBeUndefined();
    for (const bad of ['-y', 'a b', 'a;b', 'vim:1', '@', '$(id)']) expect(checkPackageName(bad), bad).toBeDefined();
  });

  it('URLs are http(s) without characters iPXE or a shell would interpret', () => {
    expect(checkHttpUrl('http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os')).toBeUndefined();
    expect(checkHttpUrl('https://mirror.example.org:8443/a?b=c')).toBeUndefined();
    for (const bad of ['ftp://x/y', 'http://x/${next-server}', 'http://x/a b', 'http://x/"', 'http:///path', 'http://u:p@x/', 'file:///etc/passwd', 'http://x/`id`']) {
      expect(checkHttpUrl(bad), bad).toBeDefined();
    }
  });

  it('ssh keys are TYPE BASE64 [comment] on one line', () => {
    expect(checkSshKey(KEY)).toBeUndefined();
    expect(checkSshKey(`${KEY} root@odin.cluster.local`)).toBeUndefined();
    expect(checkSshKey(`${KEY}\nssh-rsa AAAA`)).toBe('ssh key must be on one line');
    expect(checkSshKey(`${KEY} $(reboot)`)).toMatch(/comment/);
    expect(checkSshKey('ssh-foo AAAAC3NzaC1lZDI1NTE5AAAA')).toMatch(/type/);
    expect(checkSshKey('ssh-ed25519 not*base64*at*all*!!')).toBe('ssh key data is not base64');
  });

  it('crypt hashes', () => {
    expect(checkCryptHash('$6$7zvrwimYcypA8JWc$5GWYVF7zrI5eorsPN8IUT1n/Gmjpkic7h2cCbFVxbkqJeG0/kmJsYw6EN9oX3NQ34duwW7qAmOI13Y/0v5oHn.')).toBeUndefined();
    expect(checkCryptHash('$6$rounds=5000$salt$hash')).toBeUndefined();
    expect(checkCryptHash('$5$salt$hash')).toBeUndefined();
    for (const bad of ['root', '$6$', '$6$salt', '$1$salt$hash', '$6$salt$ha sh', '$6$salt$hash\n']) expect(checkCryptHash(bad), bad).toBeDefined();
  });

  it('paths and NFS sources', () => {
    expect(checkAbsolutePath('/home/myuser')).toBeUndefined();
    expect(checkAbsolutePath('home')).toBeDefined();
    expect(checkAbsolutePath('/a/../etc')).toBeDefined();
    expect(checkAbsolutePath('/a b')).toBeDefined();
    expect(checkNfsSource('thor:/home')).toBeUndefined();
    expect(checkNfsSource('10.10.1.1:/software')).toBeUndefined();
    expect(checkNfsSource('thor:home')).toBeDefined();
    expect(checkNfsSource(':/home')).toBeDefined();
    expect(checkNfsSource('th;or:/home')).toBeDefined();
  });

  it('partitioning lines are kickstart storage commands only', () => {
    expect(checkPartitionLine('autopart --type=plain --fstype=ext4 --nohome')).toBeUndefined();
    expect(checkPartitionLine('%post')).toBeDefined();
    expect(checkPartitionLine('part / --size=1 ; reboot')).toBeDefined();
    expect(checkPartitionLine('reboot')).toBeDefined();
  });

  it('timezones', () => {
    expect(checkTimezone('Europe/Brussels')).toBeUndefined();
    expect(checkTimezone('America/Argentina/Buenos_Aires')).toBeUndefined();
    expect(checkTimezone('UTC')).toBeUndefined();
    expect(checkTimezone('utc')).toBe('timezone utc must be spelt UTC');
    expect(checkTimezone('Europe/Brusels')).toMatch(/^unknown timezone/);
    expect(checkTimezone('../etc/passwd')).toMatch(/is not a timezone name/);
  });

  it('MACs are normalised to lower-case colon form; broadcast and multicast are refused', () => {
    expect(normalizeMac('08:00:27:18:68:BC')).toBe('08:00:27:18:68:bc');
    expect(normalizeMac('08-00-27-18-68-BC')).toBe('08:00:27:18:68:bc');
    for (const bad of ['08:00:27:18:68', '08:00:27:18:68:bc:00', '08:00-27:18:68:bc', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '00:00:00:00:00:00', 'zz:00:27:18:68:bc']) {
      expect(normalizeMac(bad), bad).toBeUndefined();
    }
  });

  it('IPv4 and CIDR', () => {
    expect(isIPv4('10.10.0.1')).toBe(true);
    for (const bad of ['10.10.0', '10.10.0.256', '010.10.0.1', '10.10.0.1 ', '1e1.0.0.1']) expect(isIPv4(bad), bad).toBe(false);
    expect(intToIp(ipToInt('10.10.254.254'))).toBe('10.10.254.254');
    expect(ipToInt('255.255.255.255')).toBe(2 ** 32 - 1);
    const c = parseCidr('10.10.0.0/16');
    if (typeof c === 'string') throw new Error(c);
    expect(c).toEqual({ address: '10.10.0.0', prefix: 16, first: ipToInt('10.10.0.0'), last: ipToInt('10.10.255.255') });
    expect(cidrContains(c, '10.10.255.255')).toBe(true);
    expect(cidrContains(c, '10.11.0.0')).toBe(false);
    expect(parseCidr('0.0.0.0/0')).toMatchObject({ first: 0, last: 2 ** 32 - 1 });
    expect(parseCidr('10.10.0.1/16')).toBe('10.10.0.1/16 has host bits set; did you mean 10.10.0.0/16?');
    expect(typeof parseCidr('10.10.0.0')).toBe('string');
  });

  it('listen addresses', () => {
    for (const ok of ['0.0.0.0:8080', '[::]:443', 'odin.cluster.local:80', '*:9000']) expect(checkListen(ok), ok).toBeUndefined();
    for (const bad of ['8080', '0.0.0.0:0', '0.0.0.0:65536', 'a b:80', '0.0.0.0:']) expect(checkListen(bad), bad).toBeDefined();
  });

  it('show quotes values with odd characters and truncates long ones', () => {
    expect(show('10.10.3.1')).toBe('10.10.3.1');
    expect(show('x;reboot')).toBe('"x;reboot"');
    expect(show('a\nb')).toBe('"a\\nb"');
    expect(show('a'.repeat(100))).toBe(JSON.stringify(`${'a'.repeat(80)}…`));
  });
});

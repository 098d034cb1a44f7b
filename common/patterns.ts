/**
 * Strict value patterns for everything fleet.yaml can put into a rendered
 * artefact (iPXE scripts, kickstarts, dnsmasq config, agent role files).
 *
 * DESIGN.md §4: a value that does not match is an error, never escaped into a
 * script. The config parser rejects bad values up front; the netboot
 * renderers re-check with the same functions right before rendering.
 *
 * Everything here is pure and allocation-light; no I/O.
 */

/** RFC 1123 host label: letters, digits, '-', 1-63 chars, no leading/trailing '-'. Case-insensitive. */
export const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A fleet node name: an RFC 1123 label in lower case (node names are identities; no case aliases). */
export const NODE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Profile and credential-set names: also used in file names. */
export const OBJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** Kernel command-line token: no whitespace, quotes, ';', '$', backticks, '&', '|', '#', '<', '>', '\\'. */
export const KERNEL_ARG = /^[A-Za-z0-9_][A-Za-z0-9_.,:=/+@-]*$/;
/** Package, group (@core, @^minimal-environment) or module stream (@nodejs:20); no leading '-' (option injection). */
export const PACKAGE_NAME = /^(?:[A-Za-z0-9][A-Za-z0-9._+-]*|@\^?[A-Za-z0-9][A-Za-z0-9._+-]*(?::[A-Za-z0-9][A-Za-z0-9._+-]*)?)$/;
/** Yum/dnf repository id. */
export const REPO_NAME = /^[A-Za-z0-9_.-]+$/;
/** File-name glob of a repo file to remove from /etc/yum.repos.d (no '/'). */
export const REPO_FILE_GLOB = /^[A-Za-z0-9_.*?-]+$/;
/** POSIX portable user/group name as accepted by shadow-utils (lower case). */
export const POSIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Linux interface name (IFNAMSIZ 16 incl. NUL). */
export const INTERFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;
/** Environment variable name. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** BMC user name. */
export const BMC_USERNAME = /^[A-Za-z0-9._@+-]{1,64}$/;
/** Mount options: comma list, no whitespace. */
export const MOUNT_OPTIONS = /^[A-Za-z0-9_=.,:/+-]+$/;
/** chrony makestep: "THRESHOLD LIMIT", e.g. "1.0 3" (limit -1 = always). */
export const CHRONY_MAKESTEP = /^\d+(?:\.\d+)? -?\d+$/;
/** Lower-case colon MAC, the canonical form fleet stores (and the agent reports). */
/** A hardware serial number as SMBIOS, iPXE and fleet.yaml give it: letters, digits, space and ._:/+- (at most 64). */
export const SERIAL_NUMBER = /^[A-Za-z0-9 ._:/+-]{1,64}$/;
export const MAC_CANONICAL = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
/** A MAC as people and firmware write it: six hex pairs, any case, all separated by ':' or all by '-'. */
export const MAC_INPUT = /^[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}$/;
/** SSH public key types accepted in authorized_keys. */
export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;
/** SSH key comment: conservative (it lands in a heredoc). */
const SSH_COMMENT = /^[A-Za-z0-9@._+:=,/-]+(?: [A-Za-z0-9@._+:=,/-]+)*$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Kickstart partitioning commands allowed in a profile's `partitioning` lines. */
export const PARTITION_COMMANDS = [
  'autopart',
  'bootloader',
  'btrfs',
  'clearpart',
  'ignoredisk',
  'logvol',
  'part',
  'partition',
  'raid',
  'reqpart',
  'volgroup',
  'zerombr',
] as const;
const PARTITION_ARGS = /^[A-Za-z0-9 _=./:,+-]*$/;

/** Returns a short printable rendering of a value for error messages (JSON-quoted when it holds odd characters, truncated). */
export function show(value: string, max = 80): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return /^[A-Za-z0-9_.,:=/+@\-[\]*]+$/.test(cut) ? cut : JSON.stringify(cut);
}

/** Describes why `s` has forbidden characters, or undefined. Used to build clear messages. */
function badChars(s: string): string | undefined {
  if (s.length === 0) return 'is empty';
  if (/[\r\n]/.test(s)) return 'contains a newline';
  if (/\s/.test(s)) return 'contains whitespace';
  if (/["'`]/.test(s)) return 'contains a quote or backtick';
  if (/[;$&|<>\\]/.test(s)) return `contains a shell metacharacter (${s.match(/[;$&|<>\\]/)?.[0]})`;
  if (/[\x00-\x1f\x7f]/.test(s)) return 'contains a control character';
  return undefined;
}

// ---------------------------------------------------------------- names

/** Checks a fleet node name; returns a problem description or undefined. */
export function checkNodeName(name: string): string | undefined {
  if (NODE_NAME.test(name)) return undefined;
  if (name.length > 63) return `node name ${show(name)} is longer than 63 characters`;
  if (HOST_LABEL.test(name)) return `node name ${show(name)} must be lower case`;
  return `${show(name)} is not a valid node name: use an RFC 1123 host label (letters, digits and '-', not starting or ending with '-', no dots)`;
}

/** A DNS domain (cluster.local): dot-separated RFC 1123 labels, at most 253 chars. */
export function isDomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every((l) => HOST_LABEL.test(l));
}

/** A host name: single label or FQDN. */
export function isHostname(s: string): boolean {
  return isDomain(s);
}

export function checkKernelArg(arg: string): string | undefined {
  if (KERNEL_ARG.test(arg)) return undefined;
  const why = badChars(arg) ?? 'has characters outside [A-Za-z0-9_.,:=/+@-]';
  return `kernel argument ${show(arg)} ${why}; each argument must be a single token`;
}

export function checkPackageName(name: string): string | undefined {
  if (PACKAGE_NAME.test(name)) return undefined;
  return `${show(name)} is not a valid package name (letters, digits and ._+-; groups as @name, module streams as @name:stream)`;
}

export function checkRepoName(name: string): string | undefined {
  if (REPO_NAME.test(name)) return undefined;
  return `${show(name)} is not a valid repository name (letters, digits and _.-)`;
}

/** http(s) URL without whitespace, quotes or characters that mean something to iPXE/shells. */
export function checkHttpUrl(url: string): string | undefined {
  const why = badChars(url);
  if (why) return `URL ${show(url)} ${why}`;
  if (/[{}^|\\<>$`]/.test(url)) return `URL ${show(url)} contains a forbidden character`;
  if (!/^https?:\/\//.test(url)) return `URL ${show(url)} must start with http:// or https://`;
  if (!/^https?:\/\/[A-Za-z0-9[]/.test(url)) return `URL ${show(url)} has no host`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${show(url)} is not a valid URL`;
  }
  if (!u.hostname) return `URL ${show(url)} has no host`;
  if (u.username || u.password) return `URL ${show(url)} must not contain credentials`;
  return undefined;
}

/** One `TYPE BASE64 [comment]` line. */
export function checkSshKey(key: string): string | undefined {
  if (/[\r\n]/.test(key)) return 'ssh key must be on one line';
  const parts = key.split(' ');
  const [type, blob, ...rest] = parts;
  if (!type || !blob) return `ssh key must look like "TYPE BASE64 [comment]"`;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    return `ssh key type ${show(type)} is not one of ${SSH_KEY_TYPES.join(', ')}`;
  }
  if (!BASE64.test(blob) || blob.length < 16) return 'ssh key data is not base64';
  const comment = rest.join(' ');
  if (comment && !SSH_COMMENT.test(comment)) return `ssh key comment ${show(comment)} has forbidden characters`;
  return undefined;
}

/** crypt(3) hash: $6$ (SHA-512), $5$ (SHA-256), $y$ (yescrypt), $gy$, $2b$ (bcrypt), $7$ (scrypt). MD5 and DES are refused. */
export function checkCryptHash(hash: string): string | undefined {
  if (/^\$1\$/.test(hash)) return 'root password hash uses MD5 crypt ($1$), which is not accepted; use $6$ or $y$';
  const m = /^\$(6|5|y|gy|2[aby]|7)\$([A-Za-z0-9./$=,]+)$/.exec(hash);
  if (!m || !m[2]?.includes('$')) {
    return 'root password hash must be a crypt(3) string such as $6$SALT$HASH (SHA-512) or $y$...';
  }
  return undefined;
}

export function checkPosixName(name: string, what = 'user name'): string | undefined {
  if (POSIX_NAME.test(name)) return undefined;
  return `${show(name)} is not a valid ${what} (POSIX: ^[a-z_][a-z0-9_-]*$, at most 32 chars)`;
}

/** uid/gid: integer in 1..2^31-1. */
export function checkId(n: number, what = 'id'): string | undefined {
  if (Number.isInteger(n) && n >= 1 && n <= 2 ** 31 - 1) return undefined;
  return `${what} ${n} must be an integer between 1 and ${2 ** 31 - 1}`;
}

/** Absolute POSIX path, no '..' segment, conservative characters. */
export function checkAbsolutePath(p: string): string | undefined {
  if (!p.startsWith('/')) return `${show(p)} must be an absolute path`;
  if (!/^[A-Za-z0-9_./+@-]+$/.test(p)) return `path ${show(p)} has forbidden characters`;
  if (p.split('/').includes('..')) return `path ${show(p)} must not contain '..'`;
  return undefined;
}

/** NFS source `host:/path` (host: name or IPv4). */
export function checkNfsSource(s: string): string | undefined {
  const i = s.indexOf(':');
  if (i <= 0) return `NFS source ${show(s)} must look like host:/path`;
  const host = s.slice(0, i);
  const path = s.slice(i + 1);
  if (!isHostname(host) && !isIPv4(host)) return `NFS source ${show(s)} has an invalid host`;
  const bad = checkAbsolutePath(path);
  return bad ? `NFS source ${show(s)}: ${bad}` : undefined;
}

/** A plain (non-absolute allowed) file path for local files fleet reads: no NUL/newlines. */
export function checkFilePath(p: string): string | undefined {
  if (p.length === 0) return 'path is empty';
  if (/[\x00-\x1f\x7f]/.test(p)) return 'path contains a control character or newline';
  return undefined;
}

export function checkPartitionLine(line: string): string | undefined {
  const cmd = line.split(' ')[0] ?? '';
  if (!(PARTITION_COMMANDS as readonly string[]).includes(cmd)) {
    return `partitioning line must start with one of ${PARTITION_COMMANDS.join(', ')}`;
  }
  if (!PARTITION_ARGS.test(line)) return `partitioning line ${show(line)} has forbidden characters`;
  return undefined;
}

/** checkTimezone's answers (ICU's lookup is the cost of every kickstart render); bounded, so no input grows it without end. */
const timezoneChecked = new Map<string, string | undefined>();

/** IANA timezone name format (Area/Location, UTC, Etc/GMT+5) and known to this Node's ICU. */
export function checkTimezone(tz: string): string | undefined {
  if (timezoneChecked.has(tz)) return timezoneChecked.get(tz);
  const answer = checkTimezoneUncached(tz);
  if (timezoneChecked.size < 256) timezoneChecked.set(tz, answer);
  return answer;
}

function checkTimezoneUncached(tz: string): string | undefined {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}$/.test(tz)) {
    return `${show(tz)} is not a timezone name (expected an IANA name such as Europe/Brussels or UTC)`;
  }
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return `unknown timezone ${show(tz)} (expected an IANA name such as Europe/Brussels)`;
  }
  if (resolved !== tz && resolved.toLowerCase() === tz.toLowerCase()) {
    return `timezone ${show(tz)} must be spelt ${resolved}`;
  }
  return undefined;
}

// ---------------------------------------------------------------- MAC

/** Accepts aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff (any case); returns lower-case colon form or undefined. */
export function normalizeMac(s: string): string | undefined {
  if (!MAC_INPUT.test(s)) return undefined;
  const mac = s.toLowerCase().replace(/-/g, ':');
  if (mac === '00:00:00:00:00:00' || mac === 'ff:ff:ff:ff:ff:ff') return undefined;
  // multicast bit set: not a NIC address
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return undefined;
  return mac;
}

export function isMac(s: string): boolean {
  return normalizeMac(s) !== undefined;
}

// ---------------------------------------------------------------- IPv4

/** Strict dotted quad: four decimal octets 0-255, no leading zeros. */
export function isIPv4(s: string): boolean {
  return /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(s);
}

/** IPv4 to unsigned 32-bit integer; call only on isIPv4 strings. */
export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  /** Network address as given (host bits zero). */
  address: string;
  prefix: number;
  /** First and last address of the block (network and broadcast), as integers. */
  first: number;
  last: number;
}

/** Parses a.b.c.d/n with host bits zero; returns the block or a problem description. */
export function parseCidr(s: string): Cidr | string {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1]!) || Number(m[2]) > 32) return `${show(s)} is not a valid IPv4 CIDR (expected e.g. 10.10.0.0/16)`;
  const prefix = Number(m[2]);
  const ip = ipToInt(m[1]!);
  const size = 2 ** (32 - prefix);
  const first = Math.floor(ip / size) * size;
  if (first !== ip) return `${s} has host bits set; did you mean ${intToIp(first)}/${prefix}?`;
  return { address: m[1]!, prefix, first, last: first + size - 1 };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= cidr.first && n <= cidr.last;
}

/** "ADDR:PORT" where ADDR is IPv4, [IPv6], a host name or '*'; returns a problem or undefined. */
export function checkListen(s: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return `${show(s)} must look like ADDR:PORT, e.g. 0.0.0.0:8080`;
  const host = m[1]!;
  if (!host.startsWith('[') && host !== '*' && !isIPv4(host) && !isHostname(host)) return `${show(s)} has an invalid address`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port ${port} is outside 1-65535`;
  return undefined;
}

export function checkPort(n: number): string | undefined {
  if (Number.isInteger(n) && n >= 1 && n <= 65535) return undefined;
  return `port ${n} must be an integer between 1 and 65535`;
}

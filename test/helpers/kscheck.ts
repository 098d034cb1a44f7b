/**
 * A small RHEL 9 kickstart syntax checker for the tests: a stand-in for
 * pykickstart's `ksvalidator -v RHEL9`, which is not available here (no PyPI
 * access, and Debian 12 does not package pykickstart). See docs/netboot.md.
 *
 * It follows pykickstart's parser where fleet's kickstarts depend on it:
 * - command lines are split like Python's shlex.split(line, comments=True):
 *   double and single quotes, backslash escapes, and '#' outside quotes
 *   starts a comment; an unclosed quote is an error;
 * - the first word must be a known RHEL 9 command; options are checked
 *   against that command's option list (`--opt=value` or `--opt value` for
 *   options that take a value, bare `--opt` for flags), with positional
 *   argument counts and a few enumerated values;
 * - single-use commands may appear once; mutually exclusive commands
 *   (reboot/poweroff/halt/shutdown, text/graphical/cmdline, autopart and
 *   manual partitioning) are refused together;
 * - sections %packages, %pre, %pre-install, %post, %onerror, %traceback and
 *   %addon must be closed by %end, cannot nest, and take only their options
 *   (--interpreter, --log, --erroronfail; --nochroot for %post only);
 * - %packages lines are package, group (@g, @^env), module (@m:s/p) or
 *   exclusion (-pkg) specs;
 * - optionally (`shell: true`), script bodies whose interpreter is a POSIX
 *   shell are checked with `bash -n`.
 *
 * The option lists are from pykickstart's RHEL9 handler (F34+ syntax) as far
 * as fleet's templates and profile partitioning lines need them; commands
 * RHEL 9 dropped (auth/authconfig, btrfs, install, method, device, ...) are
 * unknown here too.
 */
import { spawnSync } from 'node:child_process';

export interface KsIssue {
  line: number;
  message: string;
}

type OptKind = 'flag' | 'value';

interface CommandSpec {
  /** Option name (with --) to kind; aliases listed separately. */
  opts: Record<string, OptKind>;
  /** Allowed number of positional arguments [min, max]. */
  positional: [number, number];
  /** May appear only once. */
  single: boolean;
  /** Allowed values of some value options. */
  values?: Record<string, readonly string[]>;
  /** Extra per-line check. */
  check?: (opts: Map<string, string | true>, positional: string[]) => string | undefined;
}

const f = 'flag' as const;
const v = 'value' as const;

const LUKS: Record<string, OptKind> = {
  '--encrypted': f,
  '--passphrase': v,
  '--escrowcert': v,
  '--backuppassphrase': f,
  '--cipher': v,
  '--luks-version': v,
  '--pbkdf': v,
  '--pbkdf-memory': v,
  '--pbkdf-time': v,
  '--pbkdf-iterations': v,
};

const DISPLAY: CommandSpec = { opts: { '--non-interactive': f }, positional: [0, 0], single: true };
const FINISH: CommandSpec = { opts: { '--eject': f, '--kexec': f }, positional: [0, 0], single: true };

export const RHEL9_COMMANDS: Record<string, CommandSpec> = {
  text: DISPLAY,
  graphical: DISPLAY,
  cmdline: { opts: {}, positional: [0, 0], single: true },
  reboot: FINISH,
  poweroff: FINISH,
  halt: FINISH,
  shutdown: FINISH,
  firstboot: { opts: { '--enable': f, '--enabled': f, '--disable': f, '--disabled': f, '--reconfig': f }, positional: [0, 0], single: true },
  keyboard: {
    opts: { '--vckeymap': v, '--xlayouts': v, '--switch': v },
    positional: [0, 1],
    single: true,
    check: (o, pos) => (o.size === 0 && pos.length === 0 ? 'keyboard needs --vckeymap, --xlayouts or a layout' : undefined),
  },
  lang: { opts: { '--addsupport': v }, positional: [1, 1], single: true },
  timezone: { opts: { '--utc': f, '--isUtc': f, '--nontp': f, '--ntpservers': v }, positional: [1, 1], single: true },
  timesource: { opts: { '--ntp-server': v, '--ntp-pool': v, '--ntp-disable': f, '--nts': f }, positional: [0, 0], single: false },
  rootpw: {
    opts: { '--iscrypted': f, '--plaintext': f, '--lock': f, '--allow-ssh': f },
    positional: [0, 1],
    single: true,
    check: (o, pos) => {
      if (pos.length === 0 && !o.has('--lock')) return 'rootpw needs a password or --lock';
      if (o.has('--iscrypted') && o.has('--plaintext')) return 'rootpw: --iscrypted and --plaintext are exclusive';
      return undefined;
    },
  },
  user: {
    opts: {
      '--name': v,
      '--groups': v,
      '--homedir': v,
      '--iscrypted': f,
      '--plaintext': f,
      '--password': v,
      '--lock': f,
      '--shell': v,
      '--uid': v,
      '--gid': v,
      '--gecos': v,
    },
    positional: [0, 0],
    single: false,
    check: (o) => (o.has('--name') ? undefined : 'user needs --name'),
  },
  sshkey: { opts: { '--username': v }, positional: [1, 1], single: false, check: (o) => (o.has('--username') ? undefined : 'sshkey needs --username') },
  network: {
    opts: {
      '--bootproto': v,
      '--dhcpclass': v,
      '--device': v,
      '--essid': v,
      '--ethtool': v,
      '--gateway': v,
      '--hostname': v,
      '--ip': v,
      '--mtu': v,
      '--nameserver': v,
      '--netmask': v,
      '--nodns': f,
      '--noipv4': f,
      '--noipv6': f,
      '--onboot': v,
      '--wepkey': v,
      '--wpakey': v,
      '--activate': f,
      '--no-activate': f,
      '--nodefroute': f,
      '--ipv6': v,
      '--ipv6gateway': v,
      '--bondslaves': v,
      '--bondopts': v,
      '--vlanid': v,
      '--interfacename': v,
      '--teamslaves': v,
      '--teamconfig': v,
      '--bridgeslaves': v,
      '--bridgeopts': v,
      '--bindto': v,
      '--ipv4-dns-search': v,
      '--ipv6-dns-search': v,
      '--ipv4-ignore-auto-dns': f,
      '--ipv6-ignore-auto-dns': f,
    },
    positional: [0, 0],
    single: false,
    values: { '--bootproto': ['dhcp', 'bootp', 'ibft', 'static', 'query'] },
  },
  selinux: {
    opts: { '--disabled': f, '--enforcing': f, '--permissive': f },
    positional: [0, 0],
    single: true,
    check: (o) => (o.size > 1 ? 'selinux takes one of --disabled, --enforcing, --permissive' : undefined),
  },
  firewall: {
    opts: {
      '--disabled': f,
      '--disable': f,
      '--enabled': f,
      '--enable': f,
      '--trust': v,
      '--ssh': f,
      '--smtp': f,
      '--http': f,
      '--ftp': f,
      '--port': v,
      '--service': v,
      '--remove-service': v,
      '--use-system-defaults': f,
    },
    positional: [0, 0],
    single: true,
    check: (o) =>
      (o.has('--disabled') || o.has('--disable')) && (o.has('--enabled') || o.has('--enable')) ? 'firewall cannot be both enabled and disabled' : undefined,
  },
  services: { opts: { '--disabled': v, '--enabled': v }, positional: [0, 0], single: true },
  skipx: { opts: {}, positional: [0, 0], single: true },
  eula: { opts: { '--agreed': f }, positional: [0, 0], single: true },
  logging: { opts: { '--host': v, '--port': v, '--level': v }, positional: [0, 0], single: true },
  authselect: { opts: {}, positional: [0, 20], single: true },
  url: { opts: { '--url': v, '--mirrorlist': v, '--metalink': v, '--proxy': v, '--noverifyssl': f }, positional: [0, 0], single: true },
  repo: {
    opts: {
      '--name': v,
      '--baseurl': v,
      '--mirrorlist': v,
      '--metalink': v,
      '--cost': v,
      '--excludepkgs': v,
      '--includepkgs': v,
      '--proxy': v,
      '--noverifyssl': f,
      '--install': f,
    },
    positional: [0, 0],
    single: false,
    check: (o) => (o.has('--name') ? undefined : 'repo needs --name'),
  },
  bootloader: {
    opts: {
      '--append': v,
      '--location': v,
      '--password': v,
      '--iscrypted': f,
      '--md5pass': v,
      '--timeout': v,
      '--boot-drive': v,
      '--driveorder': v,
      '--leavebootorder': f,
      '--disabled': f,
      '--nombr': f,
      '--extlinux': f,
    },
    positional: [0, 0],
    single: true,
    values: { '--location': ['mbr', 'partition', 'none', 'boot'] },
  },
  zerombr: { opts: {}, positional: [0, 0], single: true },
  ignoredisk: { opts: { '--drives': v, '--only-use': v, '--interactive': f }, positional: [0, 0], single: true },
  clearpart: {
    opts: { '--all': f, '--drives': v, '--initlabel': f, '--linux': f, '--none': f, '--list': v, '--disklabel': v, '--cdl': f },
    positional: [0, 0],
    single: true,
    values: { '--disklabel': ['gpt', 'msdos', 'dasd'] },
  },
  reqpart: { opts: { '--add-boot': f }, positional: [0, 0], single: true },
  autopart: {
    opts: { '--type': v, '--fstype': v, '--nohome': f, '--noboot': f, '--noswap': f, '--nolvm': f, '--hibernation': f, ...LUKS },
    positional: [0, 0],
    single: true,
    // btrfs is gone from RHEL 8 and later installers.
    values: { '--type': ['lvm', 'plain', 'thinp'] },
  },
  part: {
    opts: {
      '--size': v,
      '--grow': f,
      '--maxsize': v,
      '--noformat': f,
      '--onpart': v,
      '--usepart': v,
      '--ondisk': v,
      '--ondrive': v,
      '--asprimary': f,
      '--fsprofile': v,
      '--fstype': v,
      '--fsoptions': v,
      '--label': v,
      '--recommended': f,
      '--onbiosdisk': v,
      '--resize': f,
      '--mkfsoptions': v,
      '--hibernation': f,
      ...LUKS,
    },
    positional: [1, 1],
    single: false,
  },
  volgroup: {
    opts: { '--noformat': f, '--useexisting': f, '--pesize': v, '--reserved-space': v, '--reserved-percent': v },
    positional: [1, 64],
    single: false,
  },
  logvol: {
    opts: {
      '--vgname': v,
      '--name': v,
      '--size': v,
      '--grow': f,
      '--maxsize': v,
      '--fstype': v,
      '--fsprofile': v,
      '--fsoptions': v,
      '--mkfsoptions': v,
      '--label': v,
      '--percent': v,
      '--recommended': f,
      '--noformat': f,
      '--useexisting': f,
      '--resize': f,
      '--thin': f,
      '--thinpool': f,
      '--poolname': v,
      '--chunksize': v,
      '--metadatasize': v,
      '--cachesize': v,
      '--cachemode': v,
      '--cachepvs': v,
      '--hibernation': f,
      ...LUKS,
    },
    positional: [1, 1],
    single: false,
    check: (o) => (o.has('--vgname') && o.has('--name') ? undefined : 'logvol needs --vgname and --name'),
  },
  raid: {
    opts: {
      '--level': v,
      '--device': v,
      '--spares': v,
      '--fstype': v,
      '--fsprofile': v,
      '--fsoptions': v,
      '--mkfsoptions': v,
      '--label': v,
      '--noformat': f,
      '--useexisting': f,
      '--chunksize': v,
      ...LUKS,
    },
    positional: [1, 64],
    single: false,
  },
};
RHEL9_COMMANDS['partition'] = RHEL9_COMMANDS['part']!;

/** Groups of commands of which at most one may appear. */
const EXCLUSIVE: readonly (readonly string[])[] = [
  ['reboot', 'poweroff', 'halt', 'shutdown'],
  ['text', 'graphical', 'cmdline'],
];
const MANUAL_PARTITIONING = ['part', 'partition', 'raid', 'volgroup', 'logvol'];

const SCRIPT_OPTS: Record<string, OptKind> = { '--interpreter': v, '--log': v, '--logfile': v, '--erroronfail': f };
const SECTIONS: Record<string, Record<string, OptKind>> = {
  '%packages': {
    '--default': f,
    '--excludedocs': f,
    '--ignoremissing': f,
    '--nocore': f,
    '--inst-langs': v,
    '--instLangs': v,
    '--multilib': f,
    '--exclude-weakdeps': f,
    '--excludeWeakdeps': f,
    '--timeout': v,
    '--retries': v,
    '--ignorebroken': f,
  },
  '%pre': SCRIPT_OPTS,
  '%pre-install': SCRIPT_OPTS,
  '%post': { ...SCRIPT_OPTS, '--nochroot': f },
  '%onerror': SCRIPT_OPTS,
  '%traceback': SCRIPT_OPTS,
  '%addon': {},
};

const PACKAGE_SPEC = /^(?:-?[A-Za-z0-9_.+*?[\]-]+(?:[<>=]{1,2}\S+)?|-?@\^?[A-Za-z0-9_.+-]+(?::[A-Za-z0-9_.+-]+)?(?:\/[A-Za-z0-9_.+-]+)?)$/;

/** Splits a line like Python's shlex.split(line, comments=True). Returns the words or an error. */
export function shlexSplit(line: string): { words: string[] } | { error: string } {
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === '#') {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return { error: 'No closing quotation' };
      word = (word ?? '') + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let acc = '';
      for (;;) {
        if (j >= line.length) return { error: 'No closing quotation' };
        const d = line[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < line.length && '"\\$`\n'.includes(line[j + 1]!)) {
          acc += line[j + 1];
          j += 2;
          continue;
        }
        acc += d;
        j++;
      }
      word = (word ?? '') + acc;
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= line.length) return { error: 'No escaped character' };
      word = (word ?? '') + line[i + 1];
      i += 2;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  if (word !== null) words.push(word);
  return { words };
}

/** Parses option words against a spec; returns options, positionals and problems. */
function parseOptions(
  words: string[],
  opts: Record<string, OptKind>,
  what: string,
): { options: Map<string, string | true>; positional: string[]; problems: string[] } {
  const options = new Map<string, string | true>();
  const positional: string[] = [];
  const problems: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('--')) {
      positional.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const name = eq < 0 ? w : w.slice(0, eq);
    const kind = opts[name];
    if (!kind) {
      problems.push(`${what}: unknown option ${name}`);
      continue;
    }
    if (kind === 'flag') {
      if (eq >= 0) problems.push(`${what}: option ${name} takes no value`);
      options.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = w.slice(eq + 1);
    else if (i + 1 < words.length && !words[i + 1]!.startsWith('--')) value = words[++i];
    if (value === undefined) {
      problems.push(`${what}: option ${name} needs a value`);
      continue;
    }
    options.set(name, value);
  }
  return { options, positional, problems };
}

function isShell(interpreter: string | undefined): boolean {
  return interpreter === undefined || /(?:^|\/)(?:ba)?sh$/.test(interpreter);
}

export interface KsCheckOptions {
  /** Check shell script bodies with `bash -n` (default false). */
  shell?: boolean;
  /** Commands that must be present (e.g. for an unattended install). */
  require?: readonly string[];
}

/** Checks a kickstart; returns every issue found (empty when it passes). */
export function checkKickstart(text: string, opts: KsCheckOptions = {}): KsIssue[] {
  const issues: KsIssue[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  let section: { name: string; line: number; interpreter: string | undefined; body: string[] } | null = null;

  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    const raw = lines[n]!;
    const trimmed = raw.trim();
    const add = (message: string) => issues.push({ line: lineNo, message });

    if (section) {
      const first = trimmed.split(/\s+/)[0] ?? '';
      if (first === '%end') {
        if (trimmed !== '%end') add('%end takes no arguments');
        if (opts.shell && section.name !== '%packages' && section.name !== '%addon' && isShell(section.interpreter)) {
          const r = spawnSync('bash', ['-n'], { input: section.body.join('\n') + '\n', encoding: 'utf8' });
          if (r.status !== 0) issues.push({ line: section.line, message: `${section.name} script: bash -n: ${(r.stderr || '').trim()}` });
        }
        section = null;
        continue;
      }
      if (first in SECTIONS) {
        add(`${first} inside ${section.name} (opened on line ${section.line}): sections cannot nest; ${section.name} needs %end`);
        continue;
      }
      if (section.name === '%packages') {
        if (trimmed === '' || trimmed.startsWith('#')) continue;
        const split = shlexSplit(trimmed);
        if ('error' in split) {
          add(`%packages: ${split.error}`);
          continue;
        }
        const [spec, ...rest] = split.words;
        if (!spec) continue;
        if (!PACKAGE_SPEC.test(spec)) add(`%packages: ${JSON.stringify(spec)} is not a package, group or module spec`);
        for (const r of rest) {
          if (!spec.startsWith('@') || (r !== '--nodefaults' && r !== '--optional')) add(`%packages: unexpected ${JSON.stringify(r)} after ${spec}`);
        }
        continue;
      }
      section.body.push(raw);
      continue;
    }

    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const split = shlexSplit(trimmed);
    if ('error' in split) {
      add(split.error);
      continue;
    }
    const [cmd, ...args] = split.words;
    if (!cmd) continue;

    if (cmd.startsWith('%')) {
      if (cmd === '%end') {
        add('%end without an open section');
        continue;
      }
      if (cmd === '%include' || cmd === '%ksappend') {
        if (args.length !== 1) add(`${cmd} takes one file name`);
        continue;
      }
      const sectionOpts = SECTIONS[cmd];
      if (!sectionOpts) {
        add(`unknown section ${cmd}`);
        continue;
      }
      const parsed = parseOptions(args, sectionOpts, cmd);
      parsed.problems.forEach(add);
      if (cmd === '%addon' ? parsed.positional.length !== 1 : parsed.positional.length > 0) {
        add(cmd === '%addon' ? '%addon needs one add-on name' : `${cmd}: unexpected argument ${JSON.stringify(parsed.positional[0])}`);
      }
      const interp = parsed.options.get('--interpreter');
      section = { name: cmd, line: lineNo, interpreter: typeof interp === 'string' ? interp : undefined, body: [] };
      continue;
    }

    const spec = RHEL9_COMMANDS[cmd];
    if (!spec) {
      add(`unknown command ${JSON.stringify(cmd)}`);
      continue;
    }
    const canonical = cmd === 'partition' ? 'part' : cmd;
    if (spec.single && seen.has(canonical)) add(`${cmd} may appear only once (first on line ${seen.get(canonical)})`);
    if (!seen.has(canonical)) seen.set(canonical, lineNo);
    const parsed = parseOptions(args, spec.opts, cmd);
    parsed.problems.forEach(add);
    const [min, max] = spec.positional;
    if (parsed.positional.length < min) add(`${cmd} needs ${min} argument(s), got ${parsed.positional.length}`);
    if (parsed.positional.length > max) add(`${cmd}: unexpected argument ${JSON.stringify(parsed.positional[max])}`);
    for (const [opt, allowed] of Object.entries(spec.values ?? {})) {
      const val = parsed.options.get(opt);
      if (typeof val === 'string' && !allowed.includes(val)) add(`${cmd} ${opt}=${val}: expected one of ${allowed.join(', ')}`);
    }
    const extra = spec.check?.(parsed.options, parsed.positional);
    if (extra) add(extra);
  }

  if (section) issues.push({ line: section.line, message: `${section.name} is not closed by %end` });

  for (const group of EXCLUSIVE) {
    const present = group.filter((c) => seen.has(c));
    if (present.length > 1) issues.push({ line: seen.get(present[1]!)!, message: `${present.join(' and ')} are mutually exclusive` });
  }
  const manual = MANUAL_PARTITIONING.filter((c) => seen.has(c));
  if (seen.has('autopart') && manual.length > 0) {
    issues.push({ line: seen.get('autopart')!, message: `autopart cannot be combined with ${manual.join(', ')}` });
  }
  for (const r of opts.require ?? []) {
    if (!seen.has(r)) issues.push({ line: 0, message: `required command ${r} is missing` });
  }
  return issues.sort((a, b) => a.line - b.line);
}

/** Throws with every issue listed when the kickstart does not pass. */
export function assertKickstart(text: string, opts: KsCheckOptions = {}): void {
  const issues = checkKickstart(text, opts);
  if (issues.length > 0) {
    throw new Error(`kickstart check failed:\n${issues.map((i) => `  line ${i.line}: ${i.message}`).join('\n')}`);
  }
}

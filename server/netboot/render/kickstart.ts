/**
 * Kickstart renderer (RHEL 9 / AlmaLinux 9). Takes the template text of
 * kickstart/base.ks (loaded by templates.ts), the node, its profile and the
 * cluster, checks every value (values.ts: a bad value is an error naming the
 * node and the value, never escaped) and fills the template. Pure: no I/O.
 *
 * What the kickstart does (see docs/netboot.md):
 * - commands: text, keyboard, lang, timezone --utc, rootpw (--iscrypted or
 *   --lock), network dhcp with the node's FQDN, selinux enforcing, firewall
 *   disabled, bootloader with the profile's kernel args, partitioning
 *   (default clearpart + autopart plain ext4, or the profile's lines), reboot;
 * - %packages: @core, curl (the %post needs it) and the profile's packages;
 * - %pre POSTs install-started, %onerror POSTs install-failed with the tail
 *   of the installer logs, a %post writes the ssh keys, downloads the agent
 *   and runs `fleet-agent enroll`, and a last %post --nochroot POSTs
 *   install-finished (URLs from urls.ts).
 */
import type { ClusterInfo, ProfileSpec } from '../../model.js';
import { fillTemplate } from './template.js';
import { agentDownloadUrl, bootEventUrl } from './urls.js';
import {
  checkCryptHash,
  checkDomain,
  checkFingerprint,
  checkKernelArg,
  checkKeymap,
  checkLocale,
  checkNodeName,
  checkPackageName,
  checkPartitionLine,
  checkProfileName,
  checkRenderUrl,
  checkServerUrl,
  checkSshKey,
  checkTimezone,
  checkToken,
  Problems,
  show,
} from './values.js';

export const KICKSTART_TEMPLATE = 'base.ks';

/**
 * A token that passes validation but is never issued: `fleet render` shows a
 * kickstart with it instead of minting a real one-time token.
 */
export const PLACEHOLDER_TOKEN = 'FLEET-RENDER-PLACEHOLDER-TOKEN';

/** The storage lines used when a profile has no `partitioning`. */
export const DEFAULT_STORAGE = ['clearpart --all --initlabel', 'autopart --type=plain --fstype=ext4 --nohome'] as const;

/** Packages every fleet kickstart installs: @core, and curl for the %post callbacks and the agent download. */
export const BASE_PACKAGES = ['@core', 'curl'] as const;

export interface KickstartInput {
  node: { name: string };
  profile: ProfileSpec;
  cluster: Pick<ClusterInfo, 'domain' | 'timezone'>;
  /** The fleet server's base URL as nodes reach it, e.g. http://10.10.0.1:8080. */
  server: string;
  /** One-time enrolment token bound to this node (base64url); PLACEHOLDER_TOKEN for a preview. */
  token: string;
  /** SHA-256 fingerprint of the fleet CA certificate, hex. */
  caFingerprint: string;
  /** Token for the install callbacks (default: `token`). */
  callbackToken?: string;
  /** What the agent enrols with, a URL or host:port (default: `server`). */
  enrolServer?: string;
  /** Where %post downloads the agent (default: agentDownloadUrl(server)). */
  agentUrl?: string;
  /** Console keymap and X layout (default us). */
  keyboard?: string;
  /** Installed system language (default en_US.UTF-8). */
  lang?: string;
}

/** host:port where host is an IPv4 address or a host name. */
function checkEndpoint(s: string): string | undefined {
  if (/^https?:\/\//.test(s)) return checkServerUrl(s);
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m || checkDomain(m[1]!) !== undefined || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    return `${show(s)} must be a URL (https://host:port) or host:port`;
  }
  return undefined;
}

/** Renders the node's kickstart from the text of kickstart/base.ks. */
export function renderKickstart(template: string, input: KickstartInput): string {
  const { node, profile, cluster } = input;
  const name = typeof node.name === 'string' ? node.name : String(node.name);
  const p = new Problems(`kickstart for ${show(name)}`);

  // --- identity
  p.check('node name', name, checkNodeName);
  p.check('profile name', profile.name, checkProfileName);
  const domainOk = p.check('cluster domain', cluster.domain, checkDomain);
  const fqdn = `${name}.${cluster.domain}`;
  if (domainOk && fqdn.length > 253) p.add(`host name ${show(fqdn)} is longer than 253 characters`);
  p.check('timezone', cluster.timezone, checkTimezone);
  const keyboard = input.keyboard ?? 'us';
  const lang = input.lang ?? 'en_US.UTF-8';
  p.check('keyboard', keyboard, checkKeymap);
  p.check('lang', lang, checkLocale);

  // --- root password
  let rootpw = '--lock';
  if (profile.rootPasswordHash !== undefined) {
    if (p.check(`profile ${profile.name} root password hash`, profile.rootPasswordHash, checkCryptHash)) {
      rootpw = `--iscrypted ${profile.rootPasswordHash}`;
    }
  }

  // --- kernel args, boot loader, storage
  profile.kernelArgs.forEach((a, i) => p.check(`profile ${profile.name} kernel arg ${i + 1}`, a, checkKernelArg));
  const append = profile.kernelArgs.join(' ');
  let bootloader = append ? `bootloader --append="${append}" --location=mbr` : 'bootloader --location=mbr';
  const storage: string[] = [];
  for (const [i, line] of (profile.partitioning ?? []).entries()) {
    if (!p.check(`profile ${profile.name} partitioning line ${i + 1}`, line, checkPartitionLine)) continue;
    if (/^btrfs(?: |$)/.test(line) || /--type=btrfs(?: |$)/.test(line)) {
      p.add(`profile ${profile.name} partitioning line ${i + 1}: btrfs is not supported by the RHEL 9 installer`);
      continue;
    }
    if (/^bootloader(?: |$)/.test(line)) {
      // The profile's own bootloader line replaces fleet's; fleet still appends the kernel args.
      if (/(?:^| )--append(?:=| |$)/.test(line) && append) {
        p.add(`profile ${profile.name} partitioning line ${i + 1}: set kernel arguments in kernel_args, not with bootloader --append`);
        continue;
      }
      bootloader = append ? `${line} --append="${append}"` : line;
    } else {
      storage.push(line);
    }
  }
  if ((profile.partitioning ?? []).filter((l) => /^bootloader(?: |$)/.test(l)).length > 1) {
    p.add(`profile ${profile.name}: more than one bootloader line in partitioning`);
  }
  if (storage.length === 0) storage.push(...DEFAULT_STORAGE);

  // --- packages
  const allPackages: string[] = [...BASE_PACKAGES];
  for (const [i, pkg] of profile.packages.entries()) {
    if (p.check(`profile ${profile.name} package ${i + 1}`, pkg, checkPackageName) && !allPackages.includes(pkg)) allPackages.push(pkg);
  }

  // --- ssh keys
  profile.sshKeys.forEach((k, i) => p.check(`profile ${profile.name} ssh key ${i + 1}`, k, checkSshKey));
  const sshKeys = profile.sshKeys.length > 0 ? profile.sshKeys.join('\n') : `# fleet: profile ${profile.name} declares no ssh keys`;

  // --- server, tokens, agent
  p.check('server URL', input.server, checkServerUrl);
  p.check('enrolment token', input.token, checkToken);
  const callbackToken = input.callbackToken ?? input.token;
  if (input.callbackToken !== undefined) p.check('callback token', input.callbackToken, checkToken);
  p.check('CA fingerprint', input.caFingerprint, checkFingerprint);
  const enrolServer = input.enrolServer ?? input.server;
  if (input.enrolServer !== undefined) p.check('enrolment server', input.enrolServer, checkEndpoint);
  const agentUrl = input.agentUrl ?? agentDownloadUrl(input.server);
  if (input.agentUrl !== undefined) p.check('agent URL', input.agentUrl, checkRenderUrl);
  p.throwIfAny();

  const urls = {
    started: bootEventUrl(input.server, name, 'install-started', callbackToken),
    failed: bootEventUrl(input.server, name, 'install-failed', callbackToken),
    finished: bootEventUrl(input.server, name, 'install-finished', callbackToken),
  };
  // Built from checked parts, re-checked as whole URLs (belt and braces: they go into shell words).
  for (const [what, url] of [...Object.entries(urls), ['agent', agentUrl] as const]) p.check(`${what} URL`, url, checkRenderUrl);
  p.throwIfAny();

  return fillTemplate(KICKSTART_TEMPLATE, template, {
    node: name,
    fqdn,
    profile: profile.name,
    keyboard,
    lang,
    timezone: cluster.timezone,
    rootpw,
    bootloader,
    storage: storage.join('\n'),
    packages: allPackages.join('\n'),
    url_install_started: urls.started,
    url_install_failed: urls.failed,
    url_install_finished: urls.finished,
    ssh_keys: sshKeys,
    agent_url: agentUrl,
    enroll_server: enrolServer,
    token: input.token,
    ca_fingerprint: input.caFingerprint,
  });
}

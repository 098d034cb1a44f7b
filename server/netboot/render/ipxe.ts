/**
 * iPXE script renderers. Each takes the template text (loaded by
 * templates.ts) and already-decided inputs, checks every value it will put
 * into the script (values.ts; a bad value is an error, never escaped) and
 * fills the template (template.ts). Pure: no I/O.
 *
 *   renderBootChain      ipxe/boot.ipxe             the entry script, the same for every machine
 *   renderIpxe(decision) ipxe/install.ipxe          kind 'install', method kickstart
 *                        ipxe/install-image.ipxe    kind 'install', method image (the fleet boot environment)
 *                        ipxe/install-stateless.ipxe kind 'install', method stateless (the image's kernel, two initrds)
 *                        ipxe/localboot.ipxe        kind 'localboot'
 *                        ipxe/discover.ipxe         kind 'discover'
 *                        ipxe/inspect.ipxe          kind 'inspect' (the fleet boot environment, fleet.job=inspect)
 *                        ipxe/not-implemented.ipxe  kind 'not-implemented'
 */
import type { BootDecision } from '../decide.js';
import { fillTemplate } from './template.js';
import { bootScriptUrl } from './urls.js';
import {
  checkBootArg,
  checkConsoleText,
  checkCount,
  checkMac,
  checkNodeName,
  checkProfileName,
  checkRenderUrl,
  checkServerUrl,
  normalizeMac,
  Problems,
} from './values.js';

/** x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL. */
export const MAX_KERNEL_CMDLINE = 2047;

/**
 * The command line the installer kernel receives from ipxe/install.ipxe
 * (`kernel URL ARGS`). On UEFI iPXE passes the image's name (the URL's file
 * name, e.g. vmlinuz) before the arguments, so it is counted: the longest of
 * the two firmware paths is what must fit.
 */
export function installCommandLine(kernelUrl: string, kernelArgs: readonly string[]): string {
  const image = kernelUrl.slice(kernelUrl.lastIndexOf('/') + 1);
  return `${image} ${kernelArgs.join(' ')}`;
}

/** A problem when the install command line is longer than the kernel accepts; undefined when it fits. */
export function checkInstallCommandLine(kernelUrl: string, kernelArgs: readonly string[]): string | undefined {
  const bytes = Buffer.byteLength(installCommandLine(kernelUrl, kernelArgs));
  if (bytes <= MAX_KERNEL_CMDLINE) return undefined;
  return `kernel command line is ${bytes} bytes, more than the ${MAX_KERNEL_CMDLINE} the kernel accepts (x86 COMMAND_LINE_SIZE 2048 with its NUL)`;
}

export interface BootChainOptions {
  /** The fleet server's base URL as nodes reach it, e.g. http://10.10.0.1:8080. */
  server: string;
  /** Attempts to fetch the machine's script before giving up (default 5). */
  maxAttempts?: number;
  /** Seconds between attempts (default 5). */
  retryDelaySeconds?: number;
  /** Seconds the failure message stays on screen before returning to the firmware (default 30). */
  failDelaySeconds?: number;
}

export interface IpxeOptions {
  /** The fleet server's base URL (discover chains back to its boot.ipxe). */
  server: string;
  /** Seconds a failure or not-implemented message stays on screen (default 30). */
  failDelaySeconds?: number;
}

export const IPXE_TEMPLATES = {
  boot: 'boot.ipxe',
  install: 'install.ipxe',
  'install-image': 'install-image.ipxe',
  'install-stateless': 'install-stateless.ipxe',
  localboot: 'localboot.ipxe',
  discover: 'discover.ipxe',
  inspect: 'inspect.ipxe',
  'not-implemented': 'not-implemented.ipxe',
} as const;

/** The template file (in ipxe/) that renders a decision. */
export function ipxeTemplateName(decision: BootDecision): string {
  if (decision.kind === 'install' && decision.method === 'image') return IPXE_TEMPLATES['install-image'];
  if (decision.kind === 'install' && (decision.method === 'stateless' || decision.method === 'diskless')) return IPXE_TEMPLATES['install-stateless'];
  return IPXE_TEMPLATES[decision.kind];
}

/** Renders ipxe/boot.ipxe: chain to /boot/${mac:hexhyp}.ipxe with bounded retries. */
export function renderBootChain(template: string, opts: BootChainOptions): string {
  const p = new Problems('iPXE boot chain');
  const maxAttempts = opts.maxAttempts ?? 5;
  const retryDelay = opts.retryDelaySeconds ?? 5;
  const failDelay = opts.failDelaySeconds ?? 30;
  p.check('server URL', opts.server, checkServerUrl);
  const countProblem =
    checkCount(maxAttempts, 1, 100, 'maxAttempts') ??
    checkCount(retryDelay, 1, 3600, 'retryDelaySeconds') ??
    checkCount(failDelay, 0, 3600, 'failDelaySeconds');
  if (countProblem) p.add(countProblem);
  p.throwIfAny();
  return fillTemplate(IPXE_TEMPLATES.boot, template, {
    server: opts.server,
    max_attempts: String(maxAttempts),
    retry_delay: String(retryDelay),
    fail_delay: String(failDelay),
  });
}

/** Renders the per-machine script for a boot decision with the decision's template. */
export function renderIpxe(decision: BootDecision, template: string, opts: IpxeOptions): string {
  const failDelay = opts.failDelaySeconds ?? 30;
  const name = ipxeTemplateName(decision);
  switch (decision.kind) {
    case 'install': {
      if (decision.method === 'image') {
        const p = new Problems(`iPXE image install script for ${decision.node}`);
        p.check('node name', decision.node, checkNodeName);
        p.check('profile', decision.profile, checkProfileName);
        p.check('image', decision.image, checkProfileName);
        checkBootenvBoot(p, decision, failDelay, ['fleet.server=', 'fleet.node=', 'fleet.token=', 'fleet.mac=']);
        p.throwIfAny();
        return fillTemplate(name, template, {
          node: decision.node,
          profile: decision.profile,
          image: decision.image,
          kernel_url: decision.kernelUrl,
          initrd_url: decision.initrdUrl,
          kernel_args: decision.kernelArgs.join(' '),
          fail_delay: String(failDelay),
        });
      }
      if (decision.method !== 'kickstart') {
        const p = new Problems(`iPXE ${decision.method} boot script for ${decision.node}`);
        p.check('node name', decision.node, checkNodeName);
        p.check('profile', decision.profile, checkProfileName);
        p.check('image', decision.image, checkProfileName);
        if (!/^sha256:[0-9a-f]{64}$/.test(decision.digest)) p.add(`image digest ${JSON.stringify(decision.digest)} is not sha256:<64 hex>`);
        const [initrd, layer] = decision.initrdUrls;
        checkBootenvBoot(p, { kernelUrl: decision.kernelUrl, initrdUrl: initrd, kernelArgs: decision.kernelArgs }, failDelay, [
          'initrd=initrd.img',
          'initrd=modules.img',
          'fleet.server=',
          'fleet.node=',
          'fleet.token=',
          'fleet.mac=',
          `fleet.job=${decision.method}`,
        ]);
        p.check('module layer URL', layer, checkRenderUrl);
        p.throwIfAny();
        return fillTemplate(name, template, {
          node: decision.node,
          profile: decision.profile,
          image: decision.image,
          digest: decision.digest,
          kernel_url: decision.kernelUrl,
          initrd_url: initrd,
          layer_url: layer,
          method: decision.method,
          kernel_args: decision.kernelArgs.join(' '),
          fail_delay: String(failDelay),
        });
      }
      const p = new Problems(`iPXE install script for ${decision.node}`);
      p.check('node name', decision.node, checkNodeName);
      p.check('profile', decision.profile, checkProfileName);
      p.check('kernel URL', decision.kernelUrl, checkRenderUrl);
      p.check('initrd URL', decision.initrdUrl, checkRenderUrl);
      p.check('kickstart URL', decision.kickstartUrl, checkRenderUrl);
      addFailDelay(p, failDelay);
      if (decision.kernelArgs.length === 0) p.add('kernel arguments: none (at least inst.ks= is needed)');
      decision.kernelArgs.forEach((arg, i) => p.check(`kernel argument ${i + 1}`, arg, checkBootArg));
      const cmdline = decision.kernelArgs.join(' ');
      const tooLong = checkInstallCommandLine(decision.kernelUrl, decision.kernelArgs);
      if (tooLong) p.add(tooLong);
      p.throwIfAny();
      return fillTemplate(name, template, {
        node: decision.node,
        profile: decision.profile,
        kernel_url: decision.kernelUrl,
        initrd_url: decision.initrdUrl,
        kickstart_url: decision.kickstartUrl,
        kernel_args: cmdline,
        fail_delay: String(failDelay),
      });
    }
    case 'localboot': {
      const p = new Problems(`iPXE local-boot script for ${decision.node}`);
      p.check('node name', decision.node, checkNodeName);
      p.check('reason', decision.reason, checkConsoleText);
      if (decision.method !== 'exit' && decision.method !== 'sanboot') p.add(`method ${String(decision.method)} is not exit or sanboot`);
      p.throwIfAny();
      return fillTemplate(name, template, { node: decision.node, reason: decision.reason, method: decision.method });
    }
    case 'discover': {
      const p = new Problems(`iPXE discovery script for ${decision.mac}`, 'request.invalid');
      p.check('MAC', decision.mac, checkMac);
      p.check('server URL', opts.server, checkServerUrl);
      const retry = checkCount(decision.retrySeconds, 1, 3600, 'retrySeconds');
      if (retry) p.add(retry);
      addFailDelay(p, failDelay);
      p.throwIfAny();
      return fillTemplate(name, template, {
        mac: normalizeMac(decision.mac)!,
        retry_seconds: String(decision.retrySeconds),
        boot_url: bootScriptUrl(opts.server),
        fail_delay: String(failDelay),
      });
    }
    case 'inspect': {
      const p = new Problems(`iPXE inspect script for ${decision.mac}`, 'request.invalid');
      p.check('MAC', decision.mac, checkMac);
      checkBootenvBoot(p, decision, failDelay, ['fleet.server=', 'fleet.token=', 'fleet.mac=', 'fleet.job=inspect']);
      p.throwIfAny();
      return fillTemplate(name, template, {
        mac: normalizeMac(decision.mac)!,
        kernel_url: decision.kernelUrl,
        initrd_url: decision.initrdUrl,
        kernel_args: decision.kernelArgs.join(' '),
        fail_delay: String(failDelay),
      });
    }
    case 'not-implemented': {
      const p = new Problems(`iPXE not-implemented script for ${decision.node}`);
      p.check('node name', decision.node, checkNodeName);
      p.check('message', decision.message, checkConsoleText);
      if (!['diskless', 'stateless', 'image'].includes(decision.method)) p.add(`method ${String(decision.method)} is not diskless, stateless or image`);
      addFailDelay(p, failDelay);
      p.throwIfAny();
      return fillTemplate(name, template, {
        node: decision.node,
        message: decision.message,
        method: decision.method,
        fail_delay: String(failDelay),
      });
    }
  }
}

/** What every boot of the fleet boot environment needs: its URLs, safe arguments with the keys its job reads, a command line that fits. */
function checkBootenvBoot(p: Problems, d: { kernelUrl: string; initrdUrl: string; kernelArgs: readonly string[] }, failDelay: number, requiredKeys: readonly string[]): void {
  p.check('kernel URL', d.kernelUrl, checkRenderUrl);
  p.check('initrd URL', d.initrdUrl, checkRenderUrl);
  addFailDelay(p, failDelay);
  d.kernelArgs.forEach((arg, i) => p.check(`kernel argument ${i + 1}`, arg, checkBootArg));
  for (const key of requiredKeys) {
    if (!d.kernelArgs.some((a) => a.startsWith(key))) p.add(`kernel arguments: no ${key} (the boot environment needs it)`);
  }
  const tooLong = checkInstallCommandLine(d.kernelUrl, d.kernelArgs);
  if (tooLong) p.add(tooLong);
}

function addFailDelay(p: Problems, failDelay: number): void {
  const bad = checkCount(failDelay, 0, 3600, 'failDelaySeconds');
  if (bad) p.add(bad);
}

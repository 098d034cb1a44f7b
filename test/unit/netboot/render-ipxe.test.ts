import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { decideBoot, type BootDecision, type ImageInstallDecision, type InspectDecision, type InstallDecision, type StatelessBootDecision } from '../../../server/netboot/decide.js';
import { withInspectToken, withInstallToken } from '../../../server/netboot/scripts.js';
import {
  findTemplateRoot,
  ipxeTemplateName,
  loadTemplate,
  MAX_KERNEL_CMDLINE,
  renderBootChain,
  renderIpxe,
  templatePath,
} from '../../../server/netboot/render/index.js';
import { expectGolden, NODE_OF, PROFILES, SERVER } from '../../helpers/golden.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const NOW = new Date('2025-03-01T12:00:00.000Z');

/**
 * A structural lint of a rendered iPXE script: what iPXE would choke on or
 * what fleet's rules forbid. Returns the problems found.
 */
const IPXE_COMMANDS = new Set(['echo', 'set', 'inc', 'iseq', 'goto', 'chain', 'sleep', 'exit', 'kernel', 'initrd', 'imgstat', 'boot', 'sanboot']);
const IPXE_SETTINGS = new Set(['mac:hexhyp', 'serial:uristring', 'uuid', 'buildarch', 'platform', 'retries']);
function lintIpxe(script: string): string[] {
  const problems: string[] = [];
  const lines = script.split('\n');
  if (lines[0] !== '#!ipxe') problems.push('first line is not #!ipxe');
  const labels = new Set(lines.filter((l) => l.startsWith(':')).map((l) => l.slice(1)));
  lines.forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line === '' || line.startsWith('#') || line.startsWith(':')) return;
    if (line !== line.trim()) problems.push(`${where}: leading or trailing whitespace`);
    const words = line.split(/\s+/);
    if (!IPXE_COMMANDS.has(words[0]!)) problems.push(`${where}: unexpected command ${words[0]}`);
    if (words.includes('shell')) problems.push(`${where}: drops to the iPXE shell`);
    if (words.includes(';') || words.some((w) => w.startsWith('#'))) problems.push(`${where}: ';' or '#' token`);
    for (const [j, w] of words.entries()) if (w === 'goto' && !labels.has(words[j + 1] ?? '')) problems.push(`${where}: goto to a missing label ${words[j + 1]}`);
    for (const m of line.matchAll(/\$\{([^}]*)\}/g)) if (!IPXE_SETTINGS.has(m[1]!)) problems.push(`${where}: unexpected setting \${${m[1]}}`);
    if (/\$(?!\{)/.test(line)) problems.push(`${where}: stray $`);
    if (/["'`\\]/.test(line) && !line.startsWith('echo')) problems.push(`${where}: quote or backslash`);
    if (/\{\{|\}\}/.test(line)) problems.push(`${where}: template placeholder left`);
  });
  if (!lines.some((l) => /^(exit|boot|chain)\b/.test(l))) problems.push('the script never exits or boots');
  return problems;
}

async function render(d: BootDecision): Promise<string> {
  return renderIpxe(d, await loadTemplate('ipxe', ipxeTemplateName(d)), { server: SERVER });
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

function installFor(profile: keyof typeof PROFILES): InstallDecision {
  const d = decideBoot({
    mac: '08:00:27:18:67:bc',
    server: SERVER,
    now: NOW,
    profile: PROFILES[profile],
    node: { name: NODE_OF[profile], state: 'pxe-armed', armed: true, profile },
  });
  if (d.kind !== 'install' || d.method !== 'kickstart') throw new Error('expected a kickstart install');
  return d;
}

const IMAGE_PROFILE = { ...PROFILES.compute, os: { install: 'image' as const, tree: '', image: 'debian12' } };
const IMAGE_TOKEN = 'q9VvF2b1YcK3mZ0t7sQe4xW8nR6uJ5hA-dLpGi_oTyE';
function imageInstall(token: string | null = IMAGE_TOKEN): ImageInstallDecision {
  const d = decideBoot({ mac: '08:00:27:18:67:bc', server: SERVER, now: NOW, profile: IMAGE_PROFILE, node: { name: 'valkyrie01', state: 'netbooting', armed: true, profile: 'compute' } });
  if (d.kind !== 'install' || d.method !== 'image') throw new Error('expected an image install');
  return token === null ? d : withInstallToken(d, token);
}

const STATELESS_PROFILE = { ...PROFILES.compute, kernelArgs: [], os: { install: 'stateless' as const, tree: '', image: 'debian12' } };
const HEX = '3f'.repeat(32);
const KEY = '5c'.repeat(32);
function statelessBoot(token: string | null = IMAGE_TOKEN): StatelessBootDecision {
  const d = decideBoot({
    mac: '08:00:27:18:67:bc',
    server: SERVER,
    now: NOW,
    profile: STATELESS_PROFILE,
    node: { name: 'valkyrie01', state: 'ready', armed: false, profile: 'compute' },
    stateless: { name: 'debian12', digest: `sha256:${HEX}`, layerKey: KEY },
  });
  if (d.kind !== 'install' || d.method !== 'stateless') throw new Error('expected a stateless boot');
  return token === null ? d : withInstallToken(d, token);
}

const localboot: BootDecision = decideBoot({ mac: '08:00:27:18:67:bc', server: SERVER, now: NOW, node: { name: 'valkyrie01', state: 'ready', armed: false, profile: 'compute' } });
const loopSanboot: BootDecision = decideBoot({
  mac: '08:00:27:18:67:bc',
  server: SERVER,
  now: NOW,
  platform: 'pcbios',
  node: { name: 'valkyrie01', state: 'installed', armed: false, profile: 'compute', lastLocalbootAt: new Date(NOW.getTime() - 20_000) },
});
const discover: BootDecision = decideBoot({ mac: '52-54-00-AB-CD-EF', server: SERVER, now: NOW });
const inspect = withInspectToken(decideBoot({ mac: '52-54-00-AB-CD-EF', server: SERVER, now: NOW, inspect: true }) as InspectDecision, 'INSPECT-TOKEN');
const notImpl: BootDecision = decideBoot({
  mac: '08:00:27:18:67:bc',
  server: SERVER,
  now: NOW,
  node: { name: 'valkyrie01', state: 'ready', armed: false, profile: 'compute', installMethod: 'diskless' },
});

describe('iPXE renderers: golden files', () => {
  it('boot.ipxe', async () => {
    const s = renderBootChain(await loadTemplate('ipxe', 'boot.ipxe'), { server: SERVER });
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain(
      'chain --autofree --replace http://10.10.0.1:8080/boot/${mac:hexhyp}.ipxe?serial=${serial:uristring}&uuid=${uuid}&arch=${buildarch}&platform=${platform} ||',
    );
    expect(s).toContain('iseq ${retries} 5 && goto failed ||');
    expectGolden('boot.ipxe', s);
  });

  it.each(['compute', 'compute_gpu'] as const)('install (%s)', async (profile) => {
    const s = await render(installFor(profile));
    expect(lintIpxe(s)).toEqual([]);
    expectGolden(`install-${profile}.ipxe`, s);
  });

  it('localboot (exit)', async () => {
    const s = await render(localboot);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain('goto exit\n');
    expectGolden('localboot-exit.ipxe', s);
  });

  it('localboot (boot-loop suspect, sanboot after a bounce)', async () => {
    const s = await render(loopSanboot);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain('goto sanboot\n');
    expect(s).toContain('sanboot --no-describe --drive 0x80 ||');
    expectGolden('localboot-sanboot.ipxe', s);
  });

  it('discover', async () => {
    const s = await render(discover);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain('echo fleet: this machine (52:54:00:ab:cd:ef) is registered as an unknown machine, waiting to be enrolled');
    expect(s).toContain('chain --autofree --replace http://10.10.0.1:8080/boot.ipxe ||');
    expectGolden('discover.ipxe', s);
  });

  it('inspect (the fleet boot environment, fleet.job=inspect)', async () => {
    const s = await render(inspect);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain(
      'kernel http://10.10.0.1:8080/bootenv/vmlinuz initrd=initrd.img console=tty0 console=ttyS0 fleet.server=http://10.10.0.1:8080 fleet.token=INSPECT-TOKEN fleet.mac=52:54:00:ab:cd:ef fleet.job=inspect || goto failed',
    );
    expectGolden('inspect.ipxe', s);
    const noToken = decideBoot({ mac: '52-54-00-AB-CD-EF', server: SERVER, now: NOW, inspect: true });
    await expect(render(noToken)).rejects.toThrow('kernel arguments: no fleet.token= (the boot environment needs it)');
  });

  it('install by image (the fleet boot environment)', async () => {
    const d = imageInstall();
    expect(ipxeTemplateName(d)).toBe('install-image.ipxe');
    const s = await render(d);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain(
      `kernel ${SERVER}/bootenv/vmlinuz initrd=initrd.img console=tty0 console=ttyS0 fleet.server=${SERVER} fleet.node=valkyrie01 fleet.token=${IMAGE_TOKEN} fleet.mac=08:00:27:18:67:bc fleet.job=install || goto failed\n`,
    );
    expect(s).toContain(`initrd ${SERVER}/bootenv/initrd.img || goto failed\n`);
    expect(s).not.toContain('inst.ks');
    expectGolden('install-image.ipxe', s);
  });

  it('a stateless boot: the image\'s kernel, stage 1\'s initrd, then the module layer over it', async () => {
    const d = statelessBoot();
    expect(ipxeTemplateName(d)).toBe('install-stateless.ipxe');
    const s = await render(d);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain(
      `kernel ${SERVER}/images/sha256/${HEX}/vmlinuz initrd=initrd.img initrd=modules.img console=tty0 console=ttyS0 fleet.server=${SERVER} fleet.node=valkyrie01 fleet.token=${IMAGE_TOKEN} fleet.mac=08:00:27:18:67:bc fleet.job=stateless || goto failed\n`,
    );
    // Order matters: the kernel unpacks the layer over stage 1, so the image's modules and kernel version win.
    expect(s.indexOf(`initrd ${SERVER}/bootenv/initrd.img || goto failed\n`)).toBeGreaterThan(0);
    expect(s.indexOf(`initrd ${SERVER}/stateless/${HEX}/${KEY}/modules.img || goto failed\n`)).toBeGreaterThan(s.indexOf(`initrd ${SERVER}/bootenv/initrd.img`));
    expectGolden('install-stateless.ipxe', s);
  });

  it('a stateless boot without its token, or with a bad layer URL, is refused', () => {
    expect(thrown(() => renderIpxe(statelessBoot(null), '#!ipxe\n', { server: SERVER })).message).toContain('no fleet.token=');
    const bad = { ...statelessBoot(), initrdUrls: [`${SERVER}/bootenv/initrd.img`, 'http://x/"; shell'] as [string, string] };
    expect(thrown(() => renderIpxe(bad, '#!ipxe\n', { server: SERVER })).message).toMatch(/module layer URL/);
    expect(thrown(() => renderIpxe({ ...statelessBoot(), digest: 'sha256:zz' }, '#!ipxe\n', { server: SERVER })).message).toMatch(/image digest "sha256:zz" is not sha256/);
  });

  it('install by image without its token is refused (never rendered without fleet.token=)', async () => {
    const e = thrown(() => renderIpxe(imageInstall(null), '#!ipxe\n', { server: SERVER }));
    expect(e.message).toContain('no fleet.token=');
  });

  it('install by image: a second token replaces the first, right after fleet.node=', () => {
    const d = withInstallToken(imageInstall(), 'AAAAAAAAAAAAAAAAAAAAAAAA');
    expect(d.kernelArgs.filter((a) => a.startsWith('fleet.token='))).toEqual(['fleet.token=AAAAAAAAAAAAAAAAAAAAAAAA']);
    expect(d.kernelArgs.indexOf('fleet.token=AAAAAAAAAAAAAAAAAAAAAAAA')).toBe(d.kernelArgs.indexOf('fleet.node=valkyrie01') + 1);
  });

  it('not-implemented for an image node (the boot environment is not built)', async () => {
    const s = await render({ kind: 'not-implemented', node: 'valkyrie01', method: 'image', message: 'the fleet boot environment is not built: run fleet bootenv build (valkyrie01 installs by image)' });
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toContain('echo fleet: the fleet boot environment is not built: run fleet bootenv build (valkyrie01 installs by image)\n');
    expect(s.trimEnd().split('\n').at(-1)).toBe('exit');
  });

  it('not-implemented', async () => {
    const s = await render(notImpl);
    expect(lintIpxe(s)).toEqual([]);
    expect(s).toMatch(/echo fleet: valkyrie01 boots diskless, but its profile .*compute.* was not found/);
    expectGolden('not-implemented.ipxe', s);
  });
});

describe('iPXE renderers: content', () => {
  it('install: kernel line with inst.ks, inst.stage2, inst.repo, ip=dhcp and the GPU args, initrd from images/pxeboot', async () => {
    const s = await render(installFor('compute_gpu'));
    const tree = 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os';
    expect(s).toContain(
      `kernel ${tree}/images/pxeboot/vmlinuz initrd=initrd.img inst.stage2=${tree} inst.repo=${tree} inst.ks=http://10.10.0.1:8080/kickstart/valkyrie03.ks ip=dhcp BOOTIF=01-08-00-27-18-67-bc nomodeset modprobe.blacklist=nouveau nouveau.modeset=0 rd.driver.blacklist=nouveau || goto failed\n`,
    );
    expect(s).toContain(`initrd ${tree}/images/pxeboot/initrd.img || goto failed\n`);
    expect(s).toContain('boot || goto failed\n');
  });

  it('no script ever drops to the shell and every failure path exits', async () => {
    const all = [
      renderBootChain(await loadTemplate('ipxe', 'boot.ipxe'), { server: SERVER }),
      await render(installFor('compute')),
      await render(localboot),
      await render(loopSanboot),
      await render(discover),
      await render(inspect),
      await render(notImpl),
      await render(imageInstall()),
    ];
    for (const s of all) {
      const code = s.split('\n').filter((l) => !l.startsWith('#'));
      expect(code.join('\n')).not.toMatch(/\bshell\b/);
      expect(s.trimEnd().split('\n').at(-1)).toBe('exit');
    }
  });

  it('the lint can fail', () => {
    expect(lintIpxe('#!ipxe\nchain http://x/y || shell\n')).toContain('line 2: drops to the iPXE shell');
    expect(lintIpxe('#!ipxe\ngoto nowhere\nexit\n')).toContain('line 2: goto to a missing label nowhere');
    expect(lintIpxe('#!ipxe\necho ${net0/ip}\nexit\n')).toContain('line 2: unexpected setting ${net0/ip}');
  });
});

describe('iPXE renderers: hostile values are refused, never escaped', () => {
  const base = installFor('compute');
  const cases: [string, Partial<InstallDecision>, RegExp][] = [
    ['node name x;reboot', { node: 'x;reboot' }, /^iPXE install script for x;reboot: node name: "x;reboot" is not a valid node name/],
    ['kernel arg with a newline', { kernelArgs: ['nomodeset', 'a\nb'] }, /kernel argument 2: kernel argument "a\\nb" contains a newline/],
    ['kernel arg with ${', { kernelArgs: ['x=${next-server}'] }, /kernel argument 1: .*contains a shell metacharacter \(\$\)/],
    ['kernel arg with a space', { kernelArgs: ['a b'] }, /contains whitespace/],
    ['kernel arg || shell', { kernelArgs: ['||', 'shell'] }, /kernel argument 1: kernel argument "\|\|"/],
    ['kernel URL with a quote', { kernelUrl: 'http://10.10.0.1/os/images/pxeboot/vmlinuz"' }, /kernel URL: URL .* contains a quote or backtick/],
    ['kickstart URL with a space', { kickstartUrl: 'http://10.10.0.1/ks ks' }, /kickstart URL: URL .* contains whitespace/],
    ['initrd URL not http', { initrdUrl: 'tftp://10.10.0.1/initrd.img' }, /initrd URL: URL .* must start with http/],
    ['inst.ks URL with a quote', { kernelArgs: ['inst.ks=http://10.10.0.1/a"b'] }, /kernel argument 1: .*quote/],
    ['no kernel args', { kernelArgs: [] }, /kernel arguments: none/],
    ['command line too long', { kernelArgs: Array.from({ length: 300 }, (_, i) => `arg${i}=xxxx`) }, new RegExp(`more than the ${MAX_KERNEL_CMDLINE}`)],
  ];
  it.each(cases)('install: %s', async (_n, patch, message) => {
    const template = await loadTemplate('ipxe', 'install.ipxe');
    const e = thrown(() => renderIpxe({ ...base, ...patch }, template, { server: SERVER }));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toMatch(message);
  });

  it('collects every problem of one render in details', async () => {
    const template = await loadTemplate('ipxe', 'install.ipxe');
    const e = thrown(() => renderIpxe({ ...base, node: 'A;B', kernelArgs: ['a\nb', '$x'] }, template, { server: SERVER }));
    expect(e.message).toMatch(/\(and 2 more\)$/);
    expect((e.details as { problems: string[] }).problems).toHaveLength(3);
  });

  it('localboot: a reason with $ or a newline', async () => {
    const template = await loadTemplate('ipxe', 'localboot.ipxe');
    for (const reason of ['boot ${x}', 'a\nshell', 'a || shell', 'a # b', 'a ; shell']) {
      const e = thrown(() => renderIpxe({ kind: 'localboot', node: 'valkyrie01', reason, method: 'exit' }, template, { server: SERVER }));
      expect(e.message, reason).toMatch(/^iPXE local-boot script for valkyrie01: reason: console text/);
    }
    const e = thrown(() => renderIpxe({ kind: 'localboot', node: 'valkyrie01', reason: 'ok', method: 'shell' as never }, template, { server: SERVER }));
    expect(e.message).toContain('method shell is not exit or sanboot');
  });

  it('discover: a bad MAC, a bad server URL or retry', async () => {
    const template = await loadTemplate('ipxe', 'discover.ipxe');
    const mac = thrown(() => renderIpxe({ kind: 'discover', mac: '52:54:00:ab:cd:ef;reboot', retrySeconds: 30 }, template, { server: SERVER }));
    expect(mac.code).toBe('request.invalid');
    const url = thrown(() => renderIpxe({ kind: 'discover', mac: '52:54:00:ab:cd:ef', retrySeconds: 30 }, template, { server: 'http://10.10.0.1/"' }));
    expect(url.message).toMatch(/server URL: URL .* contains a quote/);
    const retry = thrown(() => renderIpxe({ kind: 'discover', mac: '52:54:00:ab:cd:ef', retrySeconds: 0 }, template, { server: SERVER }));
    expect(retry.message).toContain('retrySeconds 0 must be an integer between 1 and 3600');
  });

  it('boot chain: bad server URL and counts', async () => {
    const template = await loadTemplate('ipxe', 'boot.ipxe');
    expect(thrown(() => renderBootChain(template, { server: 'http://10.10.0.1:8080/' })).message).toContain("must not end with '/'");
    expect(thrown(() => renderBootChain(template, { server: 'http://10.10.0.1:8080?x=1' })).message).toContain('must not have a query');
    expect(thrown(() => renderBootChain(template, { server: 'http://x/${next-server}' })).message).toMatch(/^iPXE boot chain: server URL/);
    expect(thrown(() => renderBootChain(template, { server: SERVER, maxAttempts: 0 })).message).toContain('maxAttempts 0');
    expect(renderBootChain(template, { server: SERVER, maxAttempts: 3, retryDelaySeconds: 2 })).toContain('iseq ${retries} 3 && goto failed ||');
  });
});

describe('template loader', () => {
  it('finds ipxe/ and kickstart/ from server/ (vitest) and from dist/server/ (built)', () => {
    expect(findTemplateRoot(join(REPO, 'server/netboot/render'))).toBe(REPO);
    expect(findTemplateRoot(join(REPO, 'dist/server/netboot/render'))).toBe(REPO);
    expect(findTemplateRoot()).toBe(REPO);
  });

  it('fails clearly where there are no templates', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-tpl-'));
    try {
      mkdirSync(join(dir, 'ipxe'));
      expect(() => findTemplateRoot(dir)).toThrow(/no ipxe\/ and kickstart\/ template folders found above/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes bare file names only', async () => {
    expect(() => templatePath('ipxe', '../kickstart/base.ks')).toThrow(/not a valid ipxe template name/);
    expect(() => templatePath('ipxe', 'base.ks')).toThrow(/not a valid ipxe template name/);
    expect(() => templatePath('kickstart', '/etc/passwd')).toThrow(/not a valid kickstart template name/);
    await expect(loadTemplate('ipxe', 'missing.ipxe')).rejects.toThrow(/cannot read template ipxe\/missing.ipxe .*no such file/);
  });

  it('reads from another root when asked', async () => {
    await expect(loadTemplate('ipxe', 'boot.ipxe', { root: REPO })).resolves.toMatch(/^#!ipxe\n/);
  });
});

/**
 * gpu: NVIDIA driver in place of nouveau.
 *
 * With blacklistNouveau (the default):
 *   - /etc/modprobe.d/fleet-blacklist-nouveau.conf: `blacklist nouveau` and
 *     `options nouveau modeset=0`;
 *   - kernel arguments `nomodeset modprobe.blacklist=nouveau`: RHEL family
 *     through `grubby --update-kernel=ALL --args=...` when `grubby --info=ALL`
 *     shows an entry without them; Debian through
 *     /etc/default/grub.d/fleet-gpu.cfg and `update-grub`.
 * Without it, fleet's two files are removed (kernel arguments are left: the
 * install may have set nomodeset for its own reasons).
 * Then the profile's driver packages are installed when missing.
 *
 * Last, the state of the running kernel decides the outcome: nouveau loaded,
 * or nvidia not loaded → 'needs-reboot' (fleet never reboots by itself);
 * nvidia loaded → `nvidia-smi -L` must succeed → 'ok' / 'changed', else
 * 'failed'. No NVIDIA device on PCI at all → 'failed'.
 */
import { describeFailure } from '../exec.js';
import { commandStep, defineRole, deleteStep, emptySurvey, fileStep, query, rootFs, textLines, type Verdict } from './base.js';
import { KNOWN_FAMILIES } from './types.js';
import { installStep, missingPackages } from './packages.js';

export const MODPROBE_PATH = '/etc/modprobe.d/fleet-blacklist-nouveau.conf';
export const MODPROBE_CONTENT = '# Managed by fleet\nblacklist nouveau\noptions nouveau modeset=0\n';
export const GRUB_D_PATH = '/etc/default/grub.d/fleet-gpu.cfg';
export const KERNEL_ARGS = ['nomodeset', 'modprobe.blacklist=nouveau'];
export const GRUB_D_CONTENT = `# Managed by fleet\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${KERNEL_ARGS.join(' ')}"\n`;

/** Kernel argument lists of `grubby --info=ALL` (one per boot entry). */
export function grubbyArgs(text: string): string[][] {
  return [...text.matchAll(/^args="?(.*?)"?$/gm)].map((m) => m[1]!.split(/\s+/).filter((a) => a !== ''));
}

export function loadedModules(text: string | undefined): Set<string> {
  return new Set(textLines(text).map((l) => l.split(' ')[0]!));
}

export const gpuRole = defineRole('gpu', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.gpu;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);

  if (spec.blacklistNouveau) {
    const mp = await fileStep(ctx, fsr, { path: MODPROBE_PATH, content: MODPROBE_CONTENT, mode: 0o644, group: 'blacklist' });
    if (mp) s.steps.push(mp);
    if (ctx.osFamily === 'rhel') {
      const r = await query(ctx, ['grubby', '--info=ALL']);
      if (r.code !== 0) {
        s.problems.push(`cannot read kernel arguments: ${describeFailure('grubby', ['--info=ALL'], r)}`);
      } else {
        const entries = grubbyArgs(r.stdout);
        if (entries.length === 0 || entries.some((args) => KERNEL_ARGS.some((k) => !args.includes(k)))) {
          s.steps.push(commandStep(ctx, ['grubby', '--update-kernel=ALL', `--args=${KERNEL_ARGS.join(' ')}`], { group: 'kernel-args', summary: `kernel arguments ${KERNEL_ARGS.join(' ')}` }));
        }
      }
    } else {
      const gd = await fileStep(ctx, fsr, { path: GRUB_D_PATH, content: GRUB_D_CONTENT, mode: 0o644, group: 'kernel-args' });
      if (gd) s.steps.push(gd, commandStep(ctx, ['update-grub'], { group: 'kernel-args' }));
    }
  } else {
    const mp = await deleteStep(ctx, fsr, MODPROBE_PATH, 'blacklist');
    if (mp) s.steps.push(mp);
    if (ctx.osFamily === 'debian') {
      const gd = await deleteStep(ctx, fsr, GRUB_D_PATH, 'kernel-args');
      if (gd) s.steps.push(gd, commandStep(ctx, ['update-grub'], { group: 'kernel-args' }));
    }
  }

  const pk = await missingPackages(ctx, spec.packages);
  s.problems.push(...pk.problems);
  if (pk.missing.length > 0) s.steps.push(installStep(ctx, pk.missing, 'packages'));

  s.verify = async (): Promise<Verdict> => {
    const modules = loadedModules(await fsr.read('/proc/modules'));
    if (modules.has('nouveau')) return { status: 'needs-reboot', message: 'nouveau is loaded: reboot to load the nvidia driver' };
    if (!modules.has('nvidia')) {
      const devices = await fsr.list('/sys/bus/pci/devices');
      if (devices.length > 0) {
        let nvidia = 0;
        for (const d of devices) {
          const vendor = (await fsr.read(`/sys/bus/pci/devices/${d}/vendor`).catch(() => undefined))?.trim().toLowerCase();
          const cls = (await fsr.read(`/sys/bus/pci/devices/${d}/class`).catch(() => undefined))?.trim().toLowerCase();
          if (vendor === '0x10de' && cls?.startsWith('0x03')) nvidia++;
        }
        if (nvidia === 0) return { status: 'failed', message: 'no NVIDIA GPU found on PCI' };
      }
      return { status: 'needs-reboot', message: 'the nvidia driver is not loaded: reboot to load it' };
    }
    const r = await query(ctx, ['nvidia-smi', '-L'], 30_000);
    if (r.code !== 0) return { status: 'failed', message: `nvidia driver loaded but ${describeFailure('nvidia-smi', ['-L'], r)}` };
    const n = textLines(r.stdout).filter((l) => l.startsWith('GPU ')).length;
    return { status: 'ok', message: `nvidia-smi sees ${n} GPU${n === 1 ? '' : 's'}` };
  };
  return s;
});

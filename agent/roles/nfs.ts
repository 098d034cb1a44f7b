/**
 * nfs: NFS mounts in /etc/fstab, mount points, and mounting.
 *
 * fstab: one line per declared mount, matched by mount point: a line with
 * the same mount point and other fields is replaced in place (duplicates
 * dropped), a missing one is appended; every other line stays as it is.
 * Mount points are created (0755). Targets that /proc/self/mounts (under
 * the root) does not list are mounted with `mount TARGET` — one by one, each
 * with its own time limit: a mount that fails is tried again a bounded number
 * of times (NFS_MOUNT_RETRY_MS, ~3.5 min: the storage node may not export
 * yet), then reported with its reason; the others still go ahead.
 *
 * The mount helper (mount.nfs) comes first: nfs-common (Debian) or
 * nfs-utils (RHEL) is installed when missing; the mounts wait for it (a
 * failed install leaves them unmounted, saying why). On an unknown family
 * the package is not installed: the role says so and mounts with what the
 * system has.
 */
import { StepError, commandStep, defineRole, emptySurvey, fileStep, rootFs, textLines, type Step } from './base.js';
import { installStep, missingPackages } from './packages.js';
import { ANY_FAMILY, type RoleContext } from './types.js';

/** The package with mount.nfs, per family (undefined: unknown family, nothing installed). */
export function nfsClientPackage(ctx: RoleContext): string | undefined {
  return ctx.osFamily === 'debian' ? 'nfs-common' : ctx.osFamily === 'rhel' ? 'nfs-utils' : undefined;
}
import type { NfsMountSpec } from '../../common/model.js';

export const FSTAB_PATH = '/etc/fstab';
export const MOUNT_TIMEOUT_MS = 60_000;
/**
 * Waits before each new try of a mount that failed: ~3.5 min in all. A
 * compute node often applies its roles before the storage node exports
 * (both installed at once; or the NFS server is up with an empty export
 * table, which mount.nfs answers "access denied", a failure even with `bg`):
 * the node waits for its storage, a bounded while, instead of failing.
 */
export const NFS_MOUNT_RETRY_MS: readonly number[] = [5_000, 10_000, 15_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000];

/** fstab and /proc/mounts escape spaces and such as \040. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function fstabLine(m: NfsMountSpec): string {
  return `${m.source} ${m.target} nfs ${m.options || 'defaults'} 0 0`;
}

/** fstab with the declared mounts in place. */
export function updateFstab(text: string, mounts: NfsMountSpec[]): string {
  const lines = textLines(text);
  const out: string[] = [];
  const placed = new Set<string>();
  const byTarget = new Map(mounts.map((m) => [m.target, m]));
  for (const line of lines) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) {
      out.push(line);
      continue;
    }
    const f = t.split(/\s+/);
    const target = f[1] !== undefined ? unescapeMount(f[1]) : undefined;
    const m = target !== undefined ? byTarget.get(target) : undefined;
    if (!m) {
      out.push(line);
      continue;
    }
    if (placed.has(m.target)) continue; // a second line for the same mount point
    placed.add(m.target);
    const want = fstabLine(m);
    out.push(f.join(' ') === want.split(/\s+/).join(' ') ? line : want);
  }
  for (const m of mounts) if (!placed.has(m.target)) out.push(fstabLine(m));
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/** Mount points listed in a /proc/mounts text. */
export function mountedTargets(text: string | undefined): Set<string> {
  const set = new Set<string>();
  for (const line of textLines(text)) {
    const f = line.split(' ');
    if (f[1]) set.add(unescapeMount(f[1]));
  }
  return set;
}

export const nfsRole = defineRole('nfs', ANY_FAMILY, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.nfs;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  let helperFailed: string | undefined;
  const pkg = nfsClientPackage(ctx);
  if (pkg === undefined) {
    s.notes.push(`no NFS client package installed on an unknown OS family (${ctx.osSource ?? ctx.osFamily}): mount.nfs must already be there`);
  } else if (spec.mounts.length > 0) {
    const pk = await missingPackages(ctx, [pkg]);
    if (pk.problems.length > 0) {
      s.problems.push(...pk.problems);
      return s;
    }
    if (pk.missing.length > 0) {
      const step = installStep(ctx, pk.missing, 'nfs client');
      const run = step.run;
      s.steps.push({
        ...step,
        run: async () => {
          try {
            await run();
          } catch (e) {
            helperFailed = `${pkg} (mount.nfs) could not be installed`;
            throw e;
          }
        },
      });
    }
  }
  const current = (await fsr.read(FSTAB_PATH)) ?? '';
  const fstab = await fileStep(ctx, fsr, { path: FSTAB_PATH, content: updateFstab(current, spec.mounts), mode: 0o644, group: 'fstab' });
  let fstabFailed = false;
  if (fstab) {
    const run = fstab.run;
    s.steps.push({
      ...fstab,
      run: async () => {
        try {
          await run();
        } catch (e) {
          fstabFailed = true;
          throw e;
        }
      },
    });
  }
  const mounted = mountedTargets(await fsr.read('/proc/self/mounts'));
  const rootReal = await fsr.resolve('/');
  for (const m of spec.mounts) {
    const group = `mount ${m.target}`;
    const st = await fsr.stat(m.target);
    if (st && !st.isDirectory()) {
      s.problems.push(`${m.target} exists and is not a directory`);
      continue;
    }
    if (!st) {
      s.steps.push({
        change: { path: m.target, action: 'create', summary: `mkdir ${m.target}` },
        group,
        run: async () => {
          await fsr.mkdirp(m.target, 0o755);
        },
      });
    }
    if (mounted.has(m.target)) continue;
    const argv = ctx.root === '/' ? ['mount', m.target] : ['mount', '--fstab', `${rootReal}${FSTAB_PATH}`, '--target-prefix', rootReal, m.target];
    const step: Step = commandStep(ctx, argv, { group, timeoutMs: MOUNT_TIMEOUT_MS, summary: `mount ${m.target}` });
    const run = step.run;
    const delays = ctx.retryDelaysMs?.nfsMount ?? NFS_MOUNT_RETRY_MS;
    s.steps.push({
      ...step,
      run: async () => {
        if (fstabFailed) throw new StepError(`not mounted: ${FSTAB_PATH} could not be written`);
        if (helperFailed) throw new StepError(`not mounted: ${helperFailed}`);
        for (let attempt = 0; ; attempt++) {
          try {
            await run();
            return;
          } catch (e) {
            if (!(e instanceof StepError) || attempt >= delays.length) {
              if (e instanceof StepError && attempt > 0) throw new StepError(`${e.message} (after ${attempt + 1} tries)`);
              throw e;
            }
            ctx.log(`nfs: mount ${m.target} failed (${e.message.split('\n')[0]}): its server may not export it yet; trying again in ${Math.round(delays[attempt]! / 1000)} s (${attempt + 1} of ${delays.length})`);
            await new Promise((r) => setTimeout(r, delays[attempt]));
            // Mounted meanwhile (a bg mount that went through, or someone else): done.
            if (mountedTargets(await fsr.read('/proc/self/mounts')).has(m.target)) return;
          }
        }
      },
    });
  }
  return s;
});

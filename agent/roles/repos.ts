/**
 * repos: the package repositories of the profile.
 *
 * RHEL family: one /etc/yum.repos.d/fleet-NAME.repo per RepoSpec. Debian:
 * /etc/apt/sources.list.d/fleet-NAME.list (a flat repository line). Files
 * matching the profile's `remove` globs are deleted (backed up first), never
 * fleet's own. fleet-*.repo/.list files of repositories no longer declared
 * are deleted too (they are fleet's). After any change: `dnf clean all` /
 * `apt-get update`.
 */
import type { RepoSpec } from '../../common/model.js';
import { commandStep, defineRole, deleteStep, emptySurvey, fileStep, rootFs, TIMEOUT } from './base.js';
import { KNOWN_FAMILIES, type RoleContext } from './types.js';

export const HEADER = '# Managed by fleet: local changes are overwritten.\n';

export function repoDir(ctx: RoleContext): string {
  return ctx.osFamily === 'rhel' ? '/etc/yum.repos.d' : '/etc/apt/sources.list.d';
}

export function repoFileName(ctx: RoleContext, name: string): string {
  return ctx.osFamily === 'rhel' ? `fleet-${name}.repo` : `fleet-${name}.list`;
}

export function renderRepo(ctx: RoleContext, r: RepoSpec): string {
  if (ctx.osFamily === 'rhel') {
    return `${HEADER}[${r.name}]\nname=${r.name}\nbaseurl=${r.baseurl}\ngpgcheck=${r.gpgcheck ? 1 : 0}\nenabled=${r.enabled ? 1 : 0}\n`;
  }
  const line = `deb ${r.gpgcheck ? '' : '[trusted=yes] '}${r.baseurl} ./`;
  return `${HEADER}# ${r.name}\n${r.enabled ? '' : '# (disabled) '}${line}\n`;
}

/** Shell-style glob (* ?) of a file name → RegExp. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export const reposRole = defineRole('repos', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.repos;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  const dir = repoDir(ctx);
  const present = await fsr.list(dir);
  const wanted = new Set(spec.repos.map((r) => repoFileName(ctx, r.name)));
  const isOurs = (f: string): boolean => f.startsWith('fleet-');

  // Files to remove: the profile's globs (never fleet's), then fleet's files no longer declared.
  const globs = spec.remove.map(globToRegExp);
  const ext = ctx.osFamily === 'rhel' ? '.repo' : '.list';
  for (const f of present) {
    const doomed = isOurs(f) ? f.endsWith(ext) && !wanted.has(f) : globs.some((g) => g.test(f));
    if (!doomed) continue;
    const st = await fsr.stat(`${dir}/${f}`);
    if (!st?.isFile()) continue;
    const step = await deleteStep(ctx, fsr, `${dir}/${f}`, `${dir}/${f}`);
    if (step) s.steps.push(step);
  }
  for (const r of spec.repos) {
    const path = `${dir}/${repoFileName(ctx, r.name)}`;
    const step = await fileStep(ctx, fsr, { path, content: renderRepo(ctx, r), mode: 0o644, group: path });
    if (step) s.steps.push(step);
  }
  if (s.steps.length > 0) {
    s.steps.push(
      ctx.osFamily === 'rhel'
        ? commandStep(ctx, ['dnf', 'clean', 'all'], { timeoutMs: TIMEOUT.command })
        : commandStep(ctx, ['apt-get', 'update'], { timeoutMs: TIMEOUT.install, env: { DEBIAN_FRONTEND: 'noninteractive' } }),
    );
  }
  return s;
});

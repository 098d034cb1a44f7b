/**
 * repos: the package repositories of the profile.
 *
 * RHEL family: one /etc/yum.repos.d/fleet-NAME.repo per RepoSpec. Debian:
 * /etc/apt/sources.list.d/fleet-NAME.list: a flat repository line
 * (`BASEURL ./`), or `BASEURL SUITE COMPONENTS` when the spec has a suite;
 * `[trusted=yes]` when gpgcheck is false; with `key: fleet`,
 * `[signed-by=/etc/apt/keyrings/fleet.gpg]` and that file (0644) written
 * from the cluster facts' repoKey (the fleet server's repository key,
 * docs/repo.md). Files
 * matching the profile's `remove` globs are deleted (backed up first), never
 * fleet's own. fleet-*.repo/.list files of repositories no longer declared
 * are deleted too (they are fleet's). After any change: `dnf clean all` /
 * `apt-get update`.
 */
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../../common/atomic-write.js';
import type { RepoSpec } from '../../common/model.js';
import { commandStep, defineRole, deleteStep, emptySurvey, fileStep, rootFs, StepError, TIMEOUT, type Step } from './base.js';
import { KNOWN_FAMILIES, type RoleContext } from './types.js';

export const HEADER = '# Managed by fleet: local changes are overwritten.\n';

export function repoDir(ctx: RoleContext): string {
  return ctx.osFamily === 'rhel' ? '/etc/yum.repos.d' : '/etc/apt/sources.list.d';
}

export function repoFileName(ctx: RoleContext, name: string): string {
  return ctx.osFamily === 'rhel' ? `fleet-${name}.repo` : `fleet-${name}.list`;
}

/** Where the fleet server's repository key is written on a Debian node. */
export const FLEET_KEYRING = '/etc/apt/keyrings/fleet.gpg';

/** One word of a sources line: the parser's patterns, re-checked here so no spec can add options or lines. */
const APT_WORD = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function renderRepo(ctx: RoleContext, r: RepoSpec): string {
  if (ctx.osFamily === 'rhel') {
    return `${HEADER}[${r.name}]\nname=${r.name}\nbaseurl=${r.baseurl}\ngpgcheck=${r.gpgcheck ? 1 : 0}\nenabled=${r.enabled ? 1 : 0}\n`;
  }
  const words = r.suite !== undefined ? [r.suite, ...(r.components?.length ? r.components : ['main'])] : [];
  for (const w of words) if (!APT_WORD.test(w)) throw new StepError(`repository ${r.name}: ${JSON.stringify(w)} is not a valid apt suite or component`);
  const where = r.suite !== undefined ? words.join(' ') : './';
  const options = r.key === 'fleet' ? `[signed-by=${FLEET_KEYRING}] ` : r.gpgcheck ? '' : '[trusted=yes] ';
  const line = `deb ${options}${r.baseurl} ${where}`;
  return `${HEADER}# ${r.name}\n${r.enabled ? '' : '# (disabled) '}${line}\n`;
}

/**
 * The step that writes the fleet server's repository key (binary, 0644), or
 * undefined when it is already there. The bytes are compared as bytes
 * (fileStep compares text, which a binary keyring is not).
 */
export async function keyringStep(ctx: RoleContext, fsr: ReturnType<typeof rootFs>, key: Buffer): Promise<Step | undefined> {
  const st = await fsr.stat(FLEET_KEYRING);
  if (st && !st.isFile()) throw new StepError(`${FLEET_KEYRING} exists and is not a regular file`);
  const current = st ? await fs.readFile(await fsr.resolve(FLEET_KEYRING)).catch(() => undefined) : undefined;
  const same = current !== undefined && current.equals(key);
  if (same && (st!.mode & 0o7777) === 0o644) return undefined;
  return {
    change: { path: FLEET_KEYRING, action: current === undefined ? 'create' : 'update', summary: `${current === undefined ? 'create' : 'update'} ${FLEET_KEYRING} (the fleet server's repository key, ${key.length} bytes)` },
    group: FLEET_KEYRING,
    run: async () => {
      await fsr.mkdirp('/etc/apt/keyrings', 0o755);
      if (current !== undefined && !same) await fsr.backupOnce(FLEET_KEYRING);
      await writeFileAtomic(await fsr.resolve(FLEET_KEYRING), key, { mode: 0o644 });
    },
  };
}

/** The cluster facts' repository key as bytes, or undefined when the server sent none. */
export function fleetKeyOf(ctx: RoleContext): Buffer | undefined {
  const b64 = ctx.settings.cluster.repoKey;
  const key = b64 ? Buffer.from(b64, 'base64') : undefined;
  return key && key.length > 0 ? key : undefined;
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
  const keyed = ctx.osFamily === 'debian' ? spec.repos.filter((r) => r.key === 'fleet').map((r) => r.name) : [];
  const key = keyed.length > 0 ? fleetKeyOf(ctx) : undefined;
  if (key) {
    const step = await keyringStep(ctx, fsr, key);
    if (step) s.steps.push(step);
  } else if (keyed.length > 0) {
    // apt would refuse these repositories (NO_PUBKEY): leave their files as they are, say why.
    s.problems.push(`repository ${keyed.join(', ')} uses key: fleet, but the server sent no repository key (the server has none until fleet repo add or fetch makes the repository)`);
  }
  for (const r of spec.repos) {
    if (keyed.includes(r.name) && !key) continue;
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

/**
 * nfsServer (fleet.yaml `nfs_server`): this node exports directories over
 * NFS, as thor does in seed 000 §7.1.
 *
 *   - package nfs-utils (RHEL family) / nfs-kernel-server (Debian), queried
 *     with rpm -q / dpkg-query -W and installed only when missing;
 *   - each exported directory created (0755) when missing;
 *   - /etc/exports.d/fleet.exports (0644), one `PATH CLIENTS(OPTIONS)` line
 *     per export, fleet's own file: /etc/exports and other files there stay
 *     the site's. No exports: the file is removed (and the exports reloaded);
 *     nothing is installed or started for an empty list;
 *   - `exportfs -ra` when the file changed, or when /var/lib/nfs/etab (what
 *     exportfs last exported) lacks a declared path: a reload that failed
 *     last time is made again, not forgotten because the file is in place;
 *   - `systemctl enable --now nfs-server` unless `systemctl is-enabled` and
 *     `systemctl is-active` already say so (Debian's nfs-kernel-server ships
 *     nfs-server.service as the real unit too).
 *
 * All of it is one group: a failed install, mkdir or write stops the rest
 * (no reload of exports whose directory or package is missing).
 */
import type { NfsExportSpec } from '../../common/model.js';
import { commandStep, defineRole, deleteStep, emptySurvey, fileStep, query, rootFs, SYSTEMD_ENABLED, textLines } from './base.js';
import { installStep, missingPackages } from './packages.js';
import { KNOWN_FAMILIES, type RoleContext } from './types.js';

export const EXPORTS_PATH = '/etc/exports.d/fleet.exports';
/** exportfs's record of what it exported (both families). */
export const ETAB_PATH = '/var/lib/nfs/etab';
export const NFS_SERVICE = 'nfs-server';

const GROUP = 'nfs-server';

export function nfsServerPackage(ctx: RoleContext): string {
  return ctx.osFamily === 'debian' ? 'nfs-kernel-server' : 'nfs-utils';
}

/** The content of fleet's exports file. */
export function renderExports(exports: readonly NfsExportSpec[]): string {
  return [
    "# Managed by fleet (the profile's nfs_server role): local changes are overwritten.",
    '# Exports of your own belong in /etc/exports or another file of /etc/exports.d.',
    ...exports.map((e) => `${e.path} ${e.clients}(${e.options})`),
    '',
  ].join('\n');
}

/** The exported paths listed in an etab text (`PATH<TAB>CLIENT(OPTIONS)`, octal escapes as \040). */
export function etabPaths(text: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const line of textLines(text)) {
    const p = line.split(/\s/)[0];
    if (p) out.add(p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export const nfsServerRole = defineRole('nfsServer', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.nfsServer;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  const reload = commandStep(ctx, ['exportfs', '-ra'], { group: GROUP });

  if (spec.exports.length === 0) {
    const del = await deleteStep(ctx, fsr, EXPORTS_PATH, GROUP);
    if (del) s.steps.push(del, reload);
    return s;
  }

  const pk = await missingPackages(ctx, [nfsServerPackage(ctx)]);
  s.problems.push(...pk.problems);
  if (pk.missing.length > 0) s.steps.push(installStep(ctx, pk.missing, GROUP));

  const paths = [...new Set(spec.exports.map((e) => e.path))];
  let badPath = false;
  for (const p of paths) {
    const st = await fsr.stat(p);
    if (st && !st.isDirectory()) {
      s.problems.push(`${p} exists and is not a directory: not exported`);
      badPath = true;
    } else if (!st) {
      s.steps.push({
        change: { path: p, action: 'create', summary: `mkdir ${p}` },
        group: GROUP,
        run: async () => {
          await fsr.mkdirp(p, 0o755);
        },
      });
    }
  }
  // Writing an exports line for a path that is a file would only make exportfs fail.
  if (badPath) return s;

  const file = await fileStep(ctx, fsr, { path: EXPORTS_PATH, content: renderExports(spec.exports), mode: 0o644, group: GROUP });
  if (file) s.steps.push(file);
  const exported = etabPaths(await fsr.read(ETAB_PATH));
  if (file || paths.some((p) => !exported.has(p))) s.steps.push(reload);

  const en = await query(ctx, ['systemctl', 'is-enabled', NFS_SERVICE]);
  const ac = await query(ctx, ['systemctl', 'is-active', NFS_SERVICE]);
  if (!SYSTEMD_ENABLED.has(en.stdout.trim()) || ac.stdout.trim() !== 'active') {
    s.steps.push(commandStep(ctx, ['systemctl', 'enable', '--now', NFS_SERVICE], { group: GROUP }));
  }
  return s;
});

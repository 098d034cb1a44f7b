/**
 * Which packages are missing, and the step that installs them.
 *
 * RHEL family: plain names through `rpm -q`, groups (@name, @^environment)
 * through `dnf group list --installed --ids`, module streams (@name:stream)
 * through `dnf module list --installed NAME`. Debian: `dpkg-query -W`.
 * These are read-only queries; only the install is a step.
 */
import { describeFailure } from '../exec.js';
import { commandStep, query, TIMEOUT, type Step } from './base.js';
import type { RoleContext } from './types.js';

export type MissingResult = { missing: string[]; problems: string[] };

const isGroup = (p: string): boolean => p.startsWith('@') && !p.includes(':');
const isModule = (p: string): boolean => p.startsWith('@') && p.includes(':');

export async function missingPackages(ctx: RoleContext, pkgs: string[]): Promise<MissingResult> {
  const wanted = [...new Set(pkgs)];
  if (wanted.length === 0) return { missing: [], problems: [] };
  const missing: string[] = [];
  const problems: string[] = [];
  if (ctx.osFamily === 'debian') {
    const groups = wanted.filter((p) => p.startsWith('@'));
    for (const g of groups) problems.push(`package group or module ${g} is RHEL-only; list Debian packages by name`);
    const plain = wanted.filter((p) => !p.startsWith('@'));
    if (plain.length > 0) {
      const argv = ['dpkg-query', '-W', '--showformat=${Package}\\t${Status}\\n', ...plain];
      const r = await query(ctx, argv);
      if (r.error || r.timedOut) {
        problems.push(`cannot query packages: ${describeFailure(argv[0]!, argv.slice(1), r)}`);
        return { missing, problems };
      }
      // Exit 1 with "no packages found matching X" on stderr for unknown names: they are missing.
      const installed = new Set(
        r.stdout
          .split('\n')
          .map((l) => l.split('\t'))
          .filter(([, status]) => status?.trim() === 'install ok installed')
          .map(([name]) => name!.replace(/:[a-z0-9]+$/, '')),
      );
      for (const p of plain) if (!installed.has(p)) missing.push(p);
    }
    return { missing, problems };
  }

  const plain = wanted.filter((p) => !p.startsWith('@'));
  if (plain.length > 0) {
    const argv = ['rpm', '-q', ...plain];
    const r = await query(ctx, argv);
    if (r.error || r.timedOut) {
      problems.push(`cannot query packages: ${describeFailure(argv[0]!, argv.slice(1), r)}`);
      return { missing, problems };
    }
    // rpm -q exits with the number of packages not installed and names each on stdout.
    const notInstalled = new Set([...r.stdout.matchAll(/^package (\S+) is not installed$/gm)].map((m) => m[1]!));
    for (const p of plain) if (notInstalled.has(p)) missing.push(p);
  }
  const groups = wanted.filter(isGroup);
  if (groups.length > 0) {
    const argv = ['dnf', '-q', 'group', 'list', '--installed', '--ids'];
    const r = await query(ctx, argv);
    if (r.code !== 0) {
      problems.push(`cannot list installed package groups: ${describeFailure(argv[0]!, argv.slice(1), r)}`);
    } else {
      // dnf 4: "   Infiniband Support (infiniband)"
      const ids = new Set([...r.stdout.matchAll(/\(([A-Za-z0-9._+-]+)\)\s*$/gm)].map((m) => m[1]!));
      for (const g of groups) if (!ids.has(g.replace(/^@\^?/, ''))) missing.push(g);
    }
  }
  for (const m of wanted.filter(isModule)) {
    const [name, stream] = m.slice(1).split(':') as [string, string];
    const argv = ['dnf', '-q', 'module', 'list', '--installed', name];
    const r = await query(ctx, argv);
    const re = new RegExp(`^${name.replace(/[.+]/g, '\\$&')}\\s+${stream.replace(/[.+]/g, '\\$&')}\\b`, 'm');
    // Exit 1 "No matching Modules to list" when nothing of it is installed.
    if (r.error || r.timedOut) problems.push(`cannot list installed modules: ${describeFailure(argv[0]!, argv.slice(1), r)}`);
    else if (r.code !== 0 || !re.test(r.stdout)) missing.push(m);
  }
  return { missing, problems };
}

/** The install step for `missing` (dnf / apt-get, non-interactive). */
export function installStep(ctx: RoleContext, missing: string[], group?: string): Step {
  if (ctx.osFamily === 'debian') {
    return commandStep(ctx, ['apt-get', 'install', '-y', ...missing], {
      timeoutMs: TIMEOUT.install,
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      summary: `install ${missing.join(' ')}`,
      ...(group !== undefined ? { group } : {}),
    });
  }
  return commandStep(ctx, ['dnf', 'install', '-y', ...missing], {
    timeoutMs: TIMEOUT.install,
    summary: `install ${missing.join(' ')}`,
    ...(group !== undefined ? { group } : {}),
  });
}

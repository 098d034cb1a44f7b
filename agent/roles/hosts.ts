/**
 * hosts: the cluster's hosts in a managed block of /etc/hosts.
 *
 *   # BEGIN fleet managed
 *   10.10.0.1  odin.cluster.local odin
 *   10.10.1.1  thor.cluster.local thor
 *   # END fleet managed
 *
 * Lines outside the block are untouched. `enabled: false` removes the block.
 * A missing /etc/hosts is created with the usual localhost lines first.
 */
import { defineRole, emptySurvey, fileStep, rootFs } from './base.js';
import { setBlock } from './block.js';
import { ANY_FAMILY, type ClusterFacts } from './types.js';

export const HOSTS_PATH = '/etc/hosts';

const LOCALHOST = '127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n';

/** The block's lines: address, FQDN, short name; each address once, in the given order. */
export function hostsBlock(c: ClusterFacts): string[] {
  const seen = new Set<string>();
  const rows: [string, string][] = [];
  for (const h of c.hosts) {
    if (seen.has(h.name)) continue;
    seen.add(h.name);
    const names = h.name.includes('.') || !c.domain ? h.name : `${h.name}.${c.domain} ${h.name}`;
    rows.push([h.address, names]);
  }
  const width = Math.max(0, ...rows.map(([a]) => a.length)) + 2;
  return rows.map(([a, n]) => `${a.padEnd(width)}${n}`);
}

export const hostsRole = defineRole('hosts', ANY_FAMILY, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.hosts;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  const current = await fsr.read(HOSTS_PATH);
  const base = current ?? (spec.enabled ? LOCALHOST : '');
  const next = setBlock(base, spec.enabled ? hostsBlock(ctx.settings.cluster) : undefined, HOSTS_PATH);
  if (current === undefined && !spec.enabled) return s;
  const step = await fileStep(ctx, fsr, { path: HOSTS_PATH, content: next, mode: 0o644 });
  if (step) s.steps.push(step);
  return s;
});

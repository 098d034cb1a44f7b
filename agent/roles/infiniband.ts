/**
 * infiniband: the profile's InfiniBand packages (default @infiniband, the
 * "Infiniband Support" group) and, on the RHEL family, the rdma service:
 * `systemctl enable --now rdma` unless `systemctl is-enabled rdma` and
 * `systemctl is-active rdma` already say so. Debian has no rdma.service
 * (rdma-core loads the modules through udev), so only packages there.
 */
import { commandStep, defineRole, emptySurvey, query, SYSTEMD_ENABLED } from './base.js';
import { KNOWN_FAMILIES } from './types.js';
import { installStep, missingPackages } from './packages.js';

export const infinibandRole = defineRole('infiniband', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.infiniband;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const pk = await missingPackages(ctx, spec.packages);
  s.problems.push(...pk.problems);
  if (pk.missing.length > 0) s.steps.push(installStep(ctx, pk.missing, 'packages'));
  if (ctx.osFamily === 'rhel') {
    const en = await query(ctx, ['systemctl', 'is-enabled', 'rdma']);
    const ac = await query(ctx, ['systemctl', 'is-active', 'rdma']);
    if (!SYSTEMD_ENABLED.has(en.stdout.trim()) || ac.stdout.trim() !== 'active') {
      s.steps.push(commandStep(ctx, ['systemctl', 'enable', '--now', 'rdma'], { group: 'packages' }));
    }
  }
  return s;
});

/**
 * chrony: the node's time client, pointed at the cluster's NTP servers.
 *
 * Installs the chrony package when it is missing (the same name on both
 * families; a minimal Debian image has no NTP client), then writes
 * /etc/chrony.conf (RHEL) or /etc/chrony/chrony.conf (Debian) whole,
 * as in the seed's client section; restarts chronyd / chrony only when the
 * file changed, and enables the service when its wants link is missing.
 * A failed install skips the rest (one group).
 */
import { commandStep, defineRole, emptySurvey, fileStep, rootFs } from './base.js';
import { installStep, missingPackages } from './packages.js';
import { KNOWN_FAMILIES, type RoleContext } from './types.js';

/** The package is called chrony on Debian and on RHEL. */
export const CHRONY_PACKAGE = 'chrony';
const GROUP = 'chrony';

export function chronyPaths(ctx: RoleContext): { conf: string; service: string; drift: string } {
  return ctx.osFamily === 'rhel'
    ? { conf: '/etc/chrony.conf', service: 'chronyd', drift: '/var/lib/chrony/drift' }
    : { conf: '/etc/chrony/chrony.conf', service: 'chrony', drift: '/var/lib/chrony/chrony.drift' };
}

export function renderChrony(ctx: RoleContext, servers: string[], makestep: string): string {
  const { drift } = chronyPaths(ctx);
  const [threshold = '1.0', limit = '3'] = makestep.split(/\s+/);
  return [
    '# Managed by fleet: local changes are overwritten.',
    '# Time sources',
    ...servers.map((s) => `server ${s} iburst`),
    '',
    '# Record the rate at which the system clock gains/losses time.',
    `driftfile ${drift}`,
    '',
    `# Allow the system clock to be stepped in the first ${limit} updates`,
    `# if its offset is larger than ${threshold} second(s).`,
    `makestep ${threshold} ${limit}`,
    '',
    '# Enable kernel synchronization of the real-time clock (RTC).',
    'rtcsync',
    '',
    '# Specify directory for log files.',
    'logdir /var/log/chrony',
    '',
  ].join('\n');
}

export const chronyRole = defineRole('chrony', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.chrony;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  const { conf, service } = chronyPaths(ctx);
  const pk = await missingPackages(ctx, [CHRONY_PACKAGE]);
  s.problems.push(...pk.problems);
  if (pk.problems.length > 0) return s;
  if (pk.missing.length > 0) s.steps.push(installStep(ctx, pk.missing, GROUP));
  const step = await fileStep(ctx, fsr, { path: conf, content: renderChrony(ctx, spec.servers, spec.makestep), mode: 0o644, group: GROUP });
  const enabled = pk.missing.length === 0 && (await fsr.lexists(`/etc/systemd/system/multi-user.target.wants/${service}.service`));
  if (step) {
    s.steps.push(step);
    s.steps.push(commandStep(ctx, ['systemctl', 'restart', service], { group: GROUP }));
  }
  if (!enabled) s.steps.push(commandStep(ctx, ['systemctl', 'enable', '--now', service], { group: GROUP }));
  return s;
});

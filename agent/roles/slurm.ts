/**
 * slurm: munge and Slurm's daemons, with the key and slurm.conf the server
 * derived for the cluster (docs/slurm.md). Both arrive in the cluster facts
 * (`slurm: {conf, mungeKeyB64}`), only for nodes whose profile has the role.
 *
 * Steps, one group (a failed step skips the rest: no restart after a failed
 * write, no daemon with the wrong key):
 *  - packages, queried first, installed when missing: Debian `munge
 *    slurm-client` + `slurmctld` (controller) / `slurmd` (compute) — not the
 *    slurm-wlm metapackage, which installs and starts both daemons; RHEL
 *    (EPEL) `munge slurm` + `slurm-slurmctld` / `slurm-slurmd`;
 *  - /etc/munge/munge.key, 0400 munge:munge (the munge user is looked up in
 *    ROOT/etc/passwd when the step runs, after the install that creates it).
 *    A secret: its change shows as "update /etc/munge/munge.key (secret,
 *    1024 bytes)", never with a diff, and no log line holds it;
 *  - /etc/slurm/slurm.conf 0644 (the same path on Debian 12 and EPEL), and
 *    /etc/slurm/cgroup.conf 0644 (CGROUP_CONF: no D-Bus needed);
 *  - the controller's StateSaveLocation (/var/spool/slurmctld, 0700
 *    slurm:slurm) and the compute node's SlurmdSpoolDir (/var/spool/slurmd,
 *    0755);
 *  - services: munge, then slurmctld (controller, both) and/or slurmd
 *    (compute, both). When its input changed (munge: the key;
 *    slurmctld/slurmd: slurm.conf or the key) or its package is installed
 *    now: `systemctl enable` if not enabled, then `systemctl restart` (which
 *    starts a stopped unit; Debian starts munge at install with a key of its
 *    own). Otherwise `systemctl enable --now` when not enabled, `systemctl
 *    start` when enabled but not running, nothing when both. A restart
 *    rather than `scontrol reconfigure`: adding a node needs a restart of
 *    slurmctld in Slurm 22.05 anyway, and it is one rule.
 */
import fs from 'node:fs/promises';
import { StepError, commandStep, defineRole, emptySurvey, fileStep, query, rootFs, type Step, type Survey } from './base.js';
import type { RootFs } from './fsroot.js';
import { installStep, missingPackages } from './packages.js';
import { KNOWN_FAMILIES, type RoleContext } from './types.js';
import { parsePasswd } from './users.js';

export const MUNGE_KEY_PATH = '/etc/munge/munge.key';
export const SLURM_CONF_PATH = '/etc/slurm/slurm.conf';
export const CGROUP_CONF_PATH = '/etc/slurm/cgroup.conf';
/**
 * cgroup.conf beside slurm.conf. slurm.conf uses proctrack/linuxproc and
 * task/none (no containment), yet slurmd 22.05 still initialises its cgroup
 * plugin, and on cgroup v2 that asks systemd over D-Bus for a scope: on a
 * node without a D-Bus system daemon (a minimal image) slurmd exits with
 * "Unable to initialize cgroup plugin" — measured in the lab. IgnoreSystemd
 * skips D-Bus; it does not apply to cgroup v1.
 */
export const CGROUP_CONF = [
  '# Managed by fleet (docs/slurm.md): local changes are overwritten.',
  '# No cgroup containment (slurm.conf: proctrack/linuxproc, task/none); slurmd still loads its',
  '# cgroup plugin, which on cgroup v2 asks systemd over D-Bus unless told not to.',
  'CgroupPlugin=autodetect',
  'IgnoreSystemd=yes',
  '',
].join('\n');
export const SLURMCTLD_STATE_DIR = '/var/spool/slurmctld';
export const SLURMD_SPOOL_DIR = '/var/spool/slurmd';
/** munged refuses keys shorter than this. */
export const MIN_MUNGE_KEY_BYTES = 32;

const GROUP = 'slurm';
const ENABLED = new Set(['enabled', 'enabled-runtime', 'static', 'alias', 'indirect', 'generated']);

export function slurmPackages(family: RoleContext['osFamily'], role: 'controller' | 'compute' | 'both'): string[] {
  const ctld = role !== 'compute';
  const slurmd = role !== 'controller';
  if (family === 'debian') return ['munge', 'slurm-client', ...(ctld ? ['slurmctld'] : []), ...(slurmd ? ['slurmd'] : [])];
  return ['munge', 'slurm', ...(ctld ? ['slurm-slurmctld'] : []), ...(slurmd ? ['slurm-slurmd'] : [])];
}

async function readBytes(fsr: RootFs, p: string): Promise<Buffer | undefined> {
  const real = await fsr.resolve(p);
  try {
    return await fs.readFile(real);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function userIds(fsr: RootFs, name: string): Promise<{ uid: number; gid: number } | undefined> {
  const u = parsePasswd(await fsr.read('/etc/passwd')).find((x) => x.name === name);
  return u ? { uid: u.uid, gid: u.gid } : undefined;
}

/** The NodeName= values of a slurm.conf (one per line; comments and other lines ignored). */
export function confNodeNames(conf: string): string[] {
  return [...conf.matchAll(/^NodeName=([^\s]+)/gm)].map((m) => m[1]!);
}

/** The first label of /etc/hostname's name, or undefined. */
export function hostShortName(text: string | undefined): string | undefined {
  const line = (text ?? '').split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  return line ? line.split('.')[0] : undefined;
}

const asRoot = (): boolean => process.getuid?.() === 0;

/**
 * The munge key step (and whether it writes new bytes, not only mode or
 * owner), or undefined when the file already holds the key with mode 0400
 * and owner munge.
 */
async function mungeKeyStep(fsr: RootFs, key: Buffer, mungeWillBeInstalled: boolean, s: Survey): Promise<{ step: Step; newBytes: boolean } | undefined> {
  const st = await fsr.stat(MUNGE_KEY_PATH);
  if (st && !st.isFile()) {
    s.problems.push(`${MUNGE_KEY_PATH} exists and is not a regular file`);
    return undefined;
  }
  const current = st ? await readBytes(fsr, MUNGE_KEY_PATH) : undefined;
  const owner = await userIds(fsr, 'munge');
  if (!owner && !mungeWillBeInstalled) {
    s.problems.push(`user munge is not in /etc/passwd although munge is installed: cannot own ${MUNGE_KEY_PATH}`);
    return undefined;
  }
  const same = current !== undefined && current.equals(key);
  const modeOk = st !== undefined && (st.mode & 0o7777) === 0o400;
  const ownerOk = !asRoot() || (owner !== undefined && st !== undefined && st.uid === owner.uid && st.gid === owner.gid);
  if (same && modeOk && ownerOk) return undefined;
  const what = same ? `${MUNGE_KEY_PATH}: mode 0400, owner munge` : `${current === undefined ? 'create' : 'update'} ${MUNGE_KEY_PATH} (secret, ${key.length} bytes)`;
  const step: Step = {
    // No diff, ever: the content is the cluster's key.
    change: { path: MUNGE_KEY_PATH, action: current === undefined ? 'create' : 'update', summary: what },
    group: GROUP,
    run: async () => {
      const ids = await userIds(fsr, 'munge');
      if (!ids) throw new StepError(`user munge is not in /etc/passwd (after installing munge): cannot own ${MUNGE_KEY_PATH}`);
      if (same) await fsr.chmodOwn(MUNGE_KEY_PATH, 0o400, ids);
      else await fsr.writeAtomic(MUNGE_KEY_PATH, key, { mode: 0o400, uid: ids.uid, gid: ids.gid, dirMode: 0o700 });
    },
  };
  return { step, newBytes: !same };
}

/** mkdir/chmod of a spool directory, owned by `user` (looked up when the step runs) or root. */
async function dirStep(fsr: RootFs, dir: string, mode: number, user: string | undefined, userWillBeInstalled: boolean, s: Survey): Promise<Step | undefined> {
  const st = await fsr.stat(dir);
  if (st && !st.isDirectory()) {
    s.problems.push(`${dir} exists and is not a directory`);
    return undefined;
  }
  const want = user ? await userIds(fsr, user) : { uid: 0, gid: 0 };
  if (user && !want && !userWillBeInstalled) {
    s.problems.push(`user ${user} is not in /etc/passwd although Slurm is installed: cannot own ${dir}`);
    return undefined;
  }
  const modeOk = st !== undefined && (st.mode & 0o7777) === mode;
  const ownerOk = !asRoot() || (want !== undefined && st !== undefined && st.uid === want.uid && st.gid === want.gid);
  if (modeOk && ownerOk) return undefined;
  const m = mode.toString(8).padStart(4, '0');
  return {
    change: { path: dir, action: st ? 'update' : 'create', summary: st ? `chmod ${m} ${dir}${user ? ` (owner ${user})` : ''}` : `mkdir ${dir} (${m}${user ? `, owner ${user}` : ''})` },
    group: GROUP,
    run: async () => {
      const ids = user ? await userIds(fsr, user) : { uid: 0, gid: 0 };
      if (!ids) throw new StepError(`user ${user} is not in /etc/passwd (after installing Slurm): cannot own ${dir}`);
      if (st) await fsr.chmodOwn(dir, mode, ids);
      else await fsr.mkdirp(dir, mode, ids);
    },
  };
}

/**
 * enable/start/restart of one service, from `systemctl is-enabled/is-active`
 * (read-only queries). `changed`: its input changed or its package is being
 * installed now (Debian starts a daemon at install, with the key it made
 * itself): then `restart`, which also starts a stopped unit.
 */
/** Whether systemd has the unit enabled (or static, ...) and running: read-only queries. */
async function serviceState(ctx: RoleContext, service: string): Promise<{ enabled: boolean; active: boolean }> {
  const enabled = ENABLED.has((await query(ctx, ['systemctl', 'is-enabled', service])).stdout.trim());
  const active = (await query(ctx, ['systemctl', 'is-active', service])).stdout.trim() === 'active';
  return { enabled, active };
}

async function serviceSteps(ctx: RoleContext, service: string, changed: boolean): Promise<Step[]> {
  const { enabled, active } = await serviceState(ctx, service);
  const steps: Step[] = [];
  if (changed) {
    if (!enabled) steps.push(commandStep(ctx, ['systemctl', 'enable', service], { group: GROUP }));
    steps.push(commandStep(ctx, ['systemctl', 'restart', service], { group: GROUP }));
  } else if (!enabled) {
    steps.push(commandStep(ctx, ['systemctl', 'enable', ...(active ? [] : ['--now']), service], { group: GROUP }));
  } else if (!active) {
    steps.push(commandStep(ctx, ['systemctl', 'start', service], { group: GROUP }));
  }
  return steps;
}

export const slurmRole = defineRole('slurm', KNOWN_FAMILIES, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.slurm;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const facts = ctx.settings.cluster.slurm;
  if (!facts || typeof facts.conf !== 'string' || typeof facts.mungeKeyB64 !== 'string' || facts.conf === '') {
    s.problems.push('the server sent no slurm.conf and munge key: the cluster needs exactly one node whose profile has slurm role controller or both (see the server\'s fleet.yaml)');
    return s;
  }
  const key = Buffer.from(facts.mungeKeyB64, 'base64');
  if (key.length < MIN_MUNGE_KEY_BYTES) {
    s.problems.push(`the munge key the server sent is ${key.length} bytes; munged needs at least ${MIN_MUNGE_KEY_BYTES}`);
    return s;
  }
  const fsr = rootFs(ctx);
  const ctld = spec.role !== 'compute';
  const slurmd = spec.role !== 'controller';

  const pk = await missingPackages(ctx, slurmPackages(ctx.osFamily, spec.role));
  s.problems.push(...pk.problems);
  if (pk.problems.length > 0) return s;
  if (pk.missing.length > 0) s.steps.push(installStep(ctx, pk.missing, GROUP));
  const mungeMissing = pk.missing.includes('munge');
  const slurmMissing = pk.missing.some((p) => p !== 'munge');

  const keyStep = await mungeKeyStep(fsr, key, mungeMissing, s);
  if (keyStep) s.steps.push(keyStep.step);
  const confStep = await fileStep(ctx, fsr, { path: SLURM_CONF_PATH, content: facts.conf, mode: 0o644, group: GROUP });
  if (confStep) s.steps.push(confStep);
  const cgroupStep = await fileStep(ctx, fsr, { path: CGROUP_CONF_PATH, content: CGROUP_CONF, mode: 0o644, group: GROUP });
  if (cgroupStep) s.steps.push(cgroupStep);
  if (ctld) {
    const d = await dirStep(fsr, SLURMCTLD_STATE_DIR, 0o700, 'slurm', slurmMissing, s);
    if (d) s.steps.push(d);
  }
  if (slurmd) {
    const d = await dirStep(fsr, SLURMD_SPOOL_DIR, 0o755, undefined, slurmMissing, s);
    if (d) s.steps.push(d);
  }
  // A key changed only in mode or owner needs no restart; new bytes do.
  const keyChanged = keyStep?.newBytes === true;
  const confChanged = (confStep !== undefined && confStep.change.diff !== undefined) || (cgroupStep !== undefined && cgroupStep.change.diff !== undefined);
  const installing = pk.missing.length > 0;
  s.steps.push(...(await serviceSteps(ctx, 'munge', keyChanged || installing)));
  const listed = confNodeNames(facts.conf);
  if (ctld) {
    if (listed.length === 0) s.notes.push('slurmctld not started: slurm.conf lists no compute node yet (the server adds each once its inventory reports CPUs and memory)');
    else s.steps.push(...(await serviceSteps(ctx, 'slurmctld', confChanged || keyChanged || installing)));
  }
  // The daemon this node does not run (both packages in the image, a profile that changed):
  // stopped and disabled, so a compute node never starts a second controller at its next boot.
  for (const [svc, wanted] of [['slurmctld', ctld], ['slurmd', slurmd]] as const) {
    if (wanted) continue;
    const { enabled, active } = await serviceState(ctx, svc);
    if (enabled || active) s.steps.push(commandStep(ctx, ['systemctl', 'disable', '--now', svc], { group: GROUP, summary: `systemctl disable --now ${svc} (not this node's daemon: role ${spec.role})` }));
  }
  if (slurmd) {
    const me = hostShortName(await fsr.read('/etc/hostname'));
    if (me === undefined || !listed.includes(me)) {
      s.notes.push(`slurmd not started: slurm.conf does not list ${me ?? 'this node (no /etc/hostname)'} yet (the server adds a compute node once its inventory reports CPUs and memory; that new slurm.conf starts it)`);
    } else {
      s.steps.push(...(await serviceSteps(ctx, 'slurmd', confChanged || keyChanged || installing)));
    }
  }
  return s;
});

/**
 * The machinery every role shares.
 *
 * A role is written as one function, `survey(ctx)`, that looks at the node
 * (files under the root, read-only queries) and returns the `Step`s that
 * would bring it to the declared state, plus problems it cannot fix. `plan`
 * runs survey and returns the steps' changes; `apply` runs survey and then
 * the steps. So plan and apply cannot disagree, and plan never runs a step.
 *
 * Steps are grouped: when a step fails, the later steps of its group are
 * skipped (no restart after a failed write, no mount after a failed mkdir),
 * and other groups go on (one failed NFS mount does not stop the others).
 */
import { describeFailure, formatArgv, type RunResult } from '../exec.js';
import { RootFs, UnsafePathError, type ResolveOptions } from './fsroot.js';
import { unifiedDiff } from './textdiff.js';
import type { Change, OsFamily, Role, RoleContext, RoleName, RoleResult, RoleStatus } from './types.js';

export class StepError extends Error {
  override readonly name = 'StepError';
}

export interface Step {
  change: Change;
  /** Steps of one group stop at its first failure; default: the role's name. */
  group?: string;
  run(): Promise<void>;
}

export interface Verdict {
  status: 'ok' | 'needs-reboot' | 'failed';
  message?: string;
}

export interface Survey {
  steps: Step[];
  /** What cannot be brought to the declared state (the role fails, other steps still run). */
  problems: string[];
  /** Lines for the result message that are neither changes nor failures. */
  notes: string[];
  /** Run last (after the steps on apply; in a dry run with dry = true): reboot needed, verification. */
  verify?: (dry: boolean) => Promise<Verdict>;
}

export function emptySurvey(): Survey {
  return { steps: [], problems: [], notes: [] };
}

/** Default limits for commands. */
export const TIMEOUT = {
  /** Read-only queries: rpm -q, dpkg-query, grubby --info, systemctl is-enabled. */
  query: 60_000,
  /** systemctl restart, mount, useradd, ... */
  command: 120_000,
  /** Package installs. */
  install: 30 * 60_000,
};

/** What `systemctl is-enabled` prints for a unit that starts at boot (or needs no enabling). */
export const SYSTEMD_ENABLED: ReadonlySet<string> = new Set(['enabled', 'enabled-runtime', 'static', 'alias', 'indirect', 'generated']);

/** Runs a command that changes the node; a non-zero exit throws StepError. */
export async function exec(ctx: RoleContext, argv: string[], timeoutMs = TIMEOUT.command, env?: Record<string, string>): Promise<RunResult> {
  const [cmd, ...args] = argv;
  ctx.log(`run: ${formatArgv(cmd!, args)}`);
  const r = await ctx.runner.run(cmd!, args, { timeoutMs, ...(env ? { env } : {}) });
  if (r.code !== 0) throw new StepError(describeFailure(cmd!, args, r));
  return r;
}

/** Runs a read-only query (allowed while planning); never throws for a non-zero exit. */
export async function query(ctx: RoleContext, argv: string[], timeoutMs = TIMEOUT.query): Promise<RunResult> {
  const [cmd, ...args] = argv;
  return ctx.runner.run(cmd!, args, { timeoutMs, env: { LC_ALL: 'C' } });
}

export function commandStep(ctx: RoleContext, argv: string[], opts: { group?: string; timeoutMs?: number; env?: Record<string, string>; summary?: string } = {}): Step {
  return {
    change: { action: 'run', command: argv, summary: opts.summary ?? formatArgv(argv[0]!, argv.slice(1)) },
    ...(opts.group !== undefined ? { group: opts.group } : {}),
    run: async () => {
      await exec(ctx, argv, opts.timeoutMs ?? TIMEOUT.command, opts.env);
    },
  };
}

export function rootFs(ctx: RoleContext): RootFs {
  return new RootFs(ctx.root);
}

export interface FileSpec {
  path: string;
  content: string;
  mode: number;
  owner?: { uid: number; gid: number };
  /** Keep the original the first time fleet replaces it (default true). */
  backup?: boolean;
  group?: string;
  resolve?: ResolveOptions;
}

/**
 * The step that makes `path` hold `content` with `mode`, or undefined when it
 * already does. Reads the current content now (survey time).
 */
export async function fileStep(ctx: RoleContext, fsr: RootFs, f: FileSpec): Promise<Step | undefined> {
  const ro = f.resolve ?? {};
  const st = await fsr.stat(f.path, ro);
  if (st && !st.isFile() && !st.isSymbolicLink()) throw new StepError(`${f.path} exists and is not a regular file`);
  const current = st ? await fsr.read(f.path, ro) : undefined;
  const modeOk = st !== undefined && (st.mode & 0o7777) === f.mode;
  const ownerOk = !f.owner || process.getuid?.() !== 0 || (st !== undefined && st.uid === f.owner.uid && st.gid === f.owner.gid);
  if (current === f.content && modeOk && ownerOk) return undefined;
  const diff = unifiedDiff(f.path, current, f.content);
  const action = current === undefined ? 'create' : 'update';
  const summary = current === f.content ? `${f.path}: mode ${f.mode.toString(8).padStart(4, '0')}` : `${action === 'create' ? 'create' : 'update'} ${f.path}`;
  return {
    change: { path: f.path, action, ...(diff ? { diff } : {}), summary },
    ...(f.group !== undefined ? { group: f.group } : {}),
    run: async () => {
      if (current !== undefined && f.backup !== false) {
        const b = await fsr.backupOnce(f.path, ro);
        if (b) ctx.log(`backed up ${f.path} to ${b}`);
      }
      if (current === f.content) await fsr.chmodOwn(f.path, f.mode, f.owner, ro);
      else await fsr.writeAtomic(f.path, f.content, { mode: f.mode, ...(f.owner ? { uid: f.owner.uid, gid: f.owner.gid } : {}), ...ro });
      await restoreSelinuxContext(ctx, fsr, f.path);
    },
  };
}

/** The step that deletes `path` (backed up first), or undefined when it does not exist. */
export async function deleteStep(ctx: RoleContext, fsr: RootFs, path: string, group?: string): Promise<Step | undefined> {
  const current = await fsr.read(path);
  if (current === undefined) return undefined;
  const diff = unifiedDiff(path, current, undefined);
  return {
    change: { path, action: 'delete', ...(diff ? { diff } : {}), summary: `delete ${path}` },
    ...(group !== undefined ? { group } : {}),
    run: async () => {
      await fsr.remove(path);
      ctx.log(`deleted ${path} (backup under ${fsr.backupPathOf(path)})`);
    },
  };
}

/**
 * On an SELinux node, a file created by rename gets its directory's default
 * label (etc_t), not the file's own (net_conf_t for /etc/hosts): restorecon
 * puts it right. Only on the live root; a failure is logged, not fatal.
 */
async function restoreSelinuxContext(ctx: RoleContext, fsr: RootFs, p: string): Promise<void> {
  if (ctx.root !== '/' || ctx.osFamily !== 'rhel') return;
  if ((await fsr.read('/sys/fs/selinux/enforce').catch(() => undefined)) === undefined) return;
  const r = await ctx.runner.run('restorecon', [p], { timeoutMs: TIMEOUT.query });
  if (r.code !== 0) ctx.log(`restorecon ${p}: ${describeFailure('restorecon', [p], r)}`);
}

function errMessage(e: unknown): string {
  if (e instanceof StepError || e instanceof UnsafePathError) return e.message;
  const ne = e as NodeJS.ErrnoException;
  if (ne && typeof ne === 'object' && typeof ne.code === 'string') return `${ne.code}: ${ne.message}`;
  return e instanceof Error ? e.message : String(e);
}

function summarize(changes: Change[]): string {
  const parts = changes.map((c) => c.summary ?? (c.command ? c.command.join(' ') : `${c.action} ${c.path ?? ''}`));
  return `${changes.length} change${changes.length === 1 ? '' : 's'}: ${parts.join('; ')}`;
}

/**
 * Why `role` does not run on this node (its OS family is not one the role
 * supports), or undefined when it does.
 */
export function familySkip(role: Pick<Role, 'name' | 'families'>, ctx: Pick<RoleContext, 'osFamily' | 'osSource'>): string | undefined {
  if (!role.families || role.families.includes(ctx.osFamily)) return undefined;
  const os = ctx.osFamily === 'unknown' ? `OS family unknown${ctx.osSource ? ` (${ctx.osSource})` : ''}` : `OS family ${ctx.osFamily}`;
  return `${os}; ${role.name} needs ${role.families.filter((f) => f !== 'unknown').join(' or ')}`;
}

/**
 * Builds a Role from its survey function. `families`: where it runs
 * (ANY_FAMILY when it needs no package manager nor family-specific path);
 * on another family apply and check answer 'skipped' and plan [].
 */
export function defineRole(name: RoleName, families: readonly OsFamily[], survey: (ctx: RoleContext) => Promise<Survey>): Role {
  const result = (t0: number, status: RoleStatus, message: string, changes: Change[], dryRun = false): RoleResult => ({
    role: name,
    status,
    message,
    durationMs: Date.now() - t0,
    changes,
    ...(dryRun ? { dryRun: true } : {}),
  });

  const conclude = async (t0: number, s: Survey, changes: Change[], failures: string[], dry: boolean): Promise<RoleResult> => {
    let verdict: Verdict = { status: 'ok' };
    if (s.verify && failures.length === 0 && s.problems.length === 0) {
      try {
        verdict = await s.verify(dry);
      } catch (e) {
        verdict = { status: 'failed', message: errMessage(e) };
      }
    }
    const problems = [...s.problems, ...failures, ...(verdict.status === 'failed' && verdict.message ? [verdict.message] : [])];
    const notes = [...s.notes];
    const what = changes.length > 0 ? (dry ? `would make ${summarize(changes)}` : summarize(changes)) : '';
    if (problems.length > 0 || verdict.status === 'failed') {
      return result(t0, 'failed', [problems.join('; '), what, ...notes].filter((x) => x).join('; '), changes, dry);
    }
    if (verdict.status === 'needs-reboot') {
      return result(t0, 'needs-reboot', [verdict.message ?? 'a reboot is needed', what, ...notes].filter((x) => x).join('; '), changes, dry);
    }
    if (changes.length > 0) return result(t0, 'changed', [what, ...notes, verdict.message].filter((x) => x).join('; '), changes, dry);
    return result(t0, 'ok', [verdict.message ?? 'already as declared', ...notes].filter((x) => x).join('; '), [], dry);
  };

  const role: Role = {
    name,
    families,
    async plan(ctx) {
      if (familySkip(role, ctx)) return [];
      const s = await survey(ctx);
      return s.steps.map((st) => st.change);
    },
    async check(ctx) {
      const t0 = Date.now();
      const skip = familySkip(role, ctx);
      if (skip) return result(t0, 'skipped', skip, [], true);
      try {
        const s = await survey(ctx);
        return await conclude(t0, s, s.steps.map((st) => st.change), [], true);
      } catch (e) {
        return result(t0, 'failed', errMessage(e), [], true);
      }
    },
    async apply(ctx) {
      const t0 = Date.now();
      const skip = familySkip(role, ctx);
      if (skip) return result(t0, 'skipped', skip, []);
      let s: Survey;
      try {
        s = await survey(ctx);
      } catch (e) {
        return result(t0, 'failed', errMessage(e), []);
      }
      const done: Change[] = [];
      const failures: string[] = [];
      const failedGroups = new Set<string>();
      for (const st of s.steps) {
        const g = st.group ?? name;
        if (failedGroups.has(g)) continue;
        try {
          await st.run();
          done.push(st.change);
        } catch (e) {
          failedGroups.add(g);
          const what = st.change.summary ?? st.change.path ?? st.change.command?.join(' ') ?? st.change.action;
          failures.push(`${what} failed: ${errMessage(e)}`);
          ctx.log(`${name}: ${what} failed: ${errMessage(e)}`);
        }
      }
      return conclude(t0, s, done, failures, false);
    },
  };
  return role;
}

/** Lines of a text (no trailing empty line). */
export function textLines(text: string | undefined): string[] {
  if (!text) return [];
  const l = text.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}

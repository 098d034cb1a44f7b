/**
 * users: cluster users and groups with fixed ids, and their SSH keys.
 *
 * Reads /etc/group and /etc/passwd under the root first. Missing groups are
 * added with `groupadd -g GID NAME`, missing users with
 * `useradd -u UID -g GID -s SHELL -d HOME -M NAME` (-M: homes live on NFS and
 * exist already). A user or group that exists with another id, or whose id
 * another name holds, is reported as a failure and left alone: ids are never
 * renumbered. A user with the right uid but another primary gid, shell or
 * home is aligned with `usermod`. Users and groups the profile does not name
 * are never touched.
 *
 * SSH keys go into a managed block of HOME/.ssh/authorized_keys (keys people
 * add outside it stay): .ssh 0700, the file 0600, both owned by the user
 * (when the agent runs as root). Symbolic links inside the home are refused.
 * A home that does not exist yet is skipped with a note when it lies under
 * one of the profile's NFS mount points (written on a later apply, once
 * mounted), and is a failure otherwise.
 *
 * Homes are made where they live: on the node that exports them (its
 * profile's nfs_server exports a directory the home lies under, thor of
 * seed 000 §9: `mkdir /home/myuser; chown myuser:myuser`), a missing home
 * is created 0700, owned by the user's uid and gid. Nowhere else: on the
 * NFS clients it would hide under the mount, or be made on the local disk
 * when the mount is late.
 */
import path from 'node:path';
import type { UserSpec } from '../../common/model.js';
import { commandStep, defineRole, emptySurvey, fileStep, rootFs, textLines, type Survey } from './base.js';
import { setBlock } from './block.js';
import type { RootFs } from './fsroot.js';
import { ANY_FAMILY, type RoleContext } from './types.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
}

export function parsePasswd(text: string | undefined): PasswdEntry[] {
  return textLines(text)
    .filter((l) => l.trim() !== '' && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7)
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! }));
}

export function parseGroup(text: string | undefined): GroupEntry[] {
  return textLines(text)
    .filter((l) => l.trim() !== '' && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3)
    .map((f) => ({ name: f[0]!, gid: Number(f[2]) }));
}

function under(p: string, dir: string): boolean {
  const rel = path.posix.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.posix.isAbsolute(rel);
}

/** The export of this node's nfs_server role a home lies under, if any: that node keeps the homes. */
export function exportHolding(ctx: RoleContext, home: string): string | undefined {
  return ctx.settings.roles.nfsServer?.exports.map((e) => e.path).find((p) => under(home, p));
}

async function keySteps(ctx: RoleContext, fsr: RootFs, u: UserSpec, s: Survey, homeMade = false): Promise<void> {
  const group = `user ${u.name}`; // same group as useradd: no keys for a user that could not be added
  const sshDir = path.posix.join(u.home, '.ssh');
  const keysPath = path.posix.join(sshDir, 'authorized_keys');
  const ro = { noFollowUnder: u.home };
  const homeSt = await fsr.stat(u.home);
  if (!homeSt && !homeMade) {
    if (u.sshKeys.length === 0) return;
    const nfs = ctx.settings.roles.nfs?.mounts.find((m) => under(u.home, m.target) || u.home === m.target);
    if (nfs) s.notes.push(`SSH keys of ${u.name} deferred: ${u.home} does not exist yet (NFS ${nfs.target} not mounted?)`);
    else s.problems.push(`SSH keys of ${u.name}: home ${u.home} does not exist (useradd -M does not create it)`);
    return;
  }
  const current = await fsr.read(keysPath, ro);
  if (current === undefined && u.sshKeys.length === 0) return;
  const next = setBlock(current ?? '', u.sshKeys.length > 0 ? u.sshKeys : undefined, keysPath);
  const owner = { uid: u.uid, gid: u.gid };
  const dirSt = await fsr.stat(sshDir, ro);
  if (dirSt && !dirSt.isDirectory()) {
    s.problems.push(`${sshDir} is not a directory`);
    return;
  }
  const dirOwnerOk = process.getuid?.() !== 0 || (dirSt !== undefined && dirSt.uid === u.uid && dirSt.gid === u.gid);
  if (!dirSt || (dirSt.mode & 0o7777) !== 0o700 || !dirOwnerOk) {
    s.steps.push({
      change: { path: sshDir, action: dirSt ? 'update' : 'create', summary: dirSt ? `chmod 0700 ${sshDir}` : `mkdir ${sshDir}` },
      group,
      run: async () => {
        if (dirSt) await fsr.chmodOwn(sshDir, 0o700, owner, ro);
        else await fsr.mkdirp(sshDir, 0o700, owner, ro);
      },
    });
  }
  const step = await fileStep(ctx, fsr, { path: keysPath, content: next, mode: 0o600, owner, group, resolve: ro });
  if (step) s.steps.push(step);
}

export const usersRole = defineRole('users', ANY_FAMILY, async (ctx) => {
  const s = emptySurvey();
  const spec = ctx.settings.roles.users;
  if (!spec) {
    s.notes.push('not in the profile');
    return s;
  }
  const fsr = rootFs(ctx);
  const passwd = parsePasswd(await fsr.read('/etc/passwd'));
  const groups = parseGroup(await fsr.read('/etc/group'));
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  const groupByGid = new Map(groups.map((g) => [g.gid, g]));
  const userByName = new Map(passwd.map((u) => [u.name, u]));
  const userByUid = new Map(passwd.map((u) => [u.uid, u]));
  /** gids that will exist after the group steps. */
  const gids = new Set(groups.map((g) => g.gid));

  for (const g of spec.groups) {
    const have = groupByName.get(g.name);
    if (have) {
      if (have.gid !== g.gid) s.problems.push(`group ${g.name} has gid ${have.gid} here, the profile says ${g.gid}: not renumbered, fix by hand`);
      continue;
    }
    const holder = groupByGid.get(g.gid);
    if (holder) {
      s.problems.push(`group ${g.name}: gid ${g.gid} is already used by group ${holder.name}`);
      continue;
    }
    gids.add(g.gid);
    s.steps.push(commandStep(ctx, ['groupadd', '-g', String(g.gid), g.name], { group: `group ${g.name}` }));
  }

  for (const u of spec.users) {
    const have = userByName.get(u.name);
    if (have) {
      if (have.uid !== u.uid) {
        s.problems.push(`user ${u.name} has uid ${have.uid} here, the profile says ${u.uid}: not renumbered, fix by hand`);
        continue;
      }
      const flags: string[] = [];
      if (have.gid !== u.gid) flags.push('-g', String(u.gid));
      if (have.shell !== u.shell) flags.push('-s', u.shell);
      if (have.home !== u.home) flags.push('-d', u.home);
      if (flags.length > 0) s.steps.push(commandStep(ctx, ['usermod', ...flags, u.name], { group: `user ${u.name}` }));
    } else {
      const holder = userByUid.get(u.uid);
      if (holder) {
        s.problems.push(`user ${u.name}: uid ${u.uid} is already used by user ${holder.name}`);
        continue;
      }
      if (!gids.has(u.gid)) {
        // No group with this gid declared or present: the user's own group, as `groupadd -g GID NAME` in the seed.
        if (groupByName.has(u.name)) {
          s.problems.push(`user ${u.name}: no group has gid ${u.gid}, and group ${u.name} exists with gid ${groupByName.get(u.name)!.gid}`);
          continue;
        }
        gids.add(u.gid);
        s.steps.push(commandStep(ctx, ['groupadd', '-g', String(u.gid), u.name], { group: `user ${u.name}` }));
      }
      s.steps.push(commandStep(ctx, ['useradd', '-u', String(u.uid), '-g', String(u.gid), '-s', u.shell, '-d', u.home, '-M', u.name], { group: `user ${u.name}` }));
    }
    let homeMade = false;
    const exported = exportHolding(ctx, u.home);
    if (exported !== undefined) {
      const st = await fsr.stat(u.home);
      if (st && !st.isDirectory()) {
        s.problems.push(`home of ${u.name}: ${u.home} exists and is not a directory`);
        continue;
      }
      if (!st) {
        homeMade = true;
        s.steps.push({
          change: { path: u.home, action: 'create', summary: `mkdir ${u.home} (0700, owner ${u.uid}:${u.gid}; this node exports ${exported})` },
          group: `user ${u.name}`,
          run: async () => {
            await fsr.mkdirp(u.home, 0o700, { uid: u.uid, gid: u.gid });
          },
        });
      }
    }
    await keySteps(ctx, fsr, u, s, homeMade);
  }
  return s;
});

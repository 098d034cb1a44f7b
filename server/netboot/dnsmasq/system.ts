/** Small host lookups the supervisor needs: users, executables, directory reachability. */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks a user up in /etc/passwd (Node has no getpwnam). */
export function lookupUser(name: string, passwdFile = '/etc/passwd'): SystemUser | null {
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) {
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
    }
  }
  return null;
}

/**
 * Why `user` cannot open `dir` (traverse every ancestor, read and search the
 * directory itself), or null when it can. Only owner and "other" bits are
 * considered: dnsmasq's group is not known here, so a path that relies on
 * group bits is reported too (conservative).
 */
export async function unreachableReason(dir: string, user: SystemUser): Promise<string | null> {
  const abs = path.resolve(dir);
  const parts = abs.split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i <= parts.length; i++) {
    const last = i === parts.length;
    const st = await fs.stat(cur).catch(() => null);
    if (!st) return `${cur} does not exist`;
    const mode = st.mode & 0o777;
    const need = last ? 0o5 : 0o1;
    const ok = st.uid === user.uid ? ((mode >> 6) & need) === need : (mode & need) === need;
    if (!ok) {
      const what = last ? 'read and search it' : 'traverse it';
      return `${cur} (mode 0${mode.toString(8)}, owner uid ${st.uid}) does not let user ${user.name} ${what}`;
    }
    if (!last) cur = path.join(cur, parts[i]!);
  }
  return null;
}

/**
 * Finding a program: the one executable lookup. PATH first, then the usual
 * bin and sbin directories, because the programs fleet drives (dnsmasq,
 * ipmi_sim, ip, qemu) often live in an sbin that a user's PATH lacks.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const EXTRA_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** `name` itself when it holds a '/', else the first executable `name` on PATH plus the sbin directories; null when none. */
export function findExecutable(name: string): string | null {
  if (name.includes('/')) return isExecutable(name) ? name : null;
  for (const d of [...(process.env['PATH'] ?? '').split(delimiter), ...EXTRA_PATH]) {
    if (!d) continue;
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return null;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

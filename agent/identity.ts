/**
 * The machine identity sent with Enroll: DMI serial and UUID, the MACs of
 * physical Ethernet NICs, the host name. Read from sysfs under `root` (tests
 * point it at a fixture tree). Missing or unreadable values are empty, never
 * an error: the server decides what it needs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MachineIdentity } from '../proto/gen/fleet/v1/agent.js';
import { MAC_CANONICAL } from '../common/patterns.js';

/** Values firmware vendors put in unset DMI fields. */
const PLACEHOLDER = /^(|0+|none|n\/a|na|default string|not specified|not applicable|to be filled by o\.e\.m\.|system serial number|system product name|0123456789|123456789|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff|03000200-0400-0500-0006-000700080009)$/i;


async function readTrim(file: string): Promise<string> {
  try {
    return (await fs.promises.readFile(file, 'utf8')).trim();
  } catch {
    return '';
  }
}

export function cleanDmi(value: string): string {
  const v = value.trim();
  return PLACEHOLDER.test(v) ? '' : v;
}

/** MACs of physical Ethernet interfaces (those with a device link), permanent addresses for bond slaves, sorted. */
export async function physicalMacs(root = '/'): Promise<string[]> {
  const netDir = path.join(root, 'sys/class/net');
  let names: string[];
  try {
    names = await fs.promises.readdir(netDir);
  } catch {
    names = [];
  }
  const macs = new Set<string>();
  for (const name of names) {
    const dir = path.join(netDir, name);
    if (!fs.existsSync(path.join(dir, 'device'))) continue; // virtual: lo, bridges, bonds, vlans
    if ((await readTrim(path.join(dir, 'type'))) !== '1') continue; // ARPHRD_ETHER only (not InfiniBand)
    const perm = (await readTrim(path.join(dir, 'bonding_slave/perm_hwaddr'))).toLowerCase();
    const mac = perm || (await readTrim(path.join(dir, 'address'))).toLowerCase();
    if (MAC_CANONICAL.test(mac) && mac !== '00:00:00:00:00:00') macs.add(mac);
  }
  if (macs.size === 0 && root === '/') {
    // No sysfs (containers): whatever Node sees.
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (!a.internal && MAC_CANONICAL.test(a.mac) && a.mac !== '00:00:00:00:00:00') macs.add(a.mac.toLowerCase());
    }
  }
  return [...macs].sort();
}

export async function collectIdentity(root = '/'): Promise<MachineIdentity> {
  const dmi = path.join(root, 'sys/class/dmi/id');
  const [serial, uuid, macs] = await Promise.all([readTrim(path.join(dmi, 'product_serial')), readTrim(path.join(dmi, 'product_uuid')), physicalMacs(root)]);
  return { serial: cleanDmi(serial), uuid: cleanDmi(uuid).toLowerCase(), macs, hostname: os.hostname() };
}

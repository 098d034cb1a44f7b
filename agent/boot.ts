/**
 * How this node booted (DESIGN §3, loop breaker layer 4): boot id, uptime,
 * kernel command line, what / is mounted from, and the EFI boot variables
 * (BootCurrent, BootOrder, BootNext and the Boot#### labels) read straight
 * from efivarfs. Reads files under `root` (tests use a fixture tree); the
 * parsers are pure and exported.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BootImage, EfiBoot, EfiBootEntry, ReportBootRequest } from '../proto/gen/fleet/v1/agent.js';
import { AGENT_VERSION } from './version.js';

/** EFI_GLOBAL_VARIABLE vendor GUID. */
export const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** A UINT16 efivar (BootCurrent, BootNext): 4 bytes of attributes, then little-endian. */
export function parseEfiUint16(buf: Buffer): string | null {
  return buf.length >= 6 ? hex4(buf.readUInt16LE(4)) : null;
}

/** BootOrder: 4 bytes of attributes, then UINT16 entries. */
export function parseEfiBootOrder(buf: Buffer): string[] {
  const out: string[] = [];
  for (let i = 4; i + 1 < buf.length; i += 2) out.push(hex4(buf.readUInt16LE(i)));
  return out;
}

/** Boot####: 4 bytes of attributes, then EFI_LOAD_OPTION (UINT32 attributes, UINT16 path length, UTF-16LE description). */
export function parseEfiLoadOption(buf: Buffer): { active: boolean; label: string } | null {
  if (buf.length < 10) return null;
  const attributes = buf.readUInt32LE(4);
  let end = 10;
  while (end + 1 < buf.length && buf.readUInt16LE(end) !== 0) end += 2;
  const label = buf.subarray(10, end).toString('utf16le').replace(/[\u0000-\u001f]/g, '').trim();
  return { active: (attributes & 1) === 1, label };
}

const NOT_LOCAL_FS = new Set(['nfs', 'nfs4', 'tmpfs', 'ramfs', 'rootfs', 'overlay', 'squashfs', 'cifs', 'smb3', '9p', 'virtiofs', 'iso9660', 'fuse', 'aufs']);

/** What / is mounted from (the last / in /proc/self/mounts wins) and whether that is a local block device. */
export function parseRootMount(mounts: string): { source: string; fstype: string; local: boolean } {
  let found: { source: string; fstype: string } | null = null;
  for (const line of mounts.split('\n')) {
    const [source, target, fstype] = line.split(' ');
    if (target === '/' && source !== undefined && fstype !== undefined) found = { source: source.replace(/\\040/g, ' '), fstype };
  }
  if (!found) return { source: '', fstype: '', local: false };
  const local =
    found.source.startsWith('/dev/') &&
    !/^\/dev\/(nbd|ram|loop|zram)\d/.test(found.source) &&
    !NOT_LOCAL_FS.has(found.fstype) &&
    !found.fstype.startsWith('fuse');
  return { ...found, local };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch {
    return '';
  }
}

async function readBuf(file: string): Promise<Buffer | null> {
  try {
    return await fs.promises.readFile(file);
  } catch {
    return null;
  }
}

/** The EFI boot variables, or undefined on a legacy BIOS boot (no /sys/firmware/efi). */
export async function readEfiBoot(root = '/'): Promise<EfiBoot | undefined> {
  if (!fs.existsSync(path.join(root, 'sys/firmware/efi'))) return undefined;
  const vars = path.join(root, 'sys/firmware/efi/efivars');
  const v = (name: string) => readBuf(path.join(vars, `${name}-${EFI_GLOBAL_GUID}`));
  const [current, order, next] = await Promise.all([v('BootCurrent'), v('BootOrder'), v('BootNext')]);
  const entries: EfiBootEntry[] = [];
  let names: string[] = [];
  try {
    names = await fs.promises.readdir(vars);
  } catch {
    names = [];
  }
  const re = new RegExp(`^Boot([0-9A-Fa-f]{4})-${EFI_GLOBAL_GUID}$`);
  for (const n of names.sort()) {
    const m = re.exec(n);
    if (!m) continue;
    const buf = await readBuf(path.join(vars, n));
    const opt = buf ? parseEfiLoadOption(buf) : null;
    if (opt) entries.push({ id: m[1]!.toUpperCase(), label: opt.label, active: opt.active });
  }
  return {
    bootCurrent: current ? (parseEfiUint16(current) ?? '') : '',
    bootOrder: order ? parseEfiBootOrder(order) : [],
    bootNext: next ? (parseEfiUint16(next) ?? '') : '',
    entries,
  };
}

/**
 * The fleet image the node runs, from /etc/fleet/image.json (the boot
 * environment writes it at an image install, stateless stage 1 at every
 * boot): undefined when there is none or it does not say a name and digest.
 */
export function parseImageRecord(text: string): BootImage | undefined {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!j || typeof j !== 'object') return undefined;
  const o = j as { name?: unknown; digest?: unknown; install?: unknown };
  if (typeof o.name !== 'string' || typeof o.digest !== 'string') return undefined;
  return { name: o.name, digest: o.digest, install: typeof o.install === 'string' ? o.install : 'image' };
}

export async function collectBootFacts(root = '/'): Promise<ReportBootRequest> {
  const [bootId, uptime, cmdline, mounts, efi, imageJson] = await Promise.all([
    readText(path.join(root, 'proc/sys/kernel/random/boot_id')),
    readText(path.join(root, 'proc/uptime')),
    readText(path.join(root, 'proc/cmdline')),
    readText(path.join(root, 'proc/self/mounts')),
    readEfiBoot(root),
    readText(path.join(root, 'etc/fleet/image.json')),
  ]);
  const rootMount = parseRootMount(mounts);
  const up = Number.parseFloat(uptime.split(' ')[0] ?? '');
  const report: ReportBootRequest = {
    bootId: bootId.trim(),
    uptimeMs: Number.isFinite(up) ? Math.round(up * 1000) : Math.round(os.uptime() * 1000),
    kernelCmdline: cmdline.trim(),
    rootOnLocalDisk: rootMount.local,
    rootSource: rootMount.source,
    rootFstype: rootMount.fstype,
    agentVersion: AGENT_VERSION,
    kernel: os.release(),
  };
  if (efi) report.efi = efi;
  const image = parseImageRecord(imageJson);
  if (image) report.image = image;
  return report;
}

/**
 * The boot environment's shell functions (server/bootenv/assets/lib.sh), run
 * with busybox ash, as in the boot environment, against fake /sys trees.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../common/executable.js';

const BUSYBOX = findExecutable('busybox');
const LIB = resolve('server/bootenv/assets/lib.sh');
const suite = BUSYBOX ? describe : describe.skip;
const dir = mkdtempSync(join(tmpdir(), 'fleet-bootenv-sh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(script: string, ...args: string[]): { out: string; code: number } {
  try {
    const out = execFileSync(BUSYBOX!, ['sh', '-c', `. "${LIB}"; ${script}`, 'sh', ...args], { encoding: 'utf8' });
    return { out, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; status: number };
    return { out: err.stdout, code: err.status };
  }
}

let n = 0;
/** A fake /sys/block: name → { size (sectors), removable, device, serial }. */
function sysBlock(disks: Record<string, { size: number; removable?: boolean; device?: boolean; serial?: string }>): string {
  const root = join(dir, `block${n++}`);
  for (const [name, d] of Object.entries(disks)) {
    const p = join(root, name);
    mkdirSync(p, { recursive: true });
    writeFileSync(join(p, 'size'), `${d.size}\n`);
    writeFileSync(join(p, 'removable'), d.removable ? '1\n' : '0\n');
    if (d.device !== false) mkdirSync(join(p, 'device'));
    if (d.serial) writeFileSync(join(p, 'serial'), `${d.serial}\n`);
  }
  return root;
}

suite('bootenv lib.sh (busybox ash)', () => {
  it('choose_disk auto: the smallest non-removable disk with a device and a size', () => {
    const sys = sysBlock({
      loop0: { size: 100, device: false },
      ram0: { size: 50 },
      sr0: { size: 10 },
      sda: { size: 8_000_000 },
      sdb: { size: 30, removable: true },
      vda: { size: 2_000_000 },
      vdb: { size: 0 },
      nvme0n1: { size: 4_000_000 },
    });
    expect(sh('choose_disk "$1"', sys)).toEqual({ out: 'vda\n', code: 0 });
    expect(sh('choose_disk "$1" auto', sys).out).toBe('vda\n');
  });
  it('choose_disk: none → fails (the install reports "no disk found")', () => {
    const sys = sysBlock({ loop0: { size: 100, device: false }, sr0: { size: 10 }, sdb: { size: 30, removable: true } });
    expect(sh('choose_disk "$1" || echo none', sys).out).toBe('none\n');
    mkdirSync(join(dir, 'empty'));
    expect(sh('choose_disk "$1" || echo none', join(dir, 'empty')).out).toBe('none\n');
  });
  it('choose_disk serial:X and /dev/NAME', () => {
    const sys = sysBlock({ vda: { size: 100, serial: 'AAA' }, vdb: { size: 200, serial: 'BBB' } });
    expect(sh('choose_disk "$1" serial:BBB', sys).out).toBe('vdb\n');
    expect(sh('choose_disk "$1" serial:CCC || echo none', sys).out).toBe('none\n');
    expect(sh('choose_disk "$1" /dev/vdb', sys).out).toBe('vdb\n');
    expect(sh('choose_disk "$1" /dev/sdz || echo none', sys).out).toBe('none\n');
  });
  it('part_dev: nvme-style names take a p', () => {
    expect(sh('part_dev vda 2; part_dev nvme0n1 1; part_dev mmcblk0 3').out).toBe('/dev/vda2\n/dev/nvme0n1p1\n/dev/mmcblk0p3\n');
  });
  it('parse_cmdline: fleet.* words as shell assignments that survive quotes', () => {
    const out = sh('parse_cmdline "$1"', "console=ttyS0 fleet.server=http://10.0.0.1:8080 fleet.node=n1 fleet.token=a'b fleet.mac=52:54:00:00:00:01 fleet.job=install quiet").out;
    expect(out).toBe("FLEET_SERVER='http://10.0.0.1:8080'\nFLEET_NODE='n1'\nFLEET_TOKEN='a'\\''b'\nFLEET_MAC='52:54:00:00:00:01'\nFLEET_JOB='install'\n");
    expect(sh(`eval "$(parse_cmdline "$1")"; echo "$FLEET_TOKEN"`, "fleet.token=a'b").out).toBe("a'b\n");
  });
  it('nic_by_mac: matches case-insensitively and skips lo', () => {
    const net = join(dir, 'net');
    for (const [name, mac] of [['lo', '00:00:00:00:00:00'], ['eth0', '52:54:00:00:00:01'], ['eth1', '52:54:00:00:00:02']]) {
      mkdirSync(join(net, name!), { recursive: true });
      writeFileSync(join(net, name!, 'address'), `${mac}\n`);
    }
    symlinkSync(join(net, 'eth1'), join(net, 'eth9'));
    expect(sh('nic_by_mac "$1" 52:54:00:00:00:02', net).out).toBe('eth1\n');
    expect(sh('nic_by_mac "$1" 52:54:00:00:00:0A || echo none', net).out).toBe('none\n');
    expect(sh('nic_by_mac "$1" ""', net).out).toBe('eth0\n');
  });
  it('json_str: quotes, backslashes, tabs and newlines escaped', () => {
    const out = sh(`printf 'a "b"\\\\c\\td\\nline2' | json_str`).out;
    expect(JSON.parse(out)).toBe('a "b"\\c\td\nline2');
  });
  it('layout_script: GPT with bios_grub on BIOS, a 256 MiB ESP on UEFI, optional swap, root last', () => {
    expect(sh('layout_script bios 0').out).toBe('label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios_grub"\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n');
    const uefi = sh('layout_script uefi 512').out.split('\n');
    expect(uefi[1]).toBe('size=256MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"');
    expect(uefi[2]).toBe('size=512MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"');
    expect(uefi[3]).toContain('0FC63DAF');
  });
  it('the assets parse with busybox sh -n', () => {
    for (const f of ['init.sh', 'install.sh', 'lib.sh', 'udhcpc.script']) {
      expect(() => execFileSync(BUSYBOX!, ['sh', '-n', resolve('server/bootenv/assets', f)])).not.toThrow();
    }
  });
});

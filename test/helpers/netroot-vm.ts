/**
 * The harness of the network-root VM tests (stateless-vm, diskless-vm): a
 * namespace with a bridge carrying `host`/24 and one tap, dnsmasq handing
 * out a DHCP range on it, the lab's HTTP server serving `www` (its request
 * log collected), and QEMU booting an image's kernel with stage 1's initrds
 * on that tap, its serial line on a SerialConsole. Every PID goes to
 * WORK/pids for the reaper; stop() ends what start() began.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, openSync, readFileSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { findExecutable } from '../../common/executable.js';
import { assetPath } from '../../server/lab/assets.js';
import { killPid, run, runOk } from '../../server/lab/exec.js';
import { SerialConsole } from './serial-console.js';

/** One request the lab's HTTP server answered. */
export interface Req {
  t: number;
  method: string;
  path: string;
  query: string;
  status: number;
  body?: string;
}

export interface NetrootNet {
  reqs: Req[];
  stop(): Promise<void>;
  /** SIGKILL what still runs (the process 'exit' hook). */
  kill(): void;
}

/** The namespace, its bridge and tap, dnsmasq and the lab's HTTP server on HOST:8080. */
export async function startNetrootNet(o: { work: string; netns: string; host: string; tap: string; dhcpRange: [string, string]; www: string }): Promise<NetrootNet> {
  const pids = join(o.work, 'pids');
  await runOk('ip', ['netns', 'add', o.netns], { timeoutMs: 10_000 });
  const ipn = (a: string[]) => runOk('ip', ['-n', o.netns, ...a], { timeoutMs: 10_000 });
  await ipn(['link', 'set', 'lo', 'up']);
  await ipn(['link', 'add', 'br0', 'type', 'bridge']);
  await ipn(['addr', 'add', `${o.host}/24`, 'dev', 'br0']);
  await ipn(['link', 'set', 'br0', 'up']);
  await ipn(['tuntap', 'add', o.tap, 'mode', 'tap']);
  await ipn(['link', 'set', o.tap, 'master', 'br0']);
  await ipn(['link', 'set', o.tap, 'up']);
  const conf = join(o.work, 'dnsmasq.conf');
  await writeFile(conf, ['port=0', 'interface=br0', 'bind-interfaces', 'dhcp-authoritative', `dhcp-range=${o.dhcpRange[0]},${o.dhcpRange[1]},255.255.255.0,1h`, `dhcp-leasefile=${join(o.work, 'dnsmasq.leases')}`, ''].join('\n'));
  const dlog = openSync(join(o.work, 'dnsmasq.log'), 'a');
  const dnsmasq = spawn('ip', ['netns', 'exec', o.netns, findExecutable('dnsmasq')!, '--keep-in-foreground', '--log-facility=-', `--conf-file=${conf}`, '--user=root', '--group=root'], { stdio: ['ignore', dlog, dlog] });
  closeSync(dlog);
  await appendFile(pids, `${dnsmasq.pid}\n`);
  const httpd = spawn('ip', ['netns', 'exec', o.netns, process.execPath, assetPath('lab-httpd.mjs'), '--listen', `${o.host}:8080`, '--root', o.www], { stdio: ['ignore', 'pipe', 'inherit'] });
  await appendFile(pids, `${httpd.pid}\n`);
  const reqs: Req[] = [];
  await new Promise<void>((res, rej) => {
    const rl = createInterface({ input: httpd.stdout! });
    rl.on('line', (line) => {
      const r = JSON.parse(line) as Req & { listening?: string };
      if (r.listening) res();
      else reqs.push(r);
    });
    httpd.once('exit', (c) => rej(new Error(`lab-httpd exited with ${c}`)));
  });
  return {
    reqs,
    async stop() {
      for (const c of [httpd, dnsmasq]) if (c.pid) await killPid(c.pid, c === httpd ? 'lab-httpd' : 'dnsmasq');
      await run('ip', ['netns', 'del', o.netns], { timeoutMs: 10_000 });
    },
    kill() {
      for (const c of [dnsmasq, httpd]) if (c.pid && c.exitCode === null) c.kill('SIGKILL');
    },
  };
}

export interface NetrootVm {
  q: ChildProcess;
  con: SerialConsole;
  t0: number;
  exited: Promise<number | null>;
  name: string;
}

/** QEMU (TCG, 1 vCPU) in the namespace: KERNEL with INITRD and APPEND, one virtio NIC on the tap, WORK/NAME.console.log. */
export function netrootQemu(o: { work: string; netns: string; tap: string; node: string; mac: string; kernel: string; initrd: string; append: string; memMiB: number; extra: string[]; timeoutS: number; name: string }): NetrootVm {
  const log = createWriteStream(join(o.work, `${o.name}.console.log`));
  const args = [
    'netns', 'exec', o.netns, 'timeout', String(o.timeoutS), findExecutable('qemu-system-x86_64')!,
    '-accel', 'tcg', '-machine', 'pc', '-m', String(o.memMiB), '-smp', '1', '-display', 'none',
    '-serial', 'stdio', '-monitor', 'none', ...o.extra,
    '-kernel', o.kernel, '-initrd', o.initrd, '-append', o.append,
    '-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${o.mac}`,
    '-name', `${o.node}-${o.name},debug-threads=off`, '-pidfile', join(o.work, `${o.name}.qemu.pid`),
  ];
  const t0 = Date.now();
  const q = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  void appendFile(join(o.work, 'pids'), `${q.pid}\n`);
  const con = new SerialConsole((s) => q.stdin!.write(s));
  let err = '';
  q.stdout!.on('data', (d: Buffer) => {
    log.write(d);
    con.feed(d);
  });
  q.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) =>
    q.once('exit', (c) => {
      log.end();
      con.close(`QEMU exited (${c})${err ? `: ${err.trim()}` : ''}`);
      r(c);
    }),
  );
  return { q, con, t0, exited, name: o.name };
}

/** Stops the VM by its pid file (QEMU itself, not the `ip netns exec` wrapper) and waits for it. */
export async function stopNetrootQemu(vm: NetrootVm, work: string): Promise<void> {
  const pidFile = join(work, `${vm.name}.qemu.pid`);
  if (vm.q.exitCode === null && existsSync(pidFile)) {
    await killPid(Number(readFileSync(pidFile, 'utf8').trim()), work);
    await vm.exited;
  }
}

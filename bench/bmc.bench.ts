/**
 * `npm run bench -- bmc`: power status across 200 ipmi_sim BMCs through
 * fleet's fan-out (store → secrets → runFanout → native RMCP+ driver, a full
 * session per BMC, as `fleet power status` does) against FreeIPMI's
 * `ipmipower -D LAN_2_0 -I 3 -W opensesspriv --stat` on the same BMCs in the
 * same run, and `ipmitool` spawned per BMC (xargs -P 64 style) for context.
 * Every run checks that all 200 answers are right before its time counts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { IpmiTransport } from '../server/bmc/ipmi/transport.js';
import { runBmcOperation } from '../server/bmc/operation.js';
import { openStore, type Store } from '../server/store/index.js';
import { findExecutable, IPMI_SIM, startIpmiSims, type IpmiSimLab } from '../test/helpers/ipmisim.js';
import { median, writeResult } from './table.js';

const N = Number(process.env.BENCH_BMCS ?? 200);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PASSWORD = 'Bench-Pass-1';
const run = promisify(execFile);
const IPMIPOWER = findExecutable('ipmipower');
const IPMITOOL = findExecutable('ipmitool');

let lab: IpmiSimLab;
let store: Store;
let transport: IpmiTransport;

beforeAll(async () => {
  if (!IPMI_SIM || !IPMIPOWER) throw new Error('the bmc benchmark needs ipmi_sim (openipmi) and ipmipower (freeipmi-tools): sudo bash .ci/deps.sh');
  lab = await startIpmiSims(N, { password: PASSWORD, initial: (i) => ({ power: i % 2 ? 'on' : 'off' }) });
  store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
  await store.profiles.upsert({ name: 'bench', os: { install: 'kickstart', tree: 'http://127.0.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 'bench' });
  await store.credentials.upsert('sim', 'admin', PASSWORD, { actor: 'bench' });
  await store.nodes.upsertMany(
    lab.bmcs.map((b, i) => ({
      name: `sim${String(i + 1).padStart(3, '0')}`,
      profile: 'bench',
      macs: [],
      pet: false,
      bmc: { address: b.address, port: b.port, protocol: 'ipmi' as const, credentials: 'sim' },
    })),
    { actor: 'bench' },
  );
  transport = await IpmiTransport.open({ recvBufferSize: 4 * 1024 * 1024 });
}, 120_000);

afterAll(async () => {
  await transport?.close();
  await store?.close();
  await lab?.stop();
});

const expected = (i: number): 'on' | 'off' => (i % 2 ? 'on' : 'off');

async function fleetOnce(names: string[]): Promise<number> {
  const t0 = performance.now();
  const res = await runBmcOperation(store, names, { kind: 'power', op: 'status' }, { actor: 'bench', providers: { ipmiTransport: transport }, concurrency: 256, timeoutMs: 10_000 });
  const ms = performance.now() - t0;
  expect(res.filter((r) => !r.ok)).toEqual([]);
  res.forEach((r, i) => expect(r.power).toBe(expected(i)));
  return ms;
}

async function ipmipowerOnce(): Promise<number> {
  const hosts = lab.bmcs.map((b) => `${b.address}:${b.port}`).join(',');
  const t0 = performance.now();
  const { stdout } = await run(IPMIPOWER!, ['-D', 'LAN_2_0', '-I', '3', '-W', 'opensesspriv', '-u', 'admin', '-p', PASSWORD, '-h', hosts, '--stat'], { maxBuffer: 16 * 1024 * 1024 });
  const ms = performance.now() - t0;
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(N);
  // ipmipower names hosts without their port, and every sim is on 127.0.0.1: check the answers in aggregate.
  const states = lines.map((l) => l.split(': ').at(-1));
  expect(states.filter((x) => x === 'on')).toHaveLength(N / 2);
  expect(states.filter((x) => x === 'off')).toHaveLength(N / 2);
  return ms;
}

async function ipmitoolOnce(): Promise<number> {
  // What a shell loop with `xargs -P 64 ipmitool` does: one process per BMC, 64 at a time.
  const t0 = performance.now();
  const queue = lab.bmcs.map((b, i) => ({ b, i }));
  const out: string[] = new Array(N);
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const { stdout } = await run(IPMITOOL!, ['-I', 'lanplus', '-C', '3', '-H', job.b.address, '-p', String(job.b.port), '-U', 'admin', '-E', 'chassis', 'power', 'status'], {
          env: { ...process.env, IPMI_PASSWORD: PASSWORD },
        });
        out[job.i] = stdout.trim();
      }
    }),
  );
  const ms = performance.now() - t0;
  out.forEach((l, i) => expect(l).toBe(`Chassis Power is ${expected(i)}`));
  return ms;
}

it(`power status on ${N} ipmi_sim BMCs: fleet fan-out vs ipmipower vs ipmitool`, async () => {
  const names = lab.bmcs.map((_, i) => `sim${String(i + 1).padStart(3, '0')}`);
  // One warm-up of each, not counted (page cache, JIT).
  await fleetOnce(names);
  await ipmipowerOnce();
  const fleet: number[] = [];
  const ipmipower: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    // Interleaved so that any drift of the machine hits both alike.
    fleet.push(await fleetOnce(names));
    ipmipower.push(await ipmipowerOnce());
  }
  const ipmitool = IPMITOOL ? [await ipmitoolOnce()] : [];
  const f = median(fleet);
  const p = median(ipmipower);
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(', ');
  writeResult('bmc', {
    title: `BMC fan-out: power status on ${N} ipmi_sim BMCs`,
    headers: ['client', 'median wall (ms)', 'runs (ms)', 'ratio to ipmipower'],
    rows: [
      ['fleet (runBmcOperation, native RMCP+, one UDP socket)', f.toFixed(0), fmt(fleet), (f / p).toFixed(2)],
      ['FreeIPMI ipmipower -D LAN_2_0 -I 3 --stat (one process)', p.toFixed(0), fmt(ipmipower), '1.00'],
      ...(ipmitool.length ? [['ipmitool -C 3, one process per BMC, 64 at a time', ipmitool[0]!.toFixed(0), fmt(ipmitool), (ipmitool[0]! / p).toFixed(2)]] : []),
    ],
    notes: [
      `Each run opens a full RMCP+ session (cipher suite 3) per BMC, reads chassis status and closes it; every answer is checked (${N / 2} on, ${N / 2} off).`,
      'fleet includes reading node records and decrypting the credential from SQLite, as `fleet power status` does (HTTP and CLI excluded).',
      `Target (issue 3): fleet ≤ 1.5 × ipmipower. Measured: ${(f / p).toFixed(2)} ×.`,
    ],
  });
});

/**
 * The naming plan for N discovered machines (issue 13: "computed in under a
 * second" for 1,000), two ways:
 *   - pure: planDiscovery(rules, machines, taken) alone;
 *   - from the store: currentPlan(store), i.e. reading the applied rules,
 *     the discovered machines and the nodes from SQLite (in memory), then
 *     planning: what `fleet discover --plan` costs the server.
 * Three rules: rack order from 400 serials (for one vendor's MAC prefix), a MAC prefix with lockstep IPs
 * and BMC addresses whose first 500 names are taken by existing nodes, and
 * a catch-all. Machines: 30% inspected with a listed serial (shuffled), 50%
 * with the prefix, 20% others.
 *
 *   const r = await benchDiscoveryPlan({ machines: 1000 });
 *   writeResult('discovery-plan', discoveryPlanTable(r));
 */
import crypto from 'node:crypto';
import { currentPlan, planDiscovery, takenBy, type Candidate, type DiscoveryRule, type DiscoverySpec } from '../server/discovery/index.js';
import { expandNodeSet, expandPattern } from '../server/nodeset/index.js';
import { openStore } from '../server/store/index.js';
import type { BenchTable } from './table.js';

export interface DiscoveryPlanBenchOptions {
  /** Discovered machines. Default 1000. */
  machines?: number;
  /** Timed runs of each (after 3 warm-up runs). Default 20. */
  runs?: number;
}

export interface DiscoveryPlanBenchResult {
  machines: number;
  existingNodes: number;
  rules: number;
  planned: number;
  unplanned: number;
  /** Distinct names in the plan (must equal planned). */
  distinctNames: number;
  runs: number;
  pureMs: { median: number; max: number };
  storeMs: { median: number; max: number };
}

const mac = (prefix: string, i: number): string => `${prefix}:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

function rules(): DiscoveryRule[] {
  const serials = Array.from({ length: 400 }, (_, i) => `SN${String(i).padStart(5, '0')}`);
  return [
    { name: 'po4711', match: { serials, serialsFile: 'po-4711.txt', macPrefixes: ['0c:c4:7a'] }, names: expandNodeSet('gpu[0001-0400]'), namesText: 'gpu[0001-0400]', profile: 'compute', onAccept: 'install' },
    {
      name: 'lab',
      match: { macPrefixes: ['52:54:00'] },
      names: expandNodeSet('n[0001-2000]'),
      namesText: 'n[0001-2000]',
      profile: 'compute',
      ips: [...expandPattern('10.10.[10-17].[1-250]')],
      bmc: { addresses: [...expandPattern('10.10.[110-117].[1-250]')], port: 623, protocol: 'ipmi', credentials: 'bmc-admin' },
      onAccept: 'install',
    },
    { name: 'spare', match: {}, names: expandNodeSet('spare[0001-2000]'), namesText: 'spare[0001-2000]', profile: 'compute', onAccept: 'inventory-only' },
  ];
}

function machines(n: number): Candidate[] {
  const out: Candidate[] = [];
  const t0 = Date.parse('2026-03-01T10:00:00.000Z');
  let k = 0;
  for (let i = 0; i < n; i++) {
    const kind = i % 10 < 3 ? 'serial' : i % 10 < 8 ? 'prefix' : 'other';
    // The k-th inspected machine has serial (k * 7919) mod 400: distinct, and not in rack order (7919 is prime to 400).
    const facts =
      kind === 'serial'
        ? { mac: mac('0c:c4:7a', i), serial: `SN${String((k++ * 7919) % 400).padStart(5, '0')}`, inspectedAt: new Date(t0).toISOString() }
        : kind === 'prefix'
          ? { mac: mac('52:54:00', i), ip: '10.10.254.1' }
          : { mac: mac('aa:00:00', i) };
    out.push({ facts, firstSeen: new Date(t0 + i * 1000).toISOString() });
  }
  return out;
}

function stats(ms: number[]): { median: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export async function benchDiscoveryPlan(o: DiscoveryPlanBenchOptions = {}): Promise<DiscoveryPlanBenchResult> {
  const n = o.machines ?? 1000;
  const runs = o.runs ?? 20;
  const rs = rules();
  const ms = machines(n);
  const existing = Array.from({ length: 500 }, (_, i) => ({ name: rs[1]!.names[i]!, ip: rs[1]!.ips![i]!, bmc: undefined }));
  const taken = takenBy(existing, null);

  for (let i = 0; i < 3; i++) planDiscovery(rs, ms, taken);
  const pure = Array.from({ length: runs }, () => time(() => planDiscovery(rs, ms, taken)));
  const plan = planDiscovery(rs, ms, taken);

  // The same through the store: applied rules in the settings, machines discovered, nodes declared.
  const store = await openStore({ memory: true }, { secretKey: crypto.randomBytes(32) });
  try {
    const wc = { actor: 'bench' };
    await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.10.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, wc);
    await store.nodes.upsertMany(existing.map((e) => ({ name: e.name, profile: 'compute', ip: e.ip, macs: [], pet: false })), wc);
    const discovery: DiscoverySpec = { policy: 'manual', rules: rs };
    await store.settings.setCluster({ cluster: { name: 'bench', domain: 'cluster.local', timezone: 'UTC', managementAddress: '10.10.0.1' }, networks: { provisioning: { subnet: '10.10.0.0/16', unknownRange: { start: '10.10.254.1', end: '10.10.254.254' }, dns: [], ntp: [] } }, discovery } as never, wc);
    for (const c of ms) await store.discovered.record({ mac: c.facts.mac, ip: c.facts.ip ?? null }, new Date(c.firstSeen));
    for (let i = 0; i < 3; i++) await currentPlan(store);
    const fromStore: number[] = [];
    for (let i = 0; i < runs; i++) fromStore.push(await timeAsync(() => currentPlan(store)));
    const names = new Set(plan.planned.map((p) => p.name));
    return {
      machines: n,
      existingNodes: existing.length,
      rules: rs.length,
      planned: plan.planned.length,
      unplanned: plan.unplanned.length,
      distinctNames: names.size,
      runs,
      pureMs: stats(pure),
      storeMs: stats(fromStore),
    };
  } finally {
    await store.close();
  }
}

export function discoveryPlanTable(r: DiscoveryPlanBenchResult): BenchTable {
  const f = (x: number) => x.toFixed(1);
  return {
    title: `Discovery: the naming plan for ${r.machines.toLocaleString('en')} discovered machines`,
    headers: ['metric', 'value'],
    rows: [
      ['discovered machines', r.machines],
      ['rules (serials in rack order, MAC prefix with lockstep IPs/BMCs, catch-all)', r.rules],
      ['existing nodes holding names and IPs of the prefix rule', r.existingNodes],
      ['planned / not planned', `${r.planned} / ${r.unplanned}`],
      ['distinct names in the plan', r.distinctNames],
      [`planDiscovery alone, ms (median / max of ${r.runs})`, `${f(r.pureMs.median)} / ${f(r.pureMs.max)}`],
      [`currentPlan from SQLite (read + plan), ms (median / max of ${r.runs})`, `${f(r.storeMs.median)} / ${f(r.storeMs.max)}`],
    ],
    notes: [
      'Inspected machines (30%) carry serials and are placed in rack order; the rest are as the store has them today (MAC, lease) and are named by MAC prefix or the catch-all.',
      'The store figure is what GET /api/v1/discover/plan costs the server; the issue asks for under a second.',
    ],
  };
}

/**
 * `npm run bench -- discovery`: perfdhcp sends 1000 distinct unknown clients
 * to fleet's supervised dnsmasq in a namespace; every lease must become a
 * discovered machine (none lost). dnsmasq's own lease file is the peer figure.
 * And the naming plan for 1,000 discovered machines (bench/discovery-plan.ts;
 * alone: `npm run bench -- discovery -t 'plan 1,000'`).
 */
import { expect, it } from 'vitest';
import { benchDiscovery, discoveryBenchTable } from './discovery.js';
import { benchDiscoveryPlan, discoveryPlanTable } from './discovery-plan.js';
import { writeResult } from './table.js';

it('discovery of 1000 unknown DHCP clients', async () => {
  const r = await benchDiscovery({ clients: Number(process.env.BENCH_CLIENTS ?? 1000), print: false });
  writeResult('discovery', discoveryBenchTable(r));
  expect(r.lost).toBe(0);
});

it('plan 1,000 discovered machines', async () => {
  const r = await benchDiscoveryPlan({ machines: Number(process.env.BENCH_MACHINES ?? 1000) });
  writeResult('discovery-plan', discoveryPlanTable(r));
  // Correctness only (timings are reported, never asserted): every machine is accounted for, no name twice.
  expect(r.planned + r.unplanned).toBe(r.machines);
  expect(r.distinctNames).toBe(r.planned);
});

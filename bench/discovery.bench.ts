/**
 * `npm run bench -- discovery`: perfdhcp sends 1000 distinct unknown clients
 * to fleet's supervised dnsmasq in a namespace; every lease must become a
 * discovered machine (none lost). dnsmasq's own lease file is the peer figure.
 */
import { expect, it } from 'vitest';
import { benchDiscovery, discoveryBenchTable } from './discovery.js';
import { writeResult } from './table.js';

it('discovery of 1000 unknown DHCP clients', async () => {
  const r = await benchDiscovery({ clients: Number(process.env.BENCH_CLIENTS ?? 1000), print: false });
  writeResult('discovery', discoveryBenchTable(r));
  expect(r.lost).toBe(0);
});

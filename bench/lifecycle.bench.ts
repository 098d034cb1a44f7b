/**
 * `npm run bench -- lifecycle`: 10,000 simulated reinstalls through the real
 * conductor and a real SQLite file (see bench/lifecycle.ts); reports server
 * CPU per node lifecycle and events per second, and checks that no
 * transition was lost or duplicated and no node was power-cycled twice.
 */
import { expect, it } from 'vitest';
import { runLifecycleBench } from './lifecycle.js';
import { writeResult } from './table.js';

it('10,000 reinstalls through the conductor', async () => {
  const r = await runLifecycleBench({ nodes: Number(process.env.BENCH_NODES ?? 10_000), print: null });
  const s = (ms: number): string => (ms / 1000).toFixed(2);
  writeResult('lifecycle', {
    title: `Lifecycle: ${r.nodes.toLocaleString('en-US')} simulated reinstalls through the real conductor and SQLite store`,
    headers: ['measure', 'value'],
    rows: [
      ['wall time (s)', s(r.wallMs) + (r.timedOut ? ' (stopped at the time limit)' : '')],
      ['server CPU, user + system (s)', `${s(r.cpuUserMs + r.cpuSystemMs)} (${s(r.cpuUserMs)} + ${s(r.cpuSystemMs)})`],
      ['CPU per node lifecycle (ms)', r.cpuPerLifecycleMs.toFixed(2)],
      ['events written', `${r.events.toLocaleString('en-US')} (${Math.round(r.eventsPerSecond).toLocaleString('en-US')}/s)`],
      ['transitions (expected)', `${r.transitions.toLocaleString('en-US')} (${r.expectedTransitions.toLocaleString('en-US')})`],
      ['ready / failed', `${r.ready} / ${r.failed}`],
      ['lost / duplicated transitions', `${r.lost} / ${r.duplicated}`],
      ['wrong path', String(r.wrongPath)],
      ['nodes power-cycled twice', String(r.powerTwice)],
    ],
    notes: [
      'Doubles: a BMC (power and one-time boot override), a PXE client asking the real boot decision and writing what the boot endpoints write, an agent reporting boot and apply; they write the same events the real paths do (about 10 of the 25 per node), so the CPU figure includes them.',
      'No peer tool runs this workload; the correctness columns are the point: every node walks exactly the reinstall path once.',
    ],
  });
  expect(r.lost).toBe(0);
  expect(r.duplicated).toBe(0);
  expect(r.wrongPath).toBe(0);
  expect(r.powerTwice).toBe(0);
});

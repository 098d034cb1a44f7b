/**
 * `npm run bench -- discovery-inspection`: 1,000 unknown machines fetch
 * their inspect script from fleet's boot face (real HTTP on 127.0.0.1, a
 * file-backed store) and post their inspection reports at once; every report
 * must be stored once (none lost, no machine.inspected twice); then the naming
 * plan for the 1,000 inspected machines (bench/discovery-inspection.ts).
 * BENCH_MACHINES=N for another count.
 */
import { expect, it } from 'vitest';
import { benchInspection, inspectionTable } from './discovery-inspection.js';
import { writeResult } from './table.js';

it('1,000 inspection reports at once, then the naming plan', async () => {
  const r = await benchInspection({ machines: Number(process.env.BENCH_MACHINES ?? 1000) });
  writeResult('discovery-inspection', inspectionTable(r));
  // Correctness only (timings are reported, never asserted).
  expect(r.scripts.errors).toEqual([]);
  expect(r.reports.errors).toEqual([]);
  expect(r.reports.ok).toBe(r.machines);
  expect(r.store).toMatchObject({ inspected: r.machines, lost: 0, events: r.machines, duplicateEvents: 0, refused: 0, onInspected: r.machines });
  expect(r.plan.planned + r.plan.unplanned).toBe(r.machines);
  expect(r.plan.distinctNames).toBe(r.plan.planned);
});

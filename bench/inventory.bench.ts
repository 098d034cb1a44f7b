/**
 * `npm run bench -- inventory`: how long the agent's collectRaw takes on this
 * machine (the agent's target is under 2 s), against the shell tools an
 * admin would run for the same facts (lscpu, lsblk, ip; util-linux and
 * iproute2), five runs each, median. This replaces the timed assertion the
 * unit test used to make: timings live here, never in `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { expect, it } from 'vitest';
import { collectRaw } from '../agent/inventory/collect.js';
import { toInventory } from '../agent/inventory/map.js';
import { median, writeResult } from './table.js';

const RUNS = 5;

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

it('inventory collection on this machine', async () => {
  const fleet: number[] = [];
  const tools: number[] = [];
  let warnings: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    fleet.push(
      await time(async () => {
        const raw = await collectRaw({ timeout: { overrideMs: 15_000 } });
        warnings = raw.warnings;
        expect(toInventory(raw).cpus.model).not.toBe('');
      }),
    );
    tools.push(
      await time(() => {
        execFileSync('lscpu', ['-J']);
        execFileSync('lsblk', ['-J', '-b', '-o', 'NAME,SIZE,TYPE,MODEL,SERIAL']);
        execFileSync('ip', ['-j', 'addr']);
      }),
    );
  }
  const f = median(fleet);
  const t = median(tools);
  writeResult('inventory', {
    title: 'Inventory collection (agent collectRaw)',
    headers: ['collector', `median of ${RUNS} (ms)`, 'min (ms)', 'max (ms)'],
    rows: [
      ['fleet-agent collectRaw (CPU, memory, disks, NICs, OS, PCI, GPUs)', f.toFixed(0), Math.min(...fleet).toFixed(0), Math.max(...fleet).toFixed(0)],
      ['lscpu -J + lsblk -J + ip -j addr (fewer facts)', t.toFixed(0), Math.min(...tools).toFixed(0), Math.max(...tools).toFixed(0)],
    ],
    notes: [`ratio fleet / tools: ${(f / t).toFixed(1)}×; target for collectRaw: < 2000 ms (${f < 2000 ? 'met' : 'NOT met'})`, `warnings of the last run: ${JSON.stringify(warnings)}`],
  });
});

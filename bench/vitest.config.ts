import { defineConfig } from 'vitest/config';

/**
 * Benchmarks run through vitest only as a TypeScript runner: `npm run bench`
 * runs every bench/*.bench.ts, `npm run bench -- bmc` only bmc.bench.ts. Each
 * prints a table and writes it to bench/results/. They are never part of
 * `npm test` and assert correctness only, never timings.
 */
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 5 * 60_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['verbose'],
  },
});

import { defineConfig } from 'vitest/config';

/**
 * End-to-end tests (`npm run test:e2e`): the lab's VMs, BMCs and the real
 * fleet server, as root. Never part of `npm test`. One file at a time: the
 * VMs share 2 cores and one lab address plan.
 */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 4 * 60_000,
    pool: 'forks',
    fileParallelism: false,
    // Under CI=true a skipped test fails the run (test/support/no-skip-under-ci.ts).
    reporters: ['verbose', './test/support/no-skip-under-ci.ts'],
  },
});

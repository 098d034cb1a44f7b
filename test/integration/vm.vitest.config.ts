import { defineConfig } from 'vitest/config';
import { VM_TESTS } from '../support/vm-tests.js';

/**
 * The VM and image-build tests (test/support/vm-tests.ts), one file at a
 * time: the second half of `npm test`. Run one alone with
 *   npx vitest run --config test/integration/vm.vitest.config.ts bootenv
 */
export default defineConfig({
  test: {
    include: VM_TESTS,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    // Under CI=true a skipped test fails the run (test/support/no-skip-under-ci.ts).
    reporters: ['default', './test/support/no-skip-under-ci.ts'],
  },
});

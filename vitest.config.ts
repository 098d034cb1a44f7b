import { defineConfig } from 'vitest/config';
import { VM_TESTS } from './test/support/vm-tests.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The VM and image-build tests run after these, one at a time (test/integration/vm.vitest.config.ts).
    exclude: ['test/e2e/**', 'node_modules/**', 'dist/**', ...VM_TESTS],
    // Integration tests start real peers (ipmi_sim, dnsmasq, QEMU) on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One temporary PostgreSQL for the run: the store's tests run on both engines (test/unit/store/engines.ts).
    globalSetup: ['./test/support/postgres-global-setup.ts'],
    // Under CI=true a skipped test fails the run (test/support/no-skip-under-ci.ts).
    reporters: ['default', './test/support/no-skip-under-ci.ts'],
  },
});

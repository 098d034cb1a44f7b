import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'node_modules/**', 'dist/**'],
    // Integration tests start real peers (ipmi_sim, dnsmasq, QEMU) on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Under CI=true a skipped test fails the run (test/support/no-skip-under-ci.ts).
    reporters: ['default', './test/support/no-skip-under-ci.ts'],
  },
});

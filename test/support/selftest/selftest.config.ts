import { defineConfig } from 'vitest/config';

// The no-skip reporter's own check: test/unit/repo/no-skip-under-ci.test.ts runs this config.
export default defineConfig({
  test: {
    include: ['test/support/selftest/*.check.ts'],
    reporters: ['default', './test/support/no-skip-under-ci.ts'],
  },
});

// Run only by test/unit/repo/no-skip-under-ci.test.ts (through selftest.config.ts): one passing, one skipped test.
import { expect, it } from 'vitest';

it('runs', () => expect(1).toBe(1));
it.skip('is skipped', () => {});

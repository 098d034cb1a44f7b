/**
 * The reporter that makes a skipped test fail CI (test/support/no-skip-under-ci.ts),
 * run for real on a file with one skipped test: exit 1 under CI=true, 0 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VITEST = join(ROOT, 'node_modules/vitest/vitest.mjs');

function runSelftest(ci: boolean): { code: number | null; out: string } {
  const env = { ...process.env };
  delete env.CI;
  delete env.VITEST;
  if (ci) env.CI = 'true';
  const r = spawnSync(process.execPath, [VITEST, 'run', '--config', 'test/support/selftest/selftest.config.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('a skipped test under CI', () => {
  it('fails the run under CI=true, naming the test', () => {
    const r = runSelftest(true);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/CI=true: 1 test\(s\) skipped, which fails the run/);
    expect(r.out).toContain('one-skip.check.ts > is skipped');
  });

  it('stays a skip outside CI', () => {
    const r = runSelftest(false);
    expect(r.code, r.out).toBe(0);
  });
});

/**
 * Green must never mean skipped: under CI (CI=true) every skipped or todo
 * test fails the run, listed with its file, so a missing peer (dnsmasq,
 * ipmi_sim, root, dist/) cannot pass as success. Outside CI a skip stays a
 * skip (a developer without QEMU can still run the rest).
 */
import type { Reporter, TestModule } from 'vitest/node';

export function skippedTests(modules: ReadonlyArray<TestModule>): string[] {
  const out: string[] = [];
  for (const m of modules) {
    for (const t of m.children.allTests()) {
      if (t.result().state === 'skipped') out.push(`${m.relativeModuleId} > ${t.fullName}`);
    }
  }
  return out;
}

export default class NoSkipUnderCi implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    if (process.env.CI !== 'true') return;
    const skipped = skippedTests(modules);
    if (skipped.length === 0) return;
    process.stderr.write(`\nCI=true: ${skipped.length} test(s) skipped, which fails the run:\n${skipped.map((s) => `  - ${s}`).join('\n')}\n`);
    process.exitCode = 1;
  }
}

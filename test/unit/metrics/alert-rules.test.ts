/**
 * The example Prometheus files (examples/prometheus/): every metric the
 * alert rules name is one fleet exports (read from a real scrape), and
 * Prometheus' own promtool accepts them: `check rules`, the rules' unit
 * tests (`test rules` fleet-alerts.test.yml: each alert fires when it
 * should and not before), `check config` of the scrape example, and
 * `check metrics` (its lint) on a scrape. promtool comes with Debian's
 * prometheus package (.ci/deps.sh); without it these fail under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findExecutable } from '../../../common/executable.js';
import { FleetMetrics } from '../../../server/metrics/index.js';
import { harness, type Harness } from '../../helpers/lifecycle.js';
import { parsePromText, type PromFamily } from '../../helpers/prom-text.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'examples/prometheus');
const PROMTOOL = findExecutable('promtool');
if (!PROMTOOL && process.env.CI === 'true') throw new Error('CI=true: promtool is missing (.ci/deps.sh installs Debian\'s prometheus package)');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (parse(readFileSync(join(DIR, 'fleet-alerts.yml'), 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** Metric names a PromQL expression reads: identifiers followed by `{`, `[`, a space or the end, not functions, keywords or label names. */
export function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const noLabelSets = noStrings.replace(/\{[^}]*\}/g, '{}');
  const noGrouping = noLabelSets.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = new Set<string>();
  for (const m of noGrouping.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const id = m[1]!;
    if (/^(and|or|unless|bool|offset|by|without|on|ignoring|inf|nan)$/i.test(id)) continue;
    if (/^\d/.test(id) || /^\d+[smhdwy]$/.test(id)) continue;
    names.add(id);
  }
  return [...names];
}

/** Whether `name` is a series of one of the families (histogram series by their suffixes). */
function exported(families: Map<string, PromFamily>, name: string): boolean {
  if (families.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && ['histogram', 'summary'].includes(families.get(m[1]!)?.type ?? '') && !(m[2] === 'bucket' && families.get(m[1]!)?.type === 'summary');
}

/** Series Prometheus itself adds to every scrape. */
const SCRAPE_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

describe('the example alert rules name metrics fleet exports', () => {
  let h: Harness;
  let families: Map<string, PromFamily>;
  let text: string;

  beforeAll(async () => {
    h = await harness({ nodes: ['n1'] });
    const m = new FleetMetrics({ processMetrics: false });
    await m.attach(h.store);
    text = await m.exposition(h.store);
    families = parsePromText(text);
  });
  afterAll(async () => h?.close());

  it('reads names out of PromQL', () => {
    expect(metricNames('sum by (instance, protocol) (increase(fleet_x_count{outcome="auth_failed",a="b c"}[15m])) > 0 and up{job="fleet"} == 0')).toEqual(['fleet_x_count', 'up']);
  });

  it('has the three alerts the issue asks for, each with a summary', () => {
    const names = rules.map((r) => r.alert);
    expect(names).toEqual(expect.arrayContaining(['FleetNodeStuckPastTimeout', 'FleetBmcAuthFailures', 'FleetBootLoopSuspect']));
    for (const r of rules) expect(r.annotations?.['summary'], r.alert).toBeTruthy();
  });

  it.each(rules.map((r) => [r.alert ?? r.record!, r.expr] as const))('%s reads only exported metrics', (_name, expr) => {
    const names = metricNames(expr);
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect(exported(families, n) || SCRAPE_SERIES.has(n), `${n} in ${expr}`).toBe(true);
  });

  it('the auth-failure alert matches the outcome label fleet writes', () => {
    expect(rules.find((r) => r.alert === 'FleetBmcAuthFailures')!.expr).toContain('outcome="auth_failed"');
  });

  describe.skipIf(!PROMTOOL)('promtool', () => {
    const promtool = (args: string[], opts: { cwd?: string; input?: string } = {}) => {
      const r = spawnSync(PROMTOOL!, args, { cwd: opts.cwd ?? DIR, input: opts.input, encoding: 'utf8', timeout: 60_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };

    it('check rules', () => {
      const r = promtool(['check', 'rules', 'fleet-alerts.yml']);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    });

    it('test rules: each alert fires when it should, and not before', () => {
      const r = promtool(['test', 'rules', 'fleet-alerts.test.yml']);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('SUCCESS');
    });

    it('test rules fails on a wrong expectation (the check can fail)', () => {
      const tmp = mkdtempSync(join(tmpdir(), 'fleet-rules-'));
      try {
        copyFileSync(join(DIR, 'fleet-alerts.yml'), join(tmp, 'fleet-alerts.yml'));
        const tests = readFileSync(join(DIR, 'fleet-alerts.test.yml'), 'utf8').replace('state: installing, severity: warning', 'state: netbooting, severity: warning');
        writeFileSync(join(tmp, 'fleet-alerts.test.yml'), tests);
        const r = promtool(['test', 'rules', 'fleet-alerts.test.yml'], { cwd: tmp });
        expect(r.code, r.out).not.toBe(0);
        expect(r.out).toContain('FleetNodeStuckPastTimeout');
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it('check config of the scrape example (with a token file where it names one)', () => {
      const tmp = mkdtempSync(join(tmpdir(), 'fleet-prom-'));
      try {
        writeFileSync(join(tmp, 'fleet.token'), 'x'.repeat(43), { mode: 0o400 });
        copyFileSync(join(DIR, 'fleet-alerts.yml'), join(tmp, 'fleet-alerts.yml'));
        const config = readFileSync(join(DIR, 'prometheus.yml'), 'utf8');
        expect(config).toContain('credentials_file: /etc/prometheus/fleet.token');
        writeFileSync(join(tmp, 'prometheus.yml'), config.replace('credentials_file: /etc/prometheus/fleet.token', `credentials_file: ${join(tmp, 'fleet.token')}`));
        const r = promtool(['check', 'config', 'prometheus.yml'], { cwd: tmp });
        expect(r.code, r.out).toBe(0);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it('check metrics: fleet\'s own families pass the lint', () => {
      const r = promtool(['check', 'metrics'], { input: text });
      expect(r.code, r.out).toBe(0);
    });

    it('check metrics with the process metrics: only prom-client\'s three Node.js gauges are linted', async () => {
      const hp = await harness({ nodes: [] });
      try {
        const full = await new FleetMetrics().exposition(hp.store);
        const r = promtool(['check', 'metrics'], { input: full });
        const problems = r.out.split('\n').filter((l) => l.trim() !== '');
        // prom-client names these gauges *_total (nodejs_active_handles_total, ...); nothing of fleet's is linted.
        expect(problems.filter((l) => !/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/.test(l)), r.out).toEqual([]);
      } finally {
        await hp.close();
      }
    });
  });
});

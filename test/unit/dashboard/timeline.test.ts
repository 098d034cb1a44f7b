/** The reinstall timeline's pure parts: spans from events, failure marks, the SVG (escaped, sized for 1,000 rows). */
import { describe, expect, it } from 'vitest';
import { STATE_COLOURS, renderTimeline, rowOf, tickStep, type TimelineEvent } from '../../../server/dashboard/timeline.js';

const T0 = Date.parse('2026-01-01T10:00:00Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const ev = (s: number, from: string, to: string, details?: unknown): TimelineEvent => ({ time: at(s), fromState: from, toState: to, ...(details ? { details } : {}) });

describe('rowOf', () => {
  it('turns transitions into spans within the window, the state before the first from its fromState', () => {
    const row = rowOf('n01', [ev(20, 'pxe-armed', 'power-cycling'), ev(10, 'enrolled', 'pxe-armed'), ev(50, 'power-cycling', 'netbooting')], T0, T0 + 100_000);
    expect(row.spans).toEqual([
      { state: 'enrolled', start: T0, end: T0 + 10_000 },
      { state: 'pxe-armed', start: T0 + 10_000, end: T0 + 20_000 },
      { state: 'power-cycling', start: T0 + 20_000, end: T0 + 50_000 },
      { state: 'netbooting', start: T0 + 50_000, end: T0 + 100_000 },
    ]);
    expect(row.failures).toEqual([]);
  });

  it('marks failures with their step and reason; clips to the window', () => {
    const row = rowOf('n02', [ev(-30, 'enrolled', 'pxe-armed'), ev(40, 'pxe-armed', 'failed', { step: 'arm-pxe', reason: 'bmc.auth_failed' })], T0, T0 + 60_000);
    expect(row.spans).toEqual([
      { state: 'pxe-armed', start: T0, end: T0 + 40_000 },
      { state: 'failed', start: T0 + 40_000, end: T0 + 60_000 },
    ]);
    expect(row.failures).toEqual([{ time: T0 + 40_000, step: 'arm-pxe', reason: 'bmc.auth_failed' }]);
  });
});

describe('renderTimeline', () => {
  it('draws one row per node, coloured by state, failures marked, everything from outside escaped', () => {
    const rows = [
      rowOf('n01', [ev(10, 'enrolled', 'pxe-armed'), ev(20, 'pxe-armed', 'failed', { step: 'arm-pxe', reason: '<script>x</script> & "q"' })], T0, T0 + 60_000),
      rowOf('n02', [ev(5, 'enrolled', 'pxe-armed')], T0, T0 + 60_000),
    ];
    const svg = renderTimeline(rows, { since: T0, until: T0 + 60_000, title: 'fleet <n[01-02]>' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('arm-pxe: &lt;script&gt;x&lt;/script&gt; &amp; &quot;q&quot;');
    expect(svg).toContain('fleet &lt;n[01-02]&gt; — 2 nodes, 1 failure');
    expect(svg.match(/<g class="row"/g)).toHaveLength(2);
    expect(svg.match(/class="failure"/g)).toHaveLength(1);
    expect(svg).toContain(`fill="${STATE_COLOURS.failed}"`);
    // No style attribute or element: the dashboard's CSP allows none.
    expect(svg).not.toMatch(/style[=>]/);
  });

  it('stays a readable size for 1,000 nodes: thin rows, every tenth labelled', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => rowOf(`n${String(i).padStart(4, '0')}`, [ev(i % 50, 'enrolled', 'pxe-armed'), ev(100 + (i % 70), 'pxe-armed', 'installing')], T0, T0 + 3_600_000));
    const svg = renderTimeline(rows, { since: T0, until: T0 + 3_600_000, title: 'big' });
    const height = Number(/height="(\d+)"/.exec(svg)![1]);
    expect(height).toBeLessThan(4200);
    expect(svg.match(/<text [^>]*text-anchor="end">n\d{4}<\/text>/g)).toHaveLength(100);
    expect(svg.length).toBeLessThan(2_000_000);
  });

  it('picks tick steps giving at most ten ticks', () => {
    expect(tickStep(60_000)).toBe(10_000);
    expect(tickStep(1_600)).toBe(200);
    expect(tickStep(3_600_000)).toBe(600_000);
    expect(tickStep(7 * 86_400_000)).toBe(86_400_000);
  });
});

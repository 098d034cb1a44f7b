/**
 * docs/lifecycle.md's tables, generated from the code's table (a test checks
 * that the doc is in sync). Regenerate with
 *   npx tsc -p tsconfig.json && node dist/server/lifecycle/doc.js docs/lifecycle.md
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defaultLifecycleSettings } from './settings.js';
import { FACT_RULES } from './facts.js';
import { RECOVERY_RULES } from './recovery-table.js';
import { STATE_SPECS, TRANSITIONS } from './table.js';

export const DOC_BEGIN = '<!-- BEGIN GENERATED: renderStateTableMarkdown() in server/lifecycle/doc.ts; do not edit by hand -->';
export const DOC_END = '<!-- END GENERATED -->';

function dur(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** The states table and the transitions table, as Markdown. */
export function renderStateTableMarkdown(): string {
  const settings = defaultLifecycleSettings();
  const lines: string[] = [];
  lines.push('### States', '');
  lines.push('| state | kind | step on entry | retries | timeout | on timeout | waits for |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const s of STATE_SPECS) {
    const retries = s.step ? String(settings.retries[s.step]) : '-';
    lines.push(`| \`${s.state}\` | ${s.kind} | ${s.step ? `\`${s.step}\`` : '-'} | ${retries} | ${dur(s.timeoutSeconds)} | ${s.onTimeout ? `\`${s.onTimeout}\`` : '-'} | ${cell(s.waitsFor)} |`);
  }
  lines.push('', '### Transitions', '');
  lines.push('| from | event | to | armed flag | why |');
  lines.push('|---|---|---|---|---|');
  for (const t of TRANSITIONS) {
    const to = t.stay ? `\`${t.to}\` (no change)` : `\`${t.to}\``;
    lines.push(`| \`${t.from}\` | \`${t.event}\` | ${to} | ${t.armed ?? '-'} | ${cell(t.why)} |`);
  }
  return lines.join('\n');
}

export const FACTS_BEGIN = '<!-- BEGIN GENERATED: renderFactTableMarkdown() in server/lifecycle/doc.ts; do not edit by hand -->';

/** The fact rules (facts.ts), as Markdown. */
export function renderFactTableMarkdown(): string {
  const lines: string[] = [];
  lines.push('### Facts', '', 'What a reported fact means in a state (server/lifecycle/facts.ts); for each fact the first matching row wins.', '');
  lines.push('| fact | in states | when | event | flag | why |');
  lines.push('|---|---|---|---|---|---|');
  for (const r of FACT_RULES) {
    const states = r.in ? r.in.map((s) => `\`${s}\``).join(', ') : 'any';
    const event = r.event ? `\`${r.event}\`` : 'ignored';
    lines.push(`| \`${r.fact}\` | ${states} | ${r.when ? cell(r.when.says) : '-'} | ${event} | ${r.flag ? 'may flag' : '-'} | ${cell(r.why)} |`);
  }
  return lines.join('\n');
}

export const RECOVERY_BEGIN = '<!-- BEGIN GENERATED: renderRecoveryTableMarkdown() in server/lifecycle/doc.ts; do not edit by hand -->';

/** The recovery rules (recovery-table.ts), as Markdown. */
export function renderRecoveryTableMarkdown(): string {
  const lines: string[] = [];
  lines.push('### Recovery', '', 'What a conductor does with a transient node nobody works on (server/lifecycle/recovery-table.ts); the first matching row wins.', '');
  lines.push('| state | step log | action | reported as | why |');
  lines.push('|---|---|---|---|---|');
  for (const r of RECOVERY_RULES) {
    const state = r.state === '*' ? 'any transient' : `\`${r.state}\``;
    const log = r.log === '*' ? 'any' : r.log.map((l) => `\`${l}\``).join(', ');
    lines.push(`| ${state} | ${log} | \`${r.action}\` | ${cell(r.report)}${r.quietOnSweep ? ' (no event on a sweep)' : ''} | ${cell(r.why)} |`);
  }
  return lines.join('\n');
}

/** The doc with its generated sections replaced by the current tables. */
export function syncLifecycleDoc(text: string): string {
  const sections: [string, string][] = [
    [DOC_BEGIN, renderStateTableMarkdown()],
    [FACTS_BEGIN, renderFactTableMarkdown()],
    [RECOVERY_BEGIN, renderRecoveryTableMarkdown()],
  ];
  return sections.reduce((t, [begin, body]) => replaceSection(t, begin, body), text);
}

function replaceSection(text: string, begin: string, body: string): string {
  const a = text.indexOf(begin);
  const b = text.indexOf(DOC_END, a);
  if (a === -1 || b === -1) throw new Error(`the doc has no ${begin} ... ${DOC_END} section`);
  return `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`;
}

/** The generated section of a doc, as it is. */
export function generatedSection(text: string, begin: string = DOC_BEGIN): string | undefined {
  const a = text.indexOf(begin);
  const b = text.indexOf(DOC_END, a);
  if (a === -1 || b === -1) return undefined;
  return text.slice(a + begin.length, b).trim();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? 'docs/lifecycle.md';
  const text = await readFile(file, 'utf8');
  await writeFile(file, syncLifecycleDoc(text));
  process.stdout.write(`${file}: state table regenerated\n`);
}

/**
 * docs/lifecycle.md's tables, generated from the code's table (a test checks
 * that the doc is in sync). Regenerate with
 *   npx tsc -p tsconfig.json && node dist/server/lifecycle/doc.js docs/lifecycle.md
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defaultLifecycleSettings } from './settings.js';
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

/** The doc with its generated section replaced by the current tables. */
export function syncLifecycleDoc(text: string): string {
  const a = text.indexOf(DOC_BEGIN);
  const b = text.indexOf(DOC_END);
  if (a === -1 || b === -1 || b < a) throw new Error(`the doc has no ${DOC_BEGIN} ... ${DOC_END} section`);
  return `${text.slice(0, a + DOC_BEGIN.length)}\n${renderStateTableMarkdown()}\n${text.slice(b)}`;
}

/** The generated section of a doc, as it is. */
export function generatedSection(text: string): string | undefined {
  const a = text.indexOf(DOC_BEGIN);
  const b = text.indexOf(DOC_END);
  if (a === -1 || b === -1 || b < a) return undefined;
  return text.slice(a + DOC_BEGIN.length, b).trim();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? 'docs/lifecycle.md';
  const text = await readFile(file, 'utf8');
  await writeFile(file, syncLifecycleDoc(text));
  process.stdout.write(`${file}: state table regenerated\n`);
}

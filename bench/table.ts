/** Writes a benchmark's result table (markdown) to bench/results/NAME.md and prints it. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface BenchTable {
  title: string;
  headers: string[];
  rows: (string | number)[][];
  notes?: string[];
}

export function machineLine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function renderTable(t: BenchTable): string {
  const lines = [
    `# ${t.title}`,
    '',
    `Measured ${new Date().toISOString()} on ${machineLine()}.`,
    '',
    `| ${t.headers.join(' | ')} |`,
    `|${t.headers.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  if (t.notes?.length) lines.push('', ...t.notes.map((n) => `- ${n}`));
  return lines.join('\n') + '\n';
}

export function writeResult(name: string, t: BenchTable): string {
  const text = renderTable(t);
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${name}.md`, text);
  console.log('\n' + text);
  return text;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The p-th percentile (0-100) by nearest rank: a value that was measured, never interpolated. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

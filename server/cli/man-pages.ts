/**
 * The man page of fleet (scripts/man.js writes it to man/, with
 * fleet-agent's from agent/man-page.ts): the program built as the binary
 * builds it, rendered by common/man.ts.
 */
import { runNodesetCommand } from '../nodeset/index.js';
import { buildProgram } from './main.js';
import { FLEET_EXTRA, manPage } from './man.js';

const silent = { stdout: () => {}, stderr: () => {} };

/** File name → roff text. */
export function manPages(): Record<string, string> {
  const fleet = buildProgram({ ...silent, env: {}, isTTY: false, home: '/nonexistent', cwd: '/' }, () => {});
  return {
    'fleet.1': manPage(fleet, {
      version: fleet.version() ?? '',
      extra: [...FLEET_EXTRA, { title: 'fleet nodeset options', paragraphs: [runNodesetCommand(['--help']).replace(/^/gm, '  ')] }],
      seeAlso: ['fleet-agent(1)', 'nodeset(1)'],
    }),
  };
}

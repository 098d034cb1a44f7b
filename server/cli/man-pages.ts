/**
 * The man pages of fleet and fleet-agent (scripts/man.js writes them to
 * man/): both programs built as the binaries build them, rendered by man.ts.
 */
import { buildProgram as buildAgentProgram } from '../../agent/main.js';
import { AGENT_VERSION } from '../../agent/version.js';
import { runNodesetCommand } from '../nodeset/index.js';
import { buildProgram } from './main.js';
import { FLEET_EXTRA, manPage } from './man.js';

const silent = { stdout: () => {}, stderr: () => {} };

/** File name → roff text. */
export function manPages(): Record<string, string> {
  const fleet = buildProgram({ ...silent, env: {}, isTTY: false, home: '/nonexistent', cwd: '/' }, () => {});
  const agent = buildAgentProgram(silent, () => {});
  return {
    'fleet.1': manPage(fleet, {
      version: fleet.version() ?? '',
      extra: [...FLEET_EXTRA, { title: 'fleet nodeset options', paragraphs: [runNodesetCommand(['--help']).replace(/^/gm, '  ')] }],
      seeAlso: ['fleet-agent(1)', 'nodeset(1)'],
    }),
    'fleet-agent.1': manPage(agent, {
      version: AGENT_VERSION,
      extra: [{ title: 'Exit status', paragraphs: ['0: done. 1: failed. 2: bad usage.'] }],
      seeAlso: ['fleet(1)'],
    }),
  };
}

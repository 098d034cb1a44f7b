/** The man page of fleet-agent (scripts/man.js writes it to man/), rendered by common/man.ts. */
import { manPage } from '../common/man.js';
import { buildProgram } from './main.js';
import { AGENT_VERSION } from './version.js';

const silent = { stdout: () => {}, stderr: () => {} };

/** File name → roff text. */
export function agentManPages(): Record<string, string> {
  const agent = buildProgram(silent, () => {});
  return {
    'fleet-agent.1': manPage(agent, {
      version: AGENT_VERSION,
      extra: [{ title: 'Exit status', paragraphs: ['0: done. 1: failed. 2: bad usage.'] }],
      seeAlso: ['fleet(1)'],
    }),
  };
}

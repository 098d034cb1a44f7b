/**
 * `fleet adopt NODE`: adopt an already-installed machine (e.g. one without a
 * BMC, `bmc: none`) as NODE. The server moves the node to `adopting`, issues
 * a one-time adoption token, and answers one line to paste as root on the
 * machine (docs/agent.md "Adoption"). stdout is that line alone (so it can
 * be captured); what to do with it goes to stderr. --json: the whole answer.
 */
import { Exit, FleetError } from '../../../common/errors.js';
import type { AdoptResponse } from '../../../common/api/schemas.js';
import { NODE_NAME } from '../../../common/patterns.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';

export async function cmdAdopt(flags: GlobalFlags, node: string, opts: { json?: boolean }, io: CliIo): Promise<number> {
  if (!NODE_NAME.test(node)) throw new FleetError('usage.invalid', `${JSON.stringify(node)} is not a node name (fleet adopt takes one node)`);
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<AdoptResponse>(settings, 'POST', `/api/v1/nodes/${encodeURIComponent(node)}/adopt`);
  if (opts.json) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
    return Exit.OK;
  }
  io.stderr(
    `fleet: ${res.node} is ${res.state} (was ${res.from}). Run this line once, as root, on the installed machine that is ${res.node}; ` +
      `its token works once and until ${res.expiresAt}. It checks what it downloads against the sha256 in the line and enrols the agent ` +
      `(the fleet CA pinned by its fingerprint); ${res.node} goes ready once its roles apply (fleet status ${res.node}).\n`,
  );
  io.stdout(res.line + '\n');
  return Exit.OK;
}

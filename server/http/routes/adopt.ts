/**
 * Adoption (under /api/v1, bearer-protected like every admin route):
 *
 *   POST /nodes/:name/adopt     the node goes to `adopting`; a one-time
 *                               adoption (enrolment) token is issued; the
 *                               answer is the line to run as root on the machine
 *
 * The token appears only in the answer's `line`: the store keeps its hash
 * (and its plaintext sealed), the token.issued event says "adoption token
 * issued" without it, and nothing here logs the answer. Order: the script
 * first (no agent bundle: refused, nothing changed), then the transition,
 * then the token (TOKEN_REVOKING_EVENTS do not include adopt).
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { ADOPT_SCRIPT_PATH, adoptScript, renderAdoptLine, type AdoptDeps } from '../../agents/adopt.js';
import type { Conductor } from '../../lifecycle/conductor.js';
import { DEFAULT_TOKEN_TTL_MS } from '../../netboot/boot-service.js';
import type { Store } from '../../store/index.js';
import { actorOf } from './actor.js';

/** The cause on the token.issued event of an adoption (never the token). */
export const ADOPTION_TOKEN_CAUSE = 'adoption token issued';

export interface AdoptRouteDeps extends Partial<AdoptDeps> {
  store: Store;
  conductor?: Conductor;
  /** Life of the adoption token (default: the enrolment token's, 2 h). */
  tokenTtlMs?: number;
}

export async function registerAdoptRoutes(api: FastifyInstance, deps: AdoptRouteDeps): Promise<void> {
  api.post<{ Params: S.NodeParams }>(
    '/nodes/:name/adopt',
    {
      schema: {
        summary:
          'Adopt an installed machine as this node (e.g. one without a BMC): the node goes to adopting and the answer is one line to run as root on the machine; it fetches and checks the agent, enrols it with a one-time token (the CA pinned by its fingerprint) and starts it',
        params: S.NodeParams,
        response: { 200: S.AdoptResponse },
      },
    },
    async (req): Promise<S.AdoptResponse> => {
      if (!deps.conductor) throw new FleetError('not_implemented', 'this server runs without the lifecycle conductor');
      if (deps.serverUrl === undefined) throw new FleetError('not_implemented', 'this server has no boot endpoints configured: machines cannot download the agent');
      const name = req.params.name;
      const script = await adoptScript({ ...deps, serverUrl: deps.serverUrl });
      const actor = actorOf(req);
      const moved = await deps.conductor.adopt(name, { actor });
      const issued = await deps.store.tokens.issue(name, { ttlMs: deps.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS, actor, cause: ADOPTION_TOKEN_CAUSE });
      const line = renderAdoptLine({ serverUrl: deps.serverUrl, scriptSha256: script.sha256, token: issued.token });
      req.log.info({ node: name, from: moved.from, expiresAt: issued.expiresAt }, 'adoption token issued');
      return {
        node: name,
        state: moved.state ?? 'adopting',
        from: moved.from ?? '',
        line,
        expiresAt: issued.expiresAt,
        scriptUrl: `${deps.serverUrl.replace(/\/+$/, '')}${ADOPT_SCRIPT_PATH}`,
        scriptSha256: script.sha256,
        agentSha256: script.agentSha256,
      };
    },
  );
}

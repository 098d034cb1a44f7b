/**
 * Who is calling: every method but Enroll needs the node certificate. The
 * TLS handshake verified it against the fleet CA; here it is checked again
 * (issuer, validity, clientAuth, CN) and against the store: it must be the
 * node's *current* certificate (re-enrolment and node removal revoke). The
 * node is the certificate's CN, never a request field.
 */
import { FleetError } from '../../common/errors.js';
import { verifyNodeCertificate } from '../pki/index.js';
import type { AgentDeps } from './types.js';

/** The node a peer certificate (DER, as the handshake gave it; undefined when none) authenticates. */
export function createAuthenticator(deps: Pick<AgentDeps, 'store' | 'ca' | 'clock'>): (certDer: Uint8Array | undefined) => Promise<string> {
  return async (raw) => {
    if (!raw) throw new FleetError('auth.missing', 'this call needs a valid node certificate (enrol first)');
    const { node, fingerprint } = verifyNodeCertificate(deps.ca, raw, deps.clock());
    const agent = await deps.store.agents.get(node);
    if (!agent || agent.certFingerprint !== fingerprint) {
      throw new FleetError('auth.invalid', `the certificate is not the current credential of node ${node}`, { node });
    }
    return node;
  };
}
